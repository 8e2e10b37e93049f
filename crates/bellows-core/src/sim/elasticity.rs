//! The SPEC Research Group's elasticity metrics (as BUNGEE reports them), from demand
//! d(t) and supply s(t) in instances, one sample a second.

use serde::Serialize;

/// Accumulates the metrics over a run.
#[derive(Clone, Debug, Default)]
pub struct Accumulator {
    seconds: u64,
    under: u64,
    over: u64,
    under_s: u64,
    over_s: u64,
    supply_changes: u64,
    demand_changes: u64,
    last: Option<(u32, u32)>,
}

/// The metrics of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Elasticity {
    /// Mean instances missing: (1/T) * integral of max(d - s, 0).
    pub under_accuracy: f64,
    /// Mean instances too many: (1/T) * integral of max(s - d, 0).
    pub over_accuracy: f64,
    /// Share of time with s < d.
    pub under_timeshare: f64,
    /// Share of time with s > d.
    pub over_timeshare: f64,
    /// (supply changes - demand changes) per minute; negative: supply follows less
    /// often than demand moves.
    pub jitter: f64,
}

impl Accumulator {
    pub fn add(&mut self, demand: u32, supply: u32) {
        self.seconds += 1;
        if supply < demand {
            self.under += u64::from(demand - supply);
            self.under_s += 1;
        } else if supply > demand {
            self.over += u64::from(supply - demand);
            self.over_s += 1;
        }
        if let Some((d, s)) = self.last {
            self.demand_changes += u64::from(d != demand);
            self.supply_changes += u64::from(s != supply);
        }
        self.last = Some((demand, supply));
    }

    pub fn finish(&self) -> Elasticity {
        if self.seconds == 0 {
            return Elasticity::default();
        }
        let t = self.seconds as f64;
        Elasticity {
            under_accuracy: self.under as f64 / t,
            over_accuracy: self.over as f64 / t,
            under_timeshare: self.under_s as f64 / t,
            over_timeshare: self.over_s as f64 / t,
            jitter: (self.supply_changes as f64 - self.demand_changes as f64) / (t / 60.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_timeshare_and_jitter() {
        let mut a = Accumulator::default();
        // 60 seconds: demand 2 throughout; supply 1 for 15 s, 2 for 30 s, 4 for 15 s.
        for t in 0..60 {
            let s = match t {
                0..15 => 1,
                15..45 => 2,
                _ => 4,
            };
            a.add(2, s);
        }
        let e = a.finish();
        assert_eq!(e.under_accuracy, 15.0 / 60.0);
        assert_eq!(e.over_accuracy, 30.0 / 60.0);
        assert_eq!(e.under_timeshare, 0.25);
        assert_eq!(e.over_timeshare, 0.25);
        assert_eq!(e.jitter, 2.0);
    }
}
