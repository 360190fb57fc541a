//! The JitGroup reconciler: ensures the Cloud Identity security group and makes the group's
//! IAM bindings on every resource exactly those its privileges list.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, Event};
use kube::{Api, Resource, ResourceExt};

use super::status::{apply_status, set_condition};
use super::{Context, EnvironmentState, Error, group_policy, key, measured, retry_delay};
use crate::api::{
    JitEnvironment, JitGroup, JitGroupStatus, JoinRequest, Phase, READY, UnmanagedMembers,
};
use crate::google::{self, DesiredBinding, EnvironmentClient, GoogleError, GroupRef};
use crate::policy::{GroupPolicy, ResourceName, RoleBinding};

/// Keeps a group until its bindings are removed.
pub const FINALIZER: &str = "jitgroups.dev/bindings";

pub async fn reconcile(group: Arc<JitGroup>, ctx: Arc<Context>) -> Result<Action, Error> {
    measured(&ctx, "jitgroup", async {
        let api: Api<JitGroup> = ctx.api(&group.namespace().unwrap_or_default());
        finalizer::finalizer(&api, FINALIZER, group.clone(), |event| async {
            match event {
                Event::Apply(group) => apply(&group, &ctx).await,
                Event::Cleanup(group) => cleanup(&group, &ctx).await,
            }
        })
        .await
        .map_err(|source| Error::Finalizer {
            object: key(group.as_ref()),
            source: Box::new(source),
        })
    })
    .await
}

pub fn error_policy(group: Arc<JitGroup>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(group = %key(group.as_ref()), %error, "reconcile failed");
    Action::requeue(retry_delay(error))
}

/// The outcome of making the bindings match on every resource.
#[derive(Default)]
struct BindingReport {
    /// Resources whose bindings now match a non-empty desired set.
    bound: BTreeSet<String>,
    /// Resources whose bindings could not be made to match, with the error.
    failed: Vec<(String, GoogleError)>,
    /// How many bindings were added and removed, for the event.
    added: usize,
    removed: usize,
}

async fn apply(group: &JitGroup, ctx: &Context) -> Result<Action, Error> {
    let namespace = group.namespace().unwrap_or_default();
    let generation = group.metadata.generation;
    let previous = group.status.clone().unwrap_or_default();
    let mut status = previous.clone();
    status.observed_generation = generation;

    let env = match ctx.environment(&namespace).await? {
        EnvironmentState::Valid(env) => env,
        EnvironmentState::Unavailable { reason, message } => {
            return not_ready(group, ctx, status, reason, message).await;
        }
    };
    let policy = match group_policy(&env, group) {
        Ok(policy) => policy,
        Err(errors) => {
            let message = format!(
                "{errors}; the group's bindings and memberships are left as they were until the \
                 spec is fixed"
            );
            return not_ready(group, ctx, status, "InvalidSpec", message).await;
        }
    };
    let client = ctx.google.for_service_account(&env.service_account);

    let description = group.spec.description.clone().unwrap_or_default();
    let display_name = format!("JIT group {}", policy.id);
    let cloud_group = match client
        .ensure_security_group(&env.customer_id, &policy.email, &display_name, &description)
        .await
    {
        Ok(cloud_group) => cloud_group,
        Err(error) if error.is_transient() => return Err(error.into()),
        Err(error) => {
            let message = format!(
                "cannot create group {}: {}",
                policy.email,
                error.full_message()
            );
            status.last_error = Some(message.clone());
            return not_ready(group, ctx, status, "GroupCreationFailed", message).await;
        }
    };
    status.email = Some(cloud_group.email.clone());
    status.group_name = Some(cloud_group.name.clone());

    let report = reconcile_bindings(&client, &policy, &previous.bound_resources).await;
    status.bound_resources = report.bound.iter().cloned().collect();
    let mut transient = report
        .failed
        .iter()
        .find(|(_, e)| e.is_transient())
        .map(|(r, e)| (r.clone(), e.label()));
    let failures: Vec<String> = report
        .failed
        .iter()
        .map(|(resource, e)| format!("{resource}: {}", e.full_message()))
        .collect();

    let members =
        reconcile_members(group, ctx, &client, &cloud_group, &env.service_account).await?;
    if let Some(error) = members.error.as_ref().filter(|e| e.is_transient()) {
        transient.get_or_insert((format!("members of {}", cloud_group.email), error.label()));
    }

    if failures.is_empty() {
        status.last_error = members.error.as_ref().map(|e| {
            format!(
                "members of {} could not be checked: {}",
                cloud_group.email,
                e.full_message()
            )
        });
        let message = format!(
            "group {} holds {} binding(s) on {} resource(s)",
            cloud_group.email,
            policy.bindings.values().map(BTreeSet::len).sum::<usize>(),
            policy.bindings.len()
        );
        set_condition(
            &mut status.conditions,
            READY,
            true,
            "Reconciled",
            message,
            generation,
        );
    } else {
        let message = format!(
            "bindings could not be made to match: {}",
            failures.join("; ")
        );
        status.last_error = Some(message.clone());
        set_condition(
            &mut status.conditions,
            READY,
            false,
            "BindingsFailed",
            message,
            generation,
        );
    }
    write_status(group, ctx, &previous, &status).await?;

    if report.added + report.removed > 0 {
        let note = format!(
            "added {} and removed {} binding(s) of group:{}",
            report.added, report.removed, cloud_group.email
        );
        ctx.publish(
            &group.object_ref(&()),
            EventType::Normal,
            "BindingsUpdated",
            note,
        )
        .await;
    }
    members.publish(group, ctx, &cloud_group).await;
    tracing::info!(
        group = %key(group),
        email = %cloud_group.email,
        added = report.added,
        removed = report.removed,
        failed = report.failed.len(),
        unmanaged_removed = members.removed.len(),
        unmanaged_reported = members.reported.len(),
        "reconciled group"
    );
    if let Some((resource, label)) = transient {
        return Err(Error::NotYet(
            format!("transient error ({label}) on {resource}"),
            Duration::from_secs(5),
        ));
    }
    Ok(ctx.resync())
}

/// Makes the group's bindings on every desired resource, and on every resource it was bound
/// to before, exactly the desired ones. One resource failing does not stop the others.
async fn reconcile_bindings(
    client: &EnvironmentClient,
    policy: &GroupPolicy,
    previously_bound: &[String],
) -> BindingReport {
    let member = format!("group:{}", policy.email);
    let mut resources: BTreeSet<String> = policy
        .bindings
        .keys()
        .map(|r| r.as_str().to_owned())
        .collect();
    resources.extend(previously_bound.iter().cloned());

    let mut report = BindingReport::default();
    for resource in resources {
        let target = match resource.parse::<ResourceName>() {
            Ok(target) => target,
            Err(error) => {
                tracing::warn!(%resource, %error, "skipping a resource name Google would refuse");
                continue;
            }
        };
        let desired: Vec<DesiredBinding> = policy
            .bindings
            .get(&target)
            .map(|set| set.iter().map(desired_binding).collect())
            .unwrap_or_default();
        match client.reconcile_bindings(&target, &member, &desired).await {
            Ok(change) => {
                report.added += change.added.len();
                report.removed += change.removed.len();
                if !desired.is_empty() {
                    report.bound.insert(resource);
                }
            }
            Err(error) => {
                // A resource that could not be cleaned up stays listed, so that the next
                // attempt removes its bindings.
                report.bound.insert(resource.clone());
                report.failed.push((resource, error));
            }
        }
    }
    report
}

/// What became of the members of a group that no request accounts for.
#[derive(Default)]
struct MemberReport {
    /// Members removed, in lower case.
    removed: Vec<String>,
    /// Members left in place because the environment only reports them.
    reported: Vec<String>,
    /// Members removed and then put back, because a request for them was approved while they
    /// were being removed, with that request's expiry.
    restored: Vec<(String, Timestamp)>,
    /// The Google error that stopped the check, if one did.
    error: Option<GoogleError>,
}

impl MemberReport {
    /// Publishes one event per member found, removed or put back.
    async fn publish(&self, group: &JitGroup, ctx: &Context, cloud_group: &GroupRef) {
        let object = group.object_ref(&());
        for member in &self.removed {
            let note = format!(
                "removed {member} from {}: no Approved or Active JoinRequest accounts for the \
                 membership",
                cloud_group.email
            );
            let (type_, reason) = (EventType::Warning, "UnmanagedMemberRemoved");
            publish_about_member(ctx, &object, type_, reason, "Remove", member, note).await;
        }
        for member in &self.reported {
            let note = format!(
                "{member} is a member of {} but no Approved or Active JoinRequest accounts for \
                 the membership; it is kept because the environment's unmanagedMembers is Report",
                cloud_group.email
            );
            let (type_, reason) = (EventType::Warning, "UnmanagedMemberFound");
            publish_about_member(ctx, &object, type_, reason, "Report", member, note).await;
        }
        for (member, expiry) in &self.restored {
            let note = format!(
                "put {member} back into {} until {expiry}: a JoinRequest for them was approved \
                 while the membership was being removed",
                cloud_group.email
            );
            let (type_, reason) = (EventType::Normal, "MembershipRestored");
            publish_about_member(ctx, &object, type_, reason, "Restore", member, note).await;
        }
    }
}

/// Publishes an event about one member of a group. Its action names the member: the recorder
/// folds the events of one object with the same reason and action into a series that keeps
/// the first note, which would otherwise show the first member's name for all of them.
async fn publish_about_member(
    ctx: &Context,
    object: &ObjectReference,
    type_: EventType,
    reason: &str,
    verb: &str,
    member: &str,
    note: String,
) {
    let mut action = format!("{verb} {member}");
    while action.len() > 128 {
        action.pop();
    }
    let event = kube::runtime::events::Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action,
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, object).await {
        tracing::warn!(
            object = object.name.as_deref().unwrap_or_default(),
            reason,
            member,
            %error,
            "could not publish event"
        );
    }
}

/// Whether `request` accounts for its requester's membership of the JitGroup `group` at
/// `now`: an Approved request (its membership is being written) or an Active one does, and
/// so does any request not yet finished whose status records an expiry still to come, since
/// the expiry is written before the membership.
fn accounts_for(request: &JoinRequest, group: &str, now: Timestamp) -> bool {
    if request.spec.group != group {
        return false;
    }
    let Some(status) = &request.status else {
        return false;
    };
    match status.phase {
        Some(Phase::Approved | Phase::Active) => true,
        Some(phase) if phase.is_final() => false,
        _ => status.expires_at.as_ref().is_some_and(|t| t.0 > now),
    }
}

/// The members the requests account for, in lower case, each with the latest expiry that
/// an accounting request records (if any).
fn accounted_members(
    requests: &[JoinRequest],
    group: &str,
    now: Timestamp,
) -> BTreeMap<String, Option<Timestamp>> {
    let mut members: BTreeMap<String, Option<Timestamp>> = BTreeMap::new();
    for request in requests.iter().filter(|r| accounts_for(r, group, now)) {
        let member = request.requester_email();
        let expiry = request
            .status
            .as_ref()
            .and_then(|s| s.expires_at.as_ref())
            .map(|t| t.0);
        let latest = members.entry(member).or_default();
        *latest = (*latest).max(expiry);
    }
    members
}

/// The members that JoinRequests of the JitGroup account for, read from the API server
/// rather than a cache, so that a request approved a moment ago counts.
async fn read_accounted(
    ctx: &Context,
    namespace: &str,
    group: &str,
) -> Result<BTreeMap<String, Option<Timestamp>>, Error> {
    let api: Api<JoinRequest> = ctx.api(namespace);
    let requests = api.list(&Default::default()).await?.items;
    Ok(accounted_members(&requests, group, Timestamp::now()))
}

/// What the environment of `namespace` says to do with unmanaged members. When it cannot be
/// told (no single environment), members are only reported: removing is never a default
/// taken in doubt.
async fn unmanaged_policy(ctx: &Context, namespace: &str) -> Result<UnmanagedMembers, Error> {
    let api: Api<JitEnvironment> = ctx.api(namespace);
    let mut environments = api.list(&Default::default()).await?.items;
    environments.retain(|e| e.metadata.deletion_timestamp.is_none());
    Ok(match environments.as_slice() {
        [env] => env.spec.unmanaged_members.unwrap_or_default(),
        _ => UnmanagedMembers::Report,
    })
}

/// Finds the members of the Cloud Identity group that no JoinRequest accounts for, and
/// removes or reports them as the environment says. The environment's own service account
/// is never counted as a member to remove.
///
/// The memberships are listed before the requests are read. A membership is only ever
/// added after its request was written as Approved, so every membership seen in the list
/// has its request visible in the read that follows. A request approved after that read is
/// caught by a second read after the removals, which puts back any membership it needs. That
/// second read is made by this process only: a leader that loses its Lease between a removal
/// and the read does not make it.
async fn reconcile_members(
    group: &JitGroup,
    ctx: &Context,
    client: &EnvironmentClient,
    cloud_group: &GroupRef,
    service_account: &str,
) -> Result<MemberReport, Error> {
    let mut report = MemberReport::default();
    let namespace = group.namespace().unwrap_or_default();
    let name = group.name_any();

    let memberships = match client.list_memberships(cloud_group).await {
        Ok(memberships) => memberships,
        Err(error) => {
            report.error = Some(error);
            return Ok(report);
        }
    };
    let own = service_account.to_ascii_lowercase();
    let members: BTreeSet<String> = memberships
        .iter()
        .map(|m| m.member.to_ascii_lowercase())
        .filter(|m| *m != own)
        .collect();
    if members.is_empty() {
        return Ok(report);
    }

    let accounted = read_accounted(ctx, &namespace, &name).await?;
    let unmanaged: Vec<String> = members
        .into_iter()
        .filter(|m| !accounted.contains_key(m))
        .collect();
    if unmanaged.is_empty() {
        return Ok(report);
    }

    if unmanaged_policy(ctx, &namespace).await? == UnmanagedMembers::Report {
        for member in unmanaged {
            tracing::warn!(
                group = %key(group),
                email = %cloud_group.email,
                %member,
                "unmanaged member found and kept"
            );
            ctx.metrics.unmanaged_member_reported();
            report.reported.push(member);
        }
        return Ok(report);
    }

    // Members whose removal was confirmed (true) or failed in a way that may still have
    // removed them, such as a lost answer (false).
    let mut removed: Vec<(String, bool)> = Vec::new();
    for member in unmanaged {
        // A last look right before each removal narrows the window in which a request can be
        // approved unseen; the read after the removals closes it.
        if read_accounted(ctx, &namespace, &name)
            .await?
            .contains_key(&member)
        {
            continue;
        }
        match client.remove_membership(cloud_group, &member).await {
            Ok(true) => removed.push((member, true)),
            Ok(false) => {}
            Err(error) => {
                removed.push((member, false));
                report.error = Some(error);
                break;
            }
        }
    }
    if removed.is_empty() {
        return Ok(report);
    }

    let accounted = read_after_removal(ctx, &namespace, &name).await?;
    for (member, confirmed) in removed {
        match accounted.get(&member) {
            None if !confirmed => {}
            None => {
                tracing::warn!(
                    group = %key(group),
                    email = %cloud_group.email,
                    %member,
                    "removed unmanaged member"
                );
                ctx.metrics.unmanaged_member_removed();
                report.removed.push(member);
            }
            Some(expiry) => {
                let Some(expiry) = expiry.filter(|t| *t > Timestamp::now()) else {
                    tracing::info!(
                        group = %key(group),
                        %member,
                        "a request for a removed member appeared without an expiry to come; \
                         nothing to put back"
                    );
                    continue;
                };
                match client.ensure_membership(cloud_group, &member, expiry).await {
                    Ok(_) => {
                        tracing::info!(
                            group = %key(group),
                            %member,
                            %expiry,
                            "put back membership of a request approved during its removal"
                        );
                        report.restored.push((member, expiry));
                    }
                    Err(error) => {
                        report.error.get_or_insert(error);
                    }
                }
            }
        }
    }
    Ok(report)
}

/// [`read_accounted`], tried a few times: after a removal its answer decides whether a
/// membership that a request needs must be put back.
async fn read_after_removal(
    ctx: &Context,
    namespace: &str,
    group: &str,
) -> Result<BTreeMap<String, Option<Timestamp>>, Error> {
    let mut attempt = 1;
    loop {
        match read_accounted(ctx, namespace, group).await {
            Ok(accounted) => return Ok(accounted),
            Err(error) if attempt < 4 => {
                tracing::warn!(
                    %namespace,
                    group,
                    %error,
                    attempt,
                    "could not read requests after removing members; retrying"
                );
                tokio::time::sleep(Duration::from_millis(250 * attempt)).await;
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

fn desired_binding(binding: &RoleBinding) -> DesiredBinding {
    match &binding.condition {
        None => DesiredBinding::unconditional(binding.role.clone()),
        Some(c) => DesiredBinding::conditional(
            binding.role.clone(),
            google::Condition {
                expression: c.expression.clone(),
                title: c.title.clone(),
                description: (!c.description.is_empty()).then(|| c.description.clone()),
            },
        ),
    }
}

async fn not_ready(
    group: &JitGroup,
    ctx: &Context,
    mut status: JitGroupStatus,
    reason: &str,
    message: String,
) -> Result<Action, Error> {
    let previous = group.status.clone().unwrap_or_default();
    set_condition(
        &mut status.conditions,
        READY,
        false,
        reason,
        message.clone(),
        status.observed_generation,
    );
    let changed = write_status(group, ctx, &previous, &status).await?;
    if changed {
        ctx.publish(&group.object_ref(&()), EventType::Warning, reason, message)
            .await;
    }
    tracing::info!(group = %key(group), reason, "group not ready");
    Ok(ctx.resync())
}

/// Writes the status when it differs from `previous`; says whether it did.
async fn write_status(
    group: &JitGroup,
    ctx: &Context,
    previous: &JitGroupStatus,
    status: &JitGroupStatus,
) -> Result<bool, Error> {
    if status == previous {
        return Ok(false);
    }
    let api: Api<JitGroup> = ctx.api(&group.namespace().unwrap_or_default());
    apply_status(&api, group, status).await?;
    Ok(true)
}

async fn cleanup(group: &JitGroup, ctx: &Context) -> Result<Action, Error> {
    let namespace = group.namespace().unwrap_or_default();
    let status = group.status.clone().unwrap_or_default();
    let env = match ctx.environment(&namespace).await? {
        EnvironmentState::Valid(env) => env,
        EnvironmentState::Unavailable { reason, message } => {
            let note = format!(
                "cannot remove the bindings of {}: {message}; they stay until the environment is \
                 fixed",
                group.name_any()
            );
            ctx.publish(
                &group.object_ref(&()),
                EventType::Warning,
                reason,
                note.clone(),
            )
            .await;
            return Err(Error::NotYet(note, Duration::from_secs(30)));
        }
    };
    let Some(email) = status
        .email
        .clone()
        .or_else(|| group_policy(&env, group).ok().map(|p| p.email))
    else {
        return Ok(Action::await_change());
    };
    let client = ctx.google.for_service_account(&env.service_account);
    let member = format!("group:{email}");
    let mut resources: BTreeSet<String> = status.bound_resources.iter().cloned().collect();
    resources.extend(group.spec.privileges.iam.iter().map(|p| p.resource.clone()));

    let mut removed = 0;
    for resource in resources {
        let Ok(target) = resource.parse::<ResourceName>() else {
            continue;
        };
        let change = client.remove_all_bindings(&target, &member).await?;
        removed += change.removed.len();
    }
    let note = format!("removed {removed} binding(s) of group:{email}; the group is deleted");
    ctx.publish(
        &group.object_ref(&()),
        EventType::Normal,
        "BindingsRemoved",
        note,
    )
    .await;
    tracing::info!(group = %key(group), %email, removed, "removed bindings of deleted group");
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::{JoinRequestSpec, JoinRequestStatus};

    const NOW: &str = "2030-01-01T12:00:00Z";

    fn request(
        group: &str,
        requester: &str,
        phase: Option<Phase>,
        expires: Option<&str>,
    ) -> JoinRequest {
        let mut request = JoinRequest::new(
            "r",
            JoinRequestSpec {
                group: group.into(),
                requester: requester.into(),
                ..JoinRequestSpec::default()
            },
        );
        request.status = Some(JoinRequestStatus {
            phase,
            expires_at: expires.map(|t| Time(t.parse().expect("timestamp"))),
            ..JoinRequestStatus::default()
        });
        request
    }

    fn now() -> Timestamp {
        NOW.parse().expect("timestamp")
    }

    #[test]
    fn approved_and_active_requests_account_for_their_requester() {
        let later = Some("2030-01-01T13:00:00Z");
        for phase in [Phase::Approved, Phase::Active] {
            let r = request("readers", "alice@example.com", Some(phase), later);
            assert!(accounts_for(&r, "readers", now()), "{phase}");
        }
    }

    #[test]
    fn an_unfinished_request_with_an_expiry_to_come_accounts_for_its_requester() {
        let r = request(
            "readers",
            "a@example.com",
            Some(Phase::Pending),
            Some("2030-01-01T13:00:00Z"),
        );
        assert!(accounts_for(&r, "readers", now()));

        let past = request(
            "readers",
            "a@example.com",
            Some(Phase::Pending),
            Some("2030-01-01T11:00:00Z"),
        );
        assert!(!accounts_for(&past, "readers", now()));
        let undecided = request("readers", "a@example.com", Some(Phase::Pending), None);
        assert!(!accounts_for(&undecided, "readers", now()));
        let new = request("readers", "a@example.com", None, None);
        assert!(!accounts_for(&new, "readers", now()));
    }

    #[test]
    fn finished_requests_and_requests_for_other_groups_account_for_nobody() {
        let later = Some("2030-01-01T13:00:00Z");
        for phase in [
            Phase::Expired,
            Phase::Denied,
            Phase::TimedOut,
            Phase::Revoked,
            Phase::Failed,
        ] {
            let r = request("readers", "alice@example.com", Some(phase), later);
            assert!(!accounts_for(&r, "readers", now()), "{phase}");
        }
        let other = request("writers", "alice@example.com", Some(Phase::Active), later);
        assert!(!accounts_for(&other, "readers", now()));
    }

    #[test]
    fn accounted_members_are_compared_in_lower_case_with_the_latest_expiry() {
        let requests = vec![
            request(
                "readers",
                " Alice@Example.COM",
                Some(Phase::Active),
                Some("2030-01-01T13:00:00Z"),
            ),
            request(
                "readers",
                "alice@example.com",
                Some(Phase::Approved),
                Some("2030-01-01T15:00:00Z"),
            ),
            request(
                "readers",
                "bob@example.com",
                Some(Phase::Expired),
                Some("2030-01-01T15:00:00Z"),
            ),
        ];

        let accounted = accounted_members(&requests, "readers", now());

        assert_eq!(
            accounted,
            BTreeMap::from([(
                "alice@example.com".to_owned(),
                Some("2030-01-01T15:00:00Z".parse().expect("timestamp"))
            )])
        );
    }
}
