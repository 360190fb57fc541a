//! Serving the emulator: the router, a function that serves on a listener, and [`Emulator`],
//! a handle that runs the emulator on a thread of its own.

use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

use axum::Router;
use axum::http::Uri;
use tokio::sync::oneshot;

use crate::app::{App, AppState};
use crate::client::ControlClient;
use crate::control::types::Seed;
use crate::error::ApiError;
use crate::state::seed::SeedError;

/// Why the emulator could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The emulator's tokio runtime or thread could not be started.
    #[error("cannot start the emulator's runtime")]
    Runtime(#[source] std::io::Error),
    /// The initial seed was refused.
    #[error("the initial seed was refused")]
    Seed(#[source] SeedError),
    /// Serving failed.
    #[error("serving failed")]
    Serve(#[source] std::io::Error),
}

/// All routes of the emulator on one router: Cloud Identity, Resource Manager, IAM
/// Credentials and the control API. Their paths do not collide.
fn router(app: App) -> Router {
    Router::new()
        .merge(crate::cloudidentity::routes())
        .merge(crate::resourcemanager::routes())
        .merge(crate::iamcredentials::routes())
        .merge(crate::control::routes())
        .fallback(|uri: Uri| async move {
            ApiError::not_found(format!("The requested URL {} was not found.", uri.path()))
        })
        .layer(axum::middleware::from_fn(
            crate::faults::apply_after_effects,
        ))
        .with_state(app)
}

/// Serves the emulator on `listener` until `shutdown` completes, starting from `seed`.
pub async fn run(
    listener: tokio::net::TcpListener,
    seed: Option<Seed>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), EmulatorError> {
    let app: App = Arc::new(AppState::default());
    if let Some(seed) = seed {
        let now = app.clock.now();
        app.store()
            .apply_seed(seed, now)
            .map_err(EmulatorError::Seed)?;
    }
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(EmulatorError::Serve)
}

/// A running emulator on a loopback port, served by a thread with its own tokio runtime, so
/// that it outlives the runtime of any one `#[tokio::test]` and can be shared by all tests of
/// a binary through a `static` (for example a `std::sync::LazyLock<Emulator>`). Dropping the
/// handle stops the emulator.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    base_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Starts an empty emulator on a free port of 127.0.0.1.
    pub fn start() -> Result<Emulator, EmulatorError> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), None)
    }

    /// Starts an emulator on a free port of 127.0.0.1, seeded with `seed`.
    pub fn start_with_seed(seed: Seed) -> Result<Emulator, EmulatorError> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), Some(seed))
    }

    /// Starts an emulator on `addr` (port 0 picks a free port), optionally seeded. Returns
    /// once the port is open, so requests can be sent at once. Works from synchronous code and
    /// from inside a tokio runtime alike.
    pub fn start_on(addr: SocketAddr, seed: Option<Seed>) -> Result<Emulator, EmulatorError> {
        let listener =
            StdTcpListener::bind(addr).map_err(|source| EmulatorError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(EmulatorError::Runtime)?;
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), EmulatorError>>();

        let thread = std::thread::Builder::new()
            .name(format!("gcp-emulator-{}", bound.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(source) => {
                            let _ = ready_tx.send(Err(EmulatorError::Bind { addr, source }));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let stop = async {
                        let _ = shutdown_rx.await;
                    };
                    // Stopping does not wait for idle keep-alive connections of clients that
                    // are still alive: the select drops the server when the signal comes.
                    tokio::select! {
                        result = run(listener, seed, std::future::pending()) => {
                            if let Err(error) = result {
                                tracing::error!(error = %error, "emulator stopped");
                            }
                        }
                        () = stop => {}
                    }
                });
            })
            .map_err(EmulatorError::Runtime)?;

        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error),
            Err(_) => {
                return Err(EmulatorError::Runtime(std::io::Error::other(
                    "the emulator thread ended before it was ready",
                )));
            }
        }
        Ok(Emulator {
            addr: bound,
            base_url: format!("http://{bound}/"),
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    /// The address the emulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://127.0.0.1:PORT/`, with the trailing slash the Google client
    /// libraries expect of `base_url` and `root_url`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A client of the control API.
    pub fn control(&self) -> ControlClient {
        ControlClient::new(&self.base_url)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
