//! Who is calling: the caller's authenticated Kubernetes username turned into the Google
//! principal (an email) that the policy knows them by.
//!
//! On GKE a person's Kubernetes username already is their Google email. Other clusters put
//! a prefix in front of usernames from an OIDC issuer (`oidc:alice@example.com`), which is
//! stripped here. Kubernetes service accounts (`system:serviceaccount:NAMESPACE:NAME`) have
//! no email of their own and are refused unless mapped explicitly.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::policy::names::check_email;

/// What every Kubernetes service account's username starts with.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// One explicit mapping of a Kubernetes service account to a Google email, written as
/// `system:serviceaccount:NAMESPACE:NAME=EMAIL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountMapping {
    /// The service account's Kubernetes username.
    pub username: String,
    /// The Google principal it acts as, lower case.
    pub email: String,
}

impl FromStr for ServiceAccountMapping {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let usage = "write it as system:serviceaccount:NAMESPACE:NAME=EMAIL";
        let Some((username, email)) = text.split_once('=') else {
            return Err(format!("{text:?} has no '=': {usage}"));
        };
        let username = username.trim();
        let email = email.trim();
        let account = username.strip_prefix(SERVICE_ACCOUNT_PREFIX).unwrap_or("");
        let shaped = matches!(account.split_once(':'), Some((ns, name))
            if !ns.is_empty() && !name.is_empty() && !name.contains(':'));
        if !shaped {
            return Err(format!(
                "{username:?} is not a service account username: {usage}"
            ));
        }
        check_email(email).map_err(|detail| format!("{email:?} {detail}"))?;
        Ok(Self {
            username: username.to_owned(),
            email: email.to_ascii_lowercase(),
        })
    }
}

/// How Kubernetes usernames become Google principals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityMapping {
    /// A prefix that every person's username carries and that is stripped, such as `oidc:`.
    /// When set, usernames without it are refused.
    pub username_prefix: Option<String>,
    /// Service accounts that may act, by Kubernetes username.
    pub service_accounts: BTreeMap<String, String>,
}

/// Why a caller has no Google principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unmapped {
    /// A Kubernetes service account that no mapping names.
    ServiceAccount {
        /// Its username.
        username: String,
    },
    /// A username without the configured prefix.
    MissingPrefix {
        /// The username.
        username: String,
        /// The prefix expected.
        prefix: String,
    },
    /// A username that is not an email once the prefix is stripped.
    NotAnEmail {
        /// The username.
        username: String,
    },
}

impl fmt::Display for Unmapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServiceAccount { username } => write!(
                f,
                "the Kubernetes service account {username} has no Google identity; an \
                 administrator can map it with --webhook-service-account-mapping \
                 {username}=EMAIL"
            ),
            Self::MissingPrefix { username, prefix } => write!(
                f,
                "the Kubernetes user {username} has no Google identity: only usernames that \
                 start with {prefix:?} are mapped to Google users"
            ),
            Self::NotAnEmail { username } => write!(
                f,
                "the Kubernetes user {username} has no Google identity: the username is not \
                 an email address"
            ),
        }
    }
}

impl IdentityMapping {
    /// A mapping that strips `username_prefix` and knows the given service accounts.
    pub fn new(
        username_prefix: Option<String>,
        service_accounts: impl IntoIterator<Item = ServiceAccountMapping>,
    ) -> Self {
        Self {
            username_prefix: username_prefix.filter(|p| !p.is_empty()),
            service_accounts: service_accounts
                .into_iter()
                .map(|m| (m.username, m.email))
                .collect(),
        }
    }

    /// The Google principal (a lower-case email) of the Kubernetes user `username`.
    pub fn principal(&self, username: &str) -> Result<String, Unmapped> {
        if let Some(email) = self.service_accounts.get(username) {
            return Ok(email.clone());
        }
        if username.starts_with(SERVICE_ACCOUNT_PREFIX) {
            return Err(Unmapped::ServiceAccount {
                username: username.to_owned(),
            });
        }
        let stripped =
            match &self.username_prefix {
                Some(prefix) => username.strip_prefix(prefix.as_str()).ok_or_else(|| {
                    Unmapped::MissingPrefix {
                        username: username.to_owned(),
                        prefix: prefix.clone(),
                    }
                })?,
                None => username,
            };
        match check_email(stripped) {
            Ok(()) => Ok(stripped.to_ascii_lowercase()),
            Err(_) => Err(Unmapped::NotAnEmail {
                username: username.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn robot() -> ServiceAccountMapping {
        "system:serviceaccount:ci:deployer=Robot@Example.com"
            .parse()
            .unwrap()
    }

    #[test]
    fn an_email_username_is_its_own_principal_in_lower_case() {
        let mapping = IdentityMapping::default();
        assert_eq!(
            mapping.principal("Alice@Example.com").unwrap(),
            "alice@example.com"
        );
    }

    #[test]
    fn the_configured_prefix_is_stripped_and_required() {
        let mapping = IdentityMapping::new(Some("oidc:".into()), []);
        assert_eq!(
            mapping.principal("oidc:alice@example.com").unwrap(),
            "alice@example.com"
        );
        let refused = mapping.principal("alice@example.com").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the Kubernetes user alice@example.com has no Google identity: only usernames \
             that start with \"oidc:\" are mapped to Google users"
        );
    }

    #[test]
    fn a_service_account_is_refused_unless_mapped() {
        let mapping = IdentityMapping::new(None, [robot()]);
        assert_eq!(
            mapping
                .principal("system:serviceaccount:ci:deployer")
                .unwrap(),
            "robot@example.com"
        );
        let refused = mapping
            .principal("system:serviceaccount:ci:other")
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with("the Kubernetes service account system:serviceaccount:ci:other"),
            "{refused}"
        );
    }

    #[test]
    fn a_username_that_is_no_email_is_refused_readably() {
        let refused = IdentityMapping::default().principal("admin").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the Kubernetes user admin has no Google identity: the username is not an email \
             address"
        );
        assert!(matches!(
            IdentityMapping::default().principal("system:kube-scheduler"),
            Err(Unmapped::NotAnEmail { .. })
        ));
    }

    #[test]
    fn a_mapping_flag_must_name_a_service_account_and_an_email() {
        assert!(
            "alice=alice@example.com"
                .parse::<ServiceAccountMapping>()
                .unwrap_err()
                .contains("is not a service account username")
        );
        assert!(
            "system:serviceaccount:ci:deployer=robot"
                .parse::<ServiceAccountMapping>()
                .unwrap_err()
                .contains("must be an email address")
        );
        assert!(
            "system:serviceaccount:ci:deployer"
                .parse::<ServiceAccountMapping>()
                .unwrap_err()
                .contains("has no '='")
        );
    }
}
