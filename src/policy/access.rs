//! Access lists: who may view, join or approve a group.
//!
//! The effective list of a group is its environment's entries followed by its own. A subject
//! holds a permission when some matching entry allows it and no matching entry denies it: a
//! deny that overlaps the needed permission always wins, wherever it stands in the list.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::names::{check_domain, check_email};
use super::validation::{Problems, ValidationErrors};

/// One entry of an access list as written in a policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessEntrySpec {
    /// Who the entry is about: `user:EMAIL`, `group:EMAIL` (a Cloud Identity group,
    /// resolved transitively) or `domain:DOMAIN`.
    pub principal: String,
    /// Permissions this entry allows, comma-separated: VIEW, JOIN, APPROVE_SELF,
    /// APPROVE_OTHERS or ALL. Exactly one of `allow` and `deny` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<String>,
    /// Permissions this entry denies, comma-separated, in the same vocabulary as `allow`.
    /// A deny wins over any allow of an overlapping permission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<String>,
}

/// Someone or something an access entry is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Principal {
    /// One person, by email.
    User(String),
    /// Every transitive member of a Cloud Identity group, by the group's email.
    Group(String),
    /// Every user whose email is in this domain.
    Domain(String),
}

const PRINCIPAL_FORMS: &str = "must be user:EMAIL, group:EMAIL or domain:DOMAIN";

impl FromStr for Principal {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let Some((kind, id)) = value.split_once(':') else {
            return Err(PRINCIPAL_FORMS.to_owned());
        };
        let id = id.trim().to_ascii_lowercase();
        match kind.trim() {
            "user" => check_email(&id).map(|()| Self::User(id)),
            "group" => check_email(&id).map(|()| Self::Group(id)),
            "domain" => check_domain(&id).map(|()| Self::Domain(id)),
            _ => Err(PRINCIPAL_FORMS.to_owned()),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(email) => write!(f, "user:{email}"),
            Self::Group(email) => write!(f, "group:{email}"),
            Self::Domain(domain) => write!(f, "domain:{domain}"),
        }
    }
}

/// The person an access check is about, with the groups they belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// The person's email, lower case.
    pub email: String,
    /// Emails of the Cloud Identity groups the person belongs to, directly or through
    /// nesting, lower case. Only groups named by `group:` principals need to be listed.
    pub groups: BTreeSet<String>,
}

impl Subject {
    /// A subject known only by email, with no group memberships.
    pub fn user(email: &str) -> Self {
        Self {
            email: email.to_ascii_lowercase(),
            groups: BTreeSet::new(),
        }
    }

    /// Adds group memberships.
    pub fn with_groups<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, groups: I) -> Self {
        self.groups
            .extend(groups.into_iter().map(|g| g.as_ref().to_ascii_lowercase()));
        self
    }

    fn is(&self, principal: &Principal) -> bool {
        match principal {
            Principal::User(email) => *email == self.email,
            Principal::Group(email) => self.groups.contains(email),
            Principal::Domain(domain) => self
                .email
                .rsplit_once('@')
                .is_some_and(|(_, d)| d == domain),
        }
    }
}

/// A set of permissions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Permissions(u8);

impl Permissions {
    /// See the group and its policy.
    pub const VIEW: Self = Self(1);
    /// Ask to join the group.
    pub const JOIN: Self = Self(2);
    /// Approve one's own request to join.
    pub const APPROVE_SELF: Self = Self(4);
    /// Approve other people's requests to join; never one's own.
    pub const APPROVE_OTHERS: Self = Self(8);
    /// Every permission.
    pub const ALL: Self = Self(15);
    /// No permission.
    pub const NONE: Self = Self(0);

    const NAMES: [(&'static str, Self); 5] = [
        ("VIEW", Self::VIEW),
        ("JOIN", Self::JOIN),
        ("APPROVE_SELF", Self::APPROVE_SELF),
        ("APPROVE_OTHERS", Self::APPROVE_OTHERS),
        ("ALL", Self::ALL),
    ];

    /// Whether every permission of `other` is in `self`.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `self` and `other` share a permission.
    pub fn overlaps(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// The union of both sets.
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The permissions of `self` that are not in `other`.
    pub fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromStr for Permissions {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let mut set = Self::NONE;
        for word in value.split(',').map(str::trim) {
            let found = Self::NAMES
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(word));
            match found {
                Some((_, permission)) => set = set.union(*permission),
                None => {
                    return Err(format!(
                        "'{word}' is not a permission; allowed: VIEW, JOIN, APPROVE_SELF, \
                         APPROVE_OTHERS, ALL (comma-separated)"
                    ));
                }
            }
        }
        Ok(set)
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::ALL {
            return f.write_str("ALL");
        }
        let names: Vec<_> = Self::NAMES[..4]
            .iter()
            .filter(|(_, p)| self.contains(*p))
            .map(|(name, _)| *name)
            .collect();
        f.write_str(&names.join(", "))
    }
}

/// Whether an entry allows or denies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The entry grants its permissions.
    Allow,
    /// The entry withholds its permissions, whatever other entries say.
    Deny,
}

/// One parsed access entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessEntry {
    /// Who the entry is about.
    pub principal: Principal,
    /// Allow or deny.
    pub effect: Effect,
    /// The permissions allowed or denied.
    pub permissions: Permissions,
}

/// An ordered access list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessList {
    entries: Vec<AccessEntry>,
}

/// The outcome of an access check, with an explanation a person can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessCheck {
    /// The subject holds the permission through `principal`'s entry.
    Granted {
        /// The principal of the first allowing entry.
        principal: Principal,
    },
    /// A matching deny entry withholds the permission.
    DeniedBy {
        /// The principal of the first denying entry.
        principal: Principal,
    },
    /// No entry allows the permission.
    NotGranted,
}

impl AccessCheck {
    /// Whether the permission is held.
    pub fn is_granted(&self) -> bool {
        matches!(self, Self::Granted { .. })
    }
}

impl AccessList {
    /// Parses entries written in a policy; `path` is the field path of the list.
    pub fn parse(path: &str, specs: &[AccessEntrySpec]) -> Result<Self, ValidationErrors> {
        let mut problems = Problems::default();
        let mut entries = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let principal = problems.parse(
                &format!("{at}.principal"),
                &spec.principal,
                spec.principal.parse::<Principal>(),
            );
            let effect = match (&spec.allow, &spec.deny) {
                (Some(allow), None) => Some((Effect::Allow, "allow", allow)),
                (None, Some(deny)) => Some((Effect::Deny, "deny", deny)),
                (Some(_), Some(_)) => {
                    problems.invalid(&at, &spec.principal, "set either allow or deny, not both");
                    None
                }
                (None, None) => {
                    problems.required(format!("{at}.allow"), "set allow or deny");
                    None
                }
            };
            let permissions = effect.and_then(|(_, field, text)| {
                problems.parse(&format!("{at}.{field}"), text, text.parse::<Permissions>())
            });
            if let (Some(principal), Some((effect, _, _)), Some(permissions)) =
                (principal, effect, permissions)
            {
                entries.push(AccessEntry {
                    principal,
                    effect,
                    permissions,
                });
            }
        }
        problems.finish(|| Self { entries })
    }

    /// The entries of `self` followed by those of `other`.
    pub fn followed_by(&self, other: &Self) -> Self {
        let entries = self.entries.iter().chain(&other.entries).cloned().collect();
        Self { entries }
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[AccessEntry] {
        &self.entries
    }

    /// Checks whether `subject` holds every permission in `needed`.
    pub fn check(&self, subject: &Subject, needed: Permissions) -> AccessCheck {
        let matching = self.entries.iter().filter(|e| subject.is(&e.principal));
        let mut granting = None;
        let mut allowed = Permissions::NONE;
        for entry in matching {
            match entry.effect {
                Effect::Deny if entry.permissions.overlaps(needed) => {
                    return AccessCheck::DeniedBy {
                        principal: entry.principal.clone(),
                    };
                }
                Effect::Deny => {}
                Effect::Allow => {
                    allowed = allowed.union(entry.permissions);
                    if granting.is_none() && allowed.contains(needed) {
                        granting = Some(entry.principal.clone());
                    }
                }
            }
        }
        match granting {
            Some(principal) => AccessCheck::Granted { principal },
            None => AccessCheck::NotGranted,
        }
    }

    /// Principals named by allow entries that grant every permission in `needed`, in order
    /// and without repeats. A principal is left out when a deny entry for the very same
    /// principal overlaps `needed`; denies aimed at other principals (a domain, a group)
    /// may still withhold the permission from some of the people listed.
    pub fn principals_allowed(&self, needed: Permissions) -> Vec<Principal> {
        let denied: BTreeSet<&Principal> = self
            .entries
            .iter()
            .filter(|e| e.effect == Effect::Deny && e.permissions.overlaps(needed))
            .map(|e| &e.principal)
            .collect();
        let mut seen = BTreeSet::new();
        self.entries
            .iter()
            .filter(|e| e.effect == Effect::Allow && e.permissions.contains(needed))
            .filter(|e| !denied.contains(&e.principal))
            .filter(|e| seen.insert(e.principal.clone()))
            .map(|e| e.principal.clone())
            .collect()
    }

    /// Emails of the Cloud Identity groups that `group:` principals name, so that a
    /// subject's memberships can be resolved before a check.
    pub fn group_principals(&self) -> BTreeSet<String> {
        self.entries
            .iter()
            .filter_map(|e| match &e.principal {
                Principal::Group(email) => Some(email.clone()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(principal: &str, allow: Option<&str>, deny: Option<&str>) -> AccessEntrySpec {
        AccessEntrySpec {
            principal: principal.to_owned(),
            allow: allow.map(str::to_owned),
            deny: deny.map(str::to_owned),
        }
    }

    fn list(entries: &[AccessEntrySpec]) -> AccessList {
        AccessList::parse("spec.access", entries).unwrap()
    }

    #[test]
    fn a_user_entry_grants_its_permissions_to_that_user_only() {
        let acl = list(&[entry("user:alice@example.com", Some("JOIN"), None)]);
        let alice = Subject::user("Alice@Example.com");
        assert!(acl.check(&alice, Permissions::JOIN).is_granted());
        assert!(!acl.check(&alice, Permissions::APPROVE_SELF).is_granted());
        assert!(
            !acl.check(&Subject::user("bob@example.com"), Permissions::JOIN)
                .is_granted()
        );
    }

    #[test]
    fn a_domain_entry_grants_to_everybody_in_the_domain() {
        let acl = list(&[entry(
            "domain:example.com",
            Some("JOIN, APPROVE_SELF"),
            None,
        )]);
        let needed = Permissions::JOIN.union(Permissions::APPROVE_SELF);
        assert!(
            acl.check(&Subject::user("bob@example.com"), needed)
                .is_granted()
        );
        assert!(
            !acl.check(&Subject::user("bob@example.org"), needed)
                .is_granted()
        );
        assert!(
            !acl.check(&Subject::user("bob@sub.example.com"), needed)
                .is_granted()
        );
    }

    #[test]
    fn a_group_entry_grants_to_members_of_that_group() {
        let acl = list(&[entry(
            "group:managers@example.com",
            Some("APPROVE_OTHERS"),
            None,
        )]);
        let member = Subject::user("bob@example.com").with_groups(["managers@example.com"]);
        assert!(acl.check(&member, Permissions::APPROVE_OTHERS).is_granted());
        let outsider = Subject::user("carol@example.com");
        assert!(
            !acl.check(&outsider, Permissions::APPROVE_OTHERS)
                .is_granted()
        );
    }

    #[test]
    fn a_deny_wins_over_an_allow_wherever_it_stands() {
        let acl = list(&[
            entry("domain:example.com", Some("JOIN"), None),
            entry("user:mallory@example.com", None, Some("JOIN")),
        ]);
        let check = acl.check(&Subject::user("mallory@example.com"), Permissions::JOIN);
        assert_eq!(
            check,
            AccessCheck::DeniedBy {
                principal: Principal::User("mallory@example.com".into())
            }
        );
        assert!(
            acl.check(&Subject::user("alice@example.com"), Permissions::JOIN)
                .is_granted()
        );
    }

    #[test]
    fn a_deny_of_an_unrelated_permission_does_not_withhold() {
        let acl = list(&[
            entry("user:alice@example.com", Some("JOIN"), None),
            entry("user:alice@example.com", None, Some("APPROVE_OTHERS")),
        ]);
        assert!(
            acl.check(&Subject::user("alice@example.com"), Permissions::JOIN)
                .is_granted()
        );
    }

    #[test]
    fn permissions_from_several_entries_add_up() {
        let acl = list(&[
            entry("domain:example.com", Some("JOIN"), None),
            entry("user:alice@example.com", Some("APPROVE_SELF"), None),
        ]);
        let needed = Permissions::JOIN.union(Permissions::APPROVE_SELF);
        assert_eq!(
            acl.check(&Subject::user("alice@example.com"), needed),
            AccessCheck::Granted {
                principal: Principal::User("alice@example.com".into())
            }
        );
    }

    #[test]
    fn all_grants_every_permission() {
        let acl = list(&[entry("user:alice@example.com", Some("ALL"), None)]);
        let alice = Subject::user("alice@example.com");
        for p in [
            Permissions::VIEW,
            Permissions::JOIN,
            Permissions::APPROVE_SELF,
            Permissions::APPROVE_OTHERS,
        ] {
            assert!(acl.check(&alice, p).is_granted(), "{p}");
        }
    }

    #[test]
    fn environment_entries_come_first_and_group_entries_follow() {
        let env = list(&[entry("user:alice@example.com", None, Some("JOIN"))]);
        let group = list(&[entry("user:alice@example.com", Some("JOIN"), None)]);
        let effective = env.followed_by(&group);
        assert_eq!(effective.entries().len(), 2);
        assert!(
            !effective
                .check(&Subject::user("alice@example.com"), Permissions::JOIN)
                .is_granted()
        );
    }

    #[test]
    fn every_bad_entry_is_reported_with_its_field_path() {
        let err = AccessList::parse(
            "spec.access",
            &[
                entry("usr:bob@example.com", Some("JOIN"), None),
                entry("user:alice@example.com", Some("JOIN, FLY"), None),
                entry("user:carol@example.com", None, None),
                entry("user:dave@example.com", Some("JOIN"), Some("JOIN")),
            ],
        )
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems().len(), 4, "{text}");
        assert!(text.contains("spec.access[0].principal: Invalid value: \"usr:bob@example.com\""));
        assert!(text.contains("user:EMAIL, group:EMAIL or domain:DOMAIN"));
        assert!(text.contains("spec.access[1].allow: Invalid value: \"JOIN, FLY\": 'FLY'"));
        assert!(text.contains("APPROVE_OTHERS"));
        assert!(text.contains("spec.access[2].allow: Required value"));
        assert!(text.contains("spec.access[3]: Invalid value"));
    }

    #[test]
    fn principals_allowed_lists_approvers_without_denied_ones() {
        let acl = list(&[
            entry("user:bob@example.com", Some("APPROVE_OTHERS"), None),
            entry("group:managers@example.com", Some("ALL"), None),
            entry("user:eve@example.com", Some("APPROVE_OTHERS"), None),
            entry("user:eve@example.com", None, Some("APPROVE_OTHERS")),
            entry("user:alice@example.com", Some("JOIN"), None),
        ]);
        assert_eq!(
            acl.principals_allowed(Permissions::APPROVE_OTHERS),
            vec![
                Principal::User("bob@example.com".into()),
                Principal::Group("managers@example.com".into())
            ]
        );
        assert_eq!(
            acl.group_principals().into_iter().collect::<Vec<_>>(),
            vec!["managers@example.com".to_owned()]
        );
    }

    #[test]
    fn permissions_print_in_policy_vocabulary() {
        let p: Permissions = "join, approve_self".parse().unwrap();
        assert_eq!(p.to_string(), "JOIN, APPROVE_SELF");
        assert_eq!(Permissions::ALL.to_string(), "ALL");
    }
}
