//! The `jit-groups-controller` command itself, run as a process the way a Deployment runs
//! it: against the real control plane and the Google Cloud emulator, with its HTTP endpoints.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::objects::{entry, environment, group, privilege};
use common::{CONTROLLER_TOKEN, Harness};
use jit_groups_controller::api::{JitGroup, READY};
use jit_test_support::User;

/// The running command; killed when dropped.
struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

fn start(h: &Harness, port: u16, leader_election: bool) -> Controller {
    let child = Command::new(env!("CARGO_BIN_EXE_jit-groups-controller"))
        .args([
            "run",
            "--namespace",
            &h.namespace,
            "--lease-namespace",
            &h.namespace,
        ])
        .args(["--metrics-address", &format!("127.0.0.1:{port}")])
        .args(["--google-endpoint", h.emulator.base_url()])
        .args(["--google-access-token", CONTROLLER_TOKEN])
        .args([
            "--leader-election",
            if leader_election { "true" } else { "false" },
        ])
        .args(["--log-format", "json"])
        .env("KUBECONFIG", h.plane.kubeconfig(User::Admin))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the command starts");
    Controller(child)
}

/// GETs `path` until it answers 200, and returns the body.
async fn get_ok(port: u16, path: &str) -> String {
    let url = format!("http://127.0.0.1:{port}{path}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        match reqwest::get(&url).await {
            Ok(response) if response.status().is_success() => {
                return response.text().await.expect("body");
            }
            Ok(response) => {
                last = format!(
                    "{}: {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                )
            }
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{url} did not answer 200 within 30s; last answer: {last}");
}

async fn reconciles_a_group_and_reports_it(leader_election: bool) {
    let mut h = Harness::start(if leader_election {
        "binary-leader"
    } else {
        "binary-single"
    })
    .await;
    h.kill_controller();
    let port = free_port();
    let _controller = start(&h, port, leader_election);

    assert_eq!(get_ok(port, "/healthz").await, "ok");
    assert_eq!(get_ok(port, "/readyz").await, "ready");

    h.apply(&environment("prod")).await;
    h.apply(&group(
        "readers",
        vec![entry("user:alice@example.com", "JOIN, APPROVE_SELF")],
        vec![privilege("projects/shared-prod", "roles/viewer")],
    ))
    .await;
    h.wait_for::<JitGroup>("readers", Duration::from_secs(30), |g| {
        g.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == READY && c.status == "True")
        })
    })
    .await;

    let metrics = get_ok(port, "/metrics").await;
    let reconciles = metrics
        .lines()
        .find(|l| l.starts_with("jit_groups_reconciles_total{controller=\"jitgroup\"}"))
        .unwrap_or_else(|| panic!("no jitgroup reconcile counter in:\n{metrics}"));
    let count: u64 = reconciles
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(count >= 1, "{reconciles}");
    assert!(
        metrics.contains("jit_groups_reconcile_duration_seconds_bucket"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_command_with_leader_election_becomes_ready_and_reconciles() {
    reconciles_a_group_and_reports_it(true).await;
}

#[tokio::test]
async fn the_command_without_leader_election_becomes_ready_and_reconciles() {
    reconciles_a_group_and_reports_it(false).await;
}

#[test]
fn the_crd_command_prints_the_committed_definitions() {
    let output = Command::new(env!("CARGO_BIN_EXE_jit-groups-controller"))
        .arg("crd")
        .output()
        .expect("the command runs");
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).expect("UTF-8");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    for file in ["jitenvironments", "jitgroups", "joinrequests"] {
        let committed = std::fs::read_to_string(dir.join(format!("{file}.jitgroups.dev.yaml")))
            .expect("committed CRD");
        assert!(
            printed.contains(&committed),
            "{file} differs from the printed definitions"
        );
    }
}
