//! What a stack says of scaling: the policies (EC2 Auto Scaling's simple, step and
//! target tracking ones, Kubernetes' HPA, Knative's KPA, bellows' predictive policy)
//! and the scheduled actions, as definitions with their defaults and no behaviour. The
//! stack holds them, `scaling` runs them; neither imports the other's insides.

use serde::{Deserialize, Serialize};

use crate::metrics::{SeriesKey, Statistic};
use crate::schedule::Cron;
use crate::{Duration, Time};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdjustmentType {
    ChangeInCapacity,
    ExactCapacity,
    PercentChangeInCapacity,
}

/// One step: applies when `metric - threshold` lies in [lower, upper) above the
/// threshold, or (lower, upper] below it; a missing bound is infinite.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub adjustment: i64,
}

/// The metric a target tracking policy keeps at its target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TrackedMetric {
    /// The group's average CPU, over instances past their warmup.
    AsgAverageCpuUtilization,
    /// Requests per target per period in a target group.
    AlbRequestCountPerTarget { target_group: String },
    Custom {
        metric: SeriesKey,
        statistic: Statistic,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PolicyKind {
    Simple {
        adjustment_type: AdjustmentType,
        adjustment: i64,
        cooldown: Option<Duration>,
        min_adjustment_magnitude: Option<i64>,
    },
    Step {
        adjustment_type: AdjustmentType,
        steps: Vec<Step>,
        min_adjustment_magnitude: Option<i64>,
        warmup: Option<Duration>,
    },
    TargetTracking {
        metric: TrackedMetric,
        target: f64,
        disable_scale_in: bool,
        warmup: Option<Duration>,
        period: Duration,
    },
    /// Kubernetes' Horizontal Pod Autoscaler.
    Hpa(HpaSpec),
    /// Knative's Pod Autoscaler: stable and panic windows over the request rate.
    Kpa(KpaSpec),
    /// bellows' predictive policy: a daily-seasonal forecast from the group's own
    /// history, scaled ahead of demand, with a fast reactive part for what it misses.
    Predictive(PredictiveSpec),
}

impl PolicyKind {
    /// Whether the policy runs on its own clock rather than on alarms.
    pub fn is_periodic(&self) -> bool {
        matches!(
            self,
            PolicyKind::Hpa(_) | PolicyKind::Kpa(_) | PolicyKind::Predictive(_)
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicySpec {
    pub name: String,
    pub group: String,
    pub kind: PolicyKind,
}

/// A scheduled action: at each cron match, or once at `start` when it has no cron, set
/// the group's min, max and/or desired.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduledAction {
    pub name: String,
    pub group: String,
    /// When it recurs. None: a one-time action (AWS's `StartTime` without `Recurrence`),
    /// run once when the clock passes `start`.
    pub cron: Option<Cron>,
    /// A recurring action runs only from `start` until `end`, as AWS's StartTime and
    /// EndTime bound a recurrence; a one-time action runs at `start`.
    #[serde(default)]
    pub start: Option<Time>,
    #[serde(default)]
    pub end: Option<Time>,
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub desired: Option<u32>,
}

/// Kubernetes' HPA as documented: every sync period `desired = ceil(ready * metric /
/// target)`, nothing when the ratio is within the tolerance of 1, not-ready instances
/// counted at 0% on the way up and at 100% on the way down, the largest recommendation
/// of the scale-down window, and at most max(100%, 4) more per period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HpaSpec {
    pub metric: TrackedMetric,
    pub target: f64,
    pub sync_period: Duration,
    pub tolerance: f64,
    pub scale_down_window: Duration,
    pub scale_up_window: Duration,
}

/// Knative's KPA on the request rate of a target group: per tick, the rate over the
/// stable window and over the panic window, each divided by `target * utilization`;
/// panic when the panic window asks for `panic_threshold` times the ready instances;
/// while panicking (a stable window long) it never scales down.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KpaSpec {
    pub target_group: String,
    /// Requests per second one instance should take (Knative's `rps` target).
    pub target: f64,
    pub utilization: f64,
    pub stable_window: Duration,
    pub panic_window: Duration,
    pub panic_threshold: f64,
    pub tick: Duration,
    /// Scale down to no less than ready / this per tick.
    pub max_scale_down_rate: f64,
}

/// bellows' predictive policy on the request rate of a target group. It sizes for the
/// per-second rate's spread as well as its mean: an instance for every `target` of the
/// mean, and for every `burst_target` of the high point `mean + burst x standard
/// deviation`, whichever asks for more. Smooth traffic is sized by its mean; bursty
/// traffic (a small mean made of seconds of zero and seconds of hundreds) gets the
/// headroom its bursts need. Each minute it keeps the mean and the variance of that
/// minute's per-second request counts (its own history, up to `history_days`); each
/// tick it asks for the larger of (a) what the forecast needs at its peak over the
/// next `lead`, where a minute's forecast is the mean (and the mean variance) of the
/// same minute on previous days, scaled by how the last 30 minutes compare with the
/// same 30 minutes on those days (daily seasonality and trend), and (b) what the mean
/// and spread of the last `reactive_window` need, for what the forecast misses. It
/// scales in only to the largest recommendation of the last `scale_in_window`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PredictiveSpec {
    pub target_group: String,
    /// Requests per second one instance should take.
    pub target: f64,
    /// Standard deviations of the per-second rate sized for above its mean.
    pub burst: f64,
    /// Requests one instance should take in a second of that high point (a burst may
    /// run an instance harder than its sustained `target`: it lasts seconds).
    pub burst_target: f64,
    pub lead: Duration,
    pub history_days: u32,
    pub tick: Duration,
    pub reactive_window: Duration,
    pub scale_in_window: Duration,
}

impl HpaSpec {
    pub fn new(metric: TrackedMetric, target: f64) -> HpaSpec {
        HpaSpec {
            metric,
            target,
            sync_period: Duration::from_secs(15),
            tolerance: 0.1,
            scale_down_window: Duration::from_secs(300),
            scale_up_window: Duration::ZERO,
        }
    }
}

impl KpaSpec {
    pub fn new(target_group: String, target: f64) -> KpaSpec {
        KpaSpec {
            target_group,
            target,
            utilization: 0.7,
            stable_window: Duration::from_secs(60),
            panic_window: Duration::from_secs(6),
            panic_threshold: 2.0,
            tick: Duration::from_secs(2),
            max_scale_down_rate: 2.0,
        }
    }
}

impl PredictiveSpec {
    pub fn new(target_group: String, target: f64) -> PredictiveSpec {
        PredictiveSpec {
            target_group,
            target,
            burst: 0.0,
            burst_target: target,
            lead: Duration::from_secs(300),
            history_days: 7,
            tick: Duration::from_secs(5),
            reactive_window: Duration::from_secs(10),
            scale_in_window: Duration::from_secs(120),
        }
    }
}
