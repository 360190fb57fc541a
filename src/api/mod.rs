//! The custom resources of API group `jitgroups.dev`, version `v1alpha1`.
//!
//! Every field carries a `///` doc: it becomes the schema description that
//! `kubectl explain` shows.

// Each `printcolumn(...)` of kube's derive repeats the same keys, which clippy mistakes for
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
mod environment;
#[allow(clippy::duplicated_attributes)]
mod group;
#[allow(clippy::duplicated_attributes)]
mod request;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use environment::{JitEnvironment, JitEnvironmentSpec, JitEnvironmentStatus, UnmanagedMembers};
pub use group::{JitGroup, JitGroupSpec, JitGroupStatus, Privileges};
pub use request::{
    ApprovalSpec, Decision, DecisionStatus, JoinRequest, JoinRequestSpec, JoinRequestStatus, Phase,
};

/// The API group of all resources.
pub const GROUP: &str = "jitgroups.dev";

/// The type of the condition that says whether an object is in effect.
pub const READY: &str = "Ready";

/// The definitions of all custom resources, in the order they should be installed.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![JitEnvironment::crd(), JitGroup::crd(), JoinRequest::crd()]
}

/// The definitions as YAML documents, one per file name.
pub fn crd_documents() -> Result<Vec<(String, String)>, serde_yaml::Error> {
    crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            serde_yaml::to_string(&crd).map(|yaml| (format!("{name}.yaml"), yaml))
        })
        .collect()
}
