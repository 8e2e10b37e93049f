//! The one closed enum of state changes. Every change is recorded once, as one of these,
//! and every view (the CLI, the event stream, the activity history) reads them.

use serde::{Deserialize, Serialize};

use crate::Time;
use crate::alarm::AlarmState;
use crate::ids::InstanceId;
use crate::lb::select::TargetState;
use crate::records::{Activity, Health, Lifecycle, Refresh};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A scaling activity started or ended; the activity carries its status.
    Activity { activity: Activity },
    /// An instance moved between lifecycle states.
    Lifecycle {
        time: Time,
        group: String,
        instance: InstanceId,
        from: Option<Lifecycle>,
        to: Lifecycle,
        zone: String,
    },
    /// An instance's health status changed.
    Health {
        time: Time,
        group: String,
        instance: InstanceId,
        health: Health,
        reason: String,
    },
    /// An instance's scale-in protection was set or cleared.
    Protection {
        time: Time,
        group: String,
        instance: InstanceId,
        protected: bool,
    },
    /// A target's health in a target group changed (ALB's target states).
    TargetHealth {
        time: Time,
        target_group: String,
        instance: InstanceId,
        from: TargetState,
        to: TargetState,
        reason: Option<String>,
    },
    /// An alarm changed state.
    Alarm {
        time: Time,
        alarm: String,
        from: AlarmState,
        to: AlarmState,
        reason: String,
    },
    /// A listener's ingress allow-list changed.
    Ingress {
        time: Time,
        listener: String,
        cidr: String,
        authorized: bool,
        actor: String,
    },
    /// The group's min, max or desired capacity changed.
    Capacity {
        time: Time,
        group: String,
        before: Capacity,
        after: Capacity,
        cause: String,
    },
    /// An instance refresh started, started a batch, ended or was cancelled.
    Refresh { time: Time, refresh: Refresh },
    /// A change was asked for, by an operator or by bellows itself: the audit trail.
    Audit { record: AuditRecord },
}

impl Event {
    pub fn time(&self) -> Time {
        match self {
            Event::Activity { activity } => activity.end.unwrap_or(activity.start),
            Event::Audit { record } => record.time,
            Event::Lifecycle { time, .. }
            | Event::Health { time, .. }
            | Event::Protection { time, .. }
            | Event::Capacity { time, .. }
            | Event::TargetHealth { time, .. }
            | Event::Ingress { time, .. }
            | Event::Refresh { time, .. }
            | Event::Alarm { time, .. } => *time,
        }
    }

    /// A short name for the kind of event, as stored and filtered on.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Activity { .. } => "activity",
            Event::Lifecycle { .. } => "lifecycle",
            Event::Health { .. } => "health",
            Event::Protection { .. } => "protection",
            Event::Capacity { .. } => "capacity",
            Event::TargetHealth { .. } => "target_health",
            Event::Ingress { .. } => "ingress",
            Event::Alarm { .. } => "alarm",
            Event::Audit { .. } => "audit",
            Event::Refresh { .. } => "refresh",
        }
    }
}

/// A group's size limits and target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    pub min: u32,
    pub max: u32,
    pub desired: u32,
}

/// One change to the running system, as CloudTrail records an API call: who asked for
/// what on which resource, the resource before and after, and how it ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub time: Time,
    /// The token's name (`operator`), or `bellows` for its own decisions.
    pub actor: String,
    /// Where the change came from: `api`, `cli`, `dashboard`, or `bellows`.
    pub source: String,
    /// What was asked, named like the AWS call it stands for (`UpdateAutoScalingGroup`,
    /// `RevokeSecurityGroupIngress`, `ExecutePolicy`, ...).
    pub action: String,
    /// The resource, as `kind/name`: `group/web`, `instance/i-...`, `listener/public`.
    pub target: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    /// `ok`, or the error's code and message.
    pub result: String,
}

impl AuditRecord {
    pub fn succeeded(&self) -> bool {
        self.result == "ok"
    }
}
