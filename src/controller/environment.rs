//! The JitEnvironment reconciler: validates the environment and proves that its service
//! account can be impersonated.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, Event};
use kube::{Api, Resource, ResourceExt};

use super::status::{apply_status, set_condition};
use super::{Context, Error, key, measured, retry_delay};
use crate::api::{JitEnvironment, JitGroup, READY};
use crate::policy::EnvironmentPolicy;

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

    let (ok, reason, message) = match EnvironmentPolicy::parse(env.spec.fields(&name)) {
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
    tracing::info!(environment = %key(env), ready = ok, reason, "reconciled environment");
    Ok(ctx.resync())
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
    Ok(Action::await_change())
}
