//! The admission webhooks against the real API server: each test serves the webhooks
//! in-process on loopback over TLS, registers them for its own namespace only (the webhook
//! configurations select the namespace by a label that only it carries), and acts as the
//! test users, mostly through kubectl, asserting on what those users see.

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use common::Harness;
use common::objects::{entry, environment, group, privilege};
use jit_groups_controller::api::{JitGroup, JoinRequest, Phase, READY};
use jit_groups_controller::webhook::configuration::configurations;
use jit_groups_controller::webhook::{
    Certificates, IdentityMapping, PemPair, ServiceAccountMapping, Settings, Webhook,
};
use jit_test_support::{ControlPlane, LoopbackCertificate, User};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// The label that scopes a test's webhook configurations to its namespace.
const LABEL: &str = "admission.jitgroups.dev/test";
/// How long the API server may take to start calling newly registered webhooks.
const ACTIVATION: Duration = Duration::from_secs(30);

/// One test's namespace, webhook server and webhook configurations.
struct World {
    plane: &'static ControlPlane,
    namespace: String,
    admin: Client,
    webhook: Webhook,
}

/// A free port on loopback, for a webhook whose configurations must exist before it starts.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn pem(certificate: &LoopbackCertificate) -> PemPair {
    PemPair {
        cert_pem: certificate.cert_pem.clone(),
        key_pem: certificate.key_pem.clone(),
    }
}

impl World {
    /// A world whose webhook serves a loopback certificate and maps usernames only by
    /// taking an email username as it is.
    async fn start(prefix: &str) -> World {
        World::start_mapping(prefix, |_| IdentityMapping::default()).await
    }

    /// A world whose webhook maps identities as `identities` says for the new namespace.
    async fn start_mapping(
        prefix: &str,
        identities: impl FnOnce(&str) -> IdentityMapping,
    ) -> World {
        let namespace = prepare_namespace(ControlPlane::shared(), prefix).await;
        World::start_in(namespace, identities).await
    }

    /// A world in the prepared `namespace`.
    async fn start_in(
        namespace: String,
        identities: impl FnOnce(&str) -> IdentityMapping,
    ) -> World {
        let certificate = LoopbackCertificate::generate().expect("certificate");
        let plane = ControlPlane::shared();
        let webhook = Webhook::start(
            plane.client(User::Admin).expect("admin client"),
            settings(
                &namespace,
                0,
                Certificates::Pem(pem(&certificate)),
                identities(&namespace),
            ),
        )
        .await
        .expect("the webhook starts");
        let world = World {
            plane,
            admin: plane.client(User::Admin).expect("admin client"),
            namespace,
            webhook,
        };
        world
            .register(world.webhook.address().port(), Some(&certificate.ca_pem))
            .await;
        world.wait_until_active().await;
        world
    }

    /// Creates the webhook configurations, calling the webhook on `port` and trusting
    /// `ca_pem` (none: the webhook writes its own authority).
    async fn register(&self, port: u16, ca_pem: Option<&str>) {
        register(&self.admin, &self.namespace, port, ca_pem).await;
    }

    /// Probes until the API server calls both configurations: the admin, who has no Google
    /// identity, is refused a request, and a group with an invalid system is refused.
    async fn wait_until_active(&self) {
        let requests: Api<DynamicObject> = self.requests(self.admin.clone());
        let groups: Api<DynamicObject> = self.dynamic(self.admin.clone(), "JitGroup", "jitgroups");
        let deadline = tokio::time::Instant::now() + ACTIVATION;
        let (mut mutating, mut validating) = (false, false);
        let mut last = (String::new(), String::new());
        for attempt in 0.. {
            let name = format!("probe-{attempt}");
            if !mutating {
                let probe = request_object(&name, Some("probe@example.com"));
                match requests.create(&PostParams::default(), &probe).await {
                    Ok(_) => drop(requests.delete(&name, &DeleteParams::default()).await),
                    Err(error) => {
                        last.0 = error.to_string();
                        mutating = last.0.contains("no Google identity");
                    }
                }
            }
            if !validating {
                let probe = group_object(&name, "not.a.system");
                match groups.create(&PostParams::default(), &probe).await {
                    Ok(_) => drop(groups.delete(&name, &DeleteParams::default()).await),
                    Err(error) => {
                        last.1 = error.to_string();
                        validating = last.1.contains("spec.system");
                    }
                }
            }
            if mutating && validating {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the API server did not call the webhooks within {ACTIVATION:?}; last answers: \
                 {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn dynamic(&self, client: Client, kind: &str, plural: &str) -> Api<DynamicObject> {
        let gvk = kube::api::GroupVersionKind::gvk("jitgroups.dev", "v1alpha1", kind);
        Api::namespaced_with(
            client,
            &self.namespace,
            &kube::api::ApiResource::from_gvk_with_plural(&gvk, plural),
        )
    }

    fn requests(&self, client: Client) -> Api<DynamicObject> {
        self.dynamic(client, "JoinRequest", "joinrequests")
    }

    /// A client that the admin uses to act as `username`.
    fn impersonating(&self, username: &str) -> Client {
        let mut config = self.plane.config(User::Admin);
        config.auth_info.impersonate = Some(username.to_owned());
        Client::try_from(config).expect("impersonating client")
    }

    /// Runs kubectl as `user` in the test's namespace.
    async fn kubectl(&self, user: User, args: &[&str]) -> jit_test_support::KubectlOutput {
        let mut all = vec!["--namespace", &self.namespace];
        all.extend_from_slice(args);
        self.plane.kubectl(user, all).await.expect("kubectl runs")
    }

    /// Runs `kubectl create -f -` (or another verb) as `user` with `manifest`.
    async fn kubectl_stdin(
        &self,
        user: User,
        args: &[&str],
        manifest: &str,
    ) -> jit_test_support::KubectlOutput {
        let mut all = vec!["--namespace", &self.namespace];
        all.extend_from_slice(args);
        self.plane
            .kubectl_with_stdin(user, all, manifest)
            .await
            .expect("kubectl runs")
    }

    /// Alice creates request `name` asking for an hour, with no requester named; the webhook
    /// fills it in.
    async fn alice_asks(&self, name: &str) {
        self.kubectl_stdin(
            User::Alice,
            &["create", "-f", "-"],
            &request_yaml(name, None, ""),
        )
        .await
        .expect_success()
        .expect("alice may create a request");
    }

    /// Has alice create requests `{prefix}-N` until the outcome of one satisfies `done`, and
    /// returns that outcome.
    async fn create_until(
        &self,
        prefix: &str,
        done: impl Fn(&jit_test_support::KubectlOutput) -> bool,
    ) -> jit_test_support::KubectlOutput {
        let deadline = tokio::time::Instant::now() + ACTIVATION;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let created = self
                .kubectl_stdin(
                    User::Alice,
                    &["create", "-f", "-"],
                    &request_yaml(&format!("{prefix}-{attempt}"), None, ""),
                )
                .await;
            if done(&created) {
                return created;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no expected outcome within {ACTIVATION:?}; the last: {created:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The stored request `name`, as the admin reads it.
    async fn stored(&self, name: &str) -> JoinRequest {
        Api::<JoinRequest>::namespaced(self.admin.clone(), &self.namespace)
            .get(name)
            .await
            .expect("the request exists")
    }

    /// Removes the webhook configurations; the namespace stays, as on this control plane
    /// every deleted namespace does.
    async fn finish(self) {
        let name = config_name(&self.namespace);
        let _ = Api::<MutatingWebhookConfiguration>::all(self.admin.clone())
            .delete(&name, &DeleteParams::default())
            .await;
        let _ = Api::<ValidatingWebhookConfiguration>::all(self.admin.clone())
            .delete(&name, &DeleteParams::default())
            .await;
    }
}

fn config_name(namespace: &str) -> String {
    format!("admission-{namespace}")
}

fn settings(
    namespace: &str,
    port: u16,
    certificates: Certificates,
    identities: IdentityMapping,
) -> Settings {
    Settings {
        address: loopback(port),
        certificates,
        mutating_configuration: config_name(namespace),
        validating_configuration: config_name(namespace),
        identities,
    }
}

/// Creates a namespace prepared by [`admit_users`].
async fn prepare_namespace(plane: &ControlPlane, prefix: &str) -> String {
    let namespace = plane.create_namespace(prefix).await.expect("namespace");
    admit_users(plane, &namespace).await;
    namespace
}

/// Labels `namespace` for the webhook configurations, and lets the test users, a user from
/// an OIDC issuer and three service accounts work with JoinRequests there.
async fn admit_users(plane: &ControlPlane, namespace: &str) {
    let namespace = namespace.to_owned();
    let admin = plane.client(User::Admin).expect("admin client");
    let labels = json!({ "metadata": { "labels": { LABEL: namespace } } });
    Api::<Namespace>::all(admin.clone())
        .patch(&namespace, &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .expect("label the namespace");

    let role = Role {
        metadata: ObjectMeta {
            name: Some("requests".to_owned()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![
            PolicyRule {
                api_groups: Some(vec!["jitgroups.dev".to_owned()]),
                resources: Some(vec!["joinrequests".to_owned()]),
                verbs: [
                    "get", "list", "watch", "create", "update", "patch", "delete",
                ]
                .map(str::to_owned)
                .to_vec(),
                ..PolicyRule::default()
            },
            PolicyRule {
                api_groups: Some(vec!["jitgroups.dev".to_owned()]),
                resources: Some(vec!["joinrequests/status".to_owned()]),
                verbs: ["get", "update", "patch"].map(str::to_owned).to_vec(),
                ..PolicyRule::default()
            },
        ]),
    };
    Api::<Role>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &role)
        .await
        .expect("role");

    let user = |name: &str| Subject {
        api_group: Some("rbac.authorization.k8s.io".to_owned()),
        kind: "User".to_owned(),
        name: name.to_owned(),
        ..Subject::default()
    };
    let service_account = |name: &str| Subject {
        kind: "ServiceAccount".to_owned(),
        name: name.to_owned(),
        namespace: Some(namespace.clone()),
        ..Subject::default()
    };
    let mut subjects: Vec<Subject> = [User::Alice, User::Bob, User::Carol, User::Dave]
        .iter()
        .map(|u| user(u.name()))
        .collect();
    subjects.push(user("oidc:erin@example.com"));
    subjects.extend(["robot", "stranger", "controller"].map(service_account));
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("requests".to_owned()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: "requests".to_owned(),
        },
        subjects: Some(subjects),
    };
    Api::<RoleBinding>::namespaced(admin, &namespace)
        .create(&PostParams::default(), &binding)
        .await
        .expect("role binding");
}

/// Creates the two webhook configurations of `namespace`, calling `port` on loopback.
async fn register(admin: &Client, namespace: &str, port: u16, ca_pem: Option<&str>) {
    let name = config_name(namespace);
    let selector = LabelSelector {
        match_labels: Some(BTreeMap::from([(LABEL.to_owned(), namespace.to_owned())])),
        ..LabelSelector::default()
    };
    let (mutating, validating) = configurations(
        &name,
        &name,
        |path| WebhookClientConfig {
            url: Some(format!("https://127.0.0.1:{port}{path}")),
            ca_bundle: ca_pem.map(|ca| ByteString(ca.as_bytes().to_vec())),
            service: None,
        },
        Some(selector),
    );
    Api::<MutatingWebhookConfiguration>::all(admin.clone())
        .create(&PostParams::default(), &mutating)
        .await
        .expect("mutating webhook configuration");
    Api::<ValidatingWebhookConfiguration>::all(admin.clone())
        .create(&PostParams::default(), &validating)
        .await
        .expect("validating webhook configuration");
}

fn request_yaml(name: &str, requester: Option<&str>, more: &str) -> String {
    let requester = requester
        .map(|r| format!("  requester: {r}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: jitgroups.dev/v1alpha1
kind: JoinRequest
metadata:
  name: {name}
spec:
  group: readers
  duration: PT1H
  justification: investigating an incident
{requester}{more}"
    )
}

fn request_object(name: &str, requester: Option<&str>) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "jitgroups.dev/v1alpha1",
        "kind": "JoinRequest",
        "metadata": { "name": name },
        "spec": {
            "group": "readers",
            "duration": "PT1H",
            "justification": "investigating an incident",
            "requester": requester,
        },
    }))
    .expect("a JoinRequest")
}

fn group_object(name: &str, system: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "jitgroups.dev/v1alpha1",
        "kind": "JitGroup",
        "metadata": { "name": name },
        "spec": { "system": system },
    }))
    .expect("a JitGroup")
}

const ENVIRONMENT: &str = "apiVersion: jitgroups.dev/v1alpha1
kind: JitEnvironment
metadata:
  name: prod
spec:
  serviceAccount: jit-prod@ops-project.iam.gserviceaccount.com
  customerId: C0test01
  groupsDomain: example.com
  allowedResources: [projects/shared-prod]
  constraints:
    join:
      expiry: { min: PT1S, max: P1D }
";

fn group_yaml(system: &str, resource: &str) -> String {
    format!(
        "apiVersion: jitgroups.dev/v1alpha1
kind: JitGroup
metadata:
  name: readers
spec:
  system: {system}
  access:
    - principal: user:alice@example.com
      allow: JOIN
  privileges:
    iam:
      - resource: {resource}
        role: roles/cloudsql.viewer
"
    )
}

/// `[{op: add, path, value}]` as a kubectl `--patch` argument.
fn add(path: &str, value: serde_json::Value) -> String {
    json!([{ "op": "add", "path": path, "value": value }]).to_string()
}

#[tokio::test]
async fn a_request_in_someone_elses_name_is_refused_naming_both_people() {
    let world = World::start("adm-forged-requester").await;

    let refusal = world
        .kubectl_stdin(
            User::Alice,
            &["create", "-f", "-"],
            &request_yaml("for-bob", Some("bob@example.com"), ""),
        )
        .await
        .expect_failure()
        .expect("alice may not ask for bob");

    assert!(
        refusal.contains(
            "spec.requester: Forbidden: alice@example.com cannot ask in the name of \
             bob@example.com"
        ),
        "{refusal}"
    );
    let missing = world
        .kubectl(User::Alice, &["get", "joinrequest", "for-bob"])
        .await;
    assert!(
        missing
            .expect_failure()
            .expect("nothing stored")
            .contains("NotFound")
    );
    world.finish().await;
}

#[tokio::test]
async fn a_request_without_a_requester_is_recorded_in_the_name_of_its_creator() {
    let world = World::start("adm-requester").await;

    world.alice_asks("alice-readers").await;
    let requester = world
        .kubectl(
            User::Alice,
            &[
                "get",
                "joinrequest",
                "alice-readers",
                "-o",
                "jsonpath={.spec.requester}",
            ],
        )
        .await
        .expect_success()
        .expect("alice reads her request");
    assert_eq!(requester, "alice@example.com");

    world
        .kubectl_stdin(
            User::Bob,
            &["create", "-f", "-"],
            &request_yaml("bob-readers", Some("Bob@Example.com"), ""),
        )
        .await
        .expect_success()
        .expect("bob may name himself, in any case");
    assert_eq!(
        world.stored("bob-readers").await.spec.requester,
        "bob@example.com"
    );
    world.finish().await;
}

#[tokio::test]
async fn a_new_request_cannot_arrive_with_decisions() {
    let world = World::start("adm-early-decision").await;

    let refusal = world
        .kubectl_stdin(
            User::Alice,
            &["create", "-f", "-"],
            &request_yaml(
                "pre-approved",
                Some("alice@example.com"),
                "  approvals:\n    - decision: Approve\n",
            ),
        )
        .await
        .expect_failure()
        .expect("a request with a decision is refused");
    assert!(
        refusal.contains("spec.approvals: Forbidden: a new request carries no decisions"),
        "{refusal}"
    );
    world.finish().await;
}

#[tokio::test]
async fn the_duration_of_a_request_cannot_change_after_it_is_made() {
    let world = World::start("adm-immutable").await;
    world.alice_asks("alice-readers").await;

    let refusal = world
        .kubectl(
            User::Alice,
            &[
                "patch",
                "joinrequest",
                "alice-readers",
                "--type",
                "merge",
                "-p",
                r#"{"spec":{"duration":"P1D"}}"#,
            ],
        )
        .await
        .expect_failure()
        .expect("the duration is fixed");

    assert!(
        refusal.contains("spec.duration: Forbidden: the spec of a JoinRequest cannot change"),
        "{refusal}"
    );
    assert_eq!(
        world.stored("alice-readers").await.spec.duration.as_deref(),
        Some("PT1H")
    );
    world.finish().await;
}

#[tokio::test]
async fn an_approver_appending_a_decision_is_recorded_with_their_name_and_the_time() {
    let world = World::start("adm-approve").await;
    world.alice_asks("alice-readers").await;

    let before = jiff::Timestamp::now();
    world
        .kubectl(
            User::Bob,
            &[
                "patch",
                "joinrequest",
                "alice-readers",
                "--type",
                "json",
                "-p",
                &add(
                    "/spec/approvals",
                    json!([{ "decision": "Approve", "comment": "fine" }]),
                ),
            ],
        )
        .await
        .expect_success()
        .expect("bob may add his decision");
    world
        .kubectl(
            User::Carol,
            &[
                "patch",
                "joinrequest",
                "alice-readers",
                "--type",
                "json",
                "-p",
                &add("/spec/approvals/-", json!({ "decision": "Deny" })),
            ],
        )
        .await
        .expect_success()
        .expect("carol may add hers");
    let after = jiff::Timestamp::now();

    let approvals = world.stored("alice-readers").await.spec.approvals;
    let approvers: Vec<_> = approvals.iter().map(|a| a.approver.as_deref()).collect();
    assert_eq!(
        approvers,
        [Some("bob@example.com"), Some("carol@example.com")]
    );
    assert_eq!(approvals[0].comment.as_deref(), Some("fine"));
    let decided = approvals[0].decided_at.as_ref().expect("decidedAt").0;
    assert!(
        decided.as_second() >= before.as_second() && decided.as_second() <= after.as_second(),
        "bob decided at {decided}, between {before} and {after}"
    );
    world.finish().await;
}

#[tokio::test]
async fn a_decision_forged_in_someone_elses_name_is_refused() {
    let world = World::start("adm-forged-decision").await;
    world.alice_asks("alice-readers").await;

    let forged = json!([{ "decision": "Approve", "approver": "bob@example.com" }]);
    let refusal = world
        .kubectl(
            User::Alice,
            &[
                "patch",
                "joinrequest",
                "alice-readers",
                "--type",
                "json",
                "-p",
                &add("/spec/approvals", forged),
            ],
        )
        .await
        .expect_failure()
        .expect("alice may not approve as bob");

    assert!(
        refusal.contains(
            "spec.approvals[0].approver: Forbidden: alice@example.com cannot record a decision \
             in the name of bob@example.com"
        ),
        "{refusal}"
    );
    assert!(
        world
            .stored("alice-readers")
            .await
            .spec
            .approvals
            .is_empty()
    );
    world.finish().await;
}

#[tokio::test]
async fn a_recorded_decision_cannot_be_edited_or_removed_even_by_its_author() {
    let world = World::start("adm-decision-fixed").await;
    world.alice_asks("alice-readers").await;
    world
        .kubectl(
            User::Bob,
            &[
                "patch",
                "joinrequest",
                "alice-readers",
                "--type",
                "json",
                "-p",
                &add("/spec/approvals", json!([{ "decision": "Approve" }])),
            ],
        )
        .await
        .expect_success()
        .expect("bob approves");

    let edit = json!([{ "op": "replace", "path": "/spec/approvals/0/decision", "value": "Deny" }]);
    let refusal = world
        .kubectl(
            User::Carol,
            &[
                "patch",
                "joinrequest",
                "alice-readers",
                "--type",
                "json",
                "-p",
                &edit.to_string(),
            ],
        )
        .await
        .expect_failure()
        .expect("carol may not turn bob's approval into a denial");
    assert!(
        refusal.contains("spec.approvals[0]: Forbidden: a recorded decision cannot be changed"),
        "{refusal}"
    );

    let removal = json!([{ "op": "remove", "path": "/spec/approvals/0" }]);
    let refusal = world
        .kubectl(
            User::Bob,
            &[
                "patch",
                "joinrequest",
                "alice-readers",
                "--type",
                "json",
                "-p",
                &removal.to_string(),
            ],
        )
        .await
        .expect_failure()
        .expect("bob may not withdraw his recorded approval");
    assert!(
        refusal.contains("spec.approvals: Forbidden: recorded decisions cannot be removed"),
        "{refusal}"
    );

    let approvals = world.stored("alice-readers").await.spec.approvals;
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].approver.as_deref(), Some("bob@example.com"));
    world.finish().await;
}

#[tokio::test]
async fn an_unmapped_service_account_is_refused_and_a_mapped_one_asks_as_its_google_identity() {
    let robot = |namespace: &str| format!("system:serviceaccount:{namespace}:robot");
    let mapped = World::start_mapping("adm-service-accounts", |namespace| {
        let mapping = format!("{}=robot@example.com", robot(namespace));
        IdentityMapping::new(
            None,
            [mapping.parse::<ServiceAccountMapping>().expect("mapping")],
        )
    })
    .await;

    let stranger = format!("system:serviceaccount:{}:stranger", mapped.namespace);
    let refusal = mapped
        .kubectl_stdin(
            User::Admin,
            &["create", "--as", &stranger, "-f", "-"],
            &request_yaml("stranger-readers", Some("robot@example.com"), ""),
        )
        .await
        .expect_failure()
        .expect("an unmapped service account may not ask");
    assert!(
        refusal.contains(&format!(
            "spec.requester: Forbidden: the Kubernetes service account {stranger} has no Google \
             identity"
        )),
        "{refusal}"
    );

    mapped
        .kubectl_stdin(
            User::Admin,
            &[
                "create",
                "--as",
                &robot(&mapped.namespace),
                "--validate=false",
                "-f",
                "-",
            ],
            &request_yaml("robot-readers", None, ""),
        )
        .await
        .expect_success()
        .expect("the mapped service account may ask");
    assert_eq!(
        mapped.stored("robot-readers").await.spec.requester,
        "robot@example.com"
    );
    mapped.finish().await;
}

#[tokio::test]
async fn the_controllers_finalizer_and_status_updates_pass_without_a_google_identity() {
    let world = World::start("adm-controller").await;
    world.alice_asks("alice-readers").await;
    let controller = world.impersonating(&format!(
        "system:serviceaccount:{}:controller",
        world.namespace
    ));
    let requests = world.requests(controller);

    let finalizer = json!({ "metadata": { "finalizers": ["jitgroups.dev/membership"] } });
    requests
        .patch(
            "alice-readers",
            &PatchParams::default(),
            &Patch::Merge(&finalizer),
        )
        .await
        .expect("the controller adds its finalizer");
    let status = json!({ "status": { "phase": "Pending", "reason": "ApprovalRequired" } });
    requests
        .patch_status(
            "alice-readers",
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .expect("the controller writes the status");
    let removal = json!({ "metadata": { "finalizers": null } });
    requests
        .patch(
            "alice-readers",
            &PatchParams::default(),
            &Patch::Merge(&removal),
        )
        .await
        .expect("the controller removes its finalizer");

    let stored = world.stored("alice-readers").await;
    assert_eq!(
        stored.status.and_then(|s| s.reason).as_deref(),
        Some("ApprovalRequired")
    );
    world.finish().await;
}

#[tokio::test]
async fn an_invalid_group_applied_with_kubectl_is_refused_naming_the_field() {
    let world = World::start("adm-bad-group").await;
    world
        .kubectl_stdin(User::Admin, &["apply", "-f", "-"], ENVIRONMENT)
        .await
        .expect_success()
        .expect("the environment is valid");

    let refusal = world
        .kubectl_stdin(
            User::Admin,
            &["apply", "-f", "-"],
            &group_yaml("data", "projects/elsewhere"),
        )
        .await
        .expect_failure()
        .expect("a resource outside the environment is refused");

    assert!(
        refusal.contains(
            "spec.privileges.iam[0].resource: Forbidden: \"projects/elsewhere\": the \
             environment's allowedResources permit only: projects/shared-prod"
        ),
        "{refusal}"
    );
    let groups: Api<JitGroup> = Api::namespaced(world.admin.clone(), &world.namespace);
    assert!(groups.get_opt("readers").await.expect("get").is_none());

    world
        .kubectl_stdin(
            User::Admin,
            &["apply", "-f", "-"],
            &group_yaml("data", "projects/shared-prod"),
        )
        .await
        .expect_success()
        .expect("the corrected group is admitted");
    world.finish().await;
}

#[tokio::test]
async fn an_invalid_environment_applied_with_kubectl_is_refused_naming_the_field() {
    let world = World::start("adm-bad-env").await;

    let refusal = world
        .kubectl_stdin(
            User::Admin,
            &["apply", "-f", "-"],
            &ENVIRONMENT.replace("C0test01", "\"12345\""),
        )
        .await
        .expect_failure()
        .expect("a customer id must look like one");

    assert!(
        refusal.contains("spec.customerId: Invalid value: \"12345\": must be a Cloud Identity"),
        "{refusal}"
    );
    world.finish().await;
}

#[tokio::test]
async fn a_group_applied_before_its_environment_is_checked_alone_and_admitted_with_a_warning() {
    let world = World::start("adm-no-env").await;

    let refusal = world
        .kubectl_stdin(
            User::Admin,
            &["apply", "-f", "-"],
            &group_yaml("data.warehouse", "projects/anything"),
        )
        .await
        .expect_failure()
        .expect("the group's own names are checked");
    assert!(
        refusal.contains("spec.system: Invalid value: \"data.warehouse\""),
        "{refusal}"
    );

    let applied = world
        .kubectl_stdin(
            User::Admin,
            &["apply", "-f", "-"],
            &group_yaml("data", "projects/anything"),
        )
        .await;
    assert!(applied.success(), "{}", applied.stderr);
    assert!(
        applied.stderr.contains("Warning:")
            && applied.stderr.contains(&format!(
                "namespace {} has no JitEnvironment yet, so the group was checked on its own",
                world.namespace
            )),
        "{}",
        applied.stderr
    );
    world.finish().await;
}

#[tokio::test]
async fn a_username_prefix_is_stripped_and_usernames_without_it_are_refused() {
    let world = World::start_mapping("adm-prefix", |_| {
        IdentityMapping::new(Some("oidc:".to_owned()), [])
    })
    .await;

    world
        .kubectl_stdin(
            User::Admin,
            &[
                "create",
                "--as",
                "oidc:erin@example.com",
                "--validate=false",
                "-f",
                "-",
            ],
            &request_yaml("erin-readers", None, ""),
        )
        .await
        .expect_success()
        .expect("erin, from the OIDC issuer, may ask");
    assert_eq!(
        world.stored("erin-readers").await.spec.requester,
        "erin@example.com"
    );

    let refusal = world
        .kubectl_stdin(
            User::Alice,
            &["create", "-f", "-"],
            &request_yaml("alice-readers", None, ""),
        )
        .await
        .expect_failure()
        .expect("a username from another authenticator is not mapped");
    assert!(
        refusal.contains(
            "the Kubernetes user alice@example.com has no Google identity: only usernames that \
             start with \"oidc:\" are mapped to Google users"
        ),
        "{refusal}"
    );
    world.finish().await;
}

#[tokio::test]
async fn a_generated_certificate_is_trusted_once_its_authority_is_in_the_configurations() {
    let plane = ControlPlane::shared();
    let namespace = prepare_namespace(plane, "adm-self-signed").await;
    let admin = plane.client(User::Admin).expect("admin client");
    let port = free_port();
    register(&admin, &namespace, port, None).await;

    let webhook = Webhook::start(
        admin.clone(),
        settings(
            &namespace,
            port,
            Certificates::SelfSigned {
                hosts: vec!["127.0.0.1".to_owned()],
            },
            IdentityMapping::default(),
        ),
    )
    .await
    .expect("the webhook writes its authority and starts");

    let written = Api::<ValidatingWebhookConfiguration>::all(admin.clone())
        .get(&config_name(&namespace))
        .await
        .expect("configuration");
    for hook in written.webhooks.unwrap_or_default() {
        let bundle = hook.client_config.ca_bundle.expect("a caBundle").0;
        assert!(
            bundle.starts_with(b"-----BEGIN CERTIFICATE-----"),
            "{}",
            hook.name
        );
    }
    let world = World {
        plane,
        namespace,
        admin,
        webhook,
    };
    world.wait_until_active().await;
    world.alice_asks("alice-readers").await;
    assert_eq!(
        world.stored("alice-readers").await.spec.requester,
        "alice@example.com"
    );
    world.finish().await;
}

#[tokio::test]
async fn a_certificate_read_from_a_directory_is_replaced_when_the_files_change() {
    let plane = ControlPlane::shared();
    let namespace = prepare_namespace(plane, "adm-cert-dir").await;
    let admin = plane.client(User::Admin).expect("admin client");
    let dir = plane.dir().join(format!("webhook-{namespace}"));
    std::fs::create_dir_all(&dir).expect("certificate directory");
    let write = |certificate: &LoopbackCertificate| {
        std::fs::write(dir.join("tls.key"), &certificate.key_pem).expect("tls.key");
        std::fs::write(dir.join("tls.crt"), &certificate.cert_pem).expect("tls.crt");
    };
    let first = LoopbackCertificate::generate().expect("certificate");
    write(&first);

    let webhook = Webhook::start(
        admin.clone(),
        settings(
            &namespace,
            0,
            Certificates::Directory {
                dir: dir.clone(),
                reload_interval: Duration::from_millis(200),
            },
            IdentityMapping::default(),
        ),
    )
    .await
    .expect("the webhook reads its certificate");
    let port = webhook.address().port();
    register(&admin, &namespace, port, Some(&first.ca_pem)).await;
    let world = World {
        plane,
        namespace,
        admin,
        webhook,
    };
    world.wait_until_active().await;
    world.alice_asks("first").await;

    // A renewal by another authority. The API server is told to trust only the new one
    // first, so requests fail until the webhook serves the new files.
    let renewed = LoopbackCertificate::generate().expect("certificate");
    let trust_renewed = json!({ "webhooks": [{
        "name": "mutate.joinrequests.jitgroups.dev",
        "clientConfig": { "caBundle": ByteString(renewed.ca_pem.clone().into_bytes()) },
    }]});
    Api::<MutatingWebhookConfiguration>::all(world.admin.clone())
        .patch(
            &config_name(&world.namespace),
            &PatchParams::default(),
            &Patch::Strategic(&trust_renewed),
        )
        .await
        .expect("trust the renewed certificate");
    let untrusted = world
        .create_until("distrusted", |created| {
            !created.success() && created.stderr.contains("x509")
        })
        .await;
    assert!(
        untrusted.stderr.contains("failed calling webhook"),
        "{}",
        untrusted.stderr
    );

    write(&renewed);
    world
        .create_until("renewed", |created| created.success())
        .await;
    world.finish().await;
}

#[tokio::test]
async fn a_request_approved_with_kubectl_by_an_approver_becomes_active() {
    let h = Harness::start("adm-end-to-end").await;
    admit_users(h.plane, &h.namespace).await;
    let world = World::start_in(h.namespace.clone(), |_| IdentityMapping::default()).await;
    h.apply(&environment("prod")).await;
    h.apply(&group(
        "readers",
        vec![
            entry("user:alice@example.com", "JOIN"),
            entry("user:bob@example.com", "APPROVE_OTHERS"),
        ],
        vec![privilege("projects/shared-prod", "roles/cloudsql.viewer")],
    ))
    .await;
    let wait = Duration::from_secs(30);
    h.wait_for::<JitGroup>("readers", wait, |g| {
        g.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == READY && c.status == "True")
        })
    })
    .await;

    world.alice_asks("alice-readers").await;
    h.wait_for::<JoinRequest>("alice-readers", wait, |r| {
        r.status.as_ref().and_then(|s| s.phase) == Some(Phase::Pending)
    })
    .await;
    world
        .kubectl(
            User::Bob,
            &[
                "patch",
                "joinrequest",
                "alice-readers",
                "--type",
                "json",
                "-p",
                &add("/spec/approvals", json!([{ "decision": "Approve" }])),
            ],
        )
        .await
        .expect_success()
        .expect("bob approves");

    let active = h
        .wait_for::<JoinRequest>("alice-readers", wait, |r| {
            r.status.as_ref().and_then(|s| s.phase) == Some(Phase::Active)
        })
        .await;
    let status = active.status.expect("status");
    assert_eq!(status.decisions.len(), 1);
    assert_eq!(status.decisions[0].approver, "bob@example.com");
    assert!(status.decisions[0].counted, "{:?}", status.decisions[0]);
    let cloud = h
        .cloud_group("jit.prod.data.readers@example.com")
        .await
        .expect("the Cloud Identity group");
    assert!(
        cloud
            .memberships
            .iter()
            .any(|m| m.member == "alice@example.com"),
        "{:?}",
        cloud.memberships
    );
    world.finish().await;
}

#[test]
fn the_rendered_manifests_register_the_webhooks_the_controller_serves() {
    use k8s_openapi::api::admissionregistration::v1::ServiceReference;
    use serde::Deserialize;

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/jit-groups-controller.yaml"
    );
    let text = std::fs::read_to_string(path).expect("deploy/jit-groups-controller.yaml");
    let documents: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|document| serde_yaml::Value::deserialize(document).expect("a YAML document"))
        .collect();
    let of_kind = |kind: &str| {
        documents
            .iter()
            .find(|d| d["kind"].as_str() == Some(kind))
            .cloned()
            .unwrap_or_else(|| panic!("deploy/ has no {kind}"))
    };
    let mutating: MutatingWebhookConfiguration =
        serde_yaml::from_value(of_kind("MutatingWebhookConfiguration")).expect("mutating");
    let validating: ValidatingWebhookConfiguration =
        serde_yaml::from_value(of_kind("ValidatingWebhookConfiguration")).expect("validating");

    let (expected_mutating, expected_validating) = configurations(
        "jit-groups-controller",
        "jit-groups-controller",
        |path| WebhookClientConfig {
            service: Some(ServiceReference {
                name: "jit-groups-controller-webhook".to_owned(),
                namespace: "jit-groups-controller".to_owned(),
                path: Some(path.to_owned()),
                port: Some(443),
            }),
            ..WebhookClientConfig::default()
        },
        None,
    );
    assert_eq!(mutating.webhooks, expected_mutating.webhooks);
    assert_eq!(validating.webhooks, expected_validating.webhooks);
}
