//! Drift: what changes out of band in Google Cloud is put right (bindings, members) or
//! reported (members under `unmanagedMembers: Report`, orphan groups), against a real control
//! plane and the Google Cloud emulator.

mod common;

use common::is_ready;
use std::time::Duration;

use common::objects::{entry, environment, group, privilege, request};
use common::{Harness, OTHER_PRINCIPAL};
use gcp_emulator::{GroupSeed, MemberSeed, Seed};
use jit_groups_controller::api::{JitEnvironment, JitGroup, JoinRequest, Phase, UnmanagedMembers};
use jit_groups_controller::google::{DesiredBinding, GroupRef, ResourceName};

const WAIT: Duration = Duration::from_secs(30);
const READERS: &str = "jit.prod.data.readers@example.com";

/// An environment (with `unmanaged` members handled as given) and a group `readers` that
/// alice may join by herself, holding `roles/cloudsql.viewer` on `projects/shared-prod`.
async fn readers(h: &Harness, unmanaged: Option<UnmanagedMembers>) -> JitGroup {
    let mut env = environment("prod");
    env.spec.unmanaged_members = unmanaged;
    h.apply(&env).await;
    h.apply(&group(
        "readers",
        vec![entry("user:alice@example.com", "JOIN, APPROVE_SELF")],
        vec![privilege("projects/shared-prod", "roles/cloudsql.viewer")],
    ))
    .await;
    h.wait_for::<JitGroup>("readers", WAIT, is_ready).await
}

fn cloud_ref(g: &JitGroup) -> GroupRef {
    let status = g.status.clone().expect("status");
    GroupRef {
        name: status.group_name.expect("group name"),
        email: status.email.expect("email"),
    }
}

async fn members(h: &Harness) -> Vec<String> {
    let group = h.cloud_group(READERS).await.expect("cloud group");
    group.memberships.iter().map(|m| m.member.clone()).collect()
}

/// Alice joins `readers` through a request that names her in mixed case.
async fn alice_joins(h: &Harness) {
    h.apply(&request(
        "alice-readers",
        "readers",
        "Alice@Example.com",
        "PT1H",
    ))
    .await;
    h.wait_for::<JoinRequest>("alice-readers", WAIT, |r| {
        r.status.as_ref().and_then(|s| s.phase) == Some(Phase::Active)
    })
    .await;
}

/// Adds `member` to the group for an hour, as the environment's service account, as an
/// administrator in the console would.
async fn add_out_of_band(h: &Harness, group: &GroupRef, member: &str) {
    let until = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    h.as_environment()
        .await
        .ensure_membership(group, member, until)
        .await
        .expect("out-of-band membership");
}

#[tokio::test]
async fn a_binding_removed_out_of_band_is_put_back_and_one_added_out_of_band_is_taken_away() {
    let h = Harness::start("drift-bindings").await;
    readers(&h, None).await;
    let member = format!("group:{READERS}");
    let resource: ResourceName = "projects/shared-prod".parse().expect("resource");

    h.as_environment()
        .await
        .reconcile_bindings(
            &resource,
            &member,
            &[DesiredBinding::unconditional("roles/owner")],
        )
        .await
        .expect("out-of-band change");
    assert_eq!(
        h.roles_of("projects/shared-prod", &member).await,
        vec!["roles/owner"],
        "the out-of-band change took effect"
    );

    h.touch::<JitGroup>("readers").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while h.roles_of("projects/shared-prod", &member).await != vec!["roles/cloudsql.viewer"] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bindings were not restored: {:?}",
            h.roles_of("projects/shared-prod", &member).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    assert_eq!(
        h.roles_of("projects/shared-prod", OTHER_PRINCIPAL).await,
        vec!["roles/viewer"],
        "other principals' bindings are untouched"
    );
}

#[tokio::test]
async fn members_added_out_of_band_are_removed_with_an_event_naming_each() {
    let h = Harness::start("drift-members").await;
    let g = readers(&h, None).await;
    alice_joins(&h).await;

    add_out_of_band(&h, &cloud_ref(&g), "bob@example.com").await;
    add_out_of_band(&h, &cloud_ref(&g), "carol@example.com").await;
    assert_eq!(
        members(&h).await,
        vec!["alice@example.com", "bob@example.com", "carol@example.com"]
    );

    h.touch::<JitGroup>("readers").await;
    let bob = h
        .wait_for_event("readers", "UnmanagedMemberRemoved", "bob@example.com", WAIT)
        .await;
    let carol = h
        .wait_for_event(
            "readers",
            "UnmanagedMemberRemoved",
            "carol@example.com",
            WAIT,
        )
        .await;

    assert!(bob.contains(READERS), "{bob}");
    assert!(!carol.contains("bob@example.com"), "{carol}");
    assert_eq!(
        members(&h).await,
        vec!["alice@example.com"],
        "alice's request accounts for her, whatever the case of its email"
    );
    let metrics = h.metrics.encode().expect("metrics");
    assert!(
        metrics.contains("jit_groups_unmanaged_members_removed_total 2"),
        "{metrics}"
    );
    let reasons = h.event_reasons("readers").await;
    assert!(
        !reasons.contains(&"MembershipRestored".to_owned()),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn with_unmanaged_members_reported_an_out_of_band_member_is_kept_and_reported() {
    let h = Harness::start("drift-report").await;
    let g = readers(&h, Some(UnmanagedMembers::Report)).await;

    add_out_of_band(&h, &cloud_ref(&g), "carol@example.com").await;
    h.touch::<JitGroup>("readers").await;
    let note = h
        .wait_for_event("readers", "UnmanagedMemberFound", "carol@example.com", WAIT)
        .await;

    assert!(note.contains("unmanagedMembers is Report"), "{note}");
    assert_eq!(members(&h).await, vec!["carol@example.com"]);
    let reasons = h.event_reasons("readers").await;
    assert!(
        !reasons.contains(&"UnmanagedMemberRemoved".to_owned()),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn groups_named_like_the_environment_without_a_jitgroup_are_listed_as_orphans() {
    let h = Harness::start("drift-orphans").await;
    let seeded = |email: &str| GroupSeed {
        email: email.into(),
        customer: None,
        display_name: None,
        description: None,
        labels: None,
        members: vec![MemberSeed::Email("dave@example.com".into())],
    };
    h.control()
        .seed(&Seed {
            groups: vec![
                seeded("jit.prod.data.old@example.com"),
                seeded("jit.staging.data.old@example.com"),
                seeded("ops@example.com"),
            ],
            ..Seed::default()
        })
        .await
        .expect("seed");

    readers(&h, None).await;
    let env = h
        .wait_for::<JitEnvironment>("prod", WAIT, |e| {
            e.status
                .as_ref()
                .is_some_and(|s| !s.orphan_groups.is_empty())
        })
        .await;
    assert_eq!(
        env.status.expect("status").orphan_groups,
        vec!["jit.prod.data.old@example.com"],
        "the group of JitGroup readers and groups of other environments are not orphans"
    );
    h.wait_for_event(
        "prod",
        "OrphanGroupsFound",
        "jit.prod.data.old@example.com",
        WAIT,
    )
    .await;

    h.delete::<JitGroup>("readers").await;
    h.wait_gone::<JitGroup>("readers", WAIT).await;
    let env = h
        .wait_for::<JitEnvironment>("prod", WAIT, |e| {
            e.status
                .as_ref()
                .is_some_and(|s| s.orphan_groups.len() == 2)
        })
        .await;
    assert_eq!(
        env.status.expect("status").orphan_groups,
        vec!["jit.prod.data.old@example.com", READERS],
        "a deleted JitGroup leaves its Cloud Identity group behind, now reported"
    );
    assert!(
        h.cloud_group("jit.prod.data.old@example.com")
            .await
            .is_some_and(|g| g.member("dave@example.com").is_some()),
        "orphans are reported, never deleted or emptied"
    );
    let metrics = h.metrics.encode().expect("metrics");
    assert!(
        metrics.contains(&format!(
            "jit_groups_orphan_groups{{namespace=\"{}\"}} 2",
            h.namespace
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_membership_granted_while_an_unmanaged_member_is_being_removed_is_put_back() {
    let h = Harness::start("drift-race").await;
    h.apply(&environment("prod")).await;
    h.apply(&group(
        "readers",
        vec![entry("user:bob@example.com", "JOIN, APPROVE_SELF")],
        vec![privilege("projects/shared-prod", "roles/cloudsql.viewer")],
    ))
    .await;
    let g = h.wait_for::<JitGroup>("readers", WAIT, is_ready).await;
    add_out_of_band(&h, &cloud_ref(&g), "bob@example.com").await;
    // The removal of bob's out-of-band membership answers late, so that his own request is
    // approved and granted while it is under way.
    let mut slow_delete =
        gcp_emulator::FaultRule::always("cloudidentity.groups.memberships.delete", 500)
            .with_latency_ms(4000)
            .with_count(1);
    slow_delete.status = None;
    h.control().add_fault(&slow_delete).await.expect("fault");

    h.touch::<JitGroup>("readers").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.apply(&request(
        "bob-readers",
        "readers",
        "bob@example.com",
        "PT2H",
    ))
    .await;
    let active = h
        .wait_for::<JoinRequest>("bob-readers", WAIT, |r| {
            r.status.as_ref().and_then(|s| s.phase) == Some(Phase::Active)
        })
        .await;
    let note = h
        .wait_for_event("readers", "MembershipRestored", "bob@example.com", WAIT)
        .await;

    let expires = active
        .status
        .and_then(|s| s.expires_at)
        .expect("expiresAt")
        .0;
    let cloud = h.cloud_group(READERS).await.expect("cloud group");
    let bob = cloud
        .member("bob@example.com")
        .expect("bob is a member again");
    assert_eq!(
        bob.expire_time.map(|t| t.timestamp()),
        Some(expires.as_second()),
        "{note}"
    );
    let counts = h.control().requests().await.expect("counters");
    assert_eq!(
        counts
            .requests
            .get("cloudidentity.groups.memberships.delete")
            .copied(),
        Some(1),
        "the out-of-band membership was removed once, during the grant"
    );
    assert!(
        !h.event_reasons("readers")
            .await
            .contains(&"UnmanagedMemberRemoved".to_owned()),
        "bob is not reported as removed"
    );
}
