//! IAM Credentials and authentication: impersonation, issued tokens, missing tokens.

use google_iamcredentials1::api::GenerateAccessTokenRequest;

use crate::support::*;

fn token_request() -> GenerateAccessTokenRequest {
    GenerateAccessTokenRequest {
        delegates: None,
        lifetime: Some(chrono::Duration::seconds(3600)),
        scope: Some(vec![
            "https://www.googleapis.com/auth/cloud-platform".to_owned(),
        ]),
    }
}

const PROVISIONER_NAME: &str = "projects/-/serviceAccounts/jit-prod@ops.iam.gserviceaccount.com";

#[tokio::test]
async fn an_allowed_impersonator_gets_a_token_that_acts_as_the_target() {
    let emulator = emulator();
    let credentials = iam_credentials(&emulator, CONTROLLER_TOKEN);

    let (_, response) = credentials
        .projects()
        .service_accounts_generate_access_token(token_request(), PROVISIONER_NAME)
        .doit()
        .await
        .expect("the controller may impersonate the provisioner");
    let token = response.access_token.expect("a token");
    let expire_time = response.expire_time.expect("an expiry");
    let now = emulator.control().now().await.expect("now");
    assert!(expire_time > now + chrono::Duration::minutes(59));

    let hub = cloud_identity(&emulator, &token);
    let (_, found) = hub
        .groups()
        .lookup()
        .group_key_id("admins@example.com")
        .doit()
        .await
        .expect("the issued token acts as the provisioner");
    assert!(found.name.is_some());

    let state = emulator.control().state().await.expect("state");
    assert_eq!(state.tokens[&token].identity, PROVISIONER);
}

#[tokio::test]
async fn a_caller_that_may_not_impersonate_is_refused_with_permission_denied() {
    let emulator = emulator();
    for token in [OUTSIDER_TOKEN, PROVISIONER_TOKEN] {
        let credentials = iam_credentials(&emulator, token);
        let error = credentials
            .projects()
            .service_accounts_generate_access_token(token_request(), PROVISIONER_NAME)
            .doit()
            .await
            .expect_err("not an impersonator");
        let (code, status, message) = google_error(&error);
        assert_eq!((code, status.as_str()), (403, "PERMISSION_DENIED"));
        assert!(message.contains("iam.serviceAccounts.getAccessToken"));
    }
}

#[tokio::test]
async fn requests_without_a_known_token_fail_with_unauthenticated() {
    let emulator = emulator();
    let hub = cloud_identity(&emulator, "made-up-token");
    let error = hub
        .groups()
        .lookup()
        .group_key_id("admins@example.com")
        .doit()
        .await
        .expect_err("the token is unknown");
    let (code, status, _) = google_error(&error);
    assert_eq!((code, status.as_str()), (401, "UNAUTHENTICATED"));

    let counts = emulator.control().requests().await.expect("counts");
    assert_eq!(counts.calls("cloudidentity.groups.lookup"), 1);
}

#[tokio::test]
async fn an_issued_token_stops_working_when_it_expires() {
    let emulator = emulator();
    let credentials = iam_credentials(&emulator, CONTROLLER_TOKEN);
    let mut request = token_request();
    request.lifetime = Some(chrono::Duration::seconds(600));
    let (_, response) = credentials
        .projects()
        .service_accounts_generate_access_token(request, PROVISIONER_NAME)
        .doit()
        .await
        .expect("issued");
    let token = response.access_token.expect("token");

    emulator
        .control()
        .advance_clock(601)
        .await
        .expect("the clock moves");

    let hub = cloud_identity(&emulator, &token);
    let error = hub
        .groups()
        .lookup()
        .group_key_id("admins@example.com")
        .doit()
        .await
        .expect_err("the token expired");
    assert_eq!(google_error(&error).1, "UNAUTHENTICATED");
}
