//! How fast the policy core decides: access checks over long access lists, join decisions,
//! approval tallies and validation of a whole group. Run with `cargo bench --bench policy`.

use criterion::{Criterion, criterion_group, criterion_main};
use jit_groups_controller::policy::{
    AccessEntrySpec, ConstraintsSpec, Decision, EnvironmentFields, EnvironmentPolicy, ExpirySpec,
    GroupFields, GroupPolicy, IamPrivilegeSpec, JoinConstraintsSpec, Subject,
};
use std::hint::black_box;

fn entries(n: usize) -> Vec<AccessEntrySpec> {
    (0..n)
        .map(|i| AccessEntrySpec {
            principal: match i % 3 {
                0 => format!("user:user{i}@example.com"),
                1 => format!("group:team{i}@example.com"),
                _ => format!("domain:sub{i}.example.com"),
            },
            allow: Some(if i % 2 == 0 {
                "JOIN".into()
            } else {
                "APPROVE_OTHERS".into()
            }),
            deny: None,
        })
        .collect()
}

fn constraints() -> ConstraintsSpec {
    ConstraintsSpec {
        join: Some(JoinConstraintsSpec {
            expiry: Some(ExpirySpec {
                min: "PT1H".into(),
                max: "P1D".into(),
                default: None,
            }),
        }),
        approve: None,
    }
}

fn environment() -> EnvironmentPolicy {
    EnvironmentPolicy::parse(EnvironmentFields {
        name: "prod",
        service_account: "jit-prod@ops.iam.gserviceaccount.com",
        customer_id: "C01abcde2",
        groups_domain: "example.com",
        allowed_resources: &["projects/shared-prod".into(), "projects/team-*".into()],
        access: &[],
        constraints: &constraints(),
        approval_timeout: None,
    })
    .expect("valid environment")
}

fn privileges(n: usize) -> Vec<IamPrivilegeSpec> {
    (0..n)
        .map(|i| IamPrivilegeSpec {
            resource: format!("projects/team-{}", i % 10 + 100),
            role: format!("roles/custom.role{i}"),
            ..IamPrivilegeSpec::default()
        })
        .collect()
}

fn group(
    env: &EnvironmentPolicy,
    access: &[AccessEntrySpec],
    iam: &[IamPrivilegeSpec],
) -> GroupPolicy {
    GroupPolicy::parse(
        env,
        GroupFields {
            name: "readers",
            system: "data",
            access,
            constraints: &ConstraintsSpec::default(),
            privileges: iam,
        },
    )
    .expect("valid group")
}

fn bench(c: &mut Criterion) {
    let env = environment();
    let subject = Subject::user("someone@example.com").with_groups(["team1@example.com"]);
    for n in [10, 100, 1000] {
        let access = entries(n);
        let policy = group(&env, &access, &[]);
        c.bench_function(&format!("evaluate_join/{n}_entries"), |b| {
            b.iter(|| policy.evaluate_join(black_box(&subject), Some("PT2H")))
        });
    }

    let access = entries(100);
    let policy = group(&env, &access, &[]);
    let approvers: Vec<Subject> = (0..10)
        .map(|i| Subject::user(&format!("user{}@example.com", i * 6 + 1)))
        .collect();
    let decisions: Vec<Decision<'_>> = approvers
        .iter()
        .map(|a| Decision {
            approver: Some(a),
            approve: true,
        })
        .collect();
    c.bench_function("tally/10_decisions_100_entries", |b| {
        b.iter(|| policy.tally(black_box("requester@example.com"), black_box(&decisions)))
    });

    let iam = privileges(50);
    c.bench_function("validate_group/100_entries_50_privileges", |b| {
        b.iter(|| group(&env, black_box(&access), black_box(&iam)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
