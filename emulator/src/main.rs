//! `gcp-emulator`: serves the Google Cloud API emulator on a fixed address.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use gcp_emulator::Seed;
use tracing_subscriber::EnvFilter;

/// An emulator of the Google Cloud REST APIs jit-groups-controller calls (Cloud Identity
/// groups, Resource Manager IAM policies, IAM Credentials), for tests and local runs.
#[derive(Debug, Parser)]
#[command(name = "gcp-emulator", version)]
struct Args {
    /// The address to listen on.
    #[arg(long, env = "GCP_EMULATOR_LISTEN", default_value = "127.0.0.1:8085")]
    listen: SocketAddr,

    /// A JSON seed file to start from (the format of POST /emulator/v1/seed).
    #[arg(long, env = "GCP_EMULATOR_SEED")]
    seed: Option<PathBuf>,

    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if args.log_json {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }

    let seed = match &args.seed {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the seed file {}", path.display()))?;
            let seed: Seed = serde_json::from_str(&text)
                .with_context(|| format!("the seed file {} is not a valid seed", path.display()))?;
            Some(seed)
        }
        None => None,
    };

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(address = %args.listen, "gcp-emulator listening");
    gcp_emulator::run(listener, seed, shutdown_signal())
        .await
        .context("the emulator stopped with an error")?;
    Ok(())
}

/// Completes on Ctrl-C or, on Unix, on SIGTERM (what a container runtime sends).
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("stopping");
}
