//! The API methods the emulator serves, named by Google's method ids (the ids the client
//! libraries report and that Google's discovery documents use). Request counters and fault
//! rules are keyed by these ids.

/// One emulated API method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `POST /v1/groups`
    GroupsCreate,
    /// `GET /v1/groups:lookup`
    GroupsLookup,
    /// `GET /v1/groups/{group}`
    GroupsGet,
    /// `PATCH /v1/groups/{group}`
    GroupsPatch,
    /// `DELETE /v1/groups/{group}`
    GroupsDelete,
    /// `GET /v1/groups:search`
    GroupsSearch,
    /// `GET /v1/groups`
    GroupsList,
    /// `POST /v1/groups/{group}/memberships`
    MembershipsCreate,
    /// `GET /v1/groups/{group}/memberships:lookup`
    MembershipsLookup,
    /// `GET /v1/groups/{group}/memberships/{membership}`
    MembershipsGet,
    /// `GET /v1/groups/{group}/memberships`
    MembershipsList,
    /// `POST /v1/groups/{group}/memberships/{membership}:modifyMembershipRoles`
    MembershipsModifyMembershipRoles,
    /// `DELETE /v1/groups/{group}/memberships/{membership}`
    MembershipsDelete,
    /// `GET /v1/groups/{group}/memberships:checkTransitiveMembership`
    MembershipsCheckTransitiveMembership,
    /// `GET /v1/groups/-/memberships:searchTransitiveGroups`
    MembershipsSearchTransitiveGroups,
    /// `POST /v3/projects/{project}:getIamPolicy`
    ProjectsGetIamPolicy,
    /// `POST /v3/projects/{project}:setIamPolicy`
    ProjectsSetIamPolicy,
    /// `POST /v3/folders/{folder}:getIamPolicy`
    FoldersGetIamPolicy,
    /// `POST /v3/folders/{folder}:setIamPolicy`
    FoldersSetIamPolicy,
    /// `POST /v3/organizations/{organization}:getIamPolicy`
    OrganizationsGetIamPolicy,
    /// `POST /v3/organizations/{organization}:setIamPolicy`
    OrganizationsSetIamPolicy,
    /// `POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken`
    GenerateAccessToken,
}

impl Method {
    /// Every method, in a fixed order.
    pub const ALL: [Method; 22] = [
        Method::GroupsCreate,
        Method::GroupsLookup,
        Method::GroupsGet,
        Method::GroupsPatch,
        Method::GroupsDelete,
        Method::GroupsSearch,
        Method::GroupsList,
        Method::MembershipsCreate,
        Method::MembershipsLookup,
        Method::MembershipsGet,
        Method::MembershipsList,
        Method::MembershipsModifyMembershipRoles,
        Method::MembershipsDelete,
        Method::MembershipsCheckTransitiveMembership,
        Method::MembershipsSearchTransitiveGroups,
        Method::ProjectsGetIamPolicy,
        Method::ProjectsSetIamPolicy,
        Method::FoldersGetIamPolicy,
        Method::FoldersSetIamPolicy,
        Method::OrganizationsGetIamPolicy,
        Method::OrganizationsSetIamPolicy,
        Method::GenerateAccessToken,
    ];

    /// Google's method id, such as `cloudidentity.groups.memberships.create`.
    pub fn id(self) -> &'static str {
        match self {
            Method::GroupsCreate => "cloudidentity.groups.create",
            Method::GroupsLookup => "cloudidentity.groups.lookup",
            Method::GroupsGet => "cloudidentity.groups.get",
            Method::GroupsPatch => "cloudidentity.groups.patch",
            Method::GroupsDelete => "cloudidentity.groups.delete",
            Method::GroupsSearch => "cloudidentity.groups.search",
            Method::GroupsList => "cloudidentity.groups.list",
            Method::MembershipsCreate => "cloudidentity.groups.memberships.create",
            Method::MembershipsLookup => "cloudidentity.groups.memberships.lookup",
            Method::MembershipsGet => "cloudidentity.groups.memberships.get",
            Method::MembershipsList => "cloudidentity.groups.memberships.list",
            Method::MembershipsModifyMembershipRoles => {
                "cloudidentity.groups.memberships.modifyMembershipRoles"
            }
            Method::MembershipsDelete => "cloudidentity.groups.memberships.delete",
            Method::MembershipsCheckTransitiveMembership => {
                "cloudidentity.groups.memberships.checkTransitiveMembership"
            }
            Method::MembershipsSearchTransitiveGroups => {
                "cloudidentity.groups.memberships.searchTransitiveGroups"
            }
            Method::ProjectsGetIamPolicy => "cloudresourcemanager.projects.getIamPolicy",
            Method::ProjectsSetIamPolicy => "cloudresourcemanager.projects.setIamPolicy",
            Method::FoldersGetIamPolicy => "cloudresourcemanager.folders.getIamPolicy",
            Method::FoldersSetIamPolicy => "cloudresourcemanager.folders.setIamPolicy",
            Method::OrganizationsGetIamPolicy => "cloudresourcemanager.organizations.getIamPolicy",
            Method::OrganizationsSetIamPolicy => "cloudresourcemanager.organizations.setIamPolicy",
            Method::GenerateAccessToken => {
                "iamcredentials.projects.serviceAccounts.generateAccessToken"
            }
        }
    }

    /// The method with the given id.
    pub fn from_id(id: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|method| method.id() == id)
    }

    /// Whether the method writes an IAM policy.
    pub fn is_set_iam_policy(self) -> bool {
        matches!(
            self,
            Method::ProjectsSetIamPolicy
                | Method::FoldersSetIamPolicy
                | Method::OrganizationsSetIamPolicy
        )
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}
