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
        let plane = ControlPlane::shared();
        let namespace = plane.create_namespace(prefix).await.expect("namespace");
        let emulator = Emulator::start_with_seed(seed()).expect("emulator");
        let admin = plane.client(User::Admin).expect("admin client");
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let mut harness = Harness {
            plane,
            namespace,
            emulator,
            admin,
            metrics,
            controller: None,
        };
        harness.start_controller();
        harness
    }

    /// Starts the controller (again), as a new process would.
    pub fn start_controller(&mut self) {
        let mut config = GoogleConfig::new(BaseCredentials::StaticToken(CONTROLLER_TOKEN.into()))
            .with_endpoint(self.emulator.base_url());
        config.retry = RetryPolicy {
            attempts: 4,
            initial_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(2),
            conflict_attempts: 5,
        };
        let settings = Settings {
            namespace: Some(self.namespace.clone()),
            resync_interval: Duration::from_secs(60),
            instance: format!("test-{}", self.namespace),
            ..Settings::default()
        };
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
            if let Some(object) = &current {
                if done(object) {
                    return object.clone();
                }
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
