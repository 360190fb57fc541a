//! The JSON documents of the control API under `/emulator/v1/`, shared by the server and by
//! [`ControlClient`](crate::ControlClient).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::state::policy::Policy;

/// What `POST /emulator/v1/seed` adds to the emulated world. Every field may be left out;
/// seeding adds to what is there, and `POST /emulator/v1/reset` empties the world.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Seed {
    /// Cloud Identity customers and the domains their groups may use.
    pub customers: Vec<CustomerSeed>,
    /// User accounts, by email address.
    pub users: Vec<String>,
    /// Projects, folders and organizations, each with its parent.
    pub resources: Vec<ResourceSeed>,
    /// Service accounts and their permissions.
    pub service_accounts: Vec<ServiceAccountSeed>,
    /// Static access tokens: token to the email address of the identity it stands for.
    pub tokens: BTreeMap<String, String>,
    /// Groups that exist from the start, with their members.
    pub groups: Vec<GroupSeed>,
    /// IAM policies by resource name; the resources must be seeded too.
    pub policies: BTreeMap<String, Policy>,
    /// Settings that shape the answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<SettingsSeed>,
}

impl Seed {
    /// Reads a seed from its JSON form.
    pub fn from_json(value: serde_json::Value) -> Result<Seed, serde_json::Error> {
        serde_json::from_value(value)
    }
}

/// A Cloud Identity customer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CustomerSeed {
    /// The customer id, such as `C01` (a `customers/` prefix is accepted and dropped).
    pub id: String,
    /// The domains group addresses of this customer may use.
    pub domains: Vec<String>,
}

/// A project, folder or organization.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceSeed {
    /// `projects/ID`, `folders/ID` or `organizations/ID`.
    pub name: String,
    /// The parent resource's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// A service account and what it may do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceAccountSeed {
    /// The account's email address.
    pub email: String,
    /// Identities that may call `generateAccessToken` for this account.
    pub impersonators: Vec<String>,
    /// Whether the account may use the Cloud Identity groups API.
    pub can_manage_groups: bool,
    /// Resources on which the account may get and set IAM policies, with all their
    /// descendants.
    pub can_set_iam_policy_on: Vec<String>,
}

/// A group that exists from the start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GroupSeed {
    /// The group's email address.
    pub email: String,
    /// The customer id; when left out, the customer owning the address's domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// The display name; the address when left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Label keys; the discussion-forum label when left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// The direct members: email addresses of users, service accounts or other groups.
    pub members: Vec<MemberSeed>,
}

/// A member of a seeded group: an email address, or an object with roles and an expiry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MemberSeed {
    /// A plain `MEMBER` without expiry.
    Email(String),
    /// A member with explicit roles and expiry.
    Detailed {
        /// The member's email address.
        email: String,
        /// Roles besides `MEMBER` (`OWNER`, `MANAGER`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        roles: Vec<String>,
        /// When the membership ends.
        #[serde(
            default,
            rename = "expireTime",
            skip_serializing_if = "Option::is_none"
        )]
        expire_time: Option<DateTime<Utc>>,
    },
}

/// Settings that shape the emulator's answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SettingsSeed {
    /// The most items any list or search returns in one page, so that paging is exercised
    /// with few items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size_cap: Option<usize>,
}

/// The whole emulated world, as `GET /emulator/v1/state` returns it. Expired memberships and
/// tokens are gone from it, as they are from the APIs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateSnapshot {
    /// The emulator clock's current time.
    pub now: DateTime<Utc>,
    /// Customers.
    pub customers: Vec<CustomerSeed>,
    /// User accounts.
    pub users: Vec<String>,
    /// Resources.
    pub resources: Vec<ResourceSeed>,
    /// Service accounts.
    pub service_accounts: Vec<ServiceAccountSeed>,
    /// Accepted access tokens, seeded or issued.
    pub tokens: BTreeMap<String, TokenSnapshot>,
    /// Groups, ordered by resource name.
    pub groups: Vec<GroupSnapshot>,
    /// IAM policies that have been seeded or written, by resource name.
    pub policies: BTreeMap<String, Policy>,
}

impl StateSnapshot {
    /// The group with the given email address.
    pub fn group(&self, email: &str) -> Option<&GroupSnapshot> {
        let email = email.to_ascii_lowercase();
        self.groups.iter().find(|group| group.email == email)
    }
}

/// An accepted access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenSnapshot {
    /// The identity the token stands for.
    pub identity: String,
    /// When it stops being accepted, for issued tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<DateTime<Utc>>,
}

/// A group and its direct memberships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSnapshot {
    /// `groups/{id}`.
    pub name: String,
    /// The group's email address.
    pub email: String,
    /// The customer id.
    pub customer: String,
    /// The display name.
    pub display_name: String,
    /// The description.
    pub description: String,
    /// The labels.
    pub labels: BTreeMap<String, String>,
    /// When the group was created.
    pub create_time: DateTime<Utc>,
    /// The direct memberships, ordered by name.
    pub memberships: Vec<MembershipSnapshot>,
}

impl GroupSnapshot {
    /// The membership of the given member.
    pub fn member(&self, email: &str) -> Option<&MembershipSnapshot> {
        let email = email.to_ascii_lowercase();
        self.memberships.iter().find(|m| m.member == email)
    }

    /// The members' email addresses.
    pub fn member_emails(&self) -> Vec<&str> {
        self.memberships.iter().map(|m| m.member.as_str()).collect()
    }
}

/// A direct membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipSnapshot {
    /// `groups/{group}/memberships/{membership}`.
    pub name: String,
    /// The member's email address.
    pub member: String,
    /// `USER`, `GROUP` or `SERVICE_ACCOUNT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The role names.
    pub roles: Vec<String>,
    /// When the membership expires, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<DateTime<Utc>>,
}

/// A fault rule for `POST /emulator/v1/faults`. Each request to a matching method draws from
/// the rule's own random generator, seeded with `seed`, so the same sequence of requests
/// meets the same faults on every run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// A method id such as `cloudidentity.groups.memberships.create`, or `*` for all.
    pub method: String,
    /// The HTTP status to answer with: 400, 401, 403, 404, 409 (`ABORTED`, on
    /// `setIamPolicy` with Google's concurrent-change message), 429 (`RESOURCE_EXHAUSTED`),
    /// 500, 503 or 504. Left out, the rule only adds latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The chance, from 0 to 1, that a matching request is hit; 1 when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// The most requests the rule hits; unlimited when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// A delay before a hit request is answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// The `Retry-After` header of 429 answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// The seed of the rule's random generator; 0 when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Only requests carrying this bearer token are hit, so that tests sharing one emulator
    /// do not disturb each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// When true, a hit request is carried out first and only its answer is delayed or
    /// replaced by the error: the change is made but the caller does not learn it, as when
    /// an answer is lost. When false (the default), the fault comes before anything happens.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_effect: bool,
}

impl FaultRule {
    /// A rule that answers every call of `method` (an id or `*`) with `status`.
    pub fn always(method: &str, status: u16) -> FaultRule {
        FaultRule {
            method: method.to_owned(),
            status: Some(status),
            rate: None,
            count: None,
            latency_ms: None,
            retry_after_seconds: None,
            seed: None,
            token: None,
            after_effect: false,
        }
    }

    /// The same rule, hitting a request with the given chance.
    pub fn with_rate(mut self, rate: f64) -> FaultRule {
        self.rate = Some(rate);
        self
    }

    /// The same rule, hitting at most `count` requests.
    pub fn with_count(mut self, count: u64) -> FaultRule {
        self.count = Some(count);
        self
    }

    /// The same rule, applied after the request was carried out: the change is made, and the
    /// answer is delayed or replaced by the error.
    pub fn after_effect(mut self) -> FaultRule {
        self.after_effect = true;
        self
    }

    /// The same rule, with its random generator seeded with `seed`.
    pub fn with_seed(mut self, seed: u64) -> FaultRule {
        self.seed = Some(seed);
        self
    }

    /// The same rule, with a `Retry-After` header on 429 answers.
    pub fn with_retry_after(mut self, seconds: u64) -> FaultRule {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// The same rule, delaying hit requests.
    pub fn with_latency_ms(mut self, millis: u64) -> FaultRule {
        self.latency_ms = Some(millis);
        self
    }

    /// The same rule, restricted to requests carrying `token`.
    pub fn for_token(mut self, token: &str) -> FaultRule {
        self.token = Some(token.to_owned());
        self
    }
}

/// Per-method request counters, as `GET /emulator/v1/requests` returns them. Requests that a
/// fault rule answered count in both maps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RequestCounts {
    /// Requests received, by method id.
    pub requests: BTreeMap<String, u64>,
    /// Requests answered by an injected fault, by method id.
    pub faulted: BTreeMap<String, u64>,
}

impl RequestCounts {
    /// How many requests of a method (by id) were received.
    pub fn calls(&self, method: &str) -> u64 {
        self.requests.get(method).copied().unwrap_or_default()
    }

    /// How many requests of a method (by id) were answered by an injected fault.
    pub fn faults(&self, method: &str) -> u64 {
        self.faulted.get(method).copied().unwrap_or_default()
    }

    /// How many requests were received in all.
    pub fn total(&self) -> u64 {
        self.requests.values().sum()
    }
}

/// The body of `POST /emulator/v1/clock`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockAdvance {
    /// Seconds to move the clock forward.
    pub advance_seconds: i64,
}

/// The emulator clock, as `GET` and `POST /emulator/v1/clock` return it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockState {
    /// The emulator's current time.
    pub now: DateTime<Utc>,
}
