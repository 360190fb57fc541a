//! A real Kubernetes control plane, etcd and kube-apiserver, on loopback.

use std::env;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, Config};

use crate::binaries::Binaries;
use crate::crd;
use crate::kubectl::{self, KubectlOutput};
use crate::pki::Pki;
use crate::process::{self, Server, Watchdog};
use crate::user::{self, User};

/// Set to a non-empty value other than `0` to keep the directories of stopped control planes,
/// with their logs, for a look after the tests.
const KEEP_VARIABLE: &str = "JIT_KEEP_CONTROL_PLANE";

/// How long kube-apiserver may take to answer `/readyz` after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How many log lines an error about a failed start quotes from each server.
const LOG_TAIL_LINES: usize = 40;

/// How often a start is retried when another process took one of the chosen ports.
const START_ATTEMPTS: u32 = 3;

/// The issuer of service-account tokens, the same as in most clusters.
const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// etcd and kube-apiserver running on free loopback ports, with every user of [`User`]
/// able to log in, and the repository's CRDs installed.
///
/// Everything lives in a fresh temporary directory: certificates, the token file, one
/// kubeconfig per user, etcd's data and both servers' logs. Dropping the value stops the
/// servers and removes the directory. A watchdog process does the same when the test process
/// ends without dropping it: after a `static` (see [`ControlPlane::shared`]), an abort or a
/// kill. Set `JIT_KEEP_CONTROL_PLANE=1` to keep the directory and its logs.
///
/// The value holds no client and no runtime resources, so one instance can serve tests that
/// each run their own tokio runtime: [`ControlPlane::client`] builds a client in the caller's
/// runtime every time it is called.
///
/// The control plane has no controller manager, scheduler or kubelet. Namespaces therefore
/// stay `Terminating` once deleted, owner references are not garbage-collected, service
/// accounts get no token secrets and pods are never scheduled.
pub struct ControlPlane {
    dir: PathBuf,
    keep_dir: bool,
    url: String,
    apiserver_port: u16,
    ca_pem: String,
    base_config: Config,
    etcd: Option<Server>,
    apiserver: Option<Server>,
    watchdog: Watchdog,
}

/// How one attempt to start ended, when it did not end with a running control plane.
enum StartFailure {
    /// Another process took a port between choosing it and binding it: worth another try.
    PortTaken(anyhow::Error),
    Other(anyhow::Error),
}

impl ControlPlane {
    /// Starts a control plane owned by the caller and waits until it serves requests and
    /// the repository's CRDs are Established. Fails, naming `hack/control-plane.sh`, when
    /// the binaries cannot be found, and quotes the servers' logs when they do not start.
    pub async fn start() -> anyhow::Result<ControlPlane> {
        let binaries = Binaries::locate()?;
        let mut attempt = 1;
        loop {
            match ControlPlane::start_once(&binaries).await {
                Ok(plane) => return Ok(plane),
                Err(StartFailure::PortTaken(error)) if attempt < START_ATTEMPTS => {
                    eprintln!("control plane: a port was taken, trying again: {error:#}");
                    attempt += 1;
                }
                Err(StartFailure::PortTaken(error) | StartFailure::Other(error)) => {
                    return Err(error);
                }
            }
        }
    }

    /// The control plane shared by every test of this test binary, started on first use.
    ///
    /// It starts on a thread and runtime of its own, so it does not depend on the runtime of
    /// the test that happened to ask first. It lives until the test process exits, when its
    /// watchdog stops it and removes its directory. Give each test its own namespace
    /// ([`ControlPlane::create_namespace`]) so that tests do not see each other's objects.
    ///
    /// Panics, with the reason, when the control plane cannot start; every later caller
    /// panics with the same reason instead of trying again.
    pub fn shared() -> &'static ControlPlane {
        static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
        let started = SHARED.get_or_init(|| {
            let starter = std::thread::Builder::new()
                .name("jit-control-plane".to_owned())
                .spawn(|| -> anyhow::Result<ControlPlane> {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .context("building a runtime to start the control plane")?;
                    runtime.block_on(ControlPlane::start())
                });
            match starter.map(|thread| thread.join()) {
                Ok(Ok(Ok(plane))) => Ok(plane),
                Ok(Ok(Err(error))) => Err(format!("{error:#}")),
                Ok(Err(_)) => Err("the thread starting it panicked".to_owned()),
                Err(error) => Err(format!("no thread to start it: {error}")),
            }
        });
        match started {
            Ok(plane) => plane,
            Err(reason) => panic!("the shared control plane did not start: {reason}"),
        }
    }

    /// The URL of kube-apiserver, `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The temporary directory that holds everything of this control plane.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log file of etcd.
    pub fn etcd_log(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    /// The log file of kube-apiserver.
    pub fn apiserver_log(&self) -> PathBuf {
        self.dir.join("kube-apiserver.log")
    }

    /// The PEM certificate of the authority that signed kube-apiserver's serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The kubeconfig file that logs in as `user`, for `kubectl --kubeconfig` or for a
    /// program under test. Its context's namespace is `default`.
    pub fn kubeconfig(&self, user: User) -> PathBuf {
        user::kubeconfig_path(&self.dir, user)
    }

    /// A client configuration that logs in as `user`.
    pub fn config(&self, user: User) -> Config {
        let mut config = self.base_config.clone();
        config.auth_info.token = Some(user.token().into());
        config
    }

    /// A new client that logs in as `user`. It belongs to the tokio runtime of the caller
    /// and must not be used from another runtime, so call this from the test that uses it.
    pub fn client(&self, user: User) -> anyhow::Result<Client> {
        Client::try_from(self.config(user))
            .with_context(|| format!("building a Kubernetes client for {user}"))
    }

    /// Creates a namespace with a name unique to this control plane, starting with the
    /// lower-case letters, digits and hyphens of `prefix`, and returns its name.
    pub async fn create_namespace(&self, prefix: &str) -> anyhow::Result<String> {
        static SEQUENCE: AtomicU32 = AtomicU32::new(1);
        let name = namespace_name(prefix, SEQUENCE.fetch_add(1, Ordering::Relaxed));
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(self.client(User::Admin)?)
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(name)
    }

    /// Installs `crds` as the admin and waits until each is Established.
    pub async fn install_crds(
        &self,
        crds: impl IntoIterator<Item = CustomResourceDefinition>,
    ) -> anyhow::Result<()> {
        crd::install_crds(&self.client(User::Admin)?, crds).await
    }

    /// Installs the CRDs of a YAML text (one or more documents) as the admin and waits until
    /// each is Established.
    pub async fn install_crds_yaml(&self, yaml: &str) -> anyhow::Result<()> {
        self.install_crds(crd::crds_from_yaml(yaml)?).await
    }

    /// Runs `kubectl` as `user` with `args` and returns what it printed, whether or not it
    /// succeeded. It runs in the caller's runtime without blocking it, so a controller or
    /// webhook served by the same runtime keeps working meanwhile.
    pub async fn kubectl<I, S>(&self, user: User, args: I) -> anyhow::Result<KubectlOutput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        kubectl::run(&self.kubeconfig(user), &self.kubectl_cache(), args, None).await
    }

    /// Like [`ControlPlane::kubectl`], with `stdin` as kubectl's standard input (for
    /// `kubectl apply -f -`).
    pub async fn kubectl_with_stdin<I, S>(
        &self,
        user: User,
        args: I,
        stdin: &str,
    ) -> anyhow::Result<KubectlOutput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        kubectl::run(
            &self.kubeconfig(user),
            &self.kubectl_cache(),
            args,
            Some(stdin),
        )
        .await
    }

    fn kubectl_cache(&self) -> PathBuf {
        self.dir.join("kubectl-cache")
    }

    async fn start_once(binaries: &Binaries) -> Result<ControlPlane, StartFailure> {
        let started = Instant::now();
        let mut plane = ControlPlane::prepare().map_err(StartFailure::Other)?;

        match plane.boot(binaries).await {
            Ok(()) => {
                eprintln!(
                    "control plane: kube-apiserver {} ready after {:.1}s; logs in {} and {}; \
                     kubeconfigs {}/<user>.kubeconfig",
                    plane.url,
                    started.elapsed().as_secs_f64(),
                    plane.etcd_log().display(),
                    plane.apiserver_log().display(),
                    plane.dir.display(),
                );
                Ok(plane)
            }
            Err(error) => {
                let tails: Vec<String> = [&plane.etcd, &plane.apiserver]
                    .into_iter()
                    .flatten()
                    .map(|server| server.log_tail(LOG_TAIL_LINES))
                    .collect();
                let tails = tails.join("\n");
                let port_taken = tails.contains("address already in use");
                let error = error.context(format!(
                    "the control plane in {} did not start{}\n{tails}",
                    plane.dir.display(),
                    if plane.keep_dir {
                        " (its directory is kept)"
                    } else {
                        ""
                    },
                ));
                drop(plane);
                Err(if port_taken {
                    StartFailure::PortTaken(error)
                } else {
                    StartFailure::Other(error)
                })
            }
        }
    }

    /// Creates the directory, the watchdog and the credentials; starts no server yet.
    fn prepare() -> anyhow::Result<ControlPlane> {
        let [apiserver_port] = free_ports::<1>()?;
        let url = format!("https://127.0.0.1:{apiserver_port}");
        let base_config = Config::new(url.parse().with_context(|| format!("{url:?} is no URL"))?);
        let keep_dir = env::var(KEEP_VARIABLE).is_ok_and(|value| !value.is_empty() && value != "0");
        let dir = tempfile::Builder::new()
            .prefix("jit-control-plane-")
            .tempdir()
            .context("creating the control plane's temporary directory")?
            .keep();
        let watchdog = match Watchdog::start(&dir, keep_dir) {
            Ok(watchdog) => watchdog,
            Err(error) => {
                process::remove_dir(&dir);
                return Err(error);
            }
        };

        let mut plane = ControlPlane {
            dir,
            keep_dir,
            url,
            apiserver_port,
            ca_pem: String::new(),
            base_config,
            etcd: None,
            apiserver: None,
            watchdog,
        };

        let pki = Pki::generate(&plane.dir.join("pki"))?;
        user::write_token_file(&plane.dir.join("tokens.csv"))?;
        for user in User::ALL {
            user::write_kubeconfig(&plane.dir, user, &plane.url, &pki.ca_file)?;
        }
        plane.base_config.root_cert = Some(vec![pki.ca_der]);
        plane.ca_pem = pki.ca_pem;
        Ok(plane)
    }

    /// Starts etcd and kube-apiserver, waits until they serve, and installs the CRDs.
    async fn boot(&mut self, binaries: &Binaries) -> anyhow::Result<()> {
        let [etcd_port, peer_port] = free_ports::<2>()?;

        let client_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut etcd = Command::new(&binaries.etcd);
        etcd.arg("--name=default")
            .arg(format!("--data-dir={}", self.dir.join("etcd").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=default={peer_url}"));
        if cfg!(target_arch = "aarch64") {
            etcd.env("ETCD_UNSUPPORTED_ARCH", "arm64");
        }
        let etcd = Server::spawn("etcd", etcd, self.etcd_log())?;
        self.watchdog.watch(etcd.pid())?;
        self.etcd = Some(etcd);

        let pki = self.dir.join("pki");
        let mut apiserver = Command::new(&binaries.kube_apiserver);
        apiserver
            .arg(format!("--etcd-servers={client_url}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={}", self.apiserver_port))
            .arg(format!("--cert-dir={}", pki.display()))
            .arg(format!(
                "--tls-cert-file={}",
                pki.join("apiserver.crt").display()
            ))
            .arg(format!(
                "--tls-private-key-file={}",
                pki.join("apiserver.key").display()
            ))
            .arg(format!(
                "--token-auth-file={}",
                self.dir.join("tokens.csv").display()
            ))
            .arg("--authorization-mode=RBAC")
            .arg(format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"))
            .arg(format!(
                "--service-account-key-file={}",
                pki.join("service-account.pub").display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                pki.join("service-account.key").display()
            ))
            .arg("--service-cluster-ip-range=10.0.0.0/24")
            .arg("--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook")
            .arg("--endpoint-reconciler-type=none")
            .arg("--profiling=false");
        if binaries.apiserver_minor < 24 {
            apiserver.arg("--insecure-port=0");
        }
        let apiserver = Server::spawn("kube-apiserver", apiserver, self.apiserver_log())?;
        self.watchdog.watch(apiserver.pid())?;
        self.apiserver = Some(apiserver);

        self.wait_until_ready().await?;
        let crds = crd::crds_from_dir(&crd::repository_crds_dir())
            .context("reading the repository's CRDs")?;
        self.install_crds(crds)
            .await
            .context("installing the repository's CRDs")
    }

    /// Polls `/readyz` as the admin until it answers `ok`, failing early when a server exits.
    async fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let certificate = reqwest::Certificate::from_pem(self.ca_pem.as_bytes())
            .context("reading the test CA certificate")?;
        let http = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(certificate)
            .timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .context("building an HTTP client for /readyz")?;
        let readyz = format!("{}/readyz", self.url);

        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no answer yet");
        loop {
            for server in [&mut self.etcd, &mut self.apiserver].into_iter().flatten() {
                if let Some(exit) = server.exit() {
                    bail!("{exit} before kube-apiserver was ready (last /readyz: {last})");
                }
            }

            match http
                .get(&readyz)
                .bearer_auth(User::Admin.token())
                .send()
                .await
            {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    last = format!("{status}: {}", failed_checks(&body));
                }
                Err(error) => last = error_chain(&error),
            }

            if Instant::now() >= deadline {
                bail!(
                    "kube-apiserver was not ready within {READY_TIMEOUT:?} (last /readyz: {last})"
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // kube-apiserver first, so that it does not spend its last moments retrying etcd.
        for server in [&mut self.apiserver, &mut self.etcd].into_iter().flatten() {
            server.stop();
        }
        if self.keep_dir {
            eprintln!("control plane: kept {}", self.dir.display());
        } else {
            process::remove_dir(&self.dir);
        }
        self.watchdog.release();
    }
}

/// `/readyz` lists every check as `[+]name ok` or `[-]name failed: reason`; keeps the failed.
fn failed_checks(body: &str) -> String {
    let failed: Vec<&str> = body
        .lines()
        .filter(|line| line.starts_with("[-]"))
        .collect();
    if failed.is_empty() {
        body.trim().to_owned()
    } else {
        failed.join("; ")
    }
}

/// An error and its sources on one line, since an HTTP client's error alone rarely says
/// whether the connection was refused or TLS failed.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Asks the kernel for `N` distinct free loopback ports. Another process may take one before
/// the server binds it; [`ControlPlane::start`] then tries again with new ports.
fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<Result<Vec<_>, _>>()
        .context("finding free loopback ports")?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener
            .local_addr()
            .context("finding free loopback ports")?
            .port();
    }
    Ok(ports)
}

/// A namespace name: the DNS-label characters of `prefix` (at most 40), then `-{sequence}`.
fn namespace_name(prefix: &str, sequence: u32) -> String {
    let cleaned: String = prefix
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let cleaned = cleaned.trim_matches('-');
    let stem = if cleaned.is_empty() { "test" } else { cleaned };
    format!("{stem}-{sequence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_are_dns_labels_built_from_the_prefix() {
        assert_eq!(namespace_name("Smoke test_1", 7), "smoke-test-1-7");
        assert_eq!(namespace_name("--", 1), "test-1");
        assert_eq!(
            namespace_name(&"x".repeat(80), 12),
            format!("{}-12", "x".repeat(40))
        );
    }

    #[test]
    fn failed_readyz_checks_are_picked_out() {
        let body = "[+]ping ok\n[-]etcd failed: reason withheld\n[+]log ok\nreadyz check failed";
        assert_eq!(failed_checks(body), "[-]etcd failed: reason withheld");
    }
}
