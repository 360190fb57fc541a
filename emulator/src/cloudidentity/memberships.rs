//! `groups.memberships.create`, `lookup`, `get`, `list`, `modifyMembershipRoles` and `delete`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::app::App;
use crate::cloudidentity::paging::{Limits, View, page, page_size};
use crate::cloudidentity::wire::{
    EMPTY_TYPE, MEMBERSHIP_TYPE, MembershipInput, ModifyRolesInput, RoleInput, done_operation,
    field_mask_paths, membership_json,
};
use crate::cloudidentity::{group_not_found, membership_not_found, require_admin};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Params, parse_json};
use crate::methods::Method;
use crate::state::{Membership, MembershipRole, is_valid_email};

const ROLE_NAMES: [&str; 3] = ["MEMBER", "MANAGER", "OWNER"];

/// `POST /v1/groups/{group}/memberships`
pub async fn create(
    State(app): State<App>,
    headers: HeaderMap,
    Path(group_id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let caller = app.begin(Method::MembershipsCreate, &headers).await?;
    let now = app.clock.now();
    let mut store = app.store();
    require_admin(&store, &caller)?;
    let input: MembershipInput = parse_json(&body)?;

    let group = store
        .groups
        .get(&group_id)
        .ok_or_else(|| group_not_found(&group_id))?;
    let key = input.preferred_member_key.unwrap_or_default();
    if key.namespace.is_some() {
        return Err(ApiError::invalid(
            "Request contains an invalid argument: members from identity sources \
             (preferredMemberKey.namespace) are not supported.",
        ));
    }
    let member = key.id.unwrap_or_default().to_ascii_lowercase();
    if !is_valid_email(&member) {
        return Err(ApiError::invalid(format!(
            "Request contains an invalid argument: preferredMemberKey.id {member:?} is not a \
             valid email address."
        )));
    }
    if member == group.email {
        return Err(ApiError::invalid(
            "Request contains an invalid argument: a group cannot be a member of itself.",
        ));
    }
    if group.membership_of(&member).is_some() {
        return Err(ApiError::already_exists(format!(
            "Member already exists: {member} is already a member of {}.",
            group.email
        )));
    }
    let roles = roles_for_create(input.roles.unwrap_or_default(), now)?;

    let kind = store.member_kind(&member);
    let membership_id = store.account_id(&member);
    let group = store
        .groups
        .get_mut(&group_id)
        .ok_or_else(|| group_not_found(&group_id))?;
    let membership = Membership {
        member: member.clone(),
        kind,
        roles,
        create_time: now,
        update_time: now,
    };
    let rendered = membership_json(group, &membership_id, &membership, View::Full);
    group.memberships.insert(membership_id, membership);
    tracing::info!(group = %group.email, member = %member, "membership created");
    Ok(Json(done_operation(MEMBERSHIP_TYPE, rendered)))
}

/// `GET /v1/groups/{group}/memberships:lookup?memberKey.id=EMAIL`
pub async fn lookup(
    State(app): State<App>,
    headers: HeaderMap,
    Path(group_id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let caller = app.begin(Method::MembershipsLookup, &headers).await?;
    let store = app.store();
    require_admin(&store, &caller)?;
    let member = params.require("memberKey.id")?.to_ascii_lowercase();
    let group = store
        .groups
        .get(&group_id)
        .ok_or_else(|| group_not_found(&group_id))?;
    let (id, _) = group
        .membership_of(&member)
        .filter(|_| params.get("memberKey.namespace").is_none())
        .ok_or_else(|| membership_not_found(&member))?;
    Ok(Json(
        json!({ "name": format!("{}/memberships/{id}", group.name()) }),
    ))
}

/// `GET /v1/groups/{group}/memberships/{membership}`
pub async fn get(
    State(app): State<App>,
    headers: HeaderMap,
    Path((group_id, membership_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let caller = app.begin(Method::MembershipsGet, &headers).await?;
    let store = app.store();
    require_admin(&store, &caller)?;
    let group = store
        .groups
        .get(&group_id)
        .ok_or_else(|| group_not_found(&group_id))?;
    let membership = group
        .memberships
        .get(&membership_id)
        .ok_or_else(|| membership_not_found(&membership_id))?;
    Ok(Json(membership_json(
        group,
        &membership_id,
        membership,
        View::Full,
    )))
}

/// `GET /v1/groups/{group}/memberships?view=&pageSize=&pageToken=`
pub async fn list(
    State(app): State<App>,
    headers: HeaderMap,
    Path(group_id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let caller = app.begin(Method::MembershipsList, &headers).await?;
    let store = app.store();
    require_admin(&store, &caller)?;
    let view = View::from_params(&params)?;
    let size = page_size(
        &params,
        Limits::for_view(view),
        store.settings.page_size_cap,
    )?;
    let group = store
        .groups
        .get(&group_id)
        .ok_or_else(|| group_not_found(&group_id))?;
    let items: Vec<(String, Value)> = group
        .memberships
        .iter()
        .map(|(id, membership)| (id.clone(), membership_json(group, id, membership, view)))
        .collect();
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

/// `POST /v1/groups/{group}/memberships/{membership}:modifyMembershipRoles`
pub async fn modify_roles(
    app: &App,
    headers: &HeaderMap,
    group_id: &str,
    membership_id: &str,
    body: &Bytes,
) -> ApiResult<Json<Value>> {
    let caller = app
        .begin(Method::MembershipsModifyMembershipRoles, headers)
        .await?;
    let now = app.clock.now();
    let mut store = app.store();
    require_admin(&store, &caller)?;
    let input: ModifyRolesInput = parse_json(body)?;
    let group = store
        .groups
        .get_mut(group_id)
        .ok_or_else(|| group_not_found(group_id))?;
    let membership = group
        .memberships
        .get_mut(membership_id)
        .ok_or_else(|| membership_not_found(membership_id))?;

    let updates = input.update_roles_params.unwrap_or_default();
    let adds = input.add_roles.unwrap_or_default();
    let removes = input.remove_roles.unwrap_or_default();
    let mut roles = membership.roles.clone();
    match (updates.is_empty(), adds.is_empty() && removes.is_empty()) {
        (false, false) => {
            return Err(ApiError::invalid(
                "Request contains an invalid argument: updating roles in the same request as \
                 adding or removing roles is not supported.",
            ));
        }
        (true, true) => {
            return Err(ApiError::invalid(
                "Request contains an invalid argument: one of addRoles, removeRoles or \
                 updateRolesParams is required.",
            ));
        }
        (false, true) => {
            for update in updates {
                let paths = field_mask_paths(update.field_mask.as_deref().unwrap_or_default());
                if paths != ["expiry_detail.expire_time"] {
                    return Err(ApiError::invalid(format!(
                        "Request contains an invalid argument: the field mask {paths:?} may only \
                         contain expiry_detail.expire_time."
                    )));
                }
                let role = update.membership_role.unwrap_or_default();
                if role.name.as_deref() != Some("MEMBER") {
                    return Err(ApiError::invalid(
                        "Request contains an invalid argument: only the MEMBER role can be \
                         updated.",
                    ));
                }
                let expire_time = role.expiry_detail.and_then(|e| e.expire_time);
                check_expiry(expire_time, now)?;
                for existing in roles.iter_mut().filter(|r| r.name == "MEMBER") {
                    existing.expire_time = expire_time;
                }
            }
        }
        (true, false) => {
            for role in adds {
                let name = role.name.clone().unwrap_or_default();
                if !["MANAGER", "OWNER"].contains(&name.as_str())
                    || roles.iter().any(|r| r.name == name)
                    || role.expiry_detail.is_some()
                {
                    return Err(ApiError::invalid(format!(
                        "Request contains an invalid argument: the role {name:?} cannot be \
                         added; only MANAGER or OWNER, without expiry, that the member does not \
                         have yet."
                    )));
                }
                roles.push(MembershipRole {
                    name,
                    expire_time: None,
                });
            }
            for name in removes {
                if name == "MEMBER" || !roles.iter().any(|r| r.name == name) {
                    return Err(ApiError::invalid(format!(
                        "Request contains an invalid argument: the role {name:?} cannot be \
                         removed."
                    )));
                }
                roles.retain(|r| r.name != name);
            }
        }
    }
    membership.roles = roles;
    membership.update_time = now;
    let updated = membership.clone();
    let rendered = membership_json(group, membership_id, &updated, View::Full);
    Ok(Json(json!({ "membership": rendered })))
}

/// `DELETE /v1/groups/{group}/memberships/{membership}`
pub async fn delete(
    State(app): State<App>,
    headers: HeaderMap,
    Path((group_id, membership_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let caller = app.begin(Method::MembershipsDelete, &headers).await?;
    let mut store = app.store();
    require_admin(&store, &caller)?;
    let group = store
        .groups
        .get_mut(&group_id)
        .ok_or_else(|| group_not_found(&group_id))?;
    let membership = group
        .memberships
        .remove(&membership_id)
        .ok_or_else(|| membership_not_found(&membership_id))?;
    tracing::info!(group = %group.email, member = %membership.member, "membership deleted");
    Ok(Json(done_operation(EMPTY_TYPE, json!({}))))
}

/// The roles of a new membership: `MEMBER` always, first, with any expiry on it.
fn roles_for_create(inputs: Vec<RoleInput>, now: DateTime<Utc>) -> ApiResult<Vec<MembershipRole>> {
    let mut roles: Vec<MembershipRole> = Vec::new();
    for input in inputs {
        let name = input.name.unwrap_or_default();
        if !ROLE_NAMES.contains(&name.as_str()) {
            return Err(ApiError::invalid(format!(
                "Request contains an invalid argument: the role {name:?} is not MEMBER, MANAGER \
                 or OWNER."
            )));
        }
        if roles.iter().any(|r| r.name == name) {
            return Err(ApiError::invalid(format!(
                "Request contains an invalid argument: the role {name} is given twice."
            )));
        }
        let expire_time = input.expiry_detail.and_then(|e| e.expire_time);
        if expire_time.is_some() && name != "MEMBER" {
            return Err(ApiError::invalid(
                "Request contains an invalid argument: expiry details are only supported for \
                 the MEMBER role.",
            ));
        }
        check_expiry(expire_time, now)?;
        roles.push(MembershipRole { name, expire_time });
    }
    if !roles.iter().any(|r| r.name == "MEMBER") {
        roles.push(MembershipRole {
            name: "MEMBER".to_owned(),
            expire_time: None,
        });
    }
    roles.sort_by_key(|role| ROLE_NAMES.iter().position(|n| *n == role.name));
    Ok(roles)
}

fn check_expiry(expire_time: Option<DateTime<Utc>>, now: DateTime<Utc>) -> ApiResult<()> {
    match expire_time {
        Some(time) if time <= now => Err(ApiError::invalid(
            "Request contains an invalid argument: expire_time must be in the future.",
        )),
        _ => Ok(()),
    }
}
