//! The JitGroup reconciler: ensures the Cloud Identity security group and makes the group's
//! IAM bindings on every resource exactly those its privileges list.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, Event};
use kube::{Api, Resource, ResourceExt};

use super::status::{apply_status, set_condition};
use super::{Context, EnvironmentState, Error, group_policy, key, measured, retry_delay};
use crate::api::{JitGroup, JitGroupStatus, READY};
use crate::google::{self, DesiredBinding, EnvironmentClient, GoogleError};
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
    /// Bindings added and removed, as `resource role` strings, for the event.
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
    let transient = report
        .failed
        .iter()
        .find(|(_, e)| e.is_transient())
        .map(|(r, e)| (r.clone(), e.label()));
    let failures: Vec<String> = report
        .failed
        .iter()
        .map(|(resource, e)| format!("{resource}: {}", e.full_message()))
        .collect();

    if failures.is_empty() {
        status.last_error = None;
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
    tracing::info!(
        group = %key(group),
        email = %cloud_group.email,
        added = report.added,
        removed = report.removed,
        failed = report.failed.len(),
        "reconciled group"
    );
    if let Some((resource, label)) = transient {
        return Err(Error::NotYet(
            format!("transient error ({label}) on {resource}"),
            std::time::Duration::from_secs(5),
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
        let desired: Vec<DesiredBinding> = resource
            .parse::<ResourceName>()
            .ok()
            .and_then(|r| policy.bindings.get(&r))
            .map(|set| set.iter().map(desired_binding).collect())
            .unwrap_or_default();
        let target = match resource.parse::<google::ResourceName>() {
            Ok(target) => target,
            Err(error) => {
                tracing::warn!(%resource, %error, "skipping a resource name Google would refuse");
                continue;
            }
        };
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
            return Err(Error::NotYet(note, std::time::Duration::from_secs(30)));
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
        let Ok(target) = resource.parse::<google::ResourceName>() else {
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
