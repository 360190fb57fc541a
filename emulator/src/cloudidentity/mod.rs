//! The Cloud Identity groups API (`cloudidentity.googleapis.com/v1/groups...`).

mod groups;
mod memberships;
pub mod paging;
pub mod query;
mod transitive;
pub mod wire;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::app::{App, Caller};
use crate::error::{ApiError, ApiResult};
use crate::state::Store;

/// The routes of the groups API.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/groups", post(groups::create).get(groups::list))
        .route("/v1/groups:lookup", get(groups::lookup))
        .route("/v1/groups:search", get(groups::search))
        .route(
            "/v1/groups/{group}",
            get(groups::get).patch(groups::patch).delete(groups::delete),
        )
        .route(
            "/v1/groups/{group}/memberships",
            post(memberships::create).get(memberships::list),
        )
        .route(
            "/v1/groups/{group}/memberships:lookup",
            get(memberships::lookup),
        )
        .route(
            "/v1/groups/{group}/memberships:checkTransitiveMembership",
            get(transitive::check),
        )
        .route(
            "/v1/groups/{group}/memberships:searchTransitiveGroups",
            get(transitive::search_groups),
        )
        .route(
            "/v1/groups/{group}/memberships/{membership}",
            get(memberships::get)
                .delete(memberships::delete)
                .post(membership_custom_method),
        )
}

/// `POST .../memberships/{membership}:VERB`: the router cannot split a segment at a colon,
/// so the custom verb is read here.
async fn membership_custom_method(
    State(app): State<App>,
    headers: HeaderMap,
    Path((group_id, segment)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match segment.rsplit_once(':') {
        Some((membership_id, "modifyMembershipRoles")) => {
            memberships::modify_roles(&app, &headers, &group_id, membership_id, &body)
                .await
                .into_response()
        }
        _ => ApiError::not_found(format!(
            "The requested URL /v1/groups/{group_id}/memberships/{segment} was not found."
        ))
        .into_response(),
    }
}

/// Refuses callers that may not use the groups API.
fn require_admin(store: &Store, caller: &Caller) -> ApiResult<()> {
    if store.can_manage_groups(&caller.identity) {
        Ok(())
    } else {
        tracing::info!(identity = %caller.identity, "groups API call refused");
        Err(ApiError::new(
            crate::error::Code::PermissionDenied,
            format!(
                "Permission denied: {} may not manage groups of this customer.",
                caller.identity
            ),
        ))
    }
}

fn group_not_found(key: &str) -> ApiError {
    ApiError::not_found(format!("Cannot find group {key}."))
}

fn membership_not_found(key: &str) -> ApiError {
    ApiError::not_found(format!("Cannot find membership {key}."))
}
