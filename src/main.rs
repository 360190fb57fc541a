//! The `jit-groups-controller` command: runs the controller, or prints its CRDs.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use jit_groups_controller::api;
use jit_groups_controller::controller::{self, Settings};
use jit_groups_controller::google::{BaseCredentials, Google, GoogleConfig};
use jit_groups_controller::leader;
use jit_groups_controller::metrics::Metrics;
use jit_groups_controller::server::{self, Health};
use jit_groups_controller::telemetry::{self, LogFormat};
use jit_groups_controller::webhook::{self, Webhook};

/// Just-in-time, time-bound access to Google Cloud through JIT groups.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD.
    Crd {
        /// Write `{name}.yaml` files into this directory instead of printing.
        #[arg(long)]
        output_dir: Option<std::path::PathBuf>,
    },
    /// Run the controller against the cluster of the current kubeconfig or the pod's service
    /// account.
    Run(Box<RunArgs>),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch only this namespace (all namespaces when unset).
    #[arg(long, env = "JIT_NAMESPACE")]
    namespace: Option<String>,

    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "JIT_METRICS_ADDRESS", default_value = "0.0.0.0:8080")]
    metrics_address: SocketAddr,

    /// Log format.
    #[arg(long, env = "JIT_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,

    /// How often every object is reconciled even when nothing changed, e.g. `10m` or `PT10M`.
    #[arg(long, env = "JIT_RESYNC_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    resync_interval: Duration,

    /// Base URL serving all three Google APIs (Cloud Identity, Resource Manager, IAM
    /// Credentials), such as the emulator's; Google's own endpoints when unset.
    #[arg(long, env = "JIT_GOOGLE_ENDPOINT")]
    google_endpoint: Option<String>,

    /// Base URL of the Cloud Identity API, overriding --google-endpoint.
    #[arg(long, env = "JIT_CLOUD_IDENTITY_ENDPOINT")]
    cloud_identity_endpoint: Option<String>,

    /// Base URL of the Resource Manager API, overriding --google-endpoint.
    #[arg(long, env = "JIT_RESOURCE_MANAGER_ENDPOINT")]
    resource_manager_endpoint: Option<String>,

    /// Base URL of the IAM Credentials API, overriding --google-endpoint.
    #[arg(long, env = "JIT_IAM_CREDENTIALS_ENDPOINT")]
    iam_credentials_endpoint: Option<String>,

    /// A fixed access token for the controller's own identity, instead of Application
    /// Default Credentials; meant for the emulator.
    #[arg(long, env = "JIT_GOOGLE_ACCESS_TOKEN", hide_env_values = true)]
    google_access_token: Option<String>,

    /// Name of this instance in events, e.g. the pod name.
    #[arg(long, env = "POD_NAME", default_value = "jit-groups-controller")]
    instance: String,

    /// How long finished join requests are kept after they finished before they are
    /// deleted, e.g. `720h` (30 days) or `PT720H`.
    #[arg(
        long,
        env = "JIT_HISTORY_RETENTION",
        default_value = "720h",
        value_parser = parse_duration
    )]
    history_retention: Duration,

    #[command(flatten)]
    leader: leader::Args,

    #[command(flatten)]
    webhook: webhook::Args,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let signed: jiff::SignedDuration = text.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from(signed).map_err(|_| "must not be negative".to_owned())
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crd { output_dir } => print_crds(output_dir),
        Command::Run(args) => {
            telemetry::init(args.log_format);
            match run(*args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "controller stopped");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn print_crds(output_dir: Option<std::path::PathBuf>) -> ExitCode {
    let written = api::crd_documents()
        .map_err(anyhow::Error::from)
        .and_then(|documents| {
            for (file, yaml) in documents {
                match &output_dir {
                    Some(dir) => std::fs::write(dir.join(&file), yaml)
                        .with_context(|| format!("cannot write {}", dir.join(&file).display()))?,
                    None => print!("---\n{yaml}"),
                }
            }
            Ok(())
        });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cannot write the CRDs: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes configuration: set KUBECONFIG or run in a pod")?;

    let credentials = match args.google_access_token {
        Some(token) => BaseCredentials::StaticToken(token),
        None => BaseCredentials::ApplicationDefault,
    };
    let mut config = GoogleConfig::new(credentials);
    if let Some(endpoint) = &args.google_endpoint {
        config = config.with_endpoint(endpoint);
    }
    config.cloud_identity_endpoint = args
        .cloud_identity_endpoint
        .or(config.cloud_identity_endpoint);
    config.resource_manager_endpoint = args
        .resource_manager_endpoint
        .or(config.resource_manager_endpoint);
    config.iam_credentials_endpoint = args
        .iam_credentials_endpoint
        .or(config.iam_credentials_endpoint);
    let google = Google::new(config)
        .await
        .context("cannot set up the Google Cloud clients")?;

    let metrics = Arc::new(Metrics::new().context("cannot register metrics")?);
    let health = Health::new(metrics.clone());
    let server = tokio::spawn(server::serve(args.metrics_address, health.clone()));

    let webhook = match args.webhook.settings()? {
        Some(settings) => Some(
            Webhook::start(client.clone(), settings)
                .await
                .context("cannot start the admission webhooks")?,
        ),
        None => None,
    };
    let webhook_watch = webhook.map(|mut webhook| {
        tokio::spawn(async move {
            if let Err(error) = webhook.stopped().await {
                tracing::error!(%error, "the admission webhooks stopped");
            }
        })
    });

    let settings = Settings {
        namespace: args.namespace,
        resync_interval: args.resync_interval,
        instance: args.instance,
        history_retention: args.history_retention,
    };
    tracing::info!(namespace = ?settings.namespace, "starting controllers");
    // Kubernetes stops a pod with SIGTERM; a leader then stops its controllers and releases
    // the Lease, so that a follower takes over without waiting for it to expire.
    let shutdown = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    let ready = move || health.set_ready();
    match args.leader.lease_config(&client, &settings.instance)? {
        Some(lease) => {
            // A follower is healthy and ready to take over; it must not hold up a rollout.
            ready();
            let elector = leader::Elector::new(client.clone(), lease, metrics.clone())?;
            leader::lead(elector, shutdown, |stop| {
                controller::run(client, google, settings, metrics, || {}, stop.wait())
            })
            .await?;
        }
        None => controller::run(client, google, settings, metrics, ready, shutdown).await,
    }
    server.abort();
    if let Some(webhook) = webhook_watch {
        webhook.abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_flags_of_every_part_fit_together_on_one_command_line() {
        Cli::command().debug_assert();
    }
}
