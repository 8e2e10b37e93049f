//! Scaling policies as EC2 Auto Scaling defines them, and the scaler that runs alarms
//! and policies against the groups: simple scaling with cooldown, step scaling with
//! warmup, target tracking, scheduled actions; among policies the largest capacity wins.
//! Policies that run on a clock of their own rather than on alarms (Kubernetes' HPA,
//! Knative's KPA and bellows' predictive policy) live in `scaling/periodic.rs`.

mod from_zero;
mod periodic;
mod warmup;

use std::collections::BTreeMap;

use crate::alarm::{Alarm, AlarmSpec, AlarmState, Comparison, MissingData, Transition};
use crate::group::{Group, Lifecycle};
use crate::metrics::{MetricStore, SeriesKey, Statistic, catalogue};
use crate::{Duration, Time};

pub use crate::policy::{
    AdjustmentType, HpaSpec, KpaSpec, PolicyKind, PolicySpec, PredictiveSpec, ScheduledAction,
    Step, TrackedMetric,
};
pub use from_zero::{Woken, scale_from_zero};
pub use warmup::{WarmMean, is_warming};

/// AWS's rounding for PercentChangeInCapacity: above 1 rounded down, between 0 and 1
/// to 1, between -1 and 0 to -1, below -1 toward zero; then MinAdjustmentMagnitude.
pub fn percent_change(current: u32, percent: i64, min_magnitude: Option<i64>) -> i64 {
    let raw = f64::from(current) * percent as f64 / 100.0;
    let mut n = if raw > 1.0 {
        raw.floor() as i64
    } else if raw > 0.0 {
        1
    } else if raw > -1.0 && raw < 0.0 {
        -1
    } else {
        raw.trunc() as i64
    };
    if let Some(m) = min_magnitude {
        if n > 0 && n < m {
            n = m;
        } else if n < 0 && -n < m {
            n = -m;
        }
    }
    n
}

/// The capacity an adjustment asks for, from `current`.
pub fn adjusted(
    kind: AdjustmentType,
    adjustment: i64,
    current: u32,
    min_magnitude: Option<i64>,
) -> i64 {
    match kind {
        AdjustmentType::ChangeInCapacity => i64::from(current) + adjustment,
        AdjustmentType::ExactCapacity => adjustment,
        AdjustmentType::PercentChangeInCapacity => {
            i64::from(current) + percent_change(current, adjustment, min_magnitude)
        }
    }
}

/// The step for a metric value breaching `threshold`.
pub fn step_for(steps: &[Step], value: f64, threshold: f64) -> Option<&Step> {
    let d = value - threshold;
    steps.iter().find(|s| {
        if d >= 0.0 {
            s.lower.is_none_or(|l| d >= l) && s.upper.is_none_or(|u| d < u)
        } else {
            s.lower.is_none_or(|l| d > l) && s.upper.is_none_or(|u| d <= u)
        }
    })
}

/// Why ExecutePolicy did nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExecuteError {
    #[error("no policy {0}")]
    NotFound(String),
    #[error("policy {0} is in its cooldown")]
    Cooldown(String),
    #[error("{0}")]
    Invalid(String),
}

/// What the scaler did in one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Alarm(Transition),
    /// Run a webhook (`webhook:NAME` in an alarm's actions) for this transition.
    Webhook {
        webhook: String,
        transition: Transition,
    },
    /// A policy or scheduled action changed a group's capacity.
    Scaled {
        group: String,
        policy: String,
        from: u32,
        to: u32,
    },
}

#[derive(Clone, Debug)]
struct PolicyState {
    spec: PolicySpec,
    /// Simple scaling: alarms are ignored until then.
    cooldown_until: Time,
    /// The memory of a periodic policy (recommendations, panic mode, history).
    periodic: periodic::State,
}

/// The alarms and policies of a stack, evaluated against groups and metrics.
#[derive(Clone, Debug)]
pub struct Scaler {
    pub alarms: BTreeMap<String, Alarm>,
    policies: BTreeMap<String, PolicyState>,
    scheduled: Vec<ScheduledAction>,
    last_minute: u64,
    /// When the scaler last evaluated: a one-time scheduled action runs on the first
    /// evaluation at or after its time (never for a time before the scaler began).
    last_eval: Time,
    /// Per alarm: the period in which its scaling actions last ran.
    last_run: BTreeMap<String, u64>,
}

/// The group-level inputs a policy needs that the store does not hold.
pub trait GroupView {
    fn group(&self, name: &str) -> Option<&Group>;
    fn group_mut(&mut self, name: &str) -> Option<&mut Group>;
    /// Instances of the group still in their warmup.
    fn warming(&self, group: &str, now: Time) -> u32;
    /// Minutes east of UTC of a named time zone at `t` (for scheduled actions); the
    /// core reads no time zone data itself. None: unknown zone. There is no default, so
    /// that every driver of the scaler has to say where its offsets come from.
    fn utc_offset(&self, zone: &str, t: Time) -> Option<i32>;
}

impl Scaler {
    pub fn new(
        alarms: Vec<AlarmSpec>,
        policies: Vec<PolicySpec>,
        scheduled: Vec<ScheduledAction>,
        now: Time,
    ) -> Scaler {
        let mut s = Scaler {
            alarms: BTreeMap::new(),
            policies: BTreeMap::new(),
            scheduled,
            last_minute: now.as_secs() / 60,
            last_eval: now,
            last_run: BTreeMap::new(),
        };
        for a in alarms {
            s.alarms.insert(a.name.clone(), Alarm::new(a, now));
        }
        for p in policies {
            // Target tracking creates and owns its two alarms, as AWS does.
            if let PolicyKind::TargetTracking {
                metric,
                target,
                period,
                ..
            } = &p.kind
            {
                let (key, stat) = tracked_series(metric, &p.group);
                for (suffix, comparison, threshold, n) in [
                    ("AlarmHigh", Comparison::GreaterThanThreshold, *target, 3),
                    ("AlarmLow", Comparison::LessThanThreshold, target * 0.9, 15),
                ] {
                    let name = format!("TargetTracking-{}-{suffix}", p.name);
                    let spec = AlarmSpec {
                        name: name.clone(),
                        metric: key.clone(),
                        statistic: stat,
                        period: *period,
                        evaluation_periods: n,
                        datapoints_to_alarm: n,
                        comparison,
                        threshold,
                        treat_missing_data: MissingData::Missing,
                        alarm_actions: vec![p.name.clone()],
                        ok_actions: vec![],
                        insufficient_data_actions: vec![],
                        description: None,
                        datapoints_given: true,
                    };
                    s.alarms.insert(name, Alarm::new(spec, now));
                }
            }
            s.policies.insert(
                p.name.clone(),
                PolicyState {
                    spec: p,
                    cooldown_until: Time::default(),
                    periodic: periodic::State::default(),
                },
            );
        }
        s
    }

    /// SetAlarmState: the alarm's new state and what its transition sets off (the
    /// transition itself and its webhooks; its scaling actions run from the next
    /// `evaluate` while it stays in ALARM, as they do for a computed one). None: no such
    /// alarm.
    pub fn set_alarm_state(
        &mut self,
        alarm: &str,
        state: AlarmState,
        reason: String,
        now: Time,
    ) -> Option<Vec<Outcome>> {
        let a = self.alarms.get_mut(alarm)?;
        let Some(t) = a.set_state(state, reason, now) else {
            return Some(Vec::new());
        };
        let actions = match t.to {
            AlarmState::Alarm => &a.spec.alarm_actions,
            AlarmState::Ok => &a.spec.ok_actions,
            AlarmState::InsufficientData => &a.spec.insufficient_data_actions,
        };
        let mut out: Vec<Outcome> = actions
            .iter()
            .filter_map(|x| x.strip_prefix("webhook:"))
            .map(|w| Outcome::Webhook {
                webhook: w.to_owned(),
                transition: t.clone(),
            })
            .collect();
        out.push(Outcome::Alarm(t));
        Some(out)
    }

    /// PutMetricAlarm: creates the alarm, or replaces its definition. An alarm given
    /// the definition it has keeps its state and history; a changed one starts again
    /// from INSUFFICIENT_DATA, as CloudWatch re-evaluates an updated alarm. Whether it
    /// existed before.
    pub fn put_alarm(&mut self, spec: AlarmSpec, now: Time) -> bool {
        let existed = match self.alarms.get(&spec.name) {
            Some(a) if a.spec == spec => return true,
            Some(_) => true,
            None => false,
        };
        self.last_run.remove(&spec.name);
        self.alarms.insert(spec.name.clone(), Alarm::new(spec, now));
        existed
    }

    /// DeleteAlarms: the alarm and what it last ran. Whether there was one.
    pub fn remove_alarm(&mut self, name: &str) -> bool {
        self.last_run.remove(name);
        self.alarms.remove(name).is_some()
    }

    /// ExecutePolicy: runs a simple or step policy now, as its alarm would. A simple
    /// policy in its cooldown is refused when `honor_cooldown`; a step policy needs
    /// the metric's value and the threshold it breached. Ok(None): the capacity is
    /// already what the policy asks for.
    pub fn execute_policy(
        &mut self,
        policy: &str,
        groups: &mut impl GroupView,
        now: Time,
        honor_cooldown: bool,
        metric_value: Option<f64>,
        breach_threshold: Option<f64>,
    ) -> Result<Option<Outcome>, ExecuteError> {
        let p = self
            .policies
            .get(policy)
            .ok_or_else(|| ExecuteError::NotFound(policy.to_owned()))?;
        let group = p.spec.group.clone();
        let g = groups
            .group_mut(&group)
            .ok_or_else(|| ExecuteError::NotFound(policy.to_owned()))?;
        let cap = g.capacity();
        let clamp = |n: i64| n.clamp(0, i64::from(u32::MAX)) as u32;
        let wanted = match &p.spec.kind {
            PolicyKind::Simple {
                adjustment_type,
                adjustment,
                min_adjustment_magnitude,
                ..
            } => {
                if honor_cooldown && now.as_secs() < p.cooldown_until.as_secs() {
                    return Err(ExecuteError::Cooldown(policy.to_owned()));
                }
                clamp(adjusted(
                    *adjustment_type,
                    *adjustment,
                    cap.desired,
                    *min_adjustment_magnitude,
                ))
            }
            PolicyKind::Step {
                adjustment_type,
                steps,
                min_adjustment_magnitude,
                ..
            } => {
                let (Some(value), Some(threshold)) = (metric_value, breach_threshold) else {
                    return Err(ExecuteError::Invalid(
                        "a step scaling policy needs MetricValue and BreachThreshold".to_owned(),
                    ));
                };
                let step = step_for(steps, value, threshold).ok_or_else(|| {
                    ExecuteError::Invalid(format!(
                        "no step of policy {policy} covers {value} against the threshold {threshold}"
                    ))
                })?;
                clamp(adjusted(
                    *adjustment_type,
                    step.adjustment,
                    cap.desired,
                    *min_adjustment_magnitude,
                ))
            }
            _ => {
                return Err(ExecuteError::Invalid(format!(
                    "policy {policy} is not a simple or step scaling policy: only those can be executed"
                )));
            }
        };
        let to = wanted.clamp(cap.min, cap.max);
        if to == cap.desired {
            return Ok(None);
        }
        let cause = format!(
            "At {now} policy {policy} was executed, changing the desired capacity from {} to {to}.",
            cap.desired
        );
        g.set_capacity(None, None, Some(to), now, &cause)
            .map_err(|e| ExecuteError::Invalid(e.to_string()))?;
        if let Some(p) = self.policies.get_mut(policy)
            && let PolicyKind::Simple { cooldown, .. } = p.spec.kind
        {
            p.cooldown_until = now + cooldown.unwrap_or(Duration::from_secs(300));
        }
        Ok(Some(Outcome::Scaled {
            group,
            policy: policy.to_owned(),
            from: cap.desired,
            to,
        }))
    }

    /// Takes over the clock of the scaler this one replaces (a changed stack), so that
    /// a scheduled action due between the old one's last evaluation and this one's
    /// first runs, once.
    pub fn keep_clock_of(&mut self, old: &Scaler) {
        self.last_minute = old.last_minute;
        self.last_eval = old.last_eval;
    }

    pub fn policies(&self) -> impl Iterator<Item = &PolicySpec> {
        self.policies.values().map(|p| &p.spec)
    }

    /// Evaluates every alarm, runs the policies of those in ALARM (on the transition and
    /// once per period after), runs scheduled actions, and applies, per group, the
    /// largest capacity asked for.
    pub fn evaluate(
        &mut self,
        store: &MetricStore,
        groups: &mut impl GroupView,
        now: Time,
    ) -> Vec<Outcome> {
        let mut out = Vec::new();
        let mut due: Vec<(String, String)> = Vec::new(); // (alarm, policy)
        for (name, alarm) in self.alarms.iter_mut() {
            if let Some(t) = alarm.evaluate(store, now) {
                let actions = match t.to {
                    AlarmState::Alarm => &alarm.spec.alarm_actions,
                    AlarmState::Ok => &alarm.spec.ok_actions,
                    AlarmState::InsufficientData => &alarm.spec.insufficient_data_actions,
                };
                for a in actions {
                    if let Some(w) = a.strip_prefix("webhook:") {
                        out.push(Outcome::Webhook {
                            webhook: w.to_owned(),
                            transition: t.clone(),
                        });
                    }
                }
                out.push(Outcome::Alarm(t));
            }
            // Scaling actions repeat, once per period, while the alarm stays in ALARM.
            if alarm.state == AlarmState::Alarm {
                let period = alarm.period_index(now);
                if self.last_run.get(name) != Some(&period) {
                    self.last_run.insert(name.clone(), period);
                    for a in alarm
                        .spec
                        .alarm_actions
                        .iter()
                        .filter(|a| !a.starts_with("webhook:"))
                    {
                        due.push((name.clone(), a.clone()));
                    }
                }
            }
        }

        // Proposals per group: (policy, desired, is target tracking, is scale-in).
        let mut proposals: BTreeMap<String, Vec<(String, u32)>> = BTreeMap::new();
        for (alarm_name, policy_name) in due {
            let Some(p) = self.policies.get(&policy_name) else {
                continue;
            };
            let Some(alarm) = self.alarms.get(&alarm_name) else {
                continue;
            };
            if let Some(desired) = propose(p, alarm, store, groups, now) {
                proposals
                    .entry(p.spec.group.clone())
                    .or_default()
                    .push((policy_name.clone(), desired));
            }
        }
        // Periodic policies decide on their own clock.
        for p in self.policies.values_mut() {
            if !p.spec.kind.is_periodic() {
                continue;
            }
            if let Some(desired) = periodic::propose(&p.spec, &mut p.periodic, store, groups, now) {
                proposals
                    .entry(p.spec.group.clone())
                    .or_default()
                    .push((p.spec.name.clone(), desired));
            }
        }
        for (group, props) in proposals {
            let Some(g) = groups.group_mut(&group) else {
                continue;
            };
            let current = g.capacity().desired;
            // Target tracking scales in only when every such policy of the group agrees.
            let tt: Vec<&String> = self
                .policies
                .values()
                .filter(|p| {
                    p.spec.group == group
                        && matches!(p.spec.kind, PolicyKind::TargetTracking { .. })
                })
                .map(|p| &p.spec.name)
                .collect();
            let (policy, wanted) = props
                .iter()
                .max_by_key(|(_, d)| *d)
                .cloned()
                .expect("non-empty");
            if wanted < current && tt.len() > 1 {
                let agreeing = props
                    .iter()
                    .filter(|(n, d)| tt.contains(&n) && *d < current)
                    .count();
                if agreeing < tt.len() {
                    continue;
                }
            }
            let cap = g.capacity();
            let to = wanted.clamp(cap.min, cap.max);
            if to == current {
                continue;
            }
            let alarm = self
                .alarms
                .values()
                .find(|a| a.state == AlarmState::Alarm && a.spec.alarm_actions.contains(&policy))
                .map(|a| a.spec.name.clone());
            let cause = match alarm {
                Some(alarm) => format!(
                    "At {now} a monitor alarm {alarm} in state ALARM triggered policy {policy} changing the desired capacity from {current} to {to}."
                ),
                None => format!(
                    "At {now} policy {policy} changed the desired capacity from {current} to {to}."
                ),
            };
            if g.set_capacity(None, None, Some(to), now, &cause).is_ok() {
                if let Some(p) = self.policies.get_mut(&policy)
                    && let PolicyKind::Simple { cooldown, .. } = p.spec.kind
                {
                    p.cooldown_until = now + cooldown.unwrap_or(Duration::from_secs(300));
                }
                out.push(Outcome::Scaled {
                    group,
                    policy,
                    from: current,
                    to,
                });
            }
        }

        // Scheduled actions: a recurring one once per matching minute within its
        // start and end, a one-time one on the first evaluation at or after its time.
        let minute = now.as_secs() / 60;
        let new_minute = minute != self.last_minute;
        self.last_minute = minute;
        let since = std::mem::replace(&mut self.last_eval, now);
        for a in &self.scheduled {
            let due = match &a.cron {
                None => a.start.is_some_and(|at| since < at && at <= now),
                Some(cron) => {
                    new_minute
                        && a.start.is_none_or(|s| s <= now)
                        && a.end.is_none_or(|e| now < e)
                        && match cron.zone() {
                            crate::schedule::Zone::Fixed(offset) => {
                                cron.matches_with_offset(now, *offset)
                            }
                            crate::schedule::Zone::Named(name) => groups
                                .utc_offset(name, now)
                                .is_some_and(|offset| cron.matches_with_offset(now, offset)),
                        }
                }
            };
            if !due {
                continue;
            }
            let Some(g) = groups.group_mut(&a.group) else {
                continue;
            };
            let from = g.capacity().desired;
            let cause = format!("At {now} the scheduled action {} executed", a.name);
            if let Ok(cap) = g.set_capacity(a.min, a.max, a.desired, now, &cause)
                && cap.desired != from
            {
                out.push(Outcome::Scaled {
                    group: a.group.clone(),
                    policy: a.name.clone(),
                    from,
                    to: cap.desired,
                });
            }
        }
        out
    }
}

/// The series and statistic a target tracking policy follows.
pub fn tracked_series(metric: &TrackedMetric, group: &str) -> (SeriesKey, Statistic) {
    match metric {
        TrackedMetric::AsgAverageCpuUtilization => (
            catalogue::CPU_UTILIZATION.key(&[("AutoScalingGroupName", group)]),
            Statistic::Average,
        ),
        TrackedMetric::AlbRequestCountPerTarget { target_group } => (
            catalogue::REQUEST_COUNT_PER_TARGET.key(&[("TargetGroup", target_group)]),
            Statistic::Sum,
        ),
        TrackedMetric::Custom { metric, statistic } => (metric.clone(), *statistic),
    }
}

/// The capacity one policy asks for now, if any.
fn propose(
    p: &PolicyState,
    alarm: &Alarm,
    store: &MetricStore,
    groups: &impl GroupView,
    now: Time,
) -> Option<u32> {
    let g = groups.group(&p.spec.group)?;
    let desired = g.capacity().desired;
    let in_service = g.count(Lifecycle::InService) as u32;
    let warming = groups.warming(&p.spec.group, now);
    let value = alarm.last_value;
    let clamp = |n: i64| n.clamp(0, i64::from(u32::MAX)) as u32;
    match &p.spec.kind {
        PolicyKind::Simple {
            adjustment_type,
            adjustment,
            min_adjustment_magnitude,
            ..
        } => {
            // Cooldown: the alarm is ignored until the last activity is done and the
            // cooldown has passed.
            // Compared in whole seconds, the scaler's resolution: a tick a few
            // milliseconds early (the live loop's jitter) must not lose a period.
            if now.as_secs() < p.cooldown_until.as_secs() || g.count(Lifecycle::Pending) > 0 {
                return None;
            }
            Some(clamp(adjusted(
                *adjustment_type,
                *adjustment,
                desired,
                *min_adjustment_magnitude,
            )))
        }
        PolicyKind::Step {
            adjustment_type,
            steps,
            min_adjustment_magnitude,
            ..
        } => {
            let step = step_for(steps, value?, alarm.spec.threshold)?;
            // Warming instances count toward desired: the step applies to the capacity
            // that is past its warmup, and never lowers what is already asked for.
            let base = desired.saturating_sub(warming);
            let wanted = clamp(adjusted(
                *adjustment_type,
                step.adjustment,
                base,
                *min_adjustment_magnitude,
            ));
            if step.adjustment > 0
                || *adjustment_type == AdjustmentType::ExactCapacity && wanted > desired
            {
                Some(wanted.max(desired))
            } else if warming > 0 {
                None // Scale-in waits until warmup ends.
            } else {
                Some(wanted)
            }
        }
        PolicyKind::TargetTracking {
            metric,
            target,
            disable_scale_in,
            ..
        } => {
            let _ = (store, metric);
            let v = value?;
            let counted = in_service.saturating_sub(warming).max(1);
            // A hair below the exact ratio, so that 7 x 57.14 / 50 is 8, not 9.
            let wanted = (f64::from(counted) * v / target - 1e-9).ceil().max(0.0) as u32;
            if alarm.spec.comparison == Comparison::GreaterThanThreshold {
                Some(wanted.max(desired))
            } else if *disable_scale_in || warming > 0 {
                None
            } else {
                Some(wanted.min(desired))
            }
        }
        // Periodic policies are not run by alarms.
        PolicyKind::Hpa(_) | PolicyKind::Kpa(_) | PolicyKind::Predictive(_) => None,
    }
}

/// Instances of a group still in their warmup: pending, or in service for less than it.
pub fn warming_in(group: &Group, warmup: Duration, now: Time) -> u32 {
    group
        .instances()
        .filter(|i| match i.lifecycle {
            Lifecycle::Pending => true,
            Lifecycle::InService => i.in_service_at.is_some_and(|t| is_warming(t, warmup, now)),
            _ => false,
        })
        .count() as u32
}

#[cfg(test)]
mod tests;
