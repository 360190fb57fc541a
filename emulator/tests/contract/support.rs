//! What the contract tests share: a seeded world, hubs of the real client crates pointed at
//! the emulator, and helpers to read Google errors.

use gcp_emulator::{Emulator, Seed};
use google_cloudidentity1::CloudIdentity;
use google_cloudidentity1::api::{EntityKey, ExpiryDetail, Group, Membership, MembershipRole};
use google_cloudidentity1::hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use google_cloudidentity1::hyper_util::client::legacy::Client;
use google_cloudidentity1::hyper_util::client::legacy::connect::HttpConnector;
use google_cloudidentity1::hyper_util::rt::TokioExecutor;
use google_cloudresourcemanager3::CloudResourceManager;
use google_iamcredentials1::IAMCredentials;
use serde_json::json;

pub type Connector = HttpsConnector<HttpConnector>;

pub const CUSTOMER: &str = "C01";
pub const DOMAIN: &str = "example.com";
pub const SECURITY: &str = "cloudidentity.googleapis.com/groups.security";
pub const FORUM: &str = "cloudidentity.googleapis.com/groups.discussion_forum";

/// The controller's own identity; it may only impersonate the provisioner.
pub const CONTROLLER: &str = "controller@ops.iam.gserviceaccount.com";
pub const CONTROLLER_TOKEN: &str = "controller-token";
/// The environment's service account: manages groups and the IAM policies under folders/prod.
pub const PROVISIONER: &str = "jit-prod@ops.iam.gserviceaccount.com";
pub const PROVISIONER_TOKEN: &str = "provisioner-token";
/// A user with no rights at all.
pub const OUTSIDER_TOKEN: &str = "outsider-token";

/// A world with one customer, a small resource tree, the controller, the environment's
/// service account, and a pre-existing group `admins@` holding `ops@`, which holds `alice@`.
pub fn seed() -> Seed {
    Seed::from_json(json!({
        "customers": [{ "id": CUSTOMER, "domains": [DOMAIN] }],
        "users": ["alice@example.com", "bob@example.com", "carol@example.com"],
        "resources": [
            { "name": "organizations/100" },
            { "name": "folders/prod", "parent": "organizations/100" },
            { "name": "projects/prod-app", "parent": "folders/prod" },
            { "name": "projects/other", "parent": "organizations/100" }
        ],
        "serviceAccounts": [
            { "email": CONTROLLER },
            {
                "email": PROVISIONER,
                "impersonators": [CONTROLLER],
                "canManageGroups": true,
                "canSetIamPolicyOn": ["folders/prod"]
            },
            {
                "email": "org-admin@ops.iam.gserviceaccount.com",
                "canSetIamPolicyOn": ["organizations/100"]
            }
        ],
        "tokens": {
            CONTROLLER_TOKEN: CONTROLLER,
            PROVISIONER_TOKEN: PROVISIONER,
            OUTSIDER_TOKEN: "bob@example.com",
            "org-admin-token": "org-admin@ops.iam.gserviceaccount.com"
        },
        "groups": [
            { "email": "admins@example.com", "members": ["ops@example.com"] },
            { "email": "ops@example.com", "members": ["alice@example.com"] }
        ]
    }))
    .expect("the seed is valid")
}

/// An emulator seeded with [`seed`].
pub fn emulator() -> Emulator {
    Emulator::start_with_seed(seed()).expect("the emulator starts")
}

fn http_client() -> Client<Connector, google_cloudidentity1::common::Body> {
    let connector = HttpsConnectorBuilder::new()
        .with_native_roots()
        .expect("native root certificates load")
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// A Cloud Identity hub calling the emulator with a static bearer token.
pub fn cloud_identity(emulator: &Emulator, token: &str) -> CloudIdentity<Connector> {
    let mut hub = CloudIdentity::new(http_client(), token.to_owned());
    hub.base_url(emulator.base_url().to_owned());
    hub.root_url(emulator.base_url().to_owned());
    hub
}

/// A Resource Manager hub calling the emulator with a static bearer token.
pub fn resource_manager(emulator: &Emulator, token: &str) -> CloudResourceManager<Connector> {
    let mut hub = CloudResourceManager::new(http_client(), token.to_owned());
    hub.base_url(emulator.base_url().to_owned());
    hub.root_url(emulator.base_url().to_owned());
    hub
}

/// An IAM Credentials hub calling the emulator with a static bearer token.
pub fn iam_credentials(emulator: &Emulator, token: &str) -> IAMCredentials<Connector> {
    let mut hub = IAMCredentials::new(http_client(), token.to_owned());
    hub.base_url(emulator.base_url().to_owned());
    hub.root_url(emulator.base_url().to_owned());
    hub
}

/// The HTTP status and the `status` name of a Google error returned by a client crate.
pub fn google_error(error: &google_cloudidentity1::Error) -> (u64, String, String) {
    match error {
        google_cloudidentity1::Error::BadRequest(body) => (
            body["error"]["code"].as_u64().unwrap_or_default(),
            body["error"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ),
        other => panic!("expected a Google error body, got {other:?}"),
    }
}

/// A security group of the example customer, as the controller creates one.
pub fn security_group(email: &str, description: &str) -> Group {
    Group {
        group_key: Some(EntityKey {
            id: Some(email.to_owned()),
            namespace: None,
        }),
        parent: Some(format!("customers/{CUSTOMER}")),
        display_name: Some(email.to_owned()),
        description: Some(description.to_owned()),
        labels: Some(
            [
                (FORUM.to_owned(), String::new()),
                (SECURITY.to_owned(), String::new()),
            ]
            .into_iter()
            .collect(),
        ),
        ..Group::default()
    }
}

/// Creates a security group and returns its resource name.
pub async fn create_group(hub: &CloudIdentity<Connector>, email: &str) -> String {
    let (_, operation) = hub
        .groups()
        .create(security_group(email, "created by a test"))
        .initial_group_config("EMPTY")
        .doit()
        .await
        .expect("the group is created");
    let response = operation.response.expect("the operation has a response");
    response["name"]
        .as_str()
        .expect("the group has a name")
        .to_owned()
}

/// A membership request for `email`, expiring at `expire_time` if given.
pub fn membership(email: &str, expire_time: Option<chrono::DateTime<chrono::Utc>>) -> Membership {
    Membership {
        preferred_member_key: Some(EntityKey {
            id: Some(email.to_owned()),
            namespace: None,
        }),
        roles: Some(vec![MembershipRole {
            name: Some("MEMBER".to_owned()),
            expiry_detail: expire_time.map(|t| ExpiryDetail {
                expire_time: Some(t),
            }),
            restriction_evaluations: None,
        }]),
        ..Membership::default()
    }
}
