//! Choosing a target for a request: round robin, least outstanding requests or weighted
//! random, with slow start, fail-open and per-target capacity limits.

use serde::{Deserialize, Serialize};

use crate::{Duration, Time};

/// A target's state, as ALB's `describe-target-health` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetState {
    /// Registered, not yet passed a health check: gets no traffic.
    Initial,
    Healthy,
    Unhealthy,
    /// Deregistering: gets no new requests, its in-flight ones finish.
    Draining,
    /// Not used by any listener.
    Unused,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    RoundRobin,
    LeastOutstandingRequests,
    WeightedRandom,
}

/// What selection needs to know of a target.
pub trait Candidate {
    fn state(&self) -> TargetState;
    /// Requests (and open WebSockets) in flight to it.
    fn outstanding(&self) -> u32;
    /// When it last became healthy, for slow start.
    fn healthy_since(&self) -> Option<Time>;
    /// Whether it is at its concurrent request limit.
    fn at_capacity(&self) -> bool;
    /// What its share is scaled by under `weighted_random` (anomaly mitigation).
    fn weight(&self) -> f64 {
        1.0
    }
}

impl<C: Candidate + ?Sized> Candidate for std::sync::Arc<C> {
    fn state(&self) -> TargetState {
        (**self).state()
    }
    fn outstanding(&self) -> u32 {
        (**self).outstanding()
    }
    fn healthy_since(&self) -> Option<Time> {
        (**self).healthy_since()
    }
    fn at_capacity(&self) -> bool {
        (**self).at_capacity()
    }
    fn weight(&self) -> f64 {
        (**self).weight()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    Target(usize),
    /// Every eligible target is at its capacity limit: queue, or answer 503.
    AllBusy,
    /// No target can take traffic.
    NoTarget,
}

/// The selection settings of a target group.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Selection {
    pub algorithm: Algorithm,
    pub slow_start: Duration,
}

/// Slow start's share for a target healthy for `age` of a `window`: a linear ramp from
/// a small floor to 1. The floor lets a new target get its first requests at once.
fn ramp(age: Duration, window: Duration) -> f64 {
    if window == Duration::ZERO || age >= window {
        return 1.0;
    }
    (age.as_millis() as f64 / window.as_millis() as f64).max(0.02)
}

impl Selection {
    /// Picks a target among `cands`, never one listed in `exclude` (say, one that just
    /// refused a connection). Only healthy targets get traffic; when none is healthy at
    /// all the group fails open to the unhealthy ones, as ALB does. `counter` advances
    /// round robin and breaks ties; `random` is a uniform random number.
    pub fn pick<C: Candidate>(
        &self,
        cands: &[C],
        now: Time,
        counter: u64,
        random: u64,
        exclude: &[usize],
    ) -> Pick {
        let healthy_exists = cands.iter().any(|c| c.state() == TargetState::Healthy);
        let wanted = if healthy_exists {
            TargetState::Healthy
        } else {
            TargetState::Unhealthy
        };
        let eligible = |i: usize, c: &C| c.state() == wanted && !exclude.contains(&i);
        let n = cands.len();
        if n == 0 || !cands.iter().enumerate().any(|(i, c)| eligible(i, c)) {
            return Pick::NoTarget;
        }
        let free = |i: usize, c: &C| eligible(i, c) && !c.at_capacity();
        if !cands.iter().enumerate().any(|(i, c)| free(i, c)) {
            return Pick::AllBusy;
        }
        // Slow start only applies while some other eligible target is past it.
        let weight = |c: &C| {
            c.healthy_since()
                .map_or(1.0, |t| ramp(now.since(t), self.slow_start))
        };
        let ramping = self.slow_start > Duration::ZERO
            && cands
                .iter()
                .enumerate()
                .any(|(i, c)| free(i, c) && weight(c) >= 1.0);
        let w = |c: &C| if ramping { weight(c) } else { 1.0 };
        let start = (counter % n as u64) as usize;
        match self.algorithm {
            Algorithm::RoundRobin => {
                // Walk from the rotation point; a ramping target takes its turn with a
                // probability equal to its share.
                let r = (random % 10_000) as f64 / 10_000.0;
                let mut fallback = None;
                for k in 0..n {
                    let i = (start + k) % n;
                    let c = &cands[i];
                    if !free(i, c) {
                        continue;
                    }
                    if r < w(c) {
                        return Pick::Target(i);
                    }
                    fallback.get_or_insert(i);
                }
                fallback.map_or(Pick::AllBusy, Pick::Target)
            }
            Algorithm::LeastOutstandingRequests => (0..n)
                .map(|k| (start + k) % n)
                .filter(|&i| free(i, &cands[i]))
                .min_by_key(|&i| cands[i].outstanding())
                .map_or(Pick::AllBusy, Pick::Target),
            Algorithm::WeightedRandom => {
                let w = |c: &C| w(c) * c.weight();
                let total: f64 = (0..n)
                    .filter(|&i| free(i, &cands[i]))
                    .map(|i| w(&cands[i]))
                    .sum();
                let mut x = (random % 1_000_000) as f64 / 1_000_000.0 * total;
                let mut last = None;
                for i in (0..n).filter(|&i| free(i, &cands[i])) {
                    last = Some(i);
                    x -= w(&cands[i]);
                    if x < 0.0 {
                        return Pick::Target(i);
                    }
                }
                last.map_or(Pick::AllBusy, Pick::Target)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use quickcheck::{Arbitrary, Gen, QuickCheck};

    use super::*;

    #[derive(Clone, Debug)]
    struct T {
        state: TargetState,
        outstanding: u32,
        since: Option<Time>,
        full: bool,
    }

    impl Candidate for T {
        fn state(&self) -> TargetState {
            self.state
        }
        fn outstanding(&self) -> u32 {
            self.outstanding
        }
        fn healthy_since(&self) -> Option<Time> {
            self.since
        }
        fn at_capacity(&self) -> bool {
            self.full
        }
    }

    fn t(state: TargetState, outstanding: u32) -> T {
        T {
            state,
            outstanding,
            since: Some(Time::from_millis(0)),
            full: false,
        }
    }

    const RR: Selection = Selection {
        algorithm: Algorithm::RoundRobin,
        slow_start: Duration::ZERO,
    };
    const LOR: Selection = Selection {
        algorithm: Algorithm::LeastOutstandingRequests,
        slow_start: Duration::ZERO,
    };
    const NOW: Time = Time::from_millis(1_000_000);

    #[test]
    fn weighted_random_scales_each_share_by_its_weight() {
        struct W(f64);
        impl Candidate for W {
            fn state(&self) -> TargetState {
                TargetState::Healthy
            }
            fn outstanding(&self) -> u32 {
                0
            }
            fn healthy_since(&self) -> Option<Time> {
                Some(Time::from_millis(0))
            }
            fn at_capacity(&self) -> bool {
                false
            }
            fn weight(&self) -> f64 {
                self.0
            }
        }
        let cands = [W(1.0), W(0.05), W(1.0)];
        let wr = Selection {
            algorithm: Algorithm::WeightedRandom,
            slow_start: Duration::ZERO,
        };
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        let mut hits = [0u32; 3];
        for k in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if let Pick::Target(i) = wr.pick(&cands, Time::from_millis(0), k, x, &[]) {
                hits[i] += 1;
            }
        }
        // 0.05 / 2.05 of the traffic: 2.4%.
        assert!((300..700).contains(&hits[1]), "{hits:?}");
        assert!(hits[0].abs_diff(hits[2]) < 800, "{hits:?}");
    }

    #[test]
    fn round_robin_rotates_over_healthy_targets_only() {
        use TargetState::*;
        let ts = [
            t(Healthy, 0),
            t(Draining, 0),
            t(Healthy, 0),
            t(Initial, 0),
            t(Unhealthy, 0),
        ];
        let picks: Vec<Pick> = (0..5).map(|c| RR.pick(&ts, NOW, c, 0, &[])).collect();
        assert_eq!(
            picks,
            [
                Pick::Target(0),
                Pick::Target(2),
                Pick::Target(2),
                Pick::Target(0),
                Pick::Target(0)
            ]
        );
        assert_eq!(RR.pick(&ts, NOW, 0, 0, &[0]), Pick::Target(2));
    }

    #[test]
    fn fails_open_to_unhealthy_but_never_to_initial_or_draining() {
        use TargetState::*;
        assert_eq!(
            RR.pick(&[t(Unhealthy, 0), t(Draining, 0)], NOW, 1, 0, &[]),
            Pick::Target(0)
        );
        assert_eq!(
            RR.pick(&[t(Initial, 0), t(Draining, 0)], NOW, 0, 0, &[]),
            Pick::NoTarget
        );
        assert_eq!(RR.pick::<T>(&[], NOW, 0, 0, &[]), Pick::NoTarget);
    }

    #[test]
    fn least_outstanding_prefers_the_idle_target() {
        use TargetState::*;
        let ts = [t(Healthy, 5), t(Healthy, 1), t(Healthy, 3)];
        for c in 0..3 {
            assert_eq!(LOR.pick(&ts, NOW, c, 0, &[]), Pick::Target(1));
        }
        let busy = [
            T {
                full: true,
                ..t(Healthy, 9)
            },
            T {
                full: true,
                ..t(Healthy, 9)
            },
        ];
        assert_eq!(LOR.pick(&busy, NOW, 0, 0, &[]), Pick::AllBusy);
    }

    #[test]
    fn slow_start_ramps_a_new_target_linearly() {
        use TargetState::*;
        let sel = Selection {
            algorithm: Algorithm::RoundRobin,
            slow_start: Duration::from_secs(100),
        };
        let new = T {
            since: Some(Time::from_millis(NOW.as_millis() - 25_000)),
            ..t(Healthy, 0)
        };
        let ts = [t(Healthy, 0), new];
        let mut counts = [0u32; 2];
        for c in 0..20_000u64 {
            if let Pick::Target(i) = sel.pick(
                &ts,
                NOW,
                c,
                c.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11,
                &[],
            ) {
                counts[i] += 1;
            }
        }
        // 25 s into a 100 s ramp: about a quarter of its even share.
        let share = f64::from(counts[1]) / 10_000.0;
        assert!(
            (0.2..0.3).contains(&share),
            "share {share}, counts {counts:?}"
        );
        // With no target past its ramp, slow start does not hold traffic back.
        let both_new = [ts[1].clone(), ts[1].clone()];
        assert!(matches!(
            sel.pick(&both_new, NOW, 0, 9_999, &[]),
            Pick::Target(_)
        ));
    }

    impl Arbitrary for T {
        fn arbitrary(g: &mut Gen) -> T {
            let state = *g
                .choose(&[
                    TargetState::Initial,
                    TargetState::Healthy,
                    TargetState::Unhealthy,
                    TargetState::Draining,
                ])
                .unwrap();
            T {
                state,
                outstanding: u32::arbitrary(g) % 10,
                since: Some(Time::from_millis(0)),
                full: bool::arbitrary(g),
            }
        }
    }

    /// Only a target in the wanted state (healthy; unhealthy when none is healthy),
    /// never an excluded or full one; busy or none exactly when that is so.
    fn never_picks_the_wrong_target(ts: Vec<T>, counter: u64, random: u64, algo: u8) -> bool {
        let algorithm = [
            Algorithm::RoundRobin,
            Algorithm::LeastOutstandingRequests,
            Algorithm::WeightedRandom,
        ][algo as usize % 3];
        let sel = Selection {
            algorithm,
            slow_start: Duration::ZERO,
        };
        let wanted = if ts.iter().any(|t| t.state == TargetState::Healthy) {
            TargetState::Healthy
        } else {
            TargetState::Unhealthy
        };
        let eligible: Vec<usize> = (1..ts.len()).filter(|&i| ts[i].state == wanted).collect();
        match sel.pick(&ts, NOW, counter, random, &[0]) {
            Pick::Target(i) => eligible.contains(&i) && !ts[i].full,
            Pick::AllBusy => !eligible.is_empty() && eligible.iter().all(|&i| ts[i].full),
            Pick::NoTarget => eligible.is_empty(),
        }
    }

    #[test]
    fn selection_properties() {
        QuickCheck::new()
            .tests(2000)
            .quickcheck(never_picks_the_wrong_target as fn(Vec<T>, u64, u64, u8) -> bool);
    }
}
