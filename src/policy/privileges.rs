//! IAM privileges: the roles a JIT group's members receive on projects, folders and
//! organizations, and the resources an environment lets its groups touch.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validation::Problems;

/// One IAM privilege as written in a policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IamPrivilegeSpec {
    /// The resource the role is granted on: `projects/PROJECT_ID`, `folders/NUMBER` or
    /// `organizations/NUMBER`. It must be listed in the environment's `allowedResources`.
    pub resource: String,
    /// The IAM role, e.g. `roles/compute.viewer`, or a custom role
    /// `projects/PROJECT_ID/roles/NAME` or `organizations/NUMBER/roles/NAME`.
    pub role: String,
    /// An IAM condition that limits the binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<IamConditionSpec>,
    /// What the privilege is for, for people reading the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An IAM condition as written in a policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IamConditionSpec {
    /// The condition's CEL expression, e.g.
    /// `resource.name.startsWith("projects/_/buckets/logs-")`.
    pub expression: String,
    /// The condition's title, shown in the Cloud console; defaults to `JIT group condition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The condition's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Title given to conditions that name none.
pub const DEFAULT_CONDITION_TITLE: &str = "JIT group condition";

/// A resource that holds an IAM policy.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceName(String);

const RESOURCE_FORMS: &str = "must be projects/PROJECT_ID, folders/NUMBER or organizations/NUMBER";

impl FromStr for ResourceName {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let Some((kind, id)) = value.split_once('/') else {
            return Err(RESOURCE_FORMS.to_owned());
        };
        let valid = match kind {
            "projects" => is_project_id(id),
            "folders" | "organizations" => !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()),
            _ => false,
        };
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(RESOURCE_FORMS.to_owned())
        }
    }
}

// Project IDs: 6 to 30 lower-case letters, digits or hyphens, starting with a letter and not
// ending with a hyphen; older projects may carry a domain prefix (`example.com:my-project`).
fn is_project_id(id: &str) -> bool {
    if let Some((domain, project)) = id.split_once(':') {
        return super::names::check_domain(domain).is_ok() && is_project_id(project);
    }
    (6..=30).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The three kinds of resource that hold the IAM policies of JIT groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    /// `projects/PROJECT_ID`.
    Project,
    /// `folders/NUMBER`.
    Folder,
    /// `organizations/NUMBER`.
    Organization,
}

impl ResourceName {
    /// The name, e.g. `projects/my-project`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a project, a folder or an organization.
    pub fn kind(&self) -> ResourceKind {
        match self.collection() {
            "projects" => ResourceKind::Project,
            "folders" => ResourceKind::Folder,
            _ => ResourceKind::Organization,
        }
    }

    /// The collection part: `projects`, `folders` or `organizations`.
    pub fn collection(&self) -> &str {
        self.0
            .split_once('/')
            .map_or("", |(collection, _)| collection)
    }

    /// The id part, after the collection.
    pub fn id(&self) -> &str {
        self.0.split_once('/').map_or("", |(_, id)| id)
    }
}

impl fmt::Display for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks the shape of an IAM role name.
pub fn check_role(role: &str) -> Result<(), String> {
    const FORMS: &str = "must be roles/NAME, projects/PROJECT_ID/roles/NAME or \
                         organizations/NUMBER/roles/NAME";
    let name_ok = |name: &str| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
    };
    let parts: Vec<&str> = role.split('/').collect();
    let valid = match parts.as_slice() {
        ["roles", name] => name_ok(name),
        ["projects", project, "roles", name] => is_project_id(project) && name_ok(name),
        ["organizations", org, "roles", name] => {
            !org.is_empty() && org.chars().all(|c| c.is_ascii_digit()) && name_ok(name)
        }
        _ => false,
    };
    if valid { Ok(()) } else { Err(FORMS.to_owned()) }
}

/// The resources an environment's groups may grant roles on: exact names, or patterns that
/// end in `*` and match every name with that prefix (e.g. `projects/team-a-*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedResources(Vec<String>);

impl AllowedResources {
    /// Parses the environment's list; `path` is its field path.
    pub fn parse(path: &str, patterns: &[String], problems: &mut Problems) -> Self {
        let mut valid = Vec::new();
        for (i, pattern) in patterns.iter().enumerate() {
            let at = format!("{path}[{i}]");
            match pattern.strip_suffix('*') {
                Some(prefix)
                    if ["projects/", "folders/", "organizations/"]
                        .iter()
                        .any(|kind| prefix.starts_with(kind)) =>
                {
                    valid.push(pattern.clone());
                }
                Some(_) => problems.invalid(
                    &at,
                    pattern,
                    "a pattern must start with projects/, folders/ or organizations/",
                ),
                None => {
                    if let Some(name) =
                        problems.parse(&at, pattern, pattern.parse::<ResourceName>())
                    {
                        valid.push(name.0);
                    }
                }
            }
        }
        Self(valid)
    }

    /// Whether `resource` is allowed.
    pub fn allows(&self, resource: &ResourceName) -> bool {
        self.0
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => resource.as_str().starts_with(prefix),
                None => pattern == resource.as_str(),
            })
    }

    /// The patterns, for messages.
    pub fn patterns(&self) -> &[String] {
        &self.0
    }
}

/// An IAM condition of a binding.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Condition {
    /// CEL expression.
    pub expression: String,
    /// Title.
    pub title: String,
    /// Description, possibly empty.
    pub description: String,
}

/// A role, optionally conditional, that a group holds on one resource.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleBinding {
    /// The IAM role.
    pub role: String,
    /// The condition, if any.
    pub condition: Option<Condition>,
}

/// The roles a group holds, by resource.
pub type BindingsByResource = BTreeMap<ResourceName, BTreeSet<RoleBinding>>;

/// Parses a group's privileges; reports bad resources and roles, resources the
/// environment does not allow, and duplicates.
pub fn parse_privileges(
    path: &str,
    specs: &[IamPrivilegeSpec],
    allowed: &AllowedResources,
    problems: &mut Problems,
) -> BindingsByResource {
    let mut bindings = BindingsByResource::new();
    for (i, spec) in specs.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let resource = problems.parse(
            &format!("{at}.resource"),
            &spec.resource,
            spec.resource.parse::<ResourceName>(),
        );
        let role = problems.parse(&format!("{at}.role"), &spec.role, check_role(&spec.role));
        let condition = spec.condition.as_ref().and_then(|c| {
            if c.expression.trim().is_empty() {
                problems.required(format!("{at}.condition.expression"), "a CEL expression");
                return None;
            }
            Some(Condition {
                expression: c.expression.clone(),
                title: c
                    .title
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CONDITION_TITLE.to_owned()),
                description: c.description.clone().unwrap_or_default(),
            })
        });
        let (Some(resource), Some(())) = (resource, role) else {
            continue;
        };
        if !allowed.allows(&resource) {
            problems.forbidden(
                format!("{at}.resource"),
                resource.as_str(),
                format!(
                    "the environment's allowedResources permit only: {}",
                    if allowed.patterns().is_empty() {
                        "nothing (the list is empty)".to_owned()
                    } else {
                        allowed.patterns().join(", ")
                    }
                ),
            );
            continue;
        }
        if spec.condition.is_some() && condition.is_none() {
            continue;
        }
        let binding = RoleBinding {
            role: spec.role.clone(),
            condition,
        };
        if !bindings
            .entry(resource.clone())
            .or_default()
            .insert(binding)
        {
            problems.duplicate(
                at,
                &format!("{} {}", resource, spec.role),
                "the same role and condition on the same resource is already listed",
            );
        }
    }
    bindings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(patterns: &[&str]) -> AllowedResources {
        let mut problems = Problems::default();
        let list: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
        let allowed = AllowedResources::parse("spec.allowedResources", &list, &mut problems);
        assert!(problems.is_empty());
        allowed
    }

    fn privilege(resource: &str, role: &str) -> IamPrivilegeSpec {
        IamPrivilegeSpec {
            resource: resource.into(),
            role: role.into(),
            ..Default::default()
        }
    }

    #[test]
    fn resource_names_of_the_three_kinds_parse() {
        assert!("projects/my-project".parse::<ResourceName>().is_ok());
        assert!("folders/123456".parse::<ResourceName>().is_ok());
        assert!("organizations/42".parse::<ResourceName>().is_ok());
        assert!("projects/X".parse::<ResourceName>().is_err());
        assert!("folders/abc".parse::<ResourceName>().is_err());
        assert!("buckets/logs".parse::<ResourceName>().is_err());
        assert!("projects/my-project/extra".parse::<ResourceName>().is_err());
        assert!("projects/p q".parse::<ResourceName>().is_err());
        let scoped: ResourceName = "projects/example.com:my-project".parse().unwrap();
        assert_eq!(
            (scoped.kind(), scoped.id()),
            (ResourceKind::Project, "example.com:my-project")
        );
        let folder: ResourceName = "folders/123".parse().unwrap();
        assert_eq!(
            (folder.kind(), folder.collection(), folder.id()),
            (ResourceKind::Folder, "folders", "123")
        );
    }

    #[test]
    fn roles_must_be_predefined_or_custom_role_names() {
        assert!(check_role("roles/compute.viewer").is_ok());
        assert!(check_role("projects/my-project/roles/custom_role").is_ok());
        assert!(check_role("organizations/42/roles/custom.role").is_ok());
        assert!(check_role("compute.viewer").is_err());
        assert!(check_role("roles/").is_err());
    }

    #[test]
    fn allowed_resources_match_exactly_or_by_prefix_pattern() {
        let allowed = allowed(&["projects/shared-prod", "projects/team-a-*"]);
        let is_allowed = |r: &str| allowed.allows(&r.parse().unwrap());
        assert!(is_allowed("projects/shared-prod"));
        assert!(is_allowed("projects/team-a-web"));
        assert!(!is_allowed("projects/shared-prod2"));
        assert!(!is_allowed("projects/team-b-web"));
    }

    #[test]
    fn privileges_group_by_resource_and_distinguish_conditions() {
        let mut problems = Problems::default();
        let mut conditional = privilege("projects/shared-prod", "roles/viewer");
        conditional.condition = Some(IamConditionSpec {
            expression: "request.time < timestamp('2030-01-01T00:00:00Z')".into(),
            ..Default::default()
        });
        let specs = vec![
            privilege("projects/shared-prod", "roles/viewer"),
            conditional,
            privilege("projects/team-a-web", "roles/editor"),
        ];
        let allowed = allowed(&["projects/shared-prod", "projects/team-a-*"]);
        let bindings = parse_privileges("spec.privileges.iam", &specs, &allowed, &mut problems);
        assert!(problems.is_empty());
        assert_eq!(bindings.len(), 2);
        let shared = &bindings[&"projects/shared-prod".parse().unwrap()];
        assert_eq!(shared.len(), 2);
        assert!(shared.iter().any(|b| {
            b.condition
                .as_ref()
                .is_some_and(|c| c.title == DEFAULT_CONDITION_TITLE)
        }));
    }

    #[test]
    fn bad_outside_and_duplicate_privileges_are_all_reported() {
        let mut problems = Problems::default();
        let specs = vec![
            privilege("projects/shared-prod", "roles/viewer"),
            privilege("projects/shared-prod", "roles/viewer"),
            privilege("projects/other-prod", "roles/viewer"),
            privilege("project/x", "viewer"),
        ];
        parse_privileges(
            "spec.privileges.iam",
            &specs,
            &allowed(&["projects/shared-prod"]),
            &mut problems,
        );
        let text = problems.finish(|| ()).unwrap_err().to_string();
        assert!(
            text.contains(
                "spec.privileges.iam[1]: Duplicate value: \"projects/shared-prod roles/viewer\""
            ),
            "{text}"
        );
        assert!(text.contains("spec.privileges.iam[2].resource: Forbidden: \"projects/other-prod\": the environment's allowedResources permit only: projects/shared-prod"), "{text}");
        assert!(
            text.contains("spec.privileges.iam[3].resource: Invalid value: \"project/x\""),
            "{text}"
        );
        assert!(
            text.contains("spec.privileges.iam[3].role: Invalid value: \"viewer\""),
            "{text}"
        );
    }
}
