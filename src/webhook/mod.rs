//! The admission webhooks, served over TLS beside the controllers.
//!
//! - **JoinRequest** (mutating, then validating): on create, `spec.requester` becomes the
//!   caller's Google principal, and a request in anybody else's name is refused; afterwards
//!   the spec is immutable except that a caller may append their own decisions to
//!   `spec.approvals`, which the webhook attributes (`approver`) and dates (`decidedAt`).
//! - **JitEnvironment and JitGroup** (validating): the policy core checks them as the
//!   controller does, so a bad policy is refused at `kubectl apply`, naming the field.
//!
//! The serving certificate comes from a directory (a cert-manager Certificate's Secret,
//! mounted) and is re-read when it changes, or is generated at startup with a certificate
//! authority whose certificate is then written as `caBundle` into the two webhook
//! configurations.

pub mod configuration;
mod error;
pub mod identity;
pub mod join_request;
pub mod policies;
mod server;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use kube::Client;
use tokio::task::JoinHandle;

pub use error::Error;
pub use identity::{IdentityMapping, ServiceAccountMapping, Unmapped};
pub use server::Admission;
pub use tls::PemPair;

/// Path of the mutating webhook of JoinRequests.
pub const MUTATE_JOIN_REQUESTS: &str = "/mutate/joinrequests";
/// Path of the validating webhook of JoinRequests.
pub const VALIDATE_JOIN_REQUESTS: &str = "/validate/joinrequests";
/// Path of the validating webhook of JitEnvironments.
pub const VALIDATE_ENVIRONMENTS: &str = "/validate/jitenvironments";
/// Path of the validating webhook of JitGroups.
pub const VALIDATE_GROUPS: &str = "/validate/jitgroups";

/// Where the pod's own namespace is written in every pod with a service account token.
const POD_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The webhook's command-line flags.
#[derive(Clone, Debug, clap::Args)]
#[group(id = "webhook")]
#[command(next_help_heading = "Admission webhooks")]
pub struct Args {
    /// Serve the admission webhooks over TLS on this address, e.g. `0.0.0.0:9443`. No
    /// webhook is served when unset.
    #[arg(long = "webhook-address", env = "JIT_WEBHOOK_ADDRESS")]
    pub address: Option<SocketAddr>,

    /// Directory holding `tls.crt` and `tls.key` (e.g. a cert-manager Certificate's Secret,
    /// mounted); re-read when they change. When unset, a certificate authority and serving
    /// certificate are generated at startup and the authority is written as `caBundle` into
    /// the webhook configurations.
    #[arg(long = "webhook-cert-dir", env = "JIT_WEBHOOK_CERT_DIR")]
    pub cert_dir: Option<PathBuf>,

    /// Name of the Service in front of the webhook, for the generated certificate's names.
    #[arg(
        long = "webhook-service-name",
        env = "JIT_WEBHOOK_SERVICE_NAME",
        default_value = "jit-groups-controller-webhook"
    )]
    pub service_name: String,

    /// Namespace of that Service; the pod's own namespace when unset.
    #[arg(
        long = "webhook-service-namespace",
        env = "JIT_WEBHOOK_SERVICE_NAMESPACE"
    )]
    pub service_namespace: Option<String>,

    /// A further DNS name or IP address for the generated certificate; repeatable.
    #[arg(
        long = "webhook-dns-name",
        env = "JIT_WEBHOOK_DNS_NAMES",
        value_delimiter = ','
    )]
    pub dns_names: Vec<String>,

    /// The MutatingWebhookConfiguration that receives the generated `caBundle`.
    #[arg(
        long = "webhook-mutating-configuration",
        env = "JIT_WEBHOOK_MUTATING_CONFIGURATION",
        default_value = "jit-groups-controller"
    )]
    pub mutating_configuration: String,

    /// The ValidatingWebhookConfiguration that receives the generated `caBundle`.
    #[arg(
        long = "webhook-validating-configuration",
        env = "JIT_WEBHOOK_VALIDATING_CONFIGURATION",
        default_value = "jit-groups-controller"
    )]
    pub validating_configuration: String,

    /// A prefix that the cluster puts before people's usernames (e.g. `oidc:` for an OIDC
    /// issuer with `--oidc-username-prefix=oidc:`); stripped to get the Google email, and
    /// usernames without it are refused.
    #[arg(long = "webhook-username-prefix", env = "JIT_WEBHOOK_USERNAME_PREFIX")]
    pub username_prefix: Option<String>,

    /// Lets a Kubernetes service account act as a Google principal, written as
    /// `system:serviceaccount:NAMESPACE:NAME=EMAIL`; repeatable. Other service accounts
    /// cannot create requests or record decisions.
    #[arg(
        long = "webhook-service-account-mapping",
        env = "JIT_WEBHOOK_SERVICE_ACCOUNT_MAPPINGS",
        value_delimiter = ','
    )]
    pub service_account_mappings: Vec<ServiceAccountMapping>,
}

/// Where the serving certificate comes from.
#[derive(Clone, Debug)]
pub enum Certificates {
    /// `tls.crt` and `tls.key` in this directory, re-read every `reload_interval`.
    Directory {
        /// The directory.
        dir: PathBuf,
        /// How often the files are checked for a renewed certificate.
        reload_interval: Duration,
    },
    /// Generated at startup for these DNS names or IP addresses; the authority is written
    /// into the webhook configurations. Each start makes a new authority, so this suits one
    /// replica: a second one would overwrite the bundle and leave the first distrusted.
    SelfSigned {
        /// Names of the serving certificate.
        hosts: Vec<String>,
    },
    /// A fixed certificate and key, for tests and embedding.
    Pem(PemPair),
}

/// How the webhook runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where it listens.
    pub address: SocketAddr,
    /// Its serving certificate.
    pub certificates: Certificates,
    /// The MutatingWebhookConfiguration for a generated `caBundle`.
    pub mutating_configuration: String,
    /// The ValidatingWebhookConfiguration for a generated `caBundle`.
    pub validating_configuration: String,
    /// How callers map to Google principals.
    pub identities: IdentityMapping,
}

impl Args {
    /// The settings the flags describe, or `None` when no webhook is to be served.
    pub fn settings(&self) -> Result<Option<Settings>, Error> {
        let Some(address) = self.address else {
            return Ok(None);
        };
        let certificates = match &self.cert_dir {
            Some(dir) => Certificates::Directory {
                dir: dir.clone(),
                reload_interval: Duration::from_secs(60),
            },
            None => {
                let namespace = self
                    .service_namespace
                    .clone()
                    .or_else(|| std::fs::read_to_string(POD_NAMESPACE_FILE).ok())
                    .map(|ns| ns.trim().to_owned())
                    .filter(|ns| !ns.is_empty())
                    .ok_or(Error::NoServiceNamespace)?;
                let mut hosts = tls::service_hosts(&self.service_name, &namespace);
                hosts.extend(self.dns_names.iter().cloned());
                Certificates::SelfSigned { hosts }
            }
        };
        Ok(Some(Settings {
            address,
            certificates,
            mutating_configuration: self.mutating_configuration.clone(),
            validating_configuration: self.validating_configuration.clone(),
            identities: IdentityMapping::new(
                self.username_prefix.clone(),
                self.service_account_mappings.iter().cloned(),
            ),
        }))
    }
}

/// A running webhook server; it stops when dropped.
pub struct Webhook {
    address: SocketAddr,
    handle: Handle<SocketAddr>,
    server: JoinHandle<Result<(), Error>>,
    reloader: Option<JoinHandle<()>>,
}

impl Webhook {
    /// Prepares the certificate (writing a generated authority into the webhook
    /// configurations with `client`), binds the address and starts serving in the
    /// background. Errors here are configuration errors worth stopping for.
    pub async fn start(client: Client, settings: Settings) -> Result<Webhook, Error> {
        let (pair, watched) = match &settings.certificates {
            Certificates::Directory {
                dir,
                reload_interval,
            } => (tls::read_dir(dir)?, Some((dir.clone(), *reload_interval))),
            Certificates::Pem(pair) => (pair.clone(), None),
            Certificates::SelfSigned { hosts } => {
                let generated = tls::self_signed(hosts)?;
                tls::write_ca_bundles(
                    &client,
                    &settings.mutating_configuration,
                    &settings.validating_configuration,
                    &generated.ca_pem,
                )
                .await?;
                (generated.serving, None)
            }
        };
        let tls_config = RustlsConfig::from_config(tls::server_config(&pair, "the webhook")?);
        let reloader = watched.map(|(dir, interval)| {
            tokio::spawn(tls::reload_on_change(
                dir,
                pair.clone(),
                tls_config.clone(),
                interval,
            ))
        });

        let listen = |source| Error::Listen {
            address: settings.address,
            source,
        };
        let listener = std::net::TcpListener::bind(settings.address).map_err(listen)?;
        listener.set_nonblocking(true).map_err(listen)?;
        let address = listener.local_addr().map_err(listen)?;
        let handle = Handle::new();
        let server = axum_server::from_tcp_rustls(listener, tls_config)
            .map_err(listen)?
            .handle(handle.clone());
        let app = Admission::new(client, settings.identities).router();
        let server = tokio::spawn(async move {
            server
                .serve(app.into_make_service())
                .await
                .map_err(|source| Error::Serve { address, source })
        });
        tracing::info!(%address, "serving the admission webhooks");
        Ok(Webhook {
            address,
            handle,
            server,
            reloader,
        })
    }

    /// The address it listens on, with the port chosen when the settings asked for port 0.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Waits until the server stops, which it does only on an error.
    pub async fn stopped(&mut self) -> Result<(), Error> {
        match (&mut self.server).await {
            Ok(result) => result,
            Err(_) => Ok(()),
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.handle.shutdown();
        self.server.abort();
        if let Some(reloader) = &self.reloader {
            reloader.abort();
        }
    }
}
