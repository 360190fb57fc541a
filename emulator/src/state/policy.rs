//! IAM policies: the JSON shape of Resource Manager's `Policy`, and the rules Google applies
//! when one is written or read (versions, conditions, member syntax, normalisation).

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::state::is_valid_email;

/// An IAM policy, as Resource Manager sends and receives it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// The policy format version: 1, or 3 when a binding has a condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
    /// The base64 etag of the policy's current revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The role bindings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<Binding>,
    /// Audit logging configuration, kept as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_configs: Vec<serde_json::Value>,
}

/// A role granted to members, optionally under a condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    /// The role, such as `roles/viewer`.
    pub role: String,
    /// The principals: `user:EMAIL`, `group:EMAIL`, `serviceAccount:EMAIL`, `domain:DOMAIN`, ...
    #[serde(default)]
    pub members: Vec<String>,
    /// The IAM condition, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Expr>,
}

/// A CEL condition of a binding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Expr {
    /// The CEL expression.
    pub expression: String,
    /// A short title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A longer description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where the expression came from, for error messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

impl Policy {
    /// Whether any binding carries a condition.
    pub fn has_conditions(&self) -> bool {
        self.bindings
            .iter()
            .any(|binding| binding.condition.is_some())
    }

    /// The policy as `getIamPolicy` returns it for a requested version.
    ///
    /// A policy with conditions read at a version below 3 comes back as version 1, with each
    /// conditional binding's role renamed to `ROLE_withcond_HASH` and its condition dropped,
    /// which is how Google keeps old clients from silently losing conditions.
    pub fn render(&self, requested_version: i32) -> Policy {
        let conditional = self.has_conditions();
        let mut rendered = self.clone();
        rendered.version = Some(if conditional && requested_version >= 3 {
            3
        } else {
            1
        });
        if conditional && requested_version < 3 {
            for binding in &mut rendered.bindings {
                if let Some(condition) = binding.condition.take() {
                    binding.role =
                        format!("{}_withcond_{}", binding.role, condition_hash(&condition));
                }
            }
        }
        rendered
    }
}

/// Checks a policy that a caller wants to write, given the one stored now.
pub fn validate_for_write(policy: &Policy, stored: &Policy) -> ApiResult<()> {
    let version = policy.version.unwrap_or(1);
    if ![0, 1, 3].contains(&version) {
        return Err(ApiError::invalid(format!(
            "Invalid policy version {version}: the valid versions are 0, 1 and 3."
        )));
    }
    if policy.has_conditions() && version < 3 {
        return Err(ApiError::invalid(format!(
            "Invalid argument: a policy with conditional role bindings must be version 3, \
             but version {version} was given."
        )));
    }
    if policy.etag.is_some() && stored.has_conditions() && version < 3 {
        return Err(ApiError::invalid(
            "Invalid argument: the stored policy has conditional role bindings, so it can only \
             be changed with a version 3 policy.",
        ));
    }
    for binding in &policy.bindings {
        validate_role(&binding.role)?;
        for member in &binding.members {
            validate_member(member)?;
        }
        if let Some(condition) = &binding.condition
            && condition.expression.trim().is_empty()
        {
            return Err(ApiError::invalid(format!(
                "Invalid condition of the binding for role {}: the expression is empty.",
                binding.role
            )));
        }
    }
    Ok(())
}

fn validate_role(role: &str) -> ApiResult<()> {
    if role.contains("_withcond_") {
        return Err(ApiError::invalid(format!(
            "Role {role} is a placeholder for a conditional binding read at policy version 1; \
             read the policy at version 3 to change it."
        )));
    }
    let custom = role
        .strip_prefix("projects/")
        .or_else(|| role.strip_prefix("organizations/"))
        .and_then(|rest| rest.split_once("/roles/"))
        .is_some_and(|(owner, id)| !owner.is_empty() && !id.is_empty());
    let predefined = role.strip_prefix("roles/").is_some_and(|id| !id.is_empty());
    if custom || predefined {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "Role ({role}) does not exist in the resource's hierarchy."
        )))
    }
}

fn validate_member(member: &str) -> ApiResult<()> {
    let email_kinds = ["user:", "group:", "serviceAccount:"];
    let valid = if let Some(rest) = member.strip_prefix("deleted:") {
        email_kinds.iter().any(|kind| rest.starts_with(kind))
    } else if let Some(email) = email_kinds
        .iter()
        .find_map(|kind| member.strip_prefix(kind))
    {
        is_valid_email(email)
    } else if let Some(domain) = member.strip_prefix("domain:") {
        domain.contains('.')
    } else {
        member.starts_with("principal://")
            || member.starts_with("principalSet://")
            || member.starts_with("projectOwner:")
            || member.starts_with("projectEditor:")
            || member.starts_with("projectViewer:")
    };
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "Invalid member {member:?}: members must look like user:EMAIL, group:EMAIL, \
             serviceAccount:EMAIL or domain:DOMAIN."
        )))
    }
}

/// Puts bindings into the canonical form Google stores: bindings with the same role and
/// condition merged, members de-duplicated and sorted, bindings without members dropped.
pub fn normalize(bindings: Vec<Binding>) -> Vec<Binding> {
    let mut merged: Vec<Binding> = Vec::new();
    for binding in bindings {
        match merged
            .iter_mut()
            .find(|b| b.role == binding.role && b.condition == binding.condition)
        {
            Some(existing) => existing.members.extend(binding.members),
            None => merged.push(binding),
        }
    }
    for binding in &mut merged {
        binding.members.sort();
        binding.members.dedup();
    }
    merged.retain(|binding| !binding.members.is_empty());
    merged.sort_by(|a, b| (&a.role, &a.condition).cmp(&(&b.role, &b.condition)));
    merged
}

/// A stable 20-hex-digit fingerprint of a condition, for `_withcond_` role names.
fn condition_hash(condition: &Expr) -> String {
    let text = format!(
        "{}\u{0}{}\u{0}{}",
        condition.expression,
        condition.title.as_deref().unwrap_or_default(),
        condition.description.as_deref().unwrap_or_default()
    );
    let fnv = |seed: u64| {
        text.bytes().fold(seed, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let high = fnv(0xcbf2_9ce4_8422_2325);
    let low = fnv(0x8422_2325_cbf2_9ce4);
    format!("{high:016x}{:04x}", low & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(role: &str, members: &[&str], condition: Option<&str>) -> Binding {
        Binding {
            role: role.to_owned(),
            members: members.iter().map(|m| (*m).to_owned()).collect(),
            condition: condition.map(|expression| Expr {
                expression: expression.to_owned(),
                title: Some("t".to_owned()),
                description: None,
                location: None,
            }),
        }
    }

    #[test]
    fn normalisation_merges_equal_bindings_and_drops_empty_ones() {
        let bindings = normalize(vec![
            binding("roles/viewer", &["user:b@x.com"], None),
            binding("roles/viewer", &["user:a@x.com", "user:b@x.com"], None),
            binding("roles/editor", &[], None),
        ]);
        assert_eq!(
            bindings,
            vec![binding(
                "roles/viewer",
                &["user:a@x.com", "user:b@x.com"],
                None
            )]
        );
    }

    #[test]
    fn conditional_bindings_read_at_version_one_get_placeholder_roles() {
        let policy = Policy {
            version: Some(3),
            bindings: vec![binding("roles/viewer", &["user:a@x.com"], Some("true"))],
            ..Policy::default()
        };
        let rendered = policy.render(1);
        assert_eq!(rendered.version, Some(1));
        assert!(
            rendered.bindings[0]
                .role
                .starts_with("roles/viewer_withcond_")
        );
        assert!(rendered.bindings[0].condition.is_none());
        assert_eq!(policy.render(3).bindings, policy.bindings);
    }

    #[test]
    fn conditions_need_version_three() {
        let policy = Policy {
            version: Some(1),
            bindings: vec![binding("roles/viewer", &["user:a@x.com"], Some("true"))],
            ..Policy::default()
        };
        let error = validate_for_write(&policy, &Policy::default()).err();
        assert_eq!(
            error.map(|e| e.code),
            Some(crate::error::Code::InvalidArgument)
        );
    }
}
