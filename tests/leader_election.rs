//! High availability: replicas of the controller elect a leader on a Lease of the real
//! control plane, and only the leader reconciles. Each "replica" runs in-process with its own
//! metrics and instance name, through the same library function as the command.

mod common;

use common::is_ready;
use std::sync::Arc;
use std::time::Duration;

use common::Harness;
use common::objects::{entry, environment, group, privilege};
use jit_groups_controller::api::JitGroup;
use jit_groups_controller::controller;
use jit_groups_controller::google::Google;
use jit_groups_controller::leader::{self, Elector, LeaderError, LeaseConfig};
use jit_groups_controller::metrics::Metrics;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(30);
const LEASE: &str = "jit-groups-controller";
const MEMBER: &str = "group:jit.prod.data.admins@example.com";

/// A replica running in-process.
struct Replica {
    metrics: Arc<Metrics>,
    handle: JoinHandle<Result<(), LeaderError>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Replica {
    fn reconciles(&self) -> u64 {
        ["jitenvironment", "jitgroup", "joinrequest"]
            .iter()
            .map(|c| self.metrics.reconciles(c))
            .sum()
    }
}

/// A short lease so that the tests run in seconds: 4 s, renewed every half second, given up
/// after 3 s without a renewal.
fn lease(h: &Harness, identity: &str) -> LeaseConfig {
    let mut config = LeaseConfig::new(LEASE, h.namespace.clone(), identity);
    config.lease_duration = Duration::from_secs(4);
    config.renew_deadline = Duration::from_secs(3);
    config.retry_period = Duration::from_millis(500);
    config
}

/// Starts a replica named `identity` (its lease identity and its instance name in events).
fn replica(h: &Harness, config: LeaseConfig) -> Replica {
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let mut settings = h.settings();
    settings.instance = config.identity.clone();
    let google_config = h.google_config();
    let client = h.admin.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let replica_metrics = metrics.clone();
    let handle = tokio::spawn(async move {
        let google = Google::new(google_config).await.expect("google clients");
        let elector = Elector::new(client.clone(), config, replica_metrics.clone())?;
        let shutdown = async {
            let _ = stopped.await;
        };
        leader::lead(elector, shutdown, |signal| {
            controller::run(
                client,
                google,
                settings,
                replica_metrics,
                || {},
                signal.wait(),
            )
        })
        .await
    });
    Replica {
        metrics,
        handle,
        stop: Some(stop),
    }
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < timeout,
            "{what} did not happen in {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

fn admins(roles: &[&str]) -> JitGroup {
    group(
        "admins",
        vec![entry("user:alice@example.com", "JOIN, APPROVE_SELF")],
        roles
            .iter()
            .map(|r| privilege("projects/shared-prod", r))
            .collect(),
    )
}

async fn holder(h: &Harness) -> Option<String> {
    let leases: Api<Lease> = h.api();
    leases
        .get_opt(LEASE)
        .await
        .expect("lease")
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

/// The reporting instances of all the namespace's events, without duplicates.
async fn reporting_instances(h: &Harness) -> Vec<String> {
    let events: Api<Event> = h.api();
    let mut instances: Vec<String> = events
        .list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter_map(|e| e.reporting_instance)
        .collect();
    instances.sort();
    instances.dedup();
    instances
}

#[tokio::test]
async fn of_two_replicas_only_the_leader_reconciles_and_the_other_takes_over_when_it_dies() {
    let h = Harness::start_without_controller("leader-failover").await;
    let a = replica(&h, lease(&h, "replica-a"));
    wait_until("replica-a leading", WAIT, || a.metrics.is_leader()).await;
    let b = replica(&h, lease(&h, "replica-b"));

    h.apply(&environment("prod")).await;
    h.apply(&admins(&["roles/viewer"])).await;
    h.wait_for::<JitGroup>("admins", WAIT, is_ready).await;
    // Several lease durations pass: the leader keeps renewing and the follower stays idle.
    tokio::time::sleep(Duration::from_secs(9)).await;

    assert_eq!(holder(&h).await.as_deref(), Some("replica-a"));
    assert!(a.reconciles() > 0, "the leader reconciles");
    assert_eq!(b.reconciles(), 0, "the follower reconciles nothing");
    assert!(!b.metrics.is_leader());
    assert_eq!(reporting_instances(&h).await, vec!["replica-a"]);

    a.handle.abort();
    let failover = wait_until("replica-b taking over", Duration::from_secs(10), || {
        b.metrics.is_leader()
    })
    .await;
    println!("failover after the leader died: {failover:?} (lease duration 4 s)");
    assert!(
        failover < Duration::from_secs(4 + 3),
        "failover took {failover:?}, more than the lease duration and a few seconds"
    );
    assert_eq!(holder(&h).await.as_deref(), Some("replica-b"));

    h.apply(&admins(&["roles/viewer", "roles/compute.viewer"]))
        .await;
    let deadline = Instant::now() + WAIT;
    while h.roles_of("projects/shared-prod", MEMBER).await
        != vec!["roles/compute.viewer", "roles/viewer"]
    {
        assert!(
            Instant::now() < deadline,
            "the new leader did not reconcile"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(b.reconciles() > 0, "the new leader reconciles");
    assert_eq!(
        reporting_instances(&h).await,
        vec!["replica-a", "replica-b"]
    );
}

#[tokio::test]
async fn a_leader_whose_lease_is_taken_stops_reconciling_at_once() {
    let h = Harness::start_without_controller("leader-lost").await;
    let mut a = replica(&h, lease(&h, "replica-a"));
    wait_until("replica-a leading", WAIT, || a.metrics.is_leader()).await;
    h.apply(&environment("prod")).await;
    h.apply(&admins(&["roles/viewer"])).await;
    h.wait_for::<JitGroup>("admins", WAIT, is_ready).await;

    let leases: Api<Lease> = h.api();
    let mut stolen = leases.get(LEASE).await.expect("lease");
    let spec = stolen.spec.as_mut().expect("spec");
    spec.holder_identity = Some("intruder".into());
    spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
    spec.lease_duration_seconds = Some(60);
    leases
        .replace(LEASE, &PostParams::default(), &stolen)
        .await
        .expect("take the lease");
    let taken = Instant::now();

    let outcome = tokio::time::timeout(Duration::from_secs(5), &mut a.handle)
        .await
        .expect("the replica stops within a few retry periods")
        .expect("the replica's task ends by itself");
    let stopped_after = taken.elapsed();
    println!("the leader stopped {stopped_after:?} after its lease was taken");

    let error = outcome.expect_err("leadership is lost");
    assert!(
        error.to_string().contains("intruder holds it now"),
        "{error}"
    );
    assert!(!a.metrics.is_leader());
    let reconciles = a.reconciles();
    h.apply(&admins(&["roles/viewer", "roles/compute.viewer"]))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(a.reconciles(), reconciles, "nothing is reconciled any more");
    assert_eq!(
        h.roles_of("projects/shared-prod", MEMBER).await,
        vec!["roles/viewer"]
    );
    assert_eq!(holder(&h).await.as_deref(), Some("intruder"));
}

#[tokio::test]
async fn a_leader_shutting_down_releases_the_lease_so_a_follower_takes_over_at_once() {
    let h = Harness::start_without_controller("leader-release").await;
    let slow = |identity: &str| {
        let mut config = lease(&h, identity);
        config.lease_duration = Duration::from_secs(20);
        config.renew_deadline = Duration::from_secs(10);
        config
    };
    let mut a = replica(&h, slow("replica-a"));
    wait_until("replica-a leading", WAIT, || a.metrics.is_leader()).await;
    let b = replica(&h, slow("replica-b"));
    h.apply(&environment("prod")).await;
    h.apply(&admins(&["roles/viewer"])).await;
    h.wait_for::<JitGroup>("admins", WAIT, is_ready).await;
    assert_eq!(b.reconciles(), 0);

    let stop = a.stop.take().expect("stop");
    let _ = stop.send(());
    let stopping = Instant::now();
    let outcome = tokio::time::timeout(WAIT, a.handle)
        .await
        .expect("the leader stops")
        .expect("its task ends by itself");
    assert!(
        outcome.is_ok(),
        "a shutdown is not a lost lease: {outcome:?}"
    );
    wait_until("replica-b taking over", WAIT, || b.metrics.is_leader()).await;
    let handover = stopping.elapsed();
    println!("handover after a graceful shutdown: {handover:?} (lease duration 20 s)");

    assert!(
        handover < Duration::from_secs(10),
        "the follower waited for the lease to expire: {handover:?}"
    );
    assert_eq!(holder(&h).await.as_deref(), Some("replica-b"));
}

/// A TCP relay to the API server that can be cut, as a network partition would.
struct Relay {
    url: String,
    task: JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: &str) -> Relay {
        let upstream = upstream
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("relay port");
        let url = format!("https://{}", listener.local_addr().expect("address"));
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay { url, task }
    }

    /// Closes the port and every connection through it.
    fn cut(&self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_leader_cut_off_from_the_api_server_stops_before_its_lease_can_expire() {
    let h = Harness::start_without_controller("leader-partition").await;
    let relay = Relay::start(h.plane.url()).await;
    let mut config = h.plane.config(jit_test_support::User::Admin);
    config.cluster_url = relay.url.parse().expect("relay url");
    let partitioned = kube::Client::try_from(config).expect("client");

    let lease = lease(&h, "replica-a");
    let (lease_duration, renew_deadline) = (lease.lease_duration, lease.renew_deadline);
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let elector = Elector::new(partitioned, lease, metrics.clone()).expect("elector");
    let handle = tokio::spawn(leader::lead(elector, std::future::pending(), |stop| {
        stop.wait()
    }));
    wait_until("replica-a leading", WAIT, || metrics.is_leader()).await;
    let b = replica(&h, self::lease(&h, "replica-b"));
    tokio::time::sleep(Duration::from_secs(2)).await;

    relay.cut();
    let cut = Instant::now();
    let outcome = tokio::time::timeout(lease_duration + Duration::from_secs(3), handle)
        .await
        .expect("the leader gives up")
        .expect("its task ends by itself");
    let stopped_after = cut.elapsed();
    println!(
        "a leader cut off from the API server stopped after {stopped_after:?} \
         (renew deadline {renew_deadline:?}, lease duration {lease_duration:?})"
    );

    let error = outcome.expect_err("leadership is lost");
    assert!(error.to_string().contains("renew deadline"), "{error}");
    assert!(!metrics.is_leader());
    assert!(
        stopped_after < lease_duration,
        "stopped {stopped_after:?} after the cut, when others may already take the lease"
    );
    assert!(
        !b.metrics.is_leader(),
        "the follower did not lead while the cut-off leader still did"
    );
    wait_until("replica-b taking over", WAIT, || b.metrics.is_leader()).await;
    println!("the follower took over {:?} after the cut", cut.elapsed());
    assert_eq!(holder(&h).await.as_deref(), Some("replica-b"));
}
