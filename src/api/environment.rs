use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::policy::{AccessEntrySpec, ConstraintsSpec, EnvironmentFields};

/// An environment: the Google service account that provisions for it, the Cloud Identity
/// customer and groups domain, the resources its groups may touch, and the access list and
/// constraints every JitGroup in the namespace inherits. One per namespace; its name is the
/// environment's name in group emails (`jit.{environment}.{system}.{group}@{domain}`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "jitgroups.dev",
    version = "v1alpha1",
    kind = "JitEnvironment",
    namespaced,
    doc = "An environment of JIT groups: one per namespace, named as in the group emails.",
    status = "JitEnvironmentStatus",
    shortname = "jitenv",
    category = "jit",
    printcolumn(
        name = "Service-Account",
        type_ = "string",
        json_path = ".spec.serviceAccount"
    ),
    printcolumn(name = "Domain", type_ = "string", json_path = ".spec.groupsDomain"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct JitEnvironmentSpec {
    /// Email of the Google service account the controller impersonates for everything in
    /// this environment. It must be allowed to manage Cloud Identity groups and to set IAM
    /// policies on the allowed resources; nothing else of the environment's is reachable.
    pub service_account: String,
    /// Cloud Identity customer id that owns the groups, e.g. `C01abcde2`.
    pub customer_id: String,
    /// Domain of the groups' emails, e.g. `example.com`.
    pub groups_domain: String,
    /// Resources the environment's groups may grant roles on: `projects/ID`, `folders/NUMBER`
    /// or `organizations/NUMBER`, or a pattern ending in `*` such as `projects/team-a-*`.
    #[serde(default)]
    pub allowed_resources: Vec<String>,
    /// Access list that every group of the environment inherits; its entries come before
    /// the group's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<AccessEntrySpec>,
    /// Constraints for groups that set none of their own.
    #[serde(default, skip_serializing_if = "is_default")]
    pub constraints: ConstraintsSpec,
    /// How long a request that needs approval may wait for decisions before it ends as
    /// `TimedOut`, as an ISO-8601 duration; default `PT1H`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_timeout: Option<String>,
    /// What to do with members of the environment's JIT groups that no Active JoinRequest
    /// accounts for (added out of band): `Remove` them (the default) or only `Report` them
    /// in events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmanaged_members: Option<UnmanagedMembers>,
}

/// What happens to members of a JIT group that no Active JoinRequest accounts for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum UnmanagedMembers {
    /// Remove them, with an event naming each.
    #[default]
    Remove,
    /// Leave them, with an event naming each.
    Report,
}

fn is_default(constraints: &ConstraintsSpec) -> bool {
    *constraints == ConstraintsSpec::default()
}

impl JitEnvironmentSpec {
    /// The fields the policy core validates, for an environment called `name`.
    pub fn fields<'a>(&'a self, name: &'a str) -> EnvironmentFields<'a> {
        EnvironmentFields {
            name,
            service_account: &self.service_account,
            customer_id: &self.customer_id,
            groups_domain: &self.groups_domain,
            allowed_resources: &self.allowed_resources,
            access: &self.access,
            constraints: &self.constraints,
            approval_timeout: self.approval_timeout.as_deref(),
        }
    }
}

/// What the controller observed of the environment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JitEnvironmentStatus {
    /// `Ready` is True when the spec is valid and the service account can be impersonated;
    /// otherwise its reason and message say what to fix.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Cloud Identity groups named like the environment's JIT groups
    /// (`jit.{environment}.*@{groupsDomain}`) that no JitGroup of the namespace covers. They
    /// are reported, never deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orphan_groups: Vec<String>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
