//! A request's life over time: extension by a later request, revocation on deletion, and
//! crashes and downtime of the controller. Real control plane, emulator, controller
//! in-process.

mod common;

use common::{is_ready, phase};
use std::time::Duration;

use common::Harness;
use common::objects::{entry, environment, group, privilege, request};
use jit_groups_controller::api::{JitGroup, JoinRequest, Phase};

const GROUP_EMAIL: &str = "jit.prod.data.readers@example.com";
const WAIT: Duration = Duration::from_secs(30);

fn expires_at(r: &JoinRequest) -> jiff::Timestamp {
    r.status
        .as_ref()
        .and_then(|s| s.expires_at.as_ref())
        .expect("expiresAt")
        .0
}

async fn readers(h: &Harness) {
    h.apply(&environment("prod")).await;
    h.apply(&group(
        "readers",
        vec![entry("user:alice@example.com", "JOIN, APPROVE_SELF")],
        vec![privilege("projects/shared-prod", "roles/cloudsql.viewer")],
    ))
    .await;
    h.wait_for::<JitGroup>("readers", WAIT, is_ready).await;
}

async fn active(h: &Harness, name: &str, duration: &str) -> JoinRequest {
    h.apply(&request(name, "readers", "alice@example.com", duration))
        .await;
    h.wait_for::<JoinRequest>(name, WAIT, |r| phase(r) == Some(Phase::Active))
        .await
}

/// Alice's membership expiry in the emulator, in whole seconds, if she is a member.
async fn membership_expiry(h: &Harness) -> Option<i64> {
    let group = h.cloud_group(GROUP_EMAIL).await?;
    let membership = group
        .memberships
        .iter()
        .find(|m| m.member == "alice@example.com")?;
    Some(
        membership
            .expire_time
            .map(|t| t.timestamp())
            .unwrap_or(i64::MAX),
    )
}

#[tokio::test]
async fn a_later_request_extends_the_membership_and_an_earlier_one_never_shortens_it() {
    let h = Harness::start("life-extend").await;
    readers(&h).await;

    let long = active(&h, "alice-long", "PT4H").await;
    assert_eq!(
        membership_expiry(&h).await,
        Some(expires_at(&long).as_second())
    );

    let short = active(&h, "alice-short", "PT1H").await;
    assert!(expires_at(&short) < expires_at(&long));
    assert_eq!(
        membership_expiry(&h).await,
        Some(expires_at(&long).as_second()),
        "the shorter request keeps the later expiry"
    );
    let message = short.status.and_then(|s| s.message).unwrap_or_default();
    assert!(message.contains("this request lasts until"), "{message}");

    let longer = active(&h, "alice-longer", "PT8H").await;
    assert_eq!(
        membership_expiry(&h).await,
        Some(expires_at(&longer).as_second())
    );
}

#[tokio::test]
async fn deleting_the_longer_of_two_requests_leaves_access_until_the_other_expires() {
    let h = Harness::start("life-revoke-one").await;
    readers(&h).await;
    let short = active(&h, "alice-short", "PT1H").await;
    let long = active(&h, "alice-long", "PT4H").await;
    assert_eq!(
        membership_expiry(&h).await,
        Some(expires_at(&long).as_second())
    );

    h.delete::<JoinRequest>("alice-long").await;
    h.wait_gone::<JoinRequest>("alice-long", WAIT).await;

    assert_eq!(
        membership_expiry(&h).await,
        Some(expires_at(&short).as_second()),
        "the membership is shortened to the remaining request"
    );
    assert!(
        h.event_reasons("alice-long")
            .await
            .contains(&"Revoked".to_owned())
    );
    let still = h
        .api::<JoinRequest>()
        .get("alice-short")
        .await
        .expect("request");
    assert_eq!(phase(&still), Some(Phase::Active));
}

#[tokio::test]
async fn deleting_the_only_active_request_removes_the_membership() {
    let h = Harness::start("life-revoke-all").await;
    readers(&h).await;
    active(&h, "alice-only", "PT2H").await;
    assert!(membership_expiry(&h).await.is_some());

    h.delete::<JoinRequest>("alice-only").await;
    h.wait_gone::<JoinRequest>("alice-only", WAIT).await;

    assert_eq!(
        membership_expiry(&h).await,
        None,
        "alice is no longer a member"
    );
    assert!(
        h.event_reasons("alice-only")
            .await
            .contains(&"Revoked".to_owned())
    );
}

#[tokio::test]
async fn a_controller_killed_between_the_membership_write_and_the_status_write_grants_once() {
    let mut h = Harness::start("life-crash").await;
    readers(&h).await;

    // The membership is written, but the answer takes ten seconds: the controller is killed
    // while it waits, before it could record that the request is Active.
    let slow = gcp_emulator::FaultRule {
        latency_ms: Some(10_000),
        ..gcp_emulator::FaultRule::always("cloudidentity.groups.memberships.create", 503)
    }
    .after_effect()
    .with_count(1);
    h.control().add_fault(&slow).await.expect("fault");
    h.apply(&request(
        "alice-crash",
        "readers",
        "alice@example.com",
        "PT2H",
    ))
    .await;
    let approved = h
        .wait_for::<JoinRequest>("alice-crash", WAIT, |r| phase(r) == Some(Phase::Approved))
        .await;
    for _ in 0..100 {
        if membership_expiry(&h).await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        membership_expiry(&h).await,
        Some(expires_at(&approved).as_second())
    );
    h.kill_controller();
    let stuck = h
        .api::<JoinRequest>()
        .get("alice-crash")
        .await
        .expect("request");
    assert_eq!(
        phase(&stuck),
        Some(Phase::Approved),
        "the crash came before the status write"
    );

    h.start_controller();
    let active = h
        .wait_for::<JoinRequest>("alice-crash", WAIT, |r| phase(r) == Some(Phase::Active))
        .await;

    assert_eq!(
        expires_at(&active),
        expires_at(&approved),
        "the recorded expiry is kept"
    );
    let group = h.cloud_group(GROUP_EMAIL).await.expect("group");
    assert_eq!(
        group.memberships.len(),
        1,
        "one membership: {:?}",
        group.memberships
    );
    assert_eq!(
        membership_expiry(&h).await,
        Some(expires_at(&approved).as_second())
    );
    let granted = h
        .event_reasons("alice-crash")
        .await
        .into_iter()
        .filter(|r| r == "Granted")
        .count();
    assert_eq!(granted, 1, "the request became Active once");
}

#[tokio::test]
async fn a_controller_down_across_an_expiry_catches_up_at_once_after_restart() {
    let mut h = Harness::start("life-downtime").await;
    readers(&h).await;
    let brief = active(&h, "alice-brief", "PT3S").await;

    h.kill_controller();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = h
        .api::<JoinRequest>()
        .get("alice-brief")
        .await
        .expect("request");
    assert_eq!(
        phase(&during),
        Some(Phase::Active),
        "nobody marked it while the controller was down"
    );
    assert_eq!(
        membership_expiry(&h).await,
        None,
        "Cloud Identity removed the membership itself"
    );

    let restarted = std::time::Instant::now();
    h.start_controller();
    let expired = h
        .wait_for::<JoinRequest>("alice-brief", WAIT, |r| phase(r) == Some(Phase::Expired))
        .await;
    let caught_up = restarted.elapsed();
    println!("expired {caught_up:?} after the restart");
    assert!(
        caught_up < Duration::from_secs(15),
        "caught up in {caught_up:?}"
    );
    assert_eq!(expires_at(&expired), expires_at(&brief));
}
