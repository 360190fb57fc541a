//! Access tokens: the controller's own credentials, and tokens of an environment's service
//! account obtained by impersonation.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use google_cloudidentity1::common::GetToken;
use google_iamcredentials1::IAMCredentials;
use google_iamcredentials1::api::GenerateAccessTokenRequest;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::Mutex;
use yup_oauth2::authenticator::ApplicationDefaultCredentialsTypes;
use yup_oauth2::authorized_user::AuthorizedUserSecret;
use yup_oauth2::{
    ApplicationDefaultCredentialsAuthenticator, ApplicationDefaultCredentialsFlowOpts,
    AuthorizedUserAuthenticator, CustomHyperClientBuilder, ServiceAccountAuthenticator,
};

use crate::google::error::{ApiCall, BoxError, GoogleError};
use crate::google::transport::{Connector, attempt, from_chrono};

/// The only scope requested: Cloud Identity, Resource Manager and IAM Credentials all accept it.
pub(crate) const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A cached token is replaced this long before it expires.
const REFRESH_MARGIN: SignedDuration = SignedDuration::from_mins(5);

type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<String>, BoxError>> + Send + 'a>>;

/// Where the controller's own credentials come from.
#[derive(Clone, PartialEq, Eq)]
pub enum BaseCredentials {
    /// Application default credentials: the key file named by `GOOGLE_APPLICATION_CREDENTIALS`
    /// (a service account key or an authorized user), else the file that
    /// `gcloud auth application-default login` writes, else the metadata server, which is
    /// how GKE Workload Identity and Compute Engine provide credentials.
    ApplicationDefault,
    /// A fixed bearer token, for the emulator and for short local runs.
    StaticToken(String),
}

impl std::fmt::Debug for BaseCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BaseCredentials::ApplicationDefault => f.write_str("ApplicationDefault"),
            BaseCredentials::StaticToken(_) => f.write_str("StaticToken(<redacted>)"),
        }
    }
}

/// Builds the token source of the controller's own identity.
pub(crate) async fn base_token_source(
    credentials: &BaseCredentials,
    connector: &Connector,
) -> Result<Box<dyn GetToken>, GoogleError> {
    match credentials {
        BaseCredentials::StaticToken(token) => Ok(Box::new(token.clone())),
        BaseCredentials::ApplicationDefault => application_default(connector).await,
    }
}

fn credentials_error(error: impl Into<BoxError>) -> GoogleError {
    GoogleError::Credentials {
        source: error.into(),
    }
}

fn well_known_credentials_file() -> Option<PathBuf> {
    let config = std::env::var_os("CLOUDSDK_CONFIG")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config/gcloud"))
        })?;
    let file = config.join("application_default_credentials.json");
    file.is_file().then_some(file)
}

async fn application_default(connector: &Connector) -> Result<Box<dyn GetToken>, GoogleError> {
    let client = || {
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build::<_, String>(connector.clone());
        CustomHyperClientBuilder::from(http)
    };

    let key_file = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS")
        .map(PathBuf::from)
        .or_else(well_known_credentials_file);

    let Some(path) = key_file else {
        tracing::info!("using the metadata server for the controller's own Google credentials");
        let opts = ApplicationDefaultCredentialsFlowOpts::default();
        let authenticator =
            match ApplicationDefaultCredentialsAuthenticator::with_client(opts, client()).await {
                ApplicationDefaultCredentialsTypes::InstanceMetadata(builder) => {
                    builder.build().await
                }
                ApplicationDefaultCredentialsTypes::ServiceAccount(builder) => {
                    builder.build().await
                }
            }
            .map_err(credentials_error)?;
        return Ok(Box::new(authenticator));
    };

    let contents = tokio::fs::read(&path)
        .await
        .map_err(|error| GoogleError::Configuration {
            field: "GOOGLE_APPLICATION_CREDENTIALS",
            message: format!("{} cannot be read: {error}", path.display()),
        })?;
    let kind = serde_json::from_slice::<serde_json::Value>(&contents)
        .ok()
        .and_then(|json| json.get("type").and_then(|t| t.as_str()).map(str::to_owned));
    tracing::info!(path = %path.display(), kind = ?kind, "using a credentials file for the controller's own Google credentials");

    let authenticator = match kind.as_deref() {
        Some("service_account") => {
            let key =
                yup_oauth2::parse_service_account_key(&contents).map_err(credentials_error)?;
            ServiceAccountAuthenticator::with_client(key, client())
                .build()
                .await
                .map_err(credentials_error)?
        }
        Some("authorized_user") => {
            let secret: AuthorizedUserSecret =
                serde_json::from_slice(&contents).map_err(credentials_error)?;
            AuthorizedUserAuthenticator::with_client(secret, client())
                .build()
                .await
                .map_err(credentials_error)?
        }
        other => {
            return Err(GoogleError::Configuration {
                field: "GOOGLE_APPLICATION_CREDENTIALS",
                message: format!(
                    "{} has type {other:?}; only service_account and authorized_user are supported",
                    path.display()
                ),
            });
        }
    };
    Ok(Box::new(authenticator))
}

#[derive(Clone)]
struct CachedToken {
    token: String,
    expires: Timestamp,
}

struct ImpersonationInner {
    service_account: String,
    iam: Arc<IAMCredentials<Connector>>,
    cached: Mutex<Option<CachedToken>>,
}

/// Access tokens of one service account, obtained through IAM Credentials
/// `generateAccessToken` with the controller's own identity.
///
/// A token is reused until a few minutes before it expires; concurrent callers wait for a
/// single refresh. Clones share the cache.
#[derive(Clone)]
pub(crate) struct ImpersonatedTokens {
    inner: Arc<ImpersonationInner>,
}

impl ImpersonatedTokens {
    pub(crate) fn new(service_account: String, iam: Arc<IAMCredentials<Connector>>) -> Self {
        ImpersonatedTokens {
            inner: Arc::new(ImpersonationInner {
                service_account,
                iam,
                cached: Mutex::new(None),
            }),
        }
    }

    /// A valid access token of the service account. Failures are not retried here; every
    /// API call that needs the token retries transient failures as a whole.
    pub(crate) async fn token(&self) -> Result<String, GoogleError> {
        let mut cached = self.inner.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && token.expires > Timestamp::now() + REFRESH_MARGIN
        {
            return Ok(token.token.clone());
        }

        let fresh = self
            .generate()
            .await
            .map_err(|source| GoogleError::Impersonation {
                service_account: self.inner.service_account.clone(),
                source: Box::new(source),
            })?;
        tracing::debug!(
            service_account = %self.inner.service_account,
            expires = %fresh.expires,
            "obtained an access token by impersonation"
        );
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Drops the cached token, after Google refused it.
    pub(crate) async fn forget(&self) {
        *self.inner.cached.lock().await = None;
    }

    async fn generate(&self) -> Result<CachedToken, GoogleError> {
        let name = format!("projects/-/serviceAccounts/{}", self.inner.service_account);
        let call = ApiCall::new("serviceAccounts.generateAccessToken", name.clone());
        let request = GenerateAccessTokenRequest {
            scope: Some(vec![CLOUD_PLATFORM.to_owned()]),
            ..GenerateAccessTokenRequest::default()
        };

        let response = attempt!(call, |capture| self
            .inner
            .iam
            .projects()
            .service_accounts_generate_access_token(request, &name)
            .delegate(capture)
            .doit())?;

        let token = response
            .access_token
            .filter(|token| !token.is_empty())
            .ok_or_else(|| GoogleError::unexpected(call.clone(), "no accessToken"))?;
        let expires = response
            .expire_time
            .ok_or_else(|| GoogleError::unexpected(call.clone(), "no expireTime"))?;
        Ok(CachedToken {
            token,
            expires: from_chrono(&call, expires)?,
        })
    }
}

impl GetToken for ImpersonatedTokens {
    fn get_token<'a>(&'a self, _scopes: &'a [&str]) -> TokenFuture<'a> {
        Box::pin(async move {
            self.token()
                .await
                .map(Some)
                .map_err(|error| Box::new(error) as BoxError)
        })
    }
}
