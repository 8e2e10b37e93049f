//! Anomaly mitigation at run time: once a second, each target's requests and errors of
//! the last second go to the core's detector (`bellows_core::lb::anomaly`), and the
//! weights it answers scale the targets' shares under `weighted_random`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bellows_core::ids::InstanceId;
use bellows_core::lb::anomaly::{Detector, Sample};
use bellows_core::lb::select::{Algorithm, TargetState};

use crate::targets::TargetGroup;

/// Runs for the target group's life (until an apply removes it); idle while the
/// group's settings leave mitigation off (an apply may turn it on or off).
pub(crate) async fn watch(tg: Arc<TargetGroup>) {
    let mut detector = Detector::default();
    let mut last: HashMap<InstanceId, (u64, u64)> = HashMap::new();
    let mut every = crate::clock::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if tg.retired.load(Relaxed) {
            return;
        }
        let spec = tg.spec.load();
        let targets = tg.targets.load();
        if !(spec.anomaly_mitigation && spec.algorithm == Algorithm::WeightedRandom) {
            for t in targets.iter() {
                t.weight_permille.store(1000, Relaxed);
                t.anomalous.store(false, Relaxed);
            }
            detector = Detector::default();
            last.clear();
            continue;
        }
        let counts: Vec<(u64, u64)> = targets
            .iter()
            .map(|t| {
                let now = (t.requests.load(Relaxed), t.errors.load(Relaxed));
                let before = last.insert(t.instance.clone(), now).unwrap_or(now);
                (
                    now.0.saturating_sub(before.0),
                    now.1.saturating_sub(before.1),
                )
            })
            .collect();
        last.retain(|id, _| targets.iter().any(|t| &t.instance == id));
        let samples: Vec<Sample<'_>> = targets
            .iter()
            .zip(&counts)
            .map(|(t, &(requests, errors))| Sample {
                id: &t.instance,
                healthy: t.load_state() == TargetState::Healthy,
                requests,
                errors,
            })
            .collect();
        for (t, v) in targets.iter().zip(detector.observe(&samples)) {
            if v.anomalous != t.anomalous.swap(v.anomalous, Relaxed) {
                tracing::info!(
                    target_group = %spec.name,
                    instance = %t.instance,
                    anomalous = v.anomalous,
                    "anomaly mitigation: target {}",
                    if v.anomalous { "out of line with its peers; its share shrinks" } else { "back in line; its share ramps back" }
                );
            }
            t.weight_permille
                .store((v.weight * 1000.0).round() as u32, Relaxed);
        }
    }
}
