//! The server processes of a control plane and the watchdog that outlives the test process.
//!
//! A control plane kept in a `static` is never dropped, and a test process may also die from a
//! signal, so cleanup cannot rely on `Drop` alone. Each control plane therefore starts a small
//! shell process, the watchdog, whose standard input is a pipe from the test process. The test
//! process tells it the server PIDs over that pipe. However the test process ends, the kernel
//! closes the pipe; the watchdog then sees end of input, stops the servers and removes the
//! directory. When the control plane is dropped normally it stops everything itself and tells
//! the watchdog to leave, so that no PID is signalled after it has been reaped.

use std::fs::{self, File};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::Context as _;

/// The watchdog's program. Arguments: the directory to remove and whether to keep it (`1`).
/// It ignores the signals a terminal sends to the whole process group, reads `pid N` and
/// `release` lines until end of input, and then, unless released, kills the processes (the
/// servers hold only test data, so there is nothing to shut down gracefully), waits up to five
/// seconds for them to disappear and removes the directory.
const WATCHDOG_SCRIPT: &str = r#"
trap '' INT TERM HUP QUIT PIPE
dir=$1
keep=$2
pids=
released=
while IFS= read -r line; do
  case $line in
    "pid "*) pids="$pids ${line#pid }" ;;
    release) released=1 ;;
  esac
done
[ -n "$released" ] && exit 0
for pid in $pids; do kill -KILL "$pid" 2>/dev/null; done
tries=0
while [ "$tries" -lt 50 ]; do
  alive=
  for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ -z "$alive" ] && break
  sleep 0.1
  tries=$((tries + 1))
done
[ "$keep" = 1 ] || rm -rf "$dir"
"#;

/// A server process whose output goes to a log file.
pub(crate) struct Server {
    pub(crate) name: &'static str,
    pub(crate) log: PathBuf,
    child: Child,
}

impl Server {
    /// Starts `command` in its own process group (so that a Ctrl-C meant for the test runner
    /// does not reach it), with standard output and error appended to `log`.
    pub(crate) fn spawn(
        name: &'static str,
        mut command: Command,
        log: PathBuf,
    ) -> anyhow::Result<Server> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("opening {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        Ok(Server { name, log, child })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Describes how the process ended, or `None` while it runs.
    pub(crate) fn exit(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited ({status})", self.name)),
            Ok(None) => None,
            Err(error) => Some(format!("{} cannot be waited for: {error}", self.name)),
        }
    }

    /// Kills the process and reaps it.
    pub(crate) fn stop(&mut self) {
        // Errors only mean that the process has already gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last `lines` lines of the log, headed by its path.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        format!(
            "--- last {lines} lines of {} ---\n{}",
            self.log.display(),
            tail(&self.log, lines)
        )
    }
}

/// The last `lines` lines of a file, read from at most its last 64 KiB.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let length = file.metadata()?.len();
        file.seek(SeekFrom::Start(length.saturating_sub(64 * 1024)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(error) => format!("({} cannot be read: {error})", path.display()),
    }
}

/// The process that cleans up after the test process, however it ends.
pub(crate) struct Watchdog {
    child: Child,
    pipe: Option<ChildStdin>,
}

impl Watchdog {
    /// Starts a watchdog that will remove `dir` (unless `keep_dir`) and stop every process
    /// it is told about once the test process has gone.
    pub(crate) fn start(dir: &Path, keep_dir: bool) -> anyhow::Result<Watchdog> {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("jit-control-plane-watchdog")
            .arg(dir)
            .arg(if keep_dir { "1" } else { "0" })
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting the control plane's watchdog (/bin/sh)")?;
        let pipe = child.stdin.take();
        Ok(Watchdog { child, pipe })
    }

    /// Tells the watchdog to stop `pid` when the test process goes.
    pub(crate) fn watch(&mut self, pid: u32) -> anyhow::Result<()> {
        let pipe = self
            .pipe
            .as_mut()
            .context("the watchdog has been released")?;
        writeln!(pipe, "pid {pid}").context("telling the watchdog about a process")?;
        pipe.flush().context("telling the watchdog about a process")
    }

    /// Lets the watchdog exit without doing anything: the caller has cleaned up.
    pub(crate) fn release(&mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            // A watchdog that cannot be told simply cleans up what is already gone.
            let _ = writeln!(pipe, "release");
            drop(pipe);
            let _ = self.child.wait();
        }
    }
}

/// Removes a directory, ignoring one that is already gone.
pub(crate) fn remove_dir(dir: &Path) {
    if let Err(error) = fs::remove_dir_all(dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!("control plane: could not remove {}: {error}", dir.display());
    }
}
