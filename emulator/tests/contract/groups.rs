//! Groups: create, lookup, get, patch, search, list, delete.

use google_cloudidentity1::FieldMask;
use google_cloudresourcemanager3::api::{Binding, Policy, SetIamPolicyRequest};

use crate::support::*;

#[tokio::test]
async fn a_created_security_group_can_be_looked_up_read_and_found_by_search() {
    let emulator = emulator();
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);

    let (_, operation) = hub
        .groups()
        .create(security_group(
            "jit.prod.payments.deployers@example.com",
            "deployers",
        ))
        .initial_group_config("EMPTY")
        .doit()
        .await
        .expect("the group is created");
    assert_eq!(operation.done, Some(true));
    let response = operation.response.expect("the operation carries the group");
    assert_eq!(
        response["@type"],
        "type.googleapis.com/google.apps.cloudidentity.groups.v1.Group"
    );
    let name = response["name"].as_str().expect("a name").to_owned();
    assert!(name.starts_with("groups/"));

    let (_, found) = hub
        .groups()
        .lookup()
        .group_key_id("jit.prod.payments.deployers@example.com")
        .doit()
        .await
        .expect("the group is found by its address");
    assert_eq!(found.name.as_deref(), Some(name.as_str()));

    let (_, group) = hub
        .groups()
        .get(&name)
        .doit()
        .await
        .expect("the group is read");
    assert_eq!(group.description.as_deref(), Some("deployers"));
    assert_eq!(group.parent.as_deref(), Some("customers/C01"));
    let labels = group.labels.expect("labels");
    assert!(labels.contains_key(SECURITY) && labels.contains_key(FORUM));
    assert!(group.create_time.is_some());

    let (_, result) = hub
        .groups()
        .search()
        .query(
            "parent == 'customers/C01' && 'cloudidentity.googleapis.com/groups.security' in \
             labels && groupKey.startsWith('jit.prod.')",
        )
        .doit()
        .await
        .expect("the search succeeds");
    let emails: Vec<String> = result
        .groups
        .unwrap_or_default()
        .into_iter()
        .filter_map(|g| g.group_key.and_then(|k| k.id))
        .collect();
    assert_eq!(
        emails,
        vec!["jit.prod.payments.deployers@example.com".to_owned()]
    );
}

#[tokio::test]
async fn looking_up_an_unknown_group_fails_with_not_found() {
    let emulator = emulator();
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);

    let error = hub
        .groups()
        .lookup()
        .group_key_id("nobody@example.com")
        .doit()
        .await
        .expect_err("the group does not exist");
    assert_eq!(google_error(&error).0, 404);
    assert_eq!(google_error(&error).1, "NOT_FOUND");

    let error = hub
        .groups()
        .get("groups/0doesnotexist")
        .doit()
        .await
        .expect_err("unknown");
    assert_eq!(google_error(&error).1, "NOT_FOUND");
}

#[tokio::test]
async fn creating_a_group_with_a_taken_address_fails_with_already_exists() {
    let emulator = emulator();
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);
    create_group(&hub, "jit.prod.a.b@example.com").await;

    let error = hub
        .groups()
        .create(security_group("JIT.prod.a.b@example.com", "again"))
        .initial_group_config("EMPTY")
        .doit()
        .await
        .expect_err("the address is taken");
    let (code, status, _) = google_error(&error);
    assert_eq!((code, status.as_str()), (409, "ALREADY_EXISTS"));
}

#[tokio::test]
async fn invalid_groups_are_refused_with_invalid_argument() {
    let emulator = emulator();
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);

    let mut foreign_domain = security_group("team@elsewhere.org", "");
    foreign_domain.description = None;
    let mut unknown_customer = security_group("team@example.com", "");
    unknown_customer.parent = Some("customers/C99".to_owned());
    let mut without_forum_label = security_group("team@example.com", "");
    without_forum_label.labels = Some([(SECURITY.to_owned(), String::new())].into());
    let mut bad_address = security_group("not-an-address", "");
    bad_address.display_name = None;

    for group in [
        foreign_domain,
        unknown_customer,
        without_forum_label,
        bad_address,
    ] {
        let error = hub
            .groups()
            .create(group)
            .initial_group_config("EMPTY")
            .doit()
            .await
            .expect_err("the group is invalid");
        let (code, status, _) = google_error(&error);
        assert_eq!((code, status.as_str()), (400, "INVALID_ARGUMENT"));
    }
    let state = emulator.control().state().await.expect("state");
    assert!(state.group("team@example.com").is_none());
}

#[tokio::test]
async fn patching_a_group_changes_its_description_but_never_drops_the_security_label() {
    let emulator = emulator();
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);
    let name = create_group(&hub, "jit.prod.a.patched@example.com").await;

    let mut change = security_group("jit.prod.a.patched@example.com", "new description");
    change.display_name = Some("Patched".to_owned());
    let (_, operation) = hub
        .groups()
        .patch(change, &name)
        .update_mask(FieldMask::new(&["description", "display_name"]))
        .doit()
        .await
        .expect("the patch succeeds");
    let response = operation.response.expect("the operation carries the group");
    assert_eq!(response["description"], "new description");
    assert_eq!(response["displayName"], "Patched");

    let mut drop_security = security_group("jit.prod.a.patched@example.com", "");
    drop_security.labels = Some([(FORUM.to_owned(), String::new())].into());
    let error = hub
        .groups()
        .patch(drop_security, &name)
        .update_mask(FieldMask::new(&["labels"]))
        .doit()
        .await
        .expect_err("the security label stays");
    assert_eq!(google_error(&error).0, 400);

    let (_, group) = hub.groups().get(&name).doit().await.expect("read");
    assert_eq!(group.description.as_deref(), Some("new description"));
    assert!(group.labels.expect("labels").contains_key(SECURITY));
}

#[tokio::test]
async fn deleting_a_group_makes_it_unknown_and_its_bindings_those_of_a_deleted_group() {
    let emulator = emulator();
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);
    let name = create_group(&hub, "jit.prod.a.gone@example.com").await;
    let policies = resource_manager(&emulator, PROVISIONER_TOKEN);
    policies
        .projects()
        .set_iam_policy(
            SetIamPolicyRequest {
                policy: Some(Policy {
                    bindings: Some(vec![Binding {
                        role: Some("roles/viewer".to_owned()),
                        members: Some(vec!["group:jit.prod.a.gone@example.com".to_owned()]),
                        condition: None,
                    }]),
                    ..Policy::default()
                }),
                update_mask: None,
            },
            "projects/prod-app",
        )
        .doit()
        .await
        .expect("the binding is written");

    let (_, operation) = hub.groups().delete(&name).doit().await.expect("deleted");
    assert_eq!(operation.done, Some(true));

    let error = hub.groups().get(&name).doit().await.expect_err("gone");
    assert_eq!(google_error(&error).1, "NOT_FOUND");
    let state = emulator.control().state().await.expect("state");
    let members = &state.policies["projects/prod-app"].bindings[0].members;
    assert!(members[0].starts_with("deleted:group:jit.prod.a.gone@example.com?uid="));
}

#[tokio::test]
async fn searching_and_listing_page_through_the_matching_groups_only() {
    let emulator = emulator();
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);
    for group in ["one", "two", "three", "four", "five"] {
        create_group(&hub, &format!("jit.prod.sys.{group}@example.com")).await;
    }
    create_group(&hub, "jit.test.sys.other@example.com").await;

    let mut found = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut call = hub
            .groups()
            .search()
            .query(
                "parent == 'customers/C01' && 'cloudidentity.googleapis.com/groups.security' \
                 in labels && group_key.startsWith('jit.prod.')",
            )
            .page_size(2);
        if let Some(token) = &token {
            call = call.page_token(token);
        }
        let (_, page) = call.doit().await.expect("a page");
        pages += 1;
        let groups = page.groups.unwrap_or_default();
        assert!(groups.len() <= 2);
        found.extend(
            groups
                .into_iter()
                .filter_map(|g| g.group_key.and_then(|k| k.id)),
        );
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    found.sort();
    assert_eq!(pages, 3);
    assert_eq!(
        found,
        ["five", "four", "one", "three", "two"]
            .map(|g| format!("jit.prod.sys.{g}@example.com"))
            .to_vec()
    );

    let (_, listed) = hub
        .groups()
        .list()
        .parent("customers/C01")
        .view("FULL")
        .page_size(500)
        .doit()
        .await
        .expect("the groups are listed");
    // Six created here and the two seeded ones.
    assert_eq!(listed.groups.unwrap_or_default().len(), 8);
    assert!(listed.next_page_token.is_none());
}

#[tokio::test]
async fn search_queries_outside_the_documented_forms_are_refused() {
    let emulator = emulator();
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);
    for query in [
        "'cloudidentity.googleapis.com/groups.security' in labels",
        "parent == 'customers/C01' || parent == 'customers/C02'",
        "parent == 'customers/C01' && owner == 'x'",
    ] {
        let error = hub
            .groups()
            .search()
            .query(query)
            .doit()
            .await
            .expect_err("the query is refused");
        assert_eq!(google_error(&error).0, 400, "query {query}");
    }
}

#[tokio::test]
async fn a_caller_without_groups_rights_is_refused_with_permission_denied() {
    let emulator = emulator();
    let hub = cloud_identity(&emulator, CONTROLLER_TOKEN);
    let error = hub
        .groups()
        .create(security_group("jit.prod.a.b@example.com", ""))
        .initial_group_config("EMPTY")
        .doit()
        .await
        .expect_err("the controller itself may not manage groups");
    let (code, status, _) = google_error(&error);
    assert_eq!((code, status.as_str()), (403, "PERMISSION_DENIED"));
}
