//! A typed client of the control API, for tests.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::control::types::{
    ClockAdvance, ClockState, FaultRule, RequestCounts, Seed, StateSnapshot,
};

/// Why a control call failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The emulator could not be reached or its answer not read.
    #[error("control request to the emulator failed")]
    Http(#[from] reqwest::Error),
    /// The emulator refused the request, for example an invalid seed.
    #[error("the emulator refused the control request with HTTP {status}: {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The error body.
        body: String,
    },
}

/// A client of the emulator's control API under `/emulator/v1/`.
#[derive(Debug, Clone)]
pub struct ControlClient {
    http: reqwest::Client,
    base_url: String,
}

impl ControlClient {
    /// A client of the emulator at `base_url` (such as `http://127.0.0.1:8085/`).
    pub fn new(base_url: &str) -> ControlClient {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_default();
        ControlClient {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/emulator/v1/{path}", self.base_url)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ControlError> {
        let response = request.send().await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(ControlError::Refused {
                status: status.as_u16(),
                body,
            });
        }
        Ok(response.json().await?)
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ControlError> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    /// Adds a seed to the emulated world.
    pub async fn seed(&self, seed: &Seed) -> Result<(), ControlError> {
        self.post::<_, serde_json::Value>("seed", seed)
            .await
            .map(drop)
    }

    /// Adds a seed given in its JSON form.
    pub async fn seed_json(&self, seed: &serde_json::Value) -> Result<(), ControlError> {
        self.post::<_, serde_json::Value>("seed", seed)
            .await
            .map(drop)
    }

    /// The whole emulated world.
    pub async fn state(&self) -> Result<StateSnapshot, ControlError> {
        self.send(self.http.get(self.url("state"))).await
    }

    /// The request counters of all requests.
    pub async fn requests(&self) -> Result<RequestCounts, ControlError> {
        self.send(self.http.get(self.url("requests"))).await
    }

    /// The request counters of the requests that carried `token`.
    pub async fn requests_for_token(&self, token: &str) -> Result<RequestCounts, ControlError> {
        let request = self
            .http
            .get(self.url("requests"))
            .query(&[("token", token)]);
        self.send(request).await
    }

    /// Adds a fault rule.
    pub async fn add_fault(&self, rule: &FaultRule) -> Result<(), ControlError> {
        self.post::<_, serde_json::Value>("faults", rule)
            .await
            .map(drop)
    }

    /// Removes every fault rule.
    pub async fn clear_faults(&self) -> Result<(), ControlError> {
        self.send::<serde_json::Value>(self.http.delete(self.url("faults")))
            .await
            .map(drop)
    }

    /// Empties the world, the fault rules and the counters, and puts the clock back.
    pub async fn reset(&self) -> Result<(), ControlError> {
        self.post::<_, serde_json::Value>("reset", &serde_json::json!({}))
            .await
            .map(drop)
    }

    /// Moves the emulator clock forward and returns the new time.
    pub async fn advance_clock(&self, seconds: i64) -> Result<DateTime<Utc>, ControlError> {
        let body = ClockAdvance {
            advance_seconds: seconds,
        };
        let state: ClockState = self.post("clock", &body).await?;
        Ok(state.now)
    }

    /// The emulator clock's current time.
    pub async fn now(&self) -> Result<DateTime<Utc>, ControlError> {
        let state: ClockState = self.send(self.http.get(self.url("clock"))).await?;
        Ok(state.now)
    }
}
