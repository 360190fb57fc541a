//! JitGroups end to end: the Cloud Identity group and its IAM bindings, against a real
//! control plane and the Google Cloud emulator.

mod common;

use common::is_ready;
use std::time::Duration;

use common::objects::{entry, environment, group, privilege};
use common::{Harness, OTHER_PRINCIPAL};
use jit_groups_controller::api::{JitGroup, READY};
use jit_groups_controller::policy::IamConditionSpec;

const MEMBER: &str = "group:jit.prod.data.admins@example.com";
const WAIT: Duration = Duration::from_secs(30);

fn ready(g: &JitGroup) -> Option<(String, String, String)> {
    let status = g.status.as_ref()?;
    let c = status.conditions.iter().find(|c| c.type_ == READY)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn admins(iam: Vec<jit_groups_controller::policy::IamPrivilegeSpec>) -> JitGroup {
    group(
        "admins",
        vec![entry("user:alice@example.com", "JOIN, APPROVE_SELF")],
        iam,
    )
}

#[tokio::test]
async fn privileges_become_bindings_of_the_group_on_each_resource() {
    let h = Harness::start("group-bindings").await;
    h.apply(&environment("prod")).await;
    let mut conditional = privilege("projects/data-prod", "roles/bigquery.dataViewer");
    conditional.condition = Some(IamConditionSpec {
        expression: "resource.name.startsWith(\"projects/data-prod/datasets/public\")".into(),
        title: Some("public datasets".into()),
        description: None,
    });
    h.apply(&admins(vec![
        privilege("projects/shared-prod", "roles/compute.viewer"),
        privilege("projects/shared-prod", "roles/iap.tunnelResourceAccessor"),
        conditional,
    ]))
    .await;

    let g = h.wait_for::<JitGroup>("admins", WAIT, is_ready).await;
    let status = g.status.expect("status");
    assert_eq!(
        status.email.as_deref(),
        Some("jit.prod.data.admins@example.com")
    );
    assert_eq!(
        status.bound_resources,
        vec!["projects/data-prod", "projects/shared-prod"]
    );
    assert_eq!(
        h.roles_of("projects/shared-prod", MEMBER).await,
        vec!["roles/compute.viewer", "roles/iap.tunnelResourceAccessor"]
    );
    assert_eq!(
        h.roles_of("projects/data-prod", MEMBER).await,
        vec!["roles/bigquery.dataViewer?public datasets"]
    );
    assert_eq!(h.policy("projects/data-prod").await.version, Some(3));
    assert_eq!(
        h.roles_of("projects/shared-prod", OTHER_PRINCIPAL).await,
        vec!["roles/viewer"]
    );
    let group = h
        .cloud_group("jit.prod.data.admins@example.com")
        .await
        .expect("cloud group");
    assert_eq!(group.description, "admins for tests");
}

#[tokio::test]
async fn a_resource_removed_from_the_privileges_loses_the_binding_and_others_keep_theirs() {
    let h = Harness::start("group-shrink").await;
    h.apply(&environment("prod")).await;
    h.apply(&admins(vec![
        privilege("projects/shared-prod", "roles/viewer"),
        privilege("projects/data-prod", "roles/bigquery.user"),
    ]))
    .await;
    h.wait_for::<JitGroup>("admins", WAIT, is_ready).await;
    assert_eq!(
        h.roles_of("projects/shared-prod", MEMBER).await,
        vec!["roles/viewer"]
    );

    h.apply(&admins(vec![privilege(
        "projects/data-prod",
        "roles/bigquery.user",
    )]))
    .await;
    let g = h
        .wait_for::<JitGroup>("admins", WAIT, |g| {
            g.status
                .as_ref()
                .is_some_and(|s| s.bound_resources == vec!["projects/data-prod"])
        })
        .await;

    assert!(is_ready(&g));
    assert!(h.roles_of("projects/shared-prod", MEMBER).await.is_empty());
    assert_eq!(
        h.roles_of("projects/shared-prod", OTHER_PRINCIPAL).await,
        vec!["roles/viewer"]
    );
    assert_eq!(
        h.roles_of("projects/data-prod", MEMBER).await,
        vec!["roles/bigquery.user"]
    );
}

#[tokio::test]
async fn a_deleted_group_loses_all_its_bindings() {
    let h = Harness::start("group-delete").await;
    h.apply(&environment("prod")).await;
    h.apply(&admins(vec![
        privilege("projects/shared-prod", "roles/viewer"),
        privilege("projects/data-prod", "roles/bigquery.user"),
    ]))
    .await;
    h.wait_for::<JitGroup>("admins", WAIT, is_ready).await;

    h.delete::<JitGroup>("admins").await;
    h.wait_gone::<JitGroup>("admins", WAIT).await;

    assert!(h.roles_of("projects/shared-prod", MEMBER).await.is_empty());
    assert!(h.roles_of("projects/data-prod", MEMBER).await.is_empty());
    assert_eq!(
        h.roles_of("projects/shared-prod", OTHER_PRINCIPAL).await,
        vec!["roles/viewer"]
    );
}

#[tokio::test]
async fn an_invalid_group_is_not_ready_and_names_every_bad_field() {
    let h = Harness::start("group-invalid").await;
    h.apply(&environment("prod")).await;
    let mut bad = admins(vec![
        privilege("projects/other-team", "roles/owner"),
        privilege("projects/shared-prod", "viewer"),
    ]);
    bad.spec.access.push(entry("usr:bob@example.com", "JOIN"));
    h.apply(&bad).await;

    let g = h
        .wait_for::<JitGroup>("admins", WAIT, |g| ready(g).is_some())
        .await;
    let (status, reason, message) = ready(&g).expect("Ready condition");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidSpec"));
    assert!(
        message.contains("spec.access[1].principal: Invalid value: \"usr:bob@example.com\""),
        "{message}"
    );
    assert!(
        message.contains("spec.privileges.iam[0].resource: Forbidden: \"projects/other-team\""),
        "{message}"
    );
    assert!(
        message.contains("spec.privileges.iam[1].role: Invalid value: \"viewer\""),
        "{message}"
    );
    assert!(
        h.cloud_group("jit.prod.data.admins@example.com")
            .await
            .is_none()
    );
    assert!(h.roles_of("projects/other-team", MEMBER).await.is_empty());
}

#[tokio::test]
async fn an_etag_conflict_and_a_503_burst_on_iam_policies_are_ridden_out() {
    let h = Harness::start("group-faults").await;
    h.apply(&environment("prod")).await;
    let conflict =
        gcp_emulator::FaultRule::always("cloudresourcemanager.projects.setIamPolicy", 409)
            .with_count(2);
    let unavailable =
        gcp_emulator::FaultRule::always("cloudresourcemanager.projects.getIamPolicy", 503)
            .with_count(3);
    h.control().add_fault(&conflict).await.expect("fault");
    h.control().add_fault(&unavailable).await.expect("fault");

    h.apply(&admins(vec![privilege(
        "projects/shared-prod",
        "roles/viewer",
    )]))
    .await;
    h.wait_for::<JitGroup>("admins", Duration::from_secs(60), is_ready)
        .await;

    assert_eq!(
        h.roles_of("projects/shared-prod", MEMBER).await,
        vec!["roles/viewer"]
    );
    assert_eq!(
        h.roles_of("projects/shared-prod", OTHER_PRINCIPAL).await,
        vec!["roles/viewer"]
    );
    let counts = h.control().requests().await.expect("counters");
    let faulted: u64 = counts.faulted.values().sum();
    assert_eq!(
        faulted, 5,
        "every injected fault was met: {:?}",
        counts.faulted
    );
}
