//! Request extractors that fail the way Google does: with a JSON error body.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The query string's parameters.
#[derive(Debug, Default)]
pub struct Params(pub HashMap<String, String>);

impl Params {
    /// A parameter's value, if present and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A required parameter.
    pub fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| {
            ApiError::invalid(format!(
                "Request contains an invalid argument: the parameter {name} is required."
            ))
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .map(|Query(map)| Params(map))
            .map_err(|error| ApiError::invalid(format!("Invalid query string: {error}")))
    }
}

/// Parses a JSON request body; an empty body reads as `{}`. Handlers parse the body after
/// the call is counted and authenticated, as Google checks credentials before the payload.
pub fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(text)
        .map_err(|error| ApiError::invalid(format!("Invalid JSON payload received. {error}")))
}
