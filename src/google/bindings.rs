//! How one principal's bindings in an IAM policy are made exactly the desired ones.
//!
//! This is the pure half of `EnvironmentClient::reconcile_bindings`: it works on plain structs,
//! so every rule about which bindings change is tested here without any API.

use crate::google::types::{BindingChange, Condition, DesiredBinding};

/// One binding of an IAM policy, as the diff sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PolicyBinding {
    /// Role name.
    pub role: String,
    /// Condition of the binding, if any.
    pub condition: Option<Condition>,
    /// The `location` field of the condition, which the diff ignores and passes through.
    pub condition_location: Option<String>,
    /// Principals of the binding, such as `group:x@example.com`.
    pub members: Vec<String>,
}

impl PolicyBinding {
    fn holds(&self, desired: &DesiredBinding) -> bool {
        self.role == desired.role
            && same_condition(self.condition.as_ref(), desired.condition.as_ref())
    }

    fn key(&self) -> DesiredBinding {
        DesiredBinding {
            role: self.role.clone(),
            condition: self.condition.clone(),
        }
    }

    fn has_member(&self, member: &str) -> bool {
        self.members.iter().any(|m| same_member(m, member))
    }
}

/// IAM compares principals without regard to the case of the email address.
fn same_member(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Conditions are equal when all their fields are; a missing description equals an empty one.
fn same_condition(a: Option<&Condition>, b: Option<&Condition>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.expression == b.expression
                && a.title == b.title
                && a.description.as_deref().unwrap_or_default()
                    == b.description.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// Makes `member`'s bindings in `bindings` exactly `desired`, and says what changed.
///
/// The member is added to an existing binding of the same role and condition, or a new binding
/// is appended; it is removed from every binding not desired, and a binding that this leaves
/// without members is dropped. Bindings are otherwise untouched: other principals keep their
/// places, and bindings that were empty before stay as they were. Duplicates in `desired`
/// count once.
pub(crate) fn reconcile_member_bindings(
    bindings: &mut Vec<PolicyBinding>,
    member: &str,
    desired: &[DesiredBinding],
) -> BindingChange {
    let mut wanted: Vec<&DesiredBinding> = Vec::with_capacity(desired.len());
    for binding in desired {
        let seen = wanted.iter().any(|w| {
            w.role == binding.role
                && same_condition(w.condition.as_ref(), binding.condition.as_ref())
        });
        if !seen {
            wanted.push(binding);
        }
    }

    let mut change = BindingChange::default();
    let mut satisfied = vec![false; wanted.len()];
    let mut emptied = vec![false; bindings.len()];

    for (index, binding) in bindings.iter_mut().enumerate() {
        if !binding.has_member(member) {
            continue;
        }
        match wanted.iter().position(|w| binding.holds(w)) {
            Some(wanted_index) if !satisfied[wanted_index] => satisfied[wanted_index] = true,
            matched => {
                // Either not desired at all, or a second binding with the same role and
                // condition; the latter is cleaned up without being reported as a removal.
                binding.members.retain(|m| !same_member(m, member));
                let key = binding.key();
                if matched.is_none() && !change.removed.contains(&key) {
                    change.removed.push(key);
                }
                emptied[index] = binding.members.is_empty();
            }
        }
    }

    let mut index = 0;
    bindings.retain(|_| {
        let keep = !emptied[index];
        index += 1;
        keep
    });

    for (wanted_index, binding) in wanted.into_iter().enumerate() {
        if satisfied[wanted_index] {
            continue;
        }
        match bindings.iter_mut().find(|existing| existing.holds(binding)) {
            Some(existing) => existing.members.push(member.to_owned()),
            None => bindings.push(PolicyBinding {
                role: binding.role.clone(),
                condition: binding.condition.clone(),
                condition_location: None,
                members: vec![member.to_owned()],
            }),
        }
        change.added.push(binding.clone());
    }

    change
}

/// The policy version to write: conditional bindings need version 3; otherwise the version
/// that was read is kept.
pub(crate) fn required_policy_version(
    bindings: &[PolicyBinding],
    read: Option<i32>,
) -> Option<i32> {
    if bindings.iter().any(|b| b.condition.is_some()) {
        Some(3)
    } else {
        read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMBER: &str = "group:jit.env.sys.grp@example.com";

    fn binding(role: &str, members: &[&str]) -> PolicyBinding {
        PolicyBinding {
            role: role.into(),
            condition: None,
            condition_location: None,
            members: members.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    fn conditional(role: &str, condition: &Condition, members: &[&str]) -> PolicyBinding {
        PolicyBinding {
            condition: Some(condition.clone()),
            ..binding(role, members)
        }
    }

    fn business_hours() -> Condition {
        Condition {
            expression: "request.time.getHours('Europe/Berlin') < 18".into(),
            title: "business hours".into(),
            description: None,
        }
    }

    fn before_2030() -> Condition {
        Condition {
            expression: "request.time < timestamp('2030-01-01T00:00:00Z')".into(),
            title: "before 2030".into(),
            description: Some("expires with the decade".into()),
        }
    }

    #[test]
    fn member_joins_an_existing_binding_of_the_same_role() {
        let mut bindings = vec![binding("roles/viewer", &["user:alice@example.com"])];

        let change = reconcile_member_bindings(
            &mut bindings,
            MEMBER,
            &[DesiredBinding::unconditional("roles/viewer")],
        );

        assert_eq!(
            bindings,
            vec![binding("roles/viewer", &["user:alice@example.com", MEMBER])]
        );
        assert_eq!(
            change.added,
            vec![DesiredBinding::unconditional("roles/viewer")]
        );
        assert!(change.removed.is_empty());
    }

    #[test]
    fn a_binding_is_created_for_a_role_nobody_holds() {
        let mut bindings = vec![binding("roles/viewer", &["user:alice@example.com"])];

        let change = reconcile_member_bindings(
            &mut bindings,
            MEMBER,
            &[DesiredBinding::unconditional("roles/editor")],
        );

        assert_eq!(
            bindings,
            vec![
                binding("roles/viewer", &["user:alice@example.com"]),
                binding("roles/editor", &[MEMBER]),
            ]
        );
        assert_eq!(
            change.added,
            vec![DesiredBinding::unconditional("roles/editor")]
        );
    }

    #[test]
    fn member_leaves_bindings_that_are_no_longer_desired() {
        let mut bindings = vec![
            binding("roles/viewer", &["user:alice@example.com", MEMBER]),
            binding("roles/editor", &[MEMBER, "user:bob@example.com"]),
        ];

        let change = reconcile_member_bindings(
            &mut bindings,
            MEMBER,
            &[DesiredBinding::unconditional("roles/viewer")],
        );

        assert_eq!(
            bindings,
            vec![
                binding("roles/viewer", &["user:alice@example.com", MEMBER]),
                binding("roles/editor", &["user:bob@example.com"]),
            ]
        );
        assert!(change.added.is_empty());
        assert_eq!(
            change.removed,
            vec![DesiredBinding::unconditional("roles/editor")]
        );
    }

    #[test]
    fn a_binding_left_without_members_is_dropped() {
        let mut bindings = vec![
            binding("roles/viewer", &["user:alice@example.com"]),
            binding("roles/editor", &[MEMBER]),
        ];

        let change = reconcile_member_bindings(&mut bindings, MEMBER, &[]);

        assert_eq!(
            bindings,
            vec![binding("roles/viewer", &["user:alice@example.com"])]
        );
        assert_eq!(
            change.removed,
            vec![DesiredBinding::unconditional("roles/editor")]
        );
    }

    #[test]
    fn bindings_that_were_empty_before_are_left_alone() {
        let mut bindings = vec![
            binding("roles/viewer", &[]),
            binding("roles/editor", &[MEMBER]),
        ];

        reconcile_member_bindings(&mut bindings, MEMBER, &[]);

        assert_eq!(bindings, vec![binding("roles/viewer", &[])]);
    }

    #[test]
    fn conditions_distinguish_bindings_of_the_same_role() {
        let mut bindings = vec![
            binding("roles/viewer", &[MEMBER, "user:alice@example.com"]),
            conditional("roles/viewer", &before_2030(), &["user:bob@example.com"]),
        ];
        let desired = [
            DesiredBinding::conditional("roles/viewer", before_2030()),
            DesiredBinding::conditional("roles/viewer", business_hours()),
        ];

        let change = reconcile_member_bindings(&mut bindings, MEMBER, &desired);

        assert_eq!(
            bindings,
            vec![
                binding("roles/viewer", &["user:alice@example.com"]),
                conditional(
                    "roles/viewer",
                    &before_2030(),
                    &["user:bob@example.com", MEMBER]
                ),
                conditional("roles/viewer", &business_hours(), &[MEMBER]),
            ]
        );
        assert_eq!(change.added, desired.to_vec());
        assert_eq!(
            change.removed,
            vec![DesiredBinding::unconditional("roles/viewer")]
        );
    }

    #[test]
    fn a_condition_with_another_title_is_another_binding() {
        let retitled = Condition {
            title: "until 2030".into(),
            ..before_2030()
        };
        let mut bindings = vec![conditional("roles/viewer", &before_2030(), &[MEMBER])];

        let change = reconcile_member_bindings(
            &mut bindings,
            MEMBER,
            &[DesiredBinding::conditional(
                "roles/viewer",
                retitled.clone(),
            )],
        );

        assert_eq!(
            bindings,
            vec![conditional("roles/viewer", &retitled, &[MEMBER])]
        );
        assert_eq!(change.added.len(), 1);
        assert_eq!(change.removed.len(), 1);
    }

    #[test]
    fn a_missing_description_equals_an_empty_one() {
        let empty_description = Condition {
            description: Some(String::new()),
            ..business_hours()
        };
        let mut bindings = vec![conditional("roles/viewer", &empty_description, &[MEMBER])];

        let change = reconcile_member_bindings(
            &mut bindings,
            MEMBER,
            &[DesiredBinding::conditional(
                "roles/viewer",
                business_hours(),
            )],
        );

        assert!(change.is_empty());
        assert_eq!(
            bindings,
            vec![conditional("roles/viewer", &empty_description, &[MEMBER])]
        );
    }

    #[test]
    fn other_principals_bindings_are_never_touched() {
        let others = vec![
            binding("roles/owner", &["user:owner@example.com"]),
            conditional(
                "roles/viewer",
                &business_hours(),
                &["group:other@example.com"],
            ),
            binding(
                "roles/editor",
                &["deleted:group:jit.env.sys.grp@example.com?uid=1"],
            ),
        ];
        let mut bindings = others.clone();
        bindings.push(binding("roles/browser", &[MEMBER]));

        reconcile_member_bindings(
            &mut bindings,
            MEMBER,
            &[DesiredBinding::unconditional("roles/storage.admin")],
        );

        assert_eq!(bindings[..3], others[..]);
        assert_eq!(bindings[3], binding("roles/storage.admin", &[MEMBER]));
        assert_eq!(bindings.len(), 4);
    }

    #[test]
    fn a_second_run_changes_nothing() {
        let mut bindings = vec![
            binding("roles/viewer", &["user:alice@example.com", MEMBER]),
            binding("roles/editor", &[MEMBER]),
        ];
        let desired = [
            DesiredBinding::unconditional("roles/browser"),
            DesiredBinding::conditional("roles/viewer", business_hours()),
        ];

        let first = reconcile_member_bindings(&mut bindings, MEMBER, &desired);
        let after_first = bindings.clone();
        let second = reconcile_member_bindings(&mut bindings, MEMBER, &desired);

        assert!(!first.is_empty());
        assert!(second.is_empty());
        assert_eq!(bindings, after_first);
    }

    #[test]
    fn the_member_is_matched_regardless_of_case() {
        let mut bindings = vec![binding(
            "roles/viewer",
            &["group:JIT.Env.Sys.Grp@Example.com"],
        )];

        let change = reconcile_member_bindings(
            &mut bindings,
            MEMBER,
            &[DesiredBinding::unconditional("roles/viewer")],
        );

        assert!(change.is_empty());
        assert_eq!(bindings.len(), 1);
    }

    #[test]
    fn duplicate_desired_bindings_count_once() {
        let mut bindings = Vec::new();
        let desired = [
            DesiredBinding::unconditional("roles/viewer"),
            DesiredBinding::unconditional("roles/viewer"),
        ];

        let change = reconcile_member_bindings(&mut bindings, MEMBER, &desired);

        assert_eq!(bindings, vec![binding("roles/viewer", &[MEMBER])]);
        assert_eq!(change.added.len(), 1);
    }

    #[test]
    fn a_member_held_twice_in_one_role_keeps_one_binding_without_reporting_a_removal() {
        let mut bindings = vec![
            binding("roles/viewer", &[MEMBER]),
            binding("roles/viewer", &["user:alice@example.com", MEMBER]),
        ];

        let change = reconcile_member_bindings(
            &mut bindings,
            MEMBER,
            &[DesiredBinding::unconditional("roles/viewer")],
        );

        assert!(change.is_empty());
        assert_eq!(
            bindings,
            vec![
                binding("roles/viewer", &[MEMBER]),
                binding("roles/viewer", &["user:alice@example.com"]),
            ]
        );
    }

    #[test]
    fn the_condition_location_of_other_bindings_passes_through() {
        let mut located = conditional("roles/viewer", &business_hours(), &["user:a@example.com"]);
        located.condition_location = Some("policy.yaml:3".into());
        let mut bindings = vec![located.clone()];

        reconcile_member_bindings(
            &mut bindings,
            MEMBER,
            &[DesiredBinding::unconditional("roles/viewer")],
        );

        assert_eq!(bindings[0], located);
    }

    #[test]
    fn conditional_bindings_require_policy_version_three() {
        let plain = vec![binding("roles/viewer", &[MEMBER])];
        let with_condition = vec![conditional("roles/viewer", &business_hours(), &[MEMBER])];

        assert_eq!(required_policy_version(&plain, Some(1)), Some(1));
        assert_eq!(required_policy_version(&plain, None), None);
        assert_eq!(required_policy_version(&with_condition, Some(1)), Some(3));
        assert_eq!(required_policy_version(&with_condition, None), Some(3));
    }
}
