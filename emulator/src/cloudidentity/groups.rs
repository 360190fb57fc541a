//! `groups.create`, `lookup`, `get`, `patch`, `delete`, `list` and `search`.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::app::App;
use crate::cloudidentity::paging::{Limits, View, page, page_size};
use crate::cloudidentity::query::{self, Clause, Field};
use crate::cloudidentity::wire::{
    EMPTY_TYPE, GROUP_TYPE, GroupInput, done_operation, field_mask_paths, group_json,
};
use crate::cloudidentity::{group_not_found, require_admin};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Params, parse_json};
use crate::methods::Method;
use crate::state::{
    DISCUSSION_FORUM_LABEL, Group, LOCKED_LABEL, Membership, MembershipRole, SECURITY_LABEL, Store,
    is_valid_email,
};

const MAX_DESCRIPTION_CHARS: usize = 4096;

/// `POST /v1/groups?initialGroupConfig=...`
pub async fn create(
    State(app): State<App>,
    headers: HeaderMap,
    params: Params,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let caller = app.begin(Method::GroupsCreate, &headers).await?;
    let now = app.clock.now();
    let mut store = app.store();
    require_admin(&store, &caller)?;
    let input: GroupInput = parse_json(&body)?;

    let with_owner = match params.get("initialGroupConfig") {
        Some("WITH_INITIAL_OWNER") => true,
        Some("EMPTY") => false,
        other => {
            return Err(ApiError::invalid(format!(
                "Request contains an invalid argument: initialGroupConfig must be \
                 WITH_INITIAL_OWNER or EMPTY, got {}.",
                other.unwrap_or("nothing")
            )));
        }
    };
    let key = input.group_key.unwrap_or_default();
    if key.namespace.is_some() {
        return Err(ApiError::invalid(
            "Request contains an invalid argument: identity-mapped groups (groupKey.namespace) \
             are not supported.",
        ));
    }
    let email = key.id.unwrap_or_default().to_ascii_lowercase();
    if !is_valid_email(&email) {
        return Err(ApiError::invalid(format!(
            "Request contains an invalid argument: groupKey.id {email:?} is not a valid email \
             address."
        )));
    }
    let parent = input.parent.unwrap_or_default();
    let Some(customer) = parent.strip_prefix("customers/").filter(|c| !c.is_empty()) else {
        return Err(ApiError::invalid(format!(
            "Request contains an invalid argument: parent {parent:?} must be customers/ID."
        )));
    };
    let customer = store
        .customer_for(Some(customer), &email)
        .map_err(|reason| {
            ApiError::invalid(format!("Request contains an invalid argument: {reason}."))
        })?;
    let labels = input.labels.unwrap_or_default();
    check_labels(&labels)?;
    let description = input.description.unwrap_or_default();
    check_description(&description)?;
    if store.group_by_email(&email).is_some() || store.users.contains(&email) {
        return Err(ApiError::already_exists(format!(
            "Entity already exists: a group or user with the address {email} exists."
        )));
    }

    let id = store.new_group_id();
    store.account_id(&email);
    let mut group = Group {
        id: id.clone(),
        email: email.clone(),
        customer,
        display_name: input.display_name.unwrap_or_default(),
        description,
        labels,
        create_time: now,
        update_time: now,
        memberships: BTreeMap::new(),
    };
    if with_owner {
        let kind = store.member_kind(&caller.identity);
        let owner_id = store.account_id(&caller.identity);
        group.memberships.insert(
            owner_id,
            Membership {
                member: caller.identity.clone(),
                kind,
                roles: ["MEMBER", "OWNER"]
                    .map(|name| MembershipRole {
                        name: name.to_owned(),
                        expire_time: None,
                    })
                    .to_vec(),
                create_time: now,
                update_time: now,
            },
        );
    }
    let rendered = group_json(&group, View::Full);
    store.groups.insert(id, group);
    tracing::info!(group = %email, "group created");
    Ok(Json(done_operation(GROUP_TYPE, rendered)))
}

/// `GET /v1/groups:lookup?groupKey.id=EMAIL`
pub async fn lookup(
    State(app): State<App>,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Json<Value>> {
    let caller = app.begin(Method::GroupsLookup, &headers).await?;
    let store = app.store();
    require_admin(&store, &caller)?;
    let email = params.require("groupKey.id")?.to_ascii_lowercase();
    if params.get("groupKey.namespace").is_some() {
        return Err(group_not_found(&email));
    }
    let group = store
        .group_by_email(&email)
        .ok_or_else(|| group_not_found(&email))?;
    Ok(Json(json!({ "name": group.name() })))
}

/// `GET /v1/groups/{group}`
pub async fn get(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let caller = app.begin(Method::GroupsGet, &headers).await?;
    let store = app.store();
    require_admin(&store, &caller)?;
    let group = store.groups.get(&id).ok_or_else(|| group_not_found(&id))?;
    Ok(Json(group_json(group, View::Full)))
}

/// `PATCH /v1/groups/{group}?updateMask=...`
pub async fn patch(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    params: Params,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let caller = app.begin(Method::GroupsPatch, &headers).await?;
    let now = app.clock.now();
    let mut store = app.store();
    require_admin(&store, &caller)?;
    let input: GroupInput = parse_json(&body)?;
    let paths = field_mask_paths(params.require("updateMask")?);
    let group = store
        .groups
        .get_mut(&id)
        .ok_or_else(|| group_not_found(&id))?;

    for path in &paths {
        match path.as_str() {
            "display_name" => group.display_name = input.display_name.clone().unwrap_or_default(),
            "description" => {
                let description = input.description.clone().unwrap_or_default();
                check_description(&description)?;
                group.description = description;
            }
            "labels" => {
                let labels = input.labels.clone().unwrap_or_default();
                check_labels(&labels)?;
                if group.labels.contains_key(SECURITY_LABEL) && !labels.contains_key(SECURITY_LABEL)
                {
                    return Err(ApiError::invalid(
                        "Request contains an invalid argument: the security label cannot be \
                         removed from a group once added.",
                    ));
                }
                group.labels = labels;
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "Request contains an invalid argument: update_mask path {other:?} is not \
                     one of display_name, description, labels."
                )));
            }
        }
    }
    group.update_time = now;
    Ok(Json(done_operation(
        GROUP_TYPE,
        group_json(group, View::Full),
    )))
}

/// `DELETE /v1/groups/{group}`
pub async fn delete(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let caller = app.begin(Method::GroupsDelete, &headers).await?;
    let mut store = app.store();
    require_admin(&store, &caller)?;
    let group = store
        .delete_group(&id)
        .ok_or_else(|| group_not_found(&id))?;
    tracing::info!(group = %group.email, "group deleted");
    Ok(Json(done_operation(EMPTY_TYPE, json!({}))))
}

/// `GET /v1/groups?parent=customers/ID&view=&pageSize=&pageToken=`
pub async fn list(
    State(app): State<App>,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Json<Value>> {
    let caller = app.begin(Method::GroupsList, &headers).await?;
    let store = app.store();
    require_admin(&store, &caller)?;
    let customer = customer_of_parent(&store, params.require("parent")?)?;
    let clauses = [Clause::Equals(
        Field::Parent,
        format!("customers/{customer}"),
    )];
    respond_with_groups(&store, &params, &clauses)
}

/// `GET /v1/groups:search?query=...&view=&pageSize=&pageToken=`
pub async fn search(
    State(app): State<App>,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Json<Value>> {
    let caller = app.begin(Method::GroupsSearch, &headers).await?;
    let store = app.store();
    require_admin(&store, &caller)?;
    let clauses = query::parse(params.require("query")?)?;
    query::only_fields(
        &clauses,
        &[
            Field::Parent,
            Field::GroupKey,
            Field::DisplayName,
            Field::DomainName,
        ],
        true,
    )?;
    let parent = query::equality(&clauses, Field::Parent).ok_or_else(|| {
        ApiError::invalid(
            "Request contains an invalid argument: the query must contain \
             parent == 'customers/ID'.",
        )
    })?;
    customer_of_parent(&store, parent)?;
    respond_with_groups(&store, &params, &clauses)
}

fn respond_with_groups(
    store: &Store,
    params: &Params,
    clauses: &[Clause],
) -> ApiResult<Json<Value>> {
    let view = View::from_params(params)?;
    let size = page_size(params, Limits::for_view(view), store.settings.page_size_cap)?;
    let mut matching: Vec<(String, &Group)> = store
        .groups
        .values()
        .filter(|group| clauses.iter().all(|clause| group_matches(group, clause)))
        .map(|group| (group.name(), group))
        .collect();
    matching.sort_by(|a, b| a.0.cmp(&b.0));
    let (groups, next) = page(matching, params, size)?;
    let mut body = json!({});
    if !groups.is_empty() {
        let rendered: Vec<Value> = groups.iter().map(|g| group_json(g, view)).collect();
        body["groups"] = json!(rendered);
    }
    if let Some(next) = next {
        body["nextPageToken"] = json!(next);
    }
    Ok(Json(body))
}

fn group_matches(group: &Group, clause: &Clause) -> bool {
    let value = |field: Field| -> String {
        match field {
            Field::Parent => format!("customers/{}", group.customer),
            Field::GroupKey => group.email.clone(),
            Field::DisplayName => group.display_name.clone(),
            Field::DomainName => group
                .email
                .rsplit_once('@')
                .map(|(_, domain)| domain.to_owned())
                .unwrap_or_default(),
            Field::MemberKeyId | Field::MemberKeyNamespace => String::new(),
        }
    };
    let folded = |field: Field, wanted: &str| -> (String, String) {
        // Addresses and domains compare without case; names and parents exactly.
        if matches!(field, Field::GroupKey | Field::DomainName) {
            (value(field), wanted.to_ascii_lowercase())
        } else {
            (value(field), wanted.to_owned())
        }
    };
    match clause {
        Clause::Equals(field, wanted) => {
            let (have, wanted) = folded(*field, wanted);
            have == wanted
        }
        Clause::StartsWith(field, wanted) => {
            let (have, wanted) = folded(*field, wanted);
            have.starts_with(&wanted)
        }
        Clause::Contains(field, wanted) => {
            let (have, wanted) = folded(*field, wanted);
            have.contains(&wanted)
        }
        Clause::HasLabel(label) => group.labels.contains_key(label),
    }
}

fn customer_of_parent(store: &Store, parent: &str) -> ApiResult<String> {
    let customer = parent
        .strip_prefix("customers/")
        .filter(|id| store.customers.contains_key(*id))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "Request contains an invalid argument: parent {parent:?} is not a known \
                 customers/ID."
            ))
        })?;
    Ok(customer.to_owned())
}

fn check_labels(labels: &BTreeMap<String, String>) -> ApiResult<()> {
    if !labels.contains_key(DISCUSSION_FORUM_LABEL) {
        return Err(ApiError::invalid(format!(
            "Request contains an invalid argument: a Google group needs the label \
             {DISCUSSION_FORUM_LABEL}."
        )));
    }
    for (key, value) in labels {
        if ![DISCUSSION_FORUM_LABEL, SECURITY_LABEL, LOCKED_LABEL].contains(&key.as_str()) {
            return Err(ApiError::invalid(format!(
                "Request contains an invalid argument: the label {key:?} is not supported."
            )));
        }
        if !value.is_empty() {
            return Err(ApiError::invalid(format!(
                "Request contains an invalid argument: the label {key:?} must have an empty \
                 value."
            )));
        }
    }
    Ok(())
}

fn check_description(description: &str) -> ApiResult<()> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::invalid(format!(
            "Request contains an invalid argument: the description is longer than \
             {MAX_DESCRIPTION_CHARS} characters."
        )));
    }
    Ok(())
}
