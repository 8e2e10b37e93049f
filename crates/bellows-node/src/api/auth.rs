//! The bearer token: a change needs it, and the `Operator` extractor is the proof that
//! a request carried it, naming who asked.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};

use super::ApiState;
use super::types::{Actor, ApiError, SOURCE_HEADER};

/// Proof that the request carried the token; names who made the change.
pub(super) struct Operator(pub(super) Actor);

impl FromRequestParts<ApiState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Operator, ApiError> {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(t) if constant_time_eq(t.as_bytes(), state.token.as_bytes()) => {
                let source = match parts
                    .headers
                    .get(SOURCE_HEADER)
                    .and_then(|v| v.to_str().ok())
                {
                    Some("cli") => "cli",
                    Some("dashboard") => "dashboard",
                    _ => "api",
                };
                Ok(Operator(Actor {
                    name: "operator".to_owned(),
                    source: source.to_owned(),
                    action: None,
                }))
            }
            Some(_) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the bearer token is not valid",
            )),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a change needs `Authorization: Bearer TOKEN`; the token is in the state directory's `token` file",
            )),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
