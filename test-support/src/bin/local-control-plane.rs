//! `local-control-plane`: runs the tests' Kubernetes control plane (etcd and kube-apiserver
//! on loopback, with the repository's CRDs installed) until it is told to stop, for local
//! runs such as `hack/demo.sh`.
//!
//! It writes the admin's kubeconfig path to the file named by its only argument (or prints
//! it), then waits for SIGINT or SIGTERM and removes everything it started.

use std::process::ExitCode;

use jit_test_support::{ControlPlane, User};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let plane = match ControlPlane::start().await {
        Ok(plane) => plane,
        Err(error) => {
            eprintln!("local-control-plane: cannot start: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let kubeconfig = plane.kubeconfig(User::Admin);
    match std::env::args().nth(1) {
        Some(file) => {
            if let Err(error) = std::fs::write(&file, kubeconfig.display().to_string()) {
                eprintln!("local-control-plane: cannot write {file}: {error}");
                return ExitCode::FAILURE;
            }
        }
        None => println!("{}", kubeconfig.display()),
    }
    eprintln!(
        "local-control-plane: kube-apiserver at {}; admin kubeconfig {}",
        plane.url(),
        kubeconfig.display()
    );

    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                eprintln!("local-control-plane: cannot listen for SIGTERM: {error}");
                return ExitCode::FAILURE;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    drop(plane);
    ExitCode::SUCCESS
}
