//! Policies that decide on a clock of their own instead of on alarms: Kubernetes'
//! Horizontal Pod Autoscaler, Knative's Pod Autoscaler and bellows' predictive policy.
//! They read the same metric store as alarms do and propose a desired capacity; the
//! scaler merges their proposals with the alarm-driven ones (the largest wins).

use std::collections::VecDeque;

use super::{GroupView, tracked_series};
use crate::group::Lifecycle;
use crate::metrics::{MetricStore, SeriesKey, Statistic};
use crate::policy::{HpaSpec, KpaSpec, PolicyKind, PolicySpec, PredictiveSpec, TrackedMetric};
use crate::{Duration, Time};

const DAY_MIN: u64 = 1440;
/// The minutes compared with previous days to estimate the trend.
const TREND_MIN: u64 = 30;

/// What a periodic policy remembers between ticks.
#[derive(Clone, Debug, Default)]
pub(super) struct State {
    next_tick: u64,
    /// (second, recommendation), oldest first.
    recs: VecDeque<(u64, u32)>,
    /// KPA: panic mode lasts until this second.
    panic_until: u64,
    /// The series the policy reads, built once.
    key: Option<(SeriesKey, Statistic)>,
    /// Predictive: each minute's per-second rate, from `first_minute` on.
    minutes: VecDeque<Rate>,
    first_minute: u64,
    last_minute: Option<u64>,
}

fn secs(d: Duration) -> u64 {
    (d.as_millis() / 1000).max(1)
}

fn at(sec: u64) -> Time {
    Time::from_millis(sec * 1000)
}

fn request_count(target_group: &str) -> SeriesKey {
    crate::metrics::catalogue::REQUEST_COUNT.key(&[("TargetGroup", target_group)])
}

/// The mean and variance of a per-second request rate.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Rate {
    mean: f64,
    var: f64,
}

impl Rate {
    /// The per-second rate of `[from, from + n)`, seconds without data counted as no
    /// requests; None when none of them has data.
    fn over(store: &MetricStore, key: &SeriesKey, from: u64, n: u64) -> Option<Rate> {
        let (mut sum, mut sq, mut seen) = (0.0, 0.0, false);
        for (_, v) in store.seconds(key, at(from), at(from + n)) {
            sum += v;
            sq += v * v;
            seen = true;
        }
        let mean = sum / n as f64;
        seen.then(|| Rate {
            mean,
            var: (sq / n as f64 - mean * mean).max(0.0),
        })
    }

    /// The instances this rate needs: its mean at `target` each, and its high point
    /// `burst` standard deviations above the mean at `burst_target` each.
    fn instances(self, p: &PredictiveSpec) -> u32 {
        let high = self.mean + p.burst * self.var.sqrt();
        ceil_div(self.mean, p.target).max(ceil_div(high, p.burst_target))
    }
}

/// The mean per-second rate of `[sec - window, sec)`.
fn rate(store: &MetricStore, key: &SeriesKey, sec: u64, window: u64) -> Option<f64> {
    let from = sec.checked_sub(window)?;
    store
        .statistic(key, Statistic::Sum, at(from), Duration::from_secs(window))
        .map(|s| s / window as f64)
}

fn ceil_div(v: f64, per: f64) -> u32 {
    if per <= 0.0 || !v.is_finite() {
        return 0;
    }
    (v / per - 1e-9).ceil().clamp(0.0, f64::from(u32::MAX)) as u32
}

/// Runs one periodic policy if it is due; the capacity it asks for, if any.
pub(super) fn propose(
    spec: &PolicySpec,
    st: &mut State,
    store: &MetricStore,
    groups: &impl GroupView,
    now: Time,
) -> Option<u32> {
    let sec = now.as_secs();
    if let PolicyKind::Predictive(p) = &spec.kind {
        record_minute(p, st, store, sec);
    }
    let tick = match &spec.kind {
        PolicyKind::Hpa(h) => secs(h.sync_period),
        PolicyKind::Kpa(k) => secs(k.tick),
        PolicyKind::Predictive(p) => secs(p.tick),
        _ => return None,
    };
    if sec < st.next_tick {
        return None;
    }
    st.next_tick = (sec / tick + 1) * tick;
    let g = groups.group(&spec.group)?;
    let desired = g.capacity().desired;
    let ready = g.count(Lifecycle::InService) as u32;
    let pending = g.count(Lifecycle::Pending) as u32;
    match &spec.kind {
        PolicyKind::Hpa(h) => hpa(h, st, store, &spec.group, sec, desired, ready, pending),
        PolicyKind::Kpa(k) => kpa(k, st, store, sec, desired, ready),
        PolicyKind::Predictive(p) => predictive(p, st, store, sec, desired),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn hpa(
    h: &HpaSpec,
    st: &mut State,
    store: &MetricStore,
    group: &str,
    sec: u64,
    desired: u32,
    ready: u32,
    pending: u32,
) -> Option<u32> {
    let (key, stat) = st.key.get_or_insert_with(|| {
        let (key, stat) = tracked_series(&h.metric, group);
        // A per-second series: the HPA averages it over its sync period.
        let stat = match h.metric {
            TrackedMetric::AlbRequestCountPerTarget { .. } => Statistic::Average,
            _ => stat,
        };
        (key, stat)
    });
    let window = secs(h.sync_period);
    let value = store.statistic(
        key,
        *stat,
        at(sec.checked_sub(window)?),
        Duration::from_secs(window),
    )?;
    let ratio = value / h.target;
    let rec = if ready == 0 || (ratio - 1.0).abs() <= h.tolerance {
        desired
    } else if ratio > 1.0 {
        // Not-ready instances count as using nothing.
        ceil_div(f64::from(ready) * value, h.target)
    } else {
        // Not-ready instances count as using the target.
        ceil_div(f64::from(ready) * value, h.target) + pending
    };
    let span = secs(h.scale_down_window).max(secs(h.scale_up_window));
    st.recs.push_back((sec, rec));
    while st.recs.front().is_some_and(|(t, _)| t + span < sec) {
        st.recs.pop_front();
    }
    let within = |w: Duration| {
        let w = w.as_millis() / 1000;
        st.recs
            .iter()
            .filter(move |(t, _)| t + w >= sec)
            .map(|r| r.1)
    };
    let up = within(h.scale_up_window).min().unwrap_or(rec);
    let down = within(h.scale_down_window).max().unwrap_or(rec);
    let mut out = desired;
    if out < up {
        out = up;
    }
    if out > down {
        out = down;
    }
    // At most 100% or 4 instances more per period, whichever is more.
    Some(out.min(desired.saturating_mul(2).max(desired + 4)))
}

fn kpa(
    k: &KpaSpec,
    st: &mut State,
    store: &MetricStore,
    sec: u64,
    desired: u32,
    ready: u32,
) -> Option<u32> {
    let (key, _) = st
        .key
        .get_or_insert_with(|| (request_count(&k.target_group), Statistic::Sum));
    let per = k.target * k.utilization;
    let stable = rate(store, key, sec, secs(k.stable_window))?;
    let panic = rate(store, key, sec, secs(k.panic_window)).unwrap_or(stable);
    let want_stable = ceil_div(stable, per);
    let want_panic = ceil_div(panic, per);
    if f64::from(want_panic) >= k.panic_threshold * f64::from(ready.max(1)) {
        st.panic_until = sec + secs(k.stable_window);
    }
    if sec < st.panic_until {
        return Some(want_panic.max(desired));
    }
    let floor = (f64::from(ready) / k.max_scale_down_rate).ceil() as u32;
    Some(want_stable.max(floor))
}

/// Adds each finished minute's per-second rate to the policy's own history.
fn record_minute(p: &PredictiveSpec, st: &mut State, store: &MetricStore, sec: u64) {
    let minute = sec / 60;
    if st.last_minute == Some(minute) || minute == 0 {
        return;
    }
    st.last_minute = Some(minute);
    let key = request_count(&p.target_group);
    let done = minute - 1;
    let rate = Rate::over(store, &key, done * 60, 60).unwrap_or_default();
    if st.minutes.is_empty() {
        st.first_minute = done;
    }
    let next = st.first_minute + st.minutes.len() as u64;
    if done < next {
        return;
    }
    for _ in next..done {
        st.minutes.push_back(Rate::default());
    }
    st.minutes.push_back(rate);
    let keep = (u64::from(p.history_days.max(1)) + 1) * DAY_MIN;
    while st.minutes.len() as u64 > keep {
        st.minutes.pop_front();
        st.first_minute += 1;
    }
}

impl State {
    fn minute(&self, m: u64) -> Option<Rate> {
        let i = m.checked_sub(self.first_minute)?;
        self.minutes.get(usize::try_from(i).ok()?).copied()
    }

    /// Minute `m`'s rate on each previous day on record (at most `days`): the mean of
    /// their means and of their variances.
    fn seasonal(&self, m: u64, days: u32) -> Option<Rate> {
        let (mut sum, mut n) = (Rate::default(), 0);
        for k in 1..=u64::from(days) {
            let Some(v) = m.checked_sub(k * DAY_MIN).and_then(|x| self.minute(x)) else {
                break;
            };
            sum.mean += v.mean;
            sum.var += v.var;
            n += 1;
        }
        (n > 0).then(|| Rate {
            mean: sum.mean / f64::from(n),
            var: sum.var / f64::from(n),
        })
    }

    /// How the last 30 minutes compare with the same minutes on previous days (the
    /// trend), clamped to 0.5-2x; 1 without history.
    fn level(&self, now: u64, days: u32) -> f64 {
        let (mut recent, mut before) = (0.0, 0.0);
        for x in now.saturating_sub(TREND_MIN)..now {
            recent += self.minute(x).map_or(0.0, |r| r.mean);
            before += self.seasonal(x, days).map_or(0.0, |r| r.mean);
        }
        if before > 0.0 {
            (recent / before).clamp(0.5, 2.0)
        } else {
            1.0
        }
    }
}

fn predictive(
    p: &PredictiveSpec,
    st: &mut State,
    store: &MetricStore,
    sec: u64,
    desired: u32,
) -> Option<u32> {
    let key = request_count(&p.target_group);
    let window = secs(p.reactive_window);
    let reactive = sec
        .checked_sub(window)
        .and_then(|from| Rate::over(store, &key, from, window))
        .map(|r| r.instances(p));
    let minute = sec / 60;
    let lead = p.lead.as_millis().div_ceil(60_000);
    // The most the forecast needs over the lead; the trend scales the whole
    // distribution, its spread as much as its mean.
    let level = st.level(minute, p.history_days);
    let forecast = (minute..=minute + lead)
        .filter_map(|m| st.seasonal(m, p.history_days))
        .map(|r| {
            Rate {
                mean: r.mean * level,
                var: r.var * level * level,
            }
            .instances(p)
        })
        .max();
    if reactive.is_none() && forecast.is_none() {
        return None;
    }
    let rec = reactive.unwrap_or(0).max(forecast.unwrap_or(0));
    let window = secs(p.scale_in_window);
    st.recs.push_back((sec, rec));
    while st.recs.front().is_some_and(|(t, _)| t + window < sec) {
        st.recs.pop_front();
    }
    if rec >= desired {
        Some(rec)
    } else {
        st.recs.iter().map(|r| r.1).max()
    }
}
