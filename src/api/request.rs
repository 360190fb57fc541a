use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A request to join a JIT group for a while: "let me join group G for duration D, because
/// R". Its status tells the whole story, from the decision to the expiry.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "jitgroups.dev",
    version = "v1alpha1",
    kind = "JoinRequest",
    namespaced,
    doc = "A request to join a JIT group for a while; approvers record decisions on it and its status tells the whole story.",
    status = "JoinRequestStatus",
    shortname = "jr",
    category = "jit",
    printcolumn(name = "Group", type_ = "string", json_path = ".spec.group"),
    printcolumn(name = "Requester", type_ = "string", json_path = ".spec.requester"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.expiresAt"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequestSpec {
    /// Name of the JitGroup to join, in the same namespace.
    pub group: String,
    /// Email of the Google user who asks to join; the controller grants the membership to
    /// this user. Leave it out: the admission webhook sets it from the caller's
    /// authenticated identity and refuses a request that names anyone else.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub requester: String,
    /// How long to stay a member, as an ISO-8601 duration such as `PT2H` or `P1D`; it must
    /// lie within the group's expiry constraint. Without it the group's default applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Why the access is needed, for approvers and the audit trail.
    pub justification: String,
    /// Decisions of approvers, in the order they were made. The spec is otherwise
    /// immutable: an approver appends their own entry, and the admission webhook fills in
    /// `approver` and `decidedAt` from the caller's identity and the time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<ApprovalSpec>,
}

/// One approver's decision on a request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalSpec {
    /// `Approve` or `Deny`.
    pub decision: Decision,
    /// Why, for the requester and the audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Google identity (email) of who decided; set by the admission webhook from the
    /// caller's Kubernetes identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    /// When the decision was made; set by the admission webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<Time>,
}

/// An approver's decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Decision {
    /// Grant the request.
    #[default]
    Approve,
    /// Refuse the request; one counted Deny ends it as `Denied`.
    Deny,
}

/// What the controller made of one decision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionStatus {
    /// Who decided.
    pub approver: String,
    /// What they decided.
    pub decision: Decision,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<Time>,
    /// Whether the decision counts towards the outcome.
    pub counted: bool,
    /// Why it counts or not, e.g. `holds APPROVE_OTHERS through user:bob@example.com` or
    /// `carol@example.com does not hold APPROVE_OTHERS`.
    pub reason: String,
}

/// Where a request stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Waiting for a decision.
    #[default]
    Pending,
    /// Approved; the membership is being added.
    Approved,
    /// The requester is a member until `expiresAt`.
    Active,
    /// The membership ended at `expiresAt`.
    Expired,
    /// The policy does not allow the request, or an approver denied it.
    Denied,
    /// Nobody decided in time.
    TimedOut,
    /// Deleted or withdrawn while active.
    Revoked,
    /// A permanent error prevented the grant; the message says which.
    Failed,
}

impl JoinRequest {
    /// The requester's email as the controller compares it: trimmed and in lower case.
    pub fn requester_email(&self) -> String {
        self.spec.requester.trim().to_ascii_lowercase()
    }

    /// The phase the status records, if any.
    pub fn phase(&self) -> Option<Phase> {
        self.status.as_ref().and_then(|s| s.phase)
    }
}

impl Phase {
    /// Every phase, in lifecycle order.
    pub const ALL: [Phase; 8] = [
        Phase::Pending,
        Phase::Approved,
        Phase::Active,
        Phase::Expired,
        Phase::Denied,
        Phase::TimedOut,
        Phase::Revoked,
        Phase::Failed,
    ];

    /// Whether the request has ended and will not change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Expired | Self::Denied | Self::TimedOut | Self::Revoked | Self::Failed
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What became of the request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequestStatus {
    /// Where the request stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Why it is in this phase, as a CamelCase word (e.g. `SelfApproved`,
    /// `DurationOutOfRange`, `NotPermitted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The same, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Email of the Cloud Identity group joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_email: Option<String>,
    /// The membership duration granted, as an ISO-8601 duration in seconds (e.g. `PT7200S`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted_duration: Option<String>,
    /// Principals whose approval would count, while the request waits for one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Every decision in `spec.approvals`, whether it counted, and why not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<DecisionStatus>,
    /// When the controller first saw the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<Time>,
    /// When the request was approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<Time>,
    /// When the membership was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted_at: Option<Time>,
    /// When the membership ends; Cloud Identity removes it then even if the controller is
    /// down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// When the request reached a final phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// The Cloud Identity membership's resource name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<String>,
    /// Standard conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
