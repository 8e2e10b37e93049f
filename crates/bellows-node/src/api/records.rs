//! What bellows recorded: the audit trail, webhook deliveries, investigations and
//! incidents.

use axum::extract::{Path, Query, State};
use bellows_core::Time;
use serde::Deserialize;

use super::ApiState;
use super::Call;
use super::types::*;
use crate::store::{AuditEntry, Delivery, Incident, InvestigationRow};

pub(super) async fn deliveries(
    State(s): State<ApiState>,
) -> Result<axum::Json<Vec<Delivery>>, ApiError> {
    s.ask(Call::Deliveries).await?.map(axum::Json)
}

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    /// How far back: a duration such as `15m`.
    since: Option<String>,
    /// One resource (`group/web`) or a kind of them (`instance/`).
    target: Option<String>,
    limit: Option<usize>,
}

pub(super) async fn audit(
    State(s): State<ApiState>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Vec<AuditEntry>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let since = match q.since.as_deref() {
        None => None,
        Some(raw) => {
            let d: bellows_core::Duration = raw
                .parse()
                .map_err(|e| ApiError::bad_request(format!("since: {e}")))?;
            Some(d)
        }
    };
    let limit = q.limit.unwrap_or(200).min(10_000);
    let since = since.map(|d| {
        let now = crate::clock::now();
        Time::from_millis(now.as_millis().saturating_sub(d.as_millis()))
    });
    s.ask(|reply| Call::Audit {
        since,
        target: q.target,
        limit,
        reply,
    })
    .await?
    .map(axum::Json)
}

#[derive(Deserialize)]
pub(super) struct InvestigateQuery {
    /// How far back the symptom window starts (default 15m).
    since: Option<String>,
    alarm: Option<String>,
}

/// `GET /api/v1/investigate?since=15m&alarm=NAME`: the report, with its Markdown.
pub(super) async fn investigate(
    State(s): State<ApiState>,
    q: Result<Query<InvestigateQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let since: bellows_core::Duration = q
        .since
        .as_deref()
        .unwrap_or("15m")
        .parse()
        .map_err(|e| ApiError::bad_request(format!("since: {e}")))?;
    // The window is 10 s to 3 h: a shorter or longer one asked for is taken at that
    // bound, as the OpenAPI document says, rather than refused.
    let since = bellows_core::Duration::from_millis(since.as_millis().clamp(10_000, 3 * 3_600_000));
    let report = s
        .ask(|reply| Call::Investigate {
            since,
            alarm: q.alarm,
            reply,
        })
        .await??;
    let mut v = serde_json::to_value(&report).map_err(|e| ApiError::internal(e.to_string()))?;
    v["markdown"] = serde_json::Value::String(report.markdown());
    v["title"] = serde_json::Value::String(report.title());
    Ok(axum::Json(v))
}

pub(super) async fn investigations(
    State(s): State<ApiState>,
) -> Result<axum::Json<Vec<InvestigationRow>>, ApiError> {
    s.ask(Call::Investigations).await?.map(axum::Json)
}

pub(super) async fn investigation(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request("an investigation id is a number"))?;
    s.ask(|reply| Call::Investigation { id, reply })
        .await?
        .map(axum::Json)
}

pub(super) async fn incidents(
    State(s): State<ApiState>,
) -> Result<axum::Json<Vec<Incident>>, ApiError> {
    s.ask(Call::Incidents).await?.map(axum::Json)
}
