//! The HTTP side of the webhooks: one route per webhook, each reading an `AdmissionReview`
//! and answering with the decision, the message and, for the mutating one, a JSON patch.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use kube::Client;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::{DynamicObject, Status};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::identity::IdentityMapping;
use super::join_request::{self, Mode};
use super::policies::{self, Verdict};
use super::{
    Error, MUTATE_JOIN_REQUESTS, VALIDATE_ENVIRONMENTS, VALIDATE_GROUPS, VALIDATE_JOIN_REQUESTS,
};
use crate::api::{JitEnvironment, JitGroup};

type Review = AdmissionReview<DynamicObject>;
type Request = AdmissionRequest<DynamicObject>;

/// What the webhooks need to decide: a client to look up a group's environment, and how
/// callers map to Google principals.
#[derive(Clone)]
pub struct Admission {
    client: Client,
    identities: Arc<IdentityMapping>,
}

impl Admission {
    /// Webhooks that look objects up with `client` and know callers through `identities`.
    pub fn new(client: Client, identities: IdentityMapping) -> Self {
        Self {
            client,
            identities: Arc::new(identities),
        }
    }

    /// The routes of every webhook, plus `/healthz`.
    pub fn router(self) -> Router {
        Router::new()
            .route(MUTATE_JOIN_REQUESTS, post(mutate_join_request))
            .route(VALIDATE_JOIN_REQUESTS, post(validate_join_request))
            .route(VALIDATE_ENVIRONMENTS, post(validate_environment))
            .route(VALIDATE_GROUPS, post(validate_group))
            .route("/healthz", get(|| async { "ok" }))
            .with_state(self)
    }

    fn join_request(&self, request: &Request, mode: Mode) -> AdmissionResponse {
        let response = AdmissionResponse::from(request);
        let Some(object) = &request.object else {
            return response;
        };
        let new = json(object);
        let username = request.user_info.username.clone().unwrap_or_default();
        let caller = || self.identities.principal(&username);
        let admitted = match (&request.operation, &request.old_object) {
            (Operation::Create, _) => join_request::admit_create(&new, caller(), mode),
            (Operation::Update, Some(old)) => join_request::admit_update(
                &json(old),
                &new,
                caller,
                &join_request::now_in_seconds(),
                mode,
            ),
            _ => Ok(new.clone()),
        };
        match admitted {
            Err(refusals) => refuse(response, "Forbidden", 403, refusals.to_string()),
            Ok(admitted) if mode == Mode::Mutate => {
                let patch = json_patch::diff(&new, &admitted);
                if patch.0.is_empty() {
                    return response;
                }
                match response.clone().with_patch(patch) {
                    Ok(patched) => patched,
                    Err(error) => {
                        let error = Error::EncodePatch(error);
                        refuse(response, "InternalError", 500, error.to_string())
                    }
                }
            }
            Ok(_) => response,
        }
    }

    async fn environment(&self, request: &Request) -> AdmissionResponse {
        let response = AdmissionResponse::from(request);
        let (old, new) = match typed::<JitEnvironment>(request) {
            Ok(Some(pair)) => pair,
            Ok(None) => return response,
            Err(message) => return refuse(response, "Invalid", 422, message),
        };
        let namespace = request.namespace.clone().unwrap_or_default();
        let verdict =
            policies::review_environment(&self.client, &namespace, old.as_ref(), &new).await;
        answer(response, verdict)
    }

    async fn group(&self, request: &Request) -> AdmissionResponse {
        let response = AdmissionResponse::from(request);
        let (old, new) = match typed::<JitGroup>(request) {
            Ok(Some(pair)) => pair,
            Ok(None) => return response,
            Err(message) => return refuse(response, "Invalid", 422, message),
        };
        let namespace = request.namespace.clone().unwrap_or_default();
        let verdict = policies::review_group(&self.client, &namespace, old.as_ref(), &new).await;
        answer(response, verdict)
    }
}

async fn mutate_join_request(
    State(admission): State<Admission>,
    Json(review): Json<Review>,
) -> Json<Review> {
    Json(
        respond(review, |request| async move {
            admission.join_request(&request, Mode::Mutate)
        })
        .await,
    )
}

async fn validate_join_request(
    State(admission): State<Admission>,
    Json(review): Json<Review>,
) -> Json<Review> {
    Json(
        respond(review, |request| async move {
            admission.join_request(&request, Mode::Validate)
        })
        .await,
    )
}

async fn validate_environment(
    State(admission): State<Admission>,
    Json(review): Json<Review>,
) -> Json<Review> {
    Json(
        respond(review, |request| async move {
            admission.environment(&request).await
        })
        .await,
    )
}

async fn validate_group(
    State(admission): State<Admission>,
    Json(review): Json<Review>,
) -> Json<Review> {
    Json(
        respond(
            review,
            |request| async move { admission.group(&request).await },
        )
        .await,
    )
}

/// Unwraps the request of `review`, decides with `decide`, logs the outcome and wraps the
/// answer.
async fn respond<F, Fut>(review: Review, decide: F) -> Review
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = AdmissionResponse>,
{
    let request: Request = match review.try_into() {
        Ok(request) => request,
        Err(error) => {
            tracing::warn!(%error, "refused an AdmissionReview without a request");
            return AdmissionResponse::invalid(error).into_review();
        }
    };
    let kind = request.kind.kind.clone();
    let namespace = request.namespace.clone().unwrap_or_default();
    let name = request.name.clone();
    let user = request.user_info.username.clone().unwrap_or_default();
    let operation = request.operation.clone();
    let response = decide(request).await;
    tracing::info!(
        kind,
        namespace,
        name,
        user,
        ?operation,
        allowed = response.allowed,
        patched = response.patch.is_some(),
        message = response.result.message,
        "admission review"
    );
    response.into_review()
}

/// The object of `request` as JSON.
fn json(object: &DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// The old (on update) and new object of `request` as `K`; `None` when there is no new
/// object (a deletion).
fn typed<K: DeserializeOwned>(request: &Request) -> Result<Option<(Option<K>, K)>, String> {
    let convert = |object: &DynamicObject| {
        serde_json::from_value::<K>(json(object)).map_err(|error| {
            format!(
                "the {} does not match its schema: {error}",
                request.kind.kind
            )
        })
    };
    let Some(object) = &request.object else {
        return Ok(None);
    };
    let new = convert(object)?;
    let old = match (&request.operation, &request.old_object) {
        (Operation::Update, Some(old)) => Some(convert(old)?),
        _ => None,
    };
    Ok(Some((old, new)))
}

fn answer(response: AdmissionResponse, verdict: Result<Verdict, Error>) -> AdmissionResponse {
    match verdict {
        Ok(Verdict::Admit { warnings }) if warnings.is_empty() => response,
        Ok(Verdict::Admit { warnings }) => {
            let mut response = response;
            response.warnings = Some(warnings);
            response
        }
        Ok(Verdict::Refuse(message)) => refuse(response, "Invalid", 422, message),
        Err(error) => {
            tracing::warn!(%error, "could not check a policy");
            let message = format!("the admission webhook could not check the policy: {error}");
            refuse(response, "InternalError", 500, message)
        }
    }
}

/// Refuses with `message`, which the API server passes on to the caller after naming the
/// webhook, with `reason` and `code` as the HTTP status.
fn refuse(
    mut response: AdmissionResponse,
    reason: &str,
    code: u16,
    message: String,
) -> AdmissionResponse {
    response.result = Status::failure(&message, reason).with_code(code);
    response.deny(message)
}
