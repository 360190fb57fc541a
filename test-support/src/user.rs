//! The people a test control plane knows, and the files that let each of them log in.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Someone who can log in to a test control plane with a bearer token.
///
/// Usernames are email addresses, as Google principals are, because the controller maps a
/// Kubernetes username to the Google user of the same email. Only [`User::Admin`] holds any
/// permission from the start (through the group `system:masters`); the others are ordinary
/// authenticated users that RBAC denies everything until a test binds a role to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum User {
    /// `admin`, member of `system:masters`: may do anything.
    Admin,
    /// `alice@example.com`, an ordinary user.
    Alice,
    /// `bob@example.com`, an ordinary user.
    Bob,
    /// `carol@example.com`, an ordinary user.
    Carol,
    /// `dave@example.org`, an ordinary user from a different domain than the others.
    Dave,
}

impl User {
    /// Every user, in a fixed order.
    pub const ALL: [User; 5] = [User::Admin, User::Alice, User::Bob, User::Carol, User::Dave];

    /// The Kubernetes username, as the API server reports it in `userInfo` and in errors.
    pub fn name(self) -> &'static str {
        match self {
            User::Admin => "admin",
            User::Alice => "alice@example.com",
            User::Bob => "bob@example.com",
            User::Carol => "carol@example.com",
            User::Dave => "dave@example.org",
        }
    }

    /// A short lower-case handle (`admin`, `alice`, ...), used in file names and as the UID.
    pub fn handle(self) -> &'static str {
        match self {
            User::Admin => "admin",
            User::Alice => "alice",
            User::Bob => "bob",
            User::Carol => "carol",
            User::Dave => "dave",
        }
    }

    /// The groups the API server puts the user in, besides `system:authenticated`.
    pub fn groups(self) -> &'static [&'static str] {
        match self {
            User::Admin => &["system:masters"],
            User::Alice | User::Bob | User::Carol | User::Dave => &[],
        }
    }

    /// The bearer token that authenticates the user. Tokens are fixed and not secret: the
    /// API server only listens on loopback and holds nothing but test data.
    pub fn token(self) -> String {
        format!("{}-token-for-tests", self.handle())
    }
}

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Writes the static token file that kube-apiserver reads with `--token-auth-file`.
pub(crate) fn write_token_file(path: &Path) -> anyhow::Result<()> {
    let mut contents = String::new();
    for user in User::ALL {
        contents.push_str(&format!(
            "{},{},{}",
            user.token(),
            user.name(),
            user.handle()
        ));
        if !user.groups().is_empty() {
            contents.push_str(&format!(",\"{}\"", user.groups().join(",")));
        }
        contents.push('\n');
    }
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

/// Where the kubeconfig of `user` lives in a control plane's directory.
pub(crate) fn kubeconfig_path(dir: &Path, user: User) -> PathBuf {
    dir.join(format!("{}.kubeconfig", user.handle()))
}

/// Writes a kubeconfig for `user` into `dir` and returns its path.
pub(crate) fn write_kubeconfig(
    dir: &Path,
    user: User,
    server_url: &str,
    ca_file: &Path,
) -> anyhow::Result<PathBuf> {
    let path = kubeconfig_path(dir, user);
    let handle = user.handle();
    let contents = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: jit-test
  cluster:
    server: {server_url}
    certificate-authority: {ca}
users:
- name: {handle}
  user:
    token: {token}
contexts:
- name: {handle}
  context:
    cluster: jit-test
    user: {handle}
    namespace: default
current-context: {handle}
",
        ca = ca_file.display(),
        token = user.token(),
    );
    fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
