//! What the controller's integration tests share: a namespace on the shared real control
//! plane, a Google Cloud emulator of its own seeded with a small organization, and the
//! controller itself running in-process, watching only that namespace.

#![allow(dead_code)]

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use gcp_emulator::{
    Binding, ControlClient, CustomerSeed, Emulator, GroupSnapshot, Policy, ResourceSeed, Seed,
    ServiceAccountSeed,
};
use jit_groups_controller::controller::{self, Settings};
use jit_groups_controller::google::{BaseCredentials, Google, GoogleConfig, RetryPolicy};
use jit_groups_controller::metrics::Metrics;
use jit_test_support::{ControlPlane, User};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The identity the controller runs as in Google Cloud.
pub const CONTROLLER_IDENTITY: &str = "jit-controller@ops-project.iam.gserviceaccount.com";
/// The controller's static token, seeded in the emulator.
pub const CONTROLLER_TOKEN: &str = "controller-token";
/// The environment's service account, which the controller impersonates.
pub const ENVIRONMENT_SA: &str = "jit-prod@ops-project.iam.gserviceaccount.com";
/// A service account nobody may impersonate.
pub const FOREIGN_SA: &str = "jit-other@ops-project.iam.gserviceaccount.com";
/// The Cloud Identity customer.
pub const CUSTOMER: &str = "C0test01";
/// A binding of someone else that the controller must never touch.
pub const OTHER_PRINCIPAL: &str = "user:auditor@example.com";

/// One test's world.
pub struct Harness {
    pub plane: &'static ControlPlane,
    pub namespace: String,
    pub emulator: Emulator,
    pub admin: Client,
    pub metrics: Arc<Metrics>,
    controller: Option<tokio::task::JoinHandle<()>>,
}

/// The organization the emulator starts with: an organization, a folder holding the
/// environment's projects, and a project outside the environment's reach.
pub fn seed() -> Seed {
    let resource = |name: &str, parent: Option<&str>| ResourceSeed {
        name: name.to_owned(),
        parent: parent.map(str::to_owned),
    };
    let mut seed = Seed {
        customers: vec![CustomerSeed {
            id: CUSTOMER.into(),
            domains: vec!["example.com".into()],
        }],
        users: ["alice", "bob", "carol", "auditor"]
            .iter()
            .map(|u| format!("{u}@example.com"))
            .collect(),
        resources: vec![
            resource("organizations/100", None),
            resource("folders/200", Some("organizations/100")),
            resource("projects/shared-prod", Some("folders/200")),
            resource("projects/data-prod", Some("folders/200")),
            resource("projects/other-team", Some("organizations/100")),
        ],
        service_accounts: vec![
            ServiceAccountSeed {
                email: ENVIRONMENT_SA.into(),
                impersonators: vec![CONTROLLER_IDENTITY.into()],
                can_manage_groups: true,
                can_set_iam_policy_on: vec!["folders/200".into()],
            },
            ServiceAccountSeed {
                email: FOREIGN_SA.into(),
                impersonators: vec![],
                can_manage_groups: true,
                can_set_iam_policy_on: vec!["organizations/100".into()],
            },
        ],
        ..Seed::default()
    };
    seed.tokens
        .insert(CONTROLLER_TOKEN.into(), CONTROLLER_IDENTITY.into());
    seed.policies.insert(
        "projects/shared-prod".into(),
        Policy {
            bindings: vec![Binding {
                role: "roles/viewer".into(),
                members: vec![OTHER_PRINCIPAL.into()],
                condition: None,
            }],
            ..Policy::default()
        },
    );
    seed
}

impl Harness {
    /// A fresh namespace, emulator and running controller.
    pub async fn start(prefix: &str) -> Harness {
        let mut harness = Self::start_without_controller(prefix).await;
        harness.start_controller();
        harness
    }

    /// Starts the controller (again) with the test settings, as a new process would.
    pub fn start_controller(&mut self) {
        self.start_controller_with(self.settings());
    }

    /// Stops the controller at once, as a crash would.
    pub fn kill_controller(&mut self) {
        if let Some(handle) = self.controller.take() {
            handle.abort();
        }
    }

    pub fn control(&self) -> ControlClient {
        self.emulator.control()
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.admin.clone(), &self.namespace)
    }

    /// Creates or updates `object` in the test's namespace by server-side apply, as admin.
    pub async fn apply<K>(&self, object: &K) -> K
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Serialize
            + DeserializeOwned
            + Debug,
    {
        let name = object.meta().name.clone().expect("object has a name");
        let mut value = serde_json::to_value(object).expect("serializable");
        value["apiVersion"] = K::api_version(&()).into();
        value["kind"] = K::kind(&()).into();
        if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            meta.remove("resourceVersion");
        }
        self.api::<K>()
            .patch(
                &name,
                &PatchParams::apply("tests").force(),
                &Patch::Apply(&value),
            )
            .await
            .unwrap_or_else(|e| panic!("applying {name}: {e}"))
    }

    pub async fn delete<K>(&self, name: &str)
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        self.api::<K>()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }

    /// Polls `name` until `done` holds, failing with the last state seen after `timeout`.
    pub async fn wait_for<K>(&self, name: &str, timeout: Duration, done: impl Fn(&K) -> bool) -> K
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let api = self.api::<K>();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let current = api.get_opt(name).await.expect("get");
            if let Some(object) = &current
                && done(object)
            {
                return object.clone();
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{name} did not reach the expected state in {timeout:?}; last seen: {current:#?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls until `name` is gone.
    pub async fn wait_gone<K>(&self, name: &str, timeout: Duration)
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let api = self.api::<K>();
        let deadline = tokio::time::Instant::now() + timeout;
        while api.get_opt(name).await.expect("get").is_some() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} was not deleted in {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The emulator's view of group `email`, if it exists.
    pub async fn cloud_group(&self, email: &str) -> Option<GroupSnapshot> {
        let state = self.control().state().await.expect("emulator state");
        state.groups.into_iter().find(|g| g.email == email)
    }

    /// The emulator's IAM policy of `resource`.
    pub async fn policy(&self, resource: &str) -> Policy {
        let state = self.control().state().await.expect("emulator state");
        state.policies.get(resource).cloned().unwrap_or_default()
    }

    /// Roles `member` holds on `resource`, sorted, with a condition's title after a `?`.
    pub async fn roles_of(&self, resource: &str, member: &str) -> Vec<String> {
        let mut roles: Vec<String> = self
            .policy(resource)
            .await
            .bindings
            .iter()
            .filter(|b| b.members.iter().any(|m| m == member))
            .map(|b| match &b.condition {
                Some(c) => format!("{}?{}", b.role, c.title.clone().unwrap_or_default()),
                None => b.role.clone(),
            })
            .collect();
        roles.sort();
        roles
    }

    /// Reasons of the events recorded for object `name`.
    pub async fn event_reasons(&self, name: &str) -> Vec<String> {
        use k8s_openapi::api::events::v1::Event;
        let events: Api<Event> = Api::namespaced(self.admin.clone(), &self.namespace);
        let list = events.list(&Default::default()).await.expect("events");
        list.items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .filter_map(|e| e.reason)
            .collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.kill_controller();
    }
}

/// The phase of a request, if it has one.
pub fn phase(
    request: &jit_groups_controller::api::JoinRequest,
) -> Option<jit_groups_controller::api::Phase> {
    request.phase()
}

/// Whether a group's `Ready` condition is True.
pub fn is_ready(group: &jit_groups_controller::api::JitGroup) -> bool {
    group.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == jit_groups_controller::api::READY && c.status == "True")
    })
}

/// Test objects, written as a platform team would write them.
pub mod objects {
    use jit_groups_controller::api::*;
    use jit_groups_controller::policy::*;
    use kube::api::ObjectMeta;

    pub fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        }
    }

    pub fn environment(name: &str) -> JitEnvironment {
        JitEnvironment {
            metadata: meta(name),
            spec: JitEnvironmentSpec {
                service_account: super::ENVIRONMENT_SA.into(),
                customer_id: super::CUSTOMER.into(),
                groups_domain: "example.com".into(),
                allowed_resources: vec!["projects/shared-prod".into(), "projects/data-prod".into()],
                access: vec![],
                constraints: ConstraintsSpec {
                    join: Some(JoinConstraintsSpec {
                        expiry: Some(ExpirySpec {
                            min: "PT1S".into(),
                            max: "P1D".into(),
                            default: Some("PT1H".into()),
                        }),
                    }),
                    approve: None,
                },
                approval_timeout: None,
                unmanaged_members: None,
            },
            status: None,
        }
    }

    pub fn entry(principal: &str, allow: &str) -> AccessEntrySpec {
        AccessEntrySpec {
            principal: principal.into(),
            allow: Some(allow.into()),
            deny: None,
        }
    }

    pub fn privilege(resource: &str, role: &str) -> IamPrivilegeSpec {
        IamPrivilegeSpec {
            resource: resource.into(),
            role: role.into(),
            ..Default::default()
        }
    }

    pub fn group(name: &str, access: Vec<AccessEntrySpec>, iam: Vec<IamPrivilegeSpec>) -> JitGroup {
        JitGroup {
            metadata: meta(name),
            spec: JitGroupSpec {
                system: "data".into(),
                description: Some(format!("{name} for tests")),
                access,
                constraints: ConstraintsSpec::default(),
                privileges: Privileges { iam },
            },
            status: None,
        }
    }

    pub fn request(name: &str, group: &str, requester: &str, duration: &str) -> JoinRequest {
        JoinRequest {
            metadata: meta(name),
            spec: JoinRequestSpec {
                group: group.into(),
                requester: requester.into(),
                duration: Some(duration.into()),
                justification: "investigating an incident".into(),
                approvals: vec![],
            },
            status: None,
        }
    }
}

/// Helpers of the drift, leader election and history tests.
impl Harness {
    /// A fresh namespace and emulator with no controller running yet: start one with
    /// [`Harness::start_controller_with`], or run replicas of it.
    pub async fn start_without_controller(prefix: &str) -> Harness {
        let plane = ControlPlane::shared();
        let namespace = plane.create_namespace(prefix).await.expect("namespace");
        let emulator = Emulator::start_with_seed(seed()).expect("emulator");
        let admin = plane.client(User::Admin).expect("admin client");
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        Harness {
            plane,
            namespace,
            emulator,
            admin,
            metrics,
            controller: None,
        }
    }

    /// The Google clients' configuration of the controller under test: the emulator, with
    /// quick retries.
    pub fn google_config(&self) -> GoogleConfig {
        let mut config = GoogleConfig::new(BaseCredentials::StaticToken(CONTROLLER_TOKEN.into()))
            .with_endpoint(self.emulator.base_url());
        config.retry = RetryPolicy {
            attempts: 4,
            initial_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(2),
            conflict_attempts: 5,
        };
        config
    }

    /// The settings of the controller under test: this namespace only, a one-minute resync.
    pub fn settings(&self) -> Settings {
        Settings {
            namespace: Some(self.namespace.clone()),
            resync_interval: Duration::from_secs(60),
            instance: format!("test-{}", self.namespace),
            ..Settings::default()
        }
    }

    /// Starts the controller with `settings`, as a new process would.
    pub fn start_controller_with(&mut self, settings: Settings) {
        let config = self.google_config();
        let client = self.admin.clone();
        let metrics = self.metrics.clone();
        let handle = tokio::spawn(async move {
            let google = Google::new(config).await.expect("google clients");
            controller::run(
                client,
                google,
                settings,
                metrics,
                || {},
                std::future::pending(),
            )
            .await;
        });
        self.controller = Some(handle);
    }

    /// Google Cloud as the environment's service account sees it, for changes made out of
    /// band through the real client crates.
    pub async fn as_environment(&self) -> jit_groups_controller::google::EnvironmentClient {
        let google = Google::new(self.google_config())
            .await
            .expect("google clients");
        google.for_service_account(ENVIRONMENT_SA)
    }

    /// Changes an annotation of `name`, which makes the controller reconcile it without
    /// waiting for the resync.
    pub async fn touch<K>(&self, name: &str)
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let patch = serde_json::json!({
            "metadata": {
                "annotations": { "jitgroups.dev/touched": jiff::Timestamp::now().to_string() }
            }
        });
        self.api::<K>()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("touching {name}: {e}"));
    }

    /// The events recorded for object `name`, oldest first.
    pub async fn events_of(&self, name: &str) -> Vec<k8s_openapi::api::events::v1::Event> {
        use k8s_openapi::api::events::v1::Event;
        let events: Api<Event> = Api::namespaced(self.admin.clone(), &self.namespace);
        let mut list: Vec<Event> = events
            .list(&Default::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect();
        list.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
        list
    }

    /// Polls until an event of `reason` about `name` whose note contains `text` is recorded,
    /// and returns its note.
    pub async fn wait_for_event(
        &self,
        name: &str,
        reason: &str,
        text: &str,
        timeout: Duration,
    ) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let events = self.events_of(name).await;
            let found = events.iter().find_map(|e| {
                let note = e.note.clone().unwrap_or_default();
                (e.reason.as_deref() == Some(reason) && note.contains(text)).then_some(note)
            });
            if let Some(note) = found {
                return note;
            }
            if tokio::time::Instant::now() > deadline {
                let seen: Vec<_> = events
                    .iter()
                    .map(|e| (e.reason.clone(), e.note.clone()))
                    .collect();
                panic!(
                    "no {reason} event about {name} mentioning {text:?} in {timeout:?}: {seen:#?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
