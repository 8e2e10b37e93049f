//! The control API's wire types: what its requests and answers carry as JSON, and its
//! errors. Both the server (`api.rs`) and its client (`client.rs`) use them; nothing
//! here knows about either.

use axum::http::StatusCode;
use bellows_core::Time;
use bellows_core::alarm::{AlarmState, Transition};
use bellows_core::group::{Health, Lifecycle, Refresh};
use bellows_core::ids::InstanceId;
use bellows_core::lb::cidr::Cidr;
use bellows_core::metrics::SeriesKey;
use bellows_core::stack::{HealthCheckType, TerminationPolicy};
use bellows_proxy::ListenerView;
use serde::{Deserialize, Serialize};

/// Who asked for a change: the token's name and where the request came from (the CLI
/// and the dashboard say so in `X-Bellows-Source`; anything else is `api`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub name: String,
    pub source: String,
    /// The action as the caller named it, when it did (the AWS face: a
    /// `SetDesiredCapacity` is a capacity change that the audit trail records under
    /// that name, as CloudTrail would).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

impl Actor {
    /// bellows itself, deciding on its own (policies, health replacement, shutdown).
    pub fn bellows() -> Actor {
        Actor {
            name: "bellows".to_owned(),
            source: "bellows".to_owned(),
            action: None,
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

/// A DynamoDB table of the stack, as `bellows tables` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableView {
    pub name: String,
    /// `PROVISIONED` or `PAY_PER_REQUEST`.
    pub billing_mode: String,
    /// The partition key and, if any, the sort key: `name (TYPE)`.
    pub key: Vec<String>,
    pub items: i64,
    pub bytes: i64,
    pub read_capacity: i64,
    pub write_capacity: i64,
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
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
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

    pub(crate) fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "bellows is shutting down",
        )
    }
}

/// The body of `PUT /api/v1/groups/{group}/capacity`; absent fields stay as they are.
#[derive(Debug, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CapacityRequest {
    #[serde(default, deserialize_with = "whole")]
    pub min: Option<u32>,
    #[serde(default, deserialize_with = "whole")]
    pub max: Option<u32>,
    #[serde(default, deserialize_with = "whole")]
    pub desired: Option<u32>,
}

/// A count written `3` or `3.0`: JSON Schema, which the OpenAPI document follows, calls
/// both integers, so both are taken; a fraction or a number out of range is refused.
fn whole<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = match n.as_u64() {
        Some(v) => u32::try_from(v).ok(),
        None => n
            .as_f64()
            .filter(|v| v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(v))
            .map(|v| v as u32),
    };
    whole.map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!("`{n}` is not a whole number from 0 to 4294967295"))
    })
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

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectionRequest {
    pub protected: bool,
}

/// The body of `POST /api/v1/groups/{group}/refresh`, like StartInstanceRefresh's
/// preferences.
#[derive(Debug, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// Default 90.
    #[serde(default, deserialize_with = "whole")]
    pub min_healthy_percentage: Option<u32>,
    /// A duration such as `30s`; default: the group's instance warmup.
    pub warmup: Option<String>,
}

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
