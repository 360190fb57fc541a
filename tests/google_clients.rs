//! The Google Cloud clients of `jit_groups_controller::google` against the Google Cloud
//! emulator: what they change in the emulated world, how many calls they need, and how they
//! ride out or report failures.
//!
//! Every test starts an emulator of its own, so tests run in parallel without sharing state.

use std::time::Duration;

use gcp_emulator::{ControlClient, Emulator, FaultRule, Seed};
use jiff::{SignedDuration, Timestamp};
use jit_groups_controller::google::{
    BaseCredentials, Condition, DesiredBinding, EnvironmentClient, Google, GoogleConfig,
    GoogleError, GroupRef, ResourceName, RetryPolicy,
};
use serde_json::json;

const CUSTOMER: &str = "C01";
const CONTROLLER: &str = "controller@ops.iam.gserviceaccount.com";
const CONTROLLER_TOKEN: &str = "controller-token";
/// The environment's service account: manages groups, and IAM policies under folders/200.
const PROVISIONER: &str = "jit-prod@ops.iam.gserviceaccount.com";
/// A service account the controller may not impersonate.
const STRANGER: &str = "stranger@ops.iam.gserviceaccount.com";
const SECURITY_LABEL: &str = "cloudidentity.googleapis.com/groups.security";
const FORUM_LABEL: &str = "cloudidentity.googleapis.com/groups.discussion_forum";
const GROUP: &str = "jit.prod.payments.deployers@example.com";
const MEMBER: &str = "group:jit.prod.payments.deployers@example.com";

fn seed() -> Seed {
    Seed::from_json(json!({
        "customers": [{ "id": CUSTOMER, "domains": ["example.com"] }],
        "users": ["alice@example.com", "bob@example.com"],
        "resources": [
            { "name": "organizations/100" },
            { "name": "folders/200", "parent": "organizations/100" },
            { "name": "projects/prod-app", "parent": "folders/200" },
            { "name": "projects/elsewhere", "parent": "organizations/100" }
        ],
        "serviceAccounts": [
            { "email": CONTROLLER },
            {
                "email": PROVISIONER,
                "impersonators": [CONTROLLER],
                "canManageGroups": true,
                "canSetIamPolicyOn": ["folders/200"]
            },
            { "email": STRANGER, "canManageGroups": true }
        ],
        "tokens": { CONTROLLER_TOKEN: CONTROLLER },
        "groups": [
            { "email": "ops@example.com", "members": ["alice@example.com"] }
        ],
        "policies": {
            "projects/prod-app": {
                "bindings": [
                    { "role": "roles/viewer", "members": ["user:bob@example.com"] },
                    { "role": "roles/owner", "members": ["user:owner@example.com"] }
                ]
            }
        }
    }))
    .expect("the seed is valid")
}

/// One emulator and the clients pointed at it.
struct World {
    emulator: Emulator,
    google: Google,
}

impl World {
    async fn start() -> World {
        World::start_with(seed()).await
    }

    async fn start_with(seed: Seed) -> World {
        let emulator = Emulator::start_with_seed(seed).expect("the emulator starts");
        let mut config = GoogleConfig::new(BaseCredentials::StaticToken(CONTROLLER_TOKEN.into()))
            .with_endpoint(emulator.base_url());
        config.retry = RetryPolicy {
            attempts: 4,
            initial_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(5),
            conflict_attempts: 5,
        };
        config.request_timeout = Duration::from_secs(10);
        let google = Google::new(config)
            .await
            .expect("the clients are configured");
        World { emulator, google }
    }

    fn control(&self) -> ControlClient {
        self.emulator.control()
    }

    fn provisioner(&self) -> EnvironmentClient {
        self.google.for_service_account(PROVISIONER)
    }

    async fn calls(&self, method: &str) -> u64 {
        self.control()
            .requests()
            .await
            .expect("the counters are read")
            .calls(method)
    }

    async fn fault(&self, rule: FaultRule) {
        self.control()
            .add_fault(&rule)
            .await
            .expect("the fault is injected");
    }

    async fn group(&self) -> GroupRef {
        self.provisioner()
            .ensure_security_group(CUSTOMER, GROUP, "deployers", "Deploy payments")
            .await
            .expect("the group is ensured")
    }

    /// Bindings of the IAM policy of `resource` in the emulated world, as
    /// `(role, condition title, members)`, in a fixed order.
    async fn bindings(&self, resource: &str) -> Vec<Fit> {
        let state = self.control().state().await.expect("the state is read");
        let policy = state.policies.get(resource).cloned().unwrap_or_default();
        let bindings = policy.bindings.into_iter().map(|b| {
            let members: Vec<&str> = b.members.iter().map(String::as_str).collect();
            fits(
                &b.role,
                b.condition.and_then(|c| c.title).as_deref(),
                &members,
            )
        });
        sorted(bindings.collect())
    }
}

/// A whole second some hours from now, within what the emulator accepts as an expiry.
fn hours_from_now(hours: i64) -> Timestamp {
    let later = Timestamp::now() + SignedDuration::from_hours(hours);
    Timestamp::from_second(later.as_second()).expect("in range")
}

/// A binding as the tests compare it: role, condition title, and members in order.
type Fit = (String, Option<String>, Vec<String>);

fn fits(role: &str, title: Option<&str>, members: &[&str]) -> Fit {
    let mut members: Vec<String> = members.iter().map(|m| (*m).to_owned()).collect();
    members.sort();
    (role.to_owned(), title.map(str::to_owned), members)
}

fn sorted(mut bindings: Vec<Fit>) -> Vec<Fit> {
    bindings.sort();
    bindings
}

fn business_hours() -> Condition {
    Condition {
        expression: "request.time.getHours(\"Europe/Berlin\") < 18".into(),
        title: "business hours".into(),
        description: Some("only while someone is around".into()),
    }
}

#[tokio::test]
async fn a_security_group_is_created_once_and_its_description_kept_current() {
    let world = World::start().await;

    let first = world.group().await;
    let second = world.group().await;
    let renamed = world
        .provisioner()
        .ensure_security_group(CUSTOMER, GROUP, "deployers", "Deploy the payments service")
        .await
        .expect("the group is ensured");

    assert_eq!(first, second);
    assert_eq!(first, renamed);
    assert!(first.name.starts_with("groups/"));
    assert_eq!(world.calls("cloudidentity.groups.create").await, 1);
    assert_eq!(world.calls("cloudidentity.groups.patch").await, 1);
    let state = world.control().state().await.expect("the state is read");
    let group = state.group(GROUP).expect("the group exists");
    assert_eq!(group.description, "Deploy the payments service");
    assert!(group.labels.contains_key(SECURITY_LABEL));
    assert!(group.labels.contains_key(FORUM_LABEL));
    assert!(group.memberships.is_empty());
}

#[tokio::test]
async fn a_group_created_by_someone_else_in_between_is_adopted() {
    let mut seed = seed();
    seed.groups.push(
        serde_json::from_value(json!({ "email": GROUP, "description": "Deploy payments" }))
            .expect("valid group seed"),
    );
    let world = World::start_with(seed).await;
    // The first lookup misses the group, as if it had been created just after it.
    world
        .fault(FaultRule::always("cloudidentity.groups.lookup", 404).with_count(1))
        .await;

    let group = world.group().await;

    assert_eq!(group.email, GROUP);
    let state = world.control().state().await.expect("the state is read");
    assert_eq!(state.group(GROUP).expect("exists").name, group.name);
    assert_eq!(world.calls("cloudidentity.groups.create").await, 1);
}

#[tokio::test]
async fn groups_are_found_by_prefix_across_pages() {
    let mut seed = seed();
    seed.settings = Some(serde_json::from_value(json!({ "pageSizeCap": 2 })).expect("valid"));
    let world = World::start_with(seed).await;
    let client = world.provisioner();
    for name in ["a", "b", "c"] {
        let email = format!("jit.prod.payments.{name}@example.com");
        client
            .ensure_security_group(CUSTOMER, &email, name, "")
            .await
            .expect("the group is ensured");
    }

    let mut found: Vec<String> = client
        .search_groups_by_prefix(CUSTOMER, "jit.prod.")
        .await
        .expect("the search succeeds")
        .into_iter()
        .map(|group| group.email)
        .collect();
    found.sort();

    assert_eq!(
        found,
        [
            "jit.prod.payments.a@example.com",
            "jit.prod.payments.b@example.com",
            "jit.prod.payments.c@example.com"
        ]
    );
    assert_eq!(
        client
            .lookup_group("missing@example.com")
            .await
            .expect("lookup"),
        None
    );
    assert_eq!(world.calls("cloudidentity.groups.search").await, 2);
}

#[tokio::test]
async fn a_membership_expiry_is_set_extended_and_shortened_exactly() {
    let world = World::start().await;
    let client = world.provisioner();
    let group = world.group().await;
    let (soon, later, sooner) = (hours_from_now(1), hours_from_now(4), hours_from_now(2));

    let created = client
        .ensure_membership(&group, "alice@example.com", soon)
        .await
        .expect("the membership is created");
    let extended = client
        .ensure_membership(&group, "alice@example.com", later)
        .await
        .expect("the membership is extended");
    let shortened = client
        .ensure_membership(&group, "alice@example.com", sooner)
        .await
        .expect("the membership is shortened");
    let again = client
        .ensure_membership(&group, "alice@example.com", sooner)
        .await
        .expect("the same expiry is set again");

    assert_eq!(created.expire_time, Some(soon));
    assert_eq!(extended.expire_time, Some(later));
    assert_eq!(shortened.expire_time, Some(sooner));
    assert_eq!(again, shortened);
    assert_eq!(created.name, shortened.name);
    assert_eq!(
        world.calls("cloudidentity.groups.memberships.create").await,
        4
    );
    assert_eq!(
        world
            .calls("cloudidentity.groups.memberships.modifyMembershipRoles")
            .await,
        3
    );

    let listed = client
        .list_memberships(&group)
        .await
        .expect("the members are listed");
    assert_eq!(listed, vec![shortened.clone()]);
    let looked_up = client
        .lookup_membership(&group, "alice@example.com")
        .await
        .expect("the membership is looked up");
    assert_eq!(looked_up, Some(shortened));
    let state = world.control().state().await.expect("the state is read");
    let member = state
        .group(GROUP)
        .and_then(|g| g.member("alice@example.com"))
        .expect("alice is a member");
    assert_eq!(
        member.expire_time.map(|t| t.timestamp()),
        Some(sooner.as_second())
    );
}

#[tokio::test]
async fn a_removed_membership_is_gone_and_removing_it_again_reports_none() {
    let world = World::start().await;
    let client = world.provisioner();
    let group = world.group().await;
    client
        .ensure_membership(&group, "bob@example.com", hours_from_now(1))
        .await
        .expect("the membership is created");

    let removed = client
        .remove_membership(&group, "bob@example.com")
        .await
        .expect("the membership is removed");
    let removed_again = client
        .remove_membership(&group, "bob@example.com")
        .await
        .expect("removing again succeeds");

    assert!(removed);
    assert!(!removed_again);
    assert_eq!(
        client
            .lookup_membership(&group, "bob@example.com")
            .await
            .expect("lookup"),
        None
    );
    let state = world.control().state().await.expect("the state is read");
    assert!(state.group(GROUP).expect("exists").memberships.is_empty());
}

#[tokio::test]
async fn all_pages_of_members_are_listed() {
    let mut seed = seed();
    seed.settings = Some(serde_json::from_value(json!({ "pageSizeCap": 2 })).expect("valid"));
    let members: Vec<String> = (1..=5).map(|n| format!("user{n}@example.com")).collect();
    seed.groups.push(
        serde_json::from_value(json!({ "email": GROUP, "members": members }))
            .expect("valid group seed"),
    );
    let world = World::start_with(seed).await;
    let client = world.provisioner();
    let group = client
        .lookup_group(GROUP)
        .await
        .expect("lookup")
        .expect("the group exists");

    let mut listed: Vec<String> = client
        .list_memberships(&group)
        .await
        .expect("the members are listed")
        .into_iter()
        .map(|m| m.member)
        .collect();
    listed.sort();

    assert_eq!(listed, members);
    assert_eq!(
        world.calls("cloudidentity.groups.memberships.list").await,
        3
    );
}

#[tokio::test]
async fn membership_through_a_nested_group_counts() {
    let world = World::start().await;
    let client = world.provisioner();
    let group = world.group().await;
    client
        .ensure_membership(&group, "ops@example.com", hours_from_now(1))
        .await
        .expect("ops joins the group");

    let alice = client
        .is_transitive_member(GROUP, "alice@example.com")
        .await;
    let bob = client.is_transitive_member(GROUP, "bob@example.com").await;
    let missing_group = client
        .is_transitive_member("nobody@example.com", "alice@example.com")
        .await;

    assert!(alice.expect("checked"));
    assert!(!bob.expect("checked"));
    assert!(!missing_group.expect("checked"));
}

#[tokio::test]
async fn bindings_on_a_project_and_a_folder_become_exactly_the_desired_ones() {
    let world = World::start().await;
    let client = world.provisioner();
    let project: ResourceName = "projects/prod-app".parse().expect("valid");
    let folder: ResourceName = "folders/200".parse().expect("valid");
    let project_bindings = [
        DesiredBinding::unconditional("roles/viewer"),
        DesiredBinding::conditional("roles/run.developer", business_hours()),
    ];
    let folder_bindings = [DesiredBinding::conditional(
        "roles/browser",
        business_hours(),
    )];

    let on_project = client
        .reconcile_bindings(&project, MEMBER, &project_bindings)
        .await
        .expect("the project's bindings are reconciled");
    let on_folder = client
        .reconcile_bindings(&folder, MEMBER, &folder_bindings)
        .await
        .expect("the folder's bindings are reconciled");

    assert_eq!(on_project.added, project_bindings.to_vec());
    assert_eq!(on_folder.added, folder_bindings.to_vec());
    assert_eq!(
        world.bindings("projects/prod-app").await,
        sorted(vec![
            fits("roles/viewer", None, &["user:bob@example.com", MEMBER]),
            fits("roles/owner", None, &["user:owner@example.com"]),
            fits("roles/run.developer", Some("business hours"), &[MEMBER]),
        ])
    );
    assert_eq!(
        world.bindings("folders/200").await,
        vec![fits("roles/browser", Some("business hours"), &[MEMBER])]
    );
    let state = world.control().state().await.expect("the state is read");
    assert_eq!(state.policies["projects/prod-app"].version, Some(3));

    // Reconciling again writes nothing.
    let writes = world
        .calls("cloudresourcemanager.projects.setIamPolicy")
        .await;
    let unchanged = client
        .reconcile_bindings(&project, MEMBER, &project_bindings)
        .await
        .expect("the project's bindings are reconciled again");
    assert!(unchanged.is_empty());
    assert_eq!(
        world
            .calls("cloudresourcemanager.projects.setIamPolicy")
            .await,
        writes
    );

    // Narrowing, then removing everything, leaves the other principals as they were.
    let narrowed = client
        .reconcile_bindings(&project, MEMBER, &project_bindings[..1])
        .await
        .expect("the project's bindings are narrowed");
    assert_eq!(narrowed.removed, project_bindings[1..].to_vec());
    let removed = client
        .remove_all_bindings(&project, MEMBER)
        .await
        .expect("the group's bindings are removed");
    assert_eq!(removed.removed, project_bindings[..1].to_vec());
    assert_eq!(
        world.bindings("projects/prod-app").await,
        sorted(vec![
            fits("roles/viewer", None, &["user:bob@example.com"]),
            fits("roles/owner", None, &["user:owner@example.com"]),
        ])
    );
}

#[tokio::test]
async fn concurrent_policy_changes_are_ridden_out_by_reading_again() {
    let world = World::start().await;
    world
        .fault(FaultRule::always("cloudresourcemanager.projects.setIamPolicy", 409).with_count(2))
        .await;
    let project: ResourceName = "projects/prod-app".parse().expect("valid");

    let change = world
        .provisioner()
        .reconcile_bindings(
            &project,
            MEMBER,
            &[DesiredBinding::unconditional("roles/editor")],
        )
        .await
        .expect("the conflict is ridden out");

    assert_eq!(
        change.added,
        vec![DesiredBinding::unconditional("roles/editor")]
    );
    assert_eq!(
        world
            .calls("cloudresourcemanager.projects.getIamPolicy")
            .await,
        3
    );
    assert_eq!(
        world
            .calls("cloudresourcemanager.projects.setIamPolicy")
            .await,
        3
    );
    assert!(world.bindings("projects/prod-app").await.contains(&fits(
        "roles/editor",
        None,
        &[MEMBER]
    )));
}

#[tokio::test]
async fn a_burst_of_unavailability_is_ridden_out() {
    let world = World::start().await;
    world.fault(FaultRule::always("*", 503).with_count(3)).await;

    let group = world.group().await;

    assert_eq!(group.email, GROUP);
    let counts = world
        .control()
        .requests()
        .await
        .expect("the counters are read");
    assert_eq!(counts.faulted.values().sum::<u64>(), 3);
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_as_google_asks() {
    let world = World::start().await;
    world
        .provisioner()
        .verify_access()
        .await
        .expect("the token is obtained");
    world
        .fault(
            FaultRule::always("cloudidentity.groups.lookup", 429)
                .with_count(1)
                .with_retry_after(1),
        )
        .await;

    let started = std::time::Instant::now();
    let found = world.provisioner().lookup_group("ops@example.com").await;

    assert!(found.expect("the lookup succeeds").is_some());
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn lasting_unavailability_is_reported_as_transient_after_a_few_attempts() {
    let world = World::start().await;
    world
        .provisioner()
        .verify_access()
        .await
        .expect("the token is obtained");
    world
        .fault(FaultRule::always("cloudidentity.groups.lookup", 503))
        .await;

    let error = world
        .provisioner()
        .lookup_group("ops@example.com")
        .await
        .expect_err("Google stays unavailable");

    assert!(error.is_transient());
    assert_eq!(error.label(), "unavailable");
    assert_eq!(error.status().map(|s| s.as_u16()), Some(503));
    assert_eq!(world.calls("cloudidentity.groups.lookup").await, 4);
}

#[tokio::test]
async fn a_resource_outside_the_service_accounts_reach_is_refused_permanently() {
    let world = World::start().await;
    let elsewhere: ResourceName = "projects/elsewhere".parse().expect("valid");

    let error = world
        .provisioner()
        .reconcile_bindings(
            &elsewhere,
            MEMBER,
            &[DesiredBinding::unconditional("roles/viewer")],
        )
        .await
        .expect_err("the resource is out of reach");

    assert!(
        matches!(error, GoogleError::PermissionDenied { .. }),
        "{error:?}"
    );
    assert!(!error.is_transient());
    assert_eq!(
        error.google_message(),
        Some("The caller does not have permission")
    );
    assert!(error.to_string().contains("projects/elsewhere"), "{error}");
    assert_eq!(
        world
            .calls("cloudresourcemanager.projects.getIamPolicy")
            .await,
        1
    );
}

#[tokio::test]
async fn refused_impersonation_is_reported_permanently_with_googles_message() {
    let world = World::start().await;
    let stranger = world.google.for_service_account(STRANGER);

    let verified = stranger.verify_access().await;
    let lookup = stranger.lookup_group("ops@example.com").await;

    for error in [verified.expect_err("refused"), lookup.expect_err("refused")] {
        assert!(
            matches!(error, GoogleError::Impersonation { .. }),
            "{error:?}"
        );
        assert!(!error.is_transient());
        assert_eq!(error.status().map(|s| s.as_u16()), Some(403));
        let message = error.google_message().expect("Google's message is kept");
        assert!(
            message.contains("iam.serviceAccounts.getAccessToken"),
            "{message}"
        );
        assert!(error.full_message().contains(STRANGER));
    }
    assert_eq!(world.calls("cloudidentity.groups.lookup").await, 0);
}

#[tokio::test]
async fn one_impersonated_token_serves_many_calls() {
    let world = World::start().await;
    let client = world.provisioner();

    client.verify_access().await.expect("the token is obtained");
    let group = world.group().await;
    client
        .ensure_membership(&group, "alice@example.com", hours_from_now(1))
        .await
        .expect("the membership is created");
    world
        .google
        .for_service_account(PROVISIONER)
        .list_memberships(&group)
        .await
        .expect("the members are listed");

    assert_eq!(
        world
            .calls("iamcredentials.projects.serviceAccounts.generateAccessToken")
            .await,
        1
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_reported_as_transient_after_a_few_attempts() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = closed.local_addr().expect("bound");
    drop(closed);
    let mut config = GoogleConfig::new(BaseCredentials::StaticToken(CONTROLLER_TOKEN.into()))
        .with_endpoint(&format!("http://{address}/"));
    config.retry.initial_delay = Duration::from_millis(10);
    config.retry.max_delay = Duration::from_millis(20);
    let google = Google::new(config)
        .await
        .expect("the clients are configured");

    let error = google
        .for_service_account(PROVISIONER)
        .verify_access()
        .await
        .expect_err("nothing listens");

    assert!(error.is_transient(), "{error:?}");
    assert_eq!(error.status(), None);
    assert!(
        matches!(&error, GoogleError::Impersonation { source, .. } if source.label() == "connection"),
        "{error:?}"
    );
}
