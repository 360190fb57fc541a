//! The control API and the library handle: seeding, reset, sharing one emulator.

use std::sync::LazyLock;

use gcp_emulator::{ControlError, Emulator, Seed};
use serde_json::json;

use crate::support::*;

static SHARED: LazyLock<Emulator> = LazyLock::new(emulator);

async fn lookup_on_shared() -> Option<String> {
    let hub = cloud_identity(&SHARED, PROVISIONER_TOKEN);
    let (_, found) = hub
        .groups()
        .lookup()
        .group_key_id("admins@example.com")
        .doit()
        .await
        .expect("the shared emulator answers");
    found.name
}

// Each #[tokio::test] has its own runtime, which ends with the test; the shared emulator
// runs on its own thread and outlives them.
#[tokio::test]
async fn a_shared_emulator_answers_one_test() {
    assert!(lookup_on_shared().await.is_some());
}

#[tokio::test]
async fn a_shared_emulator_answers_another_test_with_another_runtime() {
    assert!(lookup_on_shared().await.is_some());
}

#[test]
fn an_emulator_starts_and_stops_outside_any_runtime() {
    let emulator = Emulator::start().expect("starts");
    let address = emulator.addr();
    assert!(emulator.base_url().starts_with("http://127.0.0.1:"));
    assert!(emulator.base_url().ends_with('/'));
    drop(emulator);
    assert!(
        std::net::TcpStream::connect(address).is_err(),
        "the port is closed"
    );
}

#[tokio::test]
async fn an_invalid_seed_is_refused_whole() {
    let emulator = emulator();
    let control = emulator.control();
    let seed = Seed::from_json(json!({
        "users": ["dave@example.com"],
        "groups": [{ "email": "team@unknown-domain.org" }]
    }))
    .expect("well-formed");
    let error = control
        .seed(&seed)
        .await
        .expect_err("no customer owns the domain");
    assert!(matches!(error, ControlError::Refused { status: 400, .. }));
    let state = control.state().await.expect("state");
    assert!(!state.users.contains(&"dave@example.com".to_owned()));
}

#[tokio::test]
async fn reset_empties_the_world_and_the_counters() {
    let emulator = emulator();
    let control = emulator.control();
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);
    create_group(&hub, "jit.prod.sys.reset@example.com").await;
    control.advance_clock(3600).await.expect("clock");

    control.reset().await.expect("reset");

    let state = control.state().await.expect("state");
    assert!(state.groups.is_empty() && state.tokens.is_empty());
    assert_eq!(control.requests().await.expect("counts").total(), 0);
    let drift = control.now().await.expect("now") - chrono::Utc::now();
    assert!(
        drift.num_seconds().abs() < 60,
        "the clock is back to real time"
    );
    let error = hub
        .groups()
        .lookup()
        .group_key_id("admins@example.com")
        .doit()
        .await
        .expect_err("the token is gone too");
    assert_eq!(google_error(&error).0, 401);
}

#[tokio::test]
async fn a_page_size_cap_makes_short_pages() {
    let emulator = emulator();
    let control = emulator.control();
    control
        .seed_json(&json!({ "settings": { "pageSizeCap": 1 } }))
        .await
        .expect("seeded");
    let hub = cloud_identity(&emulator, PROVISIONER_TOKEN);
    let (_, page) = hub
        .groups()
        .list()
        .parent("customers/C01")
        .doit()
        .await
        .expect("listed");
    assert_eq!(page.groups.unwrap_or_default().len(), 1);
    assert!(page.next_page_token.is_some());
}

#[tokio::test]
async fn the_example_seed_file_seeds_a_working_world() {
    let seed: Seed = serde_json::from_str(include_str!("../../seed.example.json"))
        .expect("the example seed parses");
    let emulator = Emulator::start_with_seed(seed).expect("the example seed is accepted");
    let state = emulator.control().state().await.expect("state");
    let deployers = state
        .group("jit.prod.payments.deployers@example.com")
        .expect("the seeded group exists");
    assert_eq!(deployers.memberships.len(), 2);
    let ops = deployers.member("ops@example.com").expect("a nested group");
    assert_eq!(ops.kind, "GROUP");
    assert!(
        deployers
            .member("bob@example.com")
            .and_then(|m| m.expire_time)
            .is_some()
    );
    assert!(state.policies["projects/prod-app"].etag.is_some());
}
