//! Handlers of the control API.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::app::App;
use crate::control::types::{
    ClockAdvance, ClockState, FaultRule, RequestCounts, Seed, StateSnapshot,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Params, parse_json};

/// The routes of the control API.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/emulator/v1/seed", post(seed))
        .route("/emulator/v1/state", get(state))
        .route("/emulator/v1/requests", get(requests))
        .route(
            "/emulator/v1/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/emulator/v1/reset", post(reset))
        .route("/emulator/v1/clock", post(advance_clock).get(clock))
}

async fn seed(State(app): State<App>, body: Bytes) -> ApiResult<Json<Value>> {
    let seed: Seed = parse_json(&body)?;
    let now = app.clock.now();
    app.store()
        .apply_seed(seed, now)
        .map_err(|error| ApiError::invalid(format!("Invalid seed: {error}")))?;
    tracing::info!("seed applied");
    Ok(Json(json!({})))
}

async fn state(State(app): State<App>) -> Json<StateSnapshot> {
    let now = app.clock.now();
    Json(app.store().snapshot(now))
}

async fn requests(State(app): State<App>, params: Params) -> Json<RequestCounts> {
    Json(app.request_counts(params.get("token")))
}

async fn add_fault(State(app): State<App>, body: Bytes) -> ApiResult<Json<Value>> {
    let rule: FaultRule = parse_json(&body)?;
    tracing::info!(method = %rule.method, status = ?rule.status, "fault rule added");
    let mut faults = app.faults();
    faults.add(rule)?;
    Ok(Json(json!({ "faults": faults.rules() })))
}

async fn list_faults(State(app): State<App>) -> Json<Value> {
    Json(json!({ "faults": app.faults().rules() }))
}

async fn clear_faults(State(app): State<App>) -> Json<Value> {
    app.faults().clear();
    tracing::info!("fault rules cleared");
    Json(json!({}))
}

async fn reset(State(app): State<App>) -> Json<Value> {
    app.reset();
    tracing::info!("emulator reset");
    Json(json!({}))
}

async fn advance_clock(State(app): State<App>, body: Bytes) -> ApiResult<Json<ClockState>> {
    let advance: ClockAdvance = parse_json(&body)?;
    app.clock.advance(advance.advance_seconds);
    let now = app.clock.now();
    tracing::info!(advance_seconds = advance.advance_seconds, now = %now, "clock advanced");
    Ok(Json(ClockState { now }))
}

async fn clock(State(app): State<App>) -> Json<ClockState> {
    Json(ClockState {
        now: app.clock.now(),
    })
}
