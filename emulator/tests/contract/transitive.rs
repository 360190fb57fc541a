//! Transitive membership: checkTransitiveMembership and searchTransitiveGroups over nested
//! groups.

use crate::support::*;

#[tokio::test]
async fn membership_through_nested_groups_is_found_by_the_transitive_check() {
    let emulator = emulator();
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);
    let (_, admins) = hub
        .groups()
        .lookup()
        .group_key_id("admins@example.com")
        .doit()
        .await
        .expect("the seeded group exists");
    let admins = admins.name.expect("name");

    for (member, expected) in [("alice@example.com", true), ("bob@example.com", false)] {
        let (_, check) = hub
            .groups()
            .memberships_check_transitive_membership(&admins)
            .query(&format!("member_key_id == '{member}'"))
            .doit()
            .await
            .expect("the check succeeds");
        assert_eq!(check.has_membership, Some(expected), "{member}");
    }
}

#[tokio::test]
async fn transitive_group_search_reports_direct_and_indirect_groups() {
    let emulator = emulator();
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);

    let (_, result) = hub
        .groups()
        .memberships_search_transitive_groups("groups/-")
        .query(
            "member_key_id == 'alice@example.com' && \
             'cloudidentity.googleapis.com/groups.discussion_forum' in labels",
        )
        .doit()
        .await
        .expect("the search succeeds");
    let mut relations: Vec<(String, String)> = result
        .memberships
        .unwrap_or_default()
        .into_iter()
        .map(|relation| {
            let email = relation.group_key.and_then(|k| k.id).unwrap_or_default();
            assert!(relation.group.is_some_and(|g| g.starts_with("groups/")));
            (email, relation.relation_type.unwrap_or_default())
        })
        .collect();
    relations.sort();
    assert_eq!(
        relations,
        vec![
            ("admins@example.com".to_owned(), "INDIRECT".to_owned()),
            ("ops@example.com".to_owned(), "DIRECT".to_owned()),
        ]
    );

    let (_, security_only) = hub
        .groups()
        .memberships_search_transitive_groups("groups/-")
        .query(
            "member_key_id == 'alice@example.com' && \
             'cloudidentity.googleapis.com/groups.security' in labels",
        )
        .doit()
        .await
        .expect("the search succeeds");
    assert!(security_only.memberships.unwrap_or_default().is_empty());

    let error = hub
        .groups()
        .memberships_search_transitive_groups("groups/-")
        .query("member_key_id == 'alice@example.com'")
        .doit()
        .await
        .expect_err("a label clause is required");
    assert_eq!(google_error(&error).0, 400);
}
