//! Injected faults, as the client crates observe them, and the counters that record them.

use std::time::Duration;

use gcp_emulator::FaultRule;
use google_cloudidentity1::Delegate;
use google_cloudidentity1::common::{Response, Retry};
use google_cloudresourcemanager3::api::{Policy, SetIamPolicyRequest};

use crate::support::*;

/// Records what the client saw of failed responses, and optionally retries them.
#[derive(Default)]
struct Recorder {
    statuses: Vec<u16>,
    retry_after: Option<String>,
    retries_left: u32,
}

impl Delegate for Recorder {
    fn http_failure(&mut self, response: &Response, _error: Option<&serde_json::Value>) -> Retry {
        self.statuses.push(response.status().as_u16());
        self.retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if self.retries_left > 0 {
            self.retries_left -= 1;
            Retry::After(Duration::from_millis(5))
        } else {
            Retry::Abort
        }
    }
}

#[tokio::test]
async fn an_injected_503_reaches_the_client_and_is_counted() {
    let emulator = emulator();
    let control = emulator.control();
    control
        .add_fault(&FaultRule::always(
            "cloudidentity.groups.memberships.create",
            503,
        ))
        .await
        .expect("the rule is accepted");
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);
    let group = create_group(&hub, "jit.prod.sys.flaky@example.com").await;

    let error = hub
        .groups()
        .memberships_create(membership("bob@example.com", None), &group)
        .doit()
        .await
        .expect_err("the fault answers");
    let (code, status, _) = google_error(&error);
    assert_eq!((code, status.as_str()), (503, "UNAVAILABLE"));

    let counts = control.requests().await.expect("counts");
    assert_eq!(counts.calls("cloudidentity.groups.memberships.create"), 1);
    assert_eq!(counts.faults("cloudidentity.groups.memberships.create"), 1);
    assert_eq!(counts.calls("cloudidentity.groups.create"), 1);
    assert_eq!(counts.faults("cloudidentity.groups.create"), 0);
    let state = control.state().await.expect("state");
    let group = state
        .group("jit.prod.sys.flaky@example.com")
        .expect("group");
    assert!(
        group.memberships.is_empty(),
        "a faulted call changes nothing"
    );
}

#[tokio::test]
async fn an_injected_429_carries_a_retry_after_header() {
    let emulator = emulator();
    emulator
        .control()
        .add_fault(&FaultRule::always("cloudidentity.groups.lookup", 429).with_retry_after(7))
        .await
        .expect("the rule is accepted");
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);

    let mut recorder = Recorder::default();
    let error = hub
        .groups()
        .lookup()
        .group_key_id("admins@example.com")
        .delegate(&mut recorder)
        .doit()
        .await
        .expect_err("throttled");
    assert_eq!(google_error(&error).1, "RESOURCE_EXHAUSTED");
    assert_eq!(recorder.statuses, vec![429]);
    assert_eq!(recorder.retry_after.as_deref(), Some("7"));
}

#[tokio::test]
async fn a_client_that_retries_gets_through_a_fault_with_a_count() {
    let emulator = emulator();
    let control = emulator.control();
    control
        .add_fault(&FaultRule::always("*", 500).with_count(2))
        .await
        .expect("the rule is accepted");
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);

    let mut recorder = Recorder {
        retries_left: 5,
        ..Recorder::default()
    };
    let (_, found) = hub
        .groups()
        .lookup()
        .group_key_id("admins@example.com")
        .delegate(&mut recorder)
        .doit()
        .await
        .expect("the third attempt succeeds");
    assert!(found.name.is_some());
    assert_eq!(recorder.statuses, vec![500, 500]);

    let counts = control.requests().await.expect("counts");
    assert_eq!(counts.calls("cloudidentity.groups.lookup"), 3);
    assert_eq!(counts.faults("cloudidentity.groups.lookup"), 2);
}

async fn fault_pattern(seed: u64) -> Vec<bool> {
    let emulator = emulator();
    emulator
        .control()
        .add_fault(
            &FaultRule::always("cloudidentity.groups.get", 503)
                .with_rate(0.5)
                .with_seed(seed),
        )
        .await
        .expect("the rule is accepted");
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);
    let (_, found) = hub
        .groups()
        .lookup()
        .group_key_id("admins@example.com")
        .doit()
        .await
        .expect("lookup is not faulted");
    let name = found.name.expect("name");
    let mut pattern = Vec::new();
    for _ in 0..24 {
        pattern.push(hub.groups().get(&name).doit().await.is_err());
    }
    pattern
}

#[tokio::test]
async fn faults_with_the_same_seed_hit_the_same_requests() {
    let first = fault_pattern(42).await;
    let again = fault_pattern(42).await;
    let other = fault_pattern(43).await;
    assert_eq!(first, again);
    assert_ne!(first, other);
    assert!(
        first.contains(&true) && first.contains(&false),
        "a rate of 0.5 hits some"
    );
}

#[tokio::test]
async fn an_injected_409_on_set_iam_policy_looks_like_an_etag_conflict() {
    let emulator = emulator();
    emulator
        .control()
        .add_fault(
            &FaultRule::always("cloudresourcemanager.projects.setIamPolicy", 409).with_count(1),
        )
        .await
        .expect("the rule is accepted");
    let hub = resource_manager(&emulator, PROVISIONER_TOKEN);
    let request = || SetIamPolicyRequest {
        policy: Some(Policy::default()),
        update_mask: None,
    };

    let error = hub
        .projects()
        .set_iam_policy(request(), "projects/prod-app")
        .doit()
        .await
        .expect_err("the fault answers");
    let (code, status, message) = google_error(&error);
    assert_eq!((code, status.as_str()), (409, "ABORTED"));
    assert!(message.contains("concurrent policy changes"));

    hub.projects()
        .set_iam_policy(request(), "projects/prod-app")
        .doit()
        .await
        .expect("the rule hit only once");
}

#[tokio::test]
async fn faults_limited_to_one_token_spare_other_callers() {
    let emulator = emulator();
    let control = emulator.control();
    control
        .add_fault(&FaultRule::always("*", 503).for_token(OUTSIDER_TOKEN))
        .await
        .expect("the rule is accepted");
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);
    hub.groups()
        .lookup()
        .group_key_id("admins@example.com")
        .doit()
        .await
        .expect("another token is spared");

    let outsider = cloud_identity(&emulator, OUTSIDER_TOKEN);
    let error = outsider
        .groups()
        .lookup()
        .group_key_id("admins@example.com")
        .doit()
        .await
        .expect_err("the outsider's token is hit");
    assert_eq!(google_error(&error).0, 503);

    let mine = control
        .requests_for_token(OUTSIDER_TOKEN)
        .await
        .expect("counts");
    assert_eq!(mine.total(), 1);
    assert_eq!(mine.faults("cloudidentity.groups.lookup"), 1);
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let emulator = emulator();
    let mut rule = FaultRule::always("cloudidentity.groups.lookup", 503).with_latency_ms(150);
    rule.status = None;
    emulator
        .control()
        .add_fault(&rule)
        .await
        .expect("the rule is accepted");
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);

    let started = std::time::Instant::now();
    hub.groups()
        .lookup()
        .group_key_id("admins@example.com")
        .doit()
        .await
        .expect("a latency-only rule does not fail the call");
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn a_fault_after_the_effect_makes_the_change_but_loses_the_answer() {
    let emulator = emulator();
    let control = emulator.control();
    control
        .add_fault(
            &FaultRule::always("cloudidentity.groups.memberships.create", 503)
                .after_effect()
                .with_count(1),
        )
        .await
        .expect("the rule is accepted");
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);
    let group = create_group(&hub, "jit.prod.sys.lost@example.com").await;

    let error = hub
        .groups()
        .memberships_create(membership("bob@example.com", None), &group)
        .doit()
        .await
        .expect_err("the answer is replaced by the fault");
    let (code, status, _) = google_error(&error);
    assert_eq!((code, status.as_str()), (503, "UNAVAILABLE"));

    let state = control.state().await.expect("state");
    let snapshot = state.group("jit.prod.sys.lost@example.com").expect("group");
    assert_eq!(
        snapshot.member_emails(),
        vec!["bob@example.com"],
        "the change was made"
    );

    let retried = hub
        .groups()
        .memberships_create(membership("bob@example.com", None), &group)
        .doit()
        .await
        .expect_err("a retry finds the membership");
    let (code, status, _) = google_error(&retried);
    assert_eq!((code, status.as_str()), (409, "ALREADY_EXISTS"));
}
