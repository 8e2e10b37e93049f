//! The loop's side of the API: each handler sends one `Call` to the node's loop with a
//! channel for the answer, and the loop (`node/calls.rs`) does it and replies.

use std::path::PathBuf;

use bellows_core::Time;
use bellows_core::event::{Capacity, Event};
use bellows_core::group::{Activity, Health, Refresh};
use bellows_core::ids::InstanceId;
use bellows_core::lb::cidr::Cidr;
use bellows_core::metrics::SeriesKey;
use bellows_proxy::{ListenerView, TargetView};
use tokio::sync::oneshot;

use super::types::*;
use crate::store::{AuditEntry, Delivery, Incident, InvestigationRow};

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
    /// DynamoDB's tables with their item counts and sizes.
    Tables(oneshot::Sender<Result<Vec<TableView>, ApiError>>),
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
    /// Auto Scaling's ExecutePolicy: a simple or step policy, now.
    ExecutePolicy {
        policy: String,
        honor_cooldown: bool,
        metric_value: Option<f64>,
        breach_threshold: Option<f64>,
        actor: Actor,
        reply: oneshot::Sender<Result<(), ApiError>>,
    },
    /// CloudWatch's SetAlarmState: the state holds until the alarm's next period.
    SetAlarmState {
        alarm: String,
        state: bellows_core::alarm::AlarmState,
        reason: String,
        actor: Actor,
        reply: oneshot::Sender<Result<(), ApiError>>,
    },
    /// CloudWatch's PutMetricAlarm: an alarm created or redefined, kept across restarts.
    PutAlarm {
        spec: bellows_core::alarm::AlarmSpec,
        actor: Actor,
        reply: oneshot::Sender<Result<(), ApiError>>,
    },
    /// CloudWatch's DeleteAlarms: every alarm named must exist, or none is deleted.
    DeleteAlarms {
        names: Vec<String>,
        actor: Actor,
        reply: oneshot::Sender<Result<(), ApiError>>,
    },
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
    /// An operation on the AWS resource records (see `resources.rs`), run in the loop.
    /// With an actor it may change them: then the loop applies what the records now
    /// describe and audits the change; if that fails, the records are rolled back and
    /// the call answers the failure.
    Resources {
        actor: Option<Actor>,
        op: crate::resources::ResourceOp,
        reply: oneshot::Sender<Result<Box<dyn std::any::Any + Send>, bellows_aws::AwsError>>,
    },
    /// The instance's log file, and whether the instance still runs.
    Log {
        instance: InstanceId,
        reply: oneshot::Sender<Option<(PathBuf, bool)>>,
    },
}

impl Call {
    /// A [`Call::Resources`] that runs `op` in the loop and
    /// hands its answer to the returned receiver. With an `actor` the call may change
    /// records (and is audited as that actor); without one it only reads.
    pub fn resources<T: Send + 'static>(
        actor: Option<Actor>,
        op: impl FnOnce(&mut crate::resources::Resources) -> Result<T, bellows_aws::AwsError>
        + Send
        + 'static,
    ) -> (Call, impl Future<Output = Result<T, bellows_aws::AwsError>>) {
        let (tx, rx) = oneshot::channel();
        let op =
            crate::resources::ResourceOp(Box::new(move |r: &mut crate::resources::Resources| {
                op(r).map(|v| Box::new(v) as Box<dyn std::any::Any + Send>)
            }));
        let call = Call::Resources {
            actor,
            op,
            reply: tx,
        };
        let answer = async move {
            let gone = || {
                bellows_aws::AwsError::new(503, "ServiceUnavailable", "bellows is shutting down")
            };
            let v = rx.await.map_err(|_| gone())??;
            v.downcast::<T>().map(|b| *b).map_err(|_| {
                bellows_aws::AwsError::new(500, "InternalFailure", "answer of the wrong type")
            })
        };
        (call, answer)
    }
}
