//! Injected faults: rules that answer some requests with an error or a delay, chosen by a
//! seeded random generator so that a test sees the same faults on every run.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::control::types::FaultRule;
use crate::error::{ApiError, Code};
use crate::methods::Method;

/// What a fault rule does to one request.
#[derive(Debug)]
pub struct Hit {
    /// How long to wait before answering.
    pub latency: Duration,
    /// The error to answer with, if the rule injects one.
    pub error: Option<ApiError>,
    /// Whether the request is carried out before the latency and the error apply.
    pub after_effect: bool,
}

#[derive(Debug)]
struct ActiveRule {
    rule: FaultRule,
    rng: ChaCha8Rng,
    hits: u64,
}

/// The fault rules in force, in the order they were added.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<ActiveRule>,
}

impl Faults {
    /// Checks a rule and adds it.
    pub fn add(&mut self, rule: FaultRule) -> Result<(), ApiError> {
        if rule.method != "*" && Method::from_id(&rule.method).is_none() {
            return Err(ApiError::invalid(format!(
                "unknown method {:?}: use a Google method id such as \
                 cloudidentity.groups.memberships.create, or \"*\"",
                rule.method
            )));
        }
        if let Some(status) = rule.status {
            code_for_status(status).ok_or_else(|| {
                ApiError::invalid(format!(
                    "status {status} cannot be injected: use 400, 401, 403, 404, 409, 429, 500, \
                     503 or 504"
                ))
            })?;
        }
        if let Some(rate) = rule.rate
            && !(0.0..=1.0).contains(&rate)
        {
            return Err(ApiError::invalid(format!(
                "rate {rate} is not between 0 and 1"
            )));
        }
        if rule.status.is_none() && rule.latency_ms.is_none() {
            return Err(ApiError::invalid(
                "a fault rule needs a status, a latencyMs, or both",
            ));
        }
        let rng = ChaCha8Rng::seed_from_u64(rule.seed.unwrap_or_default());
        self.rules.push(ActiveRule { rule, rng, hits: 0 });
        Ok(())
    }

    /// Removes every rule.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// The rules in force.
    pub fn rules(&self) -> Vec<FaultRule> {
        self.rules
            .iter()
            .map(|active| active.rule.clone())
            .collect()
    }

    /// Decides whether a request of `method` carrying `token` is hit. The first rule that
    /// matches and draws a hit decides; each matching rule draws once per request.
    pub fn decide(&mut self, method: Method, token: Option<&str>) -> Option<Hit> {
        for active in &mut self.rules {
            let rule = &active.rule;
            let method_matches = rule.method == "*" || rule.method == method.id();
            let token_matches = rule.token.as_deref().is_none_or(|t| Some(t) == token);
            let exhausted = rule.count.is_some_and(|count| active.hits >= count);
            if !method_matches || !token_matches || exhausted {
                continue;
            }
            let draw: f64 = active.rng.random();
            if draw >= rule.rate.unwrap_or(1.0) {
                continue;
            }
            active.hits += 1;
            return Some(Hit {
                latency: Duration::from_millis(rule.latency_ms.unwrap_or_default()),
                error: rule.status.map(|status| fault_error(method, status, rule)),
                after_effect: rule.after_effect,
            });
        }
        None
    }
}

fn code_for_status(status: u16) -> Option<Code> {
    Some(match status {
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::Aborted,
        429 => Code::ResourceExhausted,
        500 => Code::Internal,
        503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        _ => return None,
    })
}

fn fault_error(method: Method, status: u16, rule: &FaultRule) -> ApiError {
    let code = code_for_status(status).unwrap_or(Code::Internal);
    let error = match code {
        Code::Aborted if method.is_set_iam_policy() => ApiError::concurrent_policy_change(),
        Code::Aborted => ApiError::new(code, "The operation was aborted by a concurrent change."),
        Code::ResourceExhausted => ApiError::new(
            code,
            format!(
                "Quota exceeded for requests to {}. Retry later.",
                method.id()
            ),
        ),
        Code::Internal => ApiError::new(code, "Internal error encountered."),
        Code::Unavailable => ApiError::new(code, "The service is currently unavailable."),
        Code::DeadlineExceeded => ApiError::new(code, "The request timed out."),
        Code::Unauthenticated => ApiError::unauthenticated("the token was rejected"),
        Code::PermissionDenied => ApiError::caller_lacks_permission(),
        _ => ApiError::new(code, format!("Injected fault on {}.", method.id())),
    };
    if code == Code::ResourceExhausted {
        error.with_retry_after(rule.retry_after_seconds)
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(seed: u64) -> Vec<bool> {
        let mut faults = Faults::default();
        let rule = FaultRule::always("*", 503).with_rate(0.5).with_seed(seed);
        assert!(faults.add(rule).is_ok());
        (0..32)
            .map(|_| faults.decide(Method::GroupsGet, None).is_some())
            .collect()
    }

    #[test]
    fn the_same_seed_hits_the_same_requests() {
        assert_eq!(pattern(7), pattern(7));
        assert_ne!(pattern(7), pattern(8));
    }

    #[test]
    fn a_counted_rule_stops_after_its_count() {
        let mut faults = Faults::default();
        assert!(
            faults
                .add(FaultRule::always("*", 500).with_count(2))
                .is_ok()
        );
        let hits = (0..5)
            .filter(|_| faults.decide(Method::GroupsGet, None).is_some())
            .count();
        assert_eq!(hits, 2);
    }

    #[test]
    fn unknown_methods_and_statuses_are_refused() {
        let mut faults = Faults::default();
        assert!(faults.add(FaultRule::always("groups.create", 500)).is_err());
        assert!(faults.add(FaultRule::always("*", 418)).is_err());
    }
}

tokio::task_local! {
    /// The fault to apply to the answer of the request being served, if any.
    static AFTER_EFFECT: std::cell::RefCell<Option<Hit>>;
}

/// Keeps `hit` for [`apply_after_effects`] to apply once the request has been carried out.
/// Outside a request served through that layer, the hit is handed back to apply at once.
pub fn defer(hit: Hit) -> Option<Hit> {
    let mut hit = Some(hit);
    let _ = AFTER_EFFECT.try_with(|slot| *slot.borrow_mut() = hit.take());
    hit
}

/// A layer around every API route: serves the request, then applies the after-effect fault
/// that [`defer`] kept for it.
pub async fn apply_after_effects(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;

    AFTER_EFFECT
        .scope(std::cell::RefCell::new(None), async move {
            let response = next.run(request).await;
            let Some(hit) = AFTER_EFFECT.with(|slot| slot.borrow_mut().take()) else {
                return response;
            };
            if !hit.latency.is_zero() {
                tokio::time::sleep(hit.latency).await;
            }
            match hit.error {
                Some(error) => {
                    tracing::info!(status = %error.code.status_name(), "injected fault after the change");
                    error.into_response()
                }
                None => response,
            }
        })
        .await
}
