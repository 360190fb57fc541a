//! The JoinRequest reconciler: decides a request by the group's policy and its approvers'
//! decisions, adds or extends the membership with its expiry, marks the request expired when
//! the time is up, and revokes it when it is deleted while active.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, Event};
use kube::{Api, Resource, ResourceExt};

use super::status::apply_status;
use super::{Context, EnvironmentState, Error, group_policy, key, measured, retry_delay};
use crate::api::{Decision, DecisionStatus, JitGroup, JoinRequest, JoinRequestStatus, Phase};
use crate::google::{EnvironmentClient, GoogleError, GroupRef};
use crate::policy::names::check_email;
use crate::policy::{self, EnvironmentPolicy, GroupPolicy, JoinDecision, Subject, Tally};

/// Keeps an approved or active request until its membership is revoked.
pub const FINALIZER: &str = "jitgroups.dev/membership";

/// Whether the request has reached a final phase.
pub fn is_final(request: &JoinRequest) -> bool {
    request.phase().is_some_and(Phase::is_final)
}

pub async fn reconcile(request: Arc<JoinRequest>, ctx: Arc<Context>) -> Result<Action, Error> {
    measured(&ctx, "joinrequest", async {
        // Decisions are taken on a fresh read, never on a possibly stale cache entry, so that
        // a request is approved and granted once.
        let api: Api<JoinRequest> = ctx.api(&request.namespace().unwrap_or_default());
        let Some(request) = api.get_opt(&request.name_any()).await? else {
            return Ok(Action::await_change());
        };
        let request = Arc::new(request);
        finalizer::finalizer(&api, FINALIZER, request.clone(), |event| async {
            match event {
                Event::Apply(request) => apply(&request, &ctx).await,
                Event::Cleanup(request) => revoke(&request, &ctx).await,
            }
        })
        .await
        .map_err(|source| Error::Finalizer {
            object: key(request.as_ref()),
            source: Box::new(source),
        })
    })
    .await
}

pub fn error_policy(request: Arc<JoinRequest>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(request = %key(request.as_ref()), %error, "reconcile failed");
    Action::requeue(retry_delay(error))
}

async fn apply(request: &JoinRequest, ctx: &Context) -> Result<Action, Error> {
    match request.phase() {
        Some(Phase::Active) => expire_when_due(request, ctx).await,
        Some(Phase::Approved) => grant(request, ctx).await,
        Some(Phase::Pending) | None => decide(request, ctx).await,
        Some(Phase::Expired | Phase::Denied | Phase::TimedOut | Phase::Revoked | Phase::Failed) => {
            Ok(Action::await_change())
        }
    }
}

/// Everything a request needs from its group and environment.
struct Target {
    client: EnvironmentClient,
    group: GroupRef,
    policy: GroupPolicy,
    env: EnvironmentPolicy,
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

/// Writes `status` and publishes an event with `reason` for the transition.
async fn transition(
    request: &JoinRequest,
    ctx: &Context,
    status: &JoinRequestStatus,
    type_: EventType,
    reason: &str,
) -> Result<(), Error> {
    let api: Api<JoinRequest> = ctx.api(&request.namespace().unwrap_or_default());
    apply_status(&api, request, status).await?;
    let note = status.message.clone().unwrap_or_default();
    tracing::info!(request = %key(request), phase = ?status.phase, reason, "request changed");
    ctx.publish(&request.object_ref(&()), type_, reason, note)
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
    transition(request, ctx, &status, type_, reason).await?;
    Ok(Action::await_change())
}

/// Keeps the request pending with `wait`'s reason; writes only when something changed, and
/// publishes `event` when the reason is new.
async fn pending(
    request: &JoinRequest,
    ctx: &Context,
    mut status: JoinRequestStatus,
    wait: Wait,
    event: &str,
    next: Action,
) -> Result<Action, Error> {
    let previous = request.status.clone().unwrap_or_default();
    let reason_changed = previous.reason.as_deref() != Some(wait.reason);
    status.phase = Some(Phase::Pending);
    status.reason = Some(wait.reason.to_owned());
    status.message = Some(wait.message);
    if reason_changed {
        transition(request, ctx, &status, EventType::Normal, event).await?;
    } else if status != previous {
        let api: Api<JoinRequest> = ctx.api(&request.namespace().unwrap_or_default());
        apply_status(&api, request, &status).await?;
    }
    Ok(next)
}

/// Resolves the request's group, environment and client, or says why it must wait.
async fn target(request: &JoinRequest, ctx: &Context) -> Result<Result<Target, Wait>, Error> {
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
    Ok(Ok(Target {
        client,
        group: GroupRef { name, email },
        policy,
        env: *env,
    }))
}

/// `email` with the groups named by the policy's `group:` principals that it belongs to.
async fn subject(target: &Target, email: &str) -> Result<Subject, GoogleError> {
    let mut subject = Subject::user(email);
    for group in target.policy.access.group_principals() {
        if target.client.is_transitive_member(&group, email).await? {
            subject.groups.insert(group);
        }
    }
    Ok(subject)
}

/// Judges the decisions recorded in the spec; returns them as status entries and the tally.
async fn judge_decisions(
    request: &JoinRequest,
    target: &Target,
) -> Result<(Vec<DecisionStatus>, Tally), GoogleError> {
    let requester = request.requester_email();
    let mut subjects = Vec::with_capacity(request.spec.approvals.len());
    for approval in &request.spec.approvals {
        let approver = approval
            .approver
            .as_deref()
            .map(|a| a.trim().to_ascii_lowercase());
        subjects.push(match approver {
            Some(email) => Some(subject(target, &email).await?),
            None => None,
        });
    }
    let decisions: Vec<policy::Decision<'_>> = request
        .spec
        .approvals
        .iter()
        .zip(&subjects)
        .map(|(approval, subject)| policy::Decision {
            approver: subject.as_ref(),
            approve: approval.decision == Decision::Approve,
        })
        .collect();
    let (judgements, tally) = target.policy.tally(&requester, &decisions);
    let statuses = request
        .spec
        .approvals
        .iter()
        .zip(judgements)
        .map(|(approval, judgement)| DecisionStatus {
            approver: approval.approver.clone().unwrap_or_default(),
            decision: approval.decision,
            decided_at: approval.decided_at.clone(),
            counted: judgement.counted,
            reason: judgement.reason,
        })
        .collect();
    Ok((statuses, tally))
}

async fn decide(request: &JoinRequest, ctx: &Context) -> Result<Action, Error> {
    let mut status = status_of(request);
    let requester = request.requester_email();
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

    let target = match target(request, ctx).await? {
        Ok(target) => target,
        Err(wait) => {
            let event = wait.reason;
            return pending(request, ctx, status, wait, event, ctx.resync()).await;
        }
    };
    let requester_subject = match subject(&target, &requester).await {
        Ok(subject) => subject,
        Err(error) => {
            return google_failure(request, ctx, status, "MembershipCheckFailed", error).await;
        }
    };
    let (decisions, tally) = match judge_decisions(request, &target).await {
        Ok(judged) => judged,
        Err(error) => {
            return google_failure(request, ctx, status, "MembershipCheckFailed", error).await;
        }
    };
    status.decisions = decisions;
    let id = &target.policy.id;

    match target
        .policy
        .evaluate_join(&requester_subject, request.spec.duration.as_deref())
    {
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
        JoinDecision::Approve { duration } => {
            let message = format!(
                "{requester} holds JOIN and APPROVE_SELF on {id}; approved for {}",
                signed(duration)
            );
            approve(
                request,
                ctx,
                status,
                &target,
                duration,
                "SelfApproved",
                message,
            )
            .await
        }
        JoinDecision::AwaitApproval {
            duration,
            approvers,
        } => match tally {
            Tally::Approved { approvers } => {
                let message = format!(
                    "approved by {} for {}",
                    approvers.join(", "),
                    signed(duration)
                );
                approve(request, ctx, status, &target, duration, "Approved", message).await
            }
            Tally::Denied { by } => {
                let comment = request
                    .spec
                    .approvals
                    .iter()
                    .filter(|a| a.decision == Decision::Deny)
                    .find(|a| {
                        a.approver
                            .as_deref()
                            .is_some_and(|x| x.eq_ignore_ascii_case(&by))
                    })
                    .and_then(|a| a.comment.clone());
                let message = match comment {
                    Some(comment) => format!("denied by {by}: {comment}"),
                    None => format!("denied by {by}"),
                };
                finish(
                    request,
                    ctx,
                    status,
                    Phase::Denied,
                    "DeniedByApprover",
                    message,
                )
                .await
            }
            Tally::Waiting { approvals, needed } => {
                let timeout = target.env.approval_timeout;
                let since = status
                    .requested_at
                    .as_ref()
                    .map(|t| t.0)
                    .unwrap_or_else(now);
                let deadline = since + signed(timeout);
                if now() >= deadline {
                    let message = format!(
                        "no decision within {} (the environment's approvalTimeout)",
                        signed(timeout)
                    );
                    return finish(request, ctx, status, Phase::TimedOut, "TimedOut", message)
                        .await;
                }
                let approvers: Vec<String> = approvers.iter().map(ToString::to_string).collect();
                status.approvers = approvers.clone();
                let missing = needed as usize - approvals;
                let message = if approvers.is_empty() {
                    format!(
                        "{requester} may join {id} but needs approval, and no access entry \
                         allows anyone to approve"
                    )
                } else {
                    format!(
                        "{requester} may join {id} but needs {missing} more approval(s) by one \
                         of: {}; waiting until {deadline}",
                        approvers.join(", ")
                    )
                };
                let wait = Wait::new("ApprovalRequired", message);
                let next = requeue_at(deadline, ctx);
                pending(request, ctx, status, wait, "ApprovalRequested", next).await
            }
        },
    }
}

/// Records the approval, then adds the membership.
async fn approve(
    request: &JoinRequest,
    ctx: &Context,
    mut status: JoinRequestStatus,
    target: &Target,
    duration: Duration,
    reason: &str,
    message: String,
) -> Result<Action, Error> {
    let approved_at = now();
    // Kubernetes keeps timestamps to the second; the membership gets the very same expiry as
    // the status, so that both tell the same story.
    let expires_at = whole_seconds(approved_at + signed(duration));
    status.phase = Some(Phase::Approved);
    status.reason = Some(reason.to_owned());
    status.message = Some(message);
    status.group_email = Some(target.group.email.clone());
    status.granted_duration = Some(signed(duration).to_string());
    status.approvers.clear();
    status.approved_at = Some(Time(approved_at));
    status.expires_at = Some(Time(expires_at));
    transition(request, ctx, &status, EventType::Normal, reason).await?;
    let mut approved = request.clone();
    approved.status = Some(status);
    grant_to(&approved, ctx, target).await
}

fn whole_seconds(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap_or(at)
}

fn signed(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}

async fn grant(request: &JoinRequest, ctx: &Context) -> Result<Action, Error> {
    match target(request, ctx).await? {
        Ok(target) => grant_to(request, ctx, &target).await,
        Err(wait) => Err(Error::NotYet(wait.message, Duration::from_secs(10))),
    }
}

/// The latest expiry among the other approved or active requests of the same person for the
/// same group; their memberships are one and the same.
async fn latest_other_expiry(
    request: &JoinRequest,
    ctx: &Context,
) -> Result<Option<Timestamp>, Error> {
    let api: Api<JoinRequest> = ctx.api(&request.namespace().unwrap_or_default());
    let requester = request.requester_email();
    let uid = request.uid();
    let others = api.list(&Default::default()).await?.items;
    Ok(others
        .iter()
        .filter(|r| r.uid() != uid && r.metadata.deletion_timestamp.is_none())
        .filter(|r| r.spec.group == request.spec.group && r.requester_email() == requester)
        .filter(|r| matches!(r.phase(), Some(Phase::Active | Phase::Approved)))
        .filter_map(|r| {
            r.status
                .as_ref()
                .and_then(|s| s.expires_at.as_ref())
                .map(|t| t.0)
        })
        .filter(|t| *t > now())
        .max())
}

/// Adds the approved request's membership or extends it: the membership lasts until the
/// latest expiry among the person's approved and active requests for the group, and a grant
/// never shortens it.
async fn grant_to(request: &JoinRequest, ctx: &Context, target: &Target) -> Result<Action, Error> {
    let mut status = status_of(request);
    let requester = request.requester_email();
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
    let others = latest_other_expiry(request, ctx).await?;
    let current = existing.as_ref().and_then(|m| m.expire_time);
    let membership_expiry = [Some(expires_at), others, current]
        .into_iter()
        .flatten()
        .max();
    let membership_expiry = membership_expiry.unwrap_or(expires_at);
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
    status.message = Some(if membership_expiry > expires_at {
        format!(
            "{requester} is a member of {} until {membership_expiry}; this request lasts until \
             {expires_at}",
            target.group.email
        )
    } else {
        format!(
            "{requester} is a member of {} until {expires_at}",
            target.group.email
        )
    });
    status.granted_at = Some(Time(now()));
    status.membership = Some(membership.name.clone());
    transition(request, ctx, &status, EventType::Normal, "Granted").await?;
    ctx.metrics.granted();
    Ok(requeue_at(expires_at, ctx))
}

/// Marks an active request expired once its time is up, removing the membership unless
/// another request of the same person extended it.
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
        return Ok(requeue_at(expires_at, ctx));
    }

    let requester = request.requester_email();
    match target(request, ctx).await? {
        Ok(target) => {
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
            tracing::info!(
                request = %key(request),
                reason = wait.reason,
                "expiring without checking the membership"
            );
        }
    }
    let message = format!("the membership ended at {expires_at}");
    finish(request, ctx, status, Phase::Expired, "Expired", message).await
}

/// A deleted request: an approved or active one is revoked, and the membership is shortened
/// to the latest expiry of the person's other requests for the group, or removed when none
/// is left; a pending one is withdrawn.
async fn revoke(request: &JoinRequest, ctx: &Context) -> Result<Action, Error> {
    let status = status_of(request);
    match request.phase() {
        Some(Phase::Active | Phase::Approved) => {}
        Some(Phase::Pending) | None => {
            let note = format!("{} withdrew the request", request.requester_email());
            ctx.publish(
                &request.object_ref(&()),
                EventType::Normal,
                "Withdrawn",
                note,
            )
            .await;
            return Ok(Action::await_change());
        }
        Some(_) => return Ok(Action::await_change()),
    }

    let requester = request.requester_email();
    let message = match target(request, ctx).await? {
        Ok(target) => {
            let others = latest_other_expiry(request, ctx).await?;
            match others {
                Some(until) => {
                    target
                        .client
                        .ensure_membership(&target.group, &requester, until)
                        .await?;
                    format!(
                        "revoked; {requester} stays a member of {} until {until} through \
                         another request",
                        target.group.email
                    )
                }
                None => {
                    target
                        .client
                        .remove_membership(&target.group, &requester)
                        .await?;
                    format!(
                        "revoked; {requester} is no longer a member of {}",
                        target.group.email
                    )
                }
            }
        }
        Err(wait) => format!(
            "revoked, but the membership could not be removed ({}); Cloud Identity removes it \
             at its expiry",
            wait.message
        ),
    };
    finish(request, ctx, status, Phase::Revoked, "Revoked", message).await
}

/// Requeues shortly after `at`, so that the time has passed when the reconcile runs, or at
/// the next resync if that comes first.
fn requeue_at(at: Timestamp, ctx: &Context) -> Action {
    let wait = at.duration_since(now()) + SignedDuration::from_millis(500);
    let wait = Duration::try_from(wait).unwrap_or(Duration::from_millis(500));
    Action::requeue(wait.min(ctx.resync_delay()))
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
