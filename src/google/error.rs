//! The error type of the Google Cloud clients, and how failed API calls are classified.

use std::fmt;
use std::time::Duration;

use google_cloudidentity1::common;
use http::{HeaderMap, StatusCode};
use jiff::Timestamp;

/// An error from a library or the network, kept as the source of a [`GoogleError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Which API method failed, and on which object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiCall {
    /// The REST method, for example `groups.create` or `projects.setIamPolicy`.
    pub method: &'static str,
    /// The object the method acted on: a resource name, an email address or a parent.
    pub target: String,
}

impl ApiCall {
    pub(crate) fn new(method: &'static str, target: impl Into<String>) -> Self {
        ApiCall {
            method,
            target: target.into(),
        }
    }
}

impl fmt::Display for ApiCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.method, self.target)
    }
}

/// Everything that can go wrong when the controller talks to Google Cloud.
///
/// Variants that stand for an HTTP answer carry the message Google gave, so that it can be
/// shown to a person as it is (for example in the status of a Kubernetes resource).
#[derive(Debug, thiserror::Error)]
pub enum GoogleError {
    /// HTTP 403: the caller lacks a permission on the target, or the target is outside what
    /// the caller may see.
    #[error("{call} was refused, permission denied: {message}")]
    PermissionDenied {
        /// The failed call.
        call: ApiCall,
        /// Google's message.
        message: String,
    },

    /// HTTP 401: the access token was not accepted.
    #[error("{call} was refused, not authenticated: {message}")]
    Unauthenticated {
        /// The failed call.
        call: ApiCall,
        /// Google's message.
        message: String,
    },

    /// HTTP 404: the target does not exist.
    #[error("{call} found nothing: {message}")]
    NotFound {
        /// The failed call.
        call: ApiCall,
        /// Google's message.
        message: String,
    },

    /// HTTP 409: the target already exists, or it changed since it was read (an etag
    /// conflict).
    #[error("{call} conflicted with the current state: {message}")]
    Conflict {
        /// The failed call.
        call: ApiCall,
        /// Google's message.
        message: String,
    },

    /// Any other answer that retrying will not change, such as HTTP 400 or 412.
    #[error("{call} was rejected with HTTP {status}: {message}")]
    Rejected {
        /// The failed call.
        call: ApiCall,
        /// The HTTP status Google answered with.
        status: StatusCode,
        /// Google's message.
        message: String,
    },

    /// HTTP 429: a quota was exhausted for now.
    #[error("{call} was rate limited: {message}")]
    RateLimited {
        /// The failed call.
        call: ApiCall,
        /// Google's message.
        message: String,
        /// How long Google asked the caller to wait, from the `Retry-After` header.
        retry_after: Option<Duration>,
    },

    /// HTTP 500, 502, 503, 504 or 408: Google could not serve the call right now.
    #[error("{call} failed on Google's side with HTTP {status}: {message}")]
    Unavailable {
        /// The failed call.
        call: ApiCall,
        /// The HTTP status Google answered with.
        status: StatusCode,
        /// Google's message.
        message: String,
        /// How long Google asked the caller to wait, from the `Retry-After` header.
        retry_after: Option<Duration>,
    },

    /// The connection to the endpoint failed or broke before an answer came.
    #[error("{call} could not reach Google")]
    Connection {
        /// The failed call.
        call: ApiCall,
        /// The network error.
        #[source]
        source: BoxError,
    },

    /// No answer came within the configured request timeout.
    #[error("{call} got no answer within {timeout:?}")]
    Timeout {
        /// The failed call.
        call: ApiCall,
        /// The timeout that passed.
        timeout: Duration,
    },

    /// Google answered with success, but not with what the API promises.
    #[error("{call} returned an unexpected response: {detail}")]
    UnexpectedResponse {
        /// The call whose response was wrong.
        call: ApiCall,
        /// What was wrong with it.
        detail: String,
    },

    /// No access token could be had for the environment's service account.
    #[error("could not impersonate service account {service_account}")]
    Impersonation {
        /// The service account of the environment.
        service_account: String,
        /// Why IAM Credentials gave no token.
        #[source]
        source: Box<GoogleError>,
    },

    /// The controller's own credentials (application default credentials) gave no token.
    #[error("the controller's own Google credentials gave no access token")]
    Credentials {
        /// The error of the credentials library.
        #[source]
        source: BoxError,
    },

    /// The client configuration cannot work.
    #[error("invalid Google client configuration, {field}: {message}")]
    Configuration {
        /// The configuration field at fault.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },

    /// An argument given to a client method cannot be sent to Google.
    #[error("invalid argument {argument}: {message}")]
    InvalidArgument {
        /// The argument at fault.
        argument: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl GoogleError {
    /// True for failures that may go away by themselves: HTTP 408, 429, 500, 502, 503, 504,
    /// broken connections, timeouts, and failures of the controller's own credentials. Such
    /// failures are retried a few times inside every call before they are returned.
    pub fn is_transient(&self) -> bool {
        match self {
            GoogleError::RateLimited { .. }
            | GoogleError::Unavailable { .. }
            | GoogleError::Connection { .. }
            | GoogleError::Timeout { .. }
            | GoogleError::Credentials { .. } => true,
            GoogleError::Impersonation { source, .. } => source.is_transient(),
            GoogleError::PermissionDenied { .. }
            | GoogleError::Unauthenticated { .. }
            | GoogleError::NotFound { .. }
            | GoogleError::Conflict { .. }
            | GoogleError::Rejected { .. }
            | GoogleError::UnexpectedResponse { .. }
            | GoogleError::Configuration { .. }
            | GoogleError::InvalidArgument { .. } => false,
        }
    }

    /// How long Google asked the caller to wait before trying again, when it said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GoogleError::RateLimited { retry_after, .. }
            | GoogleError::Unavailable { retry_after, .. } => *retry_after,
            GoogleError::Impersonation { source, .. } => source.retry_after(),
            _ => None,
        }
    }

    /// The HTTP status of Google's answer, for errors that are one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            GoogleError::PermissionDenied { .. } => Some(StatusCode::FORBIDDEN),
            GoogleError::Unauthenticated { .. } => Some(StatusCode::UNAUTHORIZED),
            GoogleError::NotFound { .. } => Some(StatusCode::NOT_FOUND),
            GoogleError::Conflict { .. } => Some(StatusCode::CONFLICT),
            GoogleError::RateLimited { .. } => Some(StatusCode::TOO_MANY_REQUESTS),
            GoogleError::Rejected { status, .. } | GoogleError::Unavailable { status, .. } => {
                Some(*status)
            }
            GoogleError::Impersonation { source, .. } => source.status(),
            _ => None,
        }
    }

    /// Google's own message, for errors that carry one.
    pub fn google_message(&self) -> Option<&str> {
        match self {
            GoogleError::PermissionDenied { message, .. }
            | GoogleError::Unauthenticated { message, .. }
            | GoogleError::NotFound { message, .. }
            | GoogleError::Conflict { message, .. }
            | GoogleError::Rejected { message, .. }
            | GoogleError::RateLimited { message, .. }
            | GoogleError::Unavailable { message, .. } => Some(message),
            GoogleError::Impersonation { source, .. } => source.google_message(),
            _ => None,
        }
    }

    /// A short, stable name of the variant, for metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            GoogleError::PermissionDenied { .. } => "permission_denied",
            GoogleError::Unauthenticated { .. } => "unauthenticated",
            GoogleError::NotFound { .. } => "not_found",
            GoogleError::Conflict { .. } => "conflict",
            GoogleError::Rejected { .. } => "rejected",
            GoogleError::RateLimited { .. } => "rate_limited",
            GoogleError::Unavailable { .. } => "unavailable",
            GoogleError::Connection { .. } => "connection",
            GoogleError::Timeout { .. } => "timeout",
            GoogleError::UnexpectedResponse { .. } => "unexpected_response",
            GoogleError::Impersonation { .. } => "impersonation",
            GoogleError::Credentials { .. } => "credentials",
            GoogleError::Configuration { .. } => "configuration",
            GoogleError::InvalidArgument { .. } => "invalid_argument",
        }
    }

    /// The message of this error followed by those of its sources, joined by `": "`; the
    /// whole story in one line, for a status message or an event.
    pub fn full_message(&self) -> String {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(error) = source {
            message.push_str(": ");
            message.push_str(&error.to_string());
            source = error.source();
        }
        message
    }

    /// The error for an HTTP answer that is not a success.
    pub(crate) fn from_status(
        call: ApiCall,
        status: StatusCode,
        message: String,
        retry_after: Option<Duration>,
    ) -> Self {
        match status.as_u16() {
            401 => GoogleError::Unauthenticated { call, message },
            403 => GoogleError::PermissionDenied { call, message },
            404 => GoogleError::NotFound { call, message },
            409 => GoogleError::Conflict { call, message },
            429 => GoogleError::RateLimited {
                call,
                message,
                retry_after,
            },
            408 | 500 | 502 | 503 | 504 => GoogleError::Unavailable {
                call,
                status,
                message,
                retry_after,
            },
            _ => GoogleError::Rejected {
                call,
                status,
                message,
            },
        }
    }

    pub(crate) fn unexpected(call: ApiCall, detail: impl Into<String>) -> Self {
        GoogleError::UnexpectedResponse {
            call,
            detail: detail.into(),
        }
    }

    /// Classifies an error of a generated API crate.
    ///
    /// The crates keep Google's JSON error body but drop the HTTP status and headers of it, so
    /// `capture` (the delegate of the call) supplies them.
    pub(crate) async fn from_api(
        call: ApiCall,
        error: common::Error,
        capture: &FailureCapture,
    ) -> Self {
        match error {
            common::Error::HttpError(source) => GoogleError::Connection {
                call,
                source: Box::new(source),
            },
            common::Error::Io(source) => GoogleError::Connection {
                call,
                source: Box::new(source),
            },
            common::Error::BadRequest(body) => {
                let (code, message) = google_error_body(&body);
                let status = capture
                    .status
                    .or_else(|| code.and_then(|c| StatusCode::from_u16(c).ok()))
                    .unwrap_or(StatusCode::BAD_REQUEST);
                GoogleError::from_status(call, status, message, capture.retry_after)
            }
            common::Error::Failure(response) => {
                let status = response.status();
                let retry_after = retry_after_from(response.headers(), Timestamp::now());
                let body = common::to_bytes(response.into_body())
                    .await
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(&body);
                let message = if text.trim().is_empty() {
                    status.canonical_reason().unwrap_or("no message").to_owned()
                } else {
                    shorten(text.trim(), 500)
                };
                GoogleError::from_status(call, status, message, retry_after)
            }
            common::Error::MissingToken(source) => match source.downcast::<GoogleError>() {
                Ok(own) => *own,
                Err(source) => GoogleError::Credentials { source },
            },
            common::Error::JsonDecodeError(body, source) => {
                GoogleError::unexpected(call, format!("{source}, in body {}", shorten(&body, 200)))
            }
            other => GoogleError::unexpected(call, other.to_string().trim().to_owned()),
        }
    }
}

/// The code and message of a Google JSON error body, `{"error": {"code", "message"}}`.
fn google_error_body(body: &serde_json::Value) -> (Option<u16>, String) {
    let error = body.get("error");
    let code = error
        .and_then(|e| e.get("code"))
        .and_then(serde_json::Value::as_u64)
        .and_then(|c| u16::try_from(c).ok());
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| shorten(&body.to_string(), 500));
    (code, message)
}

fn shorten(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Reads `Retry-After`, given either as seconds or as an HTTP date.
pub(crate) fn retry_after_from(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let wait = at.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// The delegate given to every generated API call: it records the HTTP status and the
/// `Retry-After` header of a failed answer, which the crates do not return.
#[derive(Default)]
pub(crate) struct FailureCapture {
    pub(crate) status: Option<StatusCode>,
    pub(crate) retry_after: Option<Duration>,
}

impl common::Delegate for FailureCapture {
    fn http_failure(
        &mut self,
        response: &common::Response,
        _error: Option<&serde_json::Value>,
    ) -> common::Retry {
        self.status = Some(response.status());
        self.retry_after = retry_after_from(response.headers(), Timestamp::now());
        common::Retry::Abort
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn call() -> ApiCall {
        ApiCall::new("projects.setIamPolicy", "projects/p")
    }

    #[test]
    fn statuses_map_to_variants_and_back() {
        for code in [400, 401, 403, 404, 409, 412, 429, 500, 502, 503, 504] {
            let status = StatusCode::from_u16(code).expect("valid status");
            let error = GoogleError::from_status(call(), status, "m".into(), None);
            assert_eq!(error.status(), Some(status), "{code}");
        }
    }

    #[test]
    fn only_overload_and_server_failures_are_transient() {
        let transient = [429, 500, 502, 503, 504];
        for code in [400, 401, 403, 404, 409, 412, 429, 500, 501, 502, 503, 504] {
            let status = StatusCode::from_u16(code).expect("valid status");
            let error = GoogleError::from_status(call(), status, "m".into(), None);
            assert_eq!(error.is_transient(), transient.contains(&code), "{code}");
        }
    }

    #[test]
    fn permanent_errors_carry_googles_message() {
        let error = GoogleError::from_status(
            call(),
            StatusCode::FORBIDDEN,
            "The caller does not have permission".into(),
            None,
        );

        assert_eq!(error.label(), "permission_denied");
        assert_eq!(
            error.google_message(),
            Some("The caller does not have permission")
        );
        assert_eq!(
            error.to_string(),
            "projects.setIamPolicy on projects/p was refused, permission denied: \
             The caller does not have permission"
        );
    }

    #[test]
    fn impersonation_failures_take_status_and_transience_from_their_cause() {
        let refused = GoogleError::Impersonation {
            service_account: "sa@p.iam.gserviceaccount.com".into(),
            source: Box::new(GoogleError::from_status(
                ApiCall::new("serviceAccounts.generateAccessToken", "sa"),
                StatusCode::FORBIDDEN,
                "denied".into(),
                None,
            )),
        };

        assert!(!refused.is_transient());
        assert_eq!(refused.status(), Some(StatusCode::FORBIDDEN));
        assert_eq!(refused.label(), "impersonation");
        assert!(
            refused
                .full_message()
                .ends_with("permission denied: denied")
        );
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_a_date() {
        let now: Timestamp = "2025-01-01T00:00:00Z".parse().expect("valid timestamp");
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after_from(&headers, now), None);

        headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            retry_after_from(&headers, now),
            Some(Duration::from_secs(7))
        );

        headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 01 Jan 2025 00:00:30 GMT"),
        );
        assert_eq!(
            retry_after_from(&headers, now),
            Some(Duration::from_secs(30))
        );

        headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after_from(&headers, now), None);
    }

    #[test]
    fn googles_json_error_body_gives_code_and_message() {
        let body = serde_json::json!({
            "error": {"code": 409, "message": "etag mismatch", "status": "ABORTED"}
        });
        assert_eq!(
            google_error_body(&body),
            (Some(409), "etag mismatch".to_owned())
        );

        let odd = serde_json::json!({"unexpected": true});
        assert_eq!(google_error_body(&odd), (None, odd.to_string()));
    }
}
