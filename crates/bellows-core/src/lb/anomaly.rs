//! Anomaly mitigation for `weighted_random`, as ALB's automatic target weights: a
//! healthy target whose share of errors (5xx answers and failed connections) is out of
//! line with its peers' gets less traffic, and its share ramps back once it recovers.
//!
//! Health checks catch a target that is down; this catches one that passes them and
//! fails requests (a bad deploy on one instance, a full disk, a poisoned cache). The
//! proxy counts each target's requests and errors, and once a second hands the counts
//! of the last second here; the weights it gets back scale each target's share.

use std::collections::BTreeMap;

use crate::ids::InstanceId;

/// Mitigation needs this many healthy targets (as on ALB): with fewer, there are not
/// enough peers to say what is normal, nor enough to take a target's traffic.
pub const MIN_HEALTHY: usize = 3;
/// An anomalous target keeps at least this share of its traffic, so that recovery
/// shows.
pub const FLOOR: f64 = 0.05;
/// Each second a target is anomalous its weight halves (down to the floor); each
/// second it is not, it gains this much back (full in ten seconds).
const RECOVERY_PER_SECOND: f64 = 0.1;
/// How much of a second's counts go into the running rates (about a 3 s half-life).
const SMOOTHING: f64 = 0.2;
/// Fewer requests a second than this (smoothed) is too few to judge a target by.
const MIN_RATE: f64 = 0.5;
/// A target is anomalous when its error share is at least this...
const MIN_ERROR_SHARE: f64 = 0.1;
/// ... and this many times its peers'.
const PEER_FACTOR: f64 = 3.0;

/// One target's counts for the last second.
#[derive(Clone, Copy, Debug)]
pub struct Sample<'a> {
    pub id: &'a InstanceId,
    pub healthy: bool,
    pub requests: u64,
    pub errors: u64,
}

/// What the detector says of a target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    pub anomalous: bool,
    /// Its share of traffic is scaled by this, from FLOOR to 1.
    pub weight: f64,
}

#[derive(Clone, Copy, Debug)]
struct Track {
    requests: f64,
    errors: f64,
    anomalous: bool,
    weight: f64,
}

/// Running rates and weights of a target group's targets.
#[derive(Debug, Default)]
pub struct Detector {
    tracks: BTreeMap<InstanceId, Track>,
}

impl Detector {
    /// Takes a second's counts (one per current target) and returns each target's
    /// verdict, in the same order. Targets not given are forgotten.
    pub fn observe(&mut self, samples: &[Sample<'_>]) -> Vec<Verdict> {
        self.tracks
            .retain(|id, _| samples.iter().any(|s| s.id == id));
        for s in samples {
            let t = self.tracks.entry(s.id.clone()).or_insert(Track {
                requests: s.requests as f64,
                errors: s.errors as f64,
                anomalous: false,
                weight: 1.0,
            });
            t.requests += SMOOTHING * (s.requests as f64 - t.requests);
            t.errors += SMOOTHING * (s.errors as f64 - t.errors);
        }
        let healthy: Vec<&Sample<'_>> = samples.iter().filter(|s| s.healthy).collect();
        if healthy.len() < MIN_HEALTHY {
            for t in self.tracks.values_mut() {
                t.anomalous = false;
                t.weight = 1.0;
            }
            return samples.iter().map(|_| NORMAL).collect();
        }
        let (all_requests, all_errors) = healthy.iter().fold((0.0, 0.0), |(r, e), s| {
            let t = &self.tracks[s.id];
            (r + t.requests, e + t.errors)
        });
        // Judge those with enough requests; the worst first, and never more than a
        // minority at once (when most fail alike, the fault is not theirs).
        let mut judged: Vec<(&InstanceId, f64, bool)> = healthy
            .iter()
            .filter_map(|s| {
                let t = &self.tracks[s.id];
                if t.requests < MIN_RATE {
                    return None;
                }
                let share = t.errors / t.requests;
                let peer_requests = all_requests - t.requests;
                let peer_share = if peer_requests > 0.0 {
                    (all_errors - t.errors).max(0.0) / peer_requests
                } else {
                    0.0
                };
                let out_of_line = share >= MIN_ERROR_SHARE && share > PEER_FACTOR * peer_share;
                Some((s.id, share, out_of_line))
            })
            .collect();
        judged.sort_by(|a, b| b.1.total_cmp(&a.1));
        let most = (healthy.len() - 1) / 2;
        let mut flagged = 0;
        for (id, _, out_of_line) in judged {
            let anomalous = out_of_line && flagged < most;
            flagged += usize::from(anomalous);
            if let Some(t) = self.tracks.get_mut(id) {
                t.anomalous = anomalous;
            }
        }
        for s in samples {
            let Some(t) = self.tracks.get_mut(s.id) else {
                continue;
            };
            if !s.healthy {
                t.anomalous = false;
            }
            t.weight = if t.anomalous {
                (t.weight / 2.0).max(FLOOR)
            } else {
                (t.weight + RECOVERY_PER_SECOND).min(1.0)
            };
        }
        samples
            .iter()
            .map(|s| {
                let t = &self.tracks[s.id];
                Verdict {
                    anomalous: t.anomalous,
                    weight: t.weight,
                }
            })
            .collect()
    }
}

const NORMAL: Verdict = Verdict {
    anomalous: false,
    weight: 1.0,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<InstanceId> {
        (0..n)
            .map(|i| InstanceId::parse(&format!("i-{i:017x}")).unwrap())
            .collect()
    }

    /// Runs `seconds` of traffic: each target's (requests, errors) a second.
    fn run(
        d: &mut Detector,
        ids: &[InstanceId],
        seconds: usize,
        counts: &[(u64, u64)],
    ) -> Vec<Verdict> {
        let mut last = Vec::new();
        for _ in 0..seconds {
            let samples: Vec<Sample<'_>> = ids
                .iter()
                .zip(counts)
                .map(|(id, &(requests, errors))| Sample {
                    id,
                    healthy: true,
                    requests,
                    errors,
                })
                .collect();
            last = d.observe(&samples);
        }
        last
    }

    #[test]
    fn a_target_failing_alone_loses_its_traffic_and_wins_it_back() {
        let ids = ids(4);
        let mut d = Detector::default();
        let v = run(&mut d, &ids, 10, &[(100, 0), (100, 1), (100, 60), (100, 0)]);
        assert!(v[2].anomalous, "{v:?}");
        assert_eq!(v[2].weight, FLOOR);
        assert!(
            v.iter().enumerate().all(|(i, v)| i == 2 || *v == NORMAL),
            "{v:?}"
        );
        // At the floor it still gets a little traffic, and that traffic recovers.
        let v = run(&mut d, &ids, 30, &[(100, 0), (100, 1), (5, 0), (100, 0)]);
        assert!(!v[2].anomalous && v[2].weight == 1.0, "{v:?}");
    }

    #[test]
    fn no_mitigation_with_fewer_than_three_healthy_or_when_most_fail() {
        let two = ids(2);
        let v = run(&mut Detector::default(), &two, 10, &[(100, 0), (100, 90)]);
        assert!(v.iter().all(|v| *v == NORMAL), "{v:?}");
        // Two of five failing: both flagged. Three of five: the fault is not theirs.
        let five = ids(5);
        let v = run(
            &mut Detector::default(),
            &five,
            10,
            &[(100, 0), (100, 90), (100, 80), (100, 0), (100, 0)],
        );
        let flagged: Vec<usize> = (0..5).filter(|&i| v[i].anomalous).collect();
        assert_eq!(flagged, [1, 2], "{v:?}");
        let v = run(
            &mut Detector::default(),
            &five,
            10,
            &[(100, 0), (100, 90), (100, 80), (100, 70), (100, 0)],
        );
        assert!(v.iter().all(|v| !v.anomalous), "{v:?}");
        // Everyone failing alike is nobody's anomaly.
        let v = run(&mut Detector::default(), &five, 10, &[(100, 50); 5]);
        assert!(v.iter().all(|v| !v.anomalous), "{v:?}");
    }

    #[test]
    fn a_few_errors_or_few_requests_are_not_an_anomaly() {
        let ids = ids(3);
        // 5% errors where the peers have none: under the 10% bar.
        let v = run(
            &mut Detector::default(),
            &ids,
            10,
            &[(100, 5), (100, 0), (100, 0)],
        );
        assert!(v.iter().all(|v| *v == NORMAL), "{v:?}");
        // Every request failing, but hardly any requests.
        let v = run(
            &mut Detector::default(),
            &ids,
            10,
            &[(0, 0), (100, 0), (100, 0)],
        );
        assert!(v.iter().all(|v| *v == NORMAL), "{v:?}");
        // A target that turns unhealthy is the health checks' business.
        let mut d = Detector::default();
        run(&mut d, &ids, 10, &[(100, 90), (100, 0), (100, 0)]);
        let samples = [
            Sample {
                id: &ids[0],
                healthy: false,
                requests: 0,
                errors: 0,
            },
            Sample {
                id: &ids[1],
                healthy: true,
                requests: 100,
                errors: 0,
            },
            Sample {
                id: &ids[2],
                healthy: true,
                requests: 100,
                errors: 0,
            },
        ];
        assert!(!d.observe(&samples)[0].anomalous);
    }
}
