//! Names of environments, systems and groups, and the Cloud Identity email derived from them.
//!
//! A JIT group's email is `jit.{environment}.{system}.{group}@{groupsDomain}` in lower case,
//! the scheme of the original JIT Groups application, so that existing groups carry over.

use std::fmt;

/// Longest environment name.
pub const MAX_ENVIRONMENT_NAME: usize = 16;
/// Longest system name.
pub const MAX_SYSTEM_NAME: usize = 16;
/// Longest group name.
pub const MAX_GROUP_NAME: usize = 24;

/// Prefix of every JIT group's email.
pub const GROUP_EMAIL_PREFIX: &str = "jit.";

/// Checks one name part: letters, digits and hyphens, at most `max` characters.
pub fn check_name(value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("must be 1 to {max} characters"));
    }
    if value.chars().count() > max {
        return Err(format!(
            "is {} characters long; at most {max} are allowed",
            value.chars().count()
        ));
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err("may contain only letters, digits and hyphens".to_owned());
    }
    Ok(())
}

/// The three names that identify a JIT group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId {
    /// Environment name, lower case.
    pub environment: String,
    /// System name, lower case.
    pub system: String,
    /// Group name, lower case.
    pub group: String,
}

impl GroupId {
    /// Builds an id from names that passed [`check_name`]; stores them in lower case.
    pub fn new(environment: &str, system: &str, group: &str) -> Self {
        Self {
            environment: environment.to_ascii_lowercase(),
            system: system.to_ascii_lowercase(),
            group: group.to_ascii_lowercase(),
        }
    }

    /// The Cloud Identity email of the group in `domain`.
    pub fn email(&self, domain: &str) -> String {
        format!(
            "{GROUP_EMAIL_PREFIX}{}.{}.{}@{}",
            self.environment,
            self.system,
            self.group,
            domain.to_ascii_lowercase()
        )
    }

    /// The email prefix shared by all groups of an environment, e.g. `jit.prod.`.
    pub fn environment_prefix(environment: &str) -> String {
        format!("{GROUP_EMAIL_PREFIX}{}.", environment.to_ascii_lowercase())
    }

    /// Recovers the id from a JIT group email; `None` for any other email.
    pub fn from_email(email: &str) -> Option<Self> {
        let local = email.split_once('@')?.0.to_ascii_lowercase();
        let rest = local.strip_prefix(GROUP_EMAIL_PREFIX)?;
        let mut parts = rest.split('.');
        let (environment, system, group) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let valid = check_name(environment, MAX_ENVIRONMENT_NAME).is_ok()
            && check_name(system, MAX_SYSTEM_NAME).is_ok()
            && check_name(group, MAX_GROUP_NAME).is_ok();
        valid.then(|| Self::new(environment, system, group))
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.environment, self.system, self.group)
    }
}

/// Checks the shape of an email address: one `@`, a local part, and a domain.
pub fn check_email(value: &str) -> Result<(), String> {
    let Some((local, domain)) = value.split_once('@') else {
        return Err("must be an email address such as alice@example.com".to_owned());
    };
    if local.is_empty() || local.chars().any(|c| c.is_whitespace() || c == '@') {
        return Err("must be an email address such as alice@example.com".to_owned());
    }
    check_domain(domain).map_err(|_| "must be an email address such as alice@example.com".into())
}

/// Checks the shape of a DNS domain such as `example.com`.
pub fn check_domain(value: &str) -> Result<(), String> {
    let labels_ok = value.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if value.contains('.') && labels_ok && value.len() <= 253 {
        Ok(())
    } else {
        Err("must be a domain name such as example.com".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_email_is_lower_case_and_follows_the_jit_scheme() {
        let id = GroupId::new("Prod", "Network", "Admins");
        assert_eq!(
            id.email("Example.COM"),
            "jit.prod.network.admins@example.com"
        );
    }

    #[test]
    fn group_id_round_trips_through_its_email() {
        let id = GroupId::new("prod", "db", "readers");
        assert_eq!(GroupId::from_email(&id.email("example.com")), Some(id));
    }

    #[test]
    fn emails_outside_the_scheme_are_not_group_ids() {
        assert_eq!(GroupId::from_email("managers@example.com"), None);
        assert_eq!(GroupId::from_email("jit.prod.db@example.com"), None);
        assert_eq!(
            GroupId::from_email("jit.prod.db.readers.extra@example.com"),
            None
        );
    }

    #[test]
    fn names_longer_than_the_limit_are_refused_with_the_limit() {
        let err = check_name("abcdefghijklmnopq", MAX_ENVIRONMENT_NAME).unwrap_err();
        assert!(err.contains("17 characters"), "{err}");
        assert!(err.contains("at most 16"), "{err}");
        assert!(check_name("abcdefghijklmnop", MAX_ENVIRONMENT_NAME).is_ok());
    }

    #[test]
    fn names_with_dots_or_underscores_are_refused() {
        assert!(check_name("a.b", MAX_GROUP_NAME).is_err());
        assert!(check_name("a_b", MAX_GROUP_NAME).is_err());
        assert!(check_name("", MAX_GROUP_NAME).is_err());
    }

    #[test]
    fn emails_and_domains_are_checked_for_shape() {
        assert!(check_email("alice@example.com").is_ok());
        assert!(check_email("alice").is_err());
        assert!(check_email("@example.com").is_err());
        assert!(check_email("alice@localhost").is_err());
        assert!(check_domain("example.com").is_ok());
        assert!(check_domain("-bad.example.com").is_err());
    }
}
