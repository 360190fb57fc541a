//! The plain manifests in `deploy/`, rendered from the Helm chart by
//! `hack/render-manifests.sh`, applied for real to a real kube-apiserver: they must install
//! cleanly, give the controller's service account exactly what the controller does, and
//! give people the roles the chart promises.
//!
//! The test control plane has no kube-controller-manager, so the built-in `view`, `edit`
//! and `admin` ClusterRoles exist but stay empty: nothing aggregates rules into them. The
//! tests therefore bind the chart's concrete ClusterRoles, and check separately that the
//! built-in roles' aggregation selectors pick those roles up.
//!
//! Nor does it have a scheduler, kubelet or cluster DNS, so the controller's pod never runs
//! and the admission webhooks that `deploy/` registers cannot be reached: every create of a
//! JIT resource that RBAC lets through is then refused by the API server's failed call to
//! the webhook. Because admission comes after authorization, that refusal is how these
//! tests tell "allowed by RBAC" from "forbidden by RBAC" for real requests.

use std::ffi::OsStr;
use std::path::PathBuf;

use jit_test_support::{ControlPlane, User};

/// Where `deploy/` installs the controller.
const NAMESPACE: &str = "jit-groups-controller";
/// The controller's service account as the API server names it.
const CONTROLLER: &str = "system:serviceaccount:jit-groups-controller:jit-groups-controller";
const VIEW_ROLE: &str = "jit-groups-controller-view";
const EDIT_ROLE: &str = "jit-groups-controller-edit";
const APPROVER_ROLE: &str = "jit-groups-approver";
const POLICY_ADMIN_ROLE: &str = "jit-groups-policy-admin";
/// The webhook configurations' name, which the controller patches with its generated CA.
const WEBHOOKS: &str = "jit-groups-controller";

/// How the API server answered a create.
#[derive(Debug)]
enum Created {
    /// RBAC refused it.
    Forbidden(String),
    /// RBAC let it through and the API server tried to call the webhooks.
    ReachedTheWebhooks(String),
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Applies `deploy/` as the admin with server-side apply, as the README tells operators to,
/// once per test binary, and returns what kubectl printed. Tests share the result because
/// two concurrent first applies race to create the same objects.
async fn install(plane: &'static ControlPlane) -> anyhow::Result<String> {
    static INSTALLED: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    INSTALLED
        .get_or_try_init(|| apply_deploy(plane))
        .await
        .cloned()
}

/// Applies `deploy/` as the admin with server-side apply.
async fn apply_deploy(plane: &ControlPlane) -> anyhow::Result<String> {
    let deploy = repository().join("deploy");
    plane
        .kubectl(
            User::Admin,
            [
                OsStr::new("apply"),
                OsStr::new("--server-side"),
                OsStr::new("--filename"),
                deploy.as_os_str(),
            ],
        )
        .await?
        .expect_success()
}

/// What `kubectl auth can-i` answers for `who` (a user impersonated by the admin), with
/// `args` such as `["create", "joinrequests.jitgroups.dev", "--namespace", "x"]`.
async fn can(plane: &ControlPlane, who: &str, args: &[&str]) -> anyhow::Result<bool> {
    let mut command = vec!["auth", "can-i"];
    command.extend_from_slice(args);
    command.extend_from_slice(&["--as", who]);
    let output = plane.kubectl(User::Admin, &command).await?;
    match output.stdout.trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => anyhow::bail!(
            "`{}` answered neither yes nor no: {} {}",
            output.command,
            output.stdout.trim(),
            output.stderr.trim()
        ),
    }
}

/// Asserts every answer of `checks` (`(expected, args)`) for `who`, reporting all wrong
/// answers at once.
async fn assert_answers(
    plane: &ControlPlane,
    who: &str,
    checks: &[(bool, Vec<&str>)],
) -> anyhow::Result<()> {
    let mut wrong = Vec::new();
    for (expected, args) in checks {
        let answer = can(plane, who, args).await?;
        if answer != *expected {
            wrong.push(format!(
                "can-i {} answered {} instead of {}",
                args.join(" "),
                if answer { "yes" } else { "no" },
                if *expected { "yes" } else { "no" },
            ));
        }
    }
    assert!(wrong.is_empty(), "{who}:\n{}", wrong.join("\n"));
    Ok(())
}

/// Binds the ClusterRole `role` to `user` in `namespace`.
async fn bind(plane: &ControlPlane, namespace: &str, role: &str, user: User) -> anyhow::Result<()> {
    let binding = format!("{}-{role}", user.handle());
    plane
        .kubectl(
            User::Admin,
            [
                "create",
                "rolebinding",
                &binding,
                "--namespace",
                namespace,
                "--clusterrole",
                role,
                "--user",
                user.name(),
            ],
        )
        .await?
        .expect_success()?;
    Ok(())
}

/// Creates the object of `manifest` as `user` and says how the API server refused it; any
/// other answer, success included, is an error, because `deploy/`'s webhooks are
/// registered but unreachable here.
async fn create_as(plane: &ControlPlane, user: User, manifest: &str) -> anyhow::Result<Created> {
    let refusal = plane
        .kubectl_with_stdin(user, ["create", "--filename", "-"], manifest)
        .await?
        .expect_failure()?;
    if refusal.contains("Error from server (Forbidden)") {
        Ok(Created::Forbidden(refusal))
    } else if refusal.contains("failed calling webhook") {
        Ok(Created::ReachedTheWebhooks(refusal))
    } else {
        anyhow::bail!("neither RBAC nor the webhooks refused the create: {refusal}")
    }
}

fn join_request(namespace: &str, requester: User) -> String {
    format!(
        "apiVersion: jitgroups.dev/v1alpha1
kind: JoinRequest
metadata:
  name: {handle}-readers
  namespace: {namespace}
spec:
  group: readers
  requester: {name}
  duration: PT1H
  justification: Looking into ticket INC-1234
",
        handle = requester.handle(),
        name = requester.name(),
    )
}

fn jit_group(namespace: &str) -> String {
    format!(
        "apiVersion: jitgroups.dev/v1alpha1
kind: JitGroup
metadata:
  name: readers
  namespace: {namespace}
spec:
  system: data
"
    )
}

#[tokio::test]
async fn the_rendered_manifests_install_the_controller_on_a_real_api_server() -> anyhow::Result<()>
{
    let plane = ControlPlane::shared();
    let applied = install(plane).await?;
    for object in [
        "customresourcedefinition.apiextensions.k8s.io/joinrequests.jitgroups.dev",
        "namespace/jit-groups-controller",
        "serviceaccount/jit-groups-controller",
        "clusterrole.rbac.authorization.k8s.io/jit-groups-controller",
        "clusterrolebinding.rbac.authorization.k8s.io/jit-groups-controller",
        "role.rbac.authorization.k8s.io/jit-groups-controller-leader-election",
        "clusterrole.rbac.authorization.k8s.io/jit-groups-controller-webhook-ca",
        "service/jit-groups-controller-metrics",
        "service/jit-groups-controller-webhook",
        "deployment.apps/jit-groups-controller",
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/jit-groups-controller",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/jit-groups-controller",
    ] {
        assert!(
            applied.contains(&format!("{object} serverside-applied")),
            "{object} missing from:\n{applied}"
        );
    }

    let pod = plane
        .kubectl(
            User::Admin,
            [
                "get",
                "deployment",
                "jit-groups-controller",
                "--namespace",
                NAMESPACE,
                "--output",
                "jsonpath={.spec.template.spec.serviceAccountName} \
                 {.spec.template.spec.containers[0].args} \
                 {.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem} \
                 {.spec.template.spec.containers[0].readinessProbe.httpGet.path}",
            ],
        )
        .await?
        .expect_success()?;
    assert!(
        pod.starts_with("jit-groups-controller "),
        "service account: {pod}"
    );
    assert!(pod.contains(r#""run""#), "args: {pod}");
    for arg in [
        "--log-format=json",
        "--leader-election=true",
        "--webhook-address=0.0.0.0:9443",
        "--webhook-service-name=jit-groups-controller-webhook",
        "--webhook-validating-configuration=jit-groups-controller",
    ] {
        assert!(pod.contains(arg), "{arg} missing from the args: {pod}");
    }
    assert!(pod.ends_with(" true /readyz"), "security and probe: {pod}");

    let again = apply_deploy(plane).await?;
    assert!(
        again.contains("deployment.apps/jit-groups-controller serverside-applied"),
        "{again}"
    );
    Ok(())
}

#[tokio::test]
async fn the_controller_may_watch_finalize_and_report_on_jit_resources_in_every_namespace()
-> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    install(plane).await?;
    let namespace = plane.create_namespace("deploy-controller").await?;
    let ns = namespace.as_str();

    let mut checks = Vec::new();
    for resource in [
        "jitenvironments.jitgroups.dev",
        "jitgroups.jitgroups.dev",
        "joinrequests.jitgroups.dev",
    ] {
        for verb in ["list", "watch"] {
            checks.push((true, vec![verb, resource, "--all-namespaces"]));
        }
        for verb in ["get", "list", "watch", "patch", "update"] {
            checks.push((true, vec![verb, resource, "--namespace", ns]));
        }
        for verb in ["patch", "update"] {
            checks.push((
                true,
                vec![verb, resource, "--subresource", "status", "--namespace", ns],
            ));
        }
    }
    for verb in ["create", "patch"] {
        checks.push((true, vec![verb, "events.events.k8s.io", "--namespace", ns]));
    }
    checks.push((
        true,
        vec!["delete", "joinrequests.jitgroups.dev", "--namespace", ns],
    ));
    for verb in ["get", "create", "update"] {
        checks.push((
            true,
            vec![verb, "leases.coordination.k8s.io", "--namespace", NAMESPACE],
        ));
    }
    let mutating = format!("mutatingwebhookconfigurations.admissionregistration.k8s.io/{WEBHOOKS}");
    let validating =
        format!("validatingwebhookconfigurations.admissionregistration.k8s.io/{WEBHOOKS}");
    for verb in ["get", "patch"] {
        checks.push((true, vec![verb, mutating.as_str()]));
        checks.push((true, vec![verb, validating.as_str()]));
    }
    assert_answers(plane, CONTROLLER, &checks).await
}

#[tokio::test]
async fn the_controller_may_not_create_or_delete_policies_nor_touch_anything_else()
-> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    install(plane).await?;
    let namespace = plane.create_namespace("deploy-limits").await?;
    let ns = namespace.as_str();

    let mut checks = Vec::new();
    for resource in [
        "jitenvironments.jitgroups.dev",
        "jitgroups.jitgroups.dev",
        "joinrequests.jitgroups.dev",
    ] {
        checks.push((false, vec!["create", resource, "--namespace", ns]));
        checks.push((false, vec!["deletecollection", resource, "--namespace", ns]));
    }
    for resource in ["jitenvironments.jitgroups.dev", "jitgroups.jitgroups.dev"] {
        checks.push((false, vec!["delete", resource, "--namespace", ns]));
    }
    let webhooks = [
        "mutatingwebhookconfigurations.admissionregistration.k8s.io",
        "validatingwebhookconfigurations.admissionregistration.k8s.io",
    ];
    for kind in webhooks {
        checks.push((false, vec!["list", kind]));
        checks.push((false, vec!["create", kind]));
    }
    let others = webhooks.map(|kind| format!("{kind}/someone-elses"));
    for other in &others {
        checks.push((false, vec!["patch", other.as_str()]));
    }
    checks.extend([
        (false, vec!["create", "events", "--namespace", ns]),
        (
            false,
            vec!["delete", "events.events.k8s.io", "--namespace", ns],
        ),
        (
            false,
            vec!["update", "leases.coordination.k8s.io", "--namespace", ns],
        ),
        (
            false,
            vec![
                "delete",
                "leases.coordination.k8s.io",
                "--namespace",
                NAMESPACE,
            ],
        ),
        (false, vec!["get", "secrets", "--namespace", NAMESPACE]),
        (false, vec!["list", "pods", "--namespace", ns]),
        (false, vec!["list", "namespaces"]),
        (
            false,
            vec!["update", "customresourcedefinitions.apiextensions.k8s.io"],
        ),
    ]);
    assert_answers(plane, CONTROLLER, &checks).await
}

#[tokio::test]
async fn a_namespace_editor_may_ask_for_access_but_may_not_write_groups_or_environments()
-> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    install(plane).await?;
    let namespace = plane.create_namespace("deploy-editor").await?;
    let ns = namespace.as_str();
    // What the built-in `edit` role holds once kube-controller-manager aggregated it.
    bind(plane, ns, VIEW_ROLE, User::Alice).await?;
    bind(plane, ns, EDIT_ROLE, User::Alice).await?;

    let request = create_as(plane, User::Alice, &join_request(ns, User::Alice)).await?;
    assert!(
        matches!(&request, Created::ReachedTheWebhooks(refusal)
            if refusal.contains("mutate.joinrequests.jitgroups.dev")),
        "RBAC must let alice's JoinRequest through to the webhooks: {request:?}"
    );
    let group = create_as(plane, User::Alice, &jit_group(ns)).await?;
    assert!(
        matches!(&group, Created::Forbidden(refusal)
            if refusal.contains(r#"User "alice@example.com" cannot create resource "jitgroups""#)),
        "RBAC must refuse alice's JitGroup: {group:?}"
    );
    let stranger = create_as(plane, User::Dave, &join_request(ns, User::Dave)).await?;
    assert!(
        matches!(stranger, Created::Forbidden(_)),
        "dave holds no role in the namespace: {stranger:?}"
    );

    let alice = User::Alice.name();
    let checks = [
        (
            true,
            vec!["delete", "joinrequests.jitgroups.dev", "--namespace", ns],
        ),
        (
            true,
            vec!["list", "jitgroups.jitgroups.dev", "--namespace", ns],
        ),
        (
            true,
            vec!["get", "jitenvironments.jitgroups.dev", "--namespace", ns],
        ),
        (
            false,
            vec!["update", "joinrequests.jitgroups.dev", "--namespace", ns],
        ),
        (
            false,
            vec![
                "patch",
                "joinrequests.jitgroups.dev",
                "--subresource",
                "status",
                "--namespace",
                ns,
            ],
        ),
        (
            false,
            vec!["patch", "jitgroups.jitgroups.dev", "--namespace", ns],
        ),
        (
            false,
            vec!["create", "jitenvironments.jitgroups.dev", "--namespace", ns],
        ),
        (
            false,
            vec![
                "create",
                "joinrequests.jitgroups.dev",
                "--namespace",
                "default",
            ],
        ),
    ];
    assert_answers(plane, alice, &checks).await
}

#[tokio::test]
async fn a_viewer_may_read_all_three_kinds_and_write_none() -> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    install(plane).await?;
    let namespace = plane.create_namespace("deploy-viewer").await?;
    let ns = namespace.as_str();
    bind(plane, ns, VIEW_ROLE, User::Carol).await?;

    let mut checks = Vec::new();
    for resource in [
        "jitenvironments.jitgroups.dev",
        "jitgroups.jitgroups.dev",
        "joinrequests.jitgroups.dev",
    ] {
        for verb in ["get", "list", "watch"] {
            checks.push((true, vec![verb, resource, "--namespace", ns]));
        }
        for verb in ["create", "update", "patch", "delete"] {
            checks.push((false, vec![verb, resource, "--namespace", ns]));
        }
    }
    assert_answers(plane, User::Carol.name(), &checks).await
}

#[tokio::test]
async fn a_policy_admin_manages_groups_and_environments_but_does_not_ask_for_access()
-> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    install(plane).await?;
    let namespace = plane.create_namespace("deploy-policy").await?;
    let ns = namespace.as_str();
    bind(plane, ns, POLICY_ADMIN_ROLE, User::Bob).await?;

    let group = create_as(plane, User::Bob, &jit_group(ns)).await?;
    assert!(
        matches!(&group, Created::ReachedTheWebhooks(refusal)
            if refusal.contains("validate.jitgroups.jitgroups.dev")),
        "RBAC must let bob's JitGroup through to the webhooks: {group:?}"
    );
    let request = create_as(plane, User::Bob, &join_request(ns, User::Bob)).await?;
    assert!(
        matches!(request, Created::Forbidden(_)),
        "a policy admin does not ask for access through this role: {request:?}"
    );

    let checks = [
        (
            true,
            vec!["update", "jitgroups.jitgroups.dev", "--namespace", ns],
        ),
        (
            true,
            vec!["delete", "jitenvironments.jitgroups.dev", "--namespace", ns],
        ),
        (
            true,
            vec!["list", "joinrequests.jitgroups.dev", "--namespace", ns],
        ),
        (
            true,
            vec!["delete", "joinrequests.jitgroups.dev", "--namespace", ns],
        ),
        (
            false,
            vec!["create", "joinrequests.jitgroups.dev", "--namespace", ns],
        ),
        (
            false,
            vec![
                "patch",
                "jitgroups.jitgroups.dev",
                "--subresource",
                "status",
                "--namespace",
                ns,
            ],
        ),
        (
            false,
            vec!["list", "jitgroups.jitgroups.dev", "--namespace", "default"],
        ),
    ];
    assert_answers(plane, User::Bob.name(), &checks).await
}

#[tokio::test]
async fn an_approver_may_update_join_requests_to_record_a_decision_but_not_create_them()
-> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    install(plane).await?;
    let namespace = plane.create_namespace("deploy-approver").await?;
    let ns = namespace.as_str();
    bind(plane, ns, APPROVER_ROLE, User::Carol).await?;

    let request = "joinrequests.jitgroups.dev";
    let checks = [
        (true, vec!["get", request, "--namespace", ns]),
        (true, vec!["update", request, "--namespace", ns]),
        (true, vec!["patch", request, "--namespace", ns]),
        (false, vec!["create", request, "--namespace", ns]),
        (false, vec!["delete", request, "--namespace", ns]),
        (
            false,
            vec![
                "patch",
                request,
                "--subresource",
                "status",
                "--namespace",
                ns,
            ],
        ),
        (
            false,
            vec!["update", "jitgroups.jitgroups.dev", "--namespace", ns],
        ),
        (false, vec!["update", request, "--namespace", "default"]),
    ];
    assert_answers(plane, User::Carol.name(), &checks).await
}

#[tokio::test]
async fn the_built_in_view_edit_and_admin_roles_select_the_charts_user_roles_for_aggregation()
-> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    install(plane).await?;

    for (built_in, expected) in [
        ("view", vec![VIEW_ROLE]),
        ("edit", vec![EDIT_ROLE]),
        ("admin", vec![EDIT_ROLE]),
    ] {
        let role = plane
            .kubectl(
                User::Admin,
                ["get", "clusterrole", built_in, "--output", "json"],
            )
            .await?
            .expect_success()?;
        let role: serde_json::Value = serde_json::from_str(&role)?;
        let selectors = role["aggregationRule"]["clusterRoleSelectors"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            !selectors.is_empty(),
            "{built_in} aggregates nothing: {role}"
        );

        let mut selected = Vec::new();
        for selector in selectors {
            let labels = selector["matchLabels"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let selector = labels
                .iter()
                .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",");
            let names = plane
                .kubectl(
                    User::Admin,
                    [
                        "get",
                        "clusterroles",
                        "--selector",
                        &selector,
                        "--output",
                        "name",
                    ],
                )
                .await?
                .expect_success()?;
            selected.extend(
                names
                    .lines()
                    .filter_map(|line| line.strip_prefix("clusterrole.rbac.authorization.k8s.io/"))
                    .filter(|name| name.starts_with("jit-groups"))
                    .map(str::to_owned),
            );
        }
        assert_eq!(
            selected, expected,
            "the chart's roles that {built_in} aggregates"
        );
    }
    Ok(())
}

#[test]
fn the_crds_in_deploy_and_in_the_chart_are_those_of_the_repository() -> anyhow::Result<()> {
    let root = repository();
    let generated = jit_test_support::crds_from_dir(&root.join("crds"))?;
    assert_eq!(generated.len(), 3);

    let chart = jit_test_support::crds_from_dir(&root.join("charts/jit-groups-controller/crds"))?;
    assert!(
        chart == generated,
        "charts/jit-groups-controller/crds differs from crds/; run hack/generate-crds.sh"
    );

    let deploy = std::fs::read_to_string(root.join("deploy/crds.yaml"))?;
    assert!(
        jit_test_support::crds_from_yaml(&deploy)? == generated,
        "deploy/crds.yaml differs from crds/; run hack/render-manifests.sh"
    );
    Ok(())
}
