//! The data plane of bellows: what ALB does, on real sockets.
//!
//! A [`Proxy`] binds the stack's listeners and forwards each request through explicit
//! phases (see `forward.rs`): ingress check, rule match, target selection (with
//! stickiness and the per-target queue), forwarding with one safe retry, logging. Every
//! decision is made by `bellows_core::lb`; this crate only moves bytes, checks health
//! and counts. It tells the node what it observed through [`ProxyEvent`]s.

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
use std::sync::atomic::Ordering::Relaxed;
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

/// A listener at run time: its settings and its live ingress list.
#[derive(Debug)]
pub(crate) struct Listener {
    pub spec: ArcSwap<ListenerSpec>,
    pub ingress: ArcSwap<Vec<Cidr>>,
    pub counters: ListenerCounters,
    pub port: u16,
    /// The port as an X-Forwarded-Port value.
    pub port_value: http::HeaderValue,
    /// The last few distinct client addresses the allow-list turned away, newest last:
    /// an investigation tells by them which revoked rule used to admit the clients.
    pub rejected_sources: std::sync::Mutex<std::collections::VecDeque<std::net::IpAddr>>,
}

/// How many distinct turned-away addresses a listener remembers.
pub(crate) const REJECTED_SOURCES: usize = 16;

#[derive(Debug)]
pub(crate) struct Shared {
    /// The load balancer's name (`[stack] load_balancer`): its metrics' `LoadBalancer`
    /// dimension and the access log's `elb` field.
    pub load_balancer: String,
    pub listeners: HashMap<String, Arc<Listener>>,
    pub groups: HashMap<String, Arc<TargetGroup>>,
    pub events: mpsc::UnboundedSender<ProxyEvent>,
    pub access_log: Option<AccessLog>,
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
        let used: Vec<&str> = stack
            .listeners
            .iter()
            .flat_map(|l| l.target_groups())
            .collect();
        let groups = stack
            .target_groups
            .iter()
            .map(|tg| {
                let mut rt = TargetGroup::new(tg.clone(), used.contains(&tg.name.as_str()));
                rt.cold_start = stack
                    .groups
                    .iter()
                    .any(|g| g.scale_from_zero && g.min == 0 && g.target_groups.contains(&tg.name));
                (tg.name.clone(), Arc::new(rt))
            })
            .collect();
        let log = match access_log {
            Some(p) if stack.listeners.iter().any(|l| l.access_log) => {
                Some(AccessLog::open(p).map_err(|source| ProxyError::AccessLog {
                    path: p.display().to_string(),
                    source,
                })?)
            }
            _ => None,
        };
        let mut bound = Vec::new();
        let mut listeners = HashMap::new();
        for spec in &stack.listeners {
            let socket = tokio::net::TcpListener::bind(spec.address)
                .await
                .map_err(|source| ProxyError::Bind {
                    name: spec.name.clone(),
                    address: spec.address,
                    source,
                })?;
            let port = socket
                .local_addr()
                .map(|a| a.port())
                .unwrap_or(spec.address.port());
            let l = Arc::new(Listener {
                ingress: ArcSwap::from_pointee(spec.ingress.clone()),
                spec: ArcSwap::from_pointee(spec.clone()),
                counters: ListenerCounters::default(),
                port,
                port_value: http::HeaderValue::from(port),
                rejected_sources: std::sync::Mutex::default(),
            });
            listeners.insert(spec.name.clone(), l.clone());
            bound.push((socket, l));
        }
        let shared = Arc::new(Shared {
            load_balancer: stack.load_balancer.clone(),
            listeners,
            groups,
            events,
            access_log: log,
        });
        tokio::spawn(watch::tick_clock());
        for tg in shared.groups.values() {
            tokio::spawn(anomaly::watch(tg.clone()));
        }
        for (socket, l) in bound {
            tokio::spawn(listener::serve(socket, l, shared.clone()));
        }
        Ok(Proxy { shared })
    }

    /// Takes a new stack's listener and target group settings at once: rules, health
    /// checks, algorithms, stickiness, timeouts. Requests in flight finish under the
    /// settings they started with; the next ones use the new. A listener's ingress list
    /// is replaced only when named in `new_ingress` (the file changed it), so changes made
    /// at run time survive an apply that does not touch them. Listeners and target
    /// groups are neither added nor removed here.
    pub fn reconfigure(&self, stack: &Stack, new_ingress: &[String]) {
        for spec in &stack.target_groups {
            if let Some(tg) = self.shared.groups.get(&spec.name) {
                tg.spec.store(Arc::new(spec.clone()));
                tg.reconfigured.notify_waiters();
            }
        }
        for spec in &stack.listeners {
            if let Some(l) = self.shared.listeners.get(&spec.name) {
                l.spec.store(Arc::new(spec.clone()));
                if new_ingress.contains(&spec.name) {
                    l.ingress.store(Arc::new(spec.ingress.clone()));
                }
            }
        }
    }

    /// The address each listener is bound to (useful with port 0).
    pub fn listener_addrs(&self) -> Vec<(String, SocketAddr)> {
        let mut out: Vec<(String, SocketAddr)> = self
            .shared
            .listeners
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
        let Some(tg) = self.shared.groups.get(target_group) else {
            return;
        };
        let max = tg.spec.load().max_connections;
        let target = Arc::new(Target::new(
            instance.clone(),
            addr,
            zone.to_owned(),
            now(),
            tg.used,
            max,
        ));
        tg.add(target.clone());
        if tg.used {
            tokio::spawn(health::watch(
                target_group.to_owned(),
                tg.clone(),
                target,
                self.shared.events.clone(),
            ));
        }
    }

    /// Starts deregistering an instance from every target group: it gets no new
    /// requests, and leaves when idle or when the deregistration delay runs out. Sends
    /// `Drained` then. Returns false when the instance was in no target group.
    pub fn deregister(&self, instance: &InstanceId) -> bool {
        let mut draining = Vec::new();
        for (name, tg) in &self.shared.groups {
            if let Some(t) = tg.find(instance) {
                let before = t.load_state();
                {
                    let mut h = t.health.lock().unwrap_or_else(|e| e.into_inner());
                    h.drain();
                    let _ = self.shared.events.send(ProxyEvent::TargetHealth {
                        target_group: name.clone(),
                        instance: instance.clone(),
                        from: before,
                        to: TargetState::Draining,
                        reason: h.reason.clone(),
                    });
                }
                t.set_state(TargetState::Draining, now());
                draining.push((tg.clone(), t, tg.spec.load().deregistration_delay.to_std()));
            }
        }
        if draining.is_empty() {
            return false;
        }
        let events = self.shared.events.clone();
        let instance = instance.clone();
        tokio::spawn(async move {
            let start = clock::instant();
            // Each group lets go when the target is idle or its own delay has passed.
            while draining.iter().any(|(_, t, delay)| {
                t.outstanding.load(Relaxed) > 0 && clock::since(start) < *delay
            }) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let timed_out = draining
                .iter()
                .any(|(_, t, _)| t.outstanding.load(Relaxed) > 0);
            for (tg, t, _) in &draining {
                tg.remove(&t.instance);
            }
            let _ = events.send(ProxyEvent::Drained {
                instance,
                timed_out,
            });
        });
        true
    }

    /// Removes an instance at once (its process is gone; nothing to drain).
    pub fn remove(&self, instance: &InstanceId) {
        for tg in self.shared.groups.values() {
            tg.remove(instance);
        }
    }

    /// Adds a CIDR to a listener's ingress allow-list; false if it was there already.
    pub fn authorize(&self, listener: &str, cidr: Cidr) -> Result<bool, ProxyError> {
        let l = self
            .shared
            .listeners
            .get(listener)
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
            .get(listener)
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
        for (name, l) in &self.shared.listeners {
            let recent = l.rejected_sources.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(recent.iter().map(|ip| (name.clone(), *ip)));
        }
        out.sort();
        out
    }

    pub fn targets(&self) -> Vec<TargetView> {
        let mut out = Vec::new();
        for (name, tg) in &self.shared.groups {
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
        let mut names: Vec<&String> = self.shared.listeners.keys().collect();
        names.sort();
        for name in names {
            let l = &self.shared.listeners[name];
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
        let mut names: Vec<&String> = self.shared.groups.keys().collect();
        names.sort();
        for name in names {
            let tg = &self.shared.groups[name];
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
            .iter()
            .map(|(n, l)| (n.clone(), l.counters.values()))
            .collect();
        listeners.sort_by(|a, b| a.0.cmp(&b.0));
        let mut groups: Vec<GroupSnapshot> = self
            .shared
            .groups
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
        let tg = self.shared.groups.get(target_group)?;
        let (counts, _) = tg.response_time.snapshot();
        quantile(&counts, q).map(|us| us as f64 / 1e6)
    }
}
