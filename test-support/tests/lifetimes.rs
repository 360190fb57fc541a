//! A control plane never outlives its test: its servers stop and its directory disappears
//! when it is dropped, when its test panics, when it sits in a `static` until the process
//! exits, and when the test process is killed.
//!
//! The last two cases need a test process that ends, so they run the `lifetime-probe`
//! binary of this crate as a stand-in for one.

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jit_test_support::ControlPlane;

/// How long cleanup may take after the test process is gone.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(20);

/// The processes whose command line mentions `dir`: the servers and the watchdog.
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|entry| {
            let command = fs::read(entry.path().join("cmdline")).ok()?;
            let command = String::from_utf8_lossy(&command).replace('\0', " ");
            command.contains(&needle).then_some(command)
        })
        .collect()
}

fn assert_cleaned_up_within(dir: &Path, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let processes = processes_using(dir);
        if processes.is_empty() && !dir.exists() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {timeout:?}, {} still exists: {}; processes still running: {processes:#?}",
            dir.display(),
            dir.exists()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `lifetime-probe` acting out `ending` and returns it with the directory it reported.
fn spawn_helper(ending: &str) -> (Child, PathBuf) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lifetime-probe"))
        .arg(ending)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the helper starts");
    let stdout = child.stdout.take().expect("the helper's standard output");
    let dir = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("DIR=").map(PathBuf::from))
        .expect("the helper reports its control plane's directory");
    (child, dir)
}

#[tokio::test]
async fn dropping_a_control_plane_stops_its_servers_and_removes_its_directory() {
    let plane = ControlPlane::start()
        .await
        .expect("the control plane starts");
    let dir = plane.dir().to_owned();
    assert!(dir.join("kube-apiserver.log").is_file());
    assert_eq!(
        processes_using(&dir).len(),
        3,
        "etcd, kube-apiserver and the watchdog run"
    );

    drop(plane);

    assert_cleaned_up_within(&dir, Duration::ZERO);
}

#[test]
fn a_control_plane_is_stopped_when_its_test_panics() {
    let (sender, receiver) = std::sync::mpsc::channel();
    let test = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        runtime.block_on(async move {
            let plane = ControlPlane::start()
                .await
                .expect("the control plane starts");
            sender
                .send(plane.dir().to_owned())
                .expect("the directory is reported");
            panic!("a failing assertion in a test");
        })
    });

    assert!(test.join().is_err(), "the test thread panicked");
    let dir = receiver.recv().expect("the directory was reported");

    assert_cleaned_up_within(&dir, Duration::ZERO);
}

#[test]
fn a_shared_control_plane_is_stopped_when_the_test_process_exits() {
    let (mut helper, dir) = spawn_helper("exit-with-a-shared-control-plane");
    assert!(helper.wait().expect("the helper ends").success());

    assert_cleaned_up_within(&dir, CLEANUP_TIMEOUT);
}

#[test]
fn a_control_plane_is_stopped_when_the_test_process_is_killed() {
    let (mut helper, dir) = spawn_helper("wait-to-be-killed");
    assert!(dir.exists());

    helper.kill().expect("the helper can be killed");
    helper.wait().expect("the helper ends");

    assert_cleaned_up_within(&dir, CLEANUP_TIMEOUT);
}
