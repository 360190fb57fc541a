//! History retention: finished JoinRequests are deleted once the retention has passed since
//! they finished; recent and unfinished ones stay. A real control plane, the Google Cloud
//! emulator, and the controller in-process with a retention of seconds.

mod common;

use common::phase;
use std::time::Duration;

use common::Harness;
use common::objects::{entry, environment, group, privilege, request};
use jit_groups_controller::api::{JitGroup, JoinRequest, Phase, READY};

const WAIT: Duration = Duration::from_secs(30);
const RETENTION: Duration = Duration::from_secs(8);

fn finished_at(r: &JoinRequest) -> jiff::Timestamp {
    r.status
        .as_ref()
        .and_then(|s| s.finished_at.as_ref())
        .expect("finishedAt")
        .0
}

/// Waits until `name` is denied (carol may not join) and returns when it finished.
async fn denied(h: &Harness, name: &str) -> jiff::Timestamp {
    h.apply(&request(name, "readers", "carol@example.com", "PT1H"))
        .await;
    let r = h
        .wait_for::<JoinRequest>(name, WAIT, |r| phase(r) == Some(Phase::Denied))
        .await;
    finished_at(&r)
}

async fn exists(h: &Harness, name: &str) -> bool {
    h.api::<JoinRequest>()
        .get_opt(name)
        .await
        .expect("get")
        .is_some()
}

#[tokio::test]
async fn a_finished_request_is_deleted_after_the_retention_while_recent_and_active_ones_stay() {
    let mut h = Harness::start_without_controller("history").await;
    let mut settings = h.settings();
    settings.history_retention = RETENTION;
    h.start_controller_with(settings);
    h.apply(&environment("prod")).await;
    h.apply(&group(
        "readers",
        vec![entry("user:alice@example.com", "JOIN, APPROVE_SELF")],
        vec![privilege("projects/shared-prod", "roles/cloudsql.viewer")],
    ))
    .await;
    h.wait_for::<JitGroup>("readers", WAIT, |g| {
        g.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == READY && c.status == "True")
        })
    })
    .await;
    h.apply(&request(
        "alice-active",
        "readers",
        "alice@example.com",
        "PT1H",
    ))
    .await;
    h.wait_for::<JoinRequest>("alice-active", WAIT, |r| phase(r) == Some(Phase::Active))
        .await;

    let old_finished = denied(&h, "carol-old").await;
    let halfway = old_finished + jiff::SignedDuration::try_from(RETENTION / 2).expect("span");
    if let Ok(wait) = Duration::try_from(halfway.duration_since(jiff::Timestamp::now())) {
        tokio::time::sleep(wait).await;
    }
    assert!(
        exists(&h, "carol-old").await,
        "a request is kept while its retention runs"
    );
    let recent_finished = denied(&h, "carol-recent").await;

    h.wait_gone::<JoinRequest>("carol-old", WAIT).await;
    let gone = jiff::Timestamp::now();

    assert!(
        gone.duration_since(old_finished)
            >= jiff::SignedDuration::try_from(RETENTION).expect("span"),
        "deleted at {gone}, before the retention passed since {old_finished}"
    );
    assert!(
        exists(&h, "carol-recent").await,
        "a request finished at {recent_finished} is still within its retention at {gone}"
    );
    assert!(
        exists(&h, "alice-active").await,
        "an active request is never deleted"
    );

    h.wait_gone::<JoinRequest>("carol-recent", WAIT).await;
    assert!(exists(&h, "alice-active").await);
    let metrics = h.metrics.encode().expect("metrics");
    assert!(
        metrics.contains("jit_groups_history_deleted_total 2"),
        "{metrics}"
    );
}
