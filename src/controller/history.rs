//! History retention: finished JoinRequests are deleted once they have been finished for
//! longer than the retention, so that the namespace does not fill up with old requests.
//!
//! A request counts as finished when its phase is final and `status.finishedAt` is set; the
//! retention runs from that time. Requests in a final phase without `finishedAt` are kept.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, ListParams, Preconditions};
use kube::{Api, ResourceExt};

use super::{key, scoped};
use crate::api::JoinRequest;
use crate::metrics::Metrics;

/// Requests listed per page.
const PAGE_SIZE: u32 = 500;

/// How often the history is swept for a given retention: a quarter of it, at least every
/// second and at most every five minutes, so a request outlives its retention by little.
pub fn sweep_interval(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(300))
}

/// When a finished request may be deleted; `None` for a request that is not finished.
fn deletable_at(request: &JoinRequest, retention: Duration) -> Option<Timestamp> {
    let status = request.status.as_ref()?;
    if !status.phase.is_some_and(|p| p.is_final()) {
        return None;
    }
    let finished = status.finished_at.as_ref()?.0;
    let retention = SignedDuration::try_from(retention).unwrap_or(SignedDuration::MAX);
    Some(finished.checked_add(retention).unwrap_or(Timestamp::MAX))
}

/// Sweeps the history every [`sweep_interval`] until the task is dropped.
pub async fn run(
    client: kube::Client,
    namespace: Option<String>,
    retention: Duration,
    metrics: std::sync::Arc<Metrics>,
) {
    let api: Api<JoinRequest> = scoped(&client, &namespace);
    let interval = sweep_interval(retention);
    tracing::info!(
        retention = %humantime(retention),
        interval = %humantime(interval),
        "deleting finished join requests after the history retention"
    );
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = sweep(&client, &api, retention, &metrics).await {
            tracing::warn!(%error, "could not sweep finished join requests; trying again later");
        }
    }
}

/// Deletes every finished request whose retention has passed; returns how many were deleted.
async fn sweep(
    client: &kube::Client,
    api: &Api<JoinRequest>,
    retention: Duration,
    metrics: &Metrics,
) -> Result<usize, kube::Error> {
    let mut deleted = 0;
    let mut params = ListParams::default().limit(PAGE_SIZE);
    loop {
        let page = api.list(&params).await?;
        let now = Timestamp::now();
        for request in &page.items {
            let Some(due) = deletable_at(request, retention) else {
                continue;
            };
            if due > now {
                continue;
            }
            if delete(client, request, retention).await {
                metrics.history_deleted();
                deleted += 1;
            }
        }
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(deleted),
        }
    }
}

/// Deletes `request` unless it changed since it was listed; says whether it did.
async fn delete(client: &kube::Client, request: &JoinRequest, retention: Duration) -> bool {
    let namespace = request.namespace().unwrap_or_default();
    let api: Api<JoinRequest> = Api::namespaced(client.clone(), &namespace);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: request.uid(),
            resource_version: request.resource_version(),
        }),
        ..DeleteParams::default()
    };
    let status = request.status.clone().unwrap_or_default();
    match api.delete(&request.name_any(), &params).await {
        Ok(_) => {
            tracing::info!(
                request = %key(request),
                group = %request.spec.group,
                requester = %request.spec.requester,
                phase = ?status.phase,
                finished_at = ?status.finished_at.map(|t| t.0),
                retention = %humantime(retention),
                "deleted finished join request after the history retention"
            );
            true
        }
        Err(kube::Error::Api(response)) if response.code == 404 || response.code == 409 => {
            tracing::debug!(
                request = %key(request),
                code = response.code,
                "finished join request changed or went away before it could be deleted"
            );
            false
        }
        Err(error) => {
            tracing::warn!(
                request = %key(request),
                %error,
                "could not delete finished join request"
            );
            false
        }
    }
}

/// A duration as the ISO-8601 text people write in flags, e.g. `PT720H`.
fn humantime(duration: Duration) -> String {
    SignedDuration::try_from(duration)
        .map(|d| d.to_string())
        .unwrap_or_else(|_| format!("{}s", duration.as_secs()))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::{JoinRequestStatus, Phase};

    fn finished(phase: Phase, finished_at: Option<&str>) -> JoinRequest {
        let mut request = JoinRequest::new("r", Default::default());
        request.status = Some(JoinRequestStatus {
            phase: Some(phase),
            finished_at: finished_at.map(|t| Time(t.parse().expect("timestamp"))),
            ..JoinRequestStatus::default()
        });
        request
    }

    #[test]
    fn a_finished_request_may_be_deleted_once_its_retention_has_passed_since_it_finished() {
        let request = finished(Phase::Expired, Some("2030-01-01T00:00:00Z"));

        let due = deletable_at(&request, Duration::from_secs(30 * 24 * 3600));

        assert_eq!(
            due,
            Some("2030-01-31T00:00:00Z".parse().expect("timestamp"))
        );
    }

    #[test]
    fn requests_that_are_not_finished_or_have_no_finish_time_are_never_deleted() {
        let retention = Duration::from_secs(1);
        for phase in [Phase::Pending, Phase::Approved, Phase::Active] {
            let request = finished(phase, Some("2020-01-01T00:00:00Z"));
            assert_eq!(deletable_at(&request, retention), None, "{phase}");
        }
        assert_eq!(
            deletable_at(&finished(Phase::Denied, None), retention),
            None
        );
        assert_eq!(
            deletable_at(&JoinRequest::new("r", Default::default()), retention),
            None
        );
    }

    #[test]
    fn every_final_phase_counts_as_finished() {
        for phase in [
            Phase::Expired,
            Phase::Denied,
            Phase::TimedOut,
            Phase::Revoked,
            Phase::Failed,
        ] {
            let request = finished(phase, Some("2020-01-01T00:00:00Z"));
            assert!(
                deletable_at(&request, Duration::from_secs(1)).is_some(),
                "{phase}"
            );
        }
    }

    #[test]
    fn the_sweep_runs_often_for_short_retentions_and_every_five_minutes_for_long_ones() {
        assert_eq!(
            sweep_interval(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(60)),
            Duration::from_secs(15)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(30 * 24 * 3600)),
            Duration::from_secs(300)
        );
    }
}
