//! Errors in the shape Google's REST APIs return them.
//!
//! Every Google API answers a failed call with an HTTP status and a JSON body
//! `{"error": {"code": 409, "message": "...", "status": "ALREADY_EXISTS"}}`, where `status` is
//! the canonical gRPC code name. [`ApiError`] carries exactly that and renders it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A canonical Google error code, with its HTTP status and its `status` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The request is malformed or names an invalid value (HTTP 400).
    InvalidArgument,
    /// The request is valid but the system is not in a state to run it (HTTP 400).
    FailedPrecondition,
    /// The request carries no valid credentials (HTTP 401).
    Unauthenticated,
    /// The caller may not do this, or the resource does not exist (HTTP 403).
    PermissionDenied,
    /// The resource does not exist (HTTP 404).
    NotFound,
    /// The resource that the request would create exists already (HTTP 409).
    AlreadyExists,
    /// A concurrent change, such as a stale etag, aborted the request (HTTP 409).
    Aborted,
    /// A quota or rate limit was exceeded (HTTP 429).
    ResourceExhausted,
    /// The method is not implemented (HTTP 501).
    Unimplemented,
    /// An internal server error (HTTP 500).
    Internal,
    /// The service is unavailable for now (HTTP 503).
    Unavailable,
    /// The server gave up waiting (HTTP 504).
    DeadlineExceeded,
}

impl Code {
    /// The HTTP status Google answers with for this code.
    pub fn http_status(self) -> StatusCode {
        match self {
            Code::InvalidArgument | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The canonical name that goes into the body's `status` field.
    pub fn status_name(self) -> &'static str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::Aborted => "ABORTED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        }
    }
}

/// A failed API call, rendered as Google's JSON error body.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} ({}): {message}", code.status_name(), code.http_status().as_u16())]
pub struct ApiError {
    /// The canonical code.
    pub code: Code,
    /// The developer-facing message.
    pub message: String,
    /// Seconds to put into a `Retry-After` header, for throttling errors.
    pub retry_after_seconds: Option<u64>,
}

impl ApiError {
    /// An error with the given code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_seconds: None,
        }
    }

    /// HTTP 400 `INVALID_ARGUMENT`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    /// HTTP 404 `NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// HTTP 409 `ALREADY_EXISTS`.
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(Code::AlreadyExists, message)
    }

    /// HTTP 403 `PERMISSION_DENIED` with the message Google gives when the caller lacks a
    /// permission or the resource does not exist.
    pub fn caller_lacks_permission() -> Self {
        Self::new(
            Code::PermissionDenied,
            "The caller does not have permission",
        )
    }

    /// HTTP 401 `UNAUTHENTICATED`.
    pub fn unauthenticated(detail: &str) -> Self {
        Self::new(
            Code::Unauthenticated,
            format!(
                "Request had invalid authentication credentials: {detail}. \
                 Expected an OAuth 2 access token in an 'Authorization: Bearer' header."
            ),
        )
    }

    /// HTTP 409 `ABORTED` for a read-modify-write of an IAM policy that lost a race.
    pub fn concurrent_policy_change() -> Self {
        Self::new(
            Code::Aborted,
            "There were concurrent policy changes. Please retry the whole read-modify-write \
             with exponential backoff.",
        )
    }

    /// Adds a `Retry-After` header to the response.
    pub fn with_retry_after(mut self, seconds: Option<u64>) -> Self {
        self.retry_after_seconds = seconds;
        self
    }

    /// The JSON body Google sends for this error.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "error": {
                "code": self.code.http_status().as_u16(),
                "message": self.message,
                "status": self.code.status_name(),
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.code.http_status(), axum::Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.code == Code::Unauthenticated {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"https://accounts.google.com/\""),
            );
        }
        response
    }
}

/// The result type of every API handler.
pub type ApiResult<T> = Result<T, ApiError>;
