//! JoinRequests end to end: a real control plane, the Google Cloud emulator, and the
//! controller in-process.

mod common;

use common::{is_ready, phase};
use std::time::Duration;

use common::Harness;
use common::objects::{entry, environment, group, privilege, request};
use jit_groups_controller::api::{JitEnvironment, JitGroup, JoinRequest, Phase};

const GROUP_EMAIL: &str = "jit.prod.data.readers@example.com";
const WAIT: Duration = Duration::from_secs(30);

/// An environment and a group `readers` where alice may join and approve herself, bob may
/// only join, and carol is not listed.
async fn readers(h: &Harness) {
    h.apply(&environment("prod")).await;
    h.apply(&group(
        "readers",
        vec![
            entry("user:alice@example.com", "JOIN, APPROVE_SELF"),
            entry("user:bob@example.com", "JOIN"),
            entry("user:dave@example.com", "APPROVE_OTHERS"),
        ],
        vec![privilege("projects/shared-prod", "roles/cloudsql.viewer")],
    ))
    .await;
    h.wait_for::<JitGroup>("readers", WAIT, is_ready).await;
}

#[tokio::test]
async fn a_self_approved_join_becomes_active_with_its_expiry_in_cloud_identity() {
    let h = Harness::start("join-active").await;
    readers(&h).await;

    let asked = jiff::Timestamp::now();
    h.apply(&request(
        "alice-readers",
        "readers",
        "alice@example.com",
        "PT2H",
    ))
    .await;
    let active = h
        .wait_for::<JoinRequest>("alice-readers", WAIT, |r| phase(r) == Some(Phase::Active))
        .await;

    let status = active.status.expect("status");
    assert_eq!(status.reason.as_deref(), Some("Granted"));
    assert_eq!(status.group_email.as_deref(), Some(GROUP_EMAIL));
    let expires = status.expires_at.expect("expiresAt").0;
    let granted = expires.duration_since(asked);
    assert!(
        granted > jiff::SignedDuration::from_hours(2) - jiff::SignedDuration::from_secs(1)
            && granted < jiff::SignedDuration::from_hours(2) + jiff::SignedDuration::from_secs(30),
        "expiry {expires} is not two hours after {asked}"
    );

    let cloud = h
        .cloud_group(GROUP_EMAIL)
        .await
        .expect("the Cloud Identity group exists");
    assert!(
        cloud
            .labels
            .contains_key("cloudidentity.googleapis.com/groups.security")
    );
    let membership = cloud
        .memberships
        .iter()
        .find(|m| m.member == "alice@example.com")
        .expect("alice is a member");
    assert_eq!(
        membership.expire_time.map(|t| t.timestamp()),
        Some(expires.as_second()),
        "the membership expires when the request says"
    );
    assert_eq!(status.membership.as_deref(), Some(membership.name.as_str()));

    let reasons = h.event_reasons("alice-readers").await;
    assert!(reasons.contains(&"SelfApproved".to_owned()), "{reasons:?}");
    assert!(reasons.contains(&"Granted".to_owned()), "{reasons:?}");
}

#[tokio::test]
async fn a_duration_outside_the_constraint_is_denied_naming_the_bounds() {
    let h = Harness::start("join-duration").await;
    readers(&h).await;

    h.apply(&request(
        "alice-too-long",
        "readers",
        "alice@example.com",
        "P2D",
    ))
    .await;
    let denied = h
        .wait_for::<JoinRequest>("alice-too-long", WAIT, |r| phase(r) == Some(Phase::Denied))
        .await;

    let status = denied.status.expect("status");
    assert_eq!(status.reason.as_deref(), Some("DurationOutOfRange"));
    assert_eq!(
        status.message.as_deref(),
        Some("duration P2D is outside the allowed range [PT1S, P1D]")
    );
    let cloud = h.cloud_group(GROUP_EMAIL).await.expect("group");
    assert!(
        cloud.memberships.is_empty(),
        "nobody was added: {:?}",
        cloud.memberships
    );
    assert!(
        h.event_reasons("alice-too-long")
            .await
            .contains(&"DurationOutOfRange".to_owned())
    );
}

#[tokio::test]
async fn a_requester_without_join_is_denied_with_the_reason() {
    let h = Harness::start("join-denied").await;
    readers(&h).await;

    h.apply(&request(
        "carol-readers",
        "readers",
        "carol@example.com",
        "PT1H",
    ))
    .await;
    let denied = h
        .wait_for::<JoinRequest>("carol-readers", WAIT, |r| phase(r) == Some(Phase::Denied))
        .await;

    let status = denied.status.expect("status");
    assert_eq!(status.reason.as_deref(), Some("NotPermitted"));
    assert_eq!(
        status.message.as_deref(),
        Some("carol@example.com may not join prod.data.readers: no access entry allows JOIN")
    );
    let cloud = h.cloud_group(GROUP_EMAIL).await.expect("group");
    assert!(cloud.memberships.is_empty());
}

#[tokio::test]
async fn a_requester_without_self_approval_waits_naming_the_approvers() {
    let h = Harness::start("join-pending").await;
    readers(&h).await;

    h.apply(&request(
        "bob-readers",
        "readers",
        "bob@example.com",
        "PT1H",
    ))
    .await;
    let pending = h
        .wait_for::<JoinRequest>("bob-readers", WAIT, |r| {
            r.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("ApprovalRequired")
        })
        .await;

    let status = pending.status.expect("status");
    assert_eq!(status.phase, Some(Phase::Pending));
    assert_eq!(status.approvers, vec!["user:dave@example.com".to_owned()]);
    assert!(
        status
            .message
            .unwrap_or_default()
            .contains("needs 1 more approval(s) by one of: user:dave@example.com")
    );
    let cloud = h.cloud_group(GROUP_EMAIL).await.expect("group");
    assert!(cloud.memberships.is_empty());
}

#[tokio::test]
async fn an_active_request_expires_and_its_membership_is_gone() {
    let h = Harness::start("join-expiry").await;
    readers(&h).await;

    h.apply(&request(
        "alice-brief",
        "readers",
        "alice@example.com",
        "PT4S",
    ))
    .await;
    h.wait_for::<JoinRequest>("alice-brief", WAIT, |r| phase(r) == Some(Phase::Active))
        .await;
    let cloud = h.cloud_group(GROUP_EMAIL).await.expect("group");
    assert_eq!(cloud.memberships.len(), 1, "alice is a member while active");

    let expired = h
        .wait_for::<JoinRequest>("alice-brief", WAIT, |r| phase(r) == Some(Phase::Expired))
        .await;
    let status = expired.status.expect("status");
    assert_eq!(status.reason.as_deref(), Some("Expired"));
    assert!(status.finished_at.expect("finishedAt").0 >= status.expires_at.expect("expiresAt").0);
    let cloud = h.cloud_group(GROUP_EMAIL).await.expect("group");
    assert!(
        cloud.memberships.is_empty(),
        "the membership is gone: {:?}",
        cloud.memberships
    );
    assert!(
        h.event_reasons("alice-brief")
            .await
            .contains(&"Expired".to_owned())
    );
}

#[tokio::test]
async fn a_request_for_a_missing_group_waits_and_proceeds_once_the_group_exists() {
    let h = Harness::start("join-late-group").await;
    h.apply(&environment("prod")).await;

    h.apply(&request(
        "alice-early",
        "readers",
        "alice@example.com",
        "PT1H",
    ))
    .await;
    let waiting = h
        .wait_for::<JoinRequest>("alice-early", WAIT, |r| {
            r.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("GroupNotFound")
        })
        .await;
    assert_eq!(waiting.status.and_then(|s| s.phase), Some(Phase::Pending));

    readers(&h).await;
    h.wait_for::<JoinRequest>("alice-early", WAIT, |r| phase(r) == Some(Phase::Active))
        .await;
}

#[tokio::test]
async fn a_google_503_burst_is_ridden_out() {
    let h = Harness::start("join-503").await;
    readers(&h).await;

    let burst = gcp_emulator::FaultRule::always("cloudidentity.groups.memberships.create", 503)
        .with_count(6);
    h.control().add_fault(&burst).await.expect("fault");
    h.apply(&request(
        "alice-flaky",
        "readers",
        "alice@example.com",
        "PT1H",
    ))
    .await;
    let active = h
        .wait_for::<JoinRequest>("alice-flaky", Duration::from_secs(60), |r| {
            phase(r) == Some(Phase::Active)
        })
        .await;

    assert!(active.status.expect("status").membership.is_some());
    let counts = h.control().requests().await.expect("counters");
    let creates = counts
        .requests
        .get("cloudidentity.groups.memberships.create")
        .copied()
        .unwrap_or(0);
    assert!(
        creates >= 7,
        "six failed attempts and one success, got {creates}"
    );
    let cloud = h.cloud_group(GROUP_EMAIL).await.expect("group");
    assert_eq!(
        cloud.memberships.len(),
        1,
        "exactly one membership despite the retries"
    );
}

#[tokio::test]
async fn an_environment_whose_service_account_cannot_be_impersonated_is_not_ready() {
    let h = Harness::start("env-foreign").await;
    let mut env = environment("prod");
    env.spec.service_account = common::FOREIGN_SA.into();
    h.apply(&env).await;

    let env = h
        .wait_for::<JitEnvironment>("prod", WAIT, |e| {
            e.status.as_ref().is_some_and(|s| !s.conditions.is_empty())
        })
        .await;
    let ready = &env.status.expect("status").conditions[0];
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason, "ImpersonationFailed");
    assert!(
        ready.message.contains(common::FOREIGN_SA),
        "{}",
        ready.message
    );
}
