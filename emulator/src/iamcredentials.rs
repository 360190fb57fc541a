//! IAM Credentials v1 (`iamcredentials.googleapis.com/v1`): `generateAccessToken`, which
//! mints a short-lived token for a service account the caller may impersonate.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::TimeDelta;
use rand::Rng;
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::clock::format_time;
use crate::error::{ApiError, ApiResult, Code};
use crate::extract::parse_json;
use crate::methods::Method;
use crate::state::Token;

const DEFAULT_LIFETIME_SECONDS: i64 = 3600;
const MAX_LIFETIME_SECONDS: i64 = 3600;

/// The routes of IAM Credentials.
pub fn routes() -> Router<App> {
    Router::new().route(
        "/v1/projects/{project}/serviceAccounts/{segment}",
        post(dispatch),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct GenerateAccessTokenInput {
    delegates: Vec<String>,
    scope: Vec<String>,
    lifetime: Option<String>,
}

/// Splits `EMAIL:verb` (the router cannot split a segment at a colon) and runs the verb.
async fn dispatch(
    State(app): State<App>,
    headers: HeaderMap,
    Path((project, segment)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match segment.rsplit_once(':') {
        Some((email, "generateAccessToken")) => {
            generate_access_token(&app, &headers, &project, email, &body)
                .await
                .into_response()
        }
        _ => ApiError::not_found(format!(
            "The requested URL /v1/projects/{project}/serviceAccounts/{segment} was not found."
        ))
        .into_response(),
    }
}

fn denied(email: &str) -> ApiError {
    ApiError::new(
        Code::PermissionDenied,
        format!(
            "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not \
             exist): projects/-/serviceAccounts/{email}."
        ),
    )
}

async fn generate_access_token(
    app: &App,
    headers: &HeaderMap,
    project: &str,
    email: &str,
    body: &Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let caller = app.begin(Method::GenerateAccessToken, headers).await?;
    let now = app.clock.now();
    let mut store = app.store();
    let input: GenerateAccessTokenInput = parse_json(body)?;
    if project != "-" {
        return Err(ApiError::invalid(
            "Request contains an invalid argument: the project must be the wildcard '-'.",
        ));
    }
    let target = email.to_ascii_lowercase();

    // Each link of the chain caller -> delegates... -> target must be allowed to impersonate
    // the next one.
    let mut acting = caller.identity.clone();
    let chain = input
        .delegates
        .iter()
        .map(|delegate| {
            delegate
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase()
        })
        .chain(std::iter::once(target.clone()));
    for next in chain {
        let allowed = store
            .service_accounts
            .get(&next)
            .is_some_and(|account| account.impersonators.contains(&acting));
        if !allowed {
            tracing::info!(caller = %caller.identity, acting = %acting, target = %next, "impersonation refused");
            return Err(denied(&next));
        }
        acting = next;
    }

    if input.scope.is_empty() {
        return Err(ApiError::invalid(
            "Request contains an invalid argument: scope is required.",
        ));
    }
    let lifetime = match input.lifetime.as_deref() {
        None => DEFAULT_LIFETIME_SECONDS,
        Some(text) => parse_duration_seconds(text).ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid value at 'lifetime' (type.googleapis.com/google.protobuf.Duration), \
                 {text:?}"
            ))
        })?,
    };
    if !(1..=MAX_LIFETIME_SECONDS).contains(&lifetime) {
        return Err(ApiError::invalid(format!(
            "Request contains an invalid argument: the lifetime must be between 1s and \
             {MAX_LIFETIME_SECONDS}s."
        )));
    }

    let expire_time = now + TimeDelta::seconds(lifetime);
    let token = format!("ya29.emulator.{:032x}", rand::rng().random::<u128>());
    store.tokens.insert(
        token.clone(),
        Token {
            identity: target.clone(),
            expire_time: Some(expire_time),
        },
    );
    tracing::info!(caller = %caller.identity, service_account = %target, "access token issued");
    Ok(Json(json!({
        "accessToken": token,
        "expireTime": format_time(expire_time),
    })))
}

/// Reads a protobuf duration such as `3600s` or `1.5s`, rounded down to whole seconds.
fn parse_duration_seconds(text: &str) -> Option<i64> {
    let number = text.strip_suffix('s')?;
    let whole = number.split_once('.').map_or(number, |(whole, _)| whole);
    whole.parse().ok()
}
