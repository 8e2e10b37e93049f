//! The node's control loop: one task owns the groups, the provider and the store, and
//! reacts to ticks, process events and API calls, in that one place.
//!
//! This file is the loop itself: starting, each second, the groups' commands, the
//! processes' and the load balancer's events, and stopping. What the loop does for an
//! API call is in `node/calls.rs`, what it shows in `node/views.rs`, `bellows apply` in
//! `node/apply.rs`, investigations and incidents in `node/incidents.rs`; the metrics it
//! publishes each second are made in `publish.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use std::collections::VecDeque;

use bellows_core::Time;
use bellows_core::alarm::Transition;
use bellows_core::event::{AuditRecord, Event};
use bellows_core::group::Health;
use bellows_core::group::{Command, Group, Lifecycle};
use bellows_core::ids::{IdGen, InstanceId};
use bellows_core::lb::select::TargetState;
use bellows_core::metrics::MetricStore;
use bellows_core::scaling::{GroupView as ScalerGroups, Outcome, Scaler};
use bellows_core::stack::Stack;
use bellows_proxy::{Proxy, ProxyError, ProxyEvent};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::api::{self, Actor, ApiError};
use crate::cgroup::Cgroups;
use crate::clock;
use crate::provider::{ProcEvent, Provider};
use crate::publish::{self, Deltas};
use crate::store::{Store, StoreError};

mod alarms;
mod apply;
mod calls;
mod incidents;
mod launch;
mod resources;
#[cfg(test)]
mod tests;
mod views;

/// How a node is started.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub stack: Stack,
    pub state_dir: PathBuf,
    /// The bellows binary, for the shim and for commands that start with `bellows`.
    pub exe: PathBuf,
    /// The bearer token that every change through the API needs.
    pub token: String,
    /// Set instance types as cgroup limits where the host allows.
    pub cgroups: bool,
    /// The region the AWS endpoint serves and its ARNs name.
    pub aws_region: String,
    /// The key pairs the AWS endpoint accepts (see `aws::derived_credential`).
    pub aws_credentials: Vec<bellows_aws::Credential>,
    /// Started with `bellows up --empty`: the stack's control address, state directory
    /// and instance network are the command line's, and a stack file applied later may
    /// name others.
    pub empty: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
}

struct Node {
    stack: Stack,
    groups: BTreeMap<String, Group>,
    /// Zones in an outage (`bellows zone fail`), for every group, those `apply` adds too.
    zones_out: BTreeSet<String>,
    owner: HashMap<InstanceId, String>,
    ids: IdGen,
    provider: Provider,
    proxy: Proxy,
    /// Groups an apply removed whose instances are still stopping, with their last
    /// spec; they leave `groups` once no instance is left (`forget_deleted_groups`).
    deleting: BTreeMap<String, bellows_core::stack::GroupSpec>,
    /// Started empty (`NodeOptions::empty`).
    started_empty: bool,
    /// Instances being deregistered before they are stopped: their stop timeout.
    draining: HashMap<InstanceId, Duration>,
    /// Shutting down: instances stop at once, without draining.
    stopping: bool,
    store: Store,
    started: Time,
    state_dir: PathBuf,
    control: std::net::SocketAddr,
    cgroups: bool,
    metrics: MetricStore,
    deltas: Deltas,
    /// The load balancer made through the AWS endpoint that each of its listeners
    /// belongs to, for their per-load-balancer metrics.
    listener_lbs: BTreeMap<String, String>,
    scaler: Scaler,
    /// Per group: how long a new instance is left out of the group's aggregate metrics.
    warmups: HashMap<String, Duration>,
    /// The newest transitions of each alarm, newest last.
    alarm_history: HashMap<String, VecDeque<Transition>>,
    /// Per-instance tokens that may put custom metrics (and do nothing else).
    instance_tokens: HashMap<String, InstanceId>,
    token: String,
    /// Each instance's metadata endpoint (and in a namespace its instance face).
    metadata: HashMap<InstanceId, Vec<tokio::task::JoinHandle<()>>>,
    /// What an instance in a network namespace reaches of bellows on its veth's host
    /// end: the AWS endpoint and putting its metrics (`api::instance_face`).
    instance_face: axum::Router,
    /// Instances' temporary credentials (their metadata endpoints hand them out).
    sessions: std::sync::Arc<crate::sessions::Sessions>,
    /// The region the AWS endpoint serves, which instances are told.
    aws_region: String,
    /// DynamoDB's tables, for `bellows tables` (the AWS face writes them).
    tables: std::sync::Arc<crate::tables::Tables>,
    /// What DynamoDB calls consumed, published each second.
    dynamo_metrics: std::sync::Arc<crate::tables::DynamoMetrics>,
    /// Every recorded event with its sequence number, for the API's event stream.
    events: broadcast::Sender<(i64, Event)>,
    /// What the AWS endpoint created (VPCs, subnets, launch templates, ...).
    resources: crate::resources::Resources,
    /// The stack the node was started with (or last `bellows apply`), without what the
    /// AWS resource records add to it.
    base: Stack,
}

/// Runs the stack until `shutdown` completes, then stops every instance and returns.
pub async fn run(
    opts: NodeOptions,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let now = clock::now();
    let mut store = Store::open(&opts.state_dir.join("state.db"))?;
    let orphaned = store.close_orphaned_activities(now)?;
    if orphaned > 0 {
        tracing::info!(
            count = orphaned,
            "closed activities a previous run left in progress"
        );
    }
    let cgroups = if opts.cgroups {
        match Cgroups::detect() {
            Ok(c) => Some(c),
            Err(reason) => {
                tracing::info!(%reason, "instance types are measured but not enforced");
                None
            }
        }
    } else {
        None
    };
    let (proc_tx, mut proc_rx) = mpsc::unbounded_channel();
    let (proxy_tx, mut proxy_rx) = mpsc::unbounded_channel();
    // What the AWS endpoint made in earlier runs runs again: the stack is the base stack
    // and the records, derived before anything starts.
    let resources =
        crate::resources::Resources::open(&opts.state_dir.join("state.db"), &opts.stack.name)?;
    let base = opts.stack.clone();
    let derived = match crate::derive::derive(&base, &resources) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "the AWS resources do not make a stack: running the base stack alone");
            base.clone()
        }
    };
    let proxy = Proxy::start(&derived, Some(&opts.state_dir.join("access.log")), proxy_tx).await?;
    for (name, addr) in proxy.listener_addrs() {
        tracing::info!(listener = %name, url = %format!("http://{addr}/"), "load balancer listening");
    }
    let (call_tx, mut call_rx) = mpsc::channel(256);
    let enforced = cgroups.is_some();
    let control = listener.local_addr()?;
    let provider = Provider::new(
        opts.exe.clone(),
        &opts.state_dir,
        opts.stack.instance_network,
        opts.stack.namespace_network,
        control,
        cgroups,
        proc_tx,
    )?;
    let (stop_api, api_stopped) = oneshot::channel::<()>();
    let (events, _) = broadcast::channel(1024);
    let tables = std::sync::Arc::new(
        crate::tables::Tables::open(&opts.state_dir.join("dynamodb.db"))
            .map_err(|e| std::io::Error::other(format!("dynamodb.db: {e}")))?,
    );
    let dynamo_metrics = std::sync::Arc::new(crate::tables::DynamoMetrics::default());
    let sessions = std::sync::Arc::new(crate::sessions::Sessions::default());
    let aws = crate::aws::AwsFace::new(
        call_tx.clone(),
        opts.token.clone(),
        &opts.aws_region,
        &opts.stack.name,
        &opts.stack.load_balancer,
        opts.aws_credentials.clone(),
        crate::aws::DataPlane {
            tables: tables.clone(),
            dynamo_metrics: dynamo_metrics.clone(),
            sessions: sessions.clone(),
        },
    );
    let aws = std::sync::Arc::new(aws);
    let api_state = api::ApiState::new(call_tx, opts.token.clone(), events.clone());
    let instance_face = api::instance_face(api_state.clone(), crate::aws::router(aws.clone()));
    let router = api::router(api_state).merge(crate::aws::router(aws));
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = api_stopped.await;
            })
            .await
    });

    let seed = now.as_millis() ^ (u64::from(std::process::id()) << 32);
    // Alarms put or deleted through the AWS endpoint in an earlier run are kept.
    let mut stack = derived;
    stack.alarms = store.restored_alarms(&stack)?;
    let scaler_alarms = stack.alarms.clone();
    let scaler_policies = stack.policies.clone();
    let scaler_scheduled = stack.scheduled.clone();
    let warmups = warmups(&stack);
    let mut metrics = MetricStore::default();
    metrics.set_aliases(crate::derive::dimension_aliases(&resources));
    tokio::spawn(crate::outbox::run(opts.state_dir.join("state.db")));
    let mut groups = BTreeMap::new();
    for g in &stack.groups {
        let mut group = store.restored_group(g, now)?;
        group.set_load_balanced(stack.load_balanced(g));
        groups.insert(g.name.clone(), group);
    }
    let mut node = Node {
        groups,
        stack,
        zones_out: BTreeSet::new(),
        owner: HashMap::new(),
        ids: IdGen::new(seed),
        provider,
        proxy,
        deleting: BTreeMap::new(),
        started_empty: opts.empty,
        draining: HashMap::new(),
        stopping: false,
        store,
        started: now,
        metrics,
        deltas: Deltas::default(),
        listener_lbs: crate::derive::listener_load_balancers(&resources),
        scaler: Scaler::new(scaler_alarms, scaler_policies, scaler_scheduled, now),
        warmups,
        alarm_history: HashMap::new(),
        instance_tokens: HashMap::new(),
        token: opts.token.clone(),
        metadata: HashMap::new(),
        instance_face,
        sessions,
        aws_region: opts.aws_region.clone(),
        tables,
        dynamo_metrics,
        events,
        resources,
        base,
        state_dir: opts.state_dir,
        control,
        cgroups: enforced,
    };
    let started = serde_json::json!({
        "pid": std::process::id(),
        "groups": node.stack.groups.iter().map(|g| (g.name.clone(), g.desired)).collect::<BTreeMap<_, _>>(),
        "listeners": node.proxy.listener_addrs().into_iter().map(|(n, a)| (n, a.to_string())).collect::<BTreeMap<_, _>>(),
    });
    node.audit(
        &Actor::bellows(),
        "StartStack",
        format!("stack/{}", node.stack.name),
        serde_json::Value::Null,
        started,
        Ok(()),
    );
    node.close_open_incidents("the run that opened it stopped", false, now);
    node.step();
    let mut tick = clock::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => node.second(),
            Some(event) = proc_rx.recv() => node.on_proc(event),
            Some(event) = proxy_rx.recv() => node.on_proxy(event),
            Some(call) = call_rx.recv() => node.on_call(call),
        }
        node.step();
    }
    node.stop(&mut proc_rx).await;
    let _ = stop_api.send(());
    let _ = server.await;
    Ok(())
}

impl Node {
    /// Asks every group what to do now, does it, and records what changed.
    fn step(&mut self) {
        let now = clock::now();
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in names {
            let commands = match self.groups.get_mut(&name) {
                Some(g) => g.plan(now, &mut self.ids),
                None => continue,
            };
            for command in commands {
                self.execute(command, now);
            }
        }
        self.flush();
        if !self.deleting.is_empty() {
            self.forget_deleted_groups();
        }
    }

    fn execute(&mut self, command: Command, now: Time) {
        match command {
            Command::Launch {
                group,
                instance,
                zone,
            } => self.launch(group, instance, zone, now),
            Command::Terminate { group, instance } => {
                let stop_timeout = self
                    .stack
                    .group(&group)
                    .or_else(|| self.deleting.get(&group))
                    .map_or(Duration::from_secs(10), |s| s.launch.stop_timeout.to_std());
                if self.provider.is_running(&instance) {
                    if !self.stopping && self.proxy.deregister(&instance) {
                        // Deregister first; the process stops once its target drained.
                        tracing::info!(group = %group, instance = %instance, "draining");
                        self.draining.insert(instance, stop_timeout);
                    } else {
                        tracing::info!(group = %group, instance = %instance, "terminating");
                        self.provider.terminate(&instance, stop_timeout);
                    }
                } else if let Some(g) = self.groups.get_mut(&group) {
                    g.on_exited(&instance, now, "not running");
                }
            }
        }
    }

    /// Records the groups' new events in the store.
    fn flush(&mut self) {
        let events: Vec<Event> = self
            .groups
            .values_mut()
            .flat_map(|g| g.take_events())
            .collect();
        for event in events {
            self.record(event);
        }
    }

    fn on_proc(&mut self, event: ProcEvent) {
        let now = clock::now();
        let id = match &event {
            ProcEvent::Running { instance, .. }
            | ProcEvent::LaunchFailed { instance, .. }
            | ProcEvent::Exited { instance, .. } => instance.clone(),
        };
        let Some(group) = self.owner.get(&id).cloned() else {
            return;
        };
        let Some(g) = self.groups.get_mut(&group) else {
            return;
        };
        match event {
            ProcEvent::Running { pid, .. } => {
                self.provider.set_running(&id, pid);
                g.on_running(&id, now);
                // In service: registered into its target groups.
                if let Some(spec) = self.stack.group(&group) {
                    let tgs = spec.target_groups.clone();
                    self.register_targets(&group, &id, &tgs);
                }
            }
            ProcEvent::LaunchFailed { reason, .. } => {
                let reason = self.provider.with_bind_hint(reason, &id);
                g.on_launch_failed(&id, now, &reason);
                self.forget(&id);
            }
            ProcEvent::Exited { status, .. } => {
                let status = self.provider.with_bind_hint(status, &id);
                g.on_exited(&id, now, &status);
                self.forget(&id);
            }
        }
    }

    /// Registers a running instance of `group` in each of `target_groups` (on the
    /// target group's port, else the launch template's) where it is not a target yet.
    fn register_targets(&mut self, group: &str, id: &InstanceId, target_groups: &[String]) {
        let (Some(spec), Some(info), Some(g)) = (
            self.stack.group(group),
            self.provider.info(id),
            self.groups.get(group),
        ) else {
            return;
        };
        let zone = g.instance(id).map(|i| i.zone.clone()).unwrap_or_default();
        for tg in target_groups {
            if self.proxy.is_registered(tg, id) {
                continue;
            }
            let port = self
                .stack
                .target_group(tg)
                .map_or(spec.launch.port, |t| t.port);
            self.proxy.register(
                tg,
                id,
                std::net::SocketAddr::new(info.ip.into(), port),
                &zone,
            );
        }
    }

    /// An instance's process is gone: its address, cgroups and targets go with it.
    fn forget(&mut self, id: &InstanceId) {
        for task in self.metadata.remove(id).unwrap_or_default() {
            task.abort();
        }
        self.sessions.forget(id.as_str());
        self.instance_tokens.retain(|_, i| i != id);
        self.provider.reap(id);
        self.proxy.remove(id);
        self.draining.remove(id);
        self.owner.remove(id);
    }

    /// Stores one event, logs it and sends it to the event stream's subscribers.
    fn record(&mut self, event: Event) {
        log_event(&event);
        match self.store.record(&event) {
            Ok(seq) => {
                // No subscriber is not an error.
                let _ = self.events.send((seq, event));
            }
            Err(e) => tracing::error!(error = %e, "cannot record an event"),
        }
    }

    /// Records one change in the audit trail.
    fn audit(
        &mut self,
        actor: &Actor,
        action: &str,
        target: String,
        before: serde_json::Value,
        after: serde_json::Value,
        result: Result<(), &ApiError>,
    ) {
        let record = AuditRecord {
            time: clock::now(),
            actor: actor.name.clone(),
            source: actor.source.clone(),
            // A caller that named its action (an AWS call) is recorded under that name.
            action: actor.action.clone().unwrap_or_else(|| action.to_owned()),
            target,
            before,
            after,
            result: match result {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("{}: {}", e.code, e.message),
            },
        };
        self.record(Event::Audit { record });
    }

    fn on_proxy(&mut self, event: ProxyEvent) {
        let now = clock::now();
        match event {
            ProxyEvent::TargetHealth {
                target_group,
                instance,
                from,
                to,
                reason,
            } => {
                let reason_text = reason
                    .as_ref()
                    .map(|r| format!("{}: {}", r.code, r.description));
                self.record(Event::TargetHealth {
                    time: now,
                    target_group: target_group.clone(),
                    instance: instance.clone(),
                    from,
                    to,
                    reason: reason_text.clone(),
                });
                // A target that passed its checks proved its instance: its death is no
                // crash loop, whatever the group's health check type.
                if to == TargetState::Healthy
                    && let Some(group) = self.owner.get(&instance)
                    && let Some(g) = self.groups.get_mut(group)
                {
                    g.on_healthy(&instance);
                }
                let why = format!(
                    "target group {target_group}: {}",
                    reason_text.unwrap_or_default()
                );
                if to == TargetState::Unhealthy {
                    self.target_unhealthy(&instance, why, now);
                }
            }
            ProxyEvent::ColdStart { target_group } => {
                let why = format!(
                    "a request arrived for target group {target_group} while it had no instance"
                );
                let woken = bellows_core::scaling::scale_from_zero(
                    &self.stack.groups,
                    &mut self.groups,
                    &target_group,
                    now,
                    &format!("bellows ({why})"),
                );
                for w in woken {
                    tracing::info!(group = %w.group, %target_group, "scaling from zero for a waiting request");
                    self.audit(
                        &Actor::bellows(),
                        "SetDesiredCapacity",
                        format!("group/{}", w.group),
                        serde_json::json!(w.before),
                        serde_json::json!({ "capacity": w.after, "why": why }),
                        Ok(()),
                    );
                }
            }
            ProxyEvent::Drained {
                instance,
                timed_out,
            } => {
                if let Some(stop_timeout) = self.draining.remove(&instance) {
                    tracing::info!(instance = %instance, timed_out, "drained; terminating");
                    self.provider.terminate(&instance, stop_timeout);
                }
            }
        }
    }

    /// bellows marked an instance unhealthy from its target's health checks.
    fn audit_elb_unhealthy(&mut self, instance: &InstanceId, why: String) {
        self.audit(
            &Actor::bellows(),
            "SetInstanceHealth",
            format!("instance/{instance}"),
            serde_json::json!({ "health": Health::Healthy }),
            serde_json::json!({ "health": Health::Unhealthy, "why": why }),
            Ok(()),
        );
    }

    /// Like EC2 Auto Scaling polling ELB health: an instance whose target is unhealthy
    /// is marked unhealthy once its grace period is over (`set_health` ignores it before).
    fn check_elb_health(&mut self) {
        let now = clock::now();
        let unhealthy: Vec<(InstanceId, String)> = self
            .proxy
            .targets()
            .into_iter()
            .filter(|t| t.state == TargetState::Unhealthy)
            .map(|t| {
                let why = t
                    .reason
                    .map(|r| format!("{}: {}", r.code, r.description))
                    .unwrap_or_default();
                (
                    t.instance,
                    format!("target group {}: {why}", t.target_group),
                )
            })
            .collect();
        for (instance, why) in unhealthy {
            self.target_unhealthy(&instance, why, now);
        }
    }

    /// A target of the instance is unhealthy: the group decides (with ELB health checks
    /// and past the grace period, it marks the instance unhealthy and replaces it), and
    /// bellows' decision is audited.
    fn target_unhealthy(&mut self, instance: &InstanceId, why: String, now: Time) {
        let Some(group) = self.owner.get(instance) else {
            return;
        };
        if let Some(g) = self.groups.get_mut(group)
            && g.on_target_unhealthy(instance, why.clone(), now)
        {
            self.audit_elb_unhealthy(instance, why);
        }
    }

    /// Stops every instance (recorded as terminations by bellows) and waits for them.
    async fn stop(&mut self, proc_rx: &mut mpsc::UnboundedReceiver<ProcEvent>) {
        let now = clock::now();
        self.stopping = true;
        let live: usize = self.groups.values().map(Group::live).sum();
        self.audit(
            &Actor::bellows(),
            "StopStack",
            format!("stack/{}", self.stack.name),
            serde_json::json!({ "instances": live }),
            serde_json::json!({ "instances": 0 }),
            Ok(()),
        );
        let why = format!("stack `{}` stopped", self.stack.name);
        self.close_open_incidents(&why, true, now);
        for id in self.draining.keys().cloned().collect::<Vec<_>>() {
            if let Some(timeout) = self.draining.remove(&id) {
                self.provider.terminate(&id, timeout);
            }
        }
        let mut longest = Duration::ZERO;
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in names {
            let live: Vec<InstanceId> = self.groups[&name]
                .instances()
                .filter(|i| matches!(i.lifecycle, Lifecycle::Pending | Lifecycle::InService))
                .map(|i| i.id.clone())
                .collect();
            if let Some(spec) = self.stack.group(&name).or_else(|| self.deleting.get(&name)) {
                longest = longest.max(spec.launch.stop_timeout.to_std());
            }
            for id in live {
                let command = self.groups.get_mut(&name).and_then(|g| {
                    g.terminate_instance(&id, false, now, "bellows (shutting down)", &mut self.ids)
                        .ok()
                });
                if let Some(c) = command {
                    self.execute(c, now);
                }
            }
        }
        self.flush();
        let deadline = clock::after(longest + Duration::from_secs(3));
        while self.provider.running().next().is_some() {
            match tokio::time::timeout_at(deadline, proc_rx.recv()).await {
                Ok(Some(event)) => self.on_proc(event),
                _ => break,
            }
            self.flush();
        }
        self.flush();
        self.provider.cleanup();
    }
}

fn log_event(event: &Event) {
    match event {
        Event::Activity { activity } if activity.end.is_some() => match &activity.status_message {
            Some(message) => {
                tracing::info!(group = %activity.group, status = ?activity.status, %message, "{}", activity.description)
            }
            None => {
                tracing::info!(group = %activity.group, status = ?activity.status, "{}", activity.description)
            }
        },
        Event::Lifecycle {
            group,
            instance,
            to,
            ..
        } if *to == Lifecycle::InService => {
            tracing::info!(group = %group, instance = %instance, "in service");
        }
        Event::Health {
            group,
            instance,
            health,
            reason,
            ..
        } => {
            tracing::info!(group = %group, instance = %instance, ?health, %reason, "health");
        }
        Event::Audit { record } => {
            tracing::info!(actor = %record.actor, source = %record.source, target = %record.target, result = %record.result, "{}", record.action);
        }
        Event::Capacity { group, after, .. } => {
            tracing::info!(group = %group, min = after.min, max = after.max, desired = after.desired, "capacity");
        }
        _ => {}
    }
}

/// How long each group leaves a new instance out of its aggregate metrics (the core's
/// rule, shared with the simulator).
fn warmups(stack: &Stack) -> HashMap<String, Duration> {
    stack
        .instance_warmups()
        .into_iter()
        .map(|(g, w)| (g, w.to_std()))
        .collect()
}

/// The groups as the scaler sees them.
struct Groups<'a> {
    groups: &'a mut BTreeMap<String, Group>,
    warmups: &'a HashMap<String, Duration>,
}

fn warming_in(group: &Group, warmup: Duration, now: Time) -> u32 {
    let w = bellows_core::Duration::from_millis(warmup.as_millis() as u64);
    bellows_core::scaling::warming_in(group, w, now)
}

impl ScalerGroups for Groups<'_> {
    fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(name)
    }
    fn group_mut(&mut self, name: &str) -> Option<&mut Group> {
        self.groups.get_mut(name)
    }
    fn warming(&self, group: &str, now: Time) -> u32 {
        let Some(g) = self.groups.get(group) else {
            return 0;
        };
        warming_in(g, self.warmups.get(group).copied().unwrap_or_default(), now)
    }
    fn utc_offset(&self, zone: &str, t: Time) -> Option<i32> {
        crate::zones::utc_offset(zone, t)
    }
}

impl Node {
    /// Once a second: sample, publish metrics, evaluate alarms and policies.
    fn second(&mut self) {
        let now = clock::now();
        self.provider.sample(clock::instant());
        self.publish(now);
        self.check_elb_health();
        let outcomes = self.scaler.evaluate(
            &self.metrics,
            &mut Groups {
                groups: &mut self.groups,
                warmups: &self.warmups,
            },
            now,
        );
        self.on_outcomes(outcomes, now);
        if now.as_secs().is_multiple_of(60) {
            self.metrics.expire(now);
        }
    }

    /// What the scaler decided (alarm transitions, webhooks, capacity changes): recorded,
    /// queued and audited. Also what a SetAlarmState sets off.
    pub(crate) fn on_outcomes(&mut self, outcomes: Vec<Outcome>, now: Time) {
        for o in outcomes {
            match o {
                Outcome::Alarm(t) => {
                    tracing::info!(alarm = %t.alarm, from = %t.from, to = %t.to, reason = %t.reason, "alarm");
                    let history = self.alarm_history.entry(t.alarm.clone()).or_default();
                    history.push_back(t.clone());
                    while history.len() > 50 {
                        history.pop_front();
                    }
                    self.record(Event::Alarm {
                        time: t.time,
                        alarm: t.alarm.clone(),
                        from: t.from,
                        to: t.to,
                        reason: t.reason,
                    });
                    use bellows_core::alarm::AlarmState;
                    if t.to == AlarmState::Alarm {
                        let span = self.scaler.alarms.get(&t.alarm).map_or(
                            bellows_core::Duration::from_secs(60),
                            |a| {
                                bellows_core::Duration::from_millis(
                                    a.spec.period.as_millis()
                                        * u64::from(a.spec.evaluation_periods),
                                )
                            },
                        );
                        self.on_alarm(&t.alarm, span, now);
                    } else if t.from == AlarmState::Alarm {
                        self.on_alarm_ok(&t.alarm, now);
                    }
                }
                Outcome::Webhook {
                    webhook,
                    transition,
                } => self.enqueue_webhook(&webhook, &transition, now),
                Outcome::Scaled {
                    group,
                    policy,
                    from,
                    to,
                } => {
                    tracing::info!(group = %group, policy = %policy, from, to, "scaling");
                    let scheduled = self.stack.scheduled.iter().any(|a| a.name == policy);
                    self.audit(
                        &Actor::bellows(),
                        if scheduled {
                            "ExecuteScheduledAction"
                        } else {
                            "ExecutePolicy"
                        },
                        format!("group/{group}"),
                        serde_json::json!({ "desired": from }),
                        serde_json::json!({ "desired": to, "by": policy }),
                        Ok(()),
                    );
                }
            }
        }
    }

    /// This second's metrics: instances and groups (AWS/EC2, AWS/AutoScaling) and the
    /// load balancer's counters (AWS/ApplicationELB).
    fn publish(&mut self, now: Time) {
        let instances = self.instances();
        publish::instances(&mut self.metrics, &instances, &self.warmups, now);
        publish::groups(&mut self.metrics, self.groups.values(), now);
        publish::dynamodb(&mut self.metrics, &self.dynamo_metrics.take(), now);
        publish::load_balancer(
            &mut self.metrics,
            &mut self.deltas,
            &self.proxy.snapshot(),
            &self.listener_lbs,
            now,
        );
    }
}
