//! Validation of JitEnvironments and JitGroups at admission, with the policy core and the
//! same messages as the controller's `Ready` condition, so that `kubectl apply` of a bad
//! policy fails at once, naming the field.
//!
//! A group is checked against the JitEnvironment of its namespace. Without exactly one
//! valid environment there, the group is checked on its own (names, access list, expiry
//! syntax, resource names) and admitted with a warning; the controller checks it in full
//! once the environment is there. Objects whose spec does not change (the controller
//! adding or removing a finalizer, or anything on an object being deleted) are always
//! admitted, so that a policy made invalid by a later change of its environment can still
//! be cleaned up.

use std::time::Duration;

use kube::{Api, Client, ResourceExt};

use super::Error;
use crate::api::{JitEnvironment, JitEnvironmentSpec, JitGroup};
use crate::policy::validation::ProblemKind;
use crate::policy::{EnvironmentPolicy, GroupPolicy};

/// How long a lookup of a namespace's policies may take within one review.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// At most this many groups are named in the warnings about an environment change.
const MAX_GROUP_WARNINGS: usize = 5;

/// What becomes of a policy object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Admit it, telling the caller about the `warnings`.
    Admit {
        /// Things the caller should know, shown by kubectl as `Warning: ...`.
        warnings: Vec<String>,
    },
    /// Refuse it with every problem, naming the fields.
    Refuse(String),
}

impl Verdict {
    fn admit() -> Self {
        Self::Admit {
            warnings: Vec::new(),
        }
    }
}

async fn list<K>(client: &Client, namespace: &str, kind: &'static str) -> Result<Vec<K>, Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let listed = tokio::time::timeout(LOOKUP_TIMEOUT, api.list(&Default::default()))
        .await
        .map_err(|_| Error::LookupTimeout {
            kind,
            namespace: namespace.to_owned(),
            seconds: LOOKUP_TIMEOUT.as_secs(),
        })?
        .map_err(|source| Error::Lookup {
            kind,
            namespace: namespace.to_owned(),
            source,
        })?;
    let mut items = listed.items;
    items.retain(|o| o.meta().deletion_timestamp.is_none());
    Ok(items)
}

/// Reviews a JitEnvironment being created (`old` is `None`) or updated in `namespace`.
pub async fn review_environment(
    client: &Client,
    namespace: &str,
    old: Option<&JitEnvironment>,
    new: &JitEnvironment,
) -> Result<Verdict, Error> {
    if unchanged(old.map(|o| &o.spec), &new.spec, new) {
        return Ok(Verdict::admit());
    }
    let name = new.name_any();
    let policy = match EnvironmentPolicy::parse(new.spec.fields(&name)) {
        Ok(policy) => policy,
        Err(errors) => return Ok(Verdict::Refuse(errors.to_string())),
    };

    // Two environments created at the same instant can both pass this check; the
    // controller then reports the namespace's environment as ambiguous.
    let others: Vec<String> = list::<JitEnvironment>(client, namespace, "JitEnvironments")
        .await?
        .iter()
        .map(ResourceExt::name_any)
        .filter(|other| *other != name)
        .collect();
    if !others.is_empty() {
        return Ok(Verdict::Refuse(format!(
            "metadata.name: Forbidden: namespace {namespace} already has JitEnvironment {}; a \
             namespace holds exactly one environment",
            others.join(", ")
        )));
    }

    let groups = list::<JitGroup>(client, namespace, "JitGroups").await?;
    let mut warnings: Vec<String> = groups
        .iter()
        .filter_map(|group| {
            let group_name = group.name_any();
            GroupPolicy::parse(&policy, group.spec.fields(&group_name))
                .err()
                .map(|errors| {
                    format!("JitGroup {group_name} is invalid under this environment: {errors}")
                })
        })
        .collect();
    if warnings.len() > MAX_GROUP_WARNINGS {
        let more = warnings.len() - MAX_GROUP_WARNINGS;
        warnings.truncate(MAX_GROUP_WARNINGS);
        warnings.push(format!(
            "{more} more JitGroup(s) are invalid under this environment"
        ));
    }
    Ok(Verdict::Admit { warnings })
}

/// Reviews a JitGroup being created (`old` is `None`) or updated in `namespace`.
pub async fn review_group(
    client: &Client,
    namespace: &str,
    old: Option<&JitGroup>,
    new: &JitGroup,
) -> Result<Verdict, Error> {
    if unchanged(old.map(|o| &o.spec), &new.spec, new) {
        return Ok(Verdict::admit());
    }
    let name = new.name_any();
    let mut environments = list::<JitEnvironment>(client, namespace, "JitEnvironments").await?;

    let why_alone = match environments.len() {
        0 => format!("namespace {namespace} has no JitEnvironment yet"),
        1 => {
            let env = environments.remove(0);
            let env_name = env.name_any();
            match EnvironmentPolicy::parse(env.spec.fields(&env_name)) {
                Ok(env) => {
                    return Ok(match GroupPolicy::parse(&env, new.spec.fields(&name)) {
                        Ok(_) => Verdict::admit(),
                        Err(errors) => Verdict::Refuse(errors.to_string()),
                    });
                }
                Err(_) => format!("JitEnvironment {env_name} of namespace {namespace} is invalid"),
            }
        }
        n => format!("namespace {namespace} has {n} JitEnvironments where one is allowed"),
    };

    match check_alone(new, &name) {
        Err(message) => Ok(Verdict::Refuse(message)),
        Ok(()) => Ok(Verdict::Admit {
            warnings: vec![format!(
                "{why_alone}, so the group was checked on its own; its privileges and expiry \
                 are checked against the environment once there is exactly one valid \
                 JitEnvironment in the namespace"
            )],
        }),
    }
}

/// Whether an update leaves the spec as it was, or touches an object being deleted.
fn unchanged<S: PartialEq, K: ResourceExt>(old: Option<&S>, new: &S, object: &K) -> bool {
    object.meta().deletion_timestamp.is_some() || old.is_some_and(|old| old == new)
}

/// Checks what can be checked of a group without its environment: the group is parsed
/// against an environment that allows every resource and has no constraints, and the one
/// problem that only such an environment causes (no expiry anywhere) is left out.
fn check_alone(group: &JitGroup, name: &str) -> Result<(), String> {
    let spec = JitEnvironmentSpec {
        service_account: "stand-in@example.com".to_owned(),
        customer_id: "C00000000".to_owned(),
        groups_domain: "example.com".to_owned(),
        allowed_resources: vec![
            "projects/*".to_owned(),
            "folders/*".to_owned(),
            "organizations/*".to_owned(),
        ],
        ..JitEnvironmentSpec::default()
    };
    let stand_in = EnvironmentPolicy::parse(spec.fields("env"));
    let Ok(stand_in) = stand_in else {
        return Ok(());
    };
    let Err(errors) = GroupPolicy::parse(&stand_in, group.spec.fields(name)) else {
        return Ok(());
    };
    let problems: Vec<String> = errors
        .problems()
        .iter()
        .filter(|p| !(p.kind == ProblemKind::Required && p.field == "spec.constraints.join.expiry"))
        .map(ToString::to_string)
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{JitGroupSpec, Privileges};
    use crate::policy::IamPrivilegeSpec;

    fn group(system: &str, resource: &str) -> JitGroup {
        JitGroup::new(
            "readers",
            JitGroupSpec {
                system: system.into(),
                privileges: Privileges {
                    iam: vec![IamPrivilegeSpec {
                        resource: resource.into(),
                        role: "roles/viewer".into(),
                        ..Default::default()
                    }],
                },
                ..Default::default()
            },
        )
    }

    #[test]
    fn a_group_on_its_own_needs_no_expiry_nor_allowed_resources() {
        assert_eq!(
            check_alone(&group("data", "projects/anything"), "readers"),
            Ok(())
        );
    }

    #[test]
    fn a_group_on_its_own_still_has_its_names_and_resources_checked() {
        let refused = check_alone(&group("data.warehouse", "buckets/x"), "readers").unwrap_err();
        assert!(
            refused.starts_with("spec.system: Invalid value: \"data.warehouse\""),
            "{refused}"
        );
        assert!(
            refused.contains("spec.privileges.iam[0].resource: Invalid value: \"buckets/x\""),
            "{refused}"
        );
    }
}
