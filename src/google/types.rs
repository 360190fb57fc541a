//! Domain types that the Google Cloud clients take and return.
//!
//! None of these types come from the generated API crates, so callers never depend on them.
//! Resource names are the policy core's [`crate::policy::ResourceName`].

use jiff::Timestamp;

/// A Cloud Identity group, as far as the controller needs to know it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupRef {
    /// Resource name of the group, `groups/{id}`.
    pub name: String,
    /// Email address (group key) of the group.
    pub email: String,
}

/// A direct membership of a Cloud Identity group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    /// Resource name of the membership, `groups/{id}/memberships/{id}`.
    pub name: String,
    /// Email address of the member.
    pub member: String,
    /// When Google removes the membership by itself; `None` for a membership that never
    /// expires.
    pub expire_time: Option<Timestamp>,
}

/// An IAM condition, compared field by field: two bindings of one role with conditions that
/// differ in any field are different bindings.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Condition {
    /// CEL expression, for example `request.time < timestamp("2030-01-01T00:00:00Z")`.
    pub expression: String,
    /// Short title; IAM requires one on every condition.
    pub title: String,
    /// Optional longer description.
    pub description: Option<String>,
}

/// One binding that a principal should hold on a resource: a role, with or without a condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DesiredBinding {
    /// Role name, for example `roles/viewer`.
    pub role: String,
    /// Condition of the binding, if any.
    pub condition: Option<Condition>,
}

impl DesiredBinding {
    /// A binding of `role` without a condition.
    pub fn unconditional(role: impl Into<String>) -> Self {
        DesiredBinding {
            role: role.into(),
            condition: None,
        }
    }

    /// A binding of `role` under `condition`.
    pub fn conditional(role: impl Into<String>, condition: Condition) -> Self {
        DesiredBinding {
            role: role.into(),
            condition: Some(condition),
        }
    }
}

/// What a reconciliation of one principal's bindings on one resource changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindingChange {
    /// Bindings the principal was added to.
    pub added: Vec<DesiredBinding>,
    /// Bindings the principal was removed from.
    pub removed: Vec<DesiredBinding>,
}

impl BindingChange {
    /// True when the policy already was as desired.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}
