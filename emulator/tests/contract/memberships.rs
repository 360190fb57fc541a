//! Memberships: create, lookup, get, list, modifyMembershipRoles, delete, and expiry.

use chrono::{SubsecRound, TimeDelta, Utc};
use google_cloudidentity1::FieldMask;
use google_cloudidentity1::api::{
    ExpiryDetail, MembershipRole, ModifyMembershipRolesRequest, UpdateMembershipRolesParams,
};

use crate::support::*;

#[tokio::test]
async fn a_member_added_with_an_expiry_shows_that_expiry_everywhere() {
    let emulator = emulator();
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);
    let group = create_group(&hub, "jit.prod.sys.ops@example.com").await;
    let expiry = (Utc::now() + TimeDelta::hours(2)).trunc_subsecs(0);

    let (_, operation) = hub
        .groups()
        .memberships_create(membership("alice@example.com", Some(expiry)), &group)
        .doit()
        .await
        .expect("the membership is created");
    assert_eq!(operation.done, Some(true));
    let response = operation
        .response
        .expect("the operation carries the membership");
    assert_eq!(
        response["@type"],
        "type.googleapis.com/google.apps.cloudidentity.groups.v1.Membership"
    );

    let (_, found) = hub
        .groups()
        .memberships_lookup(&group)
        .member_key_id("alice@example.com")
        .doit()
        .await
        .expect("the membership is found");
    let name = found.name.expect("a name");
    assert!(name.starts_with(&format!("{group}/memberships/")));

    let (_, read) = hub
        .groups()
        .memberships_get(&name)
        .doit()
        .await
        .expect("read");
    assert_eq!(read.type_.as_deref(), Some("USER"));
    let roles = read.roles.expect("roles");
    assert_eq!(roles[0].name.as_deref(), Some("MEMBER"));
    let expire_time = roles[0].expiry_detail.as_ref().and_then(|e| e.expire_time);
    assert_eq!(expire_time, Some(expiry));

    let state = emulator.control().state().await.expect("state");
    let member = state
        .group("jit.prod.sys.ops@example.com")
        .and_then(|g| g.member("alice@example.com"))
        .cloned()
        .expect("the state shows the membership");
    assert_eq!(member.expire_time, Some(expiry));
}

#[tokio::test]
async fn adding_an_existing_member_again_fails_with_already_exists() {
    let emulator = emulator();
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);
    let group = create_group(&hub, "jit.prod.sys.twice@example.com").await;
    hub.groups()
        .memberships_create(membership("bob@example.com", None), &group)
        .doit()
        .await
        .expect("first time");

    let error = hub
        .groups()
        .memberships_create(membership("bob@example.com", None), &group)
        .doit()
        .await
        .expect_err("second time");
    let (code, status, _) = google_error(&error);
    assert_eq!((code, status.as_str()), (409, "ALREADY_EXISTS"));
}

#[tokio::test]
async fn an_expiry_in_the_past_is_refused() {
    let emulator = emulator();
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);
    let group = create_group(&hub, "jit.prod.sys.past@example.com").await;
    let error = hub
        .groups()
        .memberships_create(
            membership("bob@example.com", Some(Utc::now() - TimeDelta::minutes(1))),
            &group,
        )
        .doit()
        .await
        .expect_err("the expiry has passed");
    assert_eq!(google_error(&error).1, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn memberships_are_listed_in_pages_of_the_requested_size() {
    let emulator = emulator();
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);
    let group = create_group(&hub, "jit.prod.sys.big@example.com").await;
    let members: Vec<String> = (0..7).map(|i| format!("user{i}@example.com")).collect();
    for member in &members {
        hub.groups()
            .memberships_create(membership(member, None), &group)
            .doit()
            .await
            .expect("member added");
    }

    let mut seen = Vec::new();
    let mut pages = 0;
    let mut token: Option<String> = None;
    loop {
        let mut call = hub
            .groups()
            .memberships_list(&group)
            .view("FULL")
            .page_size(3);
        if let Some(token) = &token {
            call = call.page_token(token);
        }
        let (_, page) = call.doit().await.expect("a page");
        pages += 1;
        for membership in page.memberships.unwrap_or_default() {
            assert!(
                membership.create_time.is_some(),
                "the full view has timestamps"
            );
            seen.extend(membership.preferred_member_key.and_then(|k| k.id));
        }
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    seen.sort();
    assert_eq!(pages, 3);
    assert_eq!(seen, members);

    let error = hub
        .groups()
        .memberships_list(&group)
        .view("FULL")
        .page_size(501)
        .doit()
        .await
        .expect_err("the full view allows at most 500 per page");
    assert_eq!(google_error(&error).0, 400);
}

#[tokio::test]
async fn modifying_membership_roles_moves_the_expiry() {
    let emulator = emulator();
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);
    let group = create_group(&hub, "jit.prod.sys.extend@example.com").await;
    let first = (Utc::now() + TimeDelta::hours(1)).trunc_subsecs(0);
    let later = first + TimeDelta::hours(3);
    let (_, operation) = hub
        .groups()
        .memberships_create(membership("carol@example.com", Some(first)), &group)
        .doit()
        .await
        .expect("created");
    let name = operation.response.expect("response")["name"]
        .as_str()
        .expect("name")
        .to_owned();

    let request = ModifyMembershipRolesRequest {
        update_roles_params: Some(vec![UpdateMembershipRolesParams {
            field_mask: Some(FieldMask::new(&["expiry_detail.expire_time"])),
            membership_role: Some(MembershipRole {
                name: Some("MEMBER".to_owned()),
                expiry_detail: Some(ExpiryDetail {
                    expire_time: Some(later),
                }),
                restriction_evaluations: None,
            }),
        }]),
        ..ModifyMembershipRolesRequest::default()
    };
    let (_, modified) = hub
        .groups()
        .memberships_modify_membership_roles(request, &name)
        .doit()
        .await
        .expect("the expiry is moved");
    let roles = modified.membership.and_then(|m| m.roles).expect("roles");
    assert_eq!(
        roles[0].expiry_detail.as_ref().and_then(|e| e.expire_time),
        Some(later)
    );

    let (_, read) = hub
        .groups()
        .memberships_get(&name)
        .doit()
        .await
        .expect("read");
    let roles = read.roles.expect("roles");
    assert_eq!(
        roles[0].expiry_detail.as_ref().and_then(|e| e.expire_time),
        Some(later)
    );
}

#[tokio::test]
async fn a_deleted_membership_is_gone() {
    let emulator = emulator();
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);
    let group = create_group(&hub, "jit.prod.sys.leave@example.com").await;
    hub.groups()
        .memberships_create(membership("bob@example.com", None), &group)
        .doit()
        .await
        .expect("created");
    let (_, found) = hub
        .groups()
        .memberships_lookup(&group)
        .member_key_id("bob@example.com")
        .doit()
        .await
        .expect("found");
    let name = found.name.expect("name");

    let (_, operation) = hub
        .groups()
        .memberships_delete(&name)
        .doit()
        .await
        .expect("deleted");
    assert_eq!(operation.done, Some(true));

    let error = hub
        .groups()
        .memberships_get(&name)
        .doit()
        .await
        .expect_err("gone");
    assert_eq!(google_error(&error).0, 404);
    let error = hub
        .groups()
        .memberships_delete(&name)
        .doit()
        .await
        .expect_err("gone");
    assert_eq!(google_error(&error).0, 404);
}

#[tokio::test]
async fn an_expired_membership_disappears_from_every_method() {
    let emulator = emulator();
    let control = emulator.control();
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);
    let group = create_group(&hub, "jit.prod.sys.brief@example.com").await;
    let expiry = Utc::now() + TimeDelta::minutes(30);
    hub.groups()
        .memberships_create(membership("alice@example.com", Some(expiry)), &group)
        .doit()
        .await
        .expect("created");
    hub.groups()
        .memberships_create(membership("bob@example.com", None), &group)
        .doit()
        .await
        .expect("created");

    let now = control
        .advance_clock(31 * 60)
        .await
        .expect("the clock moves");
    assert!(now > expiry);

    let error = hub
        .groups()
        .memberships_lookup(&group)
        .member_key_id("alice@example.com")
        .doit()
        .await
        .expect_err("the membership expired");
    assert_eq!(google_error(&error).0, 404);
    let (_, page) = hub
        .groups()
        .memberships_list(&group)
        .doit()
        .await
        .expect("list");
    let members: Vec<String> = page
        .memberships
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.preferred_member_key.and_then(|k| k.id))
        .collect();
    assert_eq!(members, vec!["bob@example.com".to_owned()]);
    let (_, check) = hub
        .groups()
        .memberships_check_transitive_membership(&group)
        .query("member_key_id == 'alice@example.com'")
        .doit()
        .await
        .expect("check");
    assert_eq!(check.has_membership, Some(false));
    let state = control.state().await.expect("state");
    let group = state
        .group("jit.prod.sys.brief@example.com")
        .expect("group");
    assert_eq!(group.member_emails(), vec!["bob@example.com"]);
}
