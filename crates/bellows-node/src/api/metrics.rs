//! Metrics and alarms: the metric store's series, custom metrics in, Prometheus' text
//! out, and the alarms.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bellows_core::metrics::SeriesKey;
use serde::Deserialize;

use super::ApiState;
use super::Call;
use super::json::RawBody;
use super::types::*;

pub(super) async fn alarms(
    State(s): State<ApiState>,
) -> Result<axum::Json<Vec<AlarmView>>, ApiError> {
    s.ask(Call::Alarms).await.map(axum::Json)
}

pub(super) async fn metrics_list(
    State(s): State<ApiState>,
) -> Result<axum::Json<Vec<SeriesKey>>, ApiError> {
    s.ask(Call::MetricsList).await.map(axum::Json)
}

pub(super) async fn metrics_query(
    State(s): State<ApiState>,
    q: Result<Query<MetricQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<MetricResult>, ApiError> {
    let Query(query) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    s.ask(|reply| Call::MetricsQuery { query, reply })
        .await?
        .map(axum::Json)
}

/// A single datum or `{"metrics": [...]}` (at most 1000).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum PutBody {
    Many(Batch),
    One(MetricDatum),
}

/// `{"metrics": [...]}`, and nothing else beside it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Batch {
    metrics: Vec<MetricDatum>,
}

pub(super) async fn put_metrics(
    State(s): State<ApiState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    if !headers.contains_key(header::AUTHORIZATION) {
        return Err(ApiError::unauthorized(
            "putting metrics needs a bearer token: the operator's, or an instance's $BELLOWS_METRICS_TOKEN",
        ));
    }
    // Any content type: instances post with whatever their HTTP client defaults to.
    let body: PutBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!("the body must be {{\"namespace\", \"name\", \"dimensions\", \"value\"}} or {{\"metrics\": [...]}}: {e}"))
    })?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let data = match body {
        PutBody::Many(Batch { metrics }) => metrics,
        PutBody::One(d) => vec![d],
    };
    if data.is_empty() || data.len() > 1000 {
        return Err(ApiError::bad_request("send 1 to 1000 metric values"));
    }
    let n = s
        .ask(|reply| Call::PutMetrics { token, data, reply })
        .await??;
    Ok(axum::Json(serde_json::json!({ "accepted": n })))
}

pub(super) async fn metrics(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let text = s.ask(Call::Metrics).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
