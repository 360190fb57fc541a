//! The emulated world: customers, identities, groups with their memberships, resources and
//! their IAM policies. One [`Store`] lives behind a mutex; handlers lock it for the length of
//! one call, so every call sees and leaves a consistent state.

pub mod policy;
pub mod seed;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::encoding::base64_encode;
use policy::Policy;

/// The label every Google group carries.
pub const DISCUSSION_FORUM_LABEL: &str = "cloudidentity.googleapis.com/groups.discussion_forum";
/// The label that makes a Google group a security group; once set it cannot be removed.
pub const SECURITY_LABEL: &str = "cloudidentity.googleapis.com/groups.security";
/// The label that locks a group.
pub const LOCKED_LABEL: &str = "cloudidentity.googleapis.com/groups.locked";

/// A Cloud Identity or Workspace account and the domains it owns.
#[derive(Debug, Clone)]
pub struct Customer {
    /// The domains whose addresses the customer's groups may use, in lower case.
    pub domains: Vec<String>,
}

/// A service account and what it may do in the emulated world.
#[derive(Debug, Clone, Default)]
pub struct ServiceAccount {
    /// Identities (email addresses) allowed to mint access tokens for this account.
    pub impersonators: BTreeSet<String>,
    /// Whether the account may call the Cloud Identity groups API.
    pub can_manage_groups: bool,
    /// Resources (`projects/ID`, `folders/ID`, `organizations/ID`) on which the account may
    /// read and write IAM policies, including everything beneath them.
    pub can_set_iam_policy_on: BTreeSet<String>,
}

/// An OAuth access token the emulator accepts.
#[derive(Debug, Clone)]
pub struct Token {
    /// The email address of the identity the token stands for.
    pub identity: String,
    /// When the token stops being accepted; `None` for seeded tokens, which never expire.
    pub expire_time: Option<DateTime<Utc>>,
}

/// What kind of principal a member is, as Cloud Identity reports it in `Membership.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    /// A user account.
    User,
    /// A group.
    Group,
    /// A service account.
    ServiceAccount,
}

impl MemberKind {
    /// The value of `Membership.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::User => "USER",
            MemberKind::Group => "GROUP",
            MemberKind::ServiceAccount => "SERVICE_ACCOUNT",
        }
    }
}

/// One role of a membership (`MEMBER`, `MANAGER` or `OWNER`), with its expiry if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipRole {
    /// `MEMBER`, `MANAGER` or `OWNER`.
    pub name: String,
    /// When the role ends; only `MEMBER` roles can expire, and the membership ends with them.
    pub expire_time: Option<DateTime<Utc>>,
}

/// A direct membership of a principal in a group.
#[derive(Debug, Clone)]
pub struct Membership {
    /// The member's email address, in lower case.
    pub member: String,
    /// What kind of principal the member is.
    pub kind: MemberKind,
    /// The roles, `MEMBER` always first.
    pub roles: Vec<MembershipRole>,
    /// When the membership was created.
    pub create_time: DateTime<Utc>,
    /// When the membership last changed.
    pub update_time: DateTime<Utc>,
}

impl Membership {
    /// When the `MEMBER` role, and so the whole membership, expires.
    pub fn expire_time(&self) -> Option<DateTime<Utc>> {
        self.roles
            .iter()
            .find(|role| role.name == "MEMBER")
            .and_then(|role| role.expire_time)
    }
}

/// A Cloud Identity group.
#[derive(Debug, Clone)]
pub struct Group {
    /// The opaque group id, the `{group}` of `groups/{group}`.
    pub id: String,
    /// The group's email address, in lower case.
    pub email: String,
    /// The customer id (`C...`) the group belongs to.
    pub customer: String,
    /// The display name.
    pub display_name: String,
    /// The description.
    pub description: String,
    /// The labels, every value empty.
    pub labels: BTreeMap<String, String>,
    /// When the group was created.
    pub create_time: DateTime<Utc>,
    /// When the group last changed.
    pub update_time: DateTime<Utc>,
    /// Direct memberships, keyed by the member's account id (the `{membership}` of the name).
    pub memberships: BTreeMap<String, Membership>,
}

impl Group {
    /// The resource name, `groups/{id}`.
    pub fn name(&self) -> String {
        format!("groups/{}", self.id)
    }

    /// The membership of a member, by email address, with its account id.
    pub fn membership_of(&self, email: &str) -> Option<(&String, &Membership)> {
        self.memberships
            .iter()
            .find(|(_, membership)| membership.member == email)
    }
}

/// A project, folder or organization, with its place in the resource hierarchy.
#[derive(Debug, Clone)]
pub struct Resource {
    /// The parent resource's name, if it has one.
    pub parent: Option<String>,
}

/// Settings that shape how the emulator answers.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Lists never return more than this many items per page, whatever the caller asks for,
    /// so that tests exercise paging with few items (Google also may return short pages).
    pub page_size_cap: Option<usize>,
}

/// The whole emulated world.
#[derive(Debug, Clone, Default)]
pub struct Store {
    /// Customers by id (`C01`, without the `customers/` prefix).
    pub customers: BTreeMap<String, Customer>,
    /// Known user accounts, by email address.
    pub users: BTreeSet<String>,
    /// Service accounts by email address.
    pub service_accounts: BTreeMap<String, ServiceAccount>,
    /// Accepted access tokens.
    pub tokens: BTreeMap<String, Token>,
    /// Groups by id.
    pub groups: BTreeMap<String, Group>,
    /// Projects, folders and organizations by resource name.
    pub resources: BTreeMap<String, Resource>,
    /// IAM policies by resource name; a resource without an entry has an empty policy.
    pub policies: BTreeMap<String, Policy>,
    /// Answer-shaping settings.
    pub settings: Settings,
    account_ids: BTreeMap<String, String>,
    next_id: u64,
}

impl Store {
    /// Removes every membership whose `MEMBER` role has expired at `now`, as Google does.
    pub fn prune_expired(&mut self, now: DateTime<Utc>) {
        for group in self.groups.values_mut() {
            group
                .memberships
                .retain(|_, membership| membership.expire_time().is_none_or(|t| t > now));
        }
        self.tokens
            .retain(|_, token| token.expire_time.is_none_or(|t| t > now));
    }

    fn next_number(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A fresh group id in the style of Cloud Identity's: 15 lower-case letters and digits.
    pub fn new_group_id(&mut self) -> String {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        // Spreads consecutive numbers apart so ids do not look sequential.
        let mut value = self
            .next_number()
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(17);
        let mut id = String::from("0");
        for _ in 0..14 {
            id.push(char::from(ALPHABET[(value % 36) as usize]));
            value /= 36;
        }
        id
    }

    /// The stable numeric account id of a principal, assigned on first use. Cloud Identity
    /// names a membership after its member's id, so one member has the same membership id in
    /// every group.
    pub fn account_id(&mut self, email: &str) -> String {
        if let Some(id) = self.account_ids.get(email) {
            return id.clone();
        }
        let id = format!("1{:020}", 10_000_000 + self.next_number());
        self.account_ids.insert(email.to_owned(), id.clone());
        id
    }

    /// A fresh etag for a policy write.
    pub fn new_etag(&mut self) -> String {
        let number = self.next_number();
        let mut bytes = vec![0x07, 0x06];
        bytes.extend_from_slice(&number.to_be_bytes()[2..]);
        base64_encode(&bytes)
    }

    /// The group with the given email address.
    pub fn group_by_email(&self, email: &str) -> Option<&Group> {
        self.groups.values().find(|group| group.email == email)
    }

    /// What kind of principal an email address stands for.
    pub fn member_kind(&self, email: &str) -> MemberKind {
        if self.group_by_email(email).is_some() {
            MemberKind::Group
        } else if self.service_accounts.contains_key(email)
            || email.ends_with(".gserviceaccount.com")
        {
            MemberKind::ServiceAccount
        } else {
            MemberKind::User
        }
    }

    /// Whether `identity` may read and write the IAM policy of `resource`, directly or
    /// through an ancestor. An unknown resource is never allowed.
    pub fn can_set_iam_policy(&self, identity: &str, resource: &str) -> bool {
        let Some(account) = self.service_accounts.get(identity) else {
            return false;
        };
        let mut current = Some(resource.to_owned());
        // The hierarchy is a tree, but a bad seed could make a cycle; the bound ends the walk.
        for _ in 0..64 {
            let Some(name) = current else {
                return false;
            };
            let Some(node) = self.resources.get(&name) else {
                return false;
            };
            if account.can_set_iam_policy_on.contains(&name) {
                return true;
            }
            current = node.parent.clone();
        }
        false
    }

    /// Whether `identity` may call the Cloud Identity groups API.
    pub fn can_manage_groups(&self, identity: &str) -> bool {
        self.service_accounts
            .get(identity)
            .is_some_and(|account| account.can_manage_groups)
    }

    /// The direct groups of a member: `(group id, membership)` for each group that has the
    /// member directly.
    pub fn direct_groups_of<'a>(
        &'a self,
        email: &'a str,
    ) -> impl Iterator<Item = (&'a Group, &'a Membership)> + 'a {
        self.groups
            .values()
            .filter_map(move |group| group.membership_of(email).map(|(_, m)| (group, m)))
    }

    /// Whether `email` is a member of the group `group_id` directly or through nested groups.
    pub fn is_transitive_member(&self, group_id: &str, email: &str) -> bool {
        let mut seen = BTreeSet::new();
        let mut pending = vec![group_id.to_owned()];
        while let Some(id) = pending.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let Some(group) = self.groups.get(&id) else {
                continue;
            };
            for membership in group.memberships.values() {
                if membership.member == email {
                    return true;
                }
                if membership.kind == MemberKind::Group
                    && let Some(nested) = self.group_by_email(&membership.member)
                {
                    pending.push(nested.id.clone());
                }
            }
        }
        false
    }

    /// Every group that contains `email` directly or through nested groups, by group id, with
    /// whether the member is in it directly and whether through another group.
    pub fn transitive_groups_of(&self, email: &str) -> BTreeMap<String, Relation> {
        let mut relations: BTreeMap<String, Relation> = BTreeMap::new();
        let mut pending: Vec<(String, bool)> = vec![(email.to_owned(), true)];
        let mut expanded = BTreeSet::new();
        while let Some((principal, direct)) = pending.pop() {
            for (group, _) in self.direct_groups_of(&principal) {
                let relation = relations.entry(group.id.clone()).or_default();
                if direct {
                    relation.direct = true;
                } else {
                    relation.indirect = true;
                }
                if expanded.insert(group.email.clone()) {
                    pending.push((group.email.clone(), false));
                }
            }
        }
        relations
    }

    /// Removes a group, its memberships in other groups, and marks its IAM bindings as those
    /// of a deleted principal, the way Google shows them after a group is deleted.
    pub fn delete_group(&mut self, group_id: &str) -> Option<Group> {
        let group = self.groups.remove(group_id)?;
        for other in self.groups.values_mut() {
            other
                .memberships
                .retain(|_, membership| membership.member != group.email);
        }
        let uid = self.account_id(&group.email);
        let principal = format!("group:{}", group.email);
        let tombstone = format!("deleted:group:{}?uid={uid}", group.email);
        for policy in self.policies.values_mut() {
            for binding in &mut policy.bindings {
                for member in &mut binding.members {
                    if *member == principal {
                        member.clone_from(&tombstone);
                    }
                }
            }
        }
        Some(group)
    }
}

/// How a member belongs to a group found by a transitive search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relation {
    /// The member has a membership of its own in the group.
    pub direct: bool,
    /// The member is in the group through one or more nested groups.
    pub indirect: bool,
}

impl Relation {
    /// The `relationType` value Cloud Identity reports.
    pub fn as_str(self) -> &'static str {
        match (self.direct, self.indirect) {
            (true, true) => "DIRECT_AND_INDIRECT",
            (true, false) => "DIRECT",
            _ => "INDIRECT",
        }
    }
}

/// Whether a string looks like an email address the APIs would accept.
pub fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && email
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@.-_+'".contains(c))
}
