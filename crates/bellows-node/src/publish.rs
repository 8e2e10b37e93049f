//! Each second, what bellows measures goes into the metric store under CloudWatch's
//! names: instances' CPU and memory (AWS/EC2), groups' capacity (AWS/AutoScaling), and
//! the load balancer's counters as per-second deltas (AWS/ApplicationELB).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use bellows_core::Time;
use bellows_core::group::{Group, Lifecycle};
use bellows_core::metrics::{MetricStore, SeriesKey, catalogue};
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

/// The load balancer's counters: the stack's (every listener) and, for the load
/// balancers made through the AWS endpoint, each one's (its listeners, named in
/// `owners`), under `LoadBalancer`; and each target group's.
pub fn load_balancer(
    store: &mut MetricStore,
    deltas: &mut Deltas,
    snap: &Snapshot,
    owners: &BTreeMap<String, String>,
    now: Time,
) {
    let lb = snap.load_balancer.as_str();
    // Per load balancer name, per metric.
    let mut totals: BTreeMap<&str, HashMap<&'static str, u64>> = BTreeMap::new();
    for (listener, counters) in &snap.listeners {
        let own = owners
            .get(listener)
            .map(String::as_str)
            .filter(|o| *o != lb);
        for (field, value) in counters {
            let (name, v) = if *field == "active_connections" {
                (catalogue::ACTIVE_CONNECTION_COUNT.name, *value)
            } else if let Some(name) = alb(field) {
                (name, deltas.delta(format!("l/{listener}/{field}"), *value))
            } else {
                continue;
            };
            for at in std::iter::once(lb).chain(own) {
                *totals.entry(at).or_default().entry(name).or_default() += v;
            }
        }
    }
    for (at, metrics) in totals {
        for (name, v) in metrics {
            store.put(
                &SeriesKey::new(catalogue::ELB, name, &[("LoadBalancer", at)]),
                now,
                v as f64,
            );
        }
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
                    &SeriesKey::new(catalogue::ELB, name, &tg_only),
                    now,
                    d as f64,
                );
                store.put(&SeriesKey::new(catalogue::ELB, name, &dims), now, d as f64);
            }
        }
        store.put(
            &catalogue::HEALTHY_HOST_COUNT.key(&tg_only),
            now,
            f64::from(g.healthy),
        );
        store.put(
            &catalogue::UNHEALTHY_HOST_COUNT.key(&tg_only),
            now,
            f64::from(g.unhealthy),
        );
        // ALB's RequestCountPerTarget: requests over healthy targets.
        let per_target = requests as f64 / f64::from(g.healthy.max(1));
        store.put(
            &catalogue::REQUEST_COUNT_PER_TARGET.key(&tg_only),
            now,
            per_target,
        );
        let n = deltas.delta(format!("g/{}/rt_count", g.name), g.response_count);
        let sum = deltas.delta(format!("g/{}/rt_sum", g.name), g.response_sum_us);
        if n > 0 {
            let avg = sum as f64 / n as f64 / 1e6;
            store.put(&catalogue::TARGET_RESPONSE_TIME.key(&tg_only), now, avg);
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
            for (metric, q) in [
                (catalogue::TARGET_RESPONSE_TIME_P50, 0.5),
                (catalogue::TARGET_RESPONSE_TIME_P99, 0.99),
            ] {
                if let Some(us) = bellows_proxy::metrics::quantile(&grown, q) {
                    store.put(&metric.key(&tg_only), now, us as f64 / 1e6);
                }
            }
        }
    }
    deltas.forget_gone(snap);
}

impl Deltas {
    /// Listeners and target groups an apply removed leave no counters behind, so one
    /// added again under the same name starts afresh.
    fn forget_gone(&mut self, snap: &Snapshot) {
        let listeners: HashSet<&str> = snap.listeners.iter().map(|(n, _)| n.as_str()).collect();
        let groups: HashSet<&str> = snap.groups.iter().map(|g| g.name.as_str()).collect();
        self.last.retain(|key, _| {
            let mut parts = key.splitn(3, '/');
            match (parts.next(), parts.next()) {
                (Some("l"), Some(name)) => listeners.contains(name),
                (Some("g"), Some(name)) => groups.contains(name),
                _ => true,
            }
        });
        self.buckets
            .retain(|name, _| groups.contains(name.as_str()));
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
            &catalogue::CPU_UTILIZATION.key(&[("InstanceId", id)]),
            now,
            cpu,
        );
        store.put(
            &catalogue::MEMORY_UTILIZATION.key(&[("InstanceId", id)]),
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
            store.put(&catalogue::CPU_UTILIZATION.key(&dims), now, cpu);
            store.put(&catalogue::MEMORY_UTILIZATION.key(&dims), now, mem);
        }
    }
}

/// What DynamoDB calls consumed in the last second (AWS/DynamoDB): capacity units per
/// table, and the mean latency per table and operation. Nothing when nothing was called,
/// as DynamoDB publishes only for requests.
pub fn dynamodb(store: &mut MetricStore, consumed: &crate::tables::Consumed, now: Time) {
    for (table, (read, write)) in &consumed.units {
        let dims = [("TableName", table.as_str())];
        store.put(
            &catalogue::CONSUMED_READ_CAPACITY_UNITS.key(&dims),
            now,
            *read,
        );
        store.put(
            &catalogue::CONSUMED_WRITE_CAPACITY_UNITS.key(&dims),
            now,
            *write,
        );
    }
    for ((table, operation), ms) in &consumed.latency {
        if ms.is_empty() {
            continue;
        }
        let dims = [
            ("TableName", table.as_str()),
            ("Operation", operation.as_str()),
        ];
        store.put(
            &catalogue::SUCCESSFUL_REQUEST_LATENCY.key(&dims),
            now,
            ms.iter().sum::<f64>() / ms.len() as f64,
        );
    }
}

/// Each group's capacity and instance counts (AWS/AutoScaling).
pub fn groups<'g>(store: &mut MetricStore, groups: impl Iterator<Item = &'g Group>, now: Time) {
    for g in groups {
        let dims = [("AutoScalingGroupName", g.name())];
        let cap = g.capacity();
        let counts = [
            (catalogue::GROUP_MIN_SIZE, cap.min as usize),
            (catalogue::GROUP_MAX_SIZE, cap.max as usize),
            (catalogue::GROUP_DESIRED_CAPACITY, cap.desired as usize),
            (
                catalogue::GROUP_IN_SERVICE_INSTANCES,
                g.count(Lifecycle::InService),
            ),
            (
                catalogue::GROUP_PENDING_INSTANCES,
                g.count(Lifecycle::Pending),
            ),
            (
                catalogue::GROUP_TERMINATING_INSTANCES,
                g.count(Lifecycle::Terminating),
            ),
            (catalogue::GROUP_TOTAL_INSTANCES, g.instances().count()),
        ];
        for (metric, v) in counts {
            store.put(&metric.key(&dims), now, v as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use bellows_core::group::Health;
    use bellows_core::ids::InstanceId;
    use bellows_core::stack::parse;
    use bellows_proxy::GroupSnapshot;

    use super::*;

    /// A stack whose alarms read every AWS metric the simulator can publish.
    fn stack() -> bellows_core::stack::Stack {
        let mut src = r#"
[stack]
name = "sim"
[target_groups.web]
port = 8000
[groups.web]
min = 1
max = 20
desired = 1
target_groups = ["web"]
[groups.web.launch]
command = ["bellows", "app", "echo"]
[simulation]
capacity = 100
"#
        .to_owned();
        let asg = r#"{ AutoScalingGroupName = "web" }"#;
        let tg = r#"{ TargetGroup = "web" }"#;
        let lb = r#"{ LoadBalancer = "sim" }"#;
        for (i, (m, dims)) in [
            (catalogue::CPU_UTILIZATION, asg),
            (catalogue::REQUEST_COUNT, tg),
            (catalogue::REQUEST_COUNT, lb),
            (catalogue::REQUEST_COUNT_PER_TARGET, tg),
            (catalogue::TARGET_RESPONSE_TIME, tg),
            (catalogue::TARGET_2XX, tg),
            (catalogue::ELB_5XX, tg),
            (catalogue::ELB_503, tg),
            (catalogue::REJECTED_CONNECTION_COUNT, tg),
            (catalogue::HEALTHY_HOST_COUNT, tg),
            (catalogue::UNHEALTHY_HOST_COUNT, tg),
            (catalogue::ACTIVE_CONNECTION_COUNT, lb),
            (catalogue::GROUP_DESIRED_CAPACITY, asg),
            (catalogue::GROUP_IN_SERVICE_INSTANCES, asg),
            (catalogue::GROUP_PENDING_INSTANCES, asg),
        ]
        .into_iter()
        .enumerate()
        {
            src += &format!(
                "[alarms.a{i}]\nnamespace = \"{}\"\nmetric = \"{}\"\ndimensions = {dims}\nperiod = \"10s\"\nevaluation_periods = 1\ncomparison = \">\"\nthreshold = 1e9\n",
                m.namespace, m.name
            );
        }
        parse(&src).unwrap_or_else(|d| panic!("{d:?}"))
    }

    fn instance(group: &str) -> InstanceView {
        InstanceView {
            id: InstanceId::parse("i-0123456789abcdef0").unwrap(),
            group: group.to_owned(),
            zone: "a".to_owned(),
            lifecycle: Lifecycle::InService,
            health: Health::Healthy,
            protected: false,
            private_ip: None,
            port: 8000,
            pid: None,
            launched_at: Time::from_millis(0),
            in_service_at: Some(Time::from_millis(0)),
            instance_type: "t3.micro".to_owned(),
            vcpu: 2.0,
            cpu_percent: Some(40.0),
            memory_percent: Some(10.0),
            memory_bytes: Some(1 << 20),
        }
    }

    /// The load balancer's counters after `n` requests to target group `web`.
    fn snapshot(n: u64) -> Snapshot {
        let counters: Vec<(&'static str, u64)> = [
            "request_count",
            "rejected_connections",
            "elb_5xx",
            "elb_503",
            "target_2xx",
        ]
        .into_iter()
        .map(|f| (f, n))
        .chain([("active_connections", 1)])
        .collect();
        Snapshot {
            load_balancer: "sim".to_owned(),
            listeners: vec![("http".to_owned(), counters.clone())],
            groups: vec![GroupSnapshot {
                name: "web".to_owned(),
                counters,
                healthy: 1,
                unhealthy: 0,
                response_count: n,
                response_sum_us: n * 1000,
                response_buckets: vec![n; bellows_proxy::metrics::BUCKETS_US.len()],
            }],
        }
    }

    #[test]
    fn each_load_balancer_made_through_the_endpoint_sums_its_own_listeners() {
        let mut snap = snapshot(0);
        let counters = snap.listeners[0].1.clone();
        snap.listeners = vec![
            ("shop-80".to_owned(), counters.clone()),
            ("shop-443".to_owned(), counters.clone()),
            ("admin-80".to_owned(), counters),
        ];
        let owners: BTreeMap<String, String> = [
            ("shop-80", "shop"),
            ("shop-443", "shop"),
            ("admin-80", "admin"),
        ]
        .into_iter()
        .map(|(l, b)| (l.to_owned(), b.to_owned()))
        .collect();
        let mut store = MetricStore::default();
        let mut deltas = Deltas::default();
        load_balancer(
            &mut store,
            &mut deltas,
            &snap,
            &owners,
            Time::from_millis(1000),
        );
        for (_, c) in &mut snap.listeners {
            for (field, v) in c.iter_mut() {
                if *field == "request_count" {
                    *v = 5;
                }
            }
        }
        let t = Time::from_millis(2000);
        load_balancer(&mut store, &mut deltas, &snap, &owners, t);
        let requests = |lb: &str| {
            store
                .latest(&catalogue::REQUEST_COUNT.key(&[("LoadBalancer", lb)]))
                .map(|(at, d)| (at, d.sum))
        };
        assert_eq!(
            requests("sim"),
            Some((t, 15.0)),
            "the stack's: every listener"
        );
        assert_eq!(requests("shop"), Some((t, 10.0)), "shop's two listeners");
        assert_eq!(requests("admin"), Some((t, 5.0)));
        let active = store
            .latest(&catalogue::ACTIVE_CONNECTION_COUNT.key(&[("LoadBalancer", "shop")]))
            .map(|(_, d)| d.sum);
        assert_eq!(active, Some(2.0), "gauges sum too");
    }

    #[test]
    fn the_node_publishes_every_series_the_simulator_publishes_for_the_same_stack() {
        let stack = stack();
        let simulated = bellows_core::sim::published(&stack).unwrap();
        // Every alarm above is one series the simulator feeds.
        assert_eq!(simulated.len(), stack.alarms.len(), "{simulated:#?}");
        let mut store = MetricStore::default();
        let mut deltas = Deltas::default();
        let groups: Vec<Group> = stack.groups.iter().map(Group::new).collect();
        let warmups = HashMap::new();
        for (second, n) in [(1, 0), (2, 10)] {
            let now = Time::from_millis(second * 1000);
            instances(&mut store, &[instance("web")], &warmups, now);
            super::groups(&mut store, groups.iter(), now);
            load_balancer(&mut store, &mut deltas, &snapshot(n), &BTreeMap::new(), now);
        }
        let published: Vec<&SeriesKey> = store.keys().collect();
        for key in &simulated {
            assert!(
                catalogue::lookup(key).is_some(),
                "the simulator publishes {key}, which is not in the catalogue"
            );
            assert!(
                published.contains(&key),
                "the simulator publishes {key}, the node does not"
            );
        }
        // And everything the node publishes itself is in the catalogue.
        for key in published {
            assert!(
                catalogue::lookup(key).is_some(),
                "{key} is not in the catalogue"
            );
        }
    }
}
