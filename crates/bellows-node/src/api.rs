//! The control API: versioned JSON over HTTP on a loopback address.
//!
//! Reads are open; every change needs the bearer token from the state directory.
//! Handlers never touch state themselves: they send a [`Call`] to the node's loop and
//! wait for its answer, so the loop stays the one owner of every group.
//!
//! This file is the server: its state, the routes, and what the routes share. The wire
//! types are in `api/types.rs` (the client uses them too), the call to the loop in
//! `api/call.rs`, the token in `api/auth.rs`, JSON bodies and errors in `api/json.rs`,
//! the event stream in `api/events.rs`, the dashboard's files in `api/assets.rs`, and
//! the handlers by resource: `api/stack.rs`, `api/instances.rs`, `api/groups.rs`,
//! `api/network.rs` (targets, listeners, ingress, zones), `api/metrics.rs` and
//! `api/records.rs` (audit, deliveries, investigations, incidents).

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path};
use axum::routing::{get, put};
use bellows_core::event::Event;
use bellows_core::ids::InstanceId;
use tokio::sync::{broadcast, mpsc, oneshot};

mod assets;
mod auth;
mod call;
mod events;
mod groups;
mod instances;
mod json;
mod metrics;
mod network;
mod records;
mod stack;
pub mod types;

pub use call::Call;
pub use types::*;

use assets::asset;
use events::events;
use groups::{activities, cancel_refresh, refresh_status, set_capacity, start_refresh};
use instances::{instances, logs, set_health, set_protection, stress, terminate};
use metrics::{alarms, metrics, metrics_list, metrics_query, put_metrics};
use network::{authorize, listeners, revoke, set_zone, tables, targets, zones};
use records::{audit, deliveries, incidents, investigate, investigation, investigations};
use stack::{apply, stack, status};

#[derive(Clone, Debug)]
pub struct ApiState {
    calls: mpsc::Sender<Call>,
    token: String,
    events: broadcast::Sender<(i64, Event)>,
}

impl ApiState {
    pub fn new(
        calls: mpsc::Sender<Call>,
        token: String,
        events: broadcast::Sender<(i64, Event)>,
    ) -> ApiState {
        ApiState {
            calls,
            token,
            events,
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Call) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.calls
            .send(make(tx))
            .await
            .map_err(|_| ApiError::unavailable())?;
        rx.await.map_err(|_| ApiError::unavailable())
    }
}

/// An instance id from a path, or the API's 400.
fn instance_id(raw: &str) -> Result<InstanceId, ApiError> {
    InstanceId::parse(raw).ok_or_else(|| {
        ApiError::bad_request(format!(
            "`{raw}` is not an instance id (i- and 17 hex digits)"
        ))
    })
}

/// Every route of the JSON API and the dashboard, not yet given its state and without
/// a fallback, so that another face served on the same port (such as an AWS-compatible
/// endpoint) can be merged beside it before `router` closes the set.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/instances", get(instances))
        .route("/api/v1/instances/{id}/logs", get(logs))
        .route("/api/v1/instances/{id}/protection", put(set_protection))
        .route(
            "/api/v1/instances/{id}/terminate",
            axum::routing::post(terminate),
        )
        .route("/api/v1/instances/{id}/health", put(set_health))
        .route("/api/v1/activities", get(activities))
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/listeners", get(listeners))
        .route(
            "/api/v1/listeners/{listener}/ingress/authorize",
            axum::routing::post(authorize),
        )
        .route(
            "/api/v1/listeners/{listener}/ingress/revoke",
            axum::routing::post(revoke),
        )
        .route("/api/v1/zones", get(zones))
        .route("/api/v1/tables", get(tables))
        .route("/api/v1/zones/{zone}", put(set_zone))
        .route("/metrics", get(metrics))
        .route("/api/v1/alarms", get(alarms))
        .route("/api/v1/metrics", get(metrics_list).post(put_metrics))
        .route("/api/v1/metrics/query", get(metrics_query))
        .route("/api/v1/deliveries", get(deliveries))
        .route("/api/v1/groups/{group}/capacity", put(set_capacity))
        .route(
            "/api/v1/groups/{group}/refresh",
            get(refresh_status)
                .post(start_refresh)
                .delete(cancel_refresh),
        )
        .route("/api/v1/instances/{id}/stress", axum::routing::post(stress))
        .route("/api/v1/stack", get(stack).post(apply))
        .route("/api/v1/investigate", get(investigate))
        .route("/api/v1/investigations", get(investigations))
        .route("/api/v1/investigations/{id}", get(investigation))
        .route("/api/v1/incidents", get(incidents))
        .route("/api/v1/audit", get(audit))
        .route(
            "/api/v1/openapi.json",
            get(|| async { asset("openapi.json") }),
        )
        .route("/", get(|| async { asset("index.html") }))
        .route(
            "/assets/{file}",
            get(|Path(file): Path<String>| async move { asset(&file) }),
        )
        .route("/api/v1/events", get(events))
}

/// The control port's router: `routes()` with its state, a JSON 404 for anything else,
/// and the body limit on all of it.
pub fn router(state: ApiState) -> Router {
    close(routes().with_state(state))
}

/// What an instance in a network namespace reaches on the host end of its veth, beside
/// its metadata: the AWS endpoint (`aws`) and putting metrics with its own token, and
/// nothing else of the control API.
pub fn instance_face(state: ApiState, aws: Router) -> Router {
    close(
        Router::new()
            .route("/api/v1/metrics", axum::routing::post(put_metrics))
            .with_state(state)
            .merge(aws),
    )
}

/// Ends a router of every face of the control port: what no route takes is the API's
/// JSON 404, and no body is read past `MAX_BODY`.
pub fn close(faces: Router) -> Router {
    faces
        .fallback(|| async { ApiError::not_found("no such endpoint; see /api/v1/status") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

#[cfg(test)]
mod tests;
