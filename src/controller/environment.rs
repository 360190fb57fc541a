//! The JitEnvironment reconciler: validates the environment, proves that its service
//! account can be impersonated, and reports the Cloud Identity groups named like the
//! environment's JIT groups that no JitGroup covers.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::{EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, Event};
use kube::{Api, Resource, ResourceExt};

use super::status::{apply_status, set_condition};
use super::{Context, Error, FIELD_MANAGER, key, measured, retry_delay};
use crate::api::{JitEnvironment, JitGroup, READY};
use crate::policy::EnvironmentPolicy;
use crate::policy::names::{GroupId, MAX_GROUP_NAME, MAX_SYSTEM_NAME, check_name};

/// Keeps an environment until the groups of its namespace are gone, so that their
/// bindings can still be removed with its service account.
pub const FINALIZER: &str = "jitgroups.dev/environment";

pub async fn reconcile(env: Arc<JitEnvironment>, ctx: Arc<Context>) -> Result<Action, Error> {
    measured(&ctx, "jitenvironment", async {
        let namespace = env.namespace().unwrap_or_default();
        let api: Api<JitEnvironment> = ctx.api(&namespace);
        finalizer::finalizer(&api, FINALIZER, env.clone(), |event| async {
            match event {
                Event::Apply(env) => apply(&env, &ctx).await,
                Event::Cleanup(env) => cleanup(&env, &ctx).await,
            }
        })
        .await
        .map_err(|source| Error::Finalizer {
            object: key(env.as_ref()),
            source: Box::new(source),
        })
    })
    .await
}

pub fn error_policy(env: Arc<JitEnvironment>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(environment = %key(env.as_ref()), %error, "reconcile failed");
    Action::requeue(retry_delay(error))
}

async fn apply(env: &JitEnvironment, ctx: &Context) -> Result<Action, Error> {
    let name = env.name_any();
    let namespace = env.namespace().unwrap_or_default();
    let api: Api<JitEnvironment> = ctx.api(&namespace);
    let generation = env.metadata.generation;
    let mut status = env.status.clone().unwrap_or_default();
    status.observed_generation = generation;

    let parsed = EnvironmentPolicy::parse(env.spec.fields(&name));
    let (ok, reason, message) = match &parsed {
        Err(errors) => (false, "InvalidSpec", errors.to_string()),
        Ok(policy) => {
            match ctx
                .google
                .for_service_account(&policy.service_account)
                .verify_access()
                .await
            {
                Ok(()) => (
                    true,
                    "Ready",
                    format!(
                        "impersonating {} for groups in {namespace}",
                        policy.service_account
                    ),
                ),
                Err(error) if error.is_transient() => return Err(error.into()),
                Err(error) => (
                    false,
                    "ImpersonationFailed",
                    format!(
                        "cannot impersonate {}: {}; grant the controller's own service account \
                         roles/iam.serviceAccountTokenCreator on it",
                        policy.service_account,
                        error.full_message()
                    ),
                ),
            }
        }
    };

    let previous_orphans = status.orphan_groups.clone();
    let mut search_failure = None;
    if let (true, Ok(policy)) = (ok, &parsed) {
        match find_orphans(env, ctx, policy).await {
            Ok(orphans) => {
                ctx.metrics
                    .set_orphan_groups(&namespace, Some(orphans.len()));
                status.orphan_groups = orphans;
            }
            Err(Error::Google(error)) => {
                tracing::warn!(
                    environment = %key(env),
                    error = %error.full_message(),
                    "could not search for orphan groups; the last list is kept"
                );
                search_failure = Some(error);
            }
            Err(error) => return Err(error),
        }
    }

    let was_ready = super::status::is_true(&status.conditions, READY);
    set_condition(
        &mut status.conditions,
        READY,
        ok,
        reason,
        message.clone(),
        generation,
    );
    if status != env.status.clone().unwrap_or_default() {
        apply_status(&api, env, &status).await?;
        if ok != was_ready || !ok {
            let type_ = if ok {
                EventType::Normal
            } else {
                EventType::Warning
            };
            ctx.publish(&env.object_ref(&()), type_, reason, message)
                .await;
        }
    }
    publish_orphan_changes(env, ctx, &previous_orphans, &status.orphan_groups).await;
    tracing::info!(
        environment = %key(env),
        ready = ok,
        reason,
        orphan_groups = status.orphan_groups.len(),
        "reconciled environment"
    );
    match search_failure {
        Some(error) if error.is_transient() => Err(error.into()),
        _ => Ok(ctx.resync()),
    }
}

/// Searches Cloud Identity for the groups named like the environment's JIT groups, and
/// returns, sorted, the emails of those that no JitGroup of the namespace covers.
///
/// The JitGroups are read after the search, so a JitGroup created while the search ran
/// covers its group rather than making it look orphaned.
async fn find_orphans(
    env: &JitEnvironment,
    ctx: &Context,
    policy: &EnvironmentPolicy,
) -> Result<Vec<String>, Error> {
    let namespace = env.namespace().unwrap_or_default();
    let client = ctx.google.for_service_account(&policy.service_account);
    let prefix = GroupId::environment_prefix(&policy.name);
    let found = client
        .search_groups_by_prefix(&policy.customer_id, &prefix)
        .await
        .map_err(Error::Google)?;
    let groups: Api<JitGroup> = ctx.api(&namespace);
    let jit_groups = groups.list(&Default::default()).await?.items;
    Ok(orphan_emails(
        found.into_iter().map(|g| g.email),
        &policy.name,
        &policy.groups_domain,
        &jit_groups,
    ))
}

/// The emails among `found` that start with the environment's prefix, lie in its groups
/// domain, and belong to none of `groups`; lower case, sorted, without duplicates.
///
/// A JitGroup covers the email its names give (through the policy core's naming scheme),
/// whether or not the rest of its spec is valid, and the email its status records.
fn orphan_emails(
    found: impl IntoIterator<Item = String>,
    environment: &str,
    domain: &str,
    groups: &[JitGroup],
) -> Vec<String> {
    let prefix = GroupId::environment_prefix(environment);
    let suffix = format!("@{}", domain.to_ascii_lowercase());
    let mut covered = BTreeSet::new();
    for group in groups {
        let name = group.name_any();
        let names_valid = check_name(&name, MAX_GROUP_NAME).is_ok()
            && check_name(&group.spec.system, MAX_SYSTEM_NAME).is_ok();
        if names_valid {
            covered.insert(GroupId::new(environment, &group.spec.system, &name).email(domain));
        }
        if let Some(email) = group.status.as_ref().and_then(|s| s.email.as_ref()) {
            covered.insert(email.to_ascii_lowercase());
        }
    }
    found
        .into_iter()
        .map(|email| email.to_ascii_lowercase())
        .filter(|email| email.starts_with(&prefix) && email.ends_with(&suffix))
        .filter(|email| !covered.contains(email))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Publishes an event when groups became orphaned and when orphans went away.
async fn publish_orphan_changes(
    env: &JitEnvironment,
    ctx: &Context,
    previous: &[String],
    current: &[String],
) {
    let before: BTreeSet<&String> = previous.iter().collect();
    let after: BTreeSet<&String> = current.iter().collect();
    let appeared: Vec<&str> = after.difference(&before).map(|e| e.as_str()).collect();
    let gone: Vec<&str> = before.difference(&after).map(|e| e.as_str()).collect();
    if !appeared.is_empty() {
        let note = format!(
            "{} Cloud Identity group(s) named like this environment's JIT groups have no \
             JitGroup: {}; they are reported in status.orphanGroups and left in place",
            appeared.len(),
            appeared.join(", ")
        );
        tracing::warn!(environment = %key(env), groups = ?appeared, "orphan groups found");
        publish_unfolded(env, ctx, EventType::Warning, "OrphanGroupsFound", note).await;
    }
    if !gone.is_empty() {
        let note = format!(
            "no longer orphaned (a JitGroup covers them now, or they were deleted): {}",
            gone.join(", ")
        );
        tracing::info!(environment = %key(env), groups = ?gone, "orphan groups resolved");
        publish_unfolded(env, ctx, EventType::Normal, "OrphanGroupsResolved", note).await;
    }
}

async fn cleanup(env: &JitEnvironment, ctx: &Context) -> Result<Action, Error> {
    let namespace = env.namespace().unwrap_or_default();
    let groups: Api<JitGroup> = ctx.api(&namespace);
    let remaining = groups.list(&Default::default()).await?.items.len();
    if remaining > 0 {
        return Err(Error::NotYet(
            format!(
                "{remaining} JitGroup(s) in {namespace} still need this environment to remove \
                 their bindings"
            ),
            Duration::from_secs(5),
        ));
    }
    ctx.metrics.set_orphan_groups(&namespace, None);
    Ok(Action::await_change())
}

/// Publishes an event through a recorder of its own. The shared recorder folds the events of
/// one object with the same reason into a series that keeps the first note; a change of the
/// orphan groups must show its own list.
async fn publish_unfolded(
    env: &JitEnvironment,
    ctx: &Context,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let reporter = Reporter {
        controller: FIELD_MANAGER.to_owned(),
        instance: Some(ctx.settings.instance.clone()),
    };
    let event = kube::runtime::events::Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: reason.to_owned(),
        secondary: None,
    };
    let recorder = Recorder::new(ctx.client.clone(), reporter);
    if let Err(error) = recorder.publish(&event, &env.object_ref(&())).await {
        tracing::warn!(environment = %key(env), reason, %error, "could not publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{JitGroupSpec, JitGroupStatus};

    fn group(name: &str, system: &str, email: Option<&str>) -> JitGroup {
        let mut group = JitGroup::new(
            name,
            JitGroupSpec {
                system: system.into(),
                ..JitGroupSpec::default()
            },
        );
        group.status = email.map(|e| JitGroupStatus {
            email: Some(e.into()),
            ..JitGroupStatus::default()
        });
        group
    }

    fn found(emails: &[&str]) -> Vec<String> {
        emails.iter().map(|e| (*e).to_owned()).collect()
    }

    #[test]
    fn groups_of_the_environment_without_a_jitgroup_are_orphans() {
        let groups = vec![group("readers", "data", None)];

        let orphans = orphan_emails(
            found(&[
                "jit.prod.data.readers@example.com",
                "jit.prod.data.old@example.com",
                "JIT.Prod.Compute.Admins@Example.com",
            ]),
            "prod",
            "example.com",
            &groups,
        );

        assert_eq!(
            orphans,
            vec![
                "jit.prod.compute.admins@example.com",
                "jit.prod.data.old@example.com"
            ]
        );
    }

    #[test]
    fn groups_of_other_environments_or_domains_are_not_orphans_of_this_one() {
        let orphans = orphan_emails(
            found(&[
                "jit.production.data.readers@example.com",
                "jit.prod.data.readers@other.example",
                "ops@example.com",
            ]),
            "prod",
            "example.com",
            &[],
        );

        assert!(orphans.is_empty(), "{orphans:?}");
    }

    #[test]
    fn a_jitgroup_covers_its_email_by_name_and_by_status_even_when_its_names_are_invalid() {
        let groups = vec![
            group("Readers", "Data", None),
            group("bad_name", "data", Some("jit.prod.legacy.name@example.com")),
        ];

        let orphans = orphan_emails(
            found(&[
                "jit.prod.data.readers@example.com",
                "jit.prod.legacy.name@example.com",
            ]),
            "prod",
            "example.com",
            &groups,
        );

        assert!(orphans.is_empty(), "{orphans:?}");
    }
}
