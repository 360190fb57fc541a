//! Prometheus metrics of the reconcilers and the requests they manage.

use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::reflector::Store;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::api::{JoinRequest, Phase};

/// The controller's metrics and the registry that exports them.
pub struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    failures: IntCounterVec,
    durations: HistogramVec,
    grants: IntCounter,
    requests: IntGaugeVec,
    request_store: Mutex<Option<Store<JoinRequest>>>,
    unmanaged_removed: IntCounter,
    unmanaged_reported: IntCounter,
    orphan_groups: IntGaugeVec,
    history_deleted: IntCounter,
    leader: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("jit_groups".to_owned()), None)?;
        let reconciles = IntCounterVec::new(
            Opts::new("reconciles_total", "Reconciles run, by controller"),
            &["controller"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "reconcile_errors_total",
                "Reconciles that failed, by controller and kind of error",
            ),
            &["controller", "error"],
        )?;
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "reconcile_duration_seconds",
                "Time one reconcile took, by controller",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["controller"],
        )?;
        let grants = IntCounter::new("memberships_granted_total", "Memberships added or extended")?;
        let requests = IntGaugeVec::new(
            Opts::new(
                "join_requests",
                "Join requests by phase; Active ones hold a membership",
            ),
            &["phase"],
        )?;
        let unmanaged_removed = IntCounter::new(
            "unmanaged_members_removed_total",
            "Members of JIT groups that no request accounted for, removed",
        )?;
        let unmanaged_reported = IntCounter::new(
            "unmanaged_members_reported_total",
            "Times a member that no request accounted for was found and left in place, because \
             the environment's unmanagedMembers is Report",
        )?;
        let orphan_groups = IntGaugeVec::new(
            Opts::new(
                "orphan_groups",
                "Cloud Identity groups named like an environment's JIT groups that no JitGroup \
                 covers, by the environment's namespace",
            ),
            &["namespace"],
        )?;
        let history_deleted = IntCounter::new(
            "history_deleted_total",
            "Finished join requests deleted after the history retention",
        )?;
        let leader = IntGauge::new(
            "leader",
            "1 while this instance holds the leader lease and runs the controllers, else 0",
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(durations.clone()))?;
        registry.register(Box::new(grants.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(unmanaged_removed.clone()))?;
        registry.register(Box::new(unmanaged_reported.clone()))?;
        registry.register(Box::new(orphan_groups.clone()))?;
        registry.register(Box::new(history_deleted.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        Ok(Self {
            registry,
            reconciles,
            failures,
            durations,
            grants,
            requests,
            request_store: Mutex::new(None),
            unmanaged_removed,
            unmanaged_reported,
            orphan_groups,
            history_deleted,
            leader,
        })
    }

    /// Records one reconcile of `controller` that took `elapsed` and failed with `error`,
    /// if any.
    pub fn observe_reconcile(&self, controller: &str, elapsed: Duration, error: Option<&str>) {
        self.reconciles.with_label_values(&[controller]).inc();
        self.durations
            .with_label_values(&[controller])
            .observe(elapsed.as_secs_f64());
        if let Some(error) = error {
            self.failures.with_label_values(&[controller, error]).inc();
        }
    }

    /// Records a membership added or extended.
    pub fn granted(&self) {
        self.grants.inc();
    }

    /// Records a member that no request accounted for, removed from its group.
    pub fn unmanaged_member_removed(&self) {
        self.unmanaged_removed.inc();
    }

    /// Records a member that no request accounted for, found and left in its group.
    pub fn unmanaged_member_reported(&self) {
        self.unmanaged_reported.inc();
    }

    /// Sets the number of orphan groups of the environment in `namespace`; `None` forgets the
    /// namespace, for an environment that is gone.
    pub fn set_orphan_groups(&self, namespace: &str, count: Option<usize>) {
        match count {
            Some(count) => self
                .orphan_groups
                .with_label_values(&[namespace])
                .set(i64::try_from(count).unwrap_or(i64::MAX)),
            None => {
                let _ = self.orphan_groups.remove_label_values(&[namespace]);
            }
        }
    }

    /// Records a finished request deleted after the history retention.
    pub fn history_deleted(&self) {
        self.history_deleted.inc();
    }

    /// Records whether this instance leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Whether this instance leads, as last recorded.
    pub fn is_leader(&self) -> bool {
        self.leader.get() == 1
    }

    /// Reconciles run so far by `controller` (`jitenvironment`, `jitgroup`, `joinrequest`).
    pub fn reconciles(&self, controller: &str) -> u64 {
        self.reconciles.with_label_values(&[controller]).get()
    }

    /// Counts requests by phase from `store` whenever metrics are gathered.
    pub fn watch_requests(&self, store: Store<JoinRequest>) {
        if let Ok(mut slot) = self.request_store.lock() {
            *slot = Some(store);
        }
    }

    /// The metrics in Prometheus' text format.
    pub fn encode(&self) -> Result<String, prometheus::Error> {
        self.count_requests();
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    }

    fn count_requests(&self) {
        let Ok(slot) = self.request_store.lock() else {
            return;
        };
        let Some(store) = slot.as_ref() else { return };
        let requests = store.state();
        for phase in Phase::ALL {
            let count = requests
                .iter()
                .filter(|r| r.phase().unwrap_or_default() == phase)
                .count();
            self.requests
                .with_label_values(&[&phase.to_string()])
                .set(count as i64);
        }
    }
}
