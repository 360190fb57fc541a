//! IAM policies of projects, folders and organizations, through the Resource Manager API.

use backon::Retryable;
use google_cloudresourcemanager3::api::{
    Binding, Expr, GetIamPolicyRequest, GetPolicyOptions, Policy, SetIamPolicyRequest,
};

use crate::google::EnvironmentClient;
use crate::google::bindings::{PolicyBinding, reconcile_member_bindings, required_policy_version};
use crate::google::error::{ApiCall, GoogleError};
use crate::google::transport::attempt;
use crate::google::types::{BindingChange, Condition, DesiredBinding};
use crate::policy::{ResourceKind, ResourceName};

/// The policy version that can hold conditional bindings; always requested when reading.
const CONDITIONAL_POLICY_VERSION: i32 = 3;

fn binding_from_api(binding: Binding) -> PolicyBinding {
    let (condition, condition_location) = match binding.condition {
        Some(expr) => (
            Some(Condition {
                expression: expr.expression.unwrap_or_default(),
                title: expr.title.unwrap_or_default(),
                description: expr.description,
            }),
            expr.location,
        ),
        None => (None, None),
    };
    PolicyBinding {
        role: binding.role.unwrap_or_default(),
        condition,
        condition_location,
        members: binding.members.unwrap_or_default(),
    }
}

fn binding_to_api(binding: PolicyBinding) -> Binding {
    let non_empty = |text: String| (!text.is_empty()).then_some(text);
    Binding {
        role: Some(binding.role),
        members: Some(binding.members),
        condition: binding.condition.map(|condition| Expr {
            expression: non_empty(condition.expression),
            title: non_empty(condition.title),
            description: condition.description,
            location: binding.condition_location,
        }),
    }
}

fn get_method(resource: &ResourceName) -> &'static str {
    match resource.kind() {
        ResourceKind::Project => "projects.getIamPolicy",
        ResourceKind::Folder => "folders.getIamPolicy",
        ResourceKind::Organization => "organizations.getIamPolicy",
    }
}

fn set_method(resource: &ResourceName) -> &'static str {
    match resource.kind() {
        ResourceKind::Project => "projects.setIamPolicy",
        ResourceKind::Folder => "folders.setIamPolicy",
        ResourceKind::Organization => "organizations.setIamPolicy",
    }
}

impl EnvironmentClient {
    /// Makes `member`'s bindings in the IAM policy of `resource` exactly `desired`, leaving
    /// every other principal's bindings as they are; see `bindings.rs` for the rules.
    ///
    /// The policy is read (version 3), changed, and written back with the etag it was read
    /// with; nothing is written when nothing changes. When another writer got in between
    /// (HTTP 409), the whole read-modify-write is repeated with backoff, up to
    /// `RetryPolicy::conflict_attempts` rounds. If a write succeeded but its answer was lost,
    /// the retried round finds nothing left to do and reports no change.
    pub async fn reconcile_bindings(
        &self,
        resource: &ResourceName,
        member: &str,
        desired: &[DesiredBinding],
    ) -> Result<BindingChange, GoogleError> {
        let retry = &self.inner.settings.retry;
        (|| self.read_modify_write(resource, member, desired))
            .retry(retry.backoff(retry.conflict_attempts))
            .when(|error| matches!(error, GoogleError::Conflict { .. }))
            .notify(|error, delay| {
                tracing::info!(
                    resource = %resource,
                    member,
                    error = %error,
                    delay_ms = delay.as_millis(),
                    "IAM policy changed concurrently; reading it again"
                );
            })
            .await
    }

    /// Removes `member` from every binding in the IAM policy of `resource`.
    pub async fn remove_all_bindings(
        &self,
        resource: &ResourceName,
        member: &str,
    ) -> Result<BindingChange, GoogleError> {
        self.reconcile_bindings(resource, member, &[]).await
    }

    async fn read_modify_write(
        &self,
        resource: &ResourceName,
        member: &str,
        desired: &[DesiredBinding],
    ) -> Result<BindingChange, GoogleError> {
        let mut policy = self.get_iam_policy(resource).await?;
        let mut bindings: Vec<PolicyBinding> = policy
            .bindings
            .take()
            .unwrap_or_default()
            .into_iter()
            .map(binding_from_api)
            .collect();

        let change = reconcile_member_bindings(&mut bindings, member, desired);
        if change.is_empty() {
            tracing::debug!(resource = %resource, member, "IAM bindings already as desired");
            return Ok(change);
        }

        policy.version = required_policy_version(&bindings, policy.version);
        policy.bindings = Some(bindings.into_iter().map(binding_to_api).collect());
        self.set_iam_policy(resource, policy).await?;
        tracing::info!(
            resource = %resource,
            member,
            added = ?change.added,
            removed = ?change.removed,
            "updated IAM bindings"
        );
        Ok(change)
    }

    async fn get_iam_policy(&self, resource: &ResourceName) -> Result<Policy, GoogleError> {
        let name = resource.to_string();
        let call = ApiCall::new(get_method(resource), name.as_str());
        let request = GetIamPolicyRequest {
            options: Some(GetPolicyOptions {
                requested_policy_version: Some(CONDITIONAL_POLICY_VERSION),
            }),
        };
        let manager = &self.inner.resource_manager;
        self.run(&call, || async {
            match resource.kind() {
                ResourceKind::Project => attempt!(call, |capture| manager
                    .projects()
                    .get_iam_policy(request.clone(), &name)
                    .delegate(capture)
                    .doit()),
                ResourceKind::Folder => attempt!(call, |capture| manager
                    .folders()
                    .get_iam_policy(request.clone(), &name)
                    .delegate(capture)
                    .doit()),
                ResourceKind::Organization => attempt!(call, |capture| manager
                    .organizations()
                    .get_iam_policy(request.clone(), &name)
                    .delegate(capture)
                    .doit()),
            }
        })
        .await
    }

    async fn set_iam_policy(
        &self,
        resource: &ResourceName,
        policy: Policy,
    ) -> Result<(), GoogleError> {
        let name = resource.to_string();
        let call = ApiCall::new(set_method(resource), name.as_str());
        // Without an update mask only bindings and etag are written; audit configs stay.
        let request = SetIamPolicyRequest {
            policy: Some(policy),
            update_mask: None,
        };
        let manager = &self.inner.resource_manager;
        self.run(&call, || async {
            match resource.kind() {
                ResourceKind::Project => attempt!(call, |capture| manager
                    .projects()
                    .set_iam_policy(request.clone(), &name)
                    .delegate(capture)
                    .doit()),
                ResourceKind::Folder => attempt!(call, |capture| manager
                    .folders()
                    .set_iam_policy(request.clone(), &name)
                    .delegate(capture)
                    .doit()),
                ResourceKind::Organization => attempt!(call, |capture| manager
                    .organizations()
                    .set_iam_policy(request.clone(), &name)
                    .delegate(capture)
                    .doit()),
            }
        })
        .await
        .map(|_policy| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_survive_the_round_trip_through_the_api_types() {
        let api = Binding {
            role: Some("roles/viewer".into()),
            members: Some(vec!["user:a@example.com".into()]),
            condition: Some(Expr {
                expression: Some("true".into()),
                title: Some("always".into()),
                description: None,
                location: Some("here".into()),
            }),
        };

        let back = binding_to_api(binding_from_api(api.clone()));

        assert_eq!(back.role, api.role);
        assert_eq!(back.members, api.members);
        let (back, api) = (back.condition.expect("kept"), api.condition.expect("set"));
        assert_eq!(
            (back.expression, back.title, back.description, back.location),
            (api.expression, api.title, api.description, api.location)
        );
    }
}
