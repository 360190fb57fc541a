//! `groups.memberships.checkTransitiveMembership` and `searchTransitiveGroups`: membership
//! through nested groups, to any depth.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::app::App;
use crate::cloudidentity::paging::{Limits, page, page_size};
use crate::cloudidentity::query::{self, Clause, Field};
use crate::cloudidentity::{group_not_found, require_admin};
use crate::error::{ApiError, ApiResult};
use crate::extract::Params;
use crate::methods::Method;

/// `GET /v1/groups/{group}/memberships:checkTransitiveMembership?query=member_key_id == 'X'`
pub async fn check(
    State(app): State<App>,
    headers: HeaderMap,
    Path(group_id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let caller = app
        .begin(Method::MembershipsCheckTransitiveMembership, &headers)
        .await?;
    let store = app.store();
    require_admin(&store, &caller)?;
    let clauses = query::parse(params.require("query")?)?;
    query::only_fields(
        &clauses,
        &[Field::MemberKeyId, Field::MemberKeyNamespace],
        false,
    )?;
    let member = member_of(&clauses)?;
    if !store.groups.contains_key(&group_id) {
        return Err(group_not_found(&group_id));
    }
    let has_membership = store.is_transitive_member(&group_id, &member);
    Ok(Json(json!({ "hasMembership": has_membership })))
}

/// `GET /v1/groups/-/memberships:searchTransitiveGroups?query=member_key_id == 'X' && 'L' in
/// labels`
pub async fn search_groups(
    State(app): State<App>,
    headers: HeaderMap,
    Path(group_id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let caller = app
        .begin(Method::MembershipsSearchTransitiveGroups, &headers)
        .await?;
    let store = app.store();
    require_admin(&store, &caller)?;
    if group_id != "-" {
        return Err(ApiError::invalid(
            "Request contains an invalid argument: the parent must be groups/-, as this method \
             searches across all groups.",
        ));
    }
    let clauses = query::parse(params.require("query")?)?;
    query::only_fields(
        &clauses,
        &[Field::MemberKeyId, Field::MemberKeyNamespace, Field::Parent],
        true,
    )?;
    let member = member_of(&clauses)?;
    let labels: Vec<&str> = clauses
        .iter()
        .filter_map(|clause| match clause {
            Clause::HasLabel(label) => Some(label.as_str()),
            _ => None,
        })
        .collect();
    if labels.is_empty() {
        return Err(ApiError::invalid(
            "Request contains an invalid argument: the query must contain a label clause such \
             as 'cloudidentity.googleapis.com/groups.discussion_forum' in labels.",
        ));
    }
    let parent = query::equality(&clauses, Field::Parent);
    let size = page_size(
        &params,
        Limits {
            default: 200,
            max: 1000,
        },
        store.settings.page_size_cap,
    )?;

    let mut items: Vec<(String, Value)> = Vec::new();
    for (id, relation) in store.transitive_groups_of(&member) {
        let Some(group) = store.groups.get(&id) else {
            continue;
        };
        let in_parent = parent.is_none_or(|p| p == format!("customers/{}", group.customer));
        if !in_parent || !labels.iter().all(|label| group.labels.contains_key(*label)) {
            continue;
        }
        let roles: Vec<Value> = match group.membership_of(&member) {
            Some((_, membership)) => membership
                .roles
                .iter()
                .map(|role| json!({ "role": role.name }))
                .collect(),
            None => vec![json!({ "role": "MEMBER" })],
        };
        let relation = json!({
            "groupKey": { "id": group.email },
            "group": group.name(),
            "displayName": group.display_name,
            "labels": group.labels,
            "relationType": relation.as_str(),
            "roles": roles,
        });
        items.push((group.name(), relation));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (memberships, next) = page(items, &params, size)?;
    let mut body = json!({});
    if !memberships.is_empty() {
        body["memberships"] = json!(memberships);
    }
    if let Some(next) = next {
        body["nextPageToken"] = json!(next);
    }
    Ok(Json(body))
}

fn member_of(clauses: &[Clause]) -> ApiResult<String> {
    if query::equality(clauses, Field::MemberKeyNamespace).is_some() {
        return Err(ApiError::invalid(
            "Request contains an invalid argument: member_key_namespace (identity-mapped \
             members) is not supported.",
        ));
    }
    query::equality(clauses, Field::MemberKeyId)
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| {
            ApiError::invalid(
                "Request contains an invalid argument: the query must contain \
                 member_key_id == 'EMAIL'.",
            )
        })
}
