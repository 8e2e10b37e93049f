//! Instance warmup as a group's metrics see it: an instance in service for less than
//! its group's warmup is left out of the group's aggregate CPU and memory (as AWS does
//! for step scaling and target tracking), unless every instance is still warming up.
//! The node's publishing and the simulator both compute a group's CPU here.

use crate::{Duration, Time};

/// Whether an instance that came into service at `in_service_at` is still warming up
/// at `now`.
pub fn is_warming(in_service_at: Time, warmup: Duration, now: Time) -> bool {
    now.since(in_service_at) < warmup
}

/// The mean of a group's per-instance values (CPU or memory) with warming instances
/// left out: add every instance in service, then read `mean`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WarmMean {
    all_sum: f64,
    all_n: u32,
    warm_sum: f64,
    warm_n: u32,
}

impl WarmMean {
    /// One instance's value, and whether it is still warming up.
    pub fn add(&mut self, value: f64, warming: bool) {
        self.all_sum += value;
        self.all_n += 1;
        if !warming {
            self.warm_sum += value;
            self.warm_n += 1;
        }
    }

    /// The group's value: the mean over instances past their warmup, or over all of
    /// them while every one is still warming up; `None` without any instance.
    pub fn mean(&self) -> Option<f64> {
        if self.warm_n > 0 {
            Some(self.warm_sum / f64::from(self.warm_n))
        } else if self.all_n > 0 {
            Some(self.all_sum / f64::from(self.all_n))
        } else {
            None
        }
    }

    /// The mean over every instance added, warming or not.
    pub fn mean_of_all(&self) -> Option<f64> {
        (self.all_n > 0).then(|| self.all_sum / f64::from(self.all_n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warming_lasts_exactly_the_warmup() {
        let start = Time::from_millis(10_000);
        let warmup = Duration::from_secs(30);
        assert!(is_warming(start, warmup, start));
        assert!(is_warming(start, warmup, Time::from_millis(39_999)));
        assert!(!is_warming(start, warmup, Time::from_millis(40_000)));
        assert!(!is_warming(start, Duration::ZERO, start));
    }

    #[test]
    fn a_groups_mean_leaves_out_warming_instances() {
        let mut m = WarmMean::default();
        assert_eq!(m.mean(), None);
        m.add(90.0, true);
        // Every instance warming: the mean of all of them.
        assert_eq!(m.mean(), Some(90.0));
        m.add(20.0, false);
        m.add(40.0, false);
        assert_eq!(m.mean(), Some(30.0));
        assert_eq!(m.mean_of_all(), Some(50.0));
    }
}
