//! The node's control loop: one task owns the groups, the provider and the store, and
//! reacts to ticks, process events and API calls, in that one place.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use std::collections::VecDeque;

use bellows_core::Time;
use bellows_core::alarm::Transition;
use bellows_core::event::{AuditRecord, Event};
use bellows_core::group::{Command, Group, Lifecycle};
use bellows_core::group::{Health, HealthSource};
use bellows_core::ids::{IdGen, InstanceId};
use bellows_core::lb::select::TargetState;
use bellows_core::metrics::{MetricStore, SeriesKey};
use bellows_core::scaling::{GroupView as ScalerGroups, Outcome, Scaler};
use bellows_core::stack::{HealthCheckType, Stack};
use bellows_proxy::{Proxy, ProxyError, ProxyEvent};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::api::{self, Actor, ApiError, Call, GroupView, InstanceView, StatusView};
use crate::cgroup::Cgroups;
use crate::clock;
use crate::provider::{ProcEvent, Provider};
use crate::publish::{self, Deltas};
use crate::store::{Store, StoreError};

mod incidents;

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
    scaler: Scaler,
    /// Per group: how long a new instance is left out of the group's aggregate metrics.
    warmups: HashMap<String, Duration>,
    /// The newest transitions of each alarm, newest last.
    alarm_history: HashMap<String, VecDeque<Transition>>,
    /// Per-instance tokens that may put custom metrics (and do nothing else).
    instance_tokens: HashMap<String, InstanceId>,
    token: String,
    /// Each instance's metadata endpoint.
    metadata: HashMap<InstanceId, tokio::task::JoinHandle<()>>,
    /// Every recorded event with its sequence number, for the API's event stream.
    events: broadcast::Sender<(i64, Event)>,
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
    let proxy = Proxy::start(
        &opts.stack,
        Some(&opts.state_dir.join("access.log")),
        proxy_tx,
    )
    .await?;
    for (name, addr) in proxy.listener_addrs() {
        tracing::info!(listener = %name, url = %format!("http://{addr}/"), "load balancer listening");
    }
    let (call_tx, mut call_rx) = mpsc::channel(256);
    let enforced = cgroups.is_some();
    let provider = Provider::new(
        opts.exe.clone(),
        &opts.state_dir,
        opts.stack.instance_network,
        cgroups,
        proc_tx,
    )?;
    let control = listener.local_addr()?;
    let (stop_api, api_stopped) = oneshot::channel::<()>();
    let (events, _) = broadcast::channel(1024);
    let router = api::router(api::ApiState::new(
        call_tx,
        opts.token.clone(),
        events.clone(),
    ));
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = api_stopped.await;
            })
            .await
    });

    let seed = now.as_millis() ^ (u64::from(std::process::id()) << 32);
    let scaler_alarms = opts.stack.alarms.clone();
    let scaler_policies = opts.stack.policies.clone();
    let scaler_scheduled = opts.stack.scheduled.clone();
    let warmups = warmups(&opts.stack);
    tokio::spawn(crate::outbox::run(opts.state_dir.join("state.db")));
    let mut node = Node {
        groups: opts
            .stack
            .groups
            .iter()
            .map(|g| (g.name.clone(), Group::new(g)))
            .collect(),
        stack: opts.stack,
        zones_out: BTreeSet::new(),
        owner: HashMap::new(),
        ids: IdGen::new(seed),
        provider,
        proxy,
        draining: HashMap::new(),
        stopping: false,
        store,
        started: now,
        metrics: MetricStore::default(),
        deltas: Deltas::default(),
        scaler: Scaler::new(scaler_alarms, scaler_policies, scaler_scheduled, now),
        warmups,
        alarm_history: HashMap::new(),
        instance_tokens: HashMap::new(),
        token: opts.token.clone(),
        metadata: HashMap::new(),
        events,
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
    node.step();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
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
    }

    fn execute(&mut self, command: Command, now: Time) {
        match command {
            Command::Launch {
                group,
                instance,
                zone,
            } => {
                let Some(spec) = self.stack.group(&group) else {
                    return;
                };
                let token = random_token();
                self.instance_tokens.insert(token.clone(), instance.clone());
                let env = [
                    ("BELLOWS_API".to_owned(), format!("http://{}", self.control)),
                    ("BELLOWS_METRICS_TOKEN".to_owned(), token),
                ];
                match self.provider.launch(spec, &instance, &zone, &env) {
                    Ok(ip) => {
                        tracing::info!(group = %group, instance = %instance, zone = %zone, address = %format!("{ip}:{}", spec.launch.port), "launching");
                        let meta = crate::imds::Metadata {
                            instance_id: instance.to_string(),
                            private_ip: ip,
                            zone: zone.clone(),
                            instance_type: spec.launch.instance_type.name.clone(),
                            group: group.clone(),
                            stack: self.stack.name.clone(),
                        };
                        // Bound now, well before the instance's command can start.
                        match crate::imds::serve(meta) {
                            Ok(task) => {
                                self.metadata.insert(instance.clone(), task);
                            }
                            Err(e) => {
                                tracing::warn!(instance = %instance, error = %e, "no metadata endpoint for this instance")
                            }
                        }
                        self.owner.insert(instance, group);
                    }
                    Err(reason) => {
                        tracing::warn!(group = %group, instance = %instance, %reason, "launch failed");
                        if let Some(g) = self.groups.get_mut(&group) {
                            g.on_launch_failed(&instance, now, &reason);
                        }
                    }
                }
            }
            Command::Terminate { group, instance } => {
                let stop_timeout = self
                    .stack
                    .group(&group)
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
                if let (Some(spec), Some(info)) =
                    (self.stack.group(&group), self.provider.info(&id))
                {
                    let zone = g.instance(&id).map(|i| i.zone.clone()).unwrap_or_default();
                    for tg in &spec.target_groups {
                        let port = self
                            .stack
                            .target_group(tg)
                            .map_or(spec.launch.port, |t| t.port);
                        self.proxy.register(
                            tg,
                            &id,
                            std::net::SocketAddr::new(info.ip.into(), port),
                            &zone,
                        );
                    }
                }
            }
            ProcEvent::LaunchFailed { reason, .. } => {
                let reason = with_bind_hint(reason, &self.provider, &id);
                g.on_launch_failed(&id, now, &reason);
                self.forget(&id);
            }
            ProcEvent::Exited { status, .. } => {
                let status = with_bind_hint(status, &self.provider, &id);
                g.on_exited(&id, now, &status);
                self.forget(&id);
            }
        }
    }

    /// `bellows apply`: the new stack is parsed and compared with the running one; what
    /// a running stack cannot take is refused as a whole; otherwise groups, the load
    /// balancer and the scaler take the new settings at once (see `stack::diff`).
    fn apply(
        &mut self,
        file: &str,
        source: &str,
        dry_run: bool,
        actor: &Actor,
        now: Time,
    ) -> Result<serde_json::Value, ApiError> {
        use bellows_core::stack::diff::{self, Op};
        let invalid = |lines: Vec<String>| {
            ApiError::new_public(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_stack",
                lines.join("\n"),
            )
        };
        let new = bellows_core::stack::parse(source)
            .map_err(|d| invalid(d.iter().map(|d| d.render(file)).collect()))?;
        let zones = crate::zones::unknown_zones(&new);
        if !zones.is_empty() {
            return Err(invalid(
                zones.into_iter().map(|z| format!("{file}: {z}")).collect(),
            ));
        }
        let changes = diff::diff(&self.stack, &new);
        let refused = diff::refused(&self.stack, &new, &changes);
        let plan = serde_json::json!({ "changes": changes, "applied": false });
        if !refused.is_empty() {
            let error = ApiError::conflict("change", refused.join("; "));
            if !dry_run {
                self.audit_apply(actor, plan, Err(&error));
            }
            return Err(error);
        }
        if dry_run || changes.is_empty() {
            return Ok(plan);
        }
        // Groups first, on copies, so that a change a group refuses leaves all as it was.
        let who = format!("{actor} (bellows apply)");
        let mut groups = self.groups.clone();
        let mut versions = BTreeMap::new();
        for c in changes.iter().filter(|c| c.kind == "group") {
            let Some(spec) = new.group(&c.name) else {
                continue;
            };
            match c.op {
                Op::Add => {
                    let mut g = Group::new(spec);
                    for zone in &self.zones_out {
                        g.set_zone_available(zone, false);
                    }
                    groups.insert(c.name.clone(), g);
                }
                Op::Modify => {
                    let (Some(g), Some(old)) = (groups.get_mut(&c.name), self.stack.group(&c.name))
                    else {
                        continue;
                    };
                    match g.reconfigure(old, spec, now, &who) {
                        Ok(Some(v)) => {
                            versions.insert(c.name.clone(), v);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            let error =
                                ApiError::conflict("change", format!("group `{}`: {e}", c.name));
                            self.audit_apply(actor, plan, Err(&error));
                            return Err(error);
                        }
                    }
                }
                Op::Remove => {}
            }
        }
        self.groups = groups;
        let new_ingress: Vec<String> = changes
            .iter()
            .filter(|c| c.kind == "listener" && c.touches("ingress"))
            .map(|c| c.name.clone())
            .collect();
        self.proxy.reconfigure(&new, &new_ingress);
        if changes
            .iter()
            .any(|c| matches!(c.kind, "alarm" | "policy" | "scheduled"))
        {
            // Alarms whose definition did not change keep their state and history.
            let mut scaler = Scaler::new(
                new.alarms.clone(),
                new.policies.clone(),
                new.scheduled.clone(),
                now,
            );
            for (name, alarm) in scaler.alarms.iter_mut() {
                if let Some(old) = self.scaler.alarms.get(name)
                    && old.spec == alarm.spec
                {
                    *alarm = old.clone();
                }
            }
            self.scaler = scaler;
        }
        self.warmups = warmups(&new);
        self.stack = new;
        let result = serde_json::json!({
            "changes": changes,
            "applied": true,
            "template_versions": versions,
        });
        self.audit_apply(actor, result.clone(), Ok(()));
        tracing::info!(changes = changes.len(), by = %actor, "applied a new stack");
        Ok(result)
    }

    /// The audit record of an apply: the plan, and whether it was applied.
    fn audit_apply(
        &mut self,
        actor: &Actor,
        plan: serde_json::Value,
        result: Result<(), &ApiError>,
    ) {
        let target = format!("stack/{}", self.stack.name);
        self.audit(
            actor,
            "ApplyStack",
            target,
            serde_json::Value::Null,
            plan,
            result,
        );
    }

    /// An instance as the audit trail shows it before and after a change.
    fn instance_json(&self, id: &InstanceId) -> serde_json::Value {
        let Some(i) = self
            .owner
            .get(id)
            .and_then(|g| self.groups.get(g))
            .and_then(|g| g.instance(id))
        else {
            return serde_json::Value::Null;
        };
        serde_json::json!({
            "lifecycle": i.lifecycle,
            "health": i.health,
            "protected": i.protected,
        })
    }

    /// A change to one instance, audited with the instance as it was before and after.
    fn change_instance(
        &mut self,
        actor: &Actor,
        action: &str,
        instance: &InstanceId,
        op: impl FnOnce(&mut Group) -> Result<(), bellows_core::group::GroupError>,
    ) -> Result<(), ApiError> {
        let before = self.instance_json(instance);
        let result = self
            .group_of(instance)
            .and_then(|g| op(g).map_err(|e| ApiError::conflict("instance", e.to_string())));
        let after = self.instance_json(instance);
        self.audit(
            actor,
            action,
            format!("instance/{instance}"),
            before,
            after,
            result.as_ref().map(|_| ()),
        );
        result
    }

    /// The group an instance in service belongs to, or the API's 404.
    fn group_of(&mut self, instance: &InstanceId) -> Result<&mut Group, ApiError> {
        owning_group(&self.owner, &mut self.groups, instance)
    }

    /// An instance's process is gone: its address, cgroups and targets go with it.
    fn forget(&mut self, id: &InstanceId) {
        if let Some(task) = self.metadata.remove(id) {
            task.abort();
        }
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
            action: action.to_owned(),
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
                // With ELB health checks, the group replaces a target that fails them.
                if to == TargetState::Unhealthy
                    && let Some(group) = self.owner.get(&instance).cloned()
                    && self
                        .stack
                        .group(&group)
                        .is_some_and(|g| g.health_check_type == HealthCheckType::Elb)
                    && let Some(g) = self.groups.get_mut(&group)
                {
                    let why = format!(
                        "target group {target_group}: {}",
                        reason_text.unwrap_or_default()
                    );
                    if let Ok(true) = g.set_health(
                        &instance,
                        Health::Unhealthy,
                        HealthSource::Elb,
                        why.clone(),
                        now,
                    ) {
                        self.audit_elb_unhealthy(&instance, why);
                    }
                }
            }
            ProxyEvent::ColdStart { target_group } => {
                let mut woken = Vec::new();
                let actor = format!(
                    "bellows (a request arrived for target group {target_group} while it had no instance)"
                );
                for spec in &self.stack.groups {
                    if !(spec.scale_from_zero && spec.target_groups.contains(&target_group)) {
                        continue;
                    }
                    if let Some(g) = self.groups.get_mut(&spec.name) {
                        let cap = g.capacity();
                        if cap.desired == 0 && cap.max >= 1 {
                            tracing::info!(group = %spec.name, %target_group, "scaling from zero for a waiting request");
                            if let Ok(after) = g.set_capacity(None, None, Some(1), now, &actor) {
                                woken.push((spec.name.clone(), cap, after));
                            }
                        }
                    }
                }
                for (group, before, after) in woken {
                    self.audit(
                        &Actor::bellows(),
                        "SetDesiredCapacity",
                        format!("group/{group}"),
                        serde_json::json!(before),
                        serde_json::json!({ "capacity": after, "why": format!("a request arrived for target group {target_group} while it had no instance") }),
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

    /// Every zone some group lists, with its availability and live instances.
    fn zones(&self) -> Vec<api::ZoneView> {
        let mut zones: BTreeMap<String, api::ZoneView> = BTreeMap::new();
        for g in self.groups.values() {
            for z in g.zones() {
                let view = zones.entry(z.clone()).or_insert_with(|| api::ZoneView {
                    zone: z.clone(),
                    available: true,
                    groups: Vec::new(),
                    instances: 0,
                });
                view.groups.push(g.name().to_owned());
            }
        }
        // A zone still out that no group lists any more, so that it can be restored.
        for z in &self.zones_out {
            zones.entry(z.clone()).or_insert_with(|| api::ZoneView {
                zone: z.clone(),
                available: false,
                groups: Vec::new(),
                instances: 0,
            });
        }
        for view in zones.values_mut() {
            view.available = !self.zones_out.contains(&view.zone);
        }
        for g in self.groups.values() {
            for i in g.instances() {
                if let Some(view) = zones.get_mut(&i.zone)
                    && matches!(i.lifecycle, Lifecycle::Pending | Lifecycle::InService)
                {
                    view.instances += 1;
                }
            }
        }
        zones.into_values().collect()
    }

    /// Starts or ends a zone's outage. At its start every live instance in the zone is
    /// killed with SIGKILL, as a power cut would (the groups see them die and replace
    /// them elsewhere); while it lasts no group launches there.
    fn set_zone(
        &mut self,
        zone: &str,
        available: bool,
        actor: &Actor,
    ) -> Result<api::ZoneChange, ApiError> {
        if !self.zones_out.contains(zone)
            && !self
                .groups
                .values()
                .any(|g| g.zones().iter().any(|z| z == zone))
        {
            return Err(ApiError::not_found(format!(
                "no group has zone `{zone}`; see `bellows zones`"
            )));
        }
        let changed = if available {
            self.zones_out.remove(zone)
        } else {
            self.zones_out.insert(zone.to_owned())
        };
        for g in self.groups.values_mut() {
            g.set_zone_available(zone, available);
        }
        let mut killed = Vec::new();
        if !available {
            for g in self.groups.values() {
                // A power cut: draining instances go too.
                for i in g.instances().filter(|i| {
                    i.zone == zone
                        && matches!(
                            i.lifecycle,
                            Lifecycle::Pending | Lifecycle::InService | Lifecycle::Terminating
                        )
                }) {
                    match self.provider.info(&i.id).and_then(|p| p.pid) {
                        Some(pid) => {
                            let pid = nix::unistd::Pid::from_raw(pid as i32);
                            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                        }
                        // Still starting: its shim takes it down at once.
                        None => self.provider.terminate(&i.id, Duration::ZERO),
                    }
                    killed.push(i.id.clone());
                }
            }
        }
        tracing::warn!(%zone, available, %actor, killed = killed.len(), "zone {}", if available { "back" } else { "out (outage)" });
        Ok(api::ZoneChange {
            zone: zone.to_owned(),
            available,
            changed,
            killed,
        })
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
            let Some(group) = self.owner.get(&instance).cloned() else {
                continue;
            };
            if self
                .stack
                .group(&group)
                .is_some_and(|g| g.health_check_type == HealthCheckType::Elb)
                && let Some(g) = self.groups.get_mut(&group)
                && let Ok(true) = g.set_health(
                    &instance,
                    Health::Unhealthy,
                    HealthSource::Elb,
                    why.clone(),
                    now,
                )
            {
                self.audit_elb_unhealthy(&instance, why);
            }
        }
    }

    fn on_call(&mut self, call: Call) {
        let now = clock::now();
        match call {
            Call::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Call::Instances(reply) => {
                let _ = reply.send(self.instances());
            }
            Call::Activities {
                group,
                limit,
                reply,
            } => {
                let result = match &group {
                    Some(g) if !self.groups.contains_key(g) => {
                        Err(ApiError::not_found(format!("no group named `{g}`")))
                    }
                    _ => self
                        .store
                        .activities(group.as_deref(), limit)
                        .map_err(|e| ApiError::internal(e.to_string())),
                };
                let _ = reply.send(result);
            }
            Call::SetCapacity {
                group,
                min,
                max,
                desired,
                actor,
                reply,
            } => {
                let before = self.groups.get(&group).map(|g| g.capacity());
                let result = group_named(&mut self.groups, &group).and_then(|g| {
                    g.set_capacity(min, max, desired, now, &actor.to_string())
                        .map_err(|e| ApiError::conflict("capacity", e.to_string()))
                });
                let asked = serde_json::json!({ "min": min, "max": max, "desired": desired });
                let after = match &result {
                    Ok(cap) => serde_json::json!(cap),
                    Err(_) => asked,
                };
                self.audit(
                    &actor,
                    "UpdateAutoScalingGroup",
                    format!("group/{group}"),
                    serde_json::json!(before),
                    after,
                    result.as_ref().map(|_| ()),
                );
                let _ = reply.send(result);
            }
            Call::Terminate {
                instance,
                decrement,
                actor,
                reply,
            } => {
                let before = self.instance_json(&instance);
                let ids = &mut self.ids;
                let command =
                    owning_group(&self.owner, &mut self.groups, &instance).and_then(|g| {
                        g.terminate_instance(&instance, decrement, now, &actor.to_string(), ids)
                            .map(|c| (c, g.capacity()))
                            .map_err(|e| ApiError::conflict("instance", e.to_string()))
                    });
                let result = command.map(|(c, cap)| {
                    self.execute(c, now);
                    cap
                });
                let after = serde_json::json!({
                    "instance": self.instance_json(&instance),
                    "decrement_desired": decrement,
                    "capacity": result.as_ref().ok(),
                });
                self.audit(
                    &actor,
                    "TerminateInstanceInAutoScalingGroup",
                    format!("instance/{instance}"),
                    before,
                    after,
                    result.as_ref().map(|_| ()),
                );
                let _ = reply.send(result);
            }
            Call::SetHealth {
                instance,
                health,
                actor,
                reply,
            } => {
                let why = format!("set by {actor}");
                let result = self.change_instance(&actor, "SetInstanceHealth", &instance, |g| {
                    g.set_health(&instance, health, HealthSource::Operator, why, now)
                        .map(|_| ())
                });
                let _ = reply.send(result);
            }
            Call::SetProtection {
                instance,
                protected,
                actor,
                reply,
            } => {
                let result =
                    self.change_instance(&actor, "SetInstanceProtection", &instance, |g| {
                        g.set_protected(&instance, protected, now)
                    });
                let _ = reply.send(result);
            }
            Call::Targets(reply) => {
                let _ = reply.send(self.proxy.targets());
            }
            Call::Zones(reply) => {
                let _ = reply.send(self.zones());
            }
            Call::SetZone {
                zone,
                available,
                actor,
                reply,
            } => {
                let result = self.set_zone(&zone, available, &actor);
                let after = match &result {
                    Ok(c) => serde_json::json!({ "available": c.available, "killed": c.killed }),
                    Err(_) => serde_json::json!({ "available": available }),
                };
                self.audit(
                    &actor,
                    if available {
                        "EndZoneOutage"
                    } else {
                        "StartZoneOutage"
                    },
                    format!("zone/{zone}"),
                    match &result {
                        // Unchanged: it already was as asked.
                        Ok(c) => serde_json::json!({ "available": c.available != c.changed }),
                        Err(_) => serde_json::Value::Null,
                    },
                    after,
                    result.as_ref().map(|_| ()),
                );
                let _ = reply.send(result);
            }
            Call::Listeners(reply) => {
                let _ = reply.send(self.proxy.listeners());
            }
            Call::Ingress {
                listener,
                cidr,
                authorize,
                actor,
                reply,
            } => {
                let ingress_of = |proxy: &Proxy| {
                    proxy
                        .listeners()
                        .into_iter()
                        .find(|l| l.name == listener)
                        .map(|l| l.ingress)
                };
                let before = ingress_of(&self.proxy);
                let result = if authorize {
                    self.proxy.authorize(&listener, cidr)
                } else {
                    self.proxy.revoke(&listener, cidr)
                };
                let result = match result {
                    Ok(changed) => {
                        if changed {
                            self.record(Event::Ingress {
                                time: now,
                                listener: listener.clone(),
                                cidr: cidr.to_string(),
                                authorized: authorize,
                                actor: actor.to_string(),
                            });
                        }
                        let ingress = ingress_of(&self.proxy).unwrap_or_default();
                        Ok(api::IngressChange {
                            listener: listener.clone(),
                            cidr,
                            changed,
                            ingress,
                        })
                    }
                    Err(e) => Err(ApiError::not_found(e.to_string())),
                };
                let after = ingress_of(&self.proxy);
                self.audit(
                    &actor,
                    if authorize {
                        "AuthorizeSecurityGroupIngress"
                    } else {
                        "RevokeSecurityGroupIngress"
                    },
                    format!("listener/{listener}"),
                    serde_json::json!({ "ingress": before }),
                    serde_json::json!({ "ingress": after, "cidr": cidr.to_string() }),
                    result.as_ref().map(|_| ()),
                );
                let _ = reply.send(result);
            }
            Call::Alarms(reply) => {
                let _ = reply.send(self.alarms_view());
            }
            Call::MetricsList(reply) => {
                let _ = reply.send(self.metrics.keys().cloned().collect());
            }
            Call::MetricsQuery { query, reply } => {
                let _ = reply.send(self.query(query, now));
            }
            Call::PutMetrics { token, data, reply } => {
                let _ = reply.send(self.put_metrics(token, data, now));
            }
            Call::Deliveries(reply) => {
                let _ = reply.send(
                    self.store
                        .deliveries(200)
                        .map_err(|e| ApiError::internal(e.to_string())),
                );
            }
            Call::Metrics(reply) => {
                let _ = reply.send(self.prometheus());
            }
            Call::Apply {
                file,
                source,
                dry_run,
                actor,
                reply,
            } => {
                let result = self.apply(&file, &source, dry_run, &actor, now);
                let _ = reply.send(result);
            }
            Call::Stack(reply) => {
                let _ = reply.send(serde_json::to_value(&self.stack).unwrap_or_default());
            }
            Call::StartRefresh {
                group,
                min_healthy_percentage,
                warmup,
                actor,
                reply,
            } => {
                let default_warmup = self
                    .warmups
                    .get(&group)
                    .map(|w| bellows_core::Duration::from_millis(w.as_millis() as u64))
                    .unwrap_or_default();
                let spec = bellows_core::group::RefreshSpec {
                    min_healthy_percentage: min_healthy_percentage.unwrap_or(90),
                    warmup: warmup.unwrap_or(default_warmup),
                };
                let ids = &mut self.ids;
                let result = group_named(&mut self.groups, &group).and_then(|g| {
                    g.start_refresh(spec, now, ids)
                        .map_err(|e| ApiError::conflict("refresh", e.to_string()))
                });
                self.audit(
                    &actor,
                    "StartInstanceRefresh",
                    format!("group/{group}"),
                    serde_json::Value::Null,
                    serde_json::json!(spec),
                    result.as_ref().map(|_| ()),
                );
                let _ = reply.send(result);
            }
            Call::CancelRefresh {
                group,
                actor,
                reply,
            } => {
                let result = group_named(&mut self.groups, &group).and_then(|g| {
                    g.cancel_refresh(now)
                        .map_err(|e| ApiError::conflict("refresh", e.to_string()))
                });
                let after = result.as_ref().ok().map(
                    |r| serde_json::json!({ "status": r.status, "remaining": r.remaining.len() }),
                );
                self.audit(
                    &actor,
                    "CancelInstanceRefresh",
                    format!("group/{group}"),
                    serde_json::Value::Null,
                    serde_json::json!(after),
                    result.as_ref().map(|_| ()),
                );
                let _ = reply.send(result);
            }
            Call::Refresh { group, reply } => {
                let result = match self.groups.get(&group) {
                    None => Err(ApiError::not_found(format!("no group named `{group}`"))),
                    Some(g) => Ok(g.refresh().cloned()),
                };
                let _ = reply.send(result);
            }
            Call::Note {
                actor,
                action,
                target,
                after,
                ok,
                reply,
            } => {
                let failed = ApiError::conflict("instance", "the instance refused");
                self.audit(
                    &actor,
                    &action,
                    target,
                    serde_json::Value::Null,
                    after,
                    if ok { Ok(()) } else { Err(&failed) },
                );
                let _ = reply.send(());
            }
            Call::Investigate {
                since,
                alarm,
                reply,
            } => {
                let _ = reply.send(self.investigate(since, alarm.as_deref(), now));
            }
            Call::Investigations(reply) => {
                let _ = reply.send(
                    self.store
                        .investigations(200)
                        .map_err(|e| ApiError::internal(e.to_string())),
                );
            }
            Call::Investigation { id, reply } => {
                let result = match self.store.investigation(id) {
                    Ok(Some(text)) => {
                        serde_json::from_str::<bellows_core::investigate::Report>(&text)
                            .map_err(|e| ApiError::internal(e.to_string()))
                            .map(|r| {
                                let mut v = serde_json::to_value(&r).unwrap_or_default();
                                v["markdown"] = serde_json::Value::String(r.markdown());
                                v["title"] = serde_json::Value::String(r.title());
                                v["id"] = serde_json::json!(id);
                                v
                            })
                    }
                    Ok(None) => Err(ApiError::not_found(format!("no investigation {id}"))),
                    Err(e) => Err(ApiError::internal(e.to_string())),
                };
                let _ = reply.send(result);
            }
            Call::Incidents(reply) => {
                let _ = reply.send(
                    self.store
                        .incidents(200)
                        .map_err(|e| ApiError::internal(e.to_string())),
                );
            }
            Call::Audit {
                since,
                target,
                limit,
                reply,
            } => {
                let _ = reply.send(
                    self.store
                        .audit(since, target.as_deref(), limit)
                        .map_err(|e| ApiError::internal(e.to_string())),
                );
            }
            Call::EventsAfter { seq, reply } => {
                let _ = reply.send(
                    self.store
                        .events_after(seq, 10_000)
                        .map_err(|e| ApiError::internal(e.to_string())),
                );
            }
            Call::Log { instance, reply } => {
                let path = self.provider.log_path(&instance);
                let running = self.provider.is_running(&instance);
                let _ = reply.send(path.exists().then_some((path, running)));
            }
        }
    }

    fn prometheus(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.proxy.render_prometheus(&mut out);
        for g in self.groups.values() {
            let cap = g.capacity();
            let labels = [("group", g.name())];
            bellows_proxy::metrics::sample(
                &mut out,
                "bellows_group_desired_capacity",
                &labels,
                cap.desired,
            );
            bellows_proxy::metrics::sample(&mut out, "bellows_group_min_size", &labels, cap.min);
            bellows_proxy::metrics::sample(&mut out, "bellows_group_max_size", &labels, cap.max);
            bellows_proxy::metrics::sample(
                &mut out,
                "bellows_group_in_service_instances",
                &labels,
                g.count(Lifecycle::InService),
            );
            bellows_proxy::metrics::sample(
                &mut out,
                "bellows_group_pending_instances",
                &labels,
                g.count(Lifecycle::Pending),
            );
            bellows_proxy::metrics::sample(
                &mut out,
                "bellows_group_terminating_instances",
                &labels,
                g.count(Lifecycle::Terminating),
            );
        }
        // Every series of the metric store, at its newest second (custom metrics too).
        for key in self.metrics.keys() {
            if let Some((_, d)) = self.metrics.latest(key) {
                let dims: Vec<String> = key
                    .dimensions
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let dims = dims.join(",");
                let labels = [
                    ("namespace", key.namespace.as_str()),
                    ("metric", key.name.as_str()),
                    ("dimensions", dims.as_str()),
                ];
                bellows_proxy::metrics::sample(
                    &mut out,
                    "bellows_cloudwatch_latest",
                    &labels,
                    d.average(),
                );
            }
        }
        for a in self.scaler.alarms.values() {
            let state = match a.state {
                bellows_core::alarm::AlarmState::Ok => 0,
                bellows_core::alarm::AlarmState::Alarm => 1,
                bellows_core::alarm::AlarmState::InsufficientData => 2,
            };
            bellows_proxy::metrics::sample(
                &mut out,
                "bellows_alarm_state",
                &[("alarm", a.spec.name.as_str())],
                state,
            );
        }
        for i in self.instances() {
            if let Some(cpu) = i.cpu_percent {
                let labels = [("group", i.group.as_str()), ("instance", i.id.as_str())];
                bellows_proxy::metrics::sample(
                    &mut out,
                    "bellows_instance_cpu_utilization_percent",
                    &labels,
                    format!("{cpu:.2}"),
                );
                bellows_proxy::metrics::sample(
                    &mut out,
                    "bellows_instance_memory_bytes",
                    &labels,
                    i.memory_bytes.unwrap_or(0),
                );
            }
        }
        out
    }

    fn status(&self) -> StatusView {
        StatusView {
            stack: self.stack.name.clone(),
            pid: std::process::id(),
            started_at: self.started,
            state_dir: self.state_dir.display().to_string(),
            control: self.control.to_string(),
            cgroups: self.cgroups,
            listeners: self.proxy.listeners(),
            zones_out: self.zones_out.iter().cloned().collect(),
            groups: self
                .groups
                .values()
                .filter_map(|g| {
                    let spec = self.stack.group(g.name())?;
                    let cap = g.capacity();
                    Some(GroupView {
                        name: g.name().to_owned(),
                        min: cap.min,
                        max: cap.max,
                        desired: cap.desired,
                        pending: g.count(Lifecycle::Pending) as u32,
                        in_service: g.count(Lifecycle::InService) as u32,
                        terminating: g.count(Lifecycle::Terminating) as u32,
                        instance_type: spec.launch.instance_type.name.clone(),
                        zones: spec.zones.clone(),
                        target_groups: spec.target_groups.clone(),
                        health_check_type: spec.health_check_type,
                        termination_policy: spec.termination_policy,
                        refresh: g.refresh().cloned(),
                    })
                })
                .collect(),
        }
    }

    fn instances(&self) -> Vec<InstanceView> {
        let mut out = Vec::new();
        for g in self.groups.values() {
            let Some(spec) = self.stack.group(g.name()) else {
                continue;
            };
            for i in g.instances() {
                let info = self.provider.info(&i.id);
                let memory_total = spec.launch.instance_type.memory_mib * 1024 * 1024;
                out.push(InstanceView {
                    id: i.id.clone(),
                    group: g.name().to_owned(),
                    zone: i.zone.clone(),
                    lifecycle: i.lifecycle,
                    health: i.health,
                    protected: i.protected,
                    private_ip: info.as_ref().map(|p| p.ip.to_string()),
                    port: spec.launch.port,
                    pid: info.as_ref().and_then(|p| p.pid),
                    launched_at: i.launched_at,
                    in_service_at: i.in_service_at,
                    instance_type: spec.launch.instance_type.name.clone(),
                    vcpu: spec.launch.instance_type.vcpu,
                    cpu_percent: info.as_ref().map(|p| p.usage.cpu_percent),
                    memory_bytes: info.as_ref().map(|p| p.usage.memory_bytes),
                    memory_percent: info
                        .as_ref()
                        .map(|p| p.usage.memory_bytes as f64 * 100.0 / memory_total as f64),
                });
            }
        }
        out.sort_by(|a, b| (&a.group, a.launched_at, &a.id).cmp(&(&b.group, b.launched_at, &b.id)));
        out
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
            if let Some(spec) = self.stack.group(&name) {
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
        let deadline = tokio::time::Instant::now() + longest + Duration::from_secs(3);
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

/// The group an instance in service belongs to, or the API's 404 (a free function, so
/// that a caller can hold other fields of the node at the same time).
fn owning_group<'g>(
    owner: &HashMap<InstanceId, String>,
    groups: &'g mut BTreeMap<String, Group>,
    instance: &InstanceId,
) -> Result<&'g mut Group, ApiError> {
    owner
        .get(instance)
        .and_then(|g| groups.get_mut(g))
        .ok_or_else(|| ApiError::not_found(format!("no instance `{instance}` in service")))
}

/// A group by name, or the API's 404.
fn group_named<'g>(
    groups: &'g mut BTreeMap<String, Group>,
    name: &str,
) -> Result<&'g mut Group, ApiError> {
    groups
        .get_mut(name)
        .ok_or_else(|| ApiError::not_found(format!("no group named `{name}`")))
}

/// When an instance could not bind its port, says which address it should use.
fn with_bind_hint(text: String, provider: &Provider, id: &InstanceId) -> String {
    let Some(info) = provider.info(id) else {
        return text;
    };
    let Ok(mut file) = std::fs::File::open(provider.log_path(id)) else {
        return text;
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(8192)));
    let mut tail = String::new();
    let _ = file.take(8192).read_to_string(&mut tail);
    let lower = tail.to_lowercase();
    if lower.contains("address already in use")
        || lower.contains("eaddrinuse")
        || lower.contains("address in use")
    {
        format!(
            "{text}; the command could not bind its port: an instance must listen on its own address $PRIVATE_IP:$PORT ({}:{}), not 0.0.0.0 or another address",
            info.ip, info.port
        )
    } else {
        text
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

/// A random token from the operating system, as hex.
fn random_token() -> String {
    use std::io::Read as _;
    let mut raw = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut raw);
    }
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// How long each group leaves a new instance out of its aggregate metrics (the core's
/// rule, shared with the simulator).
fn warmups(stack: &Stack) -> HashMap<String, Duration> {
    bellows_core::scaling::instance_warmups(stack)
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
                } => {
                    let Some(hook) = self.stack.webhooks.iter().find(|w| w.name == webhook) else {
                        continue;
                    };
                    let body = serde_json::json!({
                        "source": "bellows",
                        "stack": self.stack.name,
                        "alarm": transition.alarm,
                        "from": transition.from,
                        "to": transition.to,
                        "reason": transition.reason,
                        "time": transition.time.to_string(),
                    });
                    if let Err(e) = self.store.enqueue(
                        &format!("webhook:{webhook}"),
                        &hook.url,
                        &body.to_string(),
                        now,
                    ) {
                        tracing::error!(error = %e, "cannot queue a webhook delivery");
                    }
                }
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
        if now.as_secs().is_multiple_of(60) {
            self.metrics.expire(now);
        }
    }

    fn publish(&mut self, now: Time) {
        let instances = self.instances();
        // Per group: (cpu, memory, count) over instances past warmup, and over all.
        let mut warm: HashMap<String, (f64, f64, u32)> = HashMap::new();
        let mut all: HashMap<String, (f64, f64, u32)> = HashMap::new();
        for i in &instances {
            let (Some(cpu), Some(mem)) = (i.cpu_percent, i.memory_percent) else {
                continue;
            };
            if i.lifecycle != Lifecycle::InService {
                continue;
            }
            let id = i.id.as_str();
            self.metrics.put(
                &SeriesKey::new("AWS/EC2", "CPUUtilization", &[("InstanceId", id)]),
                now,
                cpu,
            );
            self.metrics.put(
                &SeriesKey::new("AWS/EC2", "MemoryUtilization", &[("InstanceId", id)]),
                now,
                mem,
            );
            let warmup = self.warmups.get(&i.group).copied().unwrap_or_default();
            let warming = i
                .in_service_at
                .is_some_and(|t| now.since(t).as_millis() < warmup.as_millis() as u64);
            for (map, counts) in [(&mut all, true), (&mut warm, !warming)] {
                if counts {
                    let e = map.entry(i.group.clone()).or_default();
                    e.0 += cpu;
                    e.1 += mem;
                    e.2 += 1;
                }
            }
        }
        // The group's aggregate leaves out instances still warming up, unless all are.
        for (group, whole) in all {
            let (cpu, mem, n) = warm
                .get(&group)
                .copied()
                .filter(|w| w.2 > 0)
                .unwrap_or(whole);
            let dims = [("AutoScalingGroupName", group.as_str())];
            self.metrics.put(
                &SeriesKey::new("AWS/EC2", "CPUUtilization", &dims),
                now,
                cpu / f64::from(n),
            );
            self.metrics.put(
                &SeriesKey::new("AWS/EC2", "MemoryUtilization", &dims),
                now,
                mem / f64::from(n),
            );
        }
        for g in self.groups.values() {
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
                self.metrics.put(
                    &SeriesKey::new("AWS/AutoScaling", name, &dims),
                    now,
                    v as f64,
                );
            }
        }
        publish::load_balancer(
            &mut self.metrics,
            &mut self.deltas,
            &self.proxy.snapshot(),
            now,
        );
    }

    fn alarms_view(&self) -> Vec<api::AlarmView> {
        self.scaler
            .alarms
            .values()
            .map(|a| api::AlarmView {
                name: a.spec.name.clone(),
                state: a.state,
                reason: a.reason.clone(),
                since: a.since,
                metric: a.spec.metric.to_string(),
                statistic: a.spec.statistic.to_string(),
                period: a.spec.period,
                evaluation_periods: a.spec.evaluation_periods,
                datapoints_to_alarm: a.spec.datapoints_to_alarm,
                comparison: a.spec.comparison.symbol().to_owned(),
                threshold: a.spec.threshold,
                last_value: a.last_value,
                alarm_actions: a.spec.alarm_actions.clone(),
                history: self
                    .alarm_history
                    .get(&a.spec.name)
                    .map(|h| h.iter().rev().cloned().collect())
                    .unwrap_or_default(),
            })
            .collect()
    }
}

impl Node {
    fn query(&self, q: api::MetricQuery, now: Time) -> Result<api::MetricResult, ApiError> {
        let stat: bellows_core::metrics::Statistic = q
            .stat
            .as_deref()
            .unwrap_or("Average")
            .parse()
            .map_err(ApiError::bad_request)?;
        let period: bellows_core::Duration = q.period.as_deref().unwrap_or("1s").parse().map_err(
            |e: bellows_core::duration::ParseDurationError| {
                ApiError::bad_request(format!("period: {e}"))
            },
        )?;
        let since: bellows_core::Duration = q.since.as_deref().unwrap_or("5m").parse().map_err(
            |e: bellows_core::duration::ParseDurationError| {
                ApiError::bad_request(format!("since: {e}"))
            },
        )?;
        if period.as_millis() < 1000 || !period.as_millis().is_multiple_of(1000) {
            return Err(ApiError::bad_request(
                "period: a whole number of seconds, at least 1s",
            ));
        }
        // A read may not make the loop walk millions of periods.
        if since.as_millis() / period.as_millis() > 86_400 {
            return Err(ApiError::bad_request(
                "at most 86400 datapoints a query: raise the period or shorten since",
            ));
        }
        let mut dims = BTreeMap::new();
        for pair in q
            .dimensions
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                ApiError::bad_request(format!("dimension `{pair}`: write Key=Value"))
            })?;
            dims.insert(k.to_owned(), v.to_owned());
        }
        let from = Time::from_millis(now.as_millis().saturating_sub(since.as_millis()));
        let series = self
            .metrics
            .matching(&q.namespace, &q.name, &dims)
            .take(100)
            .map(|key| api::SeriesResult {
                key: key.clone(),
                statistic: stat.to_string(),
                period,
                points: self.metrics.query(key, stat, from, now, period),
            })
            .collect();
        Ok(api::MetricResult { series })
    }

    fn put_metrics(
        &mut self,
        token: Option<String>,
        data: Vec<api::MetricDatum>,
        now: Time,
    ) -> Result<usize, ApiError> {
        let token = token.ok_or_else(|| ApiError::unauthorized("putting metrics needs a bearer token: the operator's, or an instance's $BELLOWS_METRICS_TOKEN"))?;
        let is_operator = token.len() == self.token.len()
            && token
                .bytes()
                .zip(self.token.bytes())
                .fold(0, |a, (x, y)| a | (x ^ y))
                == 0;
        let instance = self.instance_tokens.get(&token).cloned();
        if !is_operator && instance.is_none() {
            return Err(ApiError::unauthorized("the bearer token is not valid"));
        }
        for d in &data {
            if d.namespace.is_empty()
                || d.namespace.len() > 255
                || d.name.is_empty()
                || d.name.len() > 255
                || d.dimensions.len() > 30
            {
                return Err(ApiError::bad_request(
                    "namespace and name must be 1 to 255 characters, with at most 30 dimensions",
                ));
            }
            if d.namespace.starts_with("AWS/") {
                return Err(ApiError::bad_request(format!(
                    "namespace `{}`: AWS/ is reserved for bellows' own metrics",
                    d.namespace
                )));
            }
            if !d.value.is_finite() {
                return Err(ApiError::bad_request("a value must be a finite number"));
            }
        }
        if self.metrics.len() + data.len() > 100_000 {
            return Err(ApiError::conflict(
                "metrics",
                "too many series: at most 100000",
            ));
        }
        for d in &data {
            let mut key = SeriesKey {
                namespace: d.namespace.clone(),
                name: d.name.clone(),
                dimensions: d.dimensions.clone(),
            };
            // An instance's own metrics carry its id unless it names one itself.
            if let Some(id) = &instance
                && !key.dimensions.contains_key("InstanceId")
                && key.dimensions.is_empty()
            {
                key.dimensions
                    .insert("InstanceId".to_owned(), id.to_string());
            }
            self.metrics.put(&key, now, d.value);
        }
        Ok(data.len())
    }
}
