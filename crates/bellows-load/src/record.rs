//! What the generator saw: counts by status and by failure, an HDR histogram of latency,
//! and one row per second for the live line, the CSV and the chart.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::http::Failure;

/// The outcome of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    Failed(Failure),
}

/// One second of the run, by completion time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Second {
    pub second: u64,
    /// Requests sent in this second (due, for an open loop).
    pub sent: u64,
    pub completed: u64,
    /// 1xx (a WebSocket upgrade's 101 Switching Protocols), 2xx and 3xx.
    pub ok: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub status_503: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// WebSocket clients connected at the end of the second (WebSocket mode).
    pub connected: u64,
}

/// Everything recorded so far. Shared behind a mutex: one short lock per request.
#[derive(Debug)]
pub struct Recorder {
    pub sent: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub failures: BTreeMap<Failure, u64>,
    /// Microseconds.
    pub latency: Histogram<u64>,
    pub seconds: Vec<Second>,
    current: Histogram<u64>,
    /// WebSocket clients connected now.
    pub connected: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

fn histogram() -> Histogram<u64> {
    // 1 us to 1 hour at 3 significant digits; values above are clamped.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            sent: 0,
            statuses: BTreeMap::new(),
            failures: BTreeMap::new(),
            latency: histogram(),
            seconds: Vec::new(),
            current: histogram(),
            connected: 0,
        }
    }

    /// Moves the per-second rows up to `at` (time since the start).
    fn roll(&mut self, at: Duration) -> &mut Second {
        let sec = at.as_secs();
        if (sec as usize) < self.seconds.len() {
            return self.seconds.last_mut().expect("at least one row");
        }
        if self.seconds.is_empty() {
            self.seconds.push(Second::default());
        }
        while (self.seconds.len() as u64) <= sec {
            self.close_current();
            let second = self.seconds.len() as u64;
            self.seconds.push(Second {
                second,
                ..Second::default()
            });
        }
        self.seconds.last_mut().expect("at least one row")
    }

    fn close_current(&mut self) {
        let connected = self.connected;
        let last = self.seconds.last_mut().expect("at least one row");
        if !self.current.is_empty() {
            last.p50_ms = self.current.value_at_quantile(0.5) as f64 / 1000.0;
            last.p99_ms = self.current.value_at_quantile(0.99) as f64 / 1000.0;
        }
        last.connected = connected;
        self.current.reset();
    }

    pub fn sent(&mut self, at: Duration) {
        self.sent += 1;
        self.roll(at).sent += 1;
    }

    /// A request sent and completed at `at` (a closed loop's), under one lock.
    pub fn sent_and_record(&mut self, at: Duration, latency: Duration, outcome: Outcome) {
        self.sent += 1;
        self.roll(at).sent += 1;
        self.record(at, latency, outcome);
    }

    /// One completed request: `latency` from its intended send time in an open loop
    /// (which corrects for coordinated omission), from its actual send otherwise.
    pub fn record(&mut self, at: Duration, latency: Duration, outcome: Outcome) {
        let row = self.roll(at);
        row.completed += 1;
        match outcome {
            Outcome::Status(s) => {
                // A WebSocket upgrade answers 101: a success, not a server error.
                match s {
                    100..=399 => row.ok += 1,
                    400..=499 => row.status_4xx += 1,
                    500..=599 => row.status_5xx += 1,
                    // Not a status HTTP defines: counted by code only.
                    _ => {}
                }
                if s == 503 {
                    row.status_503 += 1;
                }
                *self.statuses.entry(s).or_default() += 1;
            }
            Outcome::Failed(f) => {
                row.errors += 1;
                *self.failures.entry(f).or_default() += 1;
            }
        }
        let us = (latency.as_micros() as u64).clamp(1, 3_600_000_000);
        let _ = self.latency.record(us);
        let _ = self.current.record(us);
    }

    pub fn set_connected(&mut self, at: Duration, connected: u64) {
        self.connected = connected;
        self.roll(at);
    }

    /// Closes the rows of the seconds before `at`, for a reader while the run goes on.
    pub fn advance(&mut self, at: Duration) {
        self.roll(at);
    }

    /// Closes the rows up to `at`, so the last second gets its percentiles.
    pub fn finish(&mut self, at: Duration) {
        self.roll(at);
        self.close_current();
    }

    pub fn completed(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.failures.values().sum::<u64>()
    }

    pub fn errors(&self) -> u64 {
        self.failures.values().sum()
    }

    pub fn percentile_ms(&self, q: f64) -> f64 {
        if self.latency.is_empty() {
            return 0.0;
        }
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

/// The end-of-run summary, also the `--json` output.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub url: String,
    /// "open loop, fixed 500/s", "closed loop, 64 connections", ...
    pub mode: String,
    pub elapsed_s: f64,
    pub sent: u64,
    pub completed: u64,
    /// Completed requests per second of the run.
    pub rate: f64,
    /// The rate asked for (open loop), for comparison.
    pub requested_rate: Option<f64>,
    pub statuses: BTreeMap<u16, u64>,
    pub errors: BTreeMap<String, u64>,
    pub latency_ms: Latency,
    /// Latency by percentile, `[percentile, ms]`, from p0 out to as many nines as the
    /// count of requests supports (at most p99.999): HdrHistogram's percentile
    /// distribution, for a chart.
    pub latency_percentiles_ms: Vec<[f64; 2]>,
    /// Whether latency is measured from each request's intended send time.
    pub corrected_for_coordinated_omission: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub websocket: Option<WsSummary>,
}

/// What the WebSocket clients of `--ws` saw (`ws.rs`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct WsSummary {
    pub clients: usize,
    pub connected_at_end: u64,
    pub max_connected: u64,
    /// Sockets opened (a client that reconnects opens another).
    pub opened: u64,
    pub heartbeats: u64,
    /// Pages and sockets answered 503.
    pub turned_away: u64,
    /// Sockets the server closed or lost.
    pub dropped: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// How far out the percentile distribution goes: p99.999 at most.
const MOST_NINES: f64 = 5.0;

/// `h`'s latency by percentile, `[percentile, ms]`, at even steps of "nines"
/// (-log10(1 - p/100): 1 is p90, 2 is p99, 3 is p99.9), as far out as `h` holds a
/// request beyond (n requests support log10(n) nines).
pub fn percentiles(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    let most = (h.len() as f64).log10().min(MOST_NINES);
    let steps = (most * 20.0).floor() as u32;
    (0..=steps)
        .map(|k| {
            let q = 1.0 - 10f64.powf(-f64::from(k) / 20.0);
            [q * 100.0, h.value_at_quantile(q) as f64 / 1000.0]
        })
        .collect()
}

impl Latency {
    pub fn of(r: &Recorder) -> Latency {
        let h = &r.latency;
        let ms = |v: u64| v as f64 / 1000.0;
        if h.is_empty() {
            return Latency {
                min: 0.0,
                mean: 0.0,
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
            };
        }
        Latency {
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

impl Summary {
    /// The summary as lines of text.
    pub fn text(&self) -> Vec<String> {
        let mut out = vec![format!(
            "{}: {} requests in {:.2} s, {:.1} req/s ({}){}",
            self.url,
            self.completed,
            self.elapsed_s,
            self.rate,
            self.mode,
            self.requested_rate
                .map(|r| format!(", {r:.1} req/s asked"))
                .unwrap_or_default()
        )];
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        out.push(format!(
            "  status   {}",
            if statuses.is_empty() {
                "none".to_owned()
            } else {
                statuses.join("  ")
            }
        ));
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(e, n)| format!("{e}: {n}"))
            .collect();
        out.push(format!(
            "  errors   {}",
            if errors.is_empty() {
                "none".to_owned()
            } else {
                errors.join("  ")
            }
        ));
        let l = &self.latency_ms;
        out.push(format!(
            "  latency  min {:.3}  mean {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3} ms{}",
            l.min,
            l.mean,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            if self.corrected_for_coordinated_omission {
                " (from each request's intended send time: corrected for coordinated omission)"
            } else {
                ""
            }
        ));
        if let Some(ws) = &self.websocket {
            out.push(format!(
                "  websocket  {} clients: {} connected at the end, at most {}; {} sessions opened, {} heartbeats sent, {} pages turned away (503)",
                ws.clients, ws.connected_at_end, ws.max_connected, ws.opened, ws.heartbeats, ws.turned_away
            ));
        }
        out
    }
}

/// The per-second rows as CSV.
pub fn csv(rows: &[Second]) -> String {
    let mut out = String::from(
        "second,sent,completed,ok,status_4xx,status_5xx,status_503,errors,p50_ms,p99_ms,connected\n",
    );
    for r in rows {
        out += &format!(
            "{},{},{},{},{},{},{},{},{:.3},{:.3},{}\n",
            r.second,
            r.sent,
            r.completed,
            r.ok,
            r.status_4xx,
            r.status_5xx,
            r.status_503,
            r.errors,
            r.p50_ms,
            r.p99_ms,
            r.connected
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_percentile_distribution_goes_as_far_out_as_the_count_supports() {
        assert!(percentiles(&histogram()).is_empty());
        // 1 ms to 100 ms, evenly: the value at each percentile is known.
        let mut h = histogram();
        for us in (1..=100_000).step_by(100) {
            h.record(us).unwrap();
        }
        let d = percentiles(&h);
        // 1,000 requests: out to three nines (p99.9), a twentieth of a nine a step.
        assert_eq!(d.len(), 61);
        assert_eq!(d[0][0], 0.0);
        assert!((d[60][0] - 99.9).abs() < 1e-9, "{:?}", d[60]);
        let at = |p: f64| d.iter().find(|x| (x[0] - p).abs() < 1e-6).unwrap()[1];
        assert!((at(90.0) - 90.0).abs() < 0.2, "{}", at(90.0));
        assert!((at(99.0) - 99.0).abs() < 0.2, "{}", at(99.0));
        assert!(
            d.windows(2)
                .all(|w| w[0][0] < w[1][0] && w[0][1] <= w[1][1])
        );
        // Past p99.999 there is nothing a chart could show.
        for _ in 0..1_000_000 {
            h.record(5).unwrap();
        }
        let d = percentiles(&h);
        assert!((d.last().unwrap()[0] - 99.999).abs() < 1e-9);
    }

    #[test]
    fn counts_rows_and_percentiles() {
        let mut r = Recorder::new();
        let ms = Duration::from_millis;
        for i in 0..100 {
            r.sent(ms(i * 10));
            r.record(ms(i * 10 + 1), ms(i + 1), Outcome::Status(200));
        }
        r.record(ms(1500), ms(5), Outcome::Status(503));
        r.record(ms(1600), ms(5), Outcome::Failed(Failure::Reset));
        r.finish(ms(2100));
        assert_eq!(r.completed(), 102);
        assert_eq!(r.errors(), 1);
        assert_eq!(r.statuses[&503], 1);
        assert_eq!(r.seconds.len(), 3);
        assert_eq!(r.seconds[0].completed, 100);
        assert_eq!(r.seconds[0].sent, 100);
        assert!(
            (r.seconds[0].p50_ms - 50.0).abs() < 0.1,
            "{:?}",
            r.seconds[0]
        );
        assert!((r.seconds[0].p99_ms - 99.0).abs() < 0.1);
        assert_eq!((r.seconds[1].status_503, r.seconds[1].status_5xx), (1, 1));
        assert_eq!(r.seconds[1].errors, 1);
        assert_eq!(r.seconds[2].completed, 0);
        let csv = csv(&r.seconds);
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.lines().nth(2).unwrap().starts_with("1,0,2,0,0,1,1,1,"));
    }

    #[test]
    fn a_websocket_upgrade_is_a_success_not_a_5xx() {
        let mut r = Recorder::new();
        let ms = Duration::from_millis;
        for _ in 0..5 {
            r.record(ms(10), ms(1), Outcome::Status(101));
        }
        r.record(ms(20), ms(1), Outcome::Status(503));
        r.finish(ms(900));
        let s = &r.seconds[0];
        assert_eq!((s.ok, s.status_5xx, s.status_503), (5, 1, 1), "{s:?}");
        assert_eq!(r.statuses[&101], 5);
        assert!(
            csv(&r.seconds)
                .lines()
                .nth(1)
                .unwrap()
                .starts_with("0,0,6,5,0,1,1,0,")
        );
    }
}
