//! The model of one instance under load, a second at a time.
//!
//! An instance serves up to `capacity` requests a second (100% CPU). Requests it cannot
//! serve within the second wait in its queue (a fluid backlog carried to the next
//! second); past `max_in_flight` waiting, they are turned away with a 503. Latency is
//! that of a processor-sharing M/M/1 server at the instance's sustained utilisation
//! `rho` (its arrival rate smoothed over `SMOOTHING_S`, the time such a queue takes to
//! settle): with mean service time `S`, a request's time in the system is exponential
//! with mean `S / (1 - rho)`, so its p99 is `ln(100) * S / (1 - rho)`. A burst above
//! capacity within a second shows as the backlog, which adds the time to work it off.

/// ln(100): the 99th percentile of an exponential distribution, in units of its mean.
pub const P99_OF_MEAN: f64 = 4.605_170_185_988_091;
/// How long the arrival rate that sets the queueing delay is smoothed over, in seconds.
pub const SMOOTHING_S: f64 = 5.0;
/// Utilisation is capped here: the M/M/1 formula is a steady state that one overloaded
/// second does not reach, and the backlog already carries what the second could not serve.
const RHO_CAP: f64 = 0.95;

/// The service as the simulator models it (from the stack's `[simulation]` section).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Model {
    /// Requests per second one instance serves at 100% CPU.
    pub capacity: f64,
    /// Mean service time of a request on an idle instance, in seconds.
    pub service_s: f64,
    /// The p99 latency target, in seconds.
    pub slo_s: f64,
    /// Requests one instance may hold waiting before it turns new ones away.
    pub max_in_flight: Option<f64>,
}

/// What one instance did in one second.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Served {
    pub served: f64,
    pub rejected: f64,
    /// Mean time in the system of this second's requests, in seconds.
    pub mean_s: f64,
    /// Their estimated 99th percentile, in seconds.
    pub p99_s: f64,
    /// CPU use in percent.
    pub cpu: f64,
    /// Requests in flight on average (Little's law), for concurrency metrics.
    pub in_flight: f64,
}

impl Model {
    /// One second of an instance with `backlog` waiting and a smoothed arrival `rate`
    /// (negative: none yet) that receives `arrivals`; updates both.
    pub fn second(&self, backlog: &mut f64, rate: &mut f64, arrivals: f64) -> Served {
        let work = *backlog + arrivals;
        let served = work.min(self.capacity);
        let mut left = work - served;
        let mut rejected = 0.0;
        if let Some(limit) = self.max_in_flight
            && left > limit
        {
            rejected = left - limit;
            left = limit;
        }
        *backlog = left;
        *rate = if *rate < 0.0 {
            arrivals
        } else {
            *rate + (arrivals - *rate) * (1.0 - (-1.0 / SMOOTHING_S).exp())
        };
        let rho = (*rate / self.capacity).min(RHO_CAP);
        let wait = left / self.capacity;
        let mean_s = self.service_s / (1.0 - rho) + wait;
        let p99_s = P99_OF_MEAN * self.service_s / (1.0 - rho) + wait;
        Served {
            served,
            rejected,
            mean_s,
            p99_s,
            cpu: served / self.capacity * 100.0,
            in_flight: served * mean_s,
        }
    }

    /// The highest utilisation at which the p99 stays within the SLO (at least 1%).
    pub fn max_utilisation(&self) -> f64 {
        (1.0 - P99_OF_MEAN * self.service_s / self.slo_s).clamp(0.01, 1.0)
    }

    /// SPEC's demand: the fewest instances that serve `rate` requests a second within
    /// the SLO.
    pub fn demand(&self, rate: f64) -> u32 {
        if rate <= 0.0 {
            return 0;
        }
        (rate / (self.capacity * self.max_utilisation()) - 1e-9)
            .ceil()
            .clamp(0.0, f64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        Model {
            capacity: 100.0,
            service_s: 0.05,
            slo_s: 1.0,
            max_in_flight: Some(50.0),
        }
    }

    #[test]
    fn latency_grows_with_load_and_a_backlog_is_carried_then_capped() {
        let m = model();
        let (mut q, mut rate) = (0.0, -1.0);
        let idle = m.second(&mut q, &mut rate, 10.0);
        assert!((idle.p99_s - P99_OF_MEAN * 0.05 / 0.9).abs() < 1e-9);
        assert_eq!(idle.cpu, 10.0);
        // Sustained load raises latency; one second of it only part of the way.
        let first = m.second(&mut q, &mut rate, 90.0);
        assert!(first.p99_s > idle.p99_s);
        let mut busy = first;
        for _ in 0..60 {
            busy = m.second(&mut q, &mut rate, 90.0);
        }
        assert!(busy.p99_s > 2.0 * first.p99_s);
        assert!((busy.p99_s - P99_OF_MEAN * 0.05 / 0.1).abs() < 0.01);
        let over = m.second(&mut q, &mut rate, 130.0);
        assert_eq!((over.served, q), (100.0, 30.0));
        let over = m.second(&mut q, &mut rate, 130.0);
        assert_eq!((over.rejected, q), (10.0, 50.0));
        assert!(over.p99_s >= 0.5, "the backlog adds its wait");
        let calm = m.second(&mut q, &mut rate, 0.0);
        assert_eq!((calm.served, q), (50.0, 0.0));
    }

    #[test]
    fn demand_is_the_fewest_instances_within_the_slo() {
        let m = model();
        // p99 <= 1 s needs rho <= 1 - 0.2303 = 0.7697: 76.97 requests a second each.
        assert_eq!(m.demand(0.0), 0);
        assert_eq!(m.demand(76.0), 1);
        assert_eq!(m.demand(77.0), 2);
        assert_eq!(m.demand(769.0), 10);
    }
}
