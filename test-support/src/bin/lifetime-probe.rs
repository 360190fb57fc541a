//! `lifetime-probe`: a stand-in for a test process, for `tests/lifetimes.rs`. It starts a
//! control plane, prints `DIR=<its directory>`, and then ends the way its argument says:
//!
//! - `exit-with-a-shared-control-plane`: takes the shared instance, which lives in a
//!   `static`, and exits without dropping it;
//! - `wait-to-be-killed`: starts an owned instance and sleeps until it is killed.

use std::process::ExitCode;
use std::time::Duration;

use jit_test_support::ControlPlane;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("exit-with-a-shared-control-plane") => {
            let plane = ControlPlane::shared();
            println!("DIR={}", plane.dir().display());
            std::process::exit(0);
        }
        Some("wait-to-be-killed") => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("lifetime-probe: no runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(async {
                match ControlPlane::start().await {
                    Ok(plane) => {
                        println!("DIR={}", plane.dir().display());
                        tokio::time::sleep(Duration::from_secs(300)).await;
                        ExitCode::SUCCESS
                    }
                    Err(error) => {
                        eprintln!("lifetime-probe: cannot start: {error:#}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
        _ => {
            eprintln!("usage: lifetime-probe exit-with-a-shared-control-plane | wait-to-be-killed");
            ExitCode::FAILURE
        }
    }
}
