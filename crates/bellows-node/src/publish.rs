//! Each second, what bellows measures goes into the metric store under CloudWatch's
//! names: instances' CPU and memory (AWS/EC2), groups' capacity (AWS/AutoScaling), and
//! the load balancer's counters as per-second deltas (AWS/ApplicationELB).

use std::collections::HashMap;
use std::time::Duration;

use bellows_core::Time;
use bellows_core::group::{Group, Lifecycle};
use bellows_core::metrics::{MetricStore, SeriesKey};
use bellows_core::scaling::{WarmMean, is_warming};
use bellows_proxy::Snapshot;

use crate::api::InstanceView;

/// The previous counter values, to publish deltas.
#[derive(Debug, Default)]
pub struct Deltas {
    last: HashMap<String, u64>,
    /// Per target group: the response time histogram's last counts.
    buckets: HashMap<String, Vec<u64>>,
}

impl Deltas {
    /// The increase since the last call for `key` (zero the first time).
    fn delta(&mut self, key: String, value: u64) -> u64 {
        let before = self.last.insert(key, value);
        before.map_or(0, |b| value.saturating_sub(b))
    }
}

/// The CloudWatch name of a counter published as a per-second count; gauges aside.
fn alb(field: &str) -> Option<&'static str> {
    Some(bellows_proxy::metrics::alb_name(field))
        .filter(|n| field != "active_connections" && *n != "Unknown")
}

pub fn load_balancer(store: &mut MetricStore, deltas: &mut Deltas, snap: &Snapshot, now: Time) {
    let lb = snap.load_balancer.as_str();
    let mut totals: HashMap<&'static str, u64> = HashMap::new();
    for (listener, counters) in &snap.listeners {
        for (field, value) in counters {
            if *field == "active_connections" {
                *totals.entry("ActiveConnectionCount").or_default() += value;
            } else if let Some(name) = alb(field) {
                *totals.entry(name).or_default() +=
                    deltas.delta(format!("l/{listener}/{field}"), *value);
            }
        }
    }
    for (name, v) in totals {
        store.put(
            &SeriesKey::new("AWS/ApplicationELB", name, &[("LoadBalancer", lb)]),
            now,
            v as f64,
        );
    }
    for g in &snap.groups {
        let dims = [("LoadBalancer", lb), ("TargetGroup", g.name.as_str())];
        let tg_only = [("TargetGroup", g.name.as_str())];
        let mut requests = 0;
        for (field, value) in &g.counters {
            if let Some(name) = alb(field) {
                let d = deltas.delta(format!("g/{}/{field}", g.name), *value);
                if *field == "request_count" {
                    requests = d;
                }
                store.put(
                    &SeriesKey::new("AWS/ApplicationELB", name, &tg_only),
                    now,
                    d as f64,
                );
                store.put(
                    &SeriesKey::new("AWS/ApplicationELB", name, &dims),
                    now,
                    d as f64,
                );
            }
        }
        store.put(
            &SeriesKey::new("AWS/ApplicationELB", "HealthyHostCount", &tg_only),
            now,
            f64::from(g.healthy),
        );
        store.put(
            &SeriesKey::new("AWS/ApplicationELB", "UnHealthyHostCount", &tg_only),
            now,
            f64::from(g.unhealthy),
        );
        // ALB's RequestCountPerTarget: requests over healthy targets.
        let per_target = requests as f64 / f64::from(g.healthy.max(1));
        store.put(
            &SeriesKey::new("AWS/ApplicationELB", "RequestCountPerTarget", &tg_only),
            now,
            per_target,
        );
        let n = deltas.delta(format!("g/{}/rt_count", g.name), g.response_count);
        let sum = deltas.delta(format!("g/{}/rt_sum", g.name), g.response_sum_us);
        if n > 0 {
            let avg = sum as f64 / n as f64 / 1e6;
            store.put(
                &SeriesKey::new("AWS/ApplicationELB", "TargetResponseTime", &tg_only),
                now,
                avg,
            );
        }
        // This second's percentiles from the histogram's growth (ALB's percentile
        // statistics come from every request; averages of seconds would hide the tail).
        let last = deltas
            .buckets
            .insert(g.name.clone(), g.response_buckets.clone())
            .unwrap_or_default();
        if n > 0 && last.len() == g.response_buckets.len() {
            let grown: Vec<u64> = g
                .response_buckets
                .iter()
                .zip(&last)
                .map(|(now, before)| now.saturating_sub(*before))
                .collect();
            for (name, q) in [
                ("TargetResponseTimeP50", 0.5),
                ("TargetResponseTimeP99", 0.99),
            ] {
                if let Some(us) = bellows_proxy::metrics::quantile(&grown, q) {
                    store.put(
                        &SeriesKey::new("bellows/ApplicationELB", name, &tg_only),
                        now,
                        us as f64 / 1e6,
                    );
                }
            }
        }
    }
}

/// Each instance in service's CPU and memory, and each group's average of them
/// (AWS/EC2).
pub fn instances(
    store: &mut MetricStore,
    instances: &[InstanceView],
    warmups: &HashMap<String, Duration>,
    now: Time,
) {
    // Per group: the mean CPU and memory, leaving out instances still warming up.
    let mut groups: HashMap<String, (WarmMean, WarmMean)> = HashMap::new();
    for i in instances {
        let (Some(cpu), Some(mem)) = (i.cpu_percent, i.memory_percent) else {
            continue;
        };
        if i.lifecycle != Lifecycle::InService {
            continue;
        }
        let id = i.id.as_str();
        store.put(
            &SeriesKey::new("AWS/EC2", "CPUUtilization", &[("InstanceId", id)]),
            now,
            cpu,
        );
        store.put(
            &SeriesKey::new("AWS/EC2", "MemoryUtilization", &[("InstanceId", id)]),
            now,
            mem,
        );
        let warmup = warmups.get(&i.group).copied().unwrap_or_default();
        let warming = i.in_service_at.is_some_and(|t| {
            is_warming(
                t,
                bellows_core::Duration::from_millis(warmup.as_millis() as u64),
                now,
            )
        });
        let (c, m) = groups.entry(i.group.clone()).or_default();
        c.add(cpu, warming);
        m.add(mem, warming);
    }
    for (group, (cpu, mem)) in groups {
        let dims = [("AutoScalingGroupName", group.as_str())];
        if let (Some(cpu), Some(mem)) = (cpu.mean(), mem.mean()) {
            store.put(
                &SeriesKey::new("AWS/EC2", "CPUUtilization", &dims),
                now,
                cpu,
            );
            store.put(
                &SeriesKey::new("AWS/EC2", "MemoryUtilization", &dims),
                now,
                mem,
            );
        }
    }
}

/// Each group's capacity and instance counts (AWS/AutoScaling).
pub fn groups<'g>(store: &mut MetricStore, groups: impl Iterator<Item = &'g Group>, now: Time) {
    for g in groups {
        let dims = [("AutoScalingGroupName", g.name())];
        let cap = g.capacity();
        let counts = [
            ("GroupMinSize", cap.min as usize),
            ("GroupMaxSize", cap.max as usize),
            ("GroupDesiredCapacity", cap.desired as usize),
            ("GroupInServiceInstances", g.count(Lifecycle::InService)),
            ("GroupPendingInstances", g.count(Lifecycle::Pending)),
            ("GroupTerminatingInstances", g.count(Lifecycle::Terminating)),
            ("GroupTotalInstances", g.instances().count()),
        ];
        for (name, v) in counts {
            store.put(
                &SeriesKey::new("AWS/AutoScaling", name, &dims),
                now,
                v as f64,
            );
        }
    }
}
