//! Target groups at run time: their targets, each with lock-free counters that the
//! request path reads and updates, and a health tracker that only the health check
//! task writes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use bellows_core::Time;
use bellows_core::ids::InstanceId;
use bellows_core::lb::health::{HealthTracker, Reason};
use bellows_core::lb::select::{Candidate, Selection, TargetState};
use bellows_core::stack::TargetGroupSpec;
use tokio::sync::Notify;

use crate::upstream::Upstream;

/// ALB's: no connection to a target within 10 s is a 504.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

use crate::metrics::{Histogram, TargetGroupCounters};

/// Marks a target's health `unused`, as ALB shows a target of a group no listener
/// forwards to.
pub(crate) fn set_unused(health: &mut HealthTracker) {
    health.state = TargetState::Unused;
    health.reason = Some(Reason {
        code: "Target.NotInUse".into(),
        description: "Target group is not configured to receive traffic from the load balancer"
            .into(),
    });
}

/// One registered target.
#[derive(Debug)]
pub struct Target {
    pub instance: InstanceId,
    pub addr: SocketAddr,
    pub zone: String,
    /// `http://ADDR`, ready to prefix a path.
    pub base_uri: String,
    state: AtomicU8,
    healthy_since_ms: AtomicU64,
    pub outstanding: AtomicU32,
    pub requests: AtomicU64,
    /// Its 5xx answers and failed exchanges, for anomaly mitigation.
    pub errors: AtomicU64,
    /// Its share under weighted_random, in thousandths (anomaly mitigation).
    pub weight_permille: AtomicU32,
    pub anomalous: AtomicBool,
    pub health: Mutex<HealthTracker>,
    pub removed: AtomicBool,
    /// A health check task runs for it (`health::start` starts at most one).
    pub checking: AtomicBool,
    pub registered_at: Time,
    max_connections: Option<u32>,
    /// Idle keep-alive connections to the target, most recently used last.
    idle: Mutex<Vec<Upstream>>,
}

/// Idle connections kept per target; more are closed when they come back.
const MAX_IDLE: usize = 512;

fn encode(s: TargetState) -> u8 {
    match s {
        TargetState::Initial => 0,
        TargetState::Healthy => 1,
        TargetState::Unhealthy => 2,
        TargetState::Draining => 3,
        TargetState::Unused => 4,
    }
}

fn decode(b: u8) -> TargetState {
    match b {
        0 => TargetState::Initial,
        1 => TargetState::Healthy,
        2 => TargetState::Unhealthy,
        3 => TargetState::Draining,
        _ => TargetState::Unused,
    }
}

impl Target {
    pub fn new(
        instance: InstanceId,
        addr: SocketAddr,
        zone: String,
        now: Time,
        used: bool,
        max_connections: Option<u32>,
    ) -> Target {
        let mut health = HealthTracker::default();
        if !used {
            set_unused(&mut health);
        }
        Target {
            instance,
            addr,
            zone,
            base_uri: format!("http://{addr}"),
            state: AtomicU8::new(encode(health.state)),
            healthy_since_ms: AtomicU64::new(0),
            outstanding: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            weight_permille: AtomicU32::new(1000),
            anomalous: AtomicBool::new(false),
            health: Mutex::new(health),
            removed: AtomicBool::new(false),
            checking: AtomicBool::new(false),
            registered_at: now,
            max_connections,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A connection to send a request on: an idle pooled one that is still open, or a
    /// new one. The flag says whether it was reused (and so may have gone stale).
    pub async fn connection(&self) -> Result<(Upstream, bool), String> {
        loop {
            let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(up) = pooled else { break };
            if up.is_reusable() {
                return Ok((up, true));
            }
        }
        let up = crate::clock::timeout(CONNECT_TIMEOUT, Upstream::connect(self.addr))
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        Ok((up, false))
    }

    /// Returns a connection whose exchange is over to the pool.
    pub fn put_back(&self, up: Upstream) {
        if self.removed.load(Relaxed) {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(up);
        }
    }

    /// Closes every idle connection (the target is going away).
    pub fn close_idle(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub fn set_state(&self, s: TargetState, now: Time) {
        if s == TargetState::Healthy {
            self.healthy_since_ms.store(now.as_millis(), Relaxed);
        }
        self.state.store(encode(s), Relaxed);
    }

    pub fn load_state(&self) -> TargetState {
        decode(self.state.load(Relaxed))
    }
}

impl Candidate for Target {
    fn state(&self) -> TargetState {
        self.load_state()
    }
    fn outstanding(&self) -> u32 {
        self.outstanding.load(Relaxed)
    }
    fn healthy_since(&self) -> Option<Time> {
        match self.healthy_since_ms.load(Relaxed) {
            0 => None,
            ms => Some(Time::from_millis(ms)),
        }
    }
    fn at_capacity(&self) -> bool {
        self.max_connections
            .is_some_and(|m| self.outstanding.load(Relaxed) >= m)
    }
    fn weight(&self) -> f64 {
        f64::from(self.weight_permille.load(Relaxed)) / 1000.0
    }
}

/// A target group and its current targets.
#[derive(Debug)]
pub struct TargetGroup {
    pub spec: ArcSwap<TargetGroupSpec>,
    pub targets: ArcSwap<Vec<Arc<Target>>>,
    pub counter: AtomicU64,
    /// Wakes requests queued for a free target when one finishes.
    pub freed: Notify,
    pub queued: AtomicU32,
    pub counters: TargetGroupCounters,
    pub response_time: Histogram,
    /// Whether any listener forwards to it; targets of an unused group are `unused`
    /// and have no health checks. An apply may change it (`Proxy::commit`).
    pub used: AtomicBool,
    /// A group behind this target group scales from zero: with no target at all, a
    /// request asks for an instance and waits for it.
    pub cold_start: AtomicBool,
    /// Removed from the load balancer: its tasks (anomaly watcher, health checks) end.
    pub retired: AtomicBool,
    /// Wakes requests waiting for a cold start when a target turns healthy.
    pub became_healthy: Notify,
    /// When a cold start was last asked for (ms), so a burst asks once.
    pub cold_start_asked: AtomicU64,
    /// Wakes health checkers when the spec changes, so a new interval counts at once.
    pub reconfigured: Notify,
}

impl TargetGroup {
    pub fn new(spec: TargetGroupSpec, used: bool) -> TargetGroup {
        TargetGroup {
            spec: ArcSwap::from_pointee(spec),
            targets: ArcSwap::from_pointee(Vec::new()),
            counter: AtomicU64::new(0),
            freed: Notify::new(),
            queued: AtomicU32::new(0),
            counters: TargetGroupCounters::default(),
            response_time: Histogram::default(),
            used: AtomicBool::new(used),
            cold_start: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            became_healthy: Notify::new(),
            cold_start_asked: AtomicU64::new(0),
            reconfigured: Notify::new(),
        }
    }

    pub fn selection(&self) -> Selection {
        let spec = self.spec.load();
        Selection {
            algorithm: spec.algorithm,
            slow_start: spec.slow_start,
        }
    }

    pub fn add(&self, target: Arc<Target>) {
        self.targets.rcu(|list| {
            let mut list: Vec<Arc<Target>> = list
                .iter()
                .filter(|t| t.instance != target.instance)
                .cloned()
                .collect();
            list.push(target.clone());
            list
        });
    }

    pub fn remove(&self, instance: &InstanceId) -> Option<Arc<Target>> {
        let found = self.find(instance);
        if let Some(t) = &found {
            t.removed.store(true, Relaxed);
            t.close_idle();
            self.targets.rcu(|list| {
                list.iter()
                    .filter(|t| &t.instance != instance)
                    .cloned()
                    .collect::<Vec<_>>()
            });
            // Queued requests may have waited for this one; let them look again.
            self.freed.notify_waiters();
        }
        found
    }

    pub fn find(&self, instance: &InstanceId) -> Option<Arc<Target>> {
        self.targets
            .load()
            .iter()
            .find(|t| &t.instance == instance)
            .cloned()
    }

    pub fn count(&self, state: TargetState) -> usize {
        self.targets
            .load()
            .iter()
            .filter(|t| t.load_state() == state)
            .count()
    }
}

/// Held while a request (or WebSocket) is in flight to a target.
#[derive(Debug)]
pub struct InFlight {
    pub target: Arc<Target>,
    group: Arc<TargetGroup>,
}

impl InFlight {
    pub fn new(target: Arc<Target>, group: Arc<TargetGroup>) -> InFlight {
        target.outstanding.fetch_add(1, Relaxed);
        target.requests.fetch_add(1, Relaxed);
        InFlight { target, group }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.target.outstanding.fetch_sub(1, Relaxed);
        if self.group.queued.load(Relaxed) > 0 {
            self.group.freed.notify_one();
        }
    }
}
