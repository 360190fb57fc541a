//! Domain types that the Google Cloud clients take and return.
//!
//! None of these types come from the generated API crates, so callers never depend on them.

use std::fmt;
use std::str::FromStr;

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

/// A resource whose IAM policy can hold bindings of a JIT group.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceName {
    /// `projects/{id}`: a project, named by its ID or number.
    Project(String),
    /// `folders/{number}`.
    Folder(String),
    /// `organizations/{number}`.
    Organization(String),
}

impl ResourceName {
    /// The collection part of the name: `projects`, `folders` or `organizations`.
    pub fn collection(&self) -> &'static str {
        match self {
            ResourceName::Project(_) => "projects",
            ResourceName::Folder(_) => "folders",
            ResourceName::Organization(_) => "organizations",
        }
    }

    /// The ID part of the name.
    pub fn id(&self) -> &str {
        match self {
            ResourceName::Project(id)
            | ResourceName::Folder(id)
            | ResourceName::Organization(id) => id,
        }
    }
}

impl fmt::Display for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.collection(), self.id())
    }
}

/// A string that is not `projects/ID`, `folders/ID` or `organizations/ID`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is not a resource name; expected projects/ID, folders/NUMBER or \
     organizations/NUMBER"
)]
pub struct InvalidResourceName {
    /// The string that was refused.
    pub value: String,
}

impl FromStr for ResourceName {
    type Err = InvalidResourceName;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidResourceName {
            value: value.to_owned(),
        };
        let (collection, id) = value.split_once('/').ok_or_else(invalid)?;
        let id_is_valid = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' || c == ':');
        if !id_is_valid {
            return Err(invalid());
        }

        let numeric = id.chars().all(|c| c.is_ascii_digit());
        match collection {
            "projects" => Ok(ResourceName::Project(id.to_owned())),
            "folders" if numeric => Ok(ResourceName::Folder(id.to_owned())),
            "organizations" if numeric => Ok(ResourceName::Organization(id.to_owned())),
            _ => Err(invalid()),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_of_each_kind_parse_and_print_back() {
        for name in ["projects/my-project", "folders/123", "organizations/456"] {
            let parsed: ResourceName = name.parse().expect("valid name");
            assert_eq!(parsed.to_string(), name);
        }
        assert_eq!(
            "projects/p-1".parse::<ResourceName>(),
            Ok(ResourceName::Project("p-1".into()))
        );
    }

    #[test]
    fn malformed_resource_names_are_refused() {
        for name in [
            "",
            "projects",
            "projects/",
            "folders/abc",
            "organizations/",
            "buckets/b",
            "projects/p/extra",
            "projects/p q",
        ] {
            assert!(
                name.parse::<ResourceName>().is_err(),
                "{name:?} should be refused"
            );
        }
    }
}
