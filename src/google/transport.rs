//! The HTTP connector shared by all clients, and how one API call is tried and retried.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use google_cloudidentity1::common;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::google::error::{ApiCall, GoogleError};

/// The connector of every client: HTTPS with the system's root certificates, or plain HTTP
/// for an emulator on loopback.
pub(crate) type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Builds the connector; fails when the system has no root certificates.
pub(crate) fn connector() -> Result<Connector, GoogleError> {
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|error| GoogleError::Configuration {
            field: "TLS root certificates",
            message: format!("the system's root certificates could not be loaded: {error}"),
        })?;
    Ok(builder
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build())
}

/// An HTTP client over `connector` with the body type of the generated API crates.
pub(crate) fn api_client(connector: Connector) -> common::Client<Connector> {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector)
}

/// How transient failures and etag conflicts are retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts of one API call in all, the first included, while it fails transiently.
    pub attempts: usize,
    /// Delay before the second attempt; each further delay doubles, with jitter.
    pub initial_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// Longest `Retry-After` that is waited for; an answer asking for more is returned as
    /// it is, so the caller can requeue instead of blocking.
    pub max_retry_after: Duration,
    /// Read-modify-write rounds of one IAM policy update in all, while `setIamPolicy` fails
    /// with an etag conflict.
    pub conflict_attempts: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
            conflict_attempts: 5,
        }
    }
}

impl RetryPolicy {
    pub(crate) fn backoff(&self, attempts: usize) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.initial_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(attempts.saturating_sub(1))
            .with_jitter()
    }
}

/// Settings that every call of a client follows.
#[derive(Clone, Debug)]
pub(crate) struct CallSettings {
    pub retry: RetryPolicy,
    pub request_timeout: Duration,
    pub page_size: i32,
}

impl CallSettings {
    /// Runs one API call: each attempt bounded by the request timeout, transient failures
    /// retried with exponential backoff that honours `Retry-After`, other failures returned
    /// at once.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        call: &ApiCall,
        mut attempt: F,
    ) -> Result<T, GoogleError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, GoogleError>>,
    {
        let timeout = self.request_timeout;
        let bounded = || {
            let pending = attempt();
            async move {
                tokio::time::timeout(timeout, pending)
                    .await
                    .unwrap_or_else(|_| {
                        Err(GoogleError::Timeout {
                            call: call.clone(),
                            timeout,
                        })
                    })
            }
        };

        let max_retry_after = self.retry.max_retry_after;
        bounded
            .retry(self.retry.backoff(self.retry.attempts))
            .when(GoogleError::is_transient)
            .adjust(|error, delay| match (error.retry_after(), delay) {
                (_, None) => None,
                (Some(asked), Some(_)) if asked > max_retry_after => None,
                (Some(asked), Some(_)) => Some(asked),
                (None, delay) => delay,
            })
            .notify(|error, delay| {
                tracing::warn!(
                    method = call.method,
                    target = %call.target,
                    error = %error,
                    delay_ms = delay.as_millis(),
                    "Google API call failed transiently, retrying"
                );
            })
            .await
    }
}

/// Sends one request built by a generated API crate and turns a failure into a
/// [`GoogleError`].
///
/// `attempt!(call, |capture| builder.delegate(capture).doit())`: the request expression gets
/// the failure-capturing delegate, so the HTTP status and `Retry-After` of a failed answer are
/// known when the error is classified. Evaluates to `Result<body, GoogleError>`.
macro_rules! attempt {
    ($call:expr, |$capture:ident| $request:expr) => {{
        let mut failure = $crate::google::error::FailureCapture::default();
        let result = {
            let $capture = &mut failure;
            $request.await
        };
        match result {
            Ok((_response, body)) => Ok(body),
            Err(error) => Err($crate::google::error::GoogleError::from_api(
                ::std::clone::Clone::clone(&$call),
                error,
                &failure,
            )
            .await),
        }
    }};
}

pub(crate) use attempt;

/// Converts a timestamp of the generated crates.
pub(crate) fn from_chrono(
    call: &ApiCall,
    time: chrono::DateTime<chrono::Utc>,
) -> Result<jiff::Timestamp, GoogleError> {
    let nanos = i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0);
    jiff::Timestamp::new(time.timestamp(), nanos).map_err(|error| {
        GoogleError::unexpected(call.clone(), format!("timestamp {time}: {error}"))
    })
}

/// Converts a timestamp for the generated crates.
pub(crate) fn to_chrono(
    argument: &'static str,
    time: jiff::Timestamp,
) -> Result<chrono::DateTime<chrono::Utc>, GoogleError> {
    let nanos = u32::try_from(time.subsec_nanosecond()).ok();
    nanos
        .and_then(|nanos| chrono::DateTime::from_timestamp(time.as_second(), nanos))
        .ok_or_else(|| GoogleError::InvalidArgument {
            argument,
            message: format!("{time} cannot be sent to Google"),
        })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http::StatusCode;

    use super::*;

    fn settings(attempts: usize) -> CallSettings {
        CallSettings {
            retry: RetryPolicy {
                attempts,
                initial_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
                max_retry_after: Duration::from_millis(50),
                conflict_attempts: 3,
            },
            request_timeout: Duration::from_millis(200),
            page_size: 10,
        }
    }

    fn failure(code: u16, retry_after: Option<Duration>) -> GoogleError {
        let status = StatusCode::from_u16(code).expect("valid status");
        GoogleError::from_status(ApiCall::new("m", "t"), status, "m".into(), retry_after)
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let tries = AtomicUsize::new(0);

        let result = settings(4)
            .run(&ApiCall::new("m", "t"), || async {
                match tries.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(failure(503, None)),
                    1 => Err(failure(429, Some(Duration::from_millis(5)))),
                    _ => Ok("done"),
                }
            })
            .await;

        assert_eq!(result.expect("third attempt succeeds"), "done");
        assert_eq!(tries.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn transient_failures_surface_after_the_last_attempt() {
        let tries = AtomicUsize::new(0);

        let result: Result<(), _> = settings(3)
            .run(&ApiCall::new("m", "t"), || async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(failure(502, None))
            })
            .await;

        assert_eq!(result.expect_err("keeps failing").label(), "unavailable");
        assert_eq!(tries.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let tries = AtomicUsize::new(0);

        let result: Result<(), _> = settings(4)
            .run(&ApiCall::new("m", "t"), || async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(failure(403, None))
            })
            .await;

        assert_eq!(result.expect_err("refused").label(), "permission_denied");
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_retry_after_longer_than_the_limit_is_returned_instead_of_waited_for() {
        let tries = AtomicUsize::new(0);

        let result: Result<(), _> = settings(4)
            .run(&ApiCall::new("m", "t"), || async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(failure(429, Some(Duration::from_secs(3600))))
            })
            .await;

        let error = result.expect_err("rate limited");
        assert_eq!(error.retry_after(), Some(Duration::from_secs(3600)));
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_attempt_without_answer_times_out_and_is_retried() {
        let tries = AtomicUsize::new(0);

        let result: Result<(), _> = settings(2)
            .run(&ApiCall::new("m", "t"), || async {
                tries.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            })
            .await;

        assert_eq!(result.expect_err("times out").label(), "timeout");
        assert_eq!(tries.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn timestamps_convert_both_ways() {
        let time: jiff::Timestamp = "2030-05-06T07:08:09.123456789Z".parse().expect("valid");
        let call = ApiCall::new("m", "t");

        let there = to_chrono("t", time).expect("in range");
        assert_eq!(from_chrono(&call, there).expect("in range"), time);
    }
}
