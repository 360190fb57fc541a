//! Google Cloud clients: Cloud Identity, Resource Manager IAM policies, IAM Credentials.
//!
//! [`Google`] holds what all environments share: the HTTP connector and the controller's own
//! credentials. [`Google::for_service_account`] gives an [`EnvironmentClient`] whose every call
//! runs as the environment's service account, impersonated through IAM Credentials; that is
//! what keeps one environment from touching what another may touch.
//!
//! Each endpoint comes from [`GoogleConfig`], so tests and local runs point the clients at an
//! emulator on loopback. Every call retries transient failures a few times (see
//! [`RetryPolicy`]) before it returns a [`GoogleError`].

mod auth;
mod bindings;
mod error;
mod groups;
mod iam;
mod transport;
mod types;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use google_cloudidentity1::CloudIdentity;
use google_cloudidentity1::common::{GetToken, NoToken};
use google_cloudresourcemanager3::CloudResourceManager;
use google_iamcredentials1::IAMCredentials;

pub use crate::google::auth::BaseCredentials;
pub use crate::google::error::{ApiCall, BoxError, GoogleError};
pub use crate::google::transport::RetryPolicy;
pub use crate::google::types::{BindingChange, Condition, DesiredBinding, GroupRef, Membership};
pub use crate::policy::ResourceName;

use crate::google::auth::ImpersonatedTokens;
use crate::google::transport::{CallSettings, Connector};

/// Where the clients send their calls, and as whom.
#[derive(Clone, Debug)]
pub struct GoogleConfig {
    /// Base URL of the Cloud Identity API, ending in `/`; `None` for Google's.
    pub cloud_identity_endpoint: Option<String>,
    /// Base URL of the Resource Manager API, ending in `/`; `None` for Google's.
    pub resource_manager_endpoint: Option<String>,
    /// Base URL of the IAM Credentials API, ending in `/`; `None` for Google's.
    pub iam_credentials_endpoint: Option<String>,
    /// The controller's own credentials, used only to impersonate environments' service
    /// accounts.
    pub credentials: BaseCredentials,
    /// How transient failures and etag conflicts are retried.
    pub retry: RetryPolicy,
    /// Longest wait for one HTTP answer.
    pub request_timeout: Duration,
    /// Items asked for per page when listing memberships or searching groups; Google caps it
    /// to 500 for memberships with full view, and so does this client.
    pub page_size: u32,
}

impl GoogleConfig {
    /// Google's endpoints with the given credentials and default retry settings.
    pub fn new(credentials: BaseCredentials) -> Self {
        GoogleConfig {
            cloud_identity_endpoint: None,
            resource_manager_endpoint: None,
            iam_credentials_endpoint: None,
            credentials,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            page_size: 500,
        }
    }

    /// All three APIs served under one base URL, as an emulator does.
    pub fn with_endpoint(mut self, base_url: &str) -> Self {
        self.cloud_identity_endpoint = Some(base_url.to_owned());
        self.resource_manager_endpoint = Some(base_url.to_owned());
        self.iam_credentials_endpoint = Some(base_url.to_owned());
        self
    }
}

/// Normalises an endpoint to the form the generated crates need: a base URL ending in `/`.
fn endpoint(
    field: &'static str,
    configured: &Option<String>,
) -> Result<Option<String>, GoogleError> {
    let Some(url) = configured else {
        return Ok(None);
    };
    let parsed: http::Uri = url.parse().map_err(|error| GoogleError::Configuration {
        field,
        message: format!("{url:?} is not a URL: {error}"),
    })?;
    if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
        return Err(GoogleError::Configuration {
            field,
            message: format!("{url:?} is not an http or https URL"),
        });
    }
    let mut base = url.clone();
    if !base.ends_with('/') {
        base.push('/');
    }
    Ok(Some(base))
}

struct Shared {
    identity_endpoint: Option<String>,
    resource_manager_endpoint: Option<String>,
    client: google_cloudidentity1::common::Client<Connector>,
    iam: Arc<IAMCredentials<Connector>>,
    settings: CallSettings,
    environments: Mutex<HashMap<String, EnvironmentClient>>,
}

/// The entry point to Google Cloud: shared connector and base credentials.
///
/// Cheap to clone; clones share the clients of every environment, and with them the cached
/// access tokens.
#[derive(Clone)]
pub struct Google {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Google {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Google").finish_non_exhaustive()
    }
}

impl Google {
    /// Builds the connector and the controller's own token source.
    ///
    /// Application default credentials are looked up here, but no token is requested until
    /// the first call.
    pub async fn new(config: GoogleConfig) -> Result<Google, GoogleError> {
        let identity_endpoint =
            endpoint("cloud_identity_endpoint", &config.cloud_identity_endpoint)?;
        let resource_manager_endpoint = endpoint(
            "resource_manager_endpoint",
            &config.resource_manager_endpoint,
        )?;
        let iam_endpoint = endpoint("iam_credentials_endpoint", &config.iam_credentials_endpoint)?;
        if config.retry.attempts == 0 || config.retry.conflict_attempts == 0 {
            return Err(GoogleError::Configuration {
                field: "retry",
                message: "attempts and conflict_attempts must be at least 1".into(),
            });
        }
        let page_size = i32::try_from(config.page_size.clamp(1, 500)).unwrap_or(500);

        let connector = transport::connector()?;
        let client = transport::api_client(connector.clone());
        let base: Box<dyn GetToken> =
            auth::base_token_source(&config.credentials, &connector).await?;

        let mut iam = IAMCredentials::new(client.clone(), NoToken);
        iam.auth = base;
        if let Some(url) = iam_endpoint {
            iam.base_url(url.clone());
            iam.root_url(url);
        }

        tracing::info!(
            cloud_identity = identity_endpoint.as_deref().unwrap_or("Google"),
            resource_manager = resource_manager_endpoint.as_deref().unwrap_or("Google"),
            credentials = ?config.credentials,
            "Google Cloud clients configured"
        );
        Ok(Google {
            shared: Arc::new(Shared {
                identity_endpoint,
                resource_manager_endpoint,
                client,
                iam: Arc::new(iam),
                settings: CallSettings {
                    retry: config.retry,
                    request_timeout: config.request_timeout,
                    page_size,
                },
                environments: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The client whose calls all run as `service_account` (an email address).
    ///
    /// Clients are kept per service account, so the impersonated token is reused across
    /// calls and reconciles.
    pub fn for_service_account(&self, service_account: &str) -> EnvironmentClient {
        let key = service_account.to_ascii_lowercase();
        let mut environments = self
            .shared
            .environments
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        environments
            .entry(key)
            .or_insert_with(|| self.build_environment(service_account))
            .clone()
    }

    fn build_environment(&self, service_account: &str) -> EnvironmentClient {
        let shared = &self.shared;
        let tokens = ImpersonatedTokens::new(service_account.to_owned(), shared.iam.clone());

        let mut identity = CloudIdentity::new(shared.client.clone(), tokens.clone());
        if let Some(url) = &shared.identity_endpoint {
            identity.base_url(url.clone());
            identity.root_url(url.clone());
        }
        let mut resource_manager = CloudResourceManager::new(shared.client.clone(), tokens.clone());
        if let Some(url) = &shared.resource_manager_endpoint {
            resource_manager.base_url(url.clone());
            resource_manager.root_url(url.clone());
        }

        EnvironmentClient {
            inner: Arc::new(EnvironmentInner {
                service_account: service_account.to_owned(),
                identity,
                resource_manager,
                tokens,
                settings: shared.settings.clone(),
            }),
        }
    }
}

struct EnvironmentInner {
    service_account: String,
    identity: CloudIdentity<Connector>,
    resource_manager: CloudResourceManager<Connector>,
    tokens: ImpersonatedTokens,
    settings: CallSettings,
}

/// Google Cloud as one environment's service account sees it.
///
/// Cheap to clone. Methods for groups and memberships live in `groups.rs`, those for IAM
/// policies in `iam.rs`.
#[derive(Clone)]
pub struct EnvironmentClient {
    inner: Arc<EnvironmentInner>,
}

impl std::fmt::Debug for EnvironmentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvironmentClient")
            .field("service_account", &self.inner.service_account)
            .finish_non_exhaustive()
    }
}

impl EnvironmentClient {
    /// The service account this client runs as.
    pub fn service_account(&self) -> &str {
        &self.inner.service_account
    }

    /// Checks that a token of the service account can be had, for the environment's Ready
    /// condition. A cached token counts, so a permission withdrawn since the last refresh
    /// shows only once that token expires.
    pub async fn verify_access(&self) -> Result<(), GoogleError> {
        let call = ApiCall::new(
            "serviceAccounts.generateAccessToken",
            self.service_account(),
        );
        self.run(&call, || async {
            self.inner.tokens.token().await.map(|_| ())
        })
        .await
    }

    /// Runs one call with the client's retry settings. A 401 drops the cached token, so the
    /// next call impersonates afresh.
    async fn run<T, F, Fut>(&self, call: &ApiCall, attempt: F) -> Result<T, GoogleError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, GoogleError>>,
    {
        let result = self.inner.settings.run(call, attempt).await;
        if let Err(error @ GoogleError::Unauthenticated { .. }) = &result {
            tracing::warn!(
                service_account = %self.inner.service_account,
                error = %error,
                "Google refused the impersonated token; it will be replaced"
            );
            self.inner.tokens.forget().await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn endpoints_are_normalised_and_checked() {
        assert_eq!(
            endpoint("f", &Some("http://127.0.0.1:8080".into())).expect("valid"),
            Some("http://127.0.0.1:8080/".into())
        );
        assert_eq!(endpoint("f", &None).expect("valid"), None);
        assert!(endpoint("f", &Some("127.0.0.1:8080".into())).is_err());
        assert!(endpoint("f", &Some("ftp://host/".into())).is_err());
    }

    #[test]
    fn static_tokens_are_not_printed() {
        let debug = format!("{:?}", BaseCredentials::StaticToken("secret".into()));
        assert!(!debug.contains("secret"));
    }

    #[tokio::test]
    async fn environment_clients_are_shared_per_service_account_and_their_calls_are_send() {
        let google = Google::new(
            GoogleConfig::new(BaseCredentials::StaticToken("t".into()))
                .with_endpoint("http://127.0.0.1:9"),
        )
        .await
        .expect("configuration is valid");

        let first = google.for_service_account("sa@p.iam.gserviceaccount.com");
        let again = google.for_service_account("SA@p.iam.gserviceaccount.com");
        assert!(Arc::ptr_eq(&first.inner, &again.inner));

        let resource: ResourceName = "projects/prod-app".parse().expect("valid");
        assert_send(&first.verify_access());
        assert_send(&first.reconcile_bindings(&resource, "group:g@example.com", &[]));
        assert_send(&first.ensure_security_group("C1", "g@example.com", "g", "d"));
        assert_send(&first.list_memberships(&GroupRef {
            name: "groups/1".into(),
            email: "g@example.com".into(),
        }));
    }
}
