//! The policy core: names, access lists, constraints, privileges and the decision whether a
//! person may join a group. Pure Rust, no Kubernetes or Google types, so every rule can be
//! tested directly.

pub mod access;
pub mod approval;
pub mod expiry;
pub mod names;
pub mod privileges;
pub mod validation;

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use access::{AccessCheck, AccessEntrySpec, AccessList, Permissions, Principal, Subject};
pub use approval::{Decision, Judgement, Tally};
pub use expiry::{ExpiryConstraint, ExpirySpec, ExpiryViolation};
pub use names::GroupId;
pub use privileges::{
    AllowedResources, BindingsByResource, Condition, IamConditionSpec, IamPrivilegeSpec,
    ResourceKind, ResourceName, RoleBinding,
};
pub use validation::{FieldProblem, Problems, ValidationErrors};

/// Constraints as written in a policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConstraintsSpec {
    /// Constraints that apply when someone joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<JoinConstraintsSpec>,
    /// Constraints that apply when someone approves another person's request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve: Option<ApproveConstraintsSpec>,
}

/// Constraints that apply to approvals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApproveConstraintsSpec {
    /// How many distinct approvers must approve a request that the requester cannot approve
    /// themselves; at least 1, default 1. A group without it uses its environment's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_approvals: Option<u32>,
}

/// Constraints that apply when someone joins.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinConstraintsSpec {
    /// How long a membership may last. A group without one uses its environment's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<ExpirySpec>,
}

impl ConstraintsSpec {
    fn expiry(&self) -> Option<&ExpirySpec> {
        self.join.as_ref().and_then(|j| j.expiry.as_ref())
    }

    fn min_approvals(&self) -> Option<u32> {
        self.approve.as_ref().and_then(|a| a.min_approvals)
    }
}

/// How long a request may wait for approval when the environment sets nothing.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(3600);

const MIN_APPROVALS_PATH: &str = "spec.constraints.approve.minApprovals";

fn check_min_approvals(value: Option<u32>, problems: &mut Problems) -> Option<u32> {
    match value {
        Some(0) => {
            problems.invalid(MIN_APPROVALS_PATH, "0", "must be at least 1");
            None
        }
        other => other,
    }
}

/// The fields of an environment's policy, borrowed from wherever they are kept.
#[derive(Clone, Copy, Debug)]
pub struct EnvironmentFields<'a> {
    /// The environment's name.
    pub name: &'a str,
    /// Google service account that provisions for the environment.
    pub service_account: &'a str,
    /// Cloud Identity customer id.
    pub customer_id: &'a str,
    /// Domain of the groups' emails.
    pub groups_domain: &'a str,
    /// Resources the groups may grant roles on.
    pub allowed_resources: &'a [String],
    /// Access list every group inherits.
    pub access: &'a [AccessEntrySpec],
    /// Constraints every group inherits.
    pub constraints: &'a ConstraintsSpec,
    /// How long a request may wait for approval, as an ISO-8601 duration.
    pub approval_timeout: Option<&'a str>,
}

/// A validated environment policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvironmentPolicy {
    /// Name, lower case.
    pub name: String,
    /// Google service account that provisions for the environment.
    pub service_account: String,
    /// Cloud Identity customer id, e.g. `C01abcde2`.
    pub customer_id: String,
    /// Domain of the groups' emails, lower case.
    pub groups_domain: String,
    /// Resources the groups may grant roles on.
    pub allowed_resources: AllowedResources,
    /// Access list every group inherits.
    pub access: AccessList,
    /// Expiry constraint for groups that set none.
    pub expiry: Option<ExpiryConstraint>,
    /// Approvals needed for groups that set none.
    pub min_approvals: Option<u32>,
    /// How long a request may wait for approval before it times out.
    pub approval_timeout: Duration,
}

fn check_customer_id(value: &str) -> Result<(), String> {
    let valid = value.len() >= 2
        && value.starts_with('C')
        && value.chars().all(|c| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(
            "must be a Cloud Identity customer id such as C01abcde2 (see the Admin console, \
             Account settings)"
                .to_owned(),
        )
    }
}

impl EnvironmentPolicy {
    /// Validates an environment, reporting every problem.
    pub fn parse(fields: EnvironmentFields<'_>) -> Result<Self, ValidationErrors> {
        let mut problems = Problems::default();
        problems.parse(
            "metadata.name",
            fields.name,
            names::check_name(fields.name, names::MAX_ENVIRONMENT_NAME),
        );
        problems.parse(
            "spec.serviceAccount",
            fields.service_account,
            names::check_email(fields.service_account),
        );
        problems.parse(
            "spec.customerId",
            fields.customer_id,
            check_customer_id(fields.customer_id),
        );
        problems.parse(
            "spec.groupsDomain",
            fields.groups_domain,
            names::check_domain(fields.groups_domain),
        );
        let allowed_resources = AllowedResources::parse(
            "spec.allowedResources",
            fields.allowed_resources,
            &mut problems,
        );
        let access = AccessList::parse("spec.access", fields.access)
            .map_err(|e| problems.extend(e))
            .ok();
        let expiry = fields.constraints.expiry().and_then(|spec| {
            ExpiryConstraint::parse("spec.constraints.join.expiry", spec)
                .map_err(|e| problems.extend(e))
                .ok()
        });
        let min_approvals = check_min_approvals(fields.constraints.min_approvals(), &mut problems);
        let approval_timeout = match fields.approval_timeout {
            None => Some(DEFAULT_APPROVAL_TIMEOUT),
            Some(text) => problems
                .parse(
                    "spec.approvalTimeout",
                    text,
                    expiry::PolicyDuration::parse(text),
                )
                .map(|d| d.duration()),
        };
        problems.finish(|| Self {
            name: fields.name.to_ascii_lowercase(),
            service_account: fields.service_account.to_owned(),
            customer_id: fields.customer_id.to_owned(),
            groups_domain: fields.groups_domain.to_ascii_lowercase(),
            allowed_resources,
            access: access.unwrap_or_default(),
            expiry,
            min_approvals,
            approval_timeout: approval_timeout.unwrap_or(DEFAULT_APPROVAL_TIMEOUT),
        })
    }
}

/// The fields of a group's policy, borrowed from wherever they are kept.
#[derive(Clone, Copy, Debug)]
pub struct GroupFields<'a> {
    /// The group's name.
    pub name: &'a str,
    /// The system the group belongs to.
    pub system: &'a str,
    /// The group's own access list.
    pub access: &'a [AccessEntrySpec],
    /// The group's own constraints.
    pub constraints: &'a ConstraintsSpec,
    /// The group's IAM privileges.
    pub privileges: &'a [IamPrivilegeSpec],
}

/// A validated group policy, with its environment's entries and constraints folded in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPolicy {
    /// The group's names.
    pub id: GroupId,
    /// The group's Cloud Identity email.
    pub email: String,
    /// The environment's access list followed by the group's.
    pub access: AccessList,
    /// The group's expiry constraint, or the environment's.
    pub expiry: ExpiryConstraint,
    /// Roles the group holds, by resource.
    pub bindings: BindingsByResource,
    /// Distinct approvals a request needs when the requester cannot approve it.
    pub min_approvals: u32,
}

impl GroupPolicy {
    /// Validates a group against its environment, reporting every problem.
    pub fn parse(
        env: &EnvironmentPolicy,
        fields: GroupFields<'_>,
    ) -> Result<Self, ValidationErrors> {
        let mut problems = Problems::default();
        problems.parse(
            "metadata.name",
            fields.name,
            names::check_name(fields.name, names::MAX_GROUP_NAME),
        );
        problems.parse(
            "spec.system",
            fields.system,
            names::check_name(fields.system, names::MAX_SYSTEM_NAME),
        );
        let own_access = AccessList::parse("spec.access", fields.access)
            .map_err(|e| problems.extend(e))
            .ok();

        let expiry_path = "spec.constraints.join.expiry";
        let own_expiry = fields.constraints.expiry().and_then(|spec| {
            ExpiryConstraint::parse(expiry_path, spec)
                .map_err(|e| problems.extend(e))
                .ok()
        });
        if let (Some(own), Some(outer)) = (&own_expiry, &env.expiry) {
            own.check_within(expiry_path, outer, &mut problems);
        }
        let expiry = own_expiry.or_else(|| env.expiry.clone());
        if expiry.is_none() && fields.constraints.expiry().is_none() {
            problems.required(
                expiry_path,
                "set min and max here or in the environment's spec.constraints.join.expiry",
            );
        }

        let bindings = privileges::parse_privileges(
            "spec.privileges.iam",
            fields.privileges,
            &env.allowed_resources,
            &mut problems,
        );
        let min_approvals = check_min_approvals(fields.constraints.min_approvals(), &mut problems)
            .or(env.min_approvals)
            .unwrap_or(1);
        let id = GroupId::new(&env.name, fields.system, fields.name);
        match (own_access, expiry) {
            (Some(own_access), Some(expiry)) => problems.finish(|| Self {
                email: id.email(&env.groups_domain),
                id,
                access: env.access.followed_by(&own_access),
                expiry,
                bindings,
                min_approvals,
            }),
            _ => Err(problems.into_errors()),
        }
    }

    /// Decides what happens to a request of `subject` to join for `requested` (an ISO-8601
    /// duration, or none for the default).
    pub fn evaluate_join(&self, subject: &Subject, requested: Option<&str>) -> JoinDecision {
        let join = self.access.check(subject, Permissions::JOIN);
        if !join.is_granted() {
            return JoinDecision::Deny(JoinDenial::NotPermitted {
                subject: subject.email.clone(),
                group: self.id.to_string(),
                check: join,
            });
        }
        let duration = match self.expiry.resolve(requested) {
            Ok(duration) => duration,
            Err(violation) => return JoinDecision::Deny(JoinDenial::Duration(violation)),
        };
        let self_approval = self
            .access
            .check(subject, Permissions::JOIN.union(Permissions::APPROVE_SELF));
        if self_approval.is_granted() {
            JoinDecision::Approve { duration }
        } else {
            JoinDecision::AwaitApproval {
                duration,
                approvers: self.access.principals_allowed(Permissions::APPROVE_OTHERS),
            }
        }
    }
}

/// What happens to a request to join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinDecision {
    /// The requester may join and approve themselves: grant at once for `duration`.
    Approve {
        /// How long the membership lasts.
        duration: Duration,
    },
    /// The requester may join, but someone holding APPROVE_OTHERS must approve.
    AwaitApproval {
        /// How long the membership lasts once approved.
        duration: Duration,
        /// Principals whose entries grant APPROVE_OTHERS.
        approvers: Vec<Principal>,
    },
    /// The request cannot be granted.
    Deny(JoinDenial),
}

/// Why a request to join is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinDenial {
    /// The requester does not hold JOIN.
    #[error("{subject} may not join {group}: {}", explain(check))]
    NotPermitted {
        /// The requester.
        subject: String,
        /// The group, as `environment.system.group`.
        group: String,
        /// The outcome of the access check.
        check: AccessCheck,
    },
    /// The requested duration breaks the expiry constraint.
    #[error(transparent)]
    Duration(ExpiryViolation),
}

impl JoinDenial {
    /// A short CamelCase reason for Kubernetes status and events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotPermitted { .. } => "NotPermitted",
            Self::Duration(ExpiryViolation::OutOfRange { .. }) => "DurationOutOfRange",
            Self::Duration(ExpiryViolation::Missing { .. }) => "DurationRequired",
            Self::Duration(ExpiryViolation::Unparsable { .. }) => "InvalidDuration",
        }
    }
}

fn explain(check: &AccessCheck) -> String {
    match check {
        AccessCheck::Granted { principal } => format!("granted through {principal}"),
        AccessCheck::DeniedBy { principal } => format!("JOIN is denied to {principal}"),
        AccessCheck::NotGranted => "no access entry allows JOIN".to_owned(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn allow(principal: &str, permissions: &str) -> AccessEntrySpec {
        AccessEntrySpec {
            principal: principal.into(),
            allow: Some(permissions.into()),
            deny: None,
        }
    }

    pub(crate) fn expiry(min: &str, max: &str) -> ConstraintsSpec {
        ConstraintsSpec {
            join: Some(JoinConstraintsSpec {
                expiry: Some(ExpirySpec {
                    min: min.into(),
                    max: max.into(),
                    default: None,
                }),
            }),
            approve: None,
        }
    }

    pub(crate) fn environment(
        access: &[AccessEntrySpec],
        constraints: &ConstraintsSpec,
    ) -> EnvironmentPolicy {
        EnvironmentPolicy::parse(EnvironmentFields {
            name: "prod",
            service_account: "jit-prod@ops.iam.gserviceaccount.com",
            customer_id: "C01abcde2",
            groups_domain: "example.com",
            allowed_resources: &["projects/shared-prod".into(), "folders/100".into()],
            access,
            constraints,
            approval_timeout: None,
        })
        .unwrap()
    }

    pub(crate) fn group_with(env: &EnvironmentPolicy, access: &[AccessEntrySpec]) -> GroupPolicy {
        group(env, access)
    }

    fn group(env: &EnvironmentPolicy, access: &[AccessEntrySpec]) -> GroupPolicy {
        GroupPolicy::parse(
            env,
            GroupFields {
                name: "db-readers",
                system: "data",
                access,
                constraints: &ConstraintsSpec::default(),
                privileges: &[IamPrivilegeSpec {
                    resource: "projects/shared-prod".into(),
                    role: "roles/cloudsql.viewer".into(),
                    ..Default::default()
                }],
            },
        )
        .unwrap()
    }

    #[test]
    fn a_group_inherits_the_environment_access_list_and_expiry() {
        let env = environment(
            &[allow("domain:example.com", "VIEW")],
            &expiry("PT1H", "P1D"),
        );
        let group = group(
            &env,
            &[allow("user:alice@example.com", "JOIN, APPROVE_SELF")],
        );
        assert_eq!(group.email, "jit.prod.data.db-readers@example.com");
        assert_eq!(group.access.entries().len(), 2);
        assert_eq!(group.expiry, env.expiry.clone().unwrap());
    }

    #[test]
    fn a_self_approver_is_approved_for_the_requested_duration() {
        let env = environment(&[], &expiry("PT1H", "P1D"));
        let group = group(
            &env,
            &[allow("user:alice@example.com", "JOIN, APPROVE_SELF")],
        );
        let decision = group.evaluate_join(&Subject::user("alice@example.com"), Some("PT2H"));
        assert_eq!(
            decision,
            JoinDecision::Approve {
                duration: Duration::from_secs(7200)
            }
        );
    }

    #[test]
    fn a_joiner_without_self_approval_awaits_the_listed_approvers() {
        let env = environment(&[], &expiry("PT1H", "P1D"));
        let group = group(
            &env,
            &[
                allow("user:alice@example.com", "JOIN"),
                allow("user:bob@example.com", "APPROVE_OTHERS"),
            ],
        );
        let decision = group.evaluate_join(&Subject::user("alice@example.com"), Some("PT1H"));
        assert_eq!(
            decision,
            JoinDecision::AwaitApproval {
                duration: Duration::from_secs(3600),
                approvers: vec![Principal::User("bob@example.com".into())],
            }
        );
    }

    #[test]
    fn a_requester_without_join_is_denied_with_the_reason() {
        let env = environment(&[], &expiry("PT1H", "P1D"));
        let group = group(&env, &[allow("user:alice@example.com", "JOIN")]);
        let JoinDecision::Deny(denial) =
            group.evaluate_join(&Subject::user("carol@example.com"), Some("PT1H"))
        else {
            panic!("carol must be denied");
        };
        assert_eq!(denial.reason(), "NotPermitted");
        assert_eq!(
            denial.to_string(),
            "carol@example.com may not join prod.data.db-readers: no access entry allows JOIN"
        );
    }

    #[test]
    fn a_duration_outside_the_constraint_is_denied_naming_the_bounds() {
        let env = environment(&[], &expiry("PT1H", "P1D"));
        let group = group(&env, &[allow("user:alice@example.com", "ALL")]);
        let JoinDecision::Deny(denial) =
            group.evaluate_join(&Subject::user("alice@example.com"), Some("P3D"))
        else {
            panic!("P3D must be denied");
        };
        assert_eq!(denial.reason(), "DurationOutOfRange");
        assert!(denial.to_string().contains("[PT1H, P1D]"), "{denial}");
    }

    #[test]
    fn an_environment_deny_overrides_a_group_allow() {
        let env = EnvironmentPolicy::parse(EnvironmentFields {
            name: "prod",
            service_account: "jit-prod@ops.iam.gserviceaccount.com",
            customer_id: "C01abcde2",
            groups_domain: "example.com",
            allowed_resources: &["projects/shared-prod".into()],
            access: &[AccessEntrySpec {
                principal: "user:mallory@example.com".into(),
                allow: None,
                deny: Some("ALL".into()),
            }],
            constraints: &expiry("PT1H", "P1D"),
            approval_timeout: None,
        })
        .unwrap();
        let group = group(&env, &[allow("domain:example.com", "JOIN, APPROVE_SELF")]);
        let decision = group.evaluate_join(&Subject::user("mallory@example.com"), Some("PT1H"));
        assert!(matches!(
            decision,
            JoinDecision::Deny(JoinDenial::NotPermitted { .. })
        ));
    }

    #[test]
    fn an_invalid_environment_reports_every_field() {
        let err = EnvironmentPolicy::parse(EnvironmentFields {
            name: "production-environment",
            service_account: "not-an-email",
            customer_id: "12345",
            groups_domain: "example",
            allowed_resources: &["projects/x".into()],
            access: &[allow("user:alice", "JOIN")],
            constraints: &expiry("P2D", "P1D"),
            approval_timeout: Some("soon"),
        })
        .unwrap_err();
        let fields: Vec<_> = err.problems().iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.name",
                "spec.serviceAccount",
                "spec.customerId",
                "spec.groupsDomain",
                "spec.allowedResources[0]",
                "spec.access[0].principal",
                "spec.constraints.join.expiry.min",
                "spec.approvalTimeout",
            ]
        );
    }

    #[test]
    fn a_group_without_any_expiry_constraint_is_invalid() {
        let env = environment(&[], &ConstraintsSpec::default());
        let err = GroupPolicy::parse(
            &env,
            GroupFields {
                name: "readers",
                system: "data",
                access: &[],
                constraints: &ConstraintsSpec::default(),
                privileges: &[],
            },
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.constraints.join.expiry: Required value"),
            "{err}"
        );
    }

    #[test]
    fn an_invalid_group_reports_names_privileges_and_constraints_together() {
        let env = environment(&[], &expiry("PT1H", "P1D"));
        let err = GroupPolicy::parse(
            &env,
            GroupFields {
                name: "a-very-long-group-name-indeed",
                system: "data.warehouse",
                access: &[allow("user:alice@example.com", "JOIN")],
                constraints: &expiry("PT30M", "P1D"),
                privileges: &[IamPrivilegeSpec {
                    resource: "projects/elsewhere".into(),
                    role: "roles/owner".into(),
                    ..Default::default()
                }],
            },
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("metadata.name: Invalid value: \"a-very-long-group-name-indeed\": is 29 characters long; at most 24 are allowed"), "{text}");
        assert!(
            text.contains("spec.system: Invalid value: \"data.warehouse\""),
            "{text}"
        );
        assert!(
            text.contains("spec.constraints.join.expiry.min: Forbidden"),
            "{text}"
        );
        assert!(
            text.contains("spec.privileges.iam[0].resource: Forbidden: \"projects/elsewhere\""),
            "{text}"
        );
    }

    #[test]
    fn min_approvals_default_to_one_inherit_from_the_environment_and_refuse_zero() {
        let approve = |n: u32| ConstraintsSpec {
            join: expiry("PT1H", "P1D").join,
            approve: Some(ApproveConstraintsSpec {
                min_approvals: Some(n),
            }),
        };
        let plain = environment(&[], &expiry("PT1H", "P1D"));
        assert_eq!(group(&plain, &[]).min_approvals, 1);
        let strict = environment(&[], &approve(2));
        assert_eq!(group(&strict, &[]).min_approvals, 2);
        let err = GroupPolicy::parse(
            &plain,
            GroupFields {
                name: "readers",
                system: "data",
                access: &[],
                constraints: &approve(0),
                privileges: &[],
            },
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.constraints.approve.minApprovals: Invalid value: \"0\": must be at least 1"
        );
    }

    #[test]
    fn the_approval_timeout_defaults_to_an_hour() {
        let env = environment(&[], &expiry("PT1H", "P1D"));
        assert_eq!(env.approval_timeout, DEFAULT_APPROVAL_TIMEOUT);
    }
}
