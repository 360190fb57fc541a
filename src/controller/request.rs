//! The JoinRequest reconciler: decides a request by the group's policy, adds the membership
//! with its expiry, and marks the request expired when the time is up.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};

use super::status::apply_status;
use super::{Context, EnvironmentState, Error, group_policy, key, measured, retry_delay};
use crate::api::{JitGroup, JoinRequest, JoinRequestStatus, Phase};
use crate::google::{EnvironmentClient, GoogleError, GroupRef};
use crate::policy::names::check_email;
use crate::policy::{JoinDecision, Subject};

/// Whether the request has reached a final phase.
pub fn is_final(request: &JoinRequest) -> bool {
    request
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(Phase::is_final)
}

pub async fn reconcile(request: Arc<JoinRequest>, ctx: Arc<Context>) -> Result<Action, Error> {
    measured(&ctx, "joinrequest", async {
        // Decisions are taken on a fresh read, never on a possibly stale cache entry, so that
        // a request is approved and granted once.
        let api: Api<JoinRequest> = ctx.api(&request.namespace().unwrap_or_default());
        let Some(request) = api.get_opt(&request.name_any()).await? else {
            return Ok(Action::await_change());
        };
        let phase = request.status.as_ref().and_then(|s| s.phase);
        match phase {
            Some(Phase::Active) => expire_when_due(&request, &ctx).await,
            Some(Phase::Approved) => grant(&request, &ctx).await,
            Some(Phase::Pending) | None => decide(&request, &ctx).await,
            Some(
                Phase::Expired | Phase::Denied | Phase::TimedOut | Phase::Revoked | Phase::Failed,
            ) => Ok(Action::await_change()),
        }
    })
    .await
}

pub fn error_policy(request: Arc<JoinRequest>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(request = %key(request.as_ref()), %error, "reconcile failed");
    Action::requeue(retry_delay(error))
}

/// The Cloud Identity group and the client of the request's environment.
struct Target {
    client: EnvironmentClient,
    group: GroupRef,
}

/// Why a request cannot be decided yet.
struct Wait {
    reason: &'static str,
    message: String,
}

impl Wait {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn status_of(request: &JoinRequest) -> JoinRequestStatus {
    let mut status = request.status.clone().unwrap_or_default();
    status.observed_generation = request.metadata.generation;
    if status.requested_at.is_none() {
        status.requested_at = request
            .metadata
            .creation_timestamp
            .clone()
            .or(Some(Time(now())));
    }
    status
}

/// Writes `status` and publishes an event for the transition.
async fn transition(
    request: &JoinRequest,
    ctx: &Context,
    status: &JoinRequestStatus,
    type_: EventType,
) -> Result<(), Error> {
    let api: Api<JoinRequest> = ctx.api(&request.namespace().unwrap_or_default());
    apply_status(&api, request, status).await?;
    let reason = status.reason.clone().unwrap_or_default();
    let note = status.message.clone().unwrap_or_default();
    tracing::info!(
        request = %key(request),
        phase = ?status.phase,
        reason,
        "request changed phase"
    );
    ctx.publish(&request.object_ref(&()), type_, &reason, note)
        .await;
    Ok(())
}

/// Ends the request in a final `phase`.
async fn finish(
    request: &JoinRequest,
    ctx: &Context,
    mut status: JoinRequestStatus,
    phase: Phase,
    reason: &str,
    message: String,
) -> Result<Action, Error> {
    status.phase = Some(phase);
    status.reason = Some(reason.to_owned());
    status.message = Some(message);
    status.approvers.clear();
    status.finished_at = Some(Time(now()));
    let type_ = match phase {
        Phase::Expired | Phase::Revoked => EventType::Normal,
        _ => EventType::Warning,
    };
    transition(request, ctx, &status, type_).await?;
    Ok(Action::await_change())
}

/// Keeps the request pending with `wait`'s reason; writes only when something changed.
async fn pending(
    request: &JoinRequest,
    ctx: &Context,
    mut status: JoinRequestStatus,
    wait: Wait,
    approvers: Vec<String>,
) -> Result<Action, Error> {
    let previous = request.status.clone().unwrap_or_default();
    status.phase = Some(Phase::Pending);
    status.reason = Some(wait.reason.to_owned());
    status.message = Some(wait.message);
    status.approvers = approvers;
    if status != previous {
        let reason_changed = previous.reason.as_deref() != Some(wait.reason);
        if reason_changed {
            transition(request, ctx, &status, EventType::Normal).await?;
        } else {
            let api: Api<JoinRequest> = ctx.api(&request.namespace().unwrap_or_default());
            apply_status(&api, request, &status).await?;
        }
    }
    Ok(ctx.resync())
}

/// Resolves the request's group, environment and client, or says why it must wait.
async fn target(
    request: &JoinRequest,
    ctx: &Context,
) -> Result<Result<(Target, crate::policy::GroupPolicy), Wait>, Error> {
    let namespace = request.namespace().unwrap_or_default();
    let groups: Api<JitGroup> = ctx.api(&namespace);
    let Some(group) = groups.get_opt(&request.spec.group).await? else {
        return Ok(Err(Wait::new(
            "GroupNotFound",
            format!(
                "JitGroup {} does not exist in namespace {namespace}",
                request.spec.group
            ),
        )));
    };
    let env = match ctx.environment(&namespace).await? {
        EnvironmentState::Valid(env) => env,
        EnvironmentState::Unavailable { reason, message } => {
            return Ok(Err(Wait::new(reason, message)));
        }
    };
    let policy = match group_policy(&env, &group) {
        Ok(policy) => policy,
        Err(errors) => {
            return Ok(Err(Wait::new(
                "GroupInvalid",
                format!("JitGroup {} is invalid: {errors}", request.spec.group),
            )));
        }
    };
    let group_status = group.status.clone().unwrap_or_default();
    let (Some(name), Some(email)) = (group_status.group_name, group_status.email) else {
        return Ok(Err(Wait::new(
            "GroupNotReady",
            format!(
                "the Cloud Identity group of JitGroup {} does not exist yet",
                request.spec.group
            ),
        )));
    };
    let client = ctx.google.for_service_account(&env.service_account);
    Ok(Ok((
        Target {
            client,
            group: GroupRef { name, email },
        },
        policy,
    )))
}

async fn decide(request: &JoinRequest, ctx: &Context) -> Result<Action, Error> {
    let status = status_of(request);
    let requester = request.spec.requester.trim().to_ascii_lowercase();
    if let Err(detail) = check_email(&requester) {
        let message = format!(
            "spec.requester: Invalid value: \"{}\": {detail}",
            request.spec.requester
        );
        return finish(
            request,
            ctx,
            status,
            Phase::Denied,
            "InvalidRequester",
            message,
        )
        .await;
    }

    let (target, policy) = match target(request, ctx).await? {
        Ok(found) => found,
        Err(wait) => return pending(request, ctx, status, wait, Vec::new()).await,
    };

    let mut subject = Subject::user(&requester);
    for group in policy.access.group_principals() {
        match target.client.is_transitive_member(&group, &requester).await {
            Ok(true) => {
                subject.groups.insert(group);
            }
            Ok(false) => {}
            Err(error) => {
                return google_failure(request, ctx, status, "MembershipCheckFailed", error).await;
            }
        }
    }

    match policy.evaluate_join(&subject, request.spec.duration.as_deref()) {
        JoinDecision::Deny(denial) => {
            let reason = denial.reason();
            finish(
                request,
                ctx,
                status,
                Phase::Denied,
                reason,
                denial.to_string(),
            )
            .await
        }
        JoinDecision::AwaitApproval { approvers, .. } => {
            let approvers: Vec<String> = approvers.iter().map(ToString::to_string).collect();
            let message = if approvers.is_empty() {
                format!(
                    "{requester} may join {} but needs approval, and no access entry allows anyone to approve",
                    policy.id
                )
            } else {
                format!(
                    "{requester} may join {} but needs approval by one of: {}",
                    policy.id,
                    approvers.join(", ")
                )
            };
            let wait = Wait::new("ApprovalRequired", message);
            pending(request, ctx, status, wait, approvers).await
        }
        JoinDecision::Approve { duration } => {
            let mut status = status;
            let approved_at = now();
            // Kubernetes keeps timestamps to the second; the membership gets the very same
            // expiry as the status, so that both tell the same story.
            let expires_at = whole_seconds(approved_at + signed(duration));
            status.phase = Some(Phase::Approved);
            status.reason = Some("SelfApproved".to_owned());
            status.message = Some(format!(
                "{requester} holds JOIN and APPROVE_SELF on {}; approved for {}",
                policy.id,
                signed(duration)
            ));
            status.group_email = Some(target.group.email.clone());
            status.granted_duration = Some(signed(duration).to_string());
            status.approvers.clear();
            status.approved_at = Some(Time(approved_at));
            status.expires_at = Some(Time(expires_at));
            transition(request, ctx, &status, EventType::Normal).await?;
            let mut approved = request.clone();
            approved.status = Some(status);
            grant_to(&approved, ctx, &target).await
        }
    }
}

fn whole_seconds(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap_or(at)
}

fn signed(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}

async fn grant(request: &JoinRequest, ctx: &Context) -> Result<Action, Error> {
    match target(request, ctx).await? {
        Ok((target, _)) => grant_to(request, ctx, &target).await,
        Err(wait) => Err(Error::NotYet(wait.message, Duration::from_secs(10))),
    }
}

/// Adds the approved request's membership, never shortening a later expiry that another
/// request of the same person already gave it.
async fn grant_to(request: &JoinRequest, ctx: &Context, target: &Target) -> Result<Action, Error> {
    let mut status = status_of(request);
    let requester = request.spec.requester.trim().to_ascii_lowercase();
    let Some(expires_at) = status.expires_at.as_ref().map(|t| t.0) else {
        // Only an approval writes phase Approved, and it always sets the expiry; a status
        // edited by hand without one is not trusted.
        let message =
            "the request is approved but has no expiry; it is ended to be safe".to_owned();
        return finish(
            request,
            ctx,
            status,
            Phase::Failed,
            "MissingExpiry",
            message,
        )
        .await;
    };
    if expires_at <= now() {
        let message =
            format!("the approval lapsed at {expires_at} before the membership was added");
        return finish(
            request,
            ctx,
            status,
            Phase::Expired,
            "ExpiredBeforeGrant",
            message,
        )
        .await;
    }

    let existing = match target
        .client
        .lookup_membership(&target.group, &requester)
        .await
    {
        Ok(existing) => existing,
        Err(error) => return google_failure(request, ctx, status, "GrantFailed", error).await,
    };
    let keep_later = existing
        .as_ref()
        .and_then(|m| m.expire_time)
        .filter(|t| *t > expires_at);
    let membership_expiry = keep_later.unwrap_or(expires_at);
    let membership = match target
        .client
        .ensure_membership(&target.group, &requester, membership_expiry)
        .await
    {
        Ok(membership) => membership,
        Err(error) => return google_failure(request, ctx, status, "GrantFailed", error).await,
    };

    status.phase = Some(Phase::Active);
    status.reason = Some("Granted".to_owned());
    status.message = Some(format!(
        "{requester} is a member of {} until {expires_at}",
        target.group.email
    ));
    status.granted_at = Some(Time(now()));
    status.membership = Some(membership.name.clone());
    transition(request, ctx, &status, EventType::Normal).await?;
    ctx.metrics.granted();
    Ok(requeue_at(expires_at))
}

/// Marks an active request expired once its time is up, removing the membership unless a
/// later request of the same person extended it.
async fn expire_when_due(request: &JoinRequest, ctx: &Context) -> Result<Action, Error> {
    let status = status_of(request);
    let Some(expires_at) = status.expires_at.as_ref().map(|t| t.0) else {
        let message = "the request is active but has no expiry; it is ended to be safe".to_owned();
        return finish(
            request,
            ctx,
            status,
            Phase::Failed,
            "MissingExpiry",
            message,
        )
        .await;
    };
    if now() < expires_at {
        return Ok(requeue_at(expires_at));
    }

    let requester = request.spec.requester.trim().to_ascii_lowercase();
    match target(request, ctx).await? {
        Ok((target, _)) => {
            let membership = target
                .client
                .lookup_membership(&target.group, &requester)
                .await?;
            let outlives = membership
                .as_ref()
                .and_then(|m| m.expire_time)
                .is_some_and(|t| t > expires_at + SignedDuration::from_secs(1));
            if membership.is_some() && !outlives {
                target
                    .client
                    .remove_membership(&target.group, &requester)
                    .await?;
            }
        }
        Err(wait) => {
            // Without the group or environment the membership cannot be looked at; Cloud
            // Identity removes it at its expiry all the same.
            tracing::info!(request = %key(request), reason = wait.reason, "expiring without checking the membership");
        }
    }
    let message = format!("the membership ended at {expires_at}");
    finish(request, ctx, status, Phase::Expired, "Expired", message).await
}

/// Requeues shortly after `at`, so that the expiry has passed when the reconcile runs.
fn requeue_at(at: Timestamp) -> Action {
    let wait = at.duration_since(now()) + SignedDuration::from_millis(500);
    Action::requeue(Duration::try_from(wait).unwrap_or(Duration::from_millis(500)))
}

/// A transient Google error is retried; a permanent one ends the request as Failed.
async fn google_failure(
    request: &JoinRequest,
    ctx: &Context,
    status: JoinRequestStatus,
    reason: &str,
    error: GoogleError,
) -> Result<Action, Error> {
    if error.is_transient() {
        return Err(error.into());
    }
    finish(
        request,
        ctx,
        status,
        Phase::Failed,
        reason,
        error.full_message(),
    )
    .await
}
