//! Join-to-Active latency and throughput of the whole controller, on real parts: the test
//! control plane, the Google Cloud emulator and the controller in-process. Prints figures;
//! asserts nothing about speed. Run with `cargo bench --bench join_latency` (it needs the
//! control plane binaries, like the tests: `KUBEBUILDER_ASSETS=$(hack/control-plane.sh)`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Harness;
use common::objects::{entry, environment, group, privilege, request};
use jit_groups_controller::api::{JitGroup, JoinRequest, Phase};

const BURST: usize = 50;
const SEQUENTIAL: usize = 10;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn report(label: &str, mut latencies: Vec<Duration>, wall: Duration) {
    latencies.sort();
    println!(
        "{label}: {} requests, p50 {:?}, p95 {:?}, max {:?}, {:.1} requests/s",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        latencies[latencies.len() - 1],
        latencies.len() as f64 / wall.as_secs_f64()
    );
}

/// Waits until every named request is Active and returns how long each took after `started`.
async fn wait_active(h: &Harness, names: &[String], started: Instant) -> Vec<Duration> {
    let api = h.api::<JoinRequest>();
    let mut done: BTreeMap<String, Duration> = BTreeMap::new();
    let deadline = started + Duration::from_secs(300);
    while done.len() < names.len() {
        assert!(
            Instant::now() < deadline,
            "only {} of {} became Active",
            done.len(),
            names.len()
        );
        for r in api.list(&Default::default()).await.expect("list").items {
            let active = r.status.as_ref().and_then(|s| s.phase) == Some(Phase::Active);
            let name = r.metadata.name.clone().unwrap_or_default();
            if active && names.contains(&name) && !done.contains_key(&name) {
                done.insert(name, started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done.into_values().collect()
}

#[tokio::main]
async fn main() {
    let h = Harness::start("bench-join").await;
    h.apply(&environment("prod")).await;
    h.apply(&group(
        "readers",
        vec![entry("domain:example.com", "JOIN, APPROVE_SELF")],
        vec![privilege("projects/shared-prod", "roles/viewer")],
    ))
    .await;
    h.wait_for::<JitGroup>("readers", Duration::from_secs(60), |g| {
        g.status.as_ref().is_some_and(|s| s.email.is_some())
    })
    .await;

    let mut sequential = Vec::new();
    let wall = Instant::now();
    for i in 0..SEQUENTIAL {
        let name = format!("seq-{i}");
        let started = Instant::now();
        h.apply(&request(
            &name,
            "readers",
            &format!("seq{i}@example.com"),
            "PT1H",
        ))
        .await;
        sequential.extend(wait_active(&h, &[name], started).await);
    }
    report("one at a time", sequential, wall.elapsed());

    let names: Vec<String> = (0..BURST).map(|i| format!("burst-{i}")).collect();
    let started = Instant::now();
    for (i, name) in names.iter().enumerate() {
        h.apply(&request(
            name,
            "readers",
            &format!("user{i}@example.com"),
            "PT1H",
        ))
        .await;
    }
    let latencies = wait_active(&h, &names, started).await;
    report("burst", latencies, started.elapsed());

    let counts = h.control().requests().await.expect("counters");
    println!(
        "Google calls during the run: {}",
        counts.requests.values().sum::<u64>()
    );
    for (method, n) in &counts.requests {
        println!("  {method}: {n}");
    }
}
