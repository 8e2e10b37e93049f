//! The control API: versioned JSON over HTTP on a loopback address.
//!
//! Reads are open; every change needs the bearer token from the state directory.
//! Handlers never touch state themselves: they send a [`Call`] to the node's loop and
//! wait for its answer, so the loop stays the one owner of every group.

use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use bellows_core::Time;
use bellows_core::alarm::{AlarmState, Transition};
use bellows_core::event::{Capacity, Event};
use bellows_core::group::{Activity, Health, Lifecycle, Refresh};
use bellows_core::ids::InstanceId;
use bellows_core::lb::cidr::Cidr;
use bellows_core::metrics::SeriesKey;
use bellows_core::stack::{HealthCheckType, TerminationPolicy};
use bellows_proxy::{ListenerView, TargetView};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::store::{AuditEntry, Delivery, Incident, InvestigationRow};

/// Who asked for a change: the token's name and where the request came from (the CLI
/// and the dashboard say so in `X-Bellows-Source`; anything else is `api`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub name: String,
    pub source: String,
}

impl Actor {
    /// bellows itself, deciding on its own (policies, health replacement, shutdown).
    pub fn bellows() -> Actor {
        Actor {
            name: "bellows".to_owned(),
            source: "bellows".to_owned(),
        }
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.name == self.source {
            f.write_str(&self.name)
        } else {
            write!(f, "{} (via {})", self.name, self.source)
        }
    }
}

/// The header through which the CLI and the dashboard name themselves.
pub const SOURCE_HEADER: &str = "x-bellows-source";

/// The largest request body the API reads.
pub const MAX_BODY: usize = 64 * 1024;

/// A request from an API handler to the node's loop.
#[derive(Debug)]
pub enum Call {
    Status(oneshot::Sender<StatusView>),
    Instances(oneshot::Sender<Vec<InstanceView>>),
    Activities {
        group: Option<String>,
        limit: usize,
        reply: oneshot::Sender<Result<Vec<Activity>, ApiError>>,
    },
    SetCapacity {
        group: String,
        min: Option<u32>,
        max: Option<u32>,
        desired: Option<u32>,
        actor: Actor,
        reply: oneshot::Sender<Result<Capacity, ApiError>>,
    },
    Terminate {
        instance: InstanceId,
        decrement: bool,
        actor: Actor,
        reply: oneshot::Sender<Result<Capacity, ApiError>>,
    },
    SetHealth {
        instance: InstanceId,
        health: Health,
        actor: Actor,
        reply: oneshot::Sender<Result<(), ApiError>>,
    },
    SetProtection {
        instance: InstanceId,
        protected: bool,
        actor: Actor,
        reply: oneshot::Sender<Result<(), ApiError>>,
    },
    Targets(oneshot::Sender<Vec<TargetView>>),
    Listeners(oneshot::Sender<Vec<ListenerView>>),
    Ingress {
        listener: String,
        cidr: Cidr,
        authorize: bool,
        actor: Actor,
        reply: oneshot::Sender<Result<IngressChange, ApiError>>,
    },
    Zones(oneshot::Sender<Vec<ZoneView>>),
    SetZone {
        zone: String,
        available: bool,
        actor: Actor,
        reply: oneshot::Sender<Result<ZoneChange, ApiError>>,
    },
    Alarms(oneshot::Sender<Vec<AlarmView>>),
    MetricsList(oneshot::Sender<Vec<SeriesKey>>),
    MetricsQuery {
        query: MetricQuery,
        reply: oneshot::Sender<Result<MetricResult, ApiError>>,
    },
    /// Custom metrics, with the bearer token that came with them (the operator's or an
    /// instance's own).
    PutMetrics {
        token: Option<String>,
        data: Vec<MetricDatum>,
        reply: oneshot::Sender<Result<usize, ApiError>>,
    },
    Deliveries(oneshot::Sender<Result<Vec<Delivery>, ApiError>>),
    /// Every metric in Prometheus' text format.
    Metrics(oneshot::Sender<String>),
    /// `bellows apply`: validate a new stack file, compare it with the running stack,
    /// and unless `dry_run`, swap it in.
    Apply {
        file: String,
        source: String,
        dry_run: bool,
        actor: Actor,
        reply: oneshot::Sender<Result<serde_json::Value, ApiError>>,
    },
    /// The running stack, as the file it came from was understood.
    Stack(oneshot::Sender<serde_json::Value>),
    StartRefresh {
        group: String,
        min_healthy_percentage: Option<u32>,
        warmup: Option<bellows_core::Duration>,
        actor: Actor,
        reply: oneshot::Sender<Result<Refresh, ApiError>>,
    },
    CancelRefresh {
        group: String,
        actor: Actor,
        reply: oneshot::Sender<Result<Refresh, ApiError>>,
    },
    /// The group's refresh in progress, or its last one.
    Refresh {
        group: String,
        reply: oneshot::Sender<Result<Option<Refresh>, ApiError>>,
    },
    /// Records a change made outside the loop (a request to an instance) in the audit
    /// trail.
    Note {
        actor: Actor,
        action: String,
        target: String,
        after: serde_json::Value,
        ok: bool,
        reply: oneshot::Sender<()>,
    },
    /// Investigates the last `since` now (nothing is stored).
    Investigate {
        since: bellows_core::Duration,
        alarm: Option<String>,
        reply: oneshot::Sender<Result<bellows_core::investigate::Report, ApiError>>,
    },
    /// Stored investigations (those alarms started), newest first.
    Investigations(oneshot::Sender<Result<Vec<InvestigationRow>, ApiError>>),
    /// One stored investigation's report.
    Investigation {
        id: i64,
        reply: oneshot::Sender<Result<serde_json::Value, ApiError>>,
    },
    /// Incidents with their deliveries' status, newest first.
    Incidents(oneshot::Sender<Result<Vec<Incident>, ApiError>>),
    /// The audit trail, newest first.
    Audit {
        since: Option<Time>,
        target: Option<String>,
        limit: usize,
        reply: oneshot::Sender<Result<Vec<AuditEntry>, ApiError>>,
    },
    /// Stored events after a sequence number, oldest first (an event stream's replay).
    EventsAfter {
        seq: i64,
        reply: oneshot::Sender<Result<Vec<(i64, Event)>, ApiError>>,
    },
    /// The instance's log file, and whether the instance still runs.
    Log {
        instance: InstanceId,
        reply: oneshot::Sender<Option<(PathBuf, bool)>>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusView {
    pub stack: String,
    pub pid: u32,
    pub started_at: Time,
    pub state_dir: String,
    pub control: String,
    /// Whether instance types are enforced as cgroup limits.
    pub cgroups: bool,
    pub groups: Vec<GroupView>,
    pub listeners: Vec<ListenerView>,
    /// Zones in an outage (`bellows zone fail`).
    #[serde(default)]
    pub zones_out: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlarmView {
    pub name: String,
    pub state: AlarmState,
    pub reason: String,
    pub since: Time,
    pub metric: String,
    pub statistic: String,
    pub period: bellows_core::Duration,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub comparison: String,
    pub threshold: f64,
    pub last_value: Option<f64>,
    pub alarm_actions: Vec<String>,
    /// Newest first.
    pub history: Vec<Transition>,
}

/// One value of a custom metric, like PutMetricData's MetricDatum.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricDatum {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub dimensions: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricQuery {
    pub namespace: String,
    pub name: String,
    /// `Key=Value` pairs, comma-separated.
    #[serde(default)]
    pub dimensions: Option<String>,
    #[serde(default)]
    pub stat: Option<String>,
    #[serde(default)]
    pub period: Option<String>,
    #[serde(default)]
    pub since: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricResult {
    pub series: Vec<SeriesResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesResult {
    pub key: SeriesKey,
    pub statistic: String,
    pub period: bellows_core::Duration,
    /// (period start, value)
    pub points: Vec<(Time, f64)>,
}

/// The outcome of an ingress change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngressChange {
    pub listener: String,
    pub cidr: Cidr,
    /// False when the list already was as asked.
    pub changed: bool,
    pub ingress: Vec<Cidr>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressRequest {
    pub cidr: String,
}

/// A zone: whether it is in an outage, and what runs there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZoneView {
    pub zone: String,
    /// False during an outage (`bellows zone fail`).
    pub available: bool,
    /// The groups that list the zone.
    pub groups: Vec<String>,
    /// Live instances there (pending or in service).
    pub instances: usize,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneRequest {
    pub available: bool,
}

/// The outcome of a zone's outage starting or ending.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZoneChange {
    pub zone: String,
    pub available: bool,
    /// False when the zone already was as asked.
    pub changed: bool,
    /// The instances the outage killed (`kill -9`, as a power cut would).
    pub killed: Vec<InstanceId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupView {
    pub name: String,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    pub pending: u32,
    pub in_service: u32,
    pub terminating: u32,
    pub instance_type: String,
    pub zones: Vec<String>,
    pub target_groups: Vec<String>,
    pub health_check_type: HealthCheckType,
    pub termination_policy: TerminationPolicy,
    /// The refresh in progress, or the last one.
    pub refresh: Option<Refresh>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceView {
    pub id: InstanceId,
    pub group: String,
    pub zone: String,
    pub lifecycle: Lifecycle,
    pub health: Health,
    pub protected: bool,
    pub private_ip: Option<String>,
    pub port: u16,
    pub pid: Option<u32>,
    pub launched_at: Time,
    pub in_service_at: Option<Time>,
    pub instance_type: String,
    pub vcpu: f64,
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub memory_percent: Option<f64>,
}

/// An API error: an HTTP status and a JSON body `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: status.as_u16(),
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// An error with its own code, for the node's answers.
    pub fn new_public(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(status, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// The request is well formed but the state does not allow it.
    pub fn conflict(what: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, &format!("invalid_{what}"), message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "bellows is shutting down",
        )
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a ApiError,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(ErrorBody { error: &self })).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        // A body of the wrong shape is as bad a request as a body that is not JSON.
        let status = match r.status() {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            s => s,
        };
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "bad_request"
        };
        ApiError::new(status, code, r.body_text())
    }
}

/// A JSON object body whose rejections are API errors. Any content type is taken (as
/// `curl -d` sends a form's), but the body must be one JSON object.
struct Json<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let body = bytes::Bytes::from_request(req, state).await.map_err(|r| {
            let status = r.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "too_large"
            } else {
                "bad_request"
            };
            ApiError::new(status, code, r.body_text())
        })?;
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        serde_json::from_slice(&body).map(Json).map_err(|e| {
            ApiError::bad_request(format!("the body is not what this call takes: {e}"))
        })
    }
}

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

/// Proof that the request carried the token; names who made the change.
struct Operator(Actor);

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

pub fn router(state: ApiState) -> Router {
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
        .fallback(|| async { ApiError::not_found("no such endpoint; see /api/v1/status") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn status(State(s): State<ApiState>) -> Result<axum::Json<StatusView>, ApiError> {
    s.ask(Call::Status).await.map(axum::Json)
}

async fn instances(State(s): State<ApiState>) -> Result<axum::Json<Vec<InstanceView>>, ApiError> {
    s.ask(Call::Instances).await.map(axum::Json)
}

async fn alarms(State(s): State<ApiState>) -> Result<axum::Json<Vec<AlarmView>>, ApiError> {
    s.ask(Call::Alarms).await.map(axum::Json)
}

async fn deliveries(State(s): State<ApiState>) -> Result<axum::Json<Vec<Delivery>>, ApiError> {
    s.ask(Call::Deliveries).await?.map(axum::Json)
}

async fn metrics_list(State(s): State<ApiState>) -> Result<axum::Json<Vec<SeriesKey>>, ApiError> {
    s.ask(Call::MetricsList).await.map(axum::Json)
}

async fn metrics_query(
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
enum PutBody {
    Many { metrics: Vec<MetricDatum> },
    One(MetricDatum),
}

async fn put_metrics(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: bytes::Bytes,
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
        PutBody::Many { metrics } => metrics,
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

async fn targets(State(s): State<ApiState>) -> Result<axum::Json<Vec<TargetView>>, ApiError> {
    s.ask(Call::Targets).await.map(axum::Json)
}

async fn listeners(State(s): State<ApiState>) -> Result<axum::Json<Vec<ListenerView>>, ApiError> {
    s.ask(Call::Listeners).await.map(axum::Json)
}

async fn metrics(State(s): State<ApiState>) -> Result<Response, ApiError> {
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

async fn ingress(
    s: ApiState,
    actor: Actor,
    listener: String,
    body: IngressRequest,
    authorize: bool,
) -> Result<axum::Json<IngressChange>, ApiError> {
    let cidr: Cidr = body.cidr.parse().map_err(ApiError::bad_request)?;
    s.ask(|reply| Call::Ingress {
        listener,
        cidr,
        authorize,
        actor,
        reply,
    })
    .await?
    .map(axum::Json)
}

async fn authorize(
    State(s): State<ApiState>,
    Operator(actor): Operator,
    Path(listener): Path<String>,
    Json(body): Json<IngressRequest>,
) -> Result<axum::Json<IngressChange>, ApiError> {
    ingress(s, actor, listener, body, true).await
}

async fn revoke(
    State(s): State<ApiState>,
    Operator(actor): Operator,
    Path(listener): Path<String>,
    Json(body): Json<IngressRequest>,
) -> Result<axum::Json<IngressChange>, ApiError> {
    ingress(s, actor, listener, body, false).await
}

async fn zones(State(s): State<ApiState>) -> Result<axum::Json<Vec<ZoneView>>, ApiError> {
    s.ask(Call::Zones).await.map(axum::Json)
}

/// A zone's outage starts (`{"available": false}`: its instances are killed and nothing
/// is launched there) or ends (`true`: the groups move instances back, launch first).
async fn set_zone(
    State(s): State<ApiState>,
    Operator(actor): Operator,
    Path(zone): Path<String>,
    Json(body): Json<ZoneRequest>,
) -> Result<axum::Json<ZoneChange>, ApiError> {
    s.ask(|reply| Call::SetZone {
        zone,
        available: body.available,
        actor,
        reply,
    })
    .await?
    .map(axum::Json)
}

#[derive(Deserialize)]
struct ActivitiesQuery {
    group: Option<String>,
    limit: Option<usize>,
}

async fn activities(
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

/// The body of `PUT /api/v1/groups/{group}/capacity`; absent fields stay as they are.
#[derive(Debug, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CapacityRequest {
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub desired: Option<u32>,
}

async fn set_capacity(
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

/// `POST /api/v1/instances/{id}/terminate`, like terminate-instance-in-auto-scaling-group.
#[derive(Debug, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TerminateRequest {
    #[serde(default)]
    pub decrement_desired: bool,
}

/// `PUT /api/v1/instances/{id}/health`, like set-instance-health.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthRequest {
    pub health: Health,
}

async fn terminate(
    State(s): State<ApiState>,
    Operator(actor): Operator,
    Path(id): Path<String>,
    Json(body): Json<TerminateRequest>,
) -> Result<axum::Json<Capacity>, ApiError> {
    let instance = instance_id(&id)?;
    s.ask(|reply| Call::Terminate {
        instance,
        decrement: body.decrement_desired,
        actor,
        reply,
    })
    .await?
    .map(axum::Json)
}

async fn set_health(
    State(s): State<ApiState>,
    Operator(actor): Operator,
    Path(id): Path<String>,
    Json(body): Json<HealthRequest>,
) -> Result<StatusCode, ApiError> {
    let instance = instance_id(&id)?;
    s.ask(|reply| Call::SetHealth {
        instance,
        health: body.health,
        actor,
        reply,
    })
    .await??;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectionRequest {
    pub protected: bool,
}

fn instance_id(raw: &str) -> Result<InstanceId, ApiError> {
    InstanceId::parse(raw).ok_or_else(|| {
        ApiError::bad_request(format!(
            "`{raw}` is not an instance id (i- and 17 hex digits)"
        ))
    })
}

async fn set_protection(
    State(s): State<ApiState>,
    Operator(actor): Operator,
    Path(id): Path<String>,
    Json(body): Json<ProtectionRequest>,
) -> Result<StatusCode, ApiError> {
    let instance = instance_id(&id)?;
    s.ask(|reply| Call::SetProtection {
        instance,
        protected: body.protected,
        actor,
        reply,
    })
    .await??;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct LogQuery {
    #[serde(default)]
    follow: bool,
    /// Bytes from the end to start with; the whole log when absent.
    tail: Option<u64>,
}

async fn logs(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let instance = instance_id(&id)?;
    let iid = instance.clone();
    let (path, _) = s
        .ask(|reply| Call::Log {
            instance: iid,
            reply,
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no log for instance `{id}`")))?;
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .len();
    let start = q.tail.map_or(0, |t| len.saturating_sub(t));
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("static header"),
    );
    if !q.follow {
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        return Ok((headers, buf).into_response());
    }
    // Follow: send what is there, then what gets appended, until the instance is gone
    // and its log read to the end, or the client goes away.
    let stream = futures_util::stream::unfold(
        (file, s, instance, false),
        |(mut file, s, instance, done)| async move {
            if done {
                return None;
            }
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match file.read(&mut buf).await {
                    Ok(0) => {
                        let running = s
                            .ask(|reply| Call::Log {
                                instance: instance.clone(),
                                reply,
                            })
                            .await
                            .ok()
                            .flatten()
                            .is_some_and(|(_, r)| r);
                        if !running {
                            let mut rest = Vec::new();
                            let _ = file.read_to_end(&mut rest).await;
                            return Some((
                                Ok::<_, std::io::Error>(bytes::Bytes::from(rest)),
                                (file, s, instance, true),
                            ));
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Ok(n) => {
                        buf.truncate(n);
                        return Some((Ok(bytes::Bytes::from(buf)), (file, s, instance, false)));
                    }
                    Err(e) => return Some((Err(e), (file, s, instance, true))),
                }
            }
        },
    );
    Ok((headers, Body::from_stream(stream)).into_response())
}

#[derive(Deserialize)]
struct AuditQuery {
    /// How far back: a duration such as `15m`.
    since: Option<String>,
    /// One resource (`group/web`) or a kind of them (`instance/`).
    target: Option<String>,
    limit: Option<usize>,
}

async fn audit(
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
struct EventsQuery {
    /// Replay stored events after this sequence number first (as `Last-Event-ID`).
    after: Option<i64>,
}

/// `GET /api/v1/events`: every state change as Server-Sent Events, `id` = its sequence
/// number in the store, `event` = its kind, `data` = the event as JSON. A client that
/// reconnects with `Last-Event-ID` (or `?after=`) gets what it missed first.
async fn events(
    State(s): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    use axum::response::sse::{Event as Sse, KeepAlive};
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let after = match headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::parse::<i64>)
    {
        Some(Ok(seq)) => Some(seq),
        Some(Err(_)) => return Err(ApiError::bad_request("Last-Event-ID must be a number")),
        None => q.after,
    };
    // Subscribe before reading the store, so nothing falls between the two.
    let live = s.events.subscribe();
    let replay = match after {
        Some(seq) => s.ask(|reply| Call::EventsAfter { seq, reply }).await??,
        None => Vec::new(),
    };
    let last = replay.last().map_or(after.unwrap_or(0), |(seq, _)| *seq);
    let to_sse = |seq: i64, e: &Event| {
        Sse::default()
            .id(seq.to_string())
            .event(e.kind())
            .json_data(e)
            .unwrap_or_else(|_| Sse::default().comment("unserialisable event"))
    };
    let replayed: Vec<Result<Sse, std::convert::Infallible>> =
        replay.iter().map(|(seq, e)| Ok(to_sse(*seq, e))).collect();
    let live = futures_util::stream::unfold((live, last), move |(mut rx, last)| async move {
        loop {
            match rx.recv().await {
                Ok((seq, e)) if seq > last => {
                    return Some((Ok(to_sse(seq, &e)), (rx, seq)));
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let note = Sse::default().event("lagged").data(format!(
                        "{n} events were dropped; reconnect with Last-Event-ID to replay them"
                    ));
                    return Some((Ok(note), (rx, last)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let stream = futures_util::StreamExt::chain(futures_util::stream::iter(replayed), live);
    Ok(axum::response::Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The body of `POST /api/v1/groups/{group}/refresh`, like StartInstanceRefresh's
/// preferences.
#[derive(Debug, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// Default 90.
    pub min_healthy_percentage: Option<u32>,
    /// A duration such as `30s`; default: the group's instance warmup.
    pub warmup: Option<String>,
}

async fn start_refresh(
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

async fn cancel_refresh(
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

async fn refresh_status(
    State(s): State<ApiState>,
    Path(group): Path<String>,
) -> Result<axum::Json<Refresh>, ApiError> {
    s.ask(|reply| Call::Refresh { group, reply })
        .await??
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("this group has had no instance refresh"))
}

/// The dashboard's files, built into the binary: (name, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "openapi.json",
        "application/json",
        include_bytes!("../assets/openapi.json"),
    ),
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../assets/index.html"),
    ),
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/dashboard.js"),
    ),
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/dashboard.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vendor/uplot/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/vendor/uplot/uPlot.min.css"),
    ),
    (
        "uPlot.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../assets/vendor/uplot/LICENSE"),
    ),
];

/// One of the dashboard's files, with headers that keep the page to its own origin.
fn asset(name: &str) -> Response {
    let Some((_, content_type, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return ApiError::not_found(format!("no dashboard file `{name}`")).into_response();
    };
    (
        [
            (header::CONTENT_TYPE, *content_type),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        *body,
    )
        .into_response()
}

/// `POST /api/v1/instances/{id}/stress`: asks the instance (the stress app of seed 002)
/// to load its CPU, as a `POST /` to it would; the body is passed on as it is.
async fn stress(
    State(s): State<ApiState>,
    Operator(actor): Operator,
    Path(id): Path<String>,
    body: bytes::Bytes,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let instance = instance_id(&id)?;
    if !body.is_empty() {
        serde_json::from_slice::<serde_json::Value>(&body)
            .map_err(|e| ApiError::bad_request(format!("the body must be JSON: {e}")))?;
    }
    let target = s
        .ask(Call::Instances)
        .await?
        .into_iter()
        .find(|i| i.id == instance && i.lifecycle == Lifecycle::InService)
        .and_then(|i| i.private_ip.map(|ip| format!("{ip}:{}", i.port)))
        .ok_or_else(|| ApiError::not_found(format!("no instance `{id}` in service")))?;
    let answer = tokio::time::timeout(Duration::from_secs(5), post_once(&target, &body))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!("{target} did not answer within 5 s"),
            )
        })?
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "unreachable",
                format!("{target}: {e}"),
            )
        })?;
    let (status, text) = answer;
    let _ = s
        .ask(|reply| Call::Note {
            actor,
            action: "StartStress".to_owned(),
            target: format!("instance/{id}"),
            after: serde_json::json!({ "request": String::from_utf8_lossy(&body), "status": status }),
            ok: (200..300).contains(&status),
            reply,
        })
        .await;
    if !(200..300).contains(&status) {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "instance_refused",
            format!("{target} answered {status}: {}", text.trim()),
        ));
    }
    Ok(axum::Json(
        serde_json::json!({ "instance": id, "status": status, "answer": text.trim() }),
    ))
}

/// One `POST /` with `Connection: close`: the status and the body.
async fn post_once(addr: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut raw = Vec::new();
    s.take(64 * 1024).read_to_end(&mut raw).await?;
    Ok(crate::client::split_response(&raw))
}

#[cfg(test)]
mod tests;

/// The body of `POST /api/v1/stack`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// The file's name, for error positions (`file:line:column`).
    #[serde(default = "default_file")]
    pub file: String,
    /// The stack file's text.
    pub source: String,
    /// Only validate and compare: change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

fn default_file() -> String {
    "stack.toml".to_owned()
}

async fn apply(
    State(s): State<ApiState>,
    Operator(actor): Operator,
    Json(body): Json<ApplyRequest>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    if body.file.len() > 4096 || body.file.contains('\n') {
        return Err(ApiError::bad_request("file: a file name, on one line"));
    }
    s.ask(|reply| Call::Apply {
        file: body.file,
        source: body.source,
        dry_run: body.dry_run,
        actor,
        reply,
    })
    .await?
    .map(axum::Json)
}

async fn stack(State(s): State<ApiState>) -> Result<axum::Json<serde_json::Value>, ApiError> {
    s.ask(Call::Stack).await.map(axum::Json)
}

#[derive(Deserialize)]
struct InvestigateQuery {
    /// How far back the symptom window starts (default 15m).
    since: Option<String>,
    alarm: Option<String>,
}

/// `GET /api/v1/investigate?since=15m&alarm=NAME`: the report, with its Markdown.
async fn investigate(
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
    if since.as_millis() < 10_000 || since.as_millis() > 3 * 3_600_000 {
        return Err(ApiError::bad_request("since: between 10s and 3h"));
    }
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

async fn investigations(
    State(s): State<ApiState>,
) -> Result<axum::Json<Vec<InvestigationRow>>, ApiError> {
    s.ask(Call::Investigations).await?.map(axum::Json)
}

async fn investigation(
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

async fn incidents(State(s): State<ApiState>) -> Result<axum::Json<Vec<Incident>>, ApiError> {
    s.ask(Call::Incidents).await?.map(axum::Json)
}
