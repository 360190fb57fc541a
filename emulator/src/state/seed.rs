//! Applying a [`Seed`] to the store, and describing the store as a [`StateSnapshot`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::control::types::{
    CustomerSeed, GroupSeed, GroupSnapshot, MemberSeed, MembershipSnapshot, ResourceSeed, Seed,
    ServiceAccountSeed, StateSnapshot, TokenSnapshot,
};
use crate::error::ApiError;
use crate::state::policy::{normalize, validate_for_write};
use crate::state::{
    Customer, DISCUSSION_FORUM_LABEL, Group, Membership, MembershipRole, Resource, ServiceAccount,
    Store, Token, is_valid_email,
};

/// Why a seed was refused. Nothing of a refused seed is applied.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// A customer has no id or an invalid domain.
    #[error("customer {id:?}: {reason}")]
    Customer {
        /// The customer id as given.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// A resource has a bad name or an unknown parent.
    #[error("resource {name:?}: {reason}")]
    Resource {
        /// The resource name as given.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A service account, user or token names an invalid address.
    #[error("identity {email:?}: {reason}")]
    Identity {
        /// The address as given.
        email: String,
        /// What is wrong.
        reason: String,
    },
    /// A group is invalid or exists already.
    #[error("group {email:?}: {reason}")]
    Group {
        /// The group's address as given.
        email: String,
        /// What is wrong.
        reason: String,
    },
    /// A policy is for an unknown resource or breaks a policy rule.
    #[error("policy of {resource:?}: {source}")]
    Policy {
        /// The resource the policy is for.
        resource: String,
        /// The rule the policy breaks.
        #[source]
        source: ApiError,
    },
}

const RESOURCE_KINDS: [&str; 3] = ["projects/", "folders/", "organizations/"];

impl Store {
    /// Adds everything in `seed` to the store, or nothing if any part of it is invalid.
    pub fn apply_seed(&mut self, seed: Seed, now: DateTime<Utc>) -> Result<(), SeedError> {
        let mut next = self.clone();
        next.seed_customers(&seed.customers)?;
        for user in &seed.users {
            let user = checked_email(user)?;
            next.users.insert(user);
        }
        next.seed_resources(&seed.resources)?;
        next.seed_service_accounts(&seed.service_accounts)?;
        for (token, identity) in &seed.tokens {
            next.tokens.insert(
                token.clone(),
                Token {
                    identity: checked_email(identity)?,
                    expire_time: None,
                },
            );
        }
        next.seed_groups(&seed.groups, now)?;
        next.seed_policies(seed.policies)?;
        if let Some(settings) = seed.settings {
            next.settings.page_size_cap = settings.page_size_cap.filter(|cap| *cap > 0);
        }
        *self = next;
        Ok(())
    }

    fn seed_customers(&mut self, customers: &[CustomerSeed]) -> Result<(), SeedError> {
        for customer in customers {
            let id = customer.id.trim_start_matches("customers/").to_owned();
            if id.is_empty() {
                return Err(SeedError::Customer {
                    id,
                    reason: "the id is empty".to_owned(),
                });
            }
            let domains: Vec<String> = customer
                .domains
                .iter()
                .map(|domain| domain.to_ascii_lowercase())
                .collect();
            if let Some(bad) = domains.iter().find(|domain| !domain.contains('.')) {
                return Err(SeedError::Customer {
                    id,
                    reason: format!("{bad:?} is not a domain name"),
                });
            }
            self.customers.insert(id, Customer { domains });
        }
        Ok(())
    }

    fn seed_resources(&mut self, resources: &[ResourceSeed]) -> Result<(), SeedError> {
        for resource in resources {
            if !RESOURCE_KINDS.iter().any(|kind| {
                resource
                    .name
                    .strip_prefix(kind)
                    .is_some_and(|id| !id.is_empty())
            }) {
                return Err(SeedError::Resource {
                    name: resource.name.clone(),
                    reason: "the name must be projects/ID, folders/ID or organizations/ID"
                        .to_owned(),
                });
            }
            self.resources.insert(
                resource.name.clone(),
                Resource {
                    parent: resource.parent.clone(),
                },
            );
        }
        for (name, resource) in &self.resources {
            if let Some(parent) = &resource.parent
                && !self.resources.contains_key(parent)
            {
                return Err(SeedError::Resource {
                    name: name.clone(),
                    reason: format!("the parent {parent:?} is not seeded"),
                });
            }
        }
        Ok(())
    }

    fn seed_service_accounts(&mut self, accounts: &[ServiceAccountSeed]) -> Result<(), SeedError> {
        for account in accounts {
            let email = checked_email(&account.email)?;
            let impersonators = account
                .impersonators
                .iter()
                .map(|email| checked_email(email))
                .collect::<Result<_, _>>()?;
            self.service_accounts.insert(
                email,
                ServiceAccount {
                    impersonators,
                    can_manage_groups: account.can_manage_groups,
                    can_set_iam_policy_on: account.can_set_iam_policy_on.iter().cloned().collect(),
                },
            );
        }
        Ok(())
    }

    fn seed_groups(&mut self, groups: &[GroupSeed], now: DateTime<Utc>) -> Result<(), SeedError> {
        // Groups first, members second, so that a member may be a group seeded later.
        for seed in groups {
            let email = seed.email.to_ascii_lowercase();
            let fail = |reason: String| SeedError::Group {
                email: email.clone(),
                reason,
            };
            if !is_valid_email(&email) {
                return Err(fail("the address is not valid".to_owned()));
            }
            if self.group_by_email(&email).is_some() {
                return Err(fail("a group with this address exists already".to_owned()));
            }
            let customer = self
                .customer_for(seed.customer.as_deref(), &email)
                .map_err(fail)?;
            let labels = seed
                .labels
                .clone()
                .unwrap_or_else(|| vec![DISCUSSION_FORUM_LABEL.to_owned()])
                .into_iter()
                .map(|label| (label, String::new()))
                .collect();
            let id = self.new_group_id();
            self.account_id(&email);
            self.groups.insert(
                id.clone(),
                Group {
                    id,
                    display_name: seed.display_name.clone().unwrap_or_else(|| email.clone()),
                    description: seed.description.clone().unwrap_or_default(),
                    email,
                    customer,
                    labels,
                    create_time: now,
                    update_time: now,
                    memberships: BTreeMap::new(),
                },
            );
        }
        for seed in groups {
            let email = seed.email.to_ascii_lowercase();
            for member in &seed.members {
                self.seed_member(&email, member, now)?;
            }
        }
        Ok(())
    }

    fn seed_member(
        &mut self,
        group_email: &str,
        member: &MemberSeed,
        now: DateTime<Utc>,
    ) -> Result<(), SeedError> {
        let (member_email, extra_roles, expire_time) = match member {
            MemberSeed::Email(email) => (email.as_str(), &[][..], None),
            MemberSeed::Detailed {
                email,
                roles,
                expire_time,
            } => (email.as_str(), roles.as_slice(), *expire_time),
        };
        let member_email = member_email.to_ascii_lowercase();
        let fail = |reason: String| SeedError::Group {
            email: group_email.to_owned(),
            reason,
        };
        if !is_valid_email(&member_email) || member_email == group_email {
            return Err(fail(format!("{member_email:?} cannot be a member")));
        }
        let mut roles = vec![MembershipRole {
            name: "MEMBER".to_owned(),
            expire_time,
        }];
        for role in extra_roles {
            if !["OWNER", "MANAGER"].contains(&role.as_str()) {
                return Err(fail(format!("{role:?} is not OWNER or MANAGER")));
            }
            roles.push(MembershipRole {
                name: role.clone(),
                expire_time: None,
            });
        }
        let kind = self.member_kind(&member_email);
        let account_id = self.account_id(&member_email);
        let Some(group) = self.groups.values_mut().find(|g| g.email == group_email) else {
            return Err(fail("the group is not seeded".to_owned()));
        };
        group.memberships.insert(
            account_id,
            Membership {
                member: member_email,
                kind,
                roles,
                create_time: now,
                update_time: now,
            },
        );
        Ok(())
    }

    fn seed_policies(
        &mut self,
        policies: BTreeMap<String, crate::state::policy::Policy>,
    ) -> Result<(), SeedError> {
        for (resource, mut policy) in policies {
            if !self.resources.contains_key(&resource) {
                return Err(SeedError::Policy {
                    source: ApiError::not_found(format!("{resource} is not a seeded resource")),
                    resource,
                });
            }
            if policy.version.is_none() && policy.has_conditions() {
                policy.version = Some(3);
            }
            if let Err(source) = validate_for_write(&policy, &Default::default()) {
                return Err(SeedError::Policy { resource, source });
            }
            policy.bindings = normalize(policy.bindings);
            policy.version = Some(if policy.has_conditions() { 3 } else { 1 });
            policy.etag = Some(self.new_etag());
            self.policies.insert(resource, policy);
        }
        Ok(())
    }

    /// The customer a group belongs to: the one named, which must own the address's domain,
    /// or else the one owning the domain.
    pub fn customer_for(&self, named: Option<&str>, email: &str) -> Result<String, String> {
        let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        match named {
            Some(id) => {
                let id = id.trim_start_matches("customers/");
                let customer = self
                    .customers
                    .get(id)
                    .ok_or_else(|| format!("the customer {id:?} is not seeded"))?;
                if customer.domains.iter().any(|d| d == domain) {
                    Ok(id.to_owned())
                } else {
                    Err(format!(
                        "the domain {domain:?} does not belong to customer {id:?}"
                    ))
                }
            }
            None => self
                .customers
                .iter()
                .find(|(_, customer)| customer.domains.iter().any(|d| d == domain))
                .map(|(id, _)| id.clone())
                .ok_or_else(|| format!("no seeded customer owns the domain {domain:?}")),
        }
    }

    /// The whole store as the control API shows it.
    pub fn snapshot(&self, now: DateTime<Utc>) -> StateSnapshot {
        let mut groups: Vec<GroupSnapshot> = self
            .groups
            .values()
            .map(|group| GroupSnapshot {
                name: group.name(),
                email: group.email.clone(),
                customer: group.customer.clone(),
                display_name: group.display_name.clone(),
                description: group.description.clone(),
                labels: group.labels.clone(),
                create_time: group.create_time,
                memberships: group
                    .memberships
                    .iter()
                    .map(|(id, membership)| MembershipSnapshot {
                        name: format!("{}/memberships/{id}", group.name()),
                        member: membership.member.clone(),
                        kind: membership.kind.as_str().to_owned(),
                        roles: membership.roles.iter().map(|r| r.name.clone()).collect(),
                        expire_time: membership.expire_time(),
                    })
                    .collect(),
            })
            .collect();
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        StateSnapshot {
            now,
            customers: self
                .customers
                .iter()
                .map(|(id, customer)| CustomerSeed {
                    id: id.clone(),
                    domains: customer.domains.clone(),
                })
                .collect(),
            users: self.users.iter().cloned().collect(),
            resources: self
                .resources
                .iter()
                .map(|(name, resource)| ResourceSeed {
                    name: name.clone(),
                    parent: resource.parent.clone(),
                })
                .collect(),
            service_accounts: self
                .service_accounts
                .iter()
                .map(|(email, account)| ServiceAccountSeed {
                    email: email.clone(),
                    impersonators: account.impersonators.iter().cloned().collect(),
                    can_manage_groups: account.can_manage_groups,
                    can_set_iam_policy_on: account.can_set_iam_policy_on.iter().cloned().collect(),
                })
                .collect(),
            tokens: self
                .tokens
                .iter()
                .map(|(token, value)| {
                    let snapshot = TokenSnapshot {
                        identity: value.identity.clone(),
                        expire_time: value.expire_time,
                    };
                    (token.clone(), snapshot)
                })
                .collect(),
            groups,
            policies: self.policies.clone(),
        }
    }
}

fn checked_email(email: &str) -> Result<String, SeedError> {
    let email = email.to_ascii_lowercase();
    if is_valid_email(&email) {
        Ok(email)
    } else {
        Err(SeedError::Identity {
            email,
            reason: "not a valid email address".to_owned(),
        })
    }
}
