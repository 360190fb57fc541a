//! The reconcilers that make Google Cloud match the custom resources, and what they share.

mod environment;
mod error;
mod group;
mod history;
mod request;
mod status;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, controller::Action, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::api::{JitEnvironment, JitGroup, JoinRequest};
use crate::google::Google;
use crate::metrics::Metrics;
use crate::policy::{EnvironmentPolicy, GroupPolicy, ValidationErrors};

pub use error::Error;

/// Name under which the controller writes status and events.
pub const FIELD_MANAGER: &str = "jit-groups-controller";

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// How often every object is reconciled even when nothing changed.
    pub resync_interval: Duration,
    /// Identity of this instance in events, e.g. the pod name.
    pub instance: String,
    /// How long finished JoinRequests are kept after `status.finishedAt` before they are
    /// deleted.
    pub history_retention: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: None,
            resync_interval: Duration::from_secs(600),
            instance: FIELD_MANAGER.to_owned(),
            history_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// What every reconcile gets.
pub struct Context {
    client: Client,
    google: Google,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    settings: Settings,
}

impl Context {
    /// An API handle for `K` in `namespace`.
    fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Publishes an event about `object`; a failure to publish is logged, not returned,
    /// because events are informative and must not stop a reconcile.
    async fn publish(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: reason.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, object).await {
            tracing::warn!(
                object = object.name.as_deref().unwrap_or_default(),
                reason,
                %error,
                "could not publish event"
            );
        }
    }

    /// The periodic resync interval with up to 10% jitter, so that objects spread out.
    fn resync(&self) -> Action {
        Action::requeue(self.resync_delay())
    }

    /// The delay until the next periodic resync, jittered.
    fn resync_delay(&self) -> Duration {
        let base = self.settings.resync_interval;
        base + base.mul_f64(rand::random::<f64>() * 0.1)
    }

    /// Loads and validates the environment of `namespace`.
    async fn environment(&self, namespace: &str) -> Result<EnvironmentState, Error> {
        let api: Api<JitEnvironment> = self.api(namespace);
        let mut environments = api.list(&Default::default()).await?.items;
        environments.retain(|e| e.metadata.deletion_timestamp.is_none());
        match environments.len() {
            0 => Ok(EnvironmentState::Unavailable {
                reason: "EnvironmentNotFound",
                message: format!("namespace {namespace} has no JitEnvironment"),
            }),
            1 => {
                let env = environments.remove(0);
                let name = env.name_any();
                match EnvironmentPolicy::parse(env.spec.fields(&name)) {
                    Ok(policy) => Ok(EnvironmentState::Valid(Box::new(policy))),
                    Err(errors) => Ok(EnvironmentState::Unavailable {
                        reason: "EnvironmentInvalid",
                        message: format!("JitEnvironment {name} is invalid: {errors}"),
                    }),
                }
            }
            _ => Ok(EnvironmentState::Unavailable {
                reason: "EnvironmentAmbiguous",
                message: format!(
                    "namespace {namespace} has {} JitEnvironments ({}); exactly one is allowed",
                    environments.len(),
                    environments
                        .iter()
                        .map(|e| e.name_any())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }
}

/// The environment a group or request belongs to.
enum EnvironmentState {
    /// A valid environment policy.
    Valid(Box<EnvironmentPolicy>),
    /// Missing, ambiguous or invalid, with a reason and message for status.
    Unavailable {
        reason: &'static str,
        message: String,
    },
}

/// Validates a group against its environment.
fn group_policy(
    env: &EnvironmentPolicy,
    group: &JitGroup,
) -> Result<GroupPolicy, ValidationErrors> {
    GroupPolicy::parse(env, group.spec.fields(&group.name_any()))
}

/// The `namespace/name` of an object, for messages.
fn key<K: ResourceExt>(object: &K) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

fn scoped<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Objects of `store` in `namespace` that `keep` selects, as references to reconcile.
fn in_namespace<K>(
    store: &Store<K>,
    namespace: Option<String>,
    keep: impl Fn(&K) -> bool,
) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    store
        .state()
        .iter()
        .filter(|o| o.namespace() == namespace && keep(o))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// Runs a reconcile, recording its duration and outcome.
async fn measured<F>(ctx: &Context, controller: &'static str, reconcile: F) -> Result<Action, Error>
where
    F: Future<Output = Result<Action, Error>>,
{
    let started = Instant::now();
    let result = reconcile.await;
    ctx.metrics.observe_reconcile(
        controller,
        started.elapsed(),
        result.as_ref().err().map(Error::label),
    );
    result
}

/// How long to wait after a failed reconcile: what the error asks for, else 5 seconds for
/// anything transient and a minute for anything else.
fn retry_delay(error: &Error) -> Duration {
    if let Some(after) = error.retry_after() {
        return after;
    }
    match error {
        Error::Google(e) if !e.is_transient() => Duration::from_secs(60),
        _ => Duration::from_secs(5),
    }
}

/// Waits until `store` holds its first complete listing; false when its writer is gone.
///
/// A store's readiness signal wakes only the last task that waited on it, and the controller
/// that owns the store may wait on it too, so this asks again every half second instead of
/// waiting once.
async fn filled<K>(store: &Store<K>) -> bool
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    loop {
        match tokio::time::timeout(Duration::from_millis(500), store.wait_until_ready()).await {
            Ok(result) => return result.is_ok(),
            Err(_) => continue,
        }
    }
}

/// Runs the three controllers until `shutdown` completes.
pub async fn run(
    client: Client,
    google: Google,
    settings: Settings,
    metrics: Arc<Metrics>,
    on_ready: impl FnOnce() + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let reporter = Reporter {
        controller: FIELD_MANAGER.to_owned(),
        instance: Some(settings.instance.clone()),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client: client.clone(),
        google,
        metrics: metrics.clone(),
        settings: settings.clone(),
    });
    let (shutdown_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let signal = |tx: &tokio::sync::broadcast::Sender<()>| {
        let mut rx = tx.subscribe();
        async move {
            let _ = rx.recv().await;
        }
    };

    let ns = settings.namespace.clone();
    let environments: Api<JitEnvironment> = scoped(&client, &ns);
    let groups: Api<JitGroup> = scoped(&client, &ns);
    let requests: Api<JoinRequest> = scoped(&client, &ns);
    let config = watcher::Config::default();

    let environment_controller = Controller::new(environments.clone(), config.clone());
    let environment_store = environment_controller.store();
    let environment_controller_store = environment_store.clone();
    let environment_controller = environment_controller
        .watches(groups.clone(), config.clone(), move |group: JitGroup| {
            in_namespace(&environment_store, group.namespace(), |_| true)
        })
        .graceful_shutdown_on(signal(&shutdown_tx))
        .run(
            environment::reconcile,
            environment::error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {});

    let group_controller = Controller::new(groups.clone(), config.clone());
    let group_store = group_controller.store();
    let group_controller_store = group_store.clone();
    let group_controller = group_controller
        .watches(
            environments.clone(),
            config.clone(),
            move |env: JitEnvironment| in_namespace(&group_store, env.namespace(), |_| true),
        )
        .graceful_shutdown_on(signal(&shutdown_tx))
        .run(group::reconcile, group::error_policy, ctx.clone())
        .for_each(|_| async {});

    let request_controller = Controller::new(requests.clone(), config.clone());
    let request_store = request_controller.store();
    let request_controller_store = request_store.clone();
    metrics.watch_requests(request_store.clone());
    let request_controller = request_controller
        .watches(groups.clone(), config.clone(), move |group: JitGroup| {
            let name = group.name_any();
            in_namespace(&request_store, group.namespace(), |r: &JoinRequest| {
                r.spec.group == name && !request::is_final(r)
            })
        })
        .graceful_shutdown_on(signal(&shutdown_tx))
        .run(request::reconcile, request::error_policy, ctx.clone())
        .for_each(|_| async {});

    let history = {
        let stop = signal(&shutdown_tx);
        let sweeper = history::run(
            client.clone(),
            ns.clone(),
            settings.history_retention,
            metrics.clone(),
        );
        async move {
            tokio::select! {
                () = sweeper => {}
                () = stop => {}
            }
        }
    };

    let stores = (
        environment_controller_store,
        group_controller_store,
        request_controller_store,
    );
    tokio::spawn(async move {
        let ready = filled(&stores.0).await && filled(&stores.1).await && filled(&stores.2).await;
        if ready {
            on_ready();
        }
    });

    let stopper = async move {
        shutdown.await;
        let _ = shutdown_tx.send(());
    };
    tokio::spawn(stopper);
    tokio::join!(
        environment_controller,
        group_controller,
        request_controller,
        history
    );
}
