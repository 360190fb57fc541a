//! The IAM policy methods of Resource Manager v3 (`cloudresourcemanager.googleapis.com/v3`):
//! `getIamPolicy` and `setIamPolicy` on projects, folders and organizations.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use crate::app::App;
use crate::cloudidentity::wire::field_mask_paths;
use crate::error::{ApiError, ApiResult};
use crate::extract::parse_json;
use crate::methods::Method;
use crate::state::policy::{Policy, normalize, validate_for_write};

/// The routes of the IAM policy methods.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/v3/projects/{segment}", post(projects))
        .route("/v3/folders/{segment}", post(folders))
        .route("/v3/organizations/{segment}", post(organizations))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct GetIamPolicyInput {
    options: Option<GetPolicyOptions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct GetPolicyOptions {
    requested_policy_version: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct SetIamPolicyInput {
    policy: Option<Policy>,
    update_mask: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Project,
    Folder,
    Organization,
}

impl Kind {
    fn collection(self) -> &'static str {
        match self {
            Kind::Project => "projects",
            Kind::Folder => "folders",
            Kind::Organization => "organizations",
        }
    }

    fn get_method(self) -> Method {
        match self {
            Kind::Project => Method::ProjectsGetIamPolicy,
            Kind::Folder => Method::FoldersGetIamPolicy,
            Kind::Organization => Method::OrganizationsGetIamPolicy,
        }
    }

    fn set_method(self) -> Method {
        match self {
            Kind::Project => Method::ProjectsSetIamPolicy,
            Kind::Folder => Method::FoldersSetIamPolicy,
            Kind::Organization => Method::OrganizationsSetIamPolicy,
        }
    }
}

async fn projects(
    state: State<App>,
    headers: HeaderMap,
    path: Path<String>,
    body: Bytes,
) -> Response {
    dispatch(Kind::Project, state, headers, path, body).await
}

async fn folders(
    state: State<App>,
    headers: HeaderMap,
    path: Path<String>,
    body: Bytes,
) -> Response {
    dispatch(Kind::Folder, state, headers, path, body).await
}

async fn organizations(
    state: State<App>,
    headers: HeaderMap,
    path: Path<String>,
    body: Bytes,
) -> Response {
    dispatch(Kind::Organization, state, headers, path, body).await
}

/// Splits `ID:verb` (the router cannot split a segment at a colon) and runs the verb.
async fn dispatch(
    kind: Kind,
    State(app): State<App>,
    headers: HeaderMap,
    Path(segment): Path<String>,
    body: Bytes,
) -> Response {
    let resource = |id: &str| format!("{}/{id}", kind.collection());
    match segment.rsplit_once(':') {
        Some((id, "getIamPolicy")) => get_iam_policy(&app, kind, &headers, &resource(id), &body)
            .await
            .into_response(),
        Some((id, "setIamPolicy")) => set_iam_policy(&app, kind, &headers, &resource(id), &body)
            .await
            .into_response(),
        _ => ApiError::not_found(format!(
            "The requested URL /v3/{}/{segment} was not found.",
            kind.collection()
        ))
        .into_response(),
    }
}

async fn get_iam_policy(
    app: &App,
    kind: Kind,
    headers: &HeaderMap,
    resource: &str,
    body: &Bytes,
) -> ApiResult<Json<Policy>> {
    let caller = app.begin(kind.get_method(), headers).await?;
    let mut store = app.store();
    if !store.can_set_iam_policy(&caller.identity, resource) {
        tracing::info!(identity = %caller.identity, resource, "getIamPolicy refused");
        return Err(ApiError::caller_lacks_permission());
    }
    let input: GetIamPolicyInput = parse_json(body)?;
    let requested = input
        .options
        .and_then(|options| options.requested_policy_version)
        .unwrap_or(0);
    if ![0, 1, 3].contains(&requested) {
        return Err(ApiError::invalid(format!(
            "Invalid requested policy version {requested}: the valid versions are 0, 1 and 3."
        )));
    }
    if !store.policies.contains_key(resource) {
        let etag = store.new_etag();
        store.policies.insert(
            resource.to_owned(),
            Policy {
                version: Some(1),
                etag: Some(etag),
                ..Policy::default()
            },
        );
    }
    let policy = store
        .policies
        .get(resource)
        .map(|policy| policy.render(requested))
        .unwrap_or_default();
    Ok(Json(policy))
}

async fn set_iam_policy(
    app: &App,
    kind: Kind,
    headers: &HeaderMap,
    resource: &str,
    body: &Bytes,
) -> ApiResult<Json<Policy>> {
    let caller = app.begin(kind.set_method(), headers).await?;
    let mut store = app.store();
    if !store.can_set_iam_policy(&caller.identity, resource) {
        tracing::info!(identity = %caller.identity, resource, "setIamPolicy refused");
        return Err(ApiError::caller_lacks_permission());
    }
    let input: SetIamPolicyInput = parse_json(body)?;
    let Some(mut policy) = input.policy else {
        return Err(ApiError::invalid(
            "Request contains an invalid argument: the policy is required.",
        ));
    };
    let paths = match input.update_mask.as_deref() {
        Some(mask) if !mask.trim().is_empty() => field_mask_paths(mask),
        _ => vec!["bindings".to_owned(), "etag".to_owned()],
    };
    if let Some(path) = paths
        .iter()
        .find(|p| !["bindings", "etag", "audit_configs", "version"].contains(&p.as_str()))
    {
        return Err(ApiError::invalid(format!(
            "Request contains an invalid argument: the update mask path {path:?} is not one of \
             bindings, etag, audit_configs, version."
        )));
    }

    let stored = store.policies.get(resource).cloned().unwrap_or_default();
    validate_for_write(&policy, &stored)?;
    if let Some(etag) = &policy.etag
        && Some(etag) != stored.etag.as_ref()
    {
        tracing::info!(resource, "setIamPolicy with a stale etag");
        return Err(ApiError::concurrent_policy_change());
    }

    let mut next = stored;
    if paths.iter().any(|p| p == "bindings") {
        next.bindings = normalize(std::mem::take(&mut policy.bindings));
    }
    if paths.iter().any(|p| p == "audit_configs") {
        next.audit_configs = std::mem::take(&mut policy.audit_configs);
    }
    next.version = Some(if next.has_conditions() { 3 } else { 1 });
    next.etag = Some(store.new_etag());
    store.policies.insert(resource.to_owned(), next.clone());
    tracing::info!(resource, identity = %caller.identity, "IAM policy written");
    Ok(Json(next))
}
