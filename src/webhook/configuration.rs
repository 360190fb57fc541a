//! The webhook configurations that make the API server call the webhooks: which resources
//! and operations each webhook sees, and that a failed call refuses the request. The Helm
//! chart writes the same webhooks in YAML; the integration tests install these.

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhook,
    ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ObjectMeta;

use super::{MUTATE_JOIN_REQUESTS, VALIDATE_ENVIRONMENTS, VALIDATE_GROUPS, VALIDATE_JOIN_REQUESTS};
use crate::api::GROUP;

/// How long the API server waits for an answer before the failure policy applies.
pub const TIMEOUT_SECONDS: i32 = 10;

fn rule(resource: &str) -> RuleWithOperations {
    RuleWithOperations {
        api_groups: Some(vec![GROUP.to_owned()]),
        api_versions: Some(vec!["v1alpha1".to_owned()]),
        operations: Some(vec!["CREATE".to_owned(), "UPDATE".to_owned()]),
        // The main resource only: status updates go to the `status` subresource and are
        // not reviewed.
        resources: Some(vec![resource.to_owned()]),
        scope: Some("Namespaced".to_owned()),
    }
}

/// The configurations named `mutating` and `validating`, reaching the webhook through
/// `client_config` (given the path of each webhook) and, when `namespaces` is given, only
/// for namespaces that it selects.
pub fn configurations(
    mutating: &str,
    validating: &str,
    client_config: impl Fn(&str) -> WebhookClientConfig,
    namespaces: Option<LabelSelector>,
) -> (MutatingWebhookConfiguration, ValidatingWebhookConfiguration) {
    let meta = |name: &str| ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    };
    let mutating = MutatingWebhookConfiguration {
        metadata: meta(mutating),
        webhooks: Some(vec![MutatingWebhook {
            name: "mutate.joinrequests.jitgroups.dev".to_owned(),
            client_config: client_config(MUTATE_JOIN_REQUESTS),
            rules: Some(vec![rule("joinrequests")]),
            namespace_selector: namespaces.clone(),
            failure_policy: Some("Fail".to_owned()),
            side_effects: "None".to_owned(),
            admission_review_versions: vec!["v1".to_owned()],
            timeout_seconds: Some(TIMEOUT_SECONDS),
            reinvocation_policy: Some("IfNeeded".to_owned()),
            ..MutatingWebhook::default()
        }]),
    };
    let validating_webhook = |name: &str, path: &str, resource: &str| ValidatingWebhook {
        name: name.to_owned(),
        client_config: client_config(path),
        rules: Some(vec![rule(resource)]),
        namespace_selector: namespaces.clone(),
        failure_policy: Some("Fail".to_owned()),
        side_effects: "None".to_owned(),
        admission_review_versions: vec!["v1".to_owned()],
        timeout_seconds: Some(TIMEOUT_SECONDS),
        ..ValidatingWebhook::default()
    };
    let validating = ValidatingWebhookConfiguration {
        metadata: meta(validating),
        webhooks: Some(vec![
            validating_webhook(
                "validate.joinrequests.jitgroups.dev",
                VALIDATE_JOIN_REQUESTS,
                "joinrequests",
            ),
            validating_webhook(
                "validate.jitenvironments.jitgroups.dev",
                VALIDATE_ENVIRONMENTS,
                "jitenvironments",
            ),
            validating_webhook(
                "validate.jitgroups.jitgroups.dev",
                VALIDATE_GROUPS,
                "jitgroups",
            ),
        ]),
    };
    (mutating, validating)
}
