//! What a group records and its events carry: an instance's lifecycle and health,
//! scaling activities and instance refreshes. Apart from `group.rs` (which re-exports
//! them) so that `event.rs` and `group.rs` do not import each other.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::InstanceId;
use crate::{Duration, Time};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lifecycle {
    /// Launched: booting, running its setup script, or starting its command.
    Pending,
    /// Running its command and counted in the group's capacity.
    InService,
    /// Asked to stop; no longer counted.
    Terminating,
    Terminated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Health {
    Healthy,
    Unhealthy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActivityKind {
    Launch,
    Terminate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActivityStatus {
    InProgress,
    Successful,
    Failed,
}

/// A scaling activity, as `aws autoscaling describe-scaling-activities` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub id: String,
    pub group: String,
    pub instance: InstanceId,
    pub kind: ActivityKind,
    pub description: String,
    pub cause: String,
    pub start: Time,
    pub end: Option<Time>,
    pub status: ActivityStatus,
    pub status_message: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefreshStatus {
    InProgress,
    Successful,
    Cancelled,
}

/// A refresh's progress, as `describe-instance-refreshes` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refresh {
    pub id: String,
    pub group: String,
    pub status: RefreshStatus,
    pub status_reason: String,
    pub min_healthy_percentage: u32,
    pub warmup: Duration,
    pub start: Time,
    pub end: Option<Time>,
    /// How many instances the refresh replaces.
    pub total: u32,
    /// Old instances still to be taken out.
    pub remaining: BTreeSet<InstanceId>,
    /// Old instances skipped because they are protected from scale in.
    pub skipped: BTreeSet<InstanceId>,
    pub percentage_complete: u32,
    /// Batches started so far.
    pub batches: u32,
}
