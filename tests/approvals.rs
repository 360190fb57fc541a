//! Approval by others, end to end against the real control plane and the emulator. The
//! decisions are written as the admission webhook records them: with `approver` and
//! `decidedAt` filled in.

mod common;

use common::{is_ready, phase};
use std::time::Duration;

use common::Harness;
use common::objects::{entry, environment, group, privilege, request};
use jit_groups_controller::api::{ApprovalSpec, Decision, JitGroup, JoinRequest, Phase};
use jit_groups_controller::policy::{ApproveConstraintsSpec, ConstraintsSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};

const GROUP_EMAIL: &str = "jit.prod.data.readers@example.com";
const WAIT: Duration = Duration::from_secs(30);

fn reason(r: &JoinRequest) -> Option<String> {
    r.status.as_ref().and_then(|s| s.reason.clone())
}

/// A group where alice may only join, bob and erin may approve others, and carol is not
/// listed.
async fn readers(h: &Harness, min_approvals: Option<u32>) {
    h.apply(&environment("prod")).await;
    let mut readers = group(
        "readers",
        vec![
            entry("user:alice@example.com", "JOIN"),
            entry("user:bob@example.com", "APPROVE_OTHERS"),
            entry("user:erin@example.com", "APPROVE_OTHERS"),
        ],
        vec![privilege("projects/shared-prod", "roles/cloudsql.viewer")],
    );
    readers.spec.constraints = ConstraintsSpec {
        join: None,
        approve: Some(ApproveConstraintsSpec { min_approvals }),
    };
    h.apply(&readers).await;
    h.wait_for::<JitGroup>("readers", WAIT, is_ready).await;
}

async fn ask(h: &Harness, name: &str) {
    h.apply(&request(name, "readers", "alice@example.com", "PT1H"))
        .await;
    h.wait_for::<JoinRequest>(name, WAIT, |r| {
        reason(r).as_deref() == Some("ApprovalRequired")
    })
    .await;
}

/// Appends a decision to the request's spec, as the webhook would record it.
async fn decide(h: &Harness, name: &str, approver: &str, decision: Decision) {
    let api = h.api::<JoinRequest>();
    let mut current = api.get(name).await.expect("request");
    current.spec.approvals.push(ApprovalSpec {
        decision,
        comment: Some(format!("{approver} says {decision:?}")),
        approver: Some(approver.to_owned()),
        decided_at: Some(Time(jiff::Timestamp::now())),
    });
    let patch = serde_json::json!({ "spec": { "approvals": current.spec.approvals } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
}

async fn members(h: &Harness) -> Vec<String> {
    let group = h.cloud_group(GROUP_EMAIL).await.expect("group");
    group.memberships.iter().map(|m| m.member.clone()).collect()
}

#[tokio::test]
async fn a_request_approved_by_someone_with_approve_others_becomes_active() {
    let h = Harness::start("approve-bob").await;
    readers(&h, None).await;
    ask(&h, "alice-readers").await;

    let pending = h
        .api::<JoinRequest>()
        .get("alice-readers")
        .await
        .expect("request");
    let status = pending.status.expect("status");
    assert_eq!(status.phase, Some(Phase::Pending));
    assert_eq!(
        status.approvers,
        vec!["user:bob@example.com", "user:erin@example.com"]
    );
    assert!(
        h.event_reasons("alice-readers")
            .await
            .contains(&"ApprovalRequested".to_owned())
    );
    assert!(members(&h).await.is_empty());

    decide(&h, "alice-readers", "bob@example.com", Decision::Approve).await;
    let active = h
        .wait_for::<JoinRequest>("alice-readers", WAIT, |r| phase(r) == Some(Phase::Active))
        .await;

    let status = active.status.expect("status");
    assert_eq!(status.decisions.len(), 1);
    assert!(status.decisions[0].counted);
    assert_eq!(
        status.decisions[0].reason,
        "holds APPROVE_OTHERS through user:bob@example.com"
    );
    assert_eq!(members(&h).await, vec!["alice@example.com"]);
    assert!(
        h.event_reasons("alice-readers")
            .await
            .contains(&"Approved".to_owned())
    );
}

#[tokio::test]
async fn decisions_without_the_right_are_kept_but_not_counted() {
    let h = Harness::start("approve-nobody").await;
    readers(&h, None).await;
    ask(&h, "alice-readers").await;

    decide(&h, "alice-readers", "carol@example.com", Decision::Approve).await;
    decide(&h, "alice-readers", "alice@example.com", Decision::Approve).await;
    let judged = h
        .wait_for::<JoinRequest>("alice-readers", WAIT, |r| {
            r.status.as_ref().is_some_and(|s| s.decisions.len() == 2)
        })
        .await;

    let status = judged.status.expect("status");
    assert_eq!(status.phase, Some(Phase::Pending));
    assert!(!status.decisions[0].counted);
    assert_eq!(
        status.decisions[0].reason,
        "carol@example.com does not hold APPROVE_OTHERS"
    );
    assert!(!status.decisions[1].counted);
    assert!(
        status.decisions[1]
            .reason
            .contains("is the requester and does not hold APPROVE_SELF"),
        "{}",
        status.decisions[1].reason
    );
    assert!(members(&h).await.is_empty());
}

#[tokio::test]
async fn a_group_with_two_required_approvals_needs_two_distinct_approvers() {
    let h = Harness::start("approve-two").await;
    readers(&h, Some(2)).await;
    ask(&h, "alice-readers").await;

    decide(&h, "alice-readers", "bob@example.com", Decision::Approve).await;
    decide(&h, "alice-readers", "bob@example.com", Decision::Approve).await;
    let once = h
        .wait_for::<JoinRequest>("alice-readers", WAIT, |r| {
            r.status.as_ref().is_some_and(|s| s.decisions.len() == 2)
        })
        .await;
    assert_eq!(phase(&once), Some(Phase::Pending));
    assert!(
        once.status
            .and_then(|s| s.message)
            .unwrap_or_default()
            .contains("needs 1 more approval")
    );

    decide(&h, "alice-readers", "erin@example.com", Decision::Approve).await;
    let active = h
        .wait_for::<JoinRequest>("alice-readers", WAIT, |r| phase(r) == Some(Phase::Active))
        .await;
    let message = active.status.and_then(|s| {
        let history = s.decisions.iter().filter(|d| d.counted).count();
        assert_eq!(
            history, 3,
            "all three decisions counted, two distinct approvers"
        );
        s.message
    });
    assert!(
        message
            .unwrap_or_default()
            .contains("alice@example.com is a member")
    );
    assert_eq!(members(&h).await, vec!["alice@example.com"]);
}

#[tokio::test]
async fn a_counted_deny_ends_the_request_without_a_membership() {
    let h = Harness::start("approve-deny").await;
    readers(&h, None).await;
    ask(&h, "alice-readers").await;

    decide(&h, "alice-readers", "bob@example.com", Decision::Deny).await;
    let denied = h
        .wait_for::<JoinRequest>("alice-readers", WAIT, |r| phase(r) == Some(Phase::Denied))
        .await;

    let status = denied.status.expect("status");
    assert_eq!(status.reason.as_deref(), Some("DeniedByApprover"));
    assert_eq!(
        status.message.as_deref(),
        Some("denied by bob@example.com: bob@example.com says Deny")
    );
    assert!(members(&h).await.is_empty());
    assert!(
        h.event_reasons("alice-readers")
            .await
            .contains(&"DeniedByApprover".to_owned())
    );
}

#[tokio::test]
async fn a_request_nobody_decides_times_out() {
    let h = Harness::start("approve-timeout").await;
    let mut env = environment("prod");
    env.spec.approval_timeout = Some("PT3S".into());
    h.apply(&env).await;
    let readers = group(
        "readers",
        vec![
            entry("user:alice@example.com", "JOIN"),
            entry("user:bob@example.com", "APPROVE_OTHERS"),
        ],
        vec![],
    );
    h.apply(&readers).await;
    h.wait_for::<JitGroup>("readers", WAIT, is_ready).await;

    h.apply(&request(
        "alice-readers",
        "readers",
        "alice@example.com",
        "PT1H",
    ))
    .await;
    let timed_out = h
        .wait_for::<JoinRequest>("alice-readers", WAIT, |r| phase(r) == Some(Phase::TimedOut))
        .await;

    let status = timed_out.status.expect("status");
    assert_eq!(
        status.message.as_deref(),
        Some("no decision within PT3S (the environment's approvalTimeout)")
    );
    assert!(members(&h).await.is_empty());
}
