//! Resource Manager IAM policies: etags, conditions, conflicts and who may touch them.

use google_cloudresourcemanager3::CloudResourceManager;
use google_cloudresourcemanager3::api::{
    Binding, Expr, GetIamPolicyRequest, GetPolicyOptions, Policy, SetIamPolicyRequest,
};

use crate::support::*;

fn version_3() -> GetIamPolicyRequest {
    GetIamPolicyRequest {
        options: Some(GetPolicyOptions {
            requested_policy_version: Some(3),
        }),
    }
}

fn conditional_binding(group: &str) -> Binding {
    Binding {
        role: Some("roles/compute.viewer".to_owned()),
        members: Some(vec![format!("group:{group}")]),
        condition: Some(Expr {
            expression: Some("request.time < timestamp('2030-01-01T00:00:00Z')".to_owned()),
            title: Some("until 2030".to_owned()),
            description: Some("temporary".to_owned()),
            location: None,
        }),
    }
}

async fn read(hub: &CloudResourceManager<Connector>, resource: &str) -> Policy {
    let kind = resource.split('/').next().unwrap_or_default();
    let result = match kind {
        "projects" => {
            hub.projects()
                .get_iam_policy(version_3(), resource)
                .doit()
                .await
        }
        "folders" => {
            hub.folders()
                .get_iam_policy(version_3(), resource)
                .doit()
                .await
        }
        _ => {
            hub.organizations()
                .get_iam_policy(version_3(), resource)
                .doit()
                .await
        }
    };
    result.expect("the policy is read").1
}

async fn write(
    hub: &CloudResourceManager<Connector>,
    resource: &str,
    policy: Policy,
) -> Result<Policy, google_cloudresourcemanager3::Error> {
    let request = SetIamPolicyRequest {
        policy: Some(policy),
        update_mask: None,
    };
    let kind = resource.split('/').next().unwrap_or_default();
    let result = match kind {
        "projects" => {
            hub.projects()
                .set_iam_policy(request, resource)
                .doit()
                .await
        }
        "folders" => hub.folders().set_iam_policy(request, resource).doit().await,
        _ => {
            hub.organizations()
                .set_iam_policy(request, resource)
                .doit()
                .await
        }
    };
    result.map(|(_, policy)| policy)
}

#[tokio::test]
async fn a_conditional_binding_written_with_the_etag_is_read_back_on_project_folder_and_org() {
    let emulator = emulator();
    let provisioner = resource_manager(&emulator, PROVISIONER_TOKEN);
    let org_admin = resource_manager(&emulator, "org-admin-token");

    for (hub, resource) in [
        (&provisioner, "projects/prod-app"),
        (&provisioner, "folders/prod"),
        (&org_admin, "organizations/100"),
    ] {
        let before = read(hub, resource).await;
        assert!(before.etag.is_some(), "{resource} has an etag");
        assert!(before.bindings.unwrap_or_default().is_empty());

        let mut policy = Policy {
            version: Some(3),
            etag: before.etag.clone(),
            bindings: Some(vec![conditional_binding("jit.prod.a.b@example.com")]),
            ..Policy::default()
        };
        let written = write(hub, resource, policy.clone()).await.expect("written");
        assert_ne!(
            written.etag, before.etag,
            "{resource}: every write changes the etag"
        );
        assert_eq!(written.version, Some(3));

        let after = read(hub, resource).await;
        assert_eq!(after.etag, written.etag);
        assert_eq!(after.version, Some(3));
        let bindings = after.bindings.expect("bindings");
        assert_eq!(bindings.len(), 1);
        let condition = bindings[0]
            .condition
            .clone()
            .expect("the condition is kept");
        assert_eq!(condition.title.as_deref(), Some("until 2030"));

        policy.etag = before.etag;
        let error = write(hub, resource, policy)
            .await
            .expect_err("the etag is stale");
        let (code, status, message) = google_error(&error);
        assert_eq!((code, status.as_str()), (409, "ABORTED"), "{resource}");
        assert!(message.contains("concurrent policy changes"));
    }
}

#[tokio::test]
async fn a_write_without_an_etag_overwrites_unconditionally() {
    let emulator = emulator();
    let hub = resource_manager(&emulator, PROVISIONER_TOKEN);
    let binding = Binding {
        role: Some("roles/viewer".to_owned()),
        members: Some(vec!["user:alice@example.com".to_owned()]),
        condition: None,
    };
    let policy = Policy {
        bindings: Some(vec![binding]),
        ..Policy::default()
    };
    write(&hub, "projects/prod-app", policy.clone())
        .await
        .expect("first");
    write(&hub, "projects/prod-app", policy)
        .await
        .expect("second, without an etag");

    let state = emulator.control().state().await.expect("state");
    let stored = &state.policies["projects/prod-app"];
    assert_eq!(
        stored.bindings[0].members,
        vec!["user:alice@example.com".to_owned()]
    );
}

#[tokio::test]
async fn conditional_bindings_need_policy_version_three() {
    let emulator = emulator();
    let hub = resource_manager(&emulator, PROVISIONER_TOKEN);
    let policy = Policy {
        version: Some(1),
        bindings: Some(vec![conditional_binding("g@example.com")]),
        ..Policy::default()
    };
    let error = write(&hub, "projects/prod-app", policy)
        .await
        .expect_err("version 1");
    let (code, status, _) = google_error(&error);
    assert_eq!((code, status.as_str()), (400, "INVALID_ARGUMENT"));
}

#[tokio::test]
async fn a_conditional_policy_read_at_version_one_hides_its_conditions_in_role_names() {
    let emulator = emulator();
    let hub = resource_manager(&emulator, PROVISIONER_TOKEN);
    let policy = Policy {
        version: Some(3),
        bindings: Some(vec![conditional_binding("g@example.com")]),
        ..Policy::default()
    };
    write(&hub, "projects/prod-app", policy)
        .await
        .expect("written");

    let (_, old_style) = hub
        .projects()
        .get_iam_policy(GetIamPolicyRequest::default(), "projects/prod-app")
        .doit()
        .await
        .expect("read at the default version");
    assert_eq!(old_style.version, Some(1));
    let binding = &old_style.bindings.expect("bindings")[0];
    assert!(binding.condition.is_none());
    let role = binding.role.clone().unwrap_or_default();
    assert!(role.starts_with("roles/compute.viewer_withcond_"), "{role}");
}

#[tokio::test]
async fn policies_outside_the_service_accounts_scope_are_refused_with_permission_denied() {
    let emulator = emulator();
    let hub = resource_manager(&emulator, PROVISIONER_TOKEN);

    for resource in [
        "projects/other",
        "organizations/100",
        "projects/does-not-exist",
    ] {
        let kind = resource.split('/').next().unwrap_or_default();
        let result = match kind {
            "projects" => {
                hub.projects()
                    .get_iam_policy(version_3(), resource)
                    .doit()
                    .await
            }
            _ => {
                hub.organizations()
                    .get_iam_policy(version_3(), resource)
                    .doit()
                    .await
            }
        };
        let error = result.expect_err("outside the scope");
        let (code, status, _) = google_error(&error);
        assert_eq!(
            (code, status.as_str()),
            (403, "PERMISSION_DENIED"),
            "{resource}"
        );
    }

    let error = write(&hub, "projects/other", Policy::default())
        .await
        .expect_err("outside the scope");
    assert_eq!(google_error(&error).0, 403);
}
