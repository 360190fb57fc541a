//! Cloud Identity: security groups and memberships that expire by themselves.

use std::collections::HashMap;

use google_cloudidentity1::FieldMask;
use google_cloudidentity1::api::{
    EntityKey, ExpiryDetail, Group, Membership as ApiMembership, MembershipRole,
    ModifyMembershipRolesRequest, Operation, UpdateMembershipRolesParams,
};
use jiff::Timestamp;

use crate::google::EnvironmentClient;
use crate::google::error::{ApiCall, GoogleError};
use crate::google::transport::{attempt, from_chrono, to_chrono};
use crate::google::types::{GroupRef, Membership};

const DISCUSSION_FORUM_LABEL: &str = "cloudidentity.googleapis.com/groups.discussion_forum";
const SECURITY_LABEL: &str = "cloudidentity.googleapis.com/groups.security";
const MEMBER_ROLE: &str = "MEMBER";

/// `customers/{id}` from either `{id}` or `customers/{id}`.
fn customer_parent(customer_id: &str) -> String {
    let id = customer_id
        .strip_prefix("customers/")
        .unwrap_or(customer_id);
    format!("customers/{id}")
}

/// Values spliced into a Cloud Identity query must not end the quoted string they stand in.
fn check_query_literal(argument: &'static str, value: &str) -> Result<(), GoogleError> {
    if value.is_empty() || value.contains(['\'', '"', '\\']) {
        return Err(GoogleError::InvalidArgument {
            argument,
            message: format!("{value:?} must be non-empty and free of quotes and backslashes"),
        });
    }
    Ok(())
}

fn required<T>(call: &ApiCall, field: &str, value: Option<T>) -> Result<T, GoogleError> {
    value.ok_or_else(|| GoogleError::unexpected(call.clone(), format!("no {field} in response")))
}

/// The domain view of a membership: its member and the expiry of its `MEMBER` role.
fn membership_from_api(
    call: &ApiCall,
    membership: ApiMembership,
) -> Result<Membership, GoogleError> {
    let name = required(call, "membership name", membership.name)?;
    let member = required(
        call,
        "preferredMemberKey",
        membership.preferred_member_key.and_then(|key| key.id),
    )?;
    let expiry = membership
        .roles
        .unwrap_or_default()
        .into_iter()
        .find(|role| role.name.as_deref() == Some(MEMBER_ROLE))
        .and_then(|role| role.expiry_detail)
        .and_then(|detail| detail.expire_time);
    let expire_time = expiry.map(|time| from_chrono(call, time)).transpose()?;
    Ok(Membership {
        name,
        member,
        expire_time,
    })
}

/// The resource name of what a finished long-running operation created, if it says.
fn created_name(operation: &Operation) -> Option<String> {
    let response = operation.response.as_ref()?;
    response
        .get("name")
        .and_then(|name| name.as_str())
        .map(str::to_owned)
}

fn member_role(expire_time: chrono::DateTime<chrono::Utc>) -> MembershipRole {
    MembershipRole {
        name: Some(MEMBER_ROLE.to_owned()),
        expiry_detail: Some(ExpiryDetail {
            expire_time: Some(expire_time),
        }),
        ..MembershipRole::default()
    }
}

impl EnvironmentClient {
    /// The group with this email address, if it exists.
    pub async fn lookup_group(&self, email: &str) -> Result<Option<GroupRef>, GoogleError> {
        let call = ApiCall::new("groups.lookup", email);
        let found = self
            .run(&call, || async {
                attempt!(call, |capture| self
                    .inner
                    .identity
                    .groups()
                    .lookup()
                    .group_key_id(email)
                    .delegate(capture)
                    .doit())
            })
            .await;

        match found {
            Ok(response) => Ok(Some(GroupRef {
                name: required(&call, "group name", response.name)?,
                email: email.to_owned(),
            })),
            Err(GoogleError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Makes sure a security group with this email exists under the customer, and that its
    /// description is `description`.
    ///
    /// A new group gets the discussion-forum and security labels and no initial members. A
    /// creation that races with another (HTTP 409) is settled by looking the group up. The
    /// display name of an existing group is left as it is.
    pub async fn ensure_security_group(
        &self,
        customer_id: &str,
        email: &str,
        display_name: &str,
        description: &str,
    ) -> Result<GroupRef, GoogleError> {
        if let Some(group) = self.lookup_group(email).await? {
            self.update_description(&group, description).await?;
            return Ok(group);
        }

        let parent = customer_parent(customer_id);
        let call = ApiCall::new("groups.create", email);
        let group = Group {
            group_key: Some(EntityKey {
                id: Some(email.to_owned()),
                namespace: None,
            }),
            parent: Some(parent.clone()),
            display_name: Some(display_name.to_owned()),
            description: Some(description.to_owned()),
            labels: Some(HashMap::from([
                (DISCUSSION_FORUM_LABEL.to_owned(), String::new()),
                (SECURITY_LABEL.to_owned(), String::new()),
            ])),
            ..Group::default()
        };
        let created = self
            .run(&call, || async {
                attempt!(call, |capture| self
                    .inner
                    .identity
                    .groups()
                    .create(group.clone())
                    .initial_group_config("EMPTY")
                    .delegate(capture)
                    .doit())
            })
            .await;

        match created {
            Ok(operation) => {
                let name = created_name(&operation);
                tracing::info!(group = email, %parent, name = ?name, "created security group");
                match name {
                    Some(name) => Ok(GroupRef {
                        name,
                        email: email.to_owned(),
                    }),
                    None => self.lookup_created_group(&call, email).await,
                }
            }
            Err(GoogleError::Conflict { .. }) => {
                tracing::debug!(
                    group = email,
                    "group was created concurrently; looking it up"
                );
                let group = self.lookup_created_group(&call, email).await?;
                self.update_description(&group, description).await?;
                Ok(group)
            }
            Err(error) => Err(error),
        }
    }

    async fn lookup_created_group(
        &self,
        call: &ApiCall,
        email: &str,
    ) -> Result<GroupRef, GoogleError> {
        self.lookup_group(email).await?.ok_or_else(|| {
            GoogleError::unexpected(
                call.clone(),
                "the group was created but cannot be looked up",
            )
        })
    }

    async fn update_description(
        &self,
        group: &GroupRef,
        description: &str,
    ) -> Result<(), GoogleError> {
        let call = ApiCall::new("groups.get", group.name.as_str());
        let current = self
            .run(&call, || async {
                attempt!(call, |capture| self
                    .inner
                    .identity
                    .groups()
                    .get(&group.name)
                    .delegate(capture)
                    .doit())
            })
            .await?;
        if current.description.as_deref().unwrap_or_default() == description {
            return Ok(());
        }

        let call = ApiCall::new("groups.patch", group.name.as_str());
        let patch = Group {
            description: Some(description.to_owned()),
            ..Group::default()
        };
        self.run(&call, || async {
            attempt!(call, |capture| self
                .inner
                .identity
                .groups()
                .patch(patch.clone(), &group.name)
                .update_mask(FieldMask::new(&["description"]))
                .delegate(capture)
                .doit())
        })
        .await?;
        tracing::info!(group = %group.email, "updated group description");
        Ok(())
    }

    /// All groups of the customer whose email starts with `email_prefix`, every page read.
    pub async fn search_groups_by_prefix(
        &self,
        customer_id: &str,
        email_prefix: &str,
    ) -> Result<Vec<GroupRef>, GoogleError> {
        check_query_literal("customer_id", customer_id)?;
        check_query_literal("email_prefix", email_prefix)?;
        let parent = customer_parent(customer_id);
        let query = format!("parent == '{parent}' && group_key.startsWith('{email_prefix}')");
        let call = ApiCall::new("groups.search", query.as_str());

        let mut groups = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let page = self
                .run(&call, || async {
                    let mut request = self
                        .inner
                        .identity
                        .groups()
                        .search()
                        .query(&query)
                        .view("BASIC")
                        .page_size(self.inner.settings.page_size);
                    if let Some(token) = &page_token {
                        request = request.page_token(token);
                    }
                    attempt!(call, |capture| request.delegate(capture).doit())
                })
                .await?;

            for group in page.groups.unwrap_or_default() {
                groups.push(GroupRef {
                    name: required(&call, "group name", group.name)?,
                    email: required(&call, "groupKey", group.group_key.and_then(|key| key.id))?,
                });
            }
            match page.next_page_token.filter(|token| !token.is_empty()) {
                Some(token) => page_token = Some(token),
                None => return Ok(groups),
            }
        }
    }

    /// All direct memberships of the group, every page read.
    pub async fn list_memberships(&self, group: &GroupRef) -> Result<Vec<Membership>, GoogleError> {
        let call = ApiCall::new("groups.memberships.list", group.name.as_str());
        let mut memberships = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let page = self
                .run(&call, || async {
                    let mut request = self
                        .inner
                        .identity
                        .groups()
                        .memberships_list(&group.name)
                        .view("FULL")
                        .page_size(self.inner.settings.page_size);
                    if let Some(token) = &page_token {
                        request = request.page_token(token);
                    }
                    attempt!(call, |capture| request.delegate(capture).doit())
                })
                .await?;

            for membership in page.memberships.unwrap_or_default() {
                memberships.push(membership_from_api(&call, membership)?);
            }
            match page.next_page_token.filter(|token| !token.is_empty()) {
                Some(token) => page_token = Some(token),
                None => return Ok(memberships),
            }
        }
    }

    /// The resource name of `member`'s direct membership of the group, if there is one.
    async fn lookup_membership_name(
        &self,
        group: &GroupRef,
        member: &str,
    ) -> Result<Option<String>, GoogleError> {
        let call = ApiCall::new(
            "groups.memberships.lookup",
            format!("{} in {}", member, group.name),
        );
        let found = self
            .run(&call, || async {
                attempt!(call, |capture| self
                    .inner
                    .identity
                    .groups()
                    .memberships_lookup(&group.name)
                    .member_key_id(member)
                    .delegate(capture)
                    .doit())
            })
            .await;
        match found {
            Ok(response) => Ok(Some(required(&call, "membership name", response.name)?)),
            Err(GoogleError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `member`'s direct membership of the group, if there is one.
    pub async fn lookup_membership(
        &self,
        group: &GroupRef,
        member: &str,
    ) -> Result<Option<Membership>, GoogleError> {
        let Some(name) = self.lookup_membership_name(group, member).await? else {
            return Ok(None);
        };

        let call = ApiCall::new("groups.memberships.get", name.as_str());
        let found = self
            .run(&call, || async {
                attempt!(call, |capture| self
                    .inner
                    .identity
                    .groups()
                    .memberships_get(&name)
                    .delegate(capture)
                    .doit())
            })
            .await;
        match found {
            Ok(membership) => membership_from_api(&call, membership).map(Some),
            Err(GoogleError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Makes `member` a member of the group until exactly `expire_time`.
    ///
    /// A new membership is created with that expiry. An existing one gets its expiry set to
    /// it, whether that is later or earlier than before, and a membership that never expired
    /// starts to expire; deciding which expiry is right is the caller's business. Calling it
    /// again with the same arguments changes nothing.
    pub async fn ensure_membership(
        &self,
        group: &GroupRef,
        member: &str,
        expire_time: Timestamp,
    ) -> Result<Membership, GoogleError> {
        let expiry = to_chrono("expire_time", expire_time)?;
        let call = ApiCall::new(
            "groups.memberships.create",
            format!("{} in {}", member, group.name),
        );
        let membership = ApiMembership {
            preferred_member_key: Some(EntityKey {
                id: Some(member.to_owned()),
                namespace: None,
            }),
            roles: Some(vec![member_role(expiry)]),
            ..ApiMembership::default()
        };
        let created = self
            .run(&call, || async {
                attempt!(call, |capture| self
                    .inner
                    .identity
                    .groups()
                    .memberships_create(membership.clone(), &group.name)
                    .delegate(capture)
                    .doit())
            })
            .await;

        match created {
            Ok(operation) => {
                let name = created_name(&operation);
                let name = match name {
                    Some(name) => name,
                    None => self
                        .lookup_membership_name(group, member)
                        .await?
                        .ok_or_else(|| {
                            GoogleError::unexpected(
                                call.clone(),
                                "created membership cannot be found",
                            )
                        })?,
                };
                tracing::info!(
                    group = %group.email,
                    member,
                    expire_time = %expire_time,
                    "added membership"
                );
                Ok(Membership {
                    name,
                    member: member.to_owned(),
                    expire_time: Some(expire_time),
                })
            }
            Err(GoogleError::Conflict { .. }) => {
                let name = self
                    .lookup_membership_name(group, member)
                    .await?
                    .ok_or_else(|| {
                        GoogleError::unexpected(
                            call.clone(),
                            "the membership exists according to Google but cannot be looked up",
                        )
                    })?;
                self.set_membership_expiry(group, &name, member, expire_time, expiry)
                    .await
            }
            Err(error) => Err(error),
        }
    }

    async fn set_membership_expiry(
        &self,
        group: &GroupRef,
        name: &str,
        member: &str,
        expire_time: Timestamp,
        expiry: chrono::DateTime<chrono::Utc>,
    ) -> Result<Membership, GoogleError> {
        let call = ApiCall::new("groups.memberships.modifyMembershipRoles", name);
        let request = ModifyMembershipRolesRequest {
            update_roles_params: Some(vec![UpdateMembershipRolesParams {
                field_mask: Some(FieldMask::new(&["expiryDetail.expire_time"])),
                membership_role: Some(member_role(expiry)),
            }]),
            ..ModifyMembershipRolesRequest::default()
        };
        let response = self
            .run(&call, || async {
                attempt!(call, |capture| self
                    .inner
                    .identity
                    .groups()
                    .memberships_modify_membership_roles(request.clone(), name)
                    .delegate(capture)
                    .doit())
            })
            .await?;
        tracing::info!(
            group = %group.email,
            member,
            expire_time = %expire_time,
            "set membership expiry"
        );

        match response.membership {
            Some(membership) => membership_from_api(&call, membership),
            None => Ok(Membership {
                name: name.to_owned(),
                member: member.to_owned(),
                expire_time: Some(expire_time),
            }),
        }
    }

    /// Removes `member`'s direct membership of the group; false when there was none.
    pub async fn remove_membership(
        &self,
        group: &GroupRef,
        member: &str,
    ) -> Result<bool, GoogleError> {
        let Some(name) = self.lookup_membership_name(group, member).await? else {
            return Ok(false);
        };

        let call = ApiCall::new("groups.memberships.delete", name.as_str());
        let deleted = self
            .run(&call, || async {
                attempt!(call, |capture| self
                    .inner
                    .identity
                    .groups()
                    .memberships_delete(&name)
                    .delegate(capture)
                    .doit())
            })
            .await;
        match deleted {
            Ok(_) => {
                tracing::info!(group = %group.email, member, "removed membership");
                Ok(true)
            }
            Err(GoogleError::NotFound { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Whether `member_email` belongs to the group `group_email`, directly or through nested
    /// groups. A group that does not exist has no members.
    pub async fn is_transitive_member(
        &self,
        group_email: &str,
        member_email: &str,
    ) -> Result<bool, GoogleError> {
        check_query_literal("member_email", member_email)?;
        let Some(group) = self.lookup_group(group_email).await? else {
            return Ok(false);
        };

        let query = format!("member_key_id == '{member_email}'");
        let call = ApiCall::new(
            "groups.memberships.checkTransitiveMembership",
            format!("{member_email} in {}", group.name),
        );
        let response = self
            .run(&call, || async {
                attempt!(call, |capture| self
                    .inner
                    .identity
                    .groups()
                    .memberships_check_transitive_membership(&group.name)
                    .query(&query)
                    .delegate(capture)
                    .doit())
            })
            .await?;
        Ok(response.has_membership.unwrap_or(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids_are_accepted_with_or_without_prefix() {
        assert_eq!(customer_parent("C0123"), "customers/C0123");
        assert_eq!(customer_parent("customers/C0123"), "customers/C0123");
    }

    #[test]
    fn query_literals_with_quotes_are_refused() {
        assert!(check_query_literal("p", "jit.env.").is_ok());
        assert!(check_query_literal("p", "").is_err());
        assert!(check_query_literal("p", "a' || true || '").is_err());
        assert!(check_query_literal("p", "a\\b").is_err());
    }

    #[test]
    fn a_membership_takes_the_expiry_of_its_member_role() {
        let call = ApiCall::new("m", "t");
        let expiry: Timestamp = "2030-01-01T10:00:00Z".parse().expect("valid");
        let membership = ApiMembership {
            name: Some("groups/g/memberships/m".into()),
            preferred_member_key: Some(EntityKey {
                id: Some("alice@example.com".into()),
                namespace: None,
            }),
            roles: Some(vec![
                MembershipRole {
                    name: Some("OWNER".into()),
                    ..MembershipRole::default()
                },
                member_role(to_chrono("e", expiry).expect("in range")),
            ]),
            ..ApiMembership::default()
        };

        let converted = membership_from_api(&call, membership).expect("complete");

        assert_eq!(
            converted,
            Membership {
                name: "groups/g/memberships/m".into(),
                member: "alice@example.com".into(),
                expire_time: Some(expiry),
            }
        );
    }

    #[test]
    fn a_membership_without_member_key_is_an_unexpected_response() {
        let membership = ApiMembership {
            name: Some("groups/g/memberships/m".into()),
            ..ApiMembership::default()
        };

        let error = membership_from_api(&ApiCall::new("m", "t"), membership).expect_err("broken");

        assert_eq!(error.label(), "unexpected_response");
    }
}
