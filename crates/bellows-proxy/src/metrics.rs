//! The load balancer's metrics, counted lock-free on the hot path: plain atomics, one
//! set per listener and per target group, with the names ALB publishes.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bellows_core::metrics::catalogue;

/// Upper bounds (in microseconds) of the response time histogram's buckets: roughly
/// four per doubling from 100 µs past 60 s, enough for p50/p99 within a few percent.
pub const BUCKETS_US: [u64; 80] = {
    let mut b = [0u64; 80];
    let mut i = 0;
    let mut v: u64 = 100;
    while i < 80 {
        b[i] = v;
        // ×1.19 in integers, at least +1.
        v = v + v * 19 / 100 + 1;
        i += 1;
    }
    b
};

/// A latency histogram with atomic buckets.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; 81],
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record(&self, us: u64) {
        let i = BUCKETS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// Cumulative counts per bucket (the last is +Inf) and the sum, in microseconds.
    pub fn snapshot(&self) -> (Vec<u64>, u64) {
        (
            self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            self.sum_us.load(Relaxed),
        )
    }
}

/// Estimates a quantile (0..1) in microseconds from bucket counts (not cumulative).
pub fn quantile(counts: &[u64], q: f64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return Some(
                BUCKETS_US
                    .get(i)
                    .copied()
                    .unwrap_or(BUCKETS_US[BUCKETS_US.len() - 1] * 2),
            );
        }
    }
    None
}

macro_rules! counters {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Default)]
        pub struct $name { $($(#[$fm])* pub $field: AtomicU64,)* }
        impl $name {
            /// (field name, value) of every counter.
            pub fn values(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($field), self.$field.load(Relaxed)),)*]
            }
        }
    };
}

counters!(
    /// Per listener (ALB's per-load-balancer metrics).
    ListenerCounters {
        /// RequestCount: requests answered, by a target or by the load balancer.
        request_count,
        /// ActiveConnectionCount (a gauge here: connections open now).
        active_connections,
        /// NewConnectionCount.
        new_connections,
        /// RejectedConnectionCount: connections refused by the ingress allow-list.
        rejected_connections,
        /// ProcessedBytes, both directions.
        processed_bytes,
        elb_3xx, elb_4xx, elb_5xx,
        elb_500, elb_502, elb_503, elb_504,
        target_2xx, target_3xx, target_4xx, target_5xx,
    }
);

counters!(
    /// Per target group.
    TargetGroupCounters {
        /// RequestCount sent to the group's targets.
        request_count,
        target_2xx, target_3xx, target_4xx, target_5xx,
        /// TargetConnectionErrorCount.
        target_connection_errors,
        elb_502, elb_503, elb_504,
        /// Requests retried on another target after a connection failure.
        retries,
        /// Requests that waited in the queue for a free target.
        queued,
        /// Requests that gave up waiting in the queue (503).
        queue_timeouts,
    }
);

/// ALB's metric names for the counters (from the core's catalogue), used for
/// `/metrics` help and the metric store.
pub fn alb_name(field: &str) -> &'static str {
    alb_metric(field).map_or("Unknown", |m| m.name)
}

/// The catalogue's metric that a counter is published as.
pub fn alb_metric(field: &str) -> Option<catalogue::Metric> {
    Some(match field {
        "request_count" => catalogue::REQUEST_COUNT,
        "active_connections" => catalogue::ACTIVE_CONNECTION_COUNT,
        "new_connections" => catalogue::NEW_CONNECTION_COUNT,
        "rejected_connections" => catalogue::REJECTED_CONNECTION_COUNT,
        "processed_bytes" => catalogue::PROCESSED_BYTES,
        "elb_3xx" => catalogue::ELB_3XX,
        "elb_4xx" => catalogue::ELB_4XX,
        "elb_5xx" => catalogue::ELB_5XX,
        "elb_500" => catalogue::ELB_500,
        "elb_502" => catalogue::ELB_502,
        "elb_503" => catalogue::ELB_503,
        "elb_504" => catalogue::ELB_504,
        "target_2xx" => catalogue::TARGET_2XX,
        "target_3xx" => catalogue::TARGET_3XX,
        "target_4xx" => catalogue::TARGET_4XX,
        "target_5xx" => catalogue::TARGET_5XX,
        "target_connection_errors" => catalogue::TARGET_CONNECTION_ERROR_COUNT,
        "retries" => catalogue::RETRY_COUNT,
        "queued" => catalogue::QUEUED_REQUEST_COUNT,
        "queue_timeouts" => catalogue::QUEUE_TIMEOUT_COUNT,
        _ => return None,
    })
}

/// Adds one Prometheus sample line.
pub fn sample(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    value: impl std::fmt::Display,
) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = write!(out, "{k}=\"{v}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_and_quantiles_land_in_them() {
        assert!(BUCKETS_US.windows(2).all(|w| w[0] < w[1]));
        assert!(
            BUCKETS_US[79] > 60_000_000,
            "last bucket {}",
            BUCKETS_US[79]
        );
        let h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(us * 1000);
        }
        let (counts, sum) = h.snapshot();
        assert_eq!(sum, 500_500_000);
        let p50 = quantile(&counts, 0.5).unwrap();
        let p99 = quantile(&counts, 0.99).unwrap();
        assert!((500_000..=620_000).contains(&p50), "p50 {p50}");
        assert!((990_000..=1_200_000).contains(&p99), "p99 {p99}");
    }
}
