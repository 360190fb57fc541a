//! Approvals: whose decision counts on a request, and when enough of them have been made.
//!
//! A decision counts when its author holds APPROVE_OTHERS on the group and is not the
//! requester, or is the requester holding JOIN and APPROVE_SELF. Decisions that do not count
//! are kept with the reason. The first counted Deny ends the request; otherwise it is
//! approved once `minApprovals` distinct authors approved it.

use std::collections::BTreeSet;

use super::GroupPolicy;
use super::access::{AccessCheck, Permissions, Subject};

/// One decision as the policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Who decided, with their groups resolved; `None` when nobody was recorded.
    pub approver: Option<&'a Subject>,
    /// Whether the decision approves (true) or denies (false).
    pub approve: bool,
}

/// Whether one decision counts, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    /// Whether the decision counts towards the outcome.
    pub counted: bool,
    /// Why it counts or not.
    pub reason: String,
}

/// Where the decisions leave a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tally {
    /// Enough distinct approvers approved; their emails, in order.
    Approved {
        /// The approvers whose approvals counted.
        approvers: Vec<String>,
    },
    /// A counted Deny ended the request.
    Denied {
        /// Who denied.
        by: String,
    },
    /// More approvals are needed.
    Waiting {
        /// Distinct counted approvals so far.
        approvals: usize,
        /// Approvals needed.
        needed: u32,
    },
}

impl GroupPolicy {
    /// Judges whether `approver`'s decision on a request of `requester` counts.
    pub fn judge(&self, requester: &str, approver: &Subject) -> Judgement {
        let own = approver.email.eq_ignore_ascii_case(requester);
        if own {
            let needed = Permissions::JOIN.union(Permissions::APPROVE_SELF);
            return match self.access.check(approver, needed) {
                AccessCheck::Granted { principal } => Judgement {
                    counted: true,
                    reason: format!("the requester holds APPROVE_SELF through {principal}"),
                },
                _ => Judgement {
                    counted: false,
                    reason: format!(
                        "{} is the requester and does not hold APPROVE_SELF; APPROVE_OTHERS \
                         never approves one's own request",
                        approver.email
                    ),
                },
            };
        }
        match self.access.check(approver, Permissions::APPROVE_OTHERS) {
            AccessCheck::Granted { principal } => Judgement {
                counted: true,
                reason: format!("holds APPROVE_OTHERS through {principal}"),
            },
            AccessCheck::DeniedBy { principal } => Judgement {
                counted: false,
                reason: format!(
                    "APPROVE_OTHERS is denied to {} by {principal}",
                    approver.email
                ),
            },
            AccessCheck::NotGranted => Judgement {
                counted: false,
                reason: format!("{} does not hold APPROVE_OTHERS", approver.email),
            },
        }
    }

    /// Judges every decision, in order, and says where they leave the request.
    pub fn tally(&self, requester: &str, decisions: &[Decision<'_>]) -> (Vec<Judgement>, Tally) {
        let mut judgements = Vec::with_capacity(decisions.len());
        let mut approvers: Vec<String> = Vec::new();
        let mut seen = BTreeSet::new();
        let mut outcome = None;
        for decision in decisions {
            let judgement = match decision.approver {
                Some(approver) => self.judge(requester, approver),
                None => Judgement {
                    counted: false,
                    reason: "no approver is recorded; the admission webhook records who decided"
                        .to_owned(),
                },
            };
            if judgement.counted && outcome.is_none() {
                let email = decision
                    .approver
                    .map(|a| a.email.clone())
                    .unwrap_or_default();
                if !decision.approve {
                    outcome = Some(Tally::Denied { by: email });
                } else if seen.insert(email.clone()) {
                    approvers.push(email);
                    if approvers.len() >= self.min_approvals as usize {
                        outcome = Some(Tally::Approved {
                            approvers: approvers.clone(),
                        });
                    }
                }
            }
            judgements.push(judgement);
        }
        let outcome = outcome.unwrap_or(Tally::Waiting {
            approvals: approvers.len(),
            needed: self.min_approvals,
        });
        (judgements, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::{allow, environment, expiry, group_with};

    fn policy(min_approvals: u32) -> GroupPolicy {
        let env = environment(&[], &expiry("PT1H", "P1D"));
        let mut group = group_with(
            &env,
            &[
                allow("user:alice@example.com", "JOIN"),
                allow("user:bob@example.com", "APPROVE_OTHERS"),
                allow("group:leads@example.com", "APPROVE_OTHERS"),
                allow(
                    "user:erin@example.com",
                    "JOIN, APPROVE_SELF, APPROVE_OTHERS",
                ),
            ],
        );
        group.min_approvals = min_approvals;
        group
    }

    fn approve(subject: &Subject) -> Decision<'_> {
        Decision {
            approver: Some(subject),
            approve: true,
        }
    }

    fn deny(subject: &Subject) -> Decision<'_> {
        Decision {
            approver: Some(subject),
            approve: false,
        }
    }

    #[test]
    fn an_approver_with_approve_others_approves_someone_elses_request() {
        let bob = Subject::user("bob@example.com");
        let (judgements, tally) = policy(1).tally("alice@example.com", &[approve(&bob)]);
        assert_eq!(
            tally,
            Tally::Approved {
                approvers: vec!["bob@example.com".into()]
            }
        );
        assert_eq!(
            judgements[0].reason,
            "holds APPROVE_OTHERS through user:bob@example.com"
        );
    }

    #[test]
    fn a_member_of_an_approving_group_counts() {
        let lead = Subject::user("frank@example.com").with_groups(["leads@example.com"]);
        let (_, tally) = policy(1).tally("alice@example.com", &[approve(&lead)]);
        assert!(matches!(tally, Tally::Approved { .. }));
    }

    #[test]
    fn a_decision_of_someone_without_rights_is_kept_but_not_counted() {
        let carol = Subject::user("carol@example.com");
        let (judgements, tally) = policy(1).tally("alice@example.com", &[approve(&carol)]);
        assert_eq!(
            tally,
            Tally::Waiting {
                approvals: 0,
                needed: 1
            }
        );
        assert!(!judgements[0].counted);
        assert_eq!(
            judgements[0].reason,
            "carol@example.com does not hold APPROVE_OTHERS"
        );
    }

    #[test]
    fn approving_ones_own_request_needs_approve_self_not_approve_others() {
        let alice = Subject::user("alice@example.com");
        let (judgements, tally) = policy(1).tally("alice@example.com", &[approve(&alice)]);
        assert_eq!(
            tally,
            Tally::Waiting {
                approvals: 0,
                needed: 1
            }
        );
        assert!(
            judgements[0]
                .reason
                .contains("is the requester and does not hold APPROVE_SELF")
        );

        let erin = Subject::user("erin@example.com");
        let (judgements, tally) = policy(1).tally("erin@example.com", &[approve(&erin)]);
        assert!(matches!(tally, Tally::Approved { .. }), "{judgements:?}");
    }

    #[test]
    fn two_required_approvals_need_two_distinct_approvers() {
        let bob = Subject::user("bob@example.com");
        let erin = Subject::user("erin@example.com");
        let (_, tally) = policy(2).tally("alice@example.com", &[approve(&bob), approve(&bob)]);
        assert_eq!(
            tally,
            Tally::Waiting {
                approvals: 1,
                needed: 2
            }
        );
        let (_, tally) = policy(2).tally("alice@example.com", &[approve(&bob), approve(&erin)]);
        assert_eq!(
            tally,
            Tally::Approved {
                approvers: vec!["bob@example.com".into(), "erin@example.com".into()]
            }
        );
    }

    #[test]
    fn one_counted_deny_ends_the_request_and_an_uncounted_one_does_not() {
        let bob = Subject::user("bob@example.com");
        let carol = Subject::user("carol@example.com");
        let (_, tally) = policy(2).tally("alice@example.com", &[deny(&carol)]);
        assert_eq!(
            tally,
            Tally::Waiting {
                approvals: 0,
                needed: 2
            }
        );
        let (_, tally) = policy(2).tally("alice@example.com", &[approve(&bob), deny(&bob)]);
        assert_eq!(
            tally,
            Tally::Denied {
                by: "bob@example.com".into()
            }
        );
    }

    #[test]
    fn a_decision_without_a_recorded_approver_never_counts() {
        let (judgements, tally) = policy(1).tally(
            "alice@example.com",
            &[Decision {
                approver: None,
                approve: true,
            }],
        );
        assert_eq!(
            tally,
            Tally::Waiting {
                approvals: 0,
                needed: 1
            }
        );
        assert!(judgements[0].reason.contains("no approver is recorded"));
    }
}
