//! The groups' calls: activities, capacity and instance refresh.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bellows_core::event::Capacity;
use bellows_core::group::{Activity, Refresh};
use serde::Deserialize;

use super::ApiState;
use super::Call;
use super::auth::Operator;
use super::json::Json;
use super::types::*;

#[derive(Deserialize)]
pub(super) struct ActivitiesQuery {
    group: Option<String>,
    limit: Option<usize>,
}

pub(super) async fn activities(
    State(s): State<ApiState>,
    q: Result<Query<ActivitiesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Vec<Activity>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(100).min(10_000);
    s.ask(|reply| Call::Activities {
        group: q.group,
        limit,
        reply,
    })
    .await?
    .map(axum::Json)
}

pub(super) async fn set_capacity(
    State(s): State<ApiState>,
    Operator(actor): Operator,
    Path(group): Path<String>,
    Json(body): Json<CapacityRequest>,
) -> Result<axum::Json<Capacity>, ApiError> {
    if body.min.is_none() && body.max.is_none() && body.desired.is_none() {
        return Err(ApiError::bad_request(
            "give at least one of `min`, `max`, `desired`",
        ));
    }
    s.ask(|reply| Call::SetCapacity {
        group,
        min: body.min,
        max: body.max,
        desired: body.desired,
        actor,
        reply,
    })
    .await?
    .map(axum::Json)
}

pub(super) async fn start_refresh(
    State(s): State<ApiState>,
    Operator(actor): Operator,
    Path(group): Path<String>,
    Json(body): Json<RefreshRequest>,
) -> Result<(StatusCode, axum::Json<Refresh>), ApiError> {
    if body.min_healthy_percentage.is_some_and(|p| p > 100) {
        return Err(ApiError::bad_request(
            "min_healthy_percentage must be between 0 and 100",
        ));
    }
    let warmup = match body.warmup.as_deref() {
        None => None,
        Some(raw) => Some(
            raw.parse::<bellows_core::Duration>()
                .map_err(|e| ApiError::bad_request(format!("warmup: {e}")))?,
        ),
    };
    let r = s
        .ask(|reply| Call::StartRefresh {
            group,
            min_healthy_percentage: body.min_healthy_percentage,
            warmup,
            actor,
            reply,
        })
        .await??;
    Ok((StatusCode::CREATED, axum::Json(r)))
}

pub(super) async fn cancel_refresh(
    State(s): State<ApiState>,
    Operator(actor): Operator,
    Path(group): Path<String>,
) -> Result<axum::Json<Refresh>, ApiError> {
    s.ask(|reply| Call::CancelRefresh {
        group,
        actor,
        reply,
    })
    .await?
    .map(axum::Json)
}

pub(super) async fn refresh_status(
    State(s): State<ApiState>,
    Path(group): Path<String>,
) -> Result<axum::Json<Refresh>, ApiError> {
    s.ask(|reply| Call::Refresh { group, reply })
        .await??
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("this group has had no instance refresh"))
}
