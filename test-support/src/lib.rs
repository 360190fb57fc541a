//! Test support: a real Kubernetes control plane and the Google Cloud emulator on loopback.
//!
//! [`ControlPlane`] runs etcd and kube-apiserver from `$KUBEBUILDER_ASSETS`, or from the cache
//! that `hack/control-plane.sh` fills, on free loopback ports. The users of [`User`] log in
//! with bearer tokens; RBAC authorizes them. A typical integration test shares one control
//! plane per test binary and works in a namespace of its own:
//!
//! ```no_run
//! use jit_test_support::{ControlPlane, User};
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::Api;
//!
//! # async fn example() -> anyhow::Result<()> {
//! let plane = ControlPlane::shared();
//! let namespace = plane.create_namespace("config-maps").await?;
//! let config_maps: Api<ConfigMap> = Api::namespaced(plane.client(User::Alice)?, &namespace);
//! assert!(config_maps.list(&Default::default()).await.is_err()); // RBAC: Forbidden
//! let output = plane.kubectl(User::Admin, ["get", "namespace", &namespace]).await?;
//! output.expect_success()?;
//! # Ok(())
//! # }
//! ```

mod binaries;
mod control_plane;
mod crd;
mod kubectl;
mod pki;
mod process;
mod user;

pub use control_plane::ControlPlane;
pub use crd::{crds_from_dir, crds_from_yaml, install_crds, repository_crds_dir};
pub use kubectl::KubectlOutput;
pub use pki::LoopbackCertificate;
pub use user::User;
