//! The state shared by all handlers, and the steps every API call goes through first:
//! counting, fault injection and authentication.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::http::{HeaderMap, header};

use crate::clock::Clock;
use crate::control::types::RequestCounts;
use crate::error::{ApiError, ApiResult};
use crate::faults::Faults;
use crate::methods::Method;
use crate::state::Store;

/// Everything the emulator holds, shared by all handlers.
#[derive(Debug, Default)]
pub struct AppState {
    store: Mutex<Store>,
    faults: Mutex<Faults>,
    counters: Mutex<Counters>,
    /// The emulator's clock.
    pub clock: Clock,
}

/// The handle handlers receive.
pub type App = Arc<AppState>;

/// The authenticated caller of an API call.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The email address of the identity the bearer token stands for.
    pub identity: String,
}

#[derive(Debug, Default)]
struct Counters {
    all: RequestCounts,
    by_token: BTreeMap<String, RequestCounts>,
}

impl Counters {
    fn record(&mut self, method: Method, token: Option<&str>, faulted: bool) {
        let bump = |counts: &mut RequestCounts| {
            *counts.requests.entry(method.id().to_owned()).or_default() += 1;
            if faulted {
                *counts.faulted.entry(method.id().to_owned()).or_default() += 1;
            }
        };
        bump(&mut self.all);
        if let Some(token) = token {
            bump(self.by_token.entry(token.to_owned()).or_default());
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A handler that panicked while holding a lock leaves consistent data behind, since every
    // change is made in one step; carry on with it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AppState {
    /// The store, with memberships and tokens that expired by the emulator clock removed.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        let mut store = lock(&self.store);
        store.prune_expired(self.clock.now());
        store
    }

    /// The fault rules.
    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    /// The request counters: of all requests, or of those carrying one token.
    pub fn request_counts(&self, token: Option<&str>) -> RequestCounts {
        let counters = lock(&self.counters);
        match token {
            Some(token) => counters.by_token.get(token).cloned().unwrap_or_default(),
            None => counters.all.clone(),
        }
    }

    /// Empties the world, the fault rules and the counters, and puts the clock back.
    pub fn reset(&self) {
        *lock(&self.store) = Store::default();
        lock(&self.faults).clear();
        *lock(&self.counters) = Counters::default();
        self.clock.reset();
    }

    /// The first steps of every API call: count it, apply fault rules, and authenticate the
    /// bearer token. Returns the caller, or the error to answer with.
    pub async fn begin(&self, method: Method, headers: &HeaderMap) -> ApiResult<Caller> {
        let token = bearer_token(headers);
        let hit = self.faults().decide(method, token.as_deref());
        let faulted = hit.as_ref().is_some_and(|hit| hit.error.is_some());
        lock(&self.counters).record(method, token.as_deref(), faulted);

        let hit = match hit {
            Some(hit) if hit.after_effect => crate::faults::defer(hit),
            other => other,
        };
        if let Some(hit) = hit {
            if !hit.latency.is_zero() {
                tokio::time::sleep(hit.latency).await;
            }
            if let Some(error) = hit.error {
                tracing::info!(method = method.id(), status = %error.code.status_name(), "injected fault");
                return Err(error);
            }
        }

        let Some(token) = token else {
            tracing::info!(method = method.id(), "request without a bearer token");
            return Err(ApiError::unauthenticated("no bearer token"));
        };
        let store = self.store();
        let Some(identity) = store.tokens.get(&token).map(|t| t.identity.clone()) else {
            tracing::info!(
                method = method.id(),
                "request with an unknown or expired token"
            );
            return Err(ApiError::unauthenticated("the token is unknown or expired"));
        };
        tracing::info!(method = method.id(), identity = %identity, "request");
        Ok(Caller { identity })
    }
}

/// The token of an `Authorization: Bearer TOKEN` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}
