//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas exactly
//! one runs the controllers.
//!
//! The rules follow those of Kubernetes' own components:
//!
//! - A replica takes the Lease when it has no holder, or when its holder has not renewed it
//!   for `leaseDurationSeconds`, counted on this replica's own monotonic clock from the moment
//!   it first saw the current record. Clocks of different machines are never compared.
//! - Every write is an update carrying the `resourceVersion` just read, so of two replicas
//!   racing for the Lease exactly one wins; the other gets a conflict and stays a follower.
//! - The leader renews every retry period. When it cannot renew within the renew deadline,
//!   which is shorter than the lease duration, or when it finds another holder, it has lost
//!   the lease: [`lead`] drops the controllers at once and returns
//!   [`LeaderError::Lost`]. The command then exits so that its pod restarts as a follower.
//!   Since the deadline is counted from before the last successful renewal was sent, the old
//!   leader stops before any other replica may consider the Lease expired.
//! - On a graceful shutdown the leader stops its controllers first and then releases the
//!   Lease, so that another replica takes over within a retry period instead of a lease
//!   duration.
//!
//! The crate `kube-lease-manager` (0.13, built for kube 5) was considered; it has no renew
//! deadline (a leader whose renewals fail keeps reporting leadership until it can read the
//! Lease again), so the loop lives here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::time::Instant;

use crate::metrics::Metrics;

/// The command-line flags of leader election.
#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// Elect a leader among replicas through a Lease, so that only one runs the controllers;
    /// `--leader-election=false` runs them at once, for a single replica.
    #[arg(
        long = "leader-election",
        env = "JIT_LEADER_ELECTION",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub enabled: bool,

    /// Name of the Lease.
    #[arg(long, env = "JIT_LEASE_NAME", default_value = "jit-groups-controller")]
    pub lease_name: String,

    /// Namespace of the Lease; the namespace of the pod's service account (or of the
    /// kubeconfig's context) when unset.
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// How long followers wait for a silent leader before they take over, in whole seconds,
    /// e.g. `15s`.
    #[arg(long, env = "JIT_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// How long the leader keeps trying to renew the Lease before it stops reconciling and
    /// exits; shorter than the lease duration.
    #[arg(
        long = "lease-renew-deadline",
        env = "JIT_LEASE_RENEW_DEADLINE",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub renew_deadline: Duration,
}

impl Args {
    /// The Lease to elect on, or `None` when leader election is off. `instance` names this
    /// replica (the pod name); a random suffix keeps two processes of one name apart.
    pub fn lease_config(
        &self,
        client: &Client,
        instance: &str,
    ) -> Result<Option<LeaseConfig>, LeaderError> {
        if !self.enabled {
            return Ok(None);
        }
        let namespace = self
            .lease_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        let suffix: u32 = rand::random();
        let mut config = LeaseConfig::new(
            &self.lease_name,
            namespace,
            format!("{instance}_{suffix:08x}"),
        );
        config.lease_duration = self.lease_duration;
        config.renew_deadline = self.renew_deadline;
        config.retry_period =
            (self.renew_deadline / 5).clamp(Duration::from_millis(100), Duration::from_secs(2));
        config.validate()?;
        Ok(Some(config))
    }
}

/// Parses a duration such as `15s`, `10m` or `PT15S`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let signed: jiff::SignedDuration = text.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from(signed).map_err(|_| "must not be negative".to_owned())
}

/// Where the Lease is and how it is held.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Name of the Lease.
    pub name: String,
    /// Namespace of the Lease.
    pub namespace: String,
    /// This replica's identity in the Lease's `holderIdentity`, e.g. the pod name. Every
    /// replica needs its own.
    pub identity: String,
    /// How long followers wait after the last renewal they saw before they take the Lease.
    /// Whole seconds, as the Lease stores it.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leadership; shorter than
    /// the lease duration.
    pub renew_deadline: Duration,
    /// How often the leader renews and followers look at the Lease.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// A Lease with Kubernetes' customary timing: 15 s duration, 10 s renew deadline, 2 s
    /// retry period.
    pub fn new(
        name: impl Into<String>,
        namespace: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Checks that the timing can keep one leader: whole seconds of at least one for the
    /// duration, a renew deadline below it, and a retry period below the deadline.
    pub fn validate(&self) -> Result<(), LeaderError> {
        let invalid = |message: String| Err(LeaderError::Config(message));
        if self.name.is_empty() || self.namespace.is_empty() || self.identity.is_empty() {
            return invalid("the lease name, namespace and identity must not be empty".into());
        }
        if self.lease_duration.subsec_nanos() != 0 || self.lease_duration.as_secs() == 0 {
            return invalid(format!(
                "the lease duration must be a whole number of seconds, at least 1; got {:?}",
                self.lease_duration
            ));
        }
        if i32::try_from(self.lease_duration.as_secs()).is_err() {
            return invalid(format!(
                "the lease duration {:?} is too long",
                self.lease_duration
            ));
        }
        if self.renew_deadline >= self.lease_duration {
            return invalid(format!(
                "the renew deadline ({:?}) must be shorter than the lease duration ({:?})",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return invalid(format!(
                "the retry period ({:?}) must be above zero and shorter than the renew deadline \
                 ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(())
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// Why leading ended or could not start.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The settings cannot keep a single leader.
    #[error("invalid leader election settings: {0}")]
    Config(String),

    /// This replica led and no longer does; it stopped its controllers.
    #[error("lost the lease {lease}: {reason}")]
    Lost {
        /// The Lease, as `namespace/name`.
        lease: String,
        /// What happened.
        reason: String,
    },
}

/// What one look at the Lease found.
enum Attempt {
    /// This replica holds the Lease now.
    Held,
    /// Another replica holds a Lease that has not expired.
    HeldBy(String),
    /// The Lease changed between the read and the write; look again.
    Conflict,
}

/// The Lease record as last seen, and when it was first seen on this replica's clock.
struct Observed {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    transitions: Option<i32>,
    duration: Duration,
    since: Instant,
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    metrics: Arc<Metrics>,
    observed: Option<Observed>,
    /// When the last successful renewal (or acquisition) was sent.
    renewed: Option<Instant>,
}

impl Elector {
    /// An elector for `config`; reports leadership in `metrics`.
    pub fn new(
        client: Client,
        config: LeaseConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, LeaderError> {
        config.validate()?;
        metrics.set_leader(false);
        Ok(Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            metrics,
            observed: None,
            renewed: None,
        })
    }

    fn lease(&self) -> String {
        format!("{}/{}", self.config.namespace, self.config.name)
    }

    /// Waits until this replica holds the Lease.
    async fn acquire(&mut self) {
        let mut last_holder: Option<String> = None;
        loop {
            let started = Instant::now();
            match self.try_hold().await {
                Ok(Attempt::Held) => {
                    self.renewed = Some(started);
                    self.metrics.set_leader(true);
                    tracing::info!(
                        lease = %self.lease(),
                        identity = %self.config.identity,
                        "acquired the lease; this instance leads"
                    );
                    return;
                }
                Ok(Attempt::HeldBy(holder)) => {
                    if last_holder.as_deref() != Some(holder.as_str()) {
                        tracing::info!(
                            lease = %self.lease(),
                            %holder,
                            "standing by while another instance leads"
                        );
                        last_holder = Some(holder);
                    }
                }
                Ok(Attempt::Conflict) => {}
                Err(error) => {
                    tracing::warn!(
                        lease = %self.lease(),
                        %error,
                        "could not read or take the lease"
                    );
                }
            }
            tokio::time::sleep(jittered(self.config.retry_period)).await;
        }
    }

    /// Renews the Lease every retry period while it can; returns once leadership is lost.
    async fn keep(&mut self) -> LeaderError {
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            if let Err(reason) = self.renew().await {
                self.metrics.set_leader(false);
                self.renewed = None;
                let error = LeaderError::Lost {
                    lease: self.lease(),
                    reason,
                };
                tracing::error!(
                    identity = %self.config.identity,
                    %error,
                    "stopping the controllers"
                );
                return error;
            }
        }
    }

    /// One renewal, retried until it succeeds or the renew deadline passes.
    async fn renew(&mut self) -> Result<(), String> {
        let Some(renewed) = self.renewed else {
            return Err("the lease was never held".into());
        };
        let deadline = renewed + self.config.renew_deadline;
        loop {
            let started = Instant::now();
            if started >= deadline {
                return Err(format!(
                    "could not renew it within the renew deadline of {:?}",
                    self.config.renew_deadline
                ));
            }
            match tokio::time::timeout(deadline - started, self.try_hold()).await {
                Ok(Ok(Attempt::Held)) => {
                    self.renewed = Some(started);
                    return Ok(());
                }
                Ok(Ok(Attempt::HeldBy(holder))) => return Err(format!("{holder} holds it now")),
                Ok(Ok(Attempt::Conflict)) => continue,
                Ok(Err(error)) => {
                    tracing::warn!(
                        lease = %self.lease(),
                        %error,
                        "could not renew the lease; retrying"
                    );
                    let pause = self
                        .config
                        .retry_period
                        .min(deadline.saturating_duration_since(Instant::now()));
                    tokio::time::sleep(pause).await;
                }
                Err(_) => {
                    return Err(format!(
                        "no answer from the API server within the renew deadline of {:?}",
                        self.config.renew_deadline
                    ));
                }
            }
        }
    }

    /// Reads the Lease and takes or renews it when the rules allow.
    async fn try_hold(&mut self) -> Result<Attempt, kube::Error> {
        let now = Instant::now();
        let Some(current) = self.api.get_opt(&self.config.name).await? else {
            return self.create().await;
        };
        let spec = current.spec.clone().unwrap_or_default();
        self.observe(&spec, now);

        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.config.identity.as_str());
        if let (Some(holder), false) = (&holder, ours) {
            if !self.observed_expired(Instant::now()) {
                return Ok(Attempt::HeldBy(holder.clone()));
            }
            tracing::info!(
                lease = %self.lease(),
                previous = %holder,
                "the lease expired; taking it"
            );
        }

        let stamp = MicroTime(Timestamp::now());
        let mut next = spec.clone();
        next.holder_identity = Some(self.config.identity.clone());
        next.lease_duration_seconds = Some(self.config.duration_seconds());
        next.renew_time = Some(stamp.clone());
        if !ours {
            next.acquire_time = Some(stamp);
            next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        let mut update = current;
        update.spec = Some(next);
        // The update carries the resourceVersion just read, so it fails if anyone wrote
        // the Lease in between.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &update)
            .await
        {
            Ok(written) => {
                self.observe(&written.spec.unwrap_or_default(), Instant::now());
                Ok(Attempt::Held)
            }
            Err(kube::Error::Api(response)) if response.code == 409 => Ok(Attempt::Conflict),
            Err(error) => Err(error),
        }
    }

    /// Creates the Lease held by this replica; a conflict means another replica created it.
    async fn create(&mut self) -> Result<Attempt, kube::Error> {
        let stamp = MicroTime(Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.config.identity.clone()),
                lease_duration_seconds: Some(self.config.duration_seconds()),
                acquire_time: Some(stamp.clone()),
                renew_time: Some(stamp),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(created) => {
                self.observe(&created.spec.unwrap_or_default(), Instant::now());
                Ok(Attempt::Held)
            }
            Err(kube::Error::Api(response)) if response.code == 409 => Ok(Attempt::Conflict),
            Err(error) => Err(error),
        }
    }

    /// Remembers the record, restarting the expiry count whenever it changed.
    fn observe(&mut self, spec: &LeaseSpec, at: Instant) {
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let unchanged = self.observed.as_ref().is_some_and(|o| {
            o.holder == holder
                && o.renew_time == spec.renew_time
                && o.transitions == spec.lease_transitions
        });
        if unchanged {
            return;
        }
        let seconds = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(0);
        self.observed = Some(Observed {
            holder,
            renew_time: spec.renew_time.clone(),
            transitions: spec.lease_transitions,
            duration: Duration::from_secs(seconds),
            since: at,
        });
    }

    fn observed_expired(&self, now: Instant) -> bool {
        self.observed
            .as_ref()
            .is_none_or(|o| now >= o.since + o.duration)
    }

    /// Gives the Lease up if this replica still holds it, so another takes over at once.
    async fn release(&mut self) {
        self.metrics.set_leader(false);
        self.renewed = None;
        let current = match self.api.get_opt(&self.config.name).await {
            Ok(Some(current)) => current,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(
                    lease = %self.lease(),
                    %error,
                    "could not release the lease; it expires by itself"
                );
                return;
            }
        };
        let spec = current.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        let mut update = current;
        update.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..spec
        });
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &update)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.lease(), "released the lease"),
            Err(error) => {
                tracing::warn!(
                    lease = %self.lease(),
                    %error,
                    "could not release the lease; it expires by itself"
                );
            }
        }
    }
}

/// `period` stretched by up to a fifth, so that followers do not poll in step.
fn jittered(period: Duration) -> Duration {
    period.mul_f64(1.0 + rand::random::<f64>() * 0.2)
}

/// Runs `work` only while this replica holds the Lease.
///
/// Stands by until the Lease is won, then starts `work`, handing it a future that completes
/// when it should stop. Returns `Ok` when `shutdown` completes: before the Lease was won at
/// once, afterwards once `work` has stopped, and then the Lease is released. Returns
/// [`LeaderError::Lost`] as soon as the Lease is lost, having dropped `work` mid-flight so
/// that nothing more is reconciled. A Google call already sent at that moment may still
/// complete, and whatever `work` meant to do after it (such as checking a removal) is not
/// done.
pub async fn lead<F, W, S>(mut elector: Elector, shutdown: S, work: F) -> Result<(), LeaderError>
where
    F: FnOnce(StopSignal) -> W,
    W: Future<Output = ()>,
    S: Future<Output = ()>,
{
    tokio::pin!(shutdown);
    tokio::select! {
        () = &mut shutdown => return Ok(()),
        () = elector.acquire() => {}
    }

    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let work = work(StopSignal(stop.subscribe()));
    tokio::pin!(work);
    let running = async {
        tokio::select! {
            () = &mut work => {}
            () = &mut shutdown => {
                let _ = stop.send(());
                (&mut work).await;
            }
        }
    };
    let outcome = tokio::select! {
        biased;
        lost = elector.keep() => Err(lost),
        () = running => Ok(()),
    };
    match outcome {
        Ok(()) => {
            elector.release().await;
            Ok(())
        }
        Err(lost) => Err(lost),
    }
}

/// Completes when the work that [`lead`] runs should stop, because of a shutdown.
pub struct StopSignal(tokio::sync::broadcast::Receiver<()>);

impl StopSignal {
    /// Waits for the signal.
    pub async fn wait(mut self) {
        let _ = self.0.recv().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LeaseConfig {
        LeaseConfig::new("jit-groups-controller", "jit-system", "pod-a")
    }

    #[test]
    fn kubernetes_customary_timing_is_valid() {
        assert!(config().validate().is_ok());
    }

    #[test]
    fn a_renew_deadline_not_below_the_lease_duration_is_refused() {
        let mut c = config();
        c.renew_deadline = c.lease_duration;
        let error = c.validate().expect_err("invalid").to_string();
        assert!(error.contains("renew deadline"), "{error}");
    }

    #[test]
    fn a_retry_period_not_below_the_renew_deadline_is_refused() {
        let mut c = config();
        c.retry_period = c.renew_deadline;
        assert!(c.validate().is_err());
        c.retry_period = Duration::ZERO;
        assert!(c.validate().is_err());
    }

    #[test]
    fn a_lease_duration_in_fractions_of_a_second_is_refused() {
        let mut c = config();
        c.lease_duration = Duration::from_millis(15_500);
        assert!(c.validate().is_err());
    }

    #[test]
    fn durations_are_read_in_short_and_iso_8601_forms() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("PT10S"), Ok(Duration::from_secs(10)));
        assert_eq!(
            parse_duration("720h"),
            Ok(Duration::from_secs(30 * 24 * 3600))
        );
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn an_empty_identity_is_refused() {
        let mut c = config();
        c.identity.clear();
        assert!(c.validate().is_err());
    }
}
