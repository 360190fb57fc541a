//! Running kubectl as one of the test users.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::AsyncWriteExt as _;

use crate::binaries;

/// How long one kubectl command may run before it is killed.
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(120);

/// What a kubectl command printed and how it ended.
#[derive(Clone, Debug)]
pub struct KubectlOutput {
    /// The command line, for messages.
    pub command: String,
    /// How kubectl exited.
    pub status: ExitStatus,
    /// Everything kubectl wrote to standard output.
    pub stdout: String,
    /// Everything kubectl wrote to standard error.
    pub stderr: String,
}

impl KubectlOutput {
    /// Whether kubectl exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The standard output of a command that succeeded, or an error quoting its standard
    /// error when it failed.
    pub fn expect_success(self) -> anyhow::Result<String> {
        if !self.success() {
            bail!(
                "`{}` failed ({}): {}",
                self.command,
                self.status,
                self.stderr.trim()
            );
        }
        Ok(self.stdout)
    }

    /// The standard error of a command that failed, or an error quoting its standard output
    /// when it succeeded.
    pub fn expect_failure(self) -> anyhow::Result<String> {
        if self.success() {
            bail!(
                "`{}` succeeded but should have failed: {}",
                self.command,
                self.stdout.trim()
            );
        }
        Ok(self.stderr)
    }
}

/// Runs kubectl with `kubeconfig`, `args` and, if given, `stdin`, in the caller's runtime.
pub(crate) async fn run<I, S>(
    kubeconfig: &Path,
    cache_dir: &Path,
    args: I,
    stdin: Option<&str>,
) -> anyhow::Result<KubectlOutput>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let program = binaries::kubectl();
    let args: Vec<_> = args
        .into_iter()
        .map(|arg| arg.as_ref().to_owned())
        .collect();
    let command_line = format!(
        "kubectl --kubeconfig {} {}",
        kubeconfig.display(),
        args.iter()
            .map(|arg| arg.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );

    let mut child = tokio::process::Command::new(&program)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache_dir)
        .args(&args)
        .env_remove("KUBECONFIG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (install kubectl, e.g. Debian's kubernetes-client, or set KUBECTL)",
                program.display()
            )
        })?;

    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .await
            .with_context(|| format!("writing the standard input of `{command_line}`"))?;
    }

    let output = tokio::time::timeout(KUBECTL_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("`{command_line}` did not finish within {KUBECTL_TIMEOUT:?}"))?
        .with_context(|| format!("running `{command_line}`"))?;
    Ok(KubectlOutput {
        command: command_line,
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
