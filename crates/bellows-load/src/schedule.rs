//! When each request of an open loop is due: a fixed rate, a ramp, steps or a trace.
//!
//! A [`Plan`] is a list of segments whose rate changes linearly from one end to the
//! other (a fixed rate and each step are flat; a trace is one flat segment per trace
//! second). The k-th request is due at the moment the plan's cumulative count reaches k,
//! so a fractional rate (a trace scaled by 0.3) still sends the right number in total.
//! Pure: no clock, no I/O; the runner turns these offsets into instants.

use std::time::Duration;

use crate::Error;

/// One stretch of the plan: `secs` long, the rate going linearly from `from` to `to`
/// requests per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub secs: f64,
    pub from: f64,
    pub to: f64,
}

impl Segment {
    fn count(&self) -> f64 {
        (self.from + self.to) * self.secs / 2.0
    }

    /// The offset within the segment at which `m` requests have become due.
    fn time_of(&self, m: f64) -> f64 {
        // N(t) = a t + c t^2 with c = (b - a) / 2D; t = 2m / (a + sqrt(a^2 + 4cm)) is the
        // root that stays stable when c is tiny and when a is zero.
        let a = self.from;
        let c = (self.to - self.from) / (2.0 * self.secs);
        let disc = (a * a + 4.0 * c * m).max(0.0);
        2.0 * m / (a + disc.sqrt())
    }
}

/// The rate over time of an open loop.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    segments: Vec<Segment>,
}

impl Plan {
    pub fn fixed(rate: f64, secs: f64) -> Plan {
        Plan {
            segments: vec![Segment {
                secs,
                from: rate,
                to: rate,
            }],
        }
    }

    pub fn ramp(from: f64, to: f64, secs: f64) -> Plan {
        Plan {
            segments: vec![Segment { secs, from, to }],
        }
    }

    /// Flat steps of (rate, seconds).
    pub fn steps(steps: &[(f64, f64)]) -> Plan {
        Plan {
            segments: steps
                .iter()
                .map(|&(rate, secs)| Segment {
                    secs,
                    from: rate,
                    to: rate,
                })
                .collect(),
        }
    }

    /// A trace of counts per second, each multiplied by `scale` and played `speed`
    /// times faster (a trace second lasts 1/speed real seconds).
    pub fn trace(counts: &[f64], scale: f64, speed: f64) -> Plan {
        Plan {
            segments: counts
                .iter()
                .map(|&c| Segment {
                    secs: 1.0 / speed,
                    from: c * scale * speed,
                    to: c * scale * speed,
                })
                .collect(),
        }
    }

    /// The plan cut at `secs` seconds (a longer plan is shortened, never lengthened).
    pub fn truncate(mut self, secs: f64) -> Plan {
        let mut at = 0.0;
        let mut keep = Vec::new();
        for s in self.segments {
            if at >= secs {
                break;
            }
            if at + s.secs > secs {
                let part = secs - at;
                let to = s.from + (s.to - s.from) * part / s.secs;
                keep.push(Segment {
                    secs: part,
                    from: s.from,
                    to,
                });
            } else {
                keep.push(s);
            }
            at += s.secs;
        }
        self.segments = keep;
        self
    }

    pub fn duration(&self) -> f64 {
        self.segments.iter().map(|s| s.secs).sum()
    }

    /// The number of requests the plan sends in all.
    pub fn total(&self) -> f64 {
        self.segments.iter().map(Segment::count).sum()
    }

    /// The requested rate at `t` seconds from the start.
    pub fn rate_at(&self, t: f64) -> f64 {
        let mut at = 0.0;
        for s in &self.segments {
            if t < at + s.secs {
                return s.from + (s.to - s.from) * (t - at) / s.secs;
            }
            at += s.secs;
        }
        0.0
    }

    /// Each request's due time, as an offset from the start, in order.
    pub fn send_times(&self) -> SendTimes<'_> {
        SendTimes {
            plan: self,
            seg: 0,
            seg_start: 0.0,
            seg_count: 0.0,
            k: 0,
        }
    }
}

/// The iterator of [`Plan::send_times`].
#[derive(Debug)]
pub struct SendTimes<'p> {
    plan: &'p Plan,
    seg: usize,
    seg_start: f64,
    /// Requests due before the current segment.
    seg_count: f64,
    k: u64,
}

impl Iterator for SendTimes<'_> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        // A tolerance keeps rounding from dropping the last request of an exact plan
        // (500/s for 4 s is 2000 requests, not 1999).
        const EPS: f64 = 1e-9;
        loop {
            let s = self.plan.segments.get(self.seg)?;
            let m = self.k as f64 - self.seg_count;
            if s.secs > 0.0 && m < s.count() - EPS && (s.from > 0.0 || s.to > 0.0) {
                let t = self.seg_start + s.time_of(m);
                self.k += 1;
                return Some(Duration::from_secs_f64(t.max(0.0)));
            }
            self.seg_start += s.secs;
            self.seg_count += s.count();
            self.seg += 1;
        }
    }
}

/// A duration like `500ms`, `30s`, `2m`, `1h`, or bare seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<f64, Error> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v * mult),
        _ => Err(Error::Usage(format!(
            "`{s}` is not a duration (like 500ms, 30s, 2m, 1h)"
        ))),
    }
}

fn parse_rate(s: &str) -> Result<f64, Error> {
    match s.trim().trim_end_matches("/s").parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(Error::Usage(format!(
            "`{s}` is not a rate in requests per second"
        ))),
    }
}

/// `FROM:TO:DURATION`, like `0:2000:60s`.
pub fn parse_ramp(s: &str) -> Result<Plan, Error> {
    let parts: Vec<&str> = s.split(':').collect();
    let [from, to, secs] = parts[..] else {
        return Err(Error::Usage(format!(
            "--ramp `{s}`: expected FROM:TO:DURATION, like 0:2000:60s"
        )));
    };
    let secs = parse_duration(secs)?;
    if secs <= 0.0 {
        return Err(Error::Usage(format!(
            "--ramp `{s}`: the duration must be > 0"
        )));
    }
    Ok(Plan::ramp(parse_rate(from)?, parse_rate(to)?, secs))
}

/// `RATE:DURATION,RATE:DURATION,...`, like `100:10s,500:20s,100:10s`.
pub fn parse_steps(s: &str) -> Result<Plan, Error> {
    let mut steps = Vec::new();
    for step in s.split(',') {
        let Some((rate, secs)) = step.split_once(':') else {
            return Err(Error::Usage(format!(
                "--steps `{s}`: expected RATE:DURATION,..., like 100:10s,500:20s"
            )));
        };
        steps.push((parse_rate(rate)?, parse_duration(secs)?));
    }
    Ok(Plan::steps(&steps))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(p: &Plan) -> Vec<f64> {
        p.send_times().map(|d| d.as_secs_f64()).collect()
    }

    #[test]
    fn a_fixed_rate_sends_evenly_and_exactly() {
        let t = secs(&Plan::fixed(500.0, 4.0));
        assert_eq!(t.len(), 2000);
        assert_eq!(t[0], 0.0);
        assert!((t[1] - 0.002).abs() < 1e-9);
        assert!((t[1999] - 3.998).abs() < 1e-9);
    }

    #[test]
    fn a_ramp_sends_its_area_and_speeds_up() {
        let p = parse_ramp("0:2000:60s").unwrap();
        assert_eq!(p.total(), 60_000.0);
        let t = secs(&p);
        assert_eq!(t.len(), 60_000);
        // Half the requests are due by t where 2000 t^2 / 120 = 30000: t = 42.43 s.
        assert!((t[30_000] - 42.426).abs() < 0.01, "{}", t[30_000]);
        let first_gap = t[2] - t[1];
        let last_gap = t[59_999] - t[59_998];
        assert!(first_gap > 10.0 * last_gap);
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
        assert!(*t.last().unwrap() < 60.0);
    }

    #[test]
    fn steps_follow_each_other() {
        let p = parse_steps("10:1s,0:2s,20/s:500ms").unwrap();
        assert_eq!(p.duration(), 3.5);
        let t = secs(&p);
        assert_eq!(t.len(), 20);
        assert!(t[..10].iter().all(|&x| x < 1.0));
        assert!(t[10..].iter().all(|&x| (3.0..3.5).contains(&x)));
        assert_eq!(p.rate_at(1.5), 0.0);
        assert_eq!(p.rate_at(3.2), 20.0);
    }

    #[test]
    fn a_trace_is_scaled_and_sped_up() {
        let counts = [4.0, 0.0, 2.0];
        let p = Plan::trace(&counts, 0.5, 2.0);
        assert_eq!(p.duration(), 1.5);
        let t = secs(&p);
        // 2 requests in the first half second, none in the next, 1 in the last.
        assert_eq!(t.len(), 3);
        assert!(
            t[0] < 0.5 && t[1] < 0.5 && (1.0..1.5).contains(&t[2]),
            "{t:?}"
        );
    }

    #[test]
    fn fractional_rates_accumulate() {
        let p = Plan::trace(&[0.3; 10], 1.0, 1.0);
        assert_eq!(p.send_times().count(), 3);
    }

    #[test]
    fn truncation_cuts_a_ramp_part_way() {
        let p = Plan::ramp(0.0, 100.0, 10.0).truncate(5.0);
        assert_eq!(p.duration(), 5.0);
        assert_eq!(p.total(), 125.0);
        let p = Plan::fixed(10.0, 3.0).truncate(30.0);
        assert_eq!(p.duration(), 3.0);
    }

    #[test]
    fn bad_specs_are_errors() {
        for bad in ["0:2000", "a:1:1s", "0:10:0s", "0:10:-1s"] {
            assert!(parse_ramp(bad).is_err(), "{bad}");
        }
        assert!(parse_steps("10").is_err());
        assert!(parse_steps("10:x").is_err());
        assert_eq!(parse_duration("1.5").unwrap(), 1.5);
        assert_eq!(parse_duration("250ms").unwrap(), 0.25);
        assert_eq!(parse_duration("2m").unwrap(), 120.0);
        assert!(parse_duration("soon").is_err());
    }
}
