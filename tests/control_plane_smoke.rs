//! The test platform itself: a real kube-apiserver on loopback serves built-in and custom
//! resources, knows who is calling, and lets RBAC decide what each user may do.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::Duration;

use jit_test_support::{ControlPlane, LoopbackCertificate, User};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ObjectMeta, Patch, PatchParams, PostParams,
};
use kube::{Client, Error};

/// A CRD of this test's own, so that the smoke test does not depend on the controller's.
const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.jitgroups.dev
spec:
  group: smoke.jitgroups.dev
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size:
                type: integer
"#;

fn widgets(client: Client, namespace: &str) -> Api<DynamicObject> {
    let kind = GroupVersionKind::gvk("smoke.jitgroups.dev", "v1", "Widget");
    Api::namespaced_with(
        client,
        namespace,
        &ApiResource::from_gvk_with_plural(&kind, "widgets"),
    )
}

fn config_map(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some([("greeting".to_owned(), "hello".to_owned())].into()),
        ..ConfigMap::default()
    }
}

/// Lets `user` read ConfigMaps in `namespace`.
async fn grant_config_map_reading(
    plane: &ControlPlane,
    namespace: &str,
    user: User,
) -> anyhow::Result<()> {
    let admin = plane.client(User::Admin)?;
    let role = Role {
        metadata: ObjectMeta {
            name: Some("config-map-reader".to_owned()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".to_owned()]),
            verbs: vec!["get".to_owned(), "list".to_owned()],
            ..PolicyRule::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &role)
        .await?;

    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some(format!("{}-reads-config-maps", user.handle())),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: "config-map-reader".to_owned(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "User".to_owned(),
            name: user.name().to_owned(),
            ..Subject::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin, namespace)
        .create(&PostParams::default(), &binding)
        .await?;
    Ok(())
}

/// Asks the server, as `user`, whether `user` may list ConfigMaps in `namespace`.
async fn may_list_config_maps(
    plane: &ControlPlane,
    namespace: &str,
    user: User,
) -> anyhow::Result<bool> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_owned()),
                verb: Some("list".to_owned()),
                resource: Some("configmaps".to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(plane.client(user)?)
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answer.status.is_some_and(|status| status.allowed))
}

#[tokio::test]
async fn admin_creates_config_maps_and_custom_objects_in_a_fresh_namespace() -> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    let namespace = plane.create_namespace("smoke-admin").await?;
    plane.install_crds_yaml(WIDGET_CRD).await?;
    let admin = plane.client(User::Admin)?;

    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &namespace);
    config_maps
        .create(&PostParams::default(), &config_map("settings"))
        .await?;
    let stored = config_maps.get("settings").await?;
    assert_eq!(
        stored
            .data
            .unwrap_or_default()
            .get("greeting")
            .map(String::as_str),
        Some("hello")
    );

    let widget: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "smoke.jitgroups.dev/v1",
        "kind": "Widget",
        "metadata": { "name": "sprocket" },
        "spec": { "size": 3 },
    }))?;
    widgets(admin, &namespace)
        .create(&PostParams::default(), &widget)
        .await?;
    let stored = widgets(plane.client(User::Admin)?, &namespace)
        .get("sprocket")
        .await?;
    assert_eq!(stored.data["spec"]["size"], 3);

    let listed = plane
        .kubectl(
            User::Admin,
            [
                "get",
                "widgets",
                "--namespace",
                &namespace,
                "--output",
                "name",
            ],
        )
        .await?
        .expect_success()?;
    assert_eq!(listed.trim(), "widget.smoke.jitgroups.dev/sprocket");
    Ok(())
}

#[tokio::test]
async fn an_ordinary_user_is_refused_by_her_email_until_a_role_binding_lets_her_read()
-> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    let namespace = plane.create_namespace("smoke-rbac").await?;
    Api::<ConfigMap>::namespaced(plane.client(User::Admin)?, &namespace)
        .create(&PostParams::default(), &config_map("settings"))
        .await?;
    let as_alice: Api<ConfigMap> = Api::namespaced(plane.client(User::Alice)?, &namespace);

    let refusal = as_alice
        .get("settings")
        .await
        .expect_err("alice has no role yet");
    let Error::Api(status) = refusal else {
        panic!("expected a refusal, got {refusal:?}")
    };
    assert_eq!(status.code, 403);
    assert!(
        status.message.contains("User \"alice@example.com\""),
        "{}",
        status.message
    );
    assert!(!may_list_config_maps(plane, &namespace, User::Alice).await?);

    grant_config_map_reading(plane, &namespace, User::Alice).await?;

    assert!(may_list_config_maps(plane, &namespace, User::Alice).await?);
    let read = as_alice.get("settings").await?;
    assert_eq!(
        read.data
            .unwrap_or_default()
            .get("greeting")
            .map(String::as_str),
        Some("hello")
    );
    assert!(!may_list_config_maps(plane, &namespace, User::Bob).await?);
    Ok(())
}

#[tokio::test]
async fn kubectl_acts_as_the_user_whose_kubeconfig_it_is_given() -> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    let namespace = plane.create_namespace("smoke-kubectl").await?;
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n";
    plane
        .kubectl_with_stdin(
            User::Admin,
            ["apply", "--namespace", &namespace, "-f", "-"],
            manifest,
        )
        .await?
        .expect_success()?;

    let refusal = plane
        .kubectl(
            User::Carol,
            ["get", "configmap", "settings", "--namespace", &namespace],
        )
        .await?
        .expect_failure()?;
    assert!(
        refusal.contains("User \"carol@example.com\" cannot get resource"),
        "{refusal}"
    );

    grant_config_map_reading(plane, &namespace, User::Carol).await?;
    let value = plane
        .kubectl(
            User::Carol,
            [
                "get",
                "configmap",
                "settings",
                "--namespace",
                &namespace,
                "-o",
                "jsonpath={.data.a}",
            ],
        )
        .await?
        .expect_success()?;
    assert_eq!(value, "b");
    Ok(())
}

#[tokio::test]
async fn kube_apiserver_calls_admission_webhooks_on_loopback() -> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    let namespace = plane.create_namespace("smoke-webhook").await?;
    let admin = plane.client(User::Admin)?;
    let label = "smoke.jitgroups.dev/webhook";
    let labels = serde_json::json!({ "metadata": { "labels": { label: namespace } } });
    Api::<Namespace>::all(admin.clone())
        .patch(&namespace, &PatchParams::default(), &Patch::Merge(&labels))
        .await?;

    // Nothing listens on this port, so every call of the webhook fails, and with the
    // failure policy `Fail` the API server refuses the object, naming the webhook's URL.
    let closed_port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let certificate = LoopbackCertificate::generate()?;
    let webhook = ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: "refuse-config-maps.smoke.jitgroups.dev".to_owned(),
            client_config: WebhookClientConfig {
                url: Some(format!("https://127.0.0.1:{closed_port}/validate")),
                ca_bundle: Some(ByteString(certificate.ca_pem.into_bytes())),
                service: None,
            },
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec![String::new()]),
                api_versions: Some(vec!["v1".to_owned()]),
                operations: Some(vec!["CREATE".to_owned()]),
                resources: Some(vec!["configmaps".to_owned()]),
                scope: Some("Namespaced".to_owned()),
            }]),
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(label.to_owned(), namespace.clone())])),
                ..LabelSelector::default()
            }),
            failure_policy: Some("Fail".to_owned()),
            side_effects: "None".to_owned(),
            admission_review_versions: vec!["v1".to_owned()],
            timeout_seconds: Some(5),
            ..ValidatingWebhook::default()
        }]),
    };
    Api::<ValidatingWebhookConfiguration>::all(admin.clone())
        .create(&PostParams::default(), &webhook)
        .await?;

    // The API server picks up new webhook configurations a moment after they are created.
    let config_maps: Api<ConfigMap> = Api::namespaced(admin, &namespace);
    let mut refusal = None;
    for attempt in 0..50 {
        match config_maps
            .create(
                &PostParams::default(),
                &config_map(&format!("probe-{attempt}")),
            )
            .await
        {
            Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(error) => {
                refusal = Some(error.to_string());
                break;
            }
        }
    }
    let refusal = refusal.expect("the webhook was called within ten seconds");
    assert!(refusal.contains("failed calling webhook"), "{refusal}");
    assert!(
        refusal.contains(&format!("127.0.0.1:{closed_port}/validate")),
        "{refusal}"
    );
    Ok(())
}
