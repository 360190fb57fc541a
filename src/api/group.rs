use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::policy::{AccessEntrySpec, ConstraintsSpec, GroupFields, IamPrivilegeSpec};

/// A JIT group: one job function. A Cloud Identity security group named
/// `jit.{environment}.{system}.{name}@{groupsDomain}`, the IAM roles it holds, who may
/// join or approve, and for how long. Its environment is the JitEnvironment in the same
/// namespace.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "jitgroups.dev",
    version = "v1alpha1",
    kind = "JitGroup",
    namespaced,
    doc = "A JIT group: a Cloud Identity security group, the IAM roles it holds, and who may join it for how long.",
    status = "JitGroupStatus",
    shortname = "jitg",
    category = "jit",
    printcolumn(name = "System", type_ = "string", json_path = ".spec.system"),
    printcolumn(name = "Email", type_ = "string", json_path = ".status.email"),
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
pub struct JitGroupSpec {
    /// The system the group belongs to: the middle part of its email. Letters, digits and
    /// hyphens, at most 16 characters.
    pub system: String,
    /// What the group is for; also the Cloud Identity group's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who may view, join or approve. The environment's entries come first; a deny that
    /// overlaps a needed permission wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<AccessEntrySpec>,
    /// Constraints on joining; without them the environment's apply.
    #[serde(default, skip_serializing_if = "is_default_constraints")]
    pub constraints: ConstraintsSpec,
    /// What members receive.
    #[serde(default, skip_serializing_if = "is_default_privileges")]
    pub privileges: Privileges,
}

fn is_default_constraints(constraints: &ConstraintsSpec) -> bool {
    *constraints == ConstraintsSpec::default()
}

fn is_default_privileges(privileges: &Privileges) -> bool {
    privileges.iam.is_empty()
}

/// What members of a group receive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Privileges {
    /// IAM roles bound to the group on projects, folders or organizations.
    #[serde(default)]
    pub iam: Vec<IamPrivilegeSpec>,
}

impl JitGroupSpec {
    /// The fields the policy core validates, for a group called `name`.
    pub fn fields<'a>(&'a self, name: &'a str) -> GroupFields<'a> {
        GroupFields {
            name,
            system: &self.system,
            access: &self.access,
            constraints: &self.constraints,
            privileges: &self.privileges.iam,
        }
    }
}

/// What the controller observed of the group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JitGroupStatus {
    /// The Cloud Identity group's email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The Cloud Identity group's resource name, e.g. `groups/01abc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    /// Resources on which the group's bindings were last made to match the privileges.
    /// When a resource leaves the privileges, its bindings are removed and it leaves this
    /// list.
    #[serde(default)]
    pub bound_resources: Vec<String>,
    /// `Ready` is True when the group exists and every binding matches the privileges.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The last error met while reconciling, if the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
