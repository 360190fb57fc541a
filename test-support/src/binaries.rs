//! Where the etcd, kube-apiserver and kubectl binaries come from.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// The envtest convention: a directory holding `etcd`, `kube-apiserver` and maybe `kubectl`.
const ASSETS_VARIABLE: &str = "KUBEBUILDER_ASSETS";

/// The binaries one control plane runs.
#[derive(Clone, Debug)]
pub(crate) struct Binaries {
    pub(crate) etcd: PathBuf,
    pub(crate) kube_apiserver: PathBuf,
    /// The minor version of kube-apiserver (20 for 1.20), which decides a few flags.
    pub(crate) apiserver_minor: u32,
}

impl Binaries {
    /// Finds the binaries in `$KUBEBUILDER_ASSETS`, or else in the cache that
    /// `hack/control-plane.sh` fills. Fails, telling how to provide them, when neither has both.
    pub(crate) fn locate() -> anyhow::Result<Binaries> {
        let dir = match env::var_os(ASSETS_VARIABLE).filter(|value| !value.is_empty()) {
            Some(assets) => {
                let dir = PathBuf::from(assets);
                if !has_both(&dir) {
                    bail!(
                        "{ASSETS_VARIABLE}={} does not hold both `etcd` and `kube-apiserver`; \
                         run hack/control-plane.sh (or hack/test.sh, which runs it) to build \
                         them, or point {ASSETS_VARIABLE} at a directory that has them",
                        dir.display()
                    );
                }
                dir
            }
            None => {
                let dir = cache_dir();
                if !has_both(&dir) {
                    bail!(
                        "the integration tests need etcd and kube-apiserver, found neither in \
                         {ASSETS_VARIABLE} (unset) nor in {}; run hack/control-plane.sh once \
                         to build and cache them (about ten minutes), or run the tests with \
                         hack/test.sh, which does that for you",
                        dir.display()
                    );
                }
                dir
            }
        };

        let kube_apiserver = dir.join("kube-apiserver");
        let apiserver_minor = minor_version(&kube_apiserver)?;
        Ok(Binaries {
            etcd: dir.join("etcd"),
            kube_apiserver,
            apiserver_minor,
        })
    }
}

/// The cache directory of `hack/control-plane.sh`, which honours the same `JIT_CACHE_DIR`.
fn cache_dir() -> PathBuf {
    let base = env::var_os("JIT_CACHE_DIR")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/".into());
            home.join(".cache").join("jit-groups-controller")
        });
    base.join("control-plane")
}

fn has_both(dir: &Path) -> bool {
    dir.join("etcd").is_file() && dir.join("kube-apiserver").is_file()
}

/// Reads the minor version from `kube-apiserver --version`, which prints `Kubernetes v1.20.2`.
fn minor_version(kube_apiserver: &Path) -> anyhow::Result<u32> {
    let output = Command::new(kube_apiserver)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", kube_apiserver.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse_minor_version(&text).with_context(|| {
        format!(
            "{} --version printed {text:?}, not a version",
            kube_apiserver.display()
        )
    })
}

fn parse_minor_version(text: &str) -> Option<u32> {
    let version = text.split_whitespace().find(|word| word.starts_with('v'))?;
    let minor = version.trim_start_matches('v').split('.').nth(1)?;
    let digits: String = minor.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The kubectl to run: `$KUBECTL`, else one beside the control-plane binaries, else
/// `/usr/bin/kubectl`, else whatever `kubectl` the `PATH` finds.
pub(crate) fn kubectl() -> PathBuf {
    if let Some(path) = env::var_os("KUBECTL").filter(|value| !value.is_empty()) {
        return PathBuf::from(path);
    }
    let beside_assets = env::var_os(ASSETS_VARIABLE)
        .filter(|value| !value.is_empty())
        .map(|dir| PathBuf::from(dir).join("kubectl"));
    let candidates = beside_assets.into_iter().chain([
        cache_dir().join("kubectl"),
        PathBuf::from("/usr/bin/kubectl"),
    ]);
    for candidate in candidates {
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from("kubectl")
}

#[cfg(test)]
mod tests {
    use super::parse_minor_version;

    #[test]
    fn minor_version_is_read_from_the_version_line() {
        assert_eq!(parse_minor_version("Kubernetes v1.20.2\n"), Some(20));
        assert_eq!(parse_minor_version("Kubernetes v1.31.0-beta.1"), Some(31));
        assert_eq!(parse_minor_version("something else"), None);
    }
}
