//! The JSON shapes of Cloud Identity's groups API, and how stored groups and memberships are
//! rendered into them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clock::format_time;
use crate::cloudidentity::paging::View;
use crate::state::{Group, Membership};

/// The `@type` of a group inside an operation's response.
pub const GROUP_TYPE: &str = "type.googleapis.com/google.apps.cloudidentity.groups.v1.Group";
/// The `@type` of a membership inside an operation's response.
pub const MEMBERSHIP_TYPE: &str =
    "type.googleapis.com/google.apps.cloudidentity.groups.v1.Membership";
/// The `@type` of an empty response.
pub const EMPTY_TYPE: &str = "type.googleapis.com/google.protobuf.Empty";

/// An entity key: an email address and, for identity-mapped groups, a namespace.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityKey {
    /// The email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The identity source, for identity-mapped groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A group as a caller sends it to `create` or `patch`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GroupInput {
    /// The group's address.
    pub group_key: Option<EntityKey>,
    /// `customers/{customer}`.
    pub parent: Option<String>,
    /// The display name.
    pub display_name: Option<String>,
    /// The description.
    pub description: Option<String>,
    /// The labels.
    pub labels: Option<BTreeMap<String, String>>,
}

/// A membership as a caller sends it to `create`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MembershipInput {
    /// The member's address.
    pub preferred_member_key: Option<EntityKey>,
    /// The roles; a single `MEMBER` role when absent.
    pub roles: Option<Vec<RoleInput>>,
}

/// A membership role as a caller sends it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RoleInput {
    /// `MEMBER`, `MANAGER` or `OWNER`.
    pub name: Option<String>,
    /// The expiry.
    pub expiry_detail: Option<ExpiryInput>,
}

/// An expiry as a caller sends it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExpiryInput {
    /// When the role ends.
    pub expire_time: Option<DateTime<Utc>>,
}

/// The body of `modifyMembershipRoles`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ModifyRolesInput {
    /// Roles to add.
    pub add_roles: Option<Vec<RoleInput>>,
    /// Role names to remove.
    pub remove_roles: Option<Vec<String>>,
    /// Roles to change.
    pub update_roles_params: Option<Vec<UpdateRoleInput>>,
}

/// One change of `modifyMembershipRoles`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UpdateRoleInput {
    /// The fields to change; only `expiry_detail.expire_time` is supported.
    pub field_mask: Option<String>,
    /// The role with its new values.
    pub membership_role: Option<RoleInput>,
}

/// Renders a group.
pub fn group_json(group: &Group, view: View) -> Value {
    let mut value = json!({
        "name": group.name(),
        "groupKey": { "id": group.email },
        "parent": format!("customers/{}", group.customer),
        "displayName": group.display_name,
        "labels": group.labels,
    });
    if !group.description.is_empty() {
        value["description"] = json!(group.description);
    }
    if view == View::Full {
        value["createTime"] = json!(format_time(group.create_time));
        value["updateTime"] = json!(format_time(group.update_time));
    }
    value
}

/// Renders a membership of a group.
pub fn membership_json(group: &Group, id: &str, membership: &Membership, view: View) -> Value {
    let roles: Vec<Value> = membership
        .roles
        .iter()
        .map(|role| match role.expire_time {
            Some(time) => json!({
                "name": role.name,
                "expiryDetail": { "expireTime": format_time(time) },
            }),
            None => json!({ "name": role.name }),
        })
        .collect();
    let mut value = json!({
        "name": format!("{}/memberships/{id}", group.name()),
        "preferredMemberKey": { "id": membership.member },
        "roles": roles,
        "type": membership.kind.as_str(),
    });
    if view == View::Full {
        value["createTime"] = json!(format_time(membership.create_time));
        value["updateTime"] = json!(format_time(membership.update_time));
    }
    value
}

/// A finished long-running operation whose response is `value`, tagged with `type_url`.
pub fn done_operation(type_url: &str, value: Value) -> Value {
    let mut response = serde_json::Map::new();
    response.insert("@type".to_owned(), json!(type_url));
    if let Value::Object(fields) = value {
        response.extend(fields);
    }
    json!({ "done": true, "response": response })
}

/// Turns a field mask's paths into snake case, as the server side of Google's APIs reads them
/// (`expiryDetail.expireTime` and `expiry_detail.expire_time` are the same path).
pub fn field_mask_paths(mask: &str) -> Vec<String> {
    mask.split(',')
        .map(str::trim)
        .filter(|path| !path.is_empty())
        .map(|path| {
            let mut snake = String::with_capacity(path.len() + 4);
            for c in path.chars() {
                if c.is_ascii_uppercase() {
                    snake.push('_');
                    snake.push(c.to_ascii_lowercase());
                } else {
                    snake.push(c);
                }
            }
            snake
        })
        .collect()
}
