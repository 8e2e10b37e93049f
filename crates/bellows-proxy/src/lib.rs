//! The data plane of bellows: what ALB does, on real sockets.
//!
//! A [`Proxy`] binds the stack's listeners and forwards each request through explicit
//! phases (see `forward.rs`): ingress check, rule match, target selection (with
//! stickiness and the per-target queue), forwarding with one safe retry, logging. Every
//! decision is made by `bellows_core::lb`; this crate only moves bytes, checks health
//! and counts. It tells the node what it observed through [`ProxyEvent`]s.
//!
//! Listeners and target groups come and go with the stack: [`Proxy::prepare`] binds
//! what a new stack adds or moves (and fails, changing nothing, when it cannot), and
//! [`Proxy::commit`] swaps the new maps in, stopping what the stack no longer has.

#![forbid(unsafe_code)]

mod access_log;
mod anomaly;
mod clock;
mod forward;
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
mod http1;
mod listener;
pub mod metrics;
pub mod targets;
mod tunnel;
mod upstream;
mod watch;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::time::Duration;

use arc_swap::ArcSwap;
use bellows_core::ids::InstanceId;
use bellows_core::lb::cidr::Cidr;
use bellows_core::lb::health::Reason;
use bellows_core::lb::select::TargetState;
use bellows_core::stack::{ListenerSpec, Stack};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::access_log::AccessLog;
use crate::clock::now;
use crate::metrics::{ListenerCounters, quantile, sample};
use crate::targets::{Target, TargetGroup};

/// What the proxy tells the node.
#[derive(Debug, Clone, PartialEq)]
pub enum ProxyEvent {
    TargetHealth {
        target_group: String,
        instance: InstanceId,
        from: TargetState,
        to: TargetState,
        reason: Option<Reason>,
    },
    /// A request arrived for a target group with no target, whose group scales from zero.
    ColdStart { target_group: String },
    /// Every target group has let go of the instance: it may be stopped.
    Drained {
        instance: InstanceId,
        timed_out: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("listener `{name}` cannot listen on {address}: {source}")]
    Bind {
        name: String,
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("no listener named `{0}`")]
    NoListener(String),
    #[error("access log {path}: {source}")]
    AccessLog {
        path: String,
        source: std::io::Error,
    },
}

/// A listener at run time: its settings and its live ingress list. One that moves to
/// another address is a new `Listener` sharing the old one's counters and ingress.
#[derive(Debug)]
pub(crate) struct Listener {
    pub spec: ArcSwap<ListenerSpec>,
    pub ingress: ArcSwap<Vec<Cidr>>,
    pub counters: Arc<ListenerCounters>,
    pub port: u16,
    /// The port as an X-Forwarded-Port value.
    pub port_value: http::HeaderValue,
    /// The last few distinct client addresses the allow-list turned away, newest last:
    /// an investigation tells by them which revoked rule used to admit the clients.
    pub rejected_sources: Arc<std::sync::Mutex<std::collections::VecDeque<std::net::IpAddr>>>,
    /// Set once the listener is removed or moved: it stops accepting, and its
    /// connections close once their request in flight is answered.
    pub stop: tokio::sync::watch::Sender<bool>,
}

impl Listener {
    pub fn stopped(&self) -> bool {
        *self.stop.borrow()
    }
}

/// How many distinct turned-away addresses a listener remembers.
pub(crate) const REJECTED_SOURCES: usize = 16;

#[derive(Debug)]
pub(crate) struct Shared {
    /// The load balancer's name (`[stack] load_balancer`): its metrics' `LoadBalancer`
    /// dimension and the access log's `elb` field.
    pub load_balancer: String,
    /// Replaced whole by `Proxy::commit`; the request path only loads them.
    pub listeners: ArcSwap<HashMap<String, Arc<Listener>>>,
    pub groups: ArcSwap<HashMap<String, Arc<TargetGroup>>>,
    pub events: mpsc::UnboundedSender<ProxyEvent>,
    /// Opened when a listener first asks for access logs, then kept.
    pub access_log: std::sync::OnceLock<AccessLog>,
    access_log_path: Option<std::path::PathBuf>,
}

/// What [`Proxy::prepare`] bound for a new stack, ready for [`Proxy::commit`].
/// Dropped instead, it closes the sockets again and nothing has changed.
#[derive(Debug)]
pub struct Prepared {
    /// Listeners that are new or move to another address, by name, with their socket.
    bound: Vec<(String, tokio::net::TcpListener)>,
    access_log: Option<AccessLog>,
}

/// How many connections a listener's socket queues before they are accepted.
const BACKLOG: u32 = 1024;

/// Binds a listener's address (port 0: any free port).
fn bind(spec: &ListenerSpec) -> Result<tokio::net::TcpListener, ProxyError> {
    let fail = |source| ProxyError::Bind {
        name: spec.name.clone(),
        address: spec.address,
        source,
    };
    let socket = if spec.address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(fail)?;
    socket.set_reuseaddr(true).map_err(fail)?;
    socket.bind(spec.address).map_err(fail)?;
    socket.listen(BACKLOG).map_err(fail)
}

/// The running load balancer.
#[derive(Debug, Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

/// A target as `bellows targets` shows it, like `describe-target-health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetView {
    pub target_group: String,
    pub instance: InstanceId,
    pub address: String,
    pub zone: String,
    pub state: TargetState,
    pub reason: Option<Reason>,
    pub outstanding: u32,
    pub requests: u64,
    /// With anomaly mitigation: `normal` or `anomalous`, and the share it gets (0.05-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
}

/// Counter values at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub load_balancer: String,
    pub listeners: Vec<(String, Vec<(&'static str, u64)>)>,
    pub groups: Vec<GroupSnapshot>,
}

#[derive(Debug, Clone)]
pub struct GroupSnapshot {
    pub name: String,
    pub counters: Vec<(&'static str, u64)>,
    pub healthy: u32,
    pub unhealthy: u32,
    pub response_count: u64,
    pub response_sum_us: u64,
    /// The response time histogram's counts per bucket (`metrics::BUCKETS_US`).
    pub response_buckets: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListenerView {
    pub name: String,
    pub address: String,
    /// The port AWS callers know it by (`aws_port`, else the bound one).
    pub port: u16,
    pub ingress: Vec<Cidr>,
    pub target_groups: Vec<String>,
}

impl Proxy {
    /// Binds every listener of `stack` and starts serving. Access logs go to
    /// `access_log` when a listener asks for them.
    pub async fn start(
        stack: &Stack,
        access_log: Option<&Path>,
        events: mpsc::UnboundedSender<ProxyEvent>,
    ) -> Result<Proxy, ProxyError> {
        let proxy = Proxy {
            shared: Arc::new(Shared {
                load_balancer: stack.load_balancer.clone(),
                listeners: ArcSwap::from_pointee(HashMap::new()),
                groups: ArcSwap::from_pointee(HashMap::new()),
                events,
                access_log: std::sync::OnceLock::new(),
                access_log_path: access_log.map(Path::to_path_buf),
            }),
        };
        let prepared = proxy.prepare(stack)?;
        tokio::spawn(watch::tick_clock());
        proxy.commit(prepared, stack, &[]);
        Ok(proxy)
    }

    /// The first half of taking a new stack: binds the listeners it adds and those whose
    /// address changes, and opens the access log if a listener first asks for it. On an
    /// error nothing has changed (the sockets bound so far close again).
    pub fn prepare(&self, stack: &Stack) -> Result<Prepared, ProxyError> {
        let current = self.shared.listeners.load();
        let mut bound = Vec::new();
        for spec in &stack.listeners {
            let moved = current
                .get(&spec.name)
                .is_none_or(|l| l.spec.load().address != spec.address);
            if moved {
                bound.push((spec.name.clone(), bind(spec)?));
            }
        }
        let access_log = match &self.shared.access_log_path {
            Some(p)
                if self.shared.access_log.get().is_none()
                    && stack.listeners.iter().any(|l| l.access_log) =>
            {
                Some(AccessLog::open(p).map_err(|source| ProxyError::AccessLog {
                    path: p.display().to_string(),
                    source,
                })?)
            }
            _ => None,
        };
        Ok(Prepared { bound, access_log })
    }

    /// The second half: takes `stack`'s listeners and target groups at once. Settings
    /// (rules, health checks, algorithms, stickiness, timeouts) are swapped in: requests
    /// in flight finish under the settings they started with, the next ones use the
    /// new. New listeners start accepting on the sockets `prepared` holds; a listener
    /// removed, or moved to another address, stops accepting and closes its socket, and
    /// its connections close once their request in flight is answered. A listener that
    /// stays keeps its socket and every connection. A new target group starts empty; a
    /// removed one lets go of its targets (their checks stop); one that starts or stops
    /// receiving traffic has its targets' health checks started (from `initial`) or
    /// stopped (`unused`). A listener's ingress list is replaced only when named in
    /// `new_ingress` (the file changed it) or new, so changes made at run time survive
    /// an apply that does not touch them.
    pub fn commit(&self, prepared: Prepared, stack: &Stack, new_ingress: &[String]) {
        if let Some(log) = prepared.access_log {
            let _ = self.shared.access_log.set(log);
        }
        let used = stack.used_target_groups();
        let old_groups = self.shared.groups.load_full();
        let mut groups = HashMap::new();
        for spec in &stack.target_groups {
            let is_used = used.contains(spec.name.as_str());
            let cold_start = stack
                .groups
                .iter()
                .any(|g| g.wakes_from_zero_for(&spec.name));
            let tg = match old_groups.get(&spec.name) {
                Some(tg) => {
                    tg.spec.store(Arc::new(spec.clone()));
                    tg.reconfigured.notify_waiters();
                    tg.clone()
                }
                None => {
                    let tg = Arc::new(TargetGroup::new(spec.clone(), is_used));
                    tokio::spawn(anomaly::watch(tg.clone()));
                    tg
                }
            };
            tg.cold_start.store(cold_start, Relaxed);
            groups.insert(spec.name.clone(), tg);
        }
        // New target groups first, so that no listener forwards to one not there yet.
        let mut both = (*old_groups).clone();
        both.extend(groups.iter().map(|(n, tg)| (n.clone(), tg.clone())));
        self.shared.groups.store(Arc::new(both));

        let old_listeners = self.shared.listeners.load_full();
        let mut sockets: HashMap<String, tokio::net::TcpListener> =
            prepared.bound.into_iter().collect();
        let mut listeners = HashMap::new();
        let mut stopped = Vec::new();
        let mut started = Vec::new();
        for spec in &stack.listeners {
            let old = old_listeners.get(&spec.name);
            let Some(socket) = sockets.remove(&spec.name) else {
                // Stays where it is.
                if let Some(l) = old {
                    l.spec.store(Arc::new(spec.clone()));
                    if new_ingress.contains(&spec.name) {
                        l.ingress.store(Arc::new(spec.ingress.clone()));
                    }
                    listeners.insert(spec.name.clone(), l.clone());
                }
                continue;
            };
            let port = socket
                .local_addr()
                .map_or(spec.address.port(), |a| a.port());
            let ingress = match old {
                Some(l) if !new_ingress.contains(&spec.name) => l.ingress.load_full(),
                _ => Arc::new(spec.ingress.clone()),
            };
            let l = Arc::new(Listener {
                spec: ArcSwap::from_pointee(spec.clone()),
                ingress: ArcSwap::new(ingress),
                counters: old.map(|l| l.counters.clone()).unwrap_or_default(),
                port,
                port_value: http::HeaderValue::from(port),
                rejected_sources: old.map(|l| l.rejected_sources.clone()).unwrap_or_default(),
                stop: tokio::sync::watch::channel(false).0,
            });
            if let Some(old) = old {
                stopped.push(old.clone());
            }
            listeners.insert(spec.name.clone(), l.clone());
            started.push((socket, l));
        }
        stopped.extend(
            old_listeners
                .iter()
                .filter(|(name, _)| !listeners.contains_key(*name))
                .map(|(_, l)| l.clone()),
        );
        self.shared.listeners.store(Arc::new(listeners));
        for (socket, l) in started {
            tokio::spawn(listener::serve(socket, l, self.shared.clone()));
        }
        for l in stopped {
            l.stop.send_replace(true);
        }

        // Whether each group that stays is used changes now that no listener's
        // settings send it traffic it would not take.
        for (name, tg) in &groups {
            let is_used = used.contains(name.as_str());
            if tg.used.swap(is_used, AcqRel) != is_used {
                self.set_used(name, tg, is_used);
            }
        }
        self.shared.groups.store(Arc::new(groups.clone()));
        for (name, tg) in old_groups.iter() {
            if !groups.contains_key(name) {
                retire(tg);
            }
        }
    }

    /// A target group started (`used`) or stopped receiving traffic: its targets are
    /// checked from `initial`, or marked `unused` and no longer checked.
    fn set_used(&self, name: &str, tg: &Arc<TargetGroup>, used: bool) {
        for t in tg.targets.load().iter() {
            let change = {
                let mut h = t.health.lock().unwrap_or_else(|e| e.into_inner());
                let before = h.state;
                if before == TargetState::Draining || (before == TargetState::Unused) != used {
                    continue;
                }
                if used {
                    *h = bellows_core::lb::health::HealthTracker::default();
                } else {
                    targets::set_unused(&mut h);
                }
                t.set_state(h.state, now());
                (before, h.state, h.reason.clone())
            };
            let _ = self.shared.events.send(ProxyEvent::TargetHealth {
                target_group: name.to_owned(),
                instance: t.instance.clone(),
                from: change.0,
                to: change.1,
                reason: change.2,
            });
            if used {
                health::start(
                    name.to_owned(),
                    tg.clone(),
                    t.clone(),
                    self.shared.events.clone(),
                );
            }
        }
        tg.reconfigured.notify_waiters();
    }

    /// Takes a new stack at once (`prepare`, then `commit`); on an error nothing changed.
    pub fn reconfigure(&self, stack: &Stack, new_ingress: &[String]) -> Result<(), ProxyError> {
        let prepared = self.prepare(stack)?;
        self.commit(prepared, stack, new_ingress);
        Ok(())
    }

    /// The address each listener is bound to (useful with port 0).
    pub fn listener_addrs(&self) -> Vec<(String, SocketAddr)> {
        let mut out: Vec<(String, SocketAddr)> = self
            .shared
            .listeners
            .load()
            .iter()
            .map(|(name, l)| {
                let a = l.spec.load().address;
                (name.clone(), SocketAddr::new(a.ip(), l.port))
            })
            .collect();
        out.sort();
        out
    }

    /// Registers an instance in a target group; it gets traffic once it passes a
    /// health check.
    pub fn register(
        &self,
        target_group: &str,
        instance: &InstanceId,
        addr: SocketAddr,
        zone: &str,
    ) {
        let Some(tg) = self.shared.groups.load().get(target_group).cloned() else {
            return;
        };
        let max = tg.spec.load().max_connections;
        let used = tg.used.load(Acquire);
        let target = Arc::new(Target::new(
            instance.clone(),
            addr,
            zone.to_owned(),
            now(),
            used,
            max,
        ));
        tg.add(target.clone());
        if used {
            health::start(
                target_group.to_owned(),
                tg,
                target,
                self.shared.events.clone(),
            );
        }
    }

    /// Whether an instance is a target of `target_group` (draining or not).
    pub fn is_registered(&self, target_group: &str, instance: &InstanceId) -> bool {
        self.shared
            .groups
            .load()
            .get(target_group)
            .is_some_and(|tg| tg.find(instance).is_some())
    }

    /// Starts deregistering an instance from every target group: it gets no new
    /// requests, and leaves when idle or when the deregistration delay runs out. Sends
    /// `Drained` then. Returns false when the instance was in no target group.
    pub fn deregister(&self, instance: &InstanceId) -> bool {
        self.drain(None, instance)
    }

    /// Deregisters an instance from one target group only (its group no longer names
    /// it), draining as `deregister` does; the instance goes on running, so no
    /// `Drained` is sent. Returns false when it was not a target there.
    pub fn deregister_from(&self, target_group: &str, instance: &InstanceId) -> bool {
        self.drain(Some(target_group), instance)
    }

    /// Drains `instance` in `only` that target group, or in every one (then `Drained`).
    fn drain(&self, only: Option<&str>, instance: &InstanceId) -> bool {
        let mut draining = Vec::new();
        for (name, tg) in self.shared.groups.load().iter() {
            if only.is_some_and(|o| o != name) {
                continue;
            }
            if let Some(t) = tg.find(instance) {
                {
                    let mut h = t.health.lock().unwrap_or_else(|e| e.into_inner());
                    let before = h.state;
                    if before != TargetState::Draining {
                        h.drain();
                        t.set_state(TargetState::Draining, now());
                        let _ = self.shared.events.send(ProxyEvent::TargetHealth {
                            target_group: name.clone(),
                            instance: instance.clone(),
                            from: before,
                            to: TargetState::Draining,
                            reason: h.reason.clone(),
                        });
                    }
                }
                draining.push((tg.clone(), t, tg.spec.load().deregistration_delay.to_std()));
            }
        }
        if draining.is_empty() {
            return false;
        }
        let notify = only.is_none();
        let events = self.shared.events.clone();
        let instance = instance.clone();
        tokio::spawn(async move {
            let start = clock::instant();
            // Each group lets go when the target is idle or its own delay has passed.
            while draining.iter().any(|(_, t, delay)| {
                t.outstanding.load(Relaxed) > 0 && clock::since(start) < *delay
            }) {
                clock::sleep(Duration::from_millis(50)).await;
            }
            let timed_out = draining
                .iter()
                .any(|(_, t, _)| t.outstanding.load(Relaxed) > 0);
            for (tg, t, _) in &draining {
                tg.remove(&t.instance);
            }
            if notify {
                let _ = events.send(ProxyEvent::Drained {
                    instance,
                    timed_out,
                });
            }
        });
        true
    }

    /// Removes an instance at once (its process is gone; nothing to drain).
    pub fn remove(&self, instance: &InstanceId) {
        for tg in self.shared.groups.load().values() {
            tg.remove(instance);
        }
    }

    /// Adds a CIDR to a listener's ingress allow-list; false if it was there already.
    pub fn authorize(&self, listener: &str, cidr: Cidr) -> Result<bool, ProxyError> {
        let l = self
            .shared
            .listeners
            .load()
            .get(listener)
            .cloned()
            .ok_or_else(|| ProxyError::NoListener(listener.to_owned()))?;
        let present = l.ingress.load().contains(&cidr);
        if !present {
            l.ingress.rcu(|list| {
                let mut list = (**list).clone();
                list.push(cidr);
                list
            });
        }
        Ok(!present)
    }

    /// Removes a CIDR from a listener's allow-list; false if it was not there.
    pub fn revoke(&self, listener: &str, cidr: Cidr) -> Result<bool, ProxyError> {
        let l = self
            .shared
            .listeners
            .load()
            .get(listener)
            .cloned()
            .ok_or_else(|| ProxyError::NoListener(listener.to_owned()))?;
        let present = l.ingress.load().contains(&cidr);
        if present {
            l.ingress.rcu(|list| {
                list.iter()
                    .filter(|c| **c != cidr)
                    .copied()
                    .collect::<Vec<_>>()
            });
        }
        Ok(present)
    }

    pub fn listeners(&self) -> Vec<ListenerView> {
        let mut out: Vec<ListenerView> = self
            .shared
            .listeners
            .load()
            .iter()
            .map(|(name, l)| {
                let spec = l.spec.load();
                let mut tgs: Vec<String> = spec.target_groups().map(str::to_owned).collect();
                tgs.dedup();
                ListenerView {
                    name: name.clone(),
                    address: SocketAddr::new(spec.address.ip(), l.port).to_string(),
                    port: spec.aws_port.unwrap_or(l.port),
                    ingress: l.ingress.load().to_vec(),
                    target_groups: tgs,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The client addresses each listener's allow-list turned away lately, as
    /// (listener, address): what an investigation matches against revoked rules.
    pub fn rejected_sources(&self) -> Vec<(String, std::net::IpAddr)> {
        let mut out = Vec::new();
        for (name, l) in self.shared.listeners.load().iter() {
            let recent = l.rejected_sources.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(recent.iter().map(|ip| (name.clone(), *ip)));
        }
        out.sort();
        out
    }

    pub fn targets(&self) -> Vec<TargetView> {
        let mut out = Vec::new();
        for (name, tg) in self.shared.groups.load().iter() {
            for t in tg.targets.load().iter() {
                let h = t.health.lock().unwrap_or_else(|e| e.into_inner());
                out.push(TargetView {
                    target_group: name.clone(),
                    instance: t.instance.clone(),
                    address: t.addr.to_string(),
                    zone: t.zone.clone(),
                    state: t.load_state(),
                    reason: h.reason.clone(),
                    outstanding: t.outstanding.load(Relaxed),
                    requests: t.requests.load(Relaxed),
                    anomaly: tg.spec.load().anomaly_mitigation.then(|| {
                        if t.anomalous.load(Relaxed) {
                            "anomalous"
                        } else {
                            "normal"
                        }
                        .to_owned()
                    }),
                    weight: tg
                        .spec
                        .load()
                        .anomaly_mitigation
                        .then(|| f64::from(t.weight_permille.load(Relaxed)) / 1000.0),
                });
            }
        }
        out.sort_by(|a, b| (&a.target_group, &a.instance).cmp(&(&b.target_group, &b.instance)));
        out
    }

    /// Every counter in Prometheus' text format.
    pub fn render_prometheus(&self, out: &mut String) {
        let lb = self.shared.load_balancer.as_str();
        let listeners = self.shared.listeners.load();
        let mut names: Vec<&String> = listeners.keys().collect();
        names.sort();
        for name in names {
            let l = &listeners[name];
            for (field, v) in l.counters.values() {
                let metric = if field == "active_connections" {
                    "bellows_lb_active_connections".to_owned()
                } else {
                    format!("bellows_lb_{field}_total")
                };
                sample(
                    out,
                    &metric,
                    &[("load_balancer", lb), ("listener", name)],
                    v,
                );
            }
        }
        let groups = self.shared.groups.load();
        let mut names: Vec<&String> = groups.keys().collect();
        names.sort();
        for name in names {
            let tg = &groups[name];
            for (field, v) in tg.counters.values() {
                sample(
                    out,
                    &format!("bellows_target_group_{field}_total"),
                    &[("load_balancer", lb), ("target_group", name)],
                    v,
                );
            }
            sample(
                out,
                "bellows_target_group_healthy_hosts",
                &[("target_group", name)],
                tg.count(TargetState::Healthy),
            );
            sample(
                out,
                "bellows_target_group_unhealthy_hosts",
                &[("target_group", name)],
                tg.count(TargetState::Unhealthy),
            );
            let (counts, sum_us) = tg.response_time.snapshot();
            let mut cumulative = 0;
            for (i, c) in counts.iter().enumerate() {
                cumulative += c;
                let le = metrics::BUCKETS_US
                    .get(i)
                    .map_or("+Inf".to_owned(), |us| format!("{}", *us as f64 / 1e6));
                if *c > 0 || i == counts.len() - 1 {
                    sample(
                        out,
                        "bellows_target_response_time_seconds_bucket",
                        &[("target_group", name), ("le", &le)],
                        cumulative,
                    );
                }
            }
            sample(
                out,
                "bellows_target_response_time_seconds_sum",
                &[("target_group", name)],
                sum_us as f64 / 1e6,
            );
            sample(
                out,
                "bellows_target_response_time_seconds_count",
                &[("target_group", name)],
                cumulative,
            );
        }
    }

    /// Every counter's current value, for the metric store to take deltas of.
    pub fn snapshot(&self) -> Snapshot {
        let mut listeners: Vec<(String, Vec<(&'static str, u64)>)> = self
            .shared
            .listeners
            .load()
            .iter()
            .map(|(n, l)| (n.clone(), l.counters.values()))
            .collect();
        listeners.sort_by(|a, b| a.0.cmp(&b.0));
        let mut groups: Vec<GroupSnapshot> = self
            .shared
            .groups
            .load()
            .iter()
            .map(|(n, tg)| {
                let (buckets, sum_us) = tg.response_time.snapshot();
                let count = buckets.iter().sum();
                GroupSnapshot {
                    name: n.clone(),
                    counters: tg.counters.values(),
                    healthy: tg.count(TargetState::Healthy) as u32,
                    unhealthy: tg.count(TargetState::Unhealthy) as u32,
                    response_count: count,
                    response_sum_us: sum_us,
                    response_buckets: buckets,
                }
            })
            .collect();
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Snapshot {
            load_balancer: self.shared.load_balancer.clone(),
            listeners,
            groups,
        }
    }

    /// A target group's response time percentile so far, in seconds.
    pub fn response_time_quantile(&self, target_group: &str, q: f64) -> Option<f64> {
        let tg = self.shared.groups.load().get(target_group)?.clone();
        let (counts, _) = tg.response_time.snapshot();
        quantile(&counts, q).map(|us| us as f64 / 1e6)
    }
}

/// A target group the stack no longer has: its targets leave (their health checks end),
/// its anomaly watcher ends, and requests waiting for one of its targets look again.
/// Requests in flight to it finish.
fn retire(tg: &TargetGroup) {
    tg.retired.store(true, Release);
    tg.cold_start.store(false, Relaxed);
    let targets = tg.targets.swap(Arc::new(Vec::new()));
    for t in targets.iter() {
        t.removed.store(true, Relaxed);
        t.close_idle();
    }
    tg.reconfigured.notify_waiters();
    tg.freed.notify_waiters();
    tg.became_healthy.notify_waiters();
}

#[cfg(test)]
mod tests;
