//! The metric store: CloudWatch's model at 1-second resolution, in bounded memory.
//!
//! A series is keyed by namespace, name and dimensions. Each second of a series holds
//! one datapoint: the count, sum, minimum and maximum of the values put in that second.
//! Statistics over any period are computed from those datapoints. Retention: three
//! hours at 1 s, then one-minute datapoints for 24 hours; older data is dropped.

pub mod catalogue;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Duration, Time};

/// How long 1-second datapoints are kept.
pub const FINE_RETENTION_S: u64 = 3 * 3600;
/// How long 1-minute datapoints are kept.
pub const COARSE_RETENTION_S: u64 = 24 * 3600;

/// Which series: namespace, metric name and dimensions (sorted by name).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeriesKey {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
}

impl SeriesKey {
    pub fn new(namespace: &str, name: &str, dimensions: &[(&str, &str)]) -> SeriesKey {
        SeriesKey {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            dimensions: dimensions
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if !self.dimensions.is_empty() {
            let dims: Vec<String> = self
                .dimensions
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            write!(f, "{{{}}}", dims.join(","))?;
        }
        Ok(())
    }
}

/// The aggregate of the values put in one interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Datapoint {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Datapoint {
    fn one(v: f64) -> Datapoint {
        Datapoint {
            count: 1,
            sum: v,
            min: v,
            max: v,
        }
    }

    fn merge(&mut self, o: &Datapoint) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    pub fn average(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }
}

/// CloudWatch's statistics; percentiles as `p50`, `p99`, `p99.9`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Statistic {
    SampleCount,
    Average,
    Sum,
    Minimum,
    Maximum,
    /// A percentile from 0 to 100, over the period's per-second averages.
    Percentile(f64),
}

impl std::str::FromStr for Statistic {
    type Err = String;
    fn from_str(s: &str) -> Result<Statistic, String> {
        Ok(match s {
            "SampleCount" => Statistic::SampleCount,
            "Average" => Statistic::Average,
            "Sum" => Statistic::Sum,
            "Minimum" => Statistic::Minimum,
            "Maximum" => Statistic::Maximum,
            p if p.starts_with('p') => {
                let v: f64 = p[1..]
                    .parse()
                    .map_err(|_| format!("`{s}` is not a percentile like p99"))?;
                if !(0.0..=100.0).contains(&v) {
                    return Err(format!("`{s}`: a percentile is from p0 to p100"));
                }
                Statistic::Percentile(v)
            }
            _ => {
                return Err(format!(
                    "`{s}` is not a statistic: SampleCount, Average, Sum, Minimum, Maximum or pNN"
                ));
            }
        })
    }
}

impl fmt::Display for Statistic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statistic::SampleCount => f.write_str("SampleCount"),
            Statistic::Average => f.write_str("Average"),
            Statistic::Sum => f.write_str("Sum"),
            Statistic::Minimum => f.write_str("Minimum"),
            Statistic::Maximum => f.write_str("Maximum"),
            Statistic::Percentile(p) => write!(f, "p{p}"),
        }
    }
}

impl Serialize for Statistic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Statistic {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Statistic, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Debug, Default)]
struct Series {
    /// (second, datapoint), oldest first.
    fine: VecDeque<(u64, Datapoint)>,
    /// (minute start second, datapoint), oldest first.
    coarse: VecDeque<(u64, Datapoint)>,
}

/// The size of a metric store (`MetricStore::footprint`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    pub series: usize,
    pub datapoints: usize,
    /// An estimate from the allocations' sizes, without the allocator's overhead.
    pub bytes: usize,
}

/// Every series, in memory.
#[derive(Clone, Debug, Default)]
pub struct MetricStore {
    series: BTreeMap<SeriesKey, Series>,
    /// Other values a dimension goes by, (dimension, alias) -> the value published:
    /// AWS callers name a load balancer or target group by its ARN's suffix
    /// (`targetgroup/NAME/ID`), bellows publishes under its name.
    aliases: BTreeMap<(String, String), String>,
}

impl MetricStore {
    /// The dimension values that read as others (see `aliases`), replacing any before.
    pub fn set_aliases(&mut self, aliases: BTreeMap<(String, String), String>) {
        self.aliases = aliases;
    }

    /// A series by its key, or by the key its aliased dimension values stand for.
    fn find(&self, key: &SeriesKey) -> Option<&Series> {
        if let Some(s) = self.series.get(key) {
            return Some(s);
        }
        if self.aliases.is_empty() {
            return None;
        }
        let mut real = key.clone();
        let mut changed = false;
        for (dim, value) in real.dimensions.iter_mut() {
            if let Some(to) = self.aliases.get(&(dim.clone(), value.clone())) {
                value.clone_from(to);
                changed = true;
            }
        }
        changed.then(|| self.series.get(&real)).flatten()
    }

    /// Records a value at `time`. Values for a second already rolled into minutes are
    /// dropped (they are over three hours old).
    pub fn put(&mut self, key: &SeriesKey, time: Time, value: f64) {
        if !value.is_finite() {
            return;
        }
        let sec = time.as_secs();
        let series = match self.series.get_mut(key) {
            Some(s) => s,
            None => self.series.entry(key.clone()).or_default(),
        };
        match series
            .fine
            .iter_mut()
            .rev()
            .take(8)
            .find(|(s, _)| *s == sec)
        {
            Some((_, d)) => d.merge(&Datapoint::one(value)),
            None => {
                let pos = series
                    .fine
                    .iter()
                    .rposition(|(s, _)| *s < sec)
                    .map_or(0, |p| p + 1);
                if series
                    .fine
                    .front()
                    .is_some_and(|(s, _)| sec + FINE_RETENTION_S < *s)
                {
                    return;
                }
                series.fine.insert(pos, (sec, Datapoint::one(value)));
            }
        }
        Self::roll(series, sec);
    }

    /// Moves 1-second datapoints older than the fine retention into minutes.
    fn roll(series: &mut Series, now_sec: u64) {
        while let Some(&(s, d)) = series.fine.front() {
            if s + FINE_RETENTION_S > now_sec {
                break;
            }
            series.fine.pop_front();
            let minute = s / 60 * 60;
            match series.coarse.back_mut() {
                Some((m, c)) if *m == minute => c.merge(&d),
                _ => series.coarse.push_back((minute, d)),
            }
        }
        while series
            .coarse
            .front()
            .is_some_and(|(m, _)| m + COARSE_RETENTION_S <= now_sec)
        {
            series.coarse.pop_front();
        }
    }

    /// Drops old data of every series (and series with none left); call now and then.
    pub fn expire(&mut self, now: Time) {
        let sec = now.as_secs();
        for s in self.series.values_mut() {
            Self::roll(s, sec);
        }
        self.series
            .retain(|_, s| !s.fine.is_empty() || !s.coarse.is_empty());
    }

    pub fn keys(&self) -> impl Iterator<Item = &SeriesKey> {
        self.series.keys()
    }

    /// The datapoints of `[from, to)`, per second where kept, else per minute, found by
    /// binary search (the simulator asks millions of times over hours of seconds).
    fn datapoints(&self, key: &SeriesKey, from: u64, to: u64) -> [Points<'_>; 4] {
        let Some(s) = self.find(key) else {
            return [&[]; 4];
        };
        let (c1, c2) = window(&s.coarse, from, to);
        let (f1, f2) = window(&s.fine, from, to);
        [c1, c2, f1, f2]
    }

    /// A statistic over `[start, start + period)`; None when there is no data.
    pub fn statistic(
        &self,
        key: &SeriesKey,
        stat: Statistic,
        start: Time,
        period: Duration,
    ) -> Option<f64> {
        let from = start.as_secs();
        let to = from + (period.as_millis() / 1000).max(1);
        let parts = self.datapoints(key, from, to);
        let mut points = parts.iter().flat_map(|p| p.iter().map(|(_, d)| *d));
        if let Statistic::Percentile(_) = stat {
            let all: Vec<Datapoint> = points.collect();
            return aggregate(&all, stat);
        }
        let mut all = points.next()?;
        for p in points {
            all.merge(&p);
        }
        aggregate(&[all], stat)
    }

    /// The statistic of each of `n` consecutive periods of `period`, the last ending at
    /// `end` (None for a period with no data), with one lookup of the series and one
    /// pass over its datapoints: what an alarm asks every period, and with 1-second
    /// periods every second. The same values as `statistic` of each period (periods
    /// that would start before the epoch start at it, as there), merged in the same
    /// order.
    pub fn statistics(
        &self,
        key: &SeriesKey,
        stat: Statistic,
        end: Time,
        period: Duration,
        n: usize,
        out: &mut Vec<Option<f64>>,
    ) {
        out.clear();
        let p = (period.as_millis() / 1000).max(1);
        let end = end.as_secs();
        let first = end.checked_sub(n as u64 * p);
        let series = self.find(key);
        let (Some(first), Some(series), false) =
            (first, series, matches!(stat, Statistic::Percentile(_)))
        else {
            // Percentiles need every point of a period, and periods clamped at the
            // epoch overlap: both rare, both period by period.
            out.extend((0..n as u64).map(|i| {
                let from = end.saturating_sub((n as u64 - i) * p);
                self.statistic(key, stat, Time::from_millis(from * 1000), period)
            }));
            return;
        };
        let mut acc: Vec<Option<Datapoint>> = vec![None; n];
        // Coarse minutes are all older than the seconds still kept, so this is each
        // period's points in time order, as `statistic` merges them.
        for part in [
            window(&series.coarse, first, end),
            window(&series.fine, first, end),
        ] {
            for (t, d) in part.0.iter().chain(part.1) {
                match &mut acc[((t - first) / p) as usize] {
                    Some(all) => all.merge(d),
                    slot => *slot = Some(*d),
                }
            }
        }
        out.extend(
            acc.into_iter()
                .map(|all| all.and_then(|all| aggregate(&[all], stat))),
        );
    }

    /// The statistic for each period of `period` from `from` to `to` (the period holding
    /// `to` included, so far), skipping periods with no data: (period start, value).
    pub fn query(
        &self,
        key: &SeriesKey,
        stat: Statistic,
        from: Time,
        to: Time,
        period: Duration,
    ) -> Vec<(Time, f64)> {
        let p = (period.as_millis() / 1000).max(1);
        let mut out = Vec::new();
        let mut t = from.as_secs() / p * p;
        while t <= to.as_secs() {
            if let Some(v) = self.statistic(key, stat, Time::from_millis(t * 1000), period) {
                out.push((Time::from_millis(t * 1000), v));
            }
            t += p;
        }
        out
    }

    /// Each second's sum over `[from, to)` where per-second data is still kept (the last
    /// three hours): (second, sum), oldest first; seconds without data are left out.
    pub fn seconds(
        &self,
        key: &SeriesKey,
        from: Time,
        to: Time,
    ) -> impl Iterator<Item = (u64, f64)> + '_ {
        let series = self.find(key);
        let (a, b) = series.map_or((&[][..], &[][..]), |s| {
            window(&s.fine, from.as_secs(), to.as_secs())
        });
        a.iter().chain(b).map(|(t, d)| (*t, d.sum))
    }

    /// Series matching a namespace, name and the given dimensions (a subset).
    pub fn matching<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        dims: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a SeriesKey> + 'a {
        self.series.keys().filter(move |k| {
            k.namespace == namespace
                && k.name == name
                && dims.iter().all(|(dk, dv)| k.dimensions.get(dk) == Some(dv))
        })
    }

    /// The newest 1-second datapoint of a series: (second, datapoint).
    pub fn latest(&self, key: &SeriesKey) -> Option<(Time, Datapoint)> {
        let s = self.find(key)?;
        s.fine
            .back()
            .map(|(sec, d)| (Time::from_millis(sec * 1000), *d))
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// What the store holds: its series, their datapoints, and the bytes those take
    /// (the deques' allocated capacity, which is what resident memory sees, plus the
    /// keys' strings). With 1-second retention of three hours the store grows for its
    /// first three hours by design; this is how a soak tells that growth from a leak.
    pub fn footprint(&self) -> Footprint {
        let point = size_of::<(u64, Datapoint)>();
        let mut f = Footprint {
            series: self.series.len(),
            ..Footprint::default()
        };
        for (key, s) in &self.series {
            f.datapoints += s.fine.len() + s.coarse.len();
            f.bytes += (s.fine.capacity() + s.coarse.capacity()) * point
                + size_of::<(SeriesKey, Series)>()
                + key.namespace.capacity()
                + key.name.capacity()
                + key
                    .dimensions
                    .iter()
                    .map(|(k, v)| k.capacity() + v.capacity() + 2 * size_of::<String>())
                    .sum::<usize>();
        }
        f
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// Datapoints with the second (or minute start) they belong to.
type Points<'a> = &'a [(u64, Datapoint)];

/// The datapoints of `[from, to)` in a time-ordered deque, as its two slices.
fn window(d: &VecDeque<(u64, Datapoint)>, from: u64, to: u64) -> (Points<'_>, Points<'_>) {
    let lo = d.partition_point(|(t, _)| *t < from);
    let hi = d.partition_point(|(t, _)| *t < to).max(lo);
    let (a, b) = d.as_slices();
    let cut = |x: usize, len: usize| x.min(len);
    let (a_lo, a_hi) = (cut(lo, a.len()), cut(hi, a.len()));
    let (b_lo, b_hi) = (lo.saturating_sub(a.len()), hi.saturating_sub(a.len()));
    (&a[a_lo..a_hi], &b[b_lo.min(b.len())..b_hi.min(b.len())])
}

/// A statistic over datapoints.
pub fn aggregate(points: &[Datapoint], stat: Statistic) -> Option<f64> {
    if points.is_empty() {
        return None;
    }
    let mut all = points[0];
    for p in &points[1..] {
        all.merge(p);
    }
    Some(match stat {
        Statistic::SampleCount => all.count as f64,
        Statistic::Average => all.average(),
        Statistic::Sum => all.sum,
        Statistic::Minimum => all.min,
        Statistic::Maximum => all.max,
        Statistic::Percentile(p) => {
            let mut v: Vec<f64> = points.iter().map(Datapoint::average).collect();
            v.sort_by(f64::total_cmp);
            let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
            v[rank.min(v.len()) - 1]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Time {
        Time::from_millis(s * 1000 + 250)
    }

    #[test]
    fn an_aliased_dimension_value_reads_the_series_published_under_its_name() {
        let mut m = MetricStore::default();
        let published = SeriesKey::new(
            "AWS/ApplicationELB",
            "RequestCountPerTarget",
            &[("TargetGroup", "web")],
        );
        m.put(&published, at(100), 7.0);
        let by_arn = SeriesKey::new(
            "AWS/ApplicationELB",
            "RequestCountPerTarget",
            &[("TargetGroup", "targetgroup/web/0123456789abcdef")],
        );
        let start = Time::from_millis(100_000);
        let p = Duration::from_secs(1);
        assert_eq!(m.statistic(&by_arn, Statistic::Sum, start, p), None);
        m.set_aliases(BTreeMap::from([(
            (
                "TargetGroup".to_owned(),
                "targetgroup/web/0123456789abcdef".to_owned(),
            ),
            "web".to_owned(),
        )]));
        assert_eq!(m.statistic(&by_arn, Statistic::Sum, start, p), Some(7.0));
        assert_eq!(m.latest(&by_arn).map(|(_, d)| d.sum), Some(7.0));
        // Other values are not touched.
        let other = SeriesKey::new(
            "AWS/ApplicationELB",
            "RequestCountPerTarget",
            &[("TargetGroup", "api")],
        );
        assert_eq!(m.statistic(&other, Statistic::Sum, start, p), None);
    }

    #[test]
    fn statistics_over_periods() {
        let mut m = MetricStore::default();
        let k = SeriesKey::new("AWS/EC2", "CPUUtilization", &[("InstanceId", "i-1")]);
        for (s, v) in [
            (100, 10.0),
            (100, 30.0),
            (101, 50.0),
            (102, 70.0),
            (104, 90.0),
        ] {
            m.put(&k, at(s), v);
        }
        let p5 = Duration::from_secs(5);
        let start = Time::from_millis(100_000);
        assert_eq!(
            m.statistic(&k, Statistic::SampleCount, start, p5),
            Some(5.0)
        );
        assert_eq!(m.statistic(&k, Statistic::Sum, start, p5), Some(250.0));
        assert_eq!(m.statistic(&k, Statistic::Average, start, p5), Some(50.0));
        assert_eq!(m.statistic(&k, Statistic::Minimum, start, p5), Some(10.0));
        assert_eq!(m.statistic(&k, Statistic::Maximum, start, p5), Some(90.0));
        // Each second's sum, gaps left out, the end excluded.
        let seconds: Vec<_> = m
            .seconds(&k, Time::from_millis(100_000), Time::from_millis(104_000))
            .collect();
        assert_eq!(seconds, [(100, 40.0), (101, 50.0), (102, 70.0)]);
        // Percentiles over the per-second averages 20, 50, 70, 90.
        assert_eq!(
            m.statistic(&k, Statistic::Percentile(50.0), start, p5),
            Some(50.0)
        );
        assert_eq!(
            m.statistic(&k, Statistic::Percentile(99.0), start, p5),
            Some(90.0)
        );
        assert_eq!(
            m.statistic(
                &k,
                Statistic::Average,
                Time::from_millis(103_000),
                Duration::from_secs(1)
            ),
            None
        );
        let q = m.query(
            &k,
            Statistic::Maximum,
            Time::from_millis(100_000),
            Time::from_millis(106_000),
            Duration::from_secs(2),
        );
        assert_eq!(
            q,
            vec![
                (Time::from_millis(100_000), 50.0),
                (Time::from_millis(102_000), 70.0),
                (Time::from_millis(104_000), 90.0)
            ]
        );
        assert_eq!(
            "p99.9".parse::<Statistic>(),
            Ok(Statistic::Percentile(99.9))
        );
        assert!("median".parse::<Statistic>().is_err());
    }

    #[test]
    fn statistics_of_consecutive_periods_are_those_of_each_period_bit_for_bit() {
        let mut m = MetricStore::default();
        let k = SeriesKey::new("N", "m", &[("G", "web")]);
        // Five hours with gaps and several values in some seconds: the oldest two
        // roll into minutes.
        let mut x = 7u64;
        for s in 0..5 * 3600u64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            if x >> 60 == 0 {
                continue;
            }
            for j in 0..(x >> 62) + 1 {
                m.put(&k, at(s), ((x >> 20) % 10_000) as f64 / 7.0 + j as f64);
            }
        }
        assert!(!m.series[&k].coarse.is_empty());
        let bits = |v: &[Option<f64>]| v.iter().map(|v| v.map(f64::to_bits)).collect::<Vec<_>>();
        let mut got = Vec::new();
        for stat in [
            Statistic::Average,
            Statistic::Sum,
            Statistic::SampleCount,
            Statistic::Minimum,
            Statistic::Maximum,
            Statistic::Percentile(90.0),
        ] {
            for period in [1, 5, 60, 300] {
                for n in [1, 3, 15] {
                    for end in [0, 1, 30, 600, 3600, 2 * 3600 + 17 * 60, 5 * 3600, 6 * 3600] {
                        let end = end / period * period;
                        let d = Duration::from_secs(period);
                        m.statistics(&k, stat, Time::from_millis(end * 1000), d, n, &mut got);
                        let want: Vec<Option<f64>> = (0..n as u64)
                            .map(|i| {
                                let from = end.saturating_sub((n as u64 - i) * period);
                                m.statistic(&k, stat, Time::from_millis(from * 1000), d)
                            })
                            .collect();
                        assert_eq!(bits(&got), bits(&want), "{stat} {period}s x{n} to {end}");
                    }
                }
            }
        }
        let other = SeriesKey::new("N", "other", &[]);
        m.statistics(
            &other,
            Statistic::Sum,
            at(100),
            Duration::from_secs(1),
            3,
            &mut got,
        );
        assert_eq!(got, [None, None, None]);
    }

    #[test]
    fn old_seconds_roll_into_minutes_and_memory_stays_bounded() {
        let mut m = MetricStore::default();
        let k = SeriesKey::new("N", "m", &[]);
        let day = 24 * 3600;
        for s in 0..(day + 3600) {
            m.put(&k, at(s), 1.0);
        }
        let series = &m.series[&k];
        assert_eq!(series.fine.len() as u64, FINE_RETENTION_S);
        assert!(
            series.coarse.len() as u64 <= COARSE_RETENTION_S / 60,
            "{}",
            series.coarse.len()
        );
        // A minute from the coarse part still answers, with all its 60 values.
        let minute = Time::from_millis((day + 3600 - 5 * 3600) * 1000);
        assert_eq!(
            m.statistic(&k, Statistic::SampleCount, minute, Duration::from_secs(60)),
            Some(60.0)
        );
        m.expire(Time::from_millis((day * 3) * 1000));
        assert!(m.is_empty());
    }

    #[test]
    fn the_footprint_counts_what_is_held_and_stops_growing_at_retention() {
        let mut m = MetricStore::default();
        assert_eq!(m.footprint(), Footprint::default());
        let a = SeriesKey::new("N", "a", &[("InstanceId", "i-1")]);
        let b = SeriesKey::new("N", "b", &[]);
        for s in 0..100 {
            m.put(&a, at(s), 1.0);
            m.put(&b, at(s), 1.0);
        }
        let f = m.footprint();
        assert_eq!((f.series, f.datapoints), (2, 200));
        assert!(f.bytes >= 200 * 40, "{f:?}");
        // Past the fine retention a series holds three hours of seconds and, growing
        // by one a minute, minutes: an hour then adds a sixtieth of what it did before.
        let mut sizes = Vec::new();
        for s in 100..=(FINE_RETENTION_S + 7200) {
            m.put(&b, at(s), 1.0);
            if s % 3600 == 0 {
                sizes.push(m.footprint().bytes);
            }
        }
        assert_eq!(sizes.len(), 5);
        let early = sizes[1] - sizes[0];
        let late = sizes[4] - sizes[3];
        assert!(late * 10 < early, "{sizes:?}");
    }
}
