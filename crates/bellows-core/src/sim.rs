//! The simulator: a recorded trace of requests per second replayed through the very
//! same group state machine, metric store, alarms and policies as `bellows up` runs,
//! on a virtual clock, against a model of the instances (`sim/model.rs`).
//!
//! Each virtual second: instances whose start-up is over come into service
//! (`Group::on_running`), the second's requests are spread over the instances in
//! service as the target group's algorithm would, the model gives what was served,
//! rejected and how slowly, the metrics the live node publishes go into the
//! `MetricStore`, the `Scaler` evaluates alarms and policies, and `Group::plan`'s
//! commands become virtual instances that start after the modelled start-up time.
//! Nothing here reads a clock or a file: the caller passes the trace as counts.

pub mod elasticity;
pub mod model;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::group::{Command, Group};
use crate::ids::{IdGen, InstanceId};
use crate::lb::select::Algorithm;
use crate::metrics::{MetricStore, SeriesKey, catalogue};
use crate::scaling::{GroupView, Outcome, Scaler, WarmMean, is_warming, warming_in};
use crate::schedule::ZoneTable;
use crate::stack::Stack;
use crate::{Duration, Time};

pub use elasticity::Elasticity;
pub use model::Model;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error("the stack has no group `{0}` to simulate")]
    NoSuchGroup(String),
    #[error("the stack has no group to simulate")]
    NoGroup,
    #[error("the trace window is empty")]
    EmptyTrace,
    #[error("--scale must be a positive number, not {0}")]
    BadScale(f64),
}

/// What the caller chooses beyond the stack file.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Every count of the trace is multiplied by this.
    pub scale: f64,
    /// Overrides `[simulation] seed`.
    pub seed: Option<u64>,
    /// The trace's second the window starts at: the virtual clock starts there, so
    /// that times of day (scheduled actions, the predictive policy's days) follow the
    /// trace's. Second 0 is midnight UTC.
    pub start: u64,
    /// Offsets of the named time zones of the stack's scheduled actions over the
    /// window, looked up by the caller (the core reads no time zone data).
    pub zones: ZoneTable,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            scale: 1.0,
            seed: None,
            start: 0,
            zones: ZoneTable::default(),
        }
    }
}

/// One second of the run, as the timeline CSV shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Second {
    /// The trace's second.
    pub t: u64,
    /// Requests that arrived.
    pub requests: f64,
    pub served: f64,
    pub rejected: f64,
    /// Estimated p99 latency of the second's requests, in seconds (infinite when no
    /// instance was in service to take them).
    pub p99: f64,
    /// Mean CPU of the instances in service, in percent.
    pub cpu: f64,
    /// SPEC demand: the fewest instances that would serve the second within the SLO.
    pub demand: u32,
    pub desired: u32,
    pub in_service: u32,
    pub pending: u32,
    /// Instances billed this second (pending, in service and draining).
    pub billed: u32,
    /// Requests per second the instances in service can serve at 100% CPU.
    pub capacity: f64,
    pub over_slo: bool,
}

/// A change of desired capacity made by a policy or scheduled action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Action {
    pub t: u64,
    pub policy: String,
    pub from: u32,
    pub to: u32,
}

/// The outcome of a whole run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    pub seconds: u64,
    pub requests: f64,
    pub served: f64,
    pub rejected: f64,
    pub seconds_over_slo: u64,
    /// p99 latency over all requests served, in seconds (from per-second estimates).
    pub p99: f64,
    pub instance_hours: f64,
    pub cost: f64,
    pub max_in_service: u32,
    pub launches: u64,
    pub actions: Vec<Action>,
    pub elasticity: Elasticity,
}

/// Runs a stack against a trace; `on_second` sees every second as it is simulated.
pub fn run(
    stack: &Stack,
    trace: &[u32],
    opts: &Options,
    on_second: &mut dyn FnMut(&Second),
) -> Result<Summary, SimError> {
    let mut sim = Sim::new(stack, opts)?;
    if trace.is_empty() {
        return Err(SimError::EmptyTrace);
    }
    for (i, count) in trace.iter().enumerate() {
        let row = sim.second(opts.start + i as u64, f64::from(*count) * opts.scale);
        on_second(&row);
    }
    Ok(sim.finish())
}

/// The series the simulator publishes for this stack: those its alarms and policies
/// read, under the names and dimensions the live node publishes them (applications'
/// own metrics included). The node's tests check that it publishes each of them.
pub fn published(stack: &Stack) -> Result<Vec<SeriesKey>, SimError> {
    let sim = Sim::new(stack, &Options::default())?;
    Ok(sim.feeds.into_iter().map(|(_, key)| key).collect())
}

/// Where a virtual instance is in its life.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Starting { ready_at: u64 },
    Serving { since: u64 },
    Draining { until: u64 },
}

#[derive(Clone, Debug)]
struct Virtual {
    id: InstanceId,
    phase: Phase,
    backlog: f64,
    /// Smoothed arrivals a second (negative until the first second in service).
    rate: f64,
}

/// Which metric the stack's alarms and policies read, so only those are published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Feed {
    GroupCpu,
    RequestCount,
    RequestCountPerTarget,
    TargetResponseTime,
    Target2xx,
    Elb5xx,
    HealthyHosts,
    UnhealthyHosts,
    ActiveConnections,
    Desired,
    InService,
    Pending,
    /// An application metric of concurrent users (`ActiveUsers` and the like).
    AppActive,
    /// An application metric of turned-away requests (`RejectedConnections`).
    AppRejected,
}

struct Sim {
    model: Model,
    group: String,
    groups: BTreeMap<String, Group>,
    warmup: Duration,
    algorithm: Algorithm,
    deregistration_s: u64,
    startup_s: f64,
    spread_s: f64,
    crash_per_s: f64,
    price_per_hour: f64,
    scaler: Scaler,
    zones: ZoneTable,
    store: MetricStore,
    feeds: Vec<(Feed, SeriesKey)>,
    ids: IdGen,
    rng: IdGen,
    instances: Vec<Virtual>,
    /// Scratch space for the load balancer's split, reused every second.
    share: Vec<f64>,
    dirty: bool,
    // Totals.
    summary: Summary,
    billed_s: u64,
    spec: elasticity::Accumulator,
    /// Requests served per p99 bucket (see `bucket`).
    latency: Vec<f64>,
}

/// Buckets of p99 latency: 1 ms to ~1000 s, 5% apart.
const BUCKETS: usize = 300;

fn bucket(s: f64) -> usize {
    if s.is_nan() || s <= 0.001 {
        return 0;
    }
    if s.is_infinite() {
        return BUCKETS - 1;
    }
    (((s / 0.001).ln() / 1.05f64.ln()) as usize + 1).min(BUCKETS - 1)
}

fn bucket_upper(b: usize) -> f64 {
    0.001 * 1.05f64.powi(b as i32)
}

fn at(t: u64) -> Time {
    Time::from_millis(t * 1000)
}

struct View<'a> {
    groups: &'a mut BTreeMap<String, Group>,
    group: &'a str,
    warmup: Duration,
    zones: &'a ZoneTable,
}

impl GroupView for View<'_> {
    fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(name)
    }
    fn group_mut(&mut self, name: &str) -> Option<&mut Group> {
        self.groups.get_mut(name)
    }
    fn warming(&self, group: &str, now: Time) -> u32 {
        match self.groups.get(group) {
            Some(g) if group == self.group => warming_in(g, self.warmup, now),
            Some(g) => warming_in(g, Duration::ZERO, now),
            None => 0,
        }
    }
    fn utc_offset(&self, zone: &str, t: Time) -> Option<i32> {
        self.zones.offset(zone, t)
    }
}

impl Sim {
    fn new(stack: &Stack, opts: &Options) -> Result<Sim, SimError> {
        if !(opts.scale > 0.0 && opts.scale.is_finite()) {
            return Err(SimError::BadScale(opts.scale));
        }
        let s = &stack.simulation;
        let spec = match &s.group {
            Some(name) => stack
                .group(name)
                .ok_or_else(|| SimError::NoSuchGroup(name.clone()))?,
            None => stack.groups.first().ok_or(SimError::NoGroup)?,
        };
        let tg = spec
            .target_groups
            .first()
            .and_then(|name| stack.target_group(name));
        let tg_name = tg.map_or(spec.name.as_str(), |t| t.name.as_str());
        // Default start-up: the template's boot delay, a second to start the command,
        // and one health check interval to pass the first check.
        let startup = s.startup.unwrap_or_else(|| {
            Duration::from_millis(
                spec.launch.boot_delay.as_millis()
                    + 1000
                    + tg.map_or(0, |t| t.health_check.interval.as_millis()),
            )
        });
        // Without a limit of its own, a request waits at most the listener's idle
        // timeout (ALB's 60 s) before the load balancer gives up with a 504.
        let idle = stack
            .listeners
            .first()
            .map_or(60.0, |l| l.idle_timeout.as_secs_f64());
        let max_in_flight = s
            .max_in_flight
            .map(f64::from)
            .or_else(|| {
                tg.and_then(|t| t.max_connections)
                    .map(|m| f64::from(m) + f64::from(tg.map_or(0, |t| t.queue_size)))
            })
            .or(Some(s.capacity * idle));
        let model = Model {
            capacity: s.capacity,
            service_s: s.service_time.as_secs_f64(),
            slo_s: s.slo.as_secs_f64(),
            max_in_flight,
        };
        let warmup = stack
            .instance_warmups()
            .get(&spec.name)
            .copied()
            .unwrap_or_default();
        let policies: Vec<_> = stack
            .policies
            .iter()
            .filter(|p| p.group == spec.name)
            .cloned()
            .collect();
        let scheduled: Vec<_> = stack
            .scheduled
            .iter()
            .filter(|a| a.group == spec.name)
            .cloned()
            .collect();
        let scaler = Scaler::new(stack.alarms.clone(), policies, scheduled, at(opts.start));
        let feeds = feeds(&scaler, &stack.load_balancer, &spec.name, tg_name);
        let seed = opts.seed.unwrap_or(s.seed);
        let mut groups = BTreeMap::new();
        let mut group = Group::new(spec);
        group.set_load_balanced(stack.load_balanced(spec));
        groups.insert(spec.name.clone(), group);
        let mut sim = Sim {
            model,
            group: spec.name.clone(),
            groups,
            warmup,
            algorithm: tg.map_or(Algorithm::RoundRobin, |t| t.algorithm),
            deregistration_s: tg.map_or(0, |t| t.deregistration_delay.as_millis() / 1000),
            startup_s: startup.as_secs_f64(),
            spread_s: s.startup_spread.as_secs_f64(),
            crash_per_s: s.crash_rate / 3600.0,
            price_per_hour: s.price_per_hour,
            scaler,
            zones: opts.zones.clone(),
            store: MetricStore::default(),
            feeds,
            ids: IdGen::new(seed),
            rng: IdGen::new(seed ^ 0x5EED_5EED_5EED_5EED),
            instances: Vec::new(),
            share: Vec::new(),
            dirty: true,
            summary: Summary::default(),
            billed_s: 0,
            spec: elasticity::Accumulator::default(),
            latency: vec![0.0; BUCKETS],
        };
        // The run starts with the group's desired capacity already in service, as if
        // the stack had been up before the trace's first second.
        sim.plan(opts.start);
        for v in &mut sim.instances {
            v.phase = Phase::Serving { since: opts.start };
        }
        let g = sim.groups.get_mut(&sim.group).expect("inserted above");
        for v in &sim.instances {
            g.on_running(&v.id, at(opts.start));
        }
        g.take_events();
        Ok(sim)
    }

    /// A uniform draw in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Carries out the group's commands.
    fn plan(&mut self, t: u64) {
        let Some(g) = self.groups.get_mut(&self.group) else {
            return;
        };
        let commands = g.plan(at(t), &mut self.ids);
        let live = g.live() as u32;
        // Launch backoff may hold a launch back: look again next second.
        self.dirty = live != g.capacity().desired;
        for c in commands {
            match c {
                Command::Launch { instance, .. } => {
                    let jitter = if self.spread_s > 0.0 {
                        (self.uniform() * 2.0 - 1.0) * self.spread_s
                    } else {
                        0.0
                    };
                    let ready_at = t + (self.startup_s + jitter).max(0.0).round() as u64;
                    self.summary.launches += 1;
                    self.instances.push(Virtual {
                        id: instance,
                        phase: Phase::Starting { ready_at },
                        backlog: 0.0,
                        rate: -1.0,
                    });
                }
                Command::Terminate { instance, .. } => {
                    if let Some(v) = self.instances.iter_mut().find(|v| v.id == instance) {
                        // A booting instance stops at once; a serving one drains first.
                        let until = match v.phase {
                            Phase::Starting { .. } => t,
                            _ => t + self.deregistration_s,
                        };
                        v.phase = Phase::Draining { until };
                        self.dirty = true;
                    }
                }
            }
        }
        if let Some(g) = self.groups.get_mut(&self.group) {
            g.take_events();
        }
    }

    fn second(&mut self, t: u64, requests: f64) -> Second {
        let now = at(t);
        let g = self
            .groups
            .get_mut(&self.group)
            .expect("the simulated group");
        // Instances come into service, finish draining, or crash.
        let mut i = 0;
        while i < self.instances.len() {
            let v = &mut self.instances[i];
            match v.phase {
                Phase::Starting { ready_at } if ready_at <= t => {
                    v.phase = Phase::Serving { since: t };
                    g.on_running(&v.id, now);
                    self.dirty = true;
                }
                Phase::Draining { until } if until <= t || v.backlog <= 0.0 => {
                    g.on_exited(&v.id, now, "stopped");
                    self.instances.swap_remove(i);
                    continue;
                }
                Phase::Serving { .. } if self.crash_per_s > 0.0 => {
                    let draw = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                    if draw < self.crash_per_s {
                        g.on_exited(&v.id, now, "crashed (simulated)");
                        self.instances.swap_remove(i);
                        self.dirty = true;
                        continue;
                    }
                }
                _ => {}
            }
            i += 1;
        }

        // The load balancer spreads the second's requests over the serving instances.
        self.share.clear();
        let mut serving = 0u32;
        let mut total_backlog = 0.0;
        for v in &self.instances {
            if let Phase::Serving { .. } = v.phase {
                serving += 1;
                total_backlog += v.backlog;
            }
        }
        let mut row = Second {
            t,
            requests,
            ..Second::default()
        };
        let (mut lat_sum, mut p99, mut cpu_sum) = (0.0, 0.0f64, 0.0);
        // The group's CPU as the node publishes it, warming instances left out.
        let mut group_cpu = WarmMean::default();
        let mut in_flight = 0.0;
        if serving == 0 {
            row.rejected = requests;
            p99 = if requests > 0.0 { f64::INFINITY } else { 0.0 };
        } else {
            let even = requests / f64::from(serving);
            // Least outstanding requests evens out the queues (water-filling); with no
            // queue anywhere it is the same as an even split.
            let level =
                if self.algorithm == Algorithm::LeastOutstandingRequests && total_backlog > 0.0 {
                    water_level(
                        self.instances.iter().filter_map(|v| match v.phase {
                            Phase::Serving { .. } => Some(v.backlog),
                            _ => None,
                        }),
                        requests,
                        &mut self.share,
                    )
                } else {
                    None
                };
            for v in &mut self.instances {
                let arrivals = match v.phase {
                    Phase::Serving { .. } => level.map_or(even, |l| (l - v.backlog).max(0.0)),
                    Phase::Draining { .. } => 0.0,
                    Phase::Starting { .. } => continue,
                };
                let s = self.model.second(&mut v.backlog, &mut v.rate, arrivals);
                row.served += s.served;
                row.rejected += s.rejected;
                in_flight += s.in_flight;
                if let Phase::Serving { since } = v.phase {
                    lat_sum += s.mean_s * s.served;
                    if arrivals > 0.0 {
                        p99 = p99.max(s.p99_s);
                    }
                    cpu_sum += s.cpu;
                    group_cpu.add(s.cpu, is_warming(at(since), self.warmup, at(t)));
                }
            }
        }
        let cap = g.capacity();
        row.p99 = p99;
        row.cpu = if serving > 0 {
            cpu_sum / f64::from(serving)
        } else {
            0.0
        };
        row.demand = self.model.demand(requests);
        row.desired = cap.desired;
        row.in_service = serving;
        row.pending = self
            .instances
            .iter()
            .filter(|v| matches!(v.phase, Phase::Starting { .. }))
            .count() as u32;
        row.billed = self.instances.len() as u32;
        row.capacity = f64::from(serving) * self.model.capacity;
        row.over_slo = p99 > self.model.slo_s || (requests > 0.0 && row.rejected > 0.01 * requests);

        // The metrics the live node would publish, those the stack reads.
        for (feed, key) in &self.feeds {
            let value = match feed {
                Feed::GroupCpu => match group_cpu.mean() {
                    Some(cpu) => cpu,
                    None => continue,
                },
                Feed::RequestCount => requests,
                Feed::RequestCountPerTarget => requests / f64::from(serving.max(1)),
                Feed::TargetResponseTime if row.served > 0.0 => lat_sum / row.served,
                Feed::TargetResponseTime => continue,
                Feed::Target2xx => row.served,
                Feed::Elb5xx | Feed::AppRejected => row.rejected,
                Feed::HealthyHosts => f64::from(serving),
                Feed::UnhealthyHosts => 0.0,
                Feed::ActiveConnections | Feed::AppActive => in_flight,
                Feed::Desired => f64::from(cap.desired),
                Feed::InService => f64::from(serving),
                Feed::Pending => f64::from(row.pending),
            };
            self.store.put(key, now, value);
        }
        let outcomes = self.scaler.evaluate(
            &self.store,
            &mut View {
                groups: &mut self.groups,
                group: &self.group,
                warmup: self.warmup,
                zones: &self.zones,
            },
            now,
        );
        for o in outcomes {
            if let Outcome::Scaled {
                policy, from, to, ..
            } = o
            {
                self.summary.actions.push(Action {
                    t,
                    policy,
                    from,
                    to,
                });
                self.dirty = true;
            }
        }
        if self.dirty {
            self.plan(t);
        }
        if t.is_multiple_of(3600) {
            self.store.expire(now);
        }

        // Totals.
        let s = &mut self.summary;
        s.seconds += 1;
        s.requests += requests;
        s.served += row.served;
        s.rejected += row.rejected;
        s.seconds_over_slo += u64::from(row.over_slo);
        s.max_in_service = s.max_in_service.max(serving);
        self.billed_s += u64::from(row.billed);
        self.latency[bucket(p99)] += row.served;
        self.spec.add(row.demand, serving);
        row
    }

    fn finish(mut self) -> Summary {
        let s = &mut self.summary;
        s.instance_hours = self.billed_s as f64 / 3600.0;
        s.cost = s.instance_hours * self.price_per_hour;
        s.elasticity = self.spec.finish();
        let total: f64 = self.latency.iter().sum();
        let mut seen = 0.0;
        for (b, n) in self.latency.iter().enumerate() {
            seen += n;
            if total > 0.0 && seen >= 0.99 * total {
                s.p99 = bucket_upper(b);
                break;
            }
        }
        self.summary
    }
}

/// The level every serving instance's queue is filled to when `requests` are poured
/// into the shortest queues first.
fn water_level(
    backlogs: impl Iterator<Item = f64>,
    requests: f64,
    buf: &mut Vec<f64>,
) -> Option<f64> {
    buf.clear();
    buf.extend(backlogs);
    buf.sort_by(f64::total_cmp);
    let mut poured = 0.0;
    for i in 0..buf.len() {
        let next = buf.get(i + 1).copied().unwrap_or(f64::INFINITY);
        let width = (i + 1) as f64;
        let need = (next - buf[i]) * width;
        if poured + need >= requests {
            return Some(buf[i] + (requests - poured) / width);
        }
        poured += need;
        // Raise the first i + 1 queues to the next one's level.
        buf[i] = next;
    }
    None
}

/// The series the stack's alarms and policies read that the simulator can feed, with
/// what feeds each.
fn feeds(scaler: &Scaler, lb: &str, group: &str, tg: &str) -> Vec<(Feed, SeriesKey)> {
    let mut wanted: Vec<SeriesKey> = scaler
        .alarms
        .values()
        .map(|a| a.spec.metric.clone())
        .collect();
    for p in scaler.policies() {
        match &p.kind {
            crate::scaling::PolicyKind::Hpa(h) => {
                wanted.push(crate::scaling::tracked_series(&h.metric, &p.group).0)
            }
            crate::scaling::PolicyKind::Kpa(k) => wanted.push(request_count(&k.target_group)),
            crate::scaling::PolicyKind::Predictive(pr) => {
                wanted.push(request_count(&pr.target_group))
            }
            _ => {}
        }
    }
    wanted.sort();
    wanted.dedup();
    let mut out = Vec::new();
    for key in wanted {
        let dims = &key.dimensions;
        let dim = |k: &str| dims.get(k).map(String::as_str);
        let for_group = dim("AutoScalingGroupName") == Some(group);
        let for_tg = dim("TargetGroup").is_none_or(|t| t == tg)
            && dim("LoadBalancer").is_none_or(|l| l == lb)
            && (dim("TargetGroup").is_some() || dim("LoadBalancer").is_some());
        let is = |m: &catalogue::Metric| m.is(&key);
        let ns = key.namespace.as_str();
        let name = key.name.as_str();
        let feed = if is(&catalogue::CPU_UTILIZATION) && for_group && dims.len() == 1 {
            Feed::GroupCpu
        } else if is(&catalogue::REQUEST_COUNT) && for_tg {
            Feed::RequestCount
        } else if is(&catalogue::REQUEST_COUNT_PER_TARGET) && for_tg {
            Feed::RequestCountPerTarget
        } else if is(&catalogue::TARGET_RESPONSE_TIME) && for_tg {
            Feed::TargetResponseTime
        } else if is(&catalogue::TARGET_2XX) && for_tg {
            Feed::Target2xx
        } else if (is(&catalogue::ELB_5XX)
            || is(&catalogue::ELB_503)
            || is(&catalogue::REJECTED_CONNECTION_COUNT))
            && for_tg
        {
            Feed::Elb5xx
        } else if is(&catalogue::HEALTHY_HOST_COUNT) && for_tg {
            Feed::HealthyHosts
        } else if is(&catalogue::UNHEALTHY_HOST_COUNT) && for_tg {
            Feed::UnhealthyHosts
        } else if is(&catalogue::ACTIVE_CONNECTION_COUNT) && for_tg {
            Feed::ActiveConnections
        } else if is(&catalogue::GROUP_DESIRED_CAPACITY) && for_group {
            Feed::Desired
        } else if is(&catalogue::GROUP_IN_SERVICE_INSTANCES) && for_group {
            Feed::InService
        } else if is(&catalogue::GROUP_PENDING_INSTANCES) && for_group {
            Feed::Pending
        } else if !ns.starts_with("AWS/") && name.contains("Rejected") {
            Feed::AppRejected
        } else if !ns.starts_with("AWS/") && (name.contains("Active") || name.contains("Users")) {
            Feed::AppActive
        } else {
            continue;
        };
        out.push((feed, key));
    }
    out
}

fn request_count(tg: &str) -> SeriesKey {
    catalogue::REQUEST_COUNT.key(&[("TargetGroup", tg)])
}

#[cfg(test)]
mod tests;
