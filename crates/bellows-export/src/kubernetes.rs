//! `bellows export kubernetes`: a Deployment, Service, probes, PodDisruptionBudget and
//! autoscaler per group, Gateway API objects per listener, and a located warning for
//! every setting that does not carry over (see the README's mapping table).

use std::collections::BTreeMap;

use bellows_core::alarm::{AlarmSpec, Comparison};
use bellows_core::lb::rules::{Action, Conditions, Rule};
use bellows_core::lb::select::Algorithm;
use bellows_core::metrics::Statistic;
use bellows_core::scaling::{
    HpaSpec, KpaSpec, PolicyKind, PolicySpec, ScheduledAction, TrackedMetric,
};
use bellows_core::stack::{
    GroupSpec, HealthCheckType, ListenerSpec, Stack, TargetGroupSpec, TerminationPolicy,
};
use serde_json::{Map, Value, json};

use crate::locate::{Seg, path};
use crate::names::{Namer, dns1035};
use crate::{Export, Warnings, number, secs, yaml};

/// Where Prometheus triggers of KEDA ask; a placeholder to edit, said so in a warning.
pub const PROMETHEUS: &str = "http://prometheus.monitoring.svc:9090";

/// The choices `bellows export kubernetes` takes from its flags.
#[derive(Clone, Debug)]
pub struct Options {
    /// The container image every group runs (it must hold the launch command).
    pub image: String,
    /// The Gateway's `gatewayClassName`.
    pub gateway_class: String,
    /// Listeners as Ingresses for the AWS Load Balancer Controller instead of Gateway
    /// API objects (`--ingress eks`).
    pub eks: bool,
}

/// The label every object of the stack carries, and pods' own labels.
const NAME: &str = "app.kubernetes.io/name";
const PART_OF: &str = "app.kubernetes.io/part-of";
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Pods of a group carry `target-group.bellows.dev/TG: "true"` for each target group
/// they register into; the target group's Service selects on it.
const TG_LABEL: &str = "target-group.bellows.dev/";

struct Cx<'a, 's> {
    stack: &'a Stack,
    opts: &'a Options,
    w: Warnings<'s>,
    stack_label: String,
    groups: Namer,
    services: Namer,
    listeners: Namer,
    /// Target groups served by a Knative Service (their traffic goes to it).
    knative: BTreeMap<String, String>,
}

/// Exports the stack; `src` is the stack file's text, for the warnings' places.
pub fn export(stack: &Stack, src: &str, opts: &Options) -> Export {
    let mut cx = Cx {
        stack,
        opts,
        w: Warnings::new(src),
        stack_label: dns1035(&stack.name),
        groups: Namer::new("group", 63),
        services: Namer::new("target group", 63),
        listeners: Namer::new("listener", 63),
        knative: BTreeMap::new(),
    };
    // Names first, in file order, so that renames do not depend on what refers to what.
    for g in &stack.groups {
        cx.groups.name(&g.name);
    }
    for tg in &stack.target_groups {
        cx.services.name(&tg.name);
    }
    for l in &stack.listeners {
        cx.listeners.name(&l.name);
    }
    for g in &stack.groups {
        if let Some(p) = stack
            .policies
            .iter()
            .find(|p| p.group == g.name && matches!(p.kind, PolicyKind::Kpa(_)))
        {
            let name = cx.groups.name(&p.group);
            for tg in &g.target_groups {
                cx.knative.insert(tg.clone(), name.clone());
            }
        }
    }
    let mut files = Vec::new();
    for g in &stack.groups {
        let docs = group(&mut cx, g);
        files.push((format!("group-{}.yaml", cx.groups.name(&g.name)), docs));
    }
    for tg in &stack.target_groups {
        let docs = target_group(&mut cx, tg);
        if !docs.is_empty() {
            files.push((
                format!("target-group-{}.yaml", cx.services.name(&tg.name)),
                docs,
            ));
        }
    }
    for l in &stack.listeners {
        let docs = listener(&mut cx, l);
        files.push((
            format!("listener-{}.yaml", cx.listeners.name(&l.name)),
            docs,
        ));
    }
    unexported(&mut cx);
    crate::check_ports(&mut cx.w, stack);
    let mut notes = cx.groups.notes;
    notes.extend(cx.services.notes);
    notes.extend(cx.listeners.notes);
    Export {
        files: files
            .into_iter()
            .map(|(n, d)| (n, yaml::stream(&d)))
            .collect(),
        warnings: cx.w.finish(),
        notes,
    }
}

fn labels(cx: &Cx<'_, '_>, name: &str) -> Value {
    json!({ NAME: name, PART_OF: cx.stack_label, MANAGED_BY: "bellows" })
}

fn metadata(cx: &Cx<'_, '_>, name: &str) -> Value {
    json!({ "name": name, "labels": labels(cx, name) })
}

fn selector(cx: &Cx<'_, '_>, name: &str) -> Value {
    json!({ "matchLabels": { NAME: name, PART_OF: cx.stack_label } })
}

/// CPU as Kubernetes writes it: whole cores, or millicores.
fn cpu(vcpu: f64) -> String {
    if vcpu.fract() == 0.0 {
        number(vcpu)
    } else {
        format!("{}m", (vcpu * 1000.0).round() as u64)
    }
}

fn group_path<'a>(g: &'a GroupSpec, key: &'a str) -> Vec<Seg<'a>> {
    vec![Seg::Key("groups"), Seg::Key(&g.name), Seg::Key(key)]
}

fn group(cx: &mut Cx<'_, '_>, g: &GroupSpec) -> Vec<Value> {
    let name = cx.groups.name(&g.name);
    let policies: Vec<&PolicySpec> = cx
        .stack
        .policies
        .iter()
        .filter(|p| p.group == g.name)
        .collect();
    if g.termination_policy == TerminationPolicy::OldestInstance {
        cx.w.warn(&group_path(g, "termination_policy"), format!("group `{}`: termination_policy \"OldestInstance\" does not carry over: a ReplicaSet removes the most recently ready pods first (pod-deletion-cost can steer it)", g.name));
    }
    if g.launch.boot_delay.as_millis() > 0 {
        cx.w.warn(
            &[
                Seg::Key("groups"),
                Seg::Key(&g.name),
                Seg::Key("launch"),
                Seg::Key("boot_delay"),
            ],
            format!(
                "group `{}`: boot_delay imitates a virtual machine's boot; a pod starts without it",
                g.name
            ),
        );
    }
    let kpa = policies.iter().find_map(|p| match &p.kind {
        PolicyKind::Kpa(k) => Some((*p, k)),
        _ => None,
    });
    let cron = scheduled(cx, g, kpa.is_none());
    if let Some((p, k)) = kpa {
        for other in policies.iter().filter(|o| o.name != p.name) {
            cx.w.warn(&policy_path(other, "type"), format!("policy `{}` is not exported: group `{}` scales with the Knative policy `{}`, which owns its scale", other.name, g.name, p.name));
        }
        return vec![knative_service(cx, g, p, k)];
    }

    let mut autoscaler = autoscaler(cx, g, &name, &policies, cron);
    if autoscaler.is_some() {
        for (key, what) in [
            (
                "default_cooldown",
                "the autoscaler's scale-down stabilization window is the counterpart",
            ),
            (
                "default_instance_warmup",
                "the HPA leaves out pods not yet ready (the controller's --horizontal-pod-autoscaler-cpu-initialization-period)",
            ),
        ] {
            if cx.w.at.has(&group_path(g, key)) {
                cx.w.warn(
                    &group_path(g, key),
                    format!(
                        "group `{}`: {key} does not carry over per group; {what}",
                        g.name
                    ),
                );
            }
        }
    }
    let mut deployment = deployment(cx, g, &name, autoscaler.is_none());
    let pdb = json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(cx, &name),
        "spec": { "maxUnavailable": 1, "selector": selector(cx, &name) },
    });
    let mut docs = vec![deployment.take(), pdb];
    if let Some(a) = autoscaler.take() {
        docs.push(a);
    }
    docs
}

/// Scheduled actions as KEDA cron triggers: an action that raises the floor above the
/// group's min starts a window that the next action lowering it again ends (KEDA's
/// cron trigger is a window with a floor, not a change at a point in time).
fn scheduled(cx: &mut Cx<'_, '_>, g: &GroupSpec, exported: bool) -> Vec<Value> {
    let list: Vec<&ScheduledAction> = cx
        .stack
        .scheduled
        .iter()
        .filter(|s| s.group == g.name)
        .collect();
    let at = |i: usize, key: &'static str| {
        vec![
            Seg::Key("groups"),
            Seg::Key(&g.name),
            Seg::Key("scheduled"),
            Seg::Index(i),
            Seg::Key(key),
        ]
    };
    let floor = |s: &ScheduledAction| s.desired.or(s.min).unwrap_or(g.min);
    let mut triggers = Vec::new();
    let mut paired = vec![false; list.len()];
    for (i, s) in list.iter().enumerate() {
        if s.max.is_some() {
            cx.w.warn(
                &at(i, "max"),
                format!(
                    "scheduled action `{}`: a scheduled max has no KEDA counterpart",
                    s.name
                ),
            );
        }
        if !exported || floor(s) <= g.min {
            continue;
        }
        let end = list
            .iter()
            .enumerate()
            .skip(i + 1)
            .chain(list.iter().enumerate().take(i))
            .find(|(_, e)| floor(e) <= g.min);
        let Some((j, e)) = end else {
            continue;
        };
        let (Some(zone), Some(end_zone)) = (time_zone(&s.cron), time_zone(&e.cron)) else {
            continue;
        };
        if zone != end_zone {
            continue;
        }
        paired[i] = true;
        paired[j] = true;
        let fields = |c: &bellows_core::schedule::Cron| {
            c.to_string()
                .split_whitespace()
                .take(5)
                .collect::<Vec<_>>()
                .join(" ")
        };
        cx.w.warn(&at(i, "cron"), format!("scheduled actions `{}` and `{}` become a KEDA cron window from \"{}\" to \"{}\" with a floor of {} replicas", s.name, e.name, fields(&s.cron), fields(&e.cron), floor(s)));
        triggers.push(json!({
            "type": "cron",
            "metadata": {
                "timezone": zone,
                "start": fields(&s.cron),
                "end": fields(&e.cron),
                "desiredReplicas": floor(s).to_string(),
            },
        }));
    }
    for (i, s) in list.iter().enumerate() {
        if !paired[i] {
            cx.w.warn(&at(i, "cron"), format!("scheduled action `{}` (cron \"{}\") is not exported: a KEDA cron trigger needs a window, from an action raising the floor above min to one lowering it, in one time zone", s.name, s.cron));
        }
    }
    triggers
}

/// An IANA zone for KEDA's `timezone`.
fn time_zone(c: &bellows_core::schedule::Cron) -> Option<String> {
    match c.zone() {
        bellows_core::schedule::Zone::Named(n) => Some(n.clone()),
        bellows_core::schedule::Zone::Fixed(0) => Some("Etc/UTC".to_owned()),
        bellows_core::schedule::Zone::Fixed(m) if m % 60 == 0 => {
            let h = -m / 60;
            Some(format!("Etc/GMT{}{h}", if h > 0 { "+" } else { "" }))
        }
        bellows_core::schedule::Zone::Fixed(_) => None,
    }
}

fn policy_path<'a>(p: &'a PolicySpec, key: &'a str) -> Vec<Seg<'a>> {
    vec![Seg::Key("policies"), Seg::Key(&p.name), Seg::Key(key)]
}

/// The pod's one container: image, command, environment, port, resources, probes.
fn container(cx: &mut Cx<'_, '_>, g: &GroupSpec, knative: bool) -> Map<String, Value> {
    let l = &g.launch;
    let mut env: Vec<Value> = l
        .env
        .iter()
        .map(|(k, v)| json!({ "name": k, "value": v }))
        .collect();
    env.push(json!({ "name": "GROUP", "value": g.name }));
    env.push(json!({ "name": "INSTANCE_ID", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }));
    env.push(json!({ "name": "BELLOWS_DATA_DIR", "value": "/var/lib/bellows" }));
    if knative {
        // Knative sets PORT itself, from the container port.
        env.push(json!({ "name": "PRIVATE_IP", "value": "0.0.0.0" }));
    } else {
        env.push(json!({ "name": "PORT", "value": l.port.to_string() }));
        env.push(json!({ "name": "PRIVATE_IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } }));
    }
    let resources = json!({
        "cpu": cpu(l.instance_type.vcpu),
        "memory": format!("{}Mi", l.instance_type.memory_mib),
    });
    let mut c = Map::new();
    c.insert("name".into(), json!("app"));
    c.insert("image".into(), json!(cx.opts.image));
    c.insert("command".into(), json!(l.command));
    c.insert("env".into(), Value::Array(env));
    let port_name = if knative { "http1" } else { "http" };
    c.insert(
        "ports".into(),
        json!([{ "name": port_name, "containerPort": l.port, "protocol": "TCP" }]),
    );
    c.insert(
        "resources".into(),
        json!({ "requests": resources, "limits": resources }),
    );
    c.insert(
        "volumeMounts".into(),
        json!([{ "name": "data", "mountPath": "/var/lib/bellows" }]),
    );
    if let Some(tg) = g
        .target_groups
        .first()
        .and_then(|n| cx.stack.target_group(n))
    {
        probes(cx, g, tg, &mut c, knative);
    }
    c
}

/// Readiness from the health check, startup from the grace period, liveness only
/// where the group replaces instances the load balancer finds unhealthy (ELB).
fn probes(
    cx: &mut Cx<'_, '_>,
    g: &GroupSpec,
    tg: &TargetGroupSpec,
    c: &mut Map<String, Value>,
    knative: bool,
) {
    let hc = &tg.health_check;
    let at = [
        Seg::Key("target_groups"),
        Seg::Key(&tg.name),
        Seg::Key("health_check"),
        Seg::Key("matcher"),
    ];
    let matcher: Vec<String> = hc
        .matcher
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    if hc.matcher.iter().any(|&(_, hi)| hi >= 400) {
        cx.w.warn(&at, format!("target group `{}`: matcher \"{}\" counts 4xx as healthy; an httpGet probe fails on them (it passes on 200-399)", tg.name, matcher.join(",")));
    } else if cx.w.at.has(&at) && hc.matcher != [(200, 399)] {
        cx.w.warn(&at, format!("target group `{}`: matcher \"{}\" is narrower than an httpGet probe, which passes on any of 200-399", tg.name, matcher.join(",")));
    }
    // Health checks go to the target group's port, as in bellows and ALB.
    let port = if knative || tg.port != g.launch.port {
        json!(tg.port)
    } else {
        json!("http")
    };
    let get = |port: &Value| json!({ "path": hc.path, "port": port });
    let period = secs(hc.interval).max(1);
    let timeout = secs(hc.timeout).max(1);
    c.insert(
        "readinessProbe".into(),
        json!({
            "httpGet": get(&port),
            "periodSeconds": period,
            "timeoutSeconds": timeout,
            "successThreshold": hc.healthy_threshold,
            "failureThreshold": hc.unhealthy_threshold,
        }),
    );
    let grace = secs(g.health_check_grace_period);
    if grace > 0 {
        c.insert(
            "startupProbe".into(),
            json!({
                "httpGet": get(&port),
                "periodSeconds": period,
                "timeoutSeconds": timeout,
                "failureThreshold": grace.div_ceil(period) + u64::from(hc.unhealthy_threshold),
            }),
        );
    }
    if g.health_check_type == HealthCheckType::Elb {
        c.insert(
            "livenessProbe".into(),
            json!({
                "httpGet": get(&port),
                "periodSeconds": period,
                "timeoutSeconds": timeout,
                "successThreshold": 1,
                "failureThreshold": hc.unhealthy_threshold,
            }),
        );
    }
}

fn pod_labels(cx: &Cx<'_, '_>, g: &GroupSpec, name: &str) -> Map<String, Value> {
    let mut labels = Map::new();
    labels.insert(NAME.into(), json!(name));
    labels.insert(PART_OF.into(), json!(cx.stack_label));
    for tg in &g.target_groups {
        labels.insert(format!("{TG_LABEL}{}", dns1035(tg)), json!("true"));
    }
    labels
}

fn deployment(cx: &mut Cx<'_, '_>, g: &GroupSpec, name: &str, replicas: bool) -> Value {
    let deregistration = g
        .target_groups
        .iter()
        .filter_map(|n| cx.stack.target_group(n))
        .map(|tg| secs(tg.deregistration_delay))
        .max()
        .unwrap_or(0);
    let mut c = container(cx, g, false);
    if deregistration > 0 {
        // Endpoints drop the pod while it keeps serving: the deregistration delay.
        c.insert(
            "lifecycle".into(),
            json!({ "preStop": { "sleep": { "seconds": deregistration } } }),
        );
    }
    let mut pod = Map::new();
    pod.insert(
        "terminationGracePeriodSeconds".into(),
        json!(secs(g.launch.stop_timeout) + deregistration),
    );
    if g.zones.len() > 1 {
        pod.insert(
            "topologySpreadConstraints".into(),
            json!([{
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": selector(cx, name),
            }]),
        );
    }
    if let Some(setup) = &g.launch.setup {
        pod.insert(
            "initContainers".into(),
            json!([{
                "name": "setup",
                "image": cx.opts.image,
                "command": ["/bin/sh", "-c", setup],
                "env": c["env"],
                "volumeMounts": c["volumeMounts"],
            }]),
        );
    }
    pod.insert("containers".into(), json!([Value::Object(c)]));
    pod.insert(
        "volumes".into(),
        json!([{ "name": "data", "emptyDir": {} }]),
    );
    let mut spec = Map::new();
    if replicas {
        spec.insert("replicas".into(), json!(g.desired));
    }
    spec.insert("selector".into(), selector(cx, name));
    spec.insert(
        "template".into(),
        json!({
            "metadata": { "labels": pod_labels(cx, g, name) },
            "spec": pod,
        }),
    );
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(cx, name),
        "spec": spec,
    })
}

/// A trigger or metric that scales a group, and how.
enum Scaler {
    /// An HPA Utilization target on CPU.
    Cpu(f64),
    /// A KEDA trigger.
    Keda(Value),
}

fn autoscaler(
    cx: &mut Cx<'_, '_>,
    g: &GroupSpec,
    name: &str,
    policies: &[&PolicySpec],
    cron: Vec<Value>,
) -> Option<Value> {
    let mut scalers: Vec<Scaler> = cron.into_iter().map(Scaler::Keda).collect();
    let mut behavior: Option<Value> = None;
    for p in policies {
        match &p.kind {
            PolicyKind::Hpa(h) => {
                if let Some(s) = tracked(cx, p, &h.metric, h.target, 1.0) {
                    scalers.push(s);
                }
                behavior = Some(hpa_behavior(cx, p, h));
            }
            PolicyKind::TargetTracking {
                metric,
                target,
                disable_scale_in,
                warmup,
                period,
            } => {
                if warmup.is_some() {
                    cx.w.warn(&policy_path(p, "warmup"), format!("policy `{}`: warmup does not carry over per autoscaler; the HPA leaves out the CPU of pods not yet ready (the controller's --horizontal-pod-autoscaler-cpu-initialization-period)", p.name));
                }
                if let Some(s) = tracked(cx, p, metric, *target, period.as_secs_f64().max(1.0)) {
                    scalers.push(s);
                }
                // Like AWS, slow to scale in; none at all when scale-in is disabled.
                let down = if *disable_scale_in {
                    json!({ "selectPolicy": "Disabled" })
                } else {
                    json!({ "stabilizationWindowSeconds": 300 })
                };
                behavior.get_or_insert(json!({ "scaleDown": down }));
            }
            PolicyKind::Simple { .. } | PolicyKind::Step { .. } => {
                scalers.extend(alarm_driven(cx, p));
            }
            PolicyKind::Predictive(_) => {
                cx.w.warn(&policy_path(p, "type"), format!("policy `{}`: the predictive policy has no Kubernetes equivalent and is not exported (the nearest is a KEDA trigger on the request rate)", p.name));
            }
            PolicyKind::Kpa(_) => {}
        }
    }
    if scalers.is_empty() {
        return None;
    }
    if g.max == 0 {
        cx.w.warn(
            &group_path(g, "max"),
            format!(
                "group `{}`: max = 0 leaves nothing to scale; no autoscaler is exported",
                g.name
            ),
        );
        return None;
    }
    let target_ref = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "name": name });
    let all_cpu = scalers.iter().all(|s| matches!(s, Scaler::Cpu(_)));
    if all_cpu {
        if g.min == 0 {
            cx.w.warn(&group_path(g, "min"), format!("group `{}`: min = 0 becomes minReplicas 1 (an HPA does not scale to zero; KEDA would)", g.name));
        }
        let metrics: Vec<Value> = scalers
            .iter()
            .map(|s| match s {
                Scaler::Cpu(t) => json!({
                    "type": "Resource",
                    "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": t.round() as i64 } },
                }),
                Scaler::Keda(_) => unreachable!("all CPU"),
            })
            .collect();
        let mut spec = Map::new();
        spec.insert("scaleTargetRef".into(), target_ref);
        spec.insert("minReplicas".into(), json!(g.min.max(1)));
        spec.insert("maxReplicas".into(), json!(g.max));
        spec.insert("metrics".into(), Value::Array(metrics));
        if let Some(b) = behavior {
            spec.insert("behavior".into(), b);
        }
        return Some(json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": metadata(cx, name),
            "spec": spec,
        }));
    }
    let triggers: Vec<Value> = scalers
        .into_iter()
        .map(|s| match s {
            Scaler::Cpu(t) => json!({
                "type": "cpu",
                "metricType": "Utilization",
                "metadata": { "value": number(t.round()) },
            }),
            Scaler::Keda(v) => v,
        })
        .collect();
    let mut spec = Map::new();
    spec.insert("scaleTargetRef".into(), json!({ "name": name }));
    spec.insert("minReplicaCount".into(), json!(g.min));
    spec.insert("maxReplicaCount".into(), json!(g.max));
    if let Some(b) = behavior {
        spec.insert(
            "advanced".into(),
            json!({ "horizontalPodAutoscalerConfig": { "behavior": b } }),
        );
    }
    spec.insert("triggers".into(), Value::Array(triggers));
    Some(json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata(cx, name),
        "spec": spec,
    }))
}

fn hpa_behavior(cx: &mut Cx<'_, '_>, p: &PolicySpec, h: &HpaSpec) -> Value {
    let d = HpaSpec::new(h.metric.clone(), h.target);
    if h.sync_period != d.sync_period {
        cx.w.warn(&policy_path(p, "sync_period"), format!("policy `{}`: sync_period {} is the controller's --horizontal-pod-autoscaler-sync-period for every HPA, not one HPA's; it is not exported", p.name, h.sync_period));
    }
    let mut up = Map::new();
    let mut down = Map::new();
    up.insert(
        "stabilizationWindowSeconds".into(),
        json!(secs(h.scale_up_window)),
    );
    down.insert(
        "stabilizationWindowSeconds".into(),
        json!(secs(h.scale_down_window)),
    );
    if h.tolerance != d.tolerance {
        cx.w.warn(&policy_path(p, "tolerance"), format!("policy `{}`: a tolerance of one HPA's own ({}) needs Kubernetes 1.35 or later (HPAConfigurableTolerance); older clusters use the controller's 0.1", p.name, number(h.tolerance)));
        // Per-direction tolerance (HPAConfigurableTolerance, Kubernetes 1.35 and later).
        up.insert("tolerance".into(), json!(number(h.tolerance)));
        down.insert("tolerance".into(), json!(number(h.tolerance)));
    }
    json!({ "scaleUp": up, "scaleDown": down })
}

/// A tracked metric as an HPA target or a KEDA trigger. `period` is the seconds a
/// request count is counted over (ALB's per-minute counts against KEDA's per second).
fn tracked(
    cx: &mut Cx<'_, '_>,
    p: &PolicySpec,
    metric: &TrackedMetric,
    target: f64,
    period: f64,
) -> Option<Scaler> {
    match metric {
        TrackedMetric::AsgAverageCpuUtilization => Some(Scaler::Cpu(target)),
        TrackedMetric::AlbRequestCountPerTarget { target_group } => {
            let per_second = target / period;
            cx.w.warn(&policy_path(p, "metric"), format!("policy `{}`: the request rate becomes a KEDA Prometheus trigger at {} requests per second per pod ({} per {}s); its query is a placeholder for your gateway's request metric and {PROMETHEUS} for your Prometheus", p.name, threshold(per_second), number(target), number(period)));
            Some(Scaler::Keda(prometheus(
                &format!(
                    "sum(rate(gateway_http_requests_total{{service=\"{}\"}}[1m]))",
                    dns1035(target_group)
                ),
                per_second,
                true,
            )))
        }
        TrackedMetric::Custom { metric, statistic } => {
            cx.w.warn(&policy_path(p, "metric"), format!("policy `{}`: custom metric {}/{} becomes a KEDA Prometheus trigger whose query is a placeholder", p.name, metric.namespace, metric.name));
            Some(Scaler::Keda(prometheus(
                &promql(&metric.name, statistic, &metric.dimensions),
                target,
                true,
            )))
        }
    }
}

fn promql(name: &str, statistic: &Statistic, dims: &BTreeMap<String, String>) -> String {
    let labels: Vec<String> = dims
        .iter()
        .map(|(k, v)| format!("{}=\"{v}\"", snake(k)))
        .collect();
    let series = format!("{}{{{}}}", snake(name), labels.join(","));
    match statistic {
        Statistic::Sum | Statistic::SampleCount => format!("sum(rate({series}[1m]))"),
        Statistic::Maximum => format!("max({series})"),
        Statistic::Minimum => format!("min({series})"),
        _ => format!("avg({series})"),
    }
}

/// `RequestCountPerTarget` -> `request_count_per_target`.
fn snake(s: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let after_lower = i > 0 && chars[i - 1].is_ascii_lowercase();
            let before_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase)
                && i > 0
                && chars[i - 1].is_ascii_uppercase();
            if after_lower || before_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    out
}

/// A threshold to four decimals: 2 per minute is 0.0333 per second.
fn threshold(x: f64) -> String {
    number((x * 10_000.0).round() / 10_000.0)
}

fn prometheus(query: &str, threshold_value: f64, per_pod: bool) -> Value {
    json!({
        "type": "prometheus",
        "metricType": if per_pod { "AverageValue" } else { "Value" },
        "metadata": {
            "serverAddress": PROMETHEUS,
            "query": query,
            "threshold": threshold(threshold_value),
        },
    })
}

/// Simple and step policies: KEDA triggers on the metrics of the alarms that scale
/// out with them; alarms that scale in have no counterpart.
fn alarm_driven(cx: &mut Cx<'_, '_>, p: &PolicySpec) -> Vec<Scaler> {
    let kind = if matches!(p.kind, PolicyKind::Step { .. }) {
        "step"
    } else {
        "simple"
    };
    let alarms: Vec<&AlarmSpec> = cx
        .stack
        .alarms
        .iter()
        .filter(|a| a.alarm_actions.contains(&p.name))
        .collect();
    let scales_out = match &p.kind {
        PolicyKind::Simple { adjustment, .. } => *adjustment > 0,
        PolicyKind::Step { steps, .. } => steps.iter().any(|s| s.adjustment > 0),
        _ => false,
    };
    let mut triggers = Vec::new();
    if !scales_out {
        cx.w.warn(&policy_path(p, "type"), format!("policy `{}`: {kind} scaling in on another alarm does not carry over: the autoscaler scales in by itself when the metric falls below its threshold", p.name));
        return triggers;
    }
    cx.w.warn(&policy_path(p, "type"), format!("policy `{}`: {kind} scaling does not carry over as such: its alarms become autoscaler triggers, which scale in proportion to metric / threshold rather than by fixed steps", p.name));
    for a in alarms {
        let at = [Seg::Key("alarms"), Seg::Key(&a.name), Seg::Key("metric")];
        if !matches!(
            a.comparison,
            Comparison::GreaterThanThreshold | Comparison::GreaterThanOrEqualToThreshold
        ) {
            cx.w.warn(&at, format!("alarm `{}` ({} {}) scales out on a low value; it has no autoscaler counterpart", a.name, a.metric.name, a.comparison.symbol()));
            continue;
        }
        if a.metric.name == "CPUUtilization"
            && a.metric.dimensions.contains_key("AutoScalingGroupName")
        {
            triggers.push(Scaler::Cpu(a.threshold));
            continue;
        }
        let period = a.period.as_secs_f64().max(1.0);
        let summed = matches!(a.statistic, Statistic::Sum | Statistic::SampleCount);
        let threshold = if summed {
            a.threshold / period
        } else {
            a.threshold
        };
        let per_pod = a.metric.name.ends_with("PerTarget");
        cx.w.warn(&at, format!("alarm `{}`: {}/{} becomes a KEDA Prometheus trigger{}; its query is a placeholder for the metric as your Prometheus names it", a.name, a.metric.namespace, a.metric.name, if summed { format!(" at {} per second ({} per {}s)", self::threshold(threshold), number(a.threshold), number(period)) } else { String::new() }));
        triggers.push(Scaler::Keda(prometheus(
            &promql(&a.metric.name, &a.statistic, &a.metric.dimensions),
            threshold,
            per_pod,
        )));
    }
    triggers
}

fn knative_service(cx: &mut Cx<'_, '_>, g: &GroupSpec, p: &PolicySpec, k: &KpaSpec) -> Value {
    let name = cx.groups.name(&g.name);
    let d = KpaSpec::new(k.target_group.clone(), k.target);
    if k.tick != d.tick {
        cx.w.warn(&policy_path(p, "tick"), format!("policy `{}`: tick is Knative's cluster-wide tick-interval (config-autoscaler), not exported", p.name));
    }
    if k.max_scale_down_rate != d.max_scale_down_rate {
        cx.w.warn(&policy_path(p, "max_scale_down_rate"), format!("policy `{}`: max_scale_down_rate is Knative's cluster-wide max-scale-down-rate (config-autoscaler), not exported", p.name));
    }
    let pct = |x: f64| number((x * 100.0).round());
    let mut ann = Map::new();
    let a = |k: &str| format!("autoscaling.knative.dev/{k}");
    ann.insert(a("class"), json!("kpa.autoscaling.knative.dev"));
    ann.insert(a("metric"), json!("rps"));
    ann.insert(a("target"), json!(number(k.target)));
    ann.insert(
        a("target-utilization-percentage"),
        json!(pct(k.utilization)),
    );
    ann.insert(a("window"), json!(format!("{}s", secs(k.stable_window))));
    ann.insert(
        a("panic-window-percentage"),
        json!(number(
            (k.panic_window.as_secs_f64() / k.stable_window.as_secs_f64().max(1.0) * 100.0).round()
        )),
    );
    ann.insert(
        a("panic-threshold-percentage"),
        json!(pct(k.panic_threshold)),
    );
    ann.insert(a("min-scale"), json!(g.min.to_string()));
    ann.insert(a("max-scale"), json!(g.max.to_string()));
    ann.insert(a("initial-scale"), json!(g.desired.to_string()));
    let c = container(cx, g, true);
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": metadata(cx, &name),
        "spec": { "template": {
            "metadata": { "labels": pod_labels(cx, g, &name), "annotations": ann },
            "spec": {
                "containers": [Value::Object(c)],
                "volumes": [{ "name": "data", "emptyDir": {} }],
                "timeoutSeconds": secs(g.launch.stop_timeout).max(1),
            },
        }},
    })
}

fn tg_path<'a>(tg: &'a TargetGroupSpec, key: &'a str) -> Vec<Seg<'a>> {
    vec![Seg::Key("target_groups"), Seg::Key(&tg.name), Seg::Key(key)]
}

fn target_group(cx: &mut Cx<'_, '_>, tg: &TargetGroupSpec) -> Vec<Value> {
    let name = cx.services.name(&tg.name);
    let eks = cx.opts.eks;
    if tg.algorithm != Algorithm::RoundRobin && !eks {
        cx.w.warn(&tg_path(tg, "algorithm"), format!("target group `{}`: algorithm {:?} does not carry over; the Gateway's implementation picks endpoints its own way", tg.name, tg.algorithm));
    }
    if tg.anomaly_mitigation && !(eks && tg.algorithm == Algorithm::WeightedRandom) {
        cx.w.warn(
            &tg_path(tg, "anomaly_mitigation"),
            format!(
                "target group `{}`: anomaly mitigation has no Kubernetes equivalent",
                tg.name
            ),
        );
    }
    if tg.slow_start.as_millis() > 0 && !eks {
        cx.w.warn(
            &tg_path(tg, "slow_start"),
            format!(
                "target group `{}`: slow start has no Gateway API or Service equivalent",
                tg.name
            ),
        );
    }
    if let Some(n) = tg.max_connections {
        cx.w.warn(&tg_path(tg, "max_connections"), format!("target group `{}`: max_connections = {n} and its queue (queue_size {}, queue_timeout {}) have no Kubernetes equivalent", tg.name, tg.queue_size, tg.queue_timeout));
    }
    if let Some(kn) = cx.knative.get(&tg.name) {
        let served_elsewhere = cx
            .stack
            .groups
            .iter()
            .any(|g| g.target_groups.contains(&tg.name) && cx.groups.name(&g.name) != *kn);
        if served_elsewhere {
            cx.w.warn(&tg_path(tg, "port"), format!("target group `{}` is served by a Knative group and others; its traffic goes to the Knative Service `{kn}` only", tg.name));
        }
        return Vec::new();
    }
    let mut spec = Map::new();
    spec.insert("type".into(), json!("ClusterIP"));
    spec.insert(
        "selector".into(),
        json!({ format!("{TG_LABEL}{}", dns1035(&tg.name)): "true" }),
    );
    spec.insert(
        "ports".into(),
        json!([{ "name": "http", "port": tg.port, "targetPort": tg.port, "protocol": "TCP" }]),
    );
    if let Some(s) = tg.stickiness.as_ref().filter(|_| !eks) {
        let timeout = secs(s.duration).clamp(1, 86_400);
        spec.insert("sessionAffinity".into(), json!("ClientIP"));
        spec.insert(
            "sessionAffinityConfig".into(),
            json!({ "clientIP": { "timeoutSeconds": timeout } }),
        );
        cx.w.warn(&tg_path(tg, "stickiness"), format!("target group `{}`: cookie stickiness becomes the Service's ClientIP affinity ({timeout}s), which most Gateway implementations bypass; Gateway API session persistence is experimental", tg.name));
    }
    let mut meta = metadata(cx, &name);
    if eks {
        meta["annotations"] = Value::Object(eks::service_annotations(tg));
    }
    vec![json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": spec,
    })]
}

fn listener_path<'a>(l: &'a ListenerSpec, key: &'a str) -> Vec<Seg<'a>> {
    vec![Seg::Key("listeners"), Seg::Key(&l.name), Seg::Key(key)]
}

fn rule_path<'a>(l: &'a ListenerSpec, r: &Rule, key: &'a str) -> Vec<Seg<'a>> {
    vec![
        Seg::Key("listeners"),
        Seg::Key(&l.name),
        Seg::Key("rules"),
        Seg::Where("priority", i64::from(r.priority)),
        Seg::Key(key),
    ]
}

fn listener(cx: &mut Cx<'_, '_>, l: &ListenerSpec) -> Vec<Value> {
    let name = cx.listeners.name(&l.name);
    if cx.opts.eks {
        return eks::ingress(cx, l, &name);
    }
    let open: Vec<String> = l.ingress.iter().map(ToString::to_string).collect();
    if open != ["0.0.0.0/0", "::/0"] && open != ["0.0.0.0/0"] {
        cx.w.warn(&listener_path(l, "ingress"), format!("listener `{}`: the ingress list ({}) has no Gateway API field; use loadBalancerSourceRanges on the Gateway's Service or a NetworkPolicy", l.name, open.join(", ")));
    }
    for key in ["idle_timeout", "header_timeout", "max_body", "access_log"] {
        if cx.w.at.has(&listener_path(l, key)) {
            cx.w.warn(&listener_path(l, key), format!("listener `{}`: {key} has no Gateway API field (each implementation has its own)", l.name));
        }
    }
    if l.rules.len() > 1 {
        cx.w.warn(&rule_path(l, &l.rules[0], "priority"), format!("listener `{}`: rule priorities do not carry over; Gateway API orders matches by specificity (exact path, longest prefix, method, headers), so check that overlapping rules still win as they did", l.name));
    }
    let gateway = json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": metadata(cx, &name),
        "spec": {
            "gatewayClassName": cx.opts.gateway_class,
            "listeners": [{
                "name": "http",
                "protocol": "HTTP",
                "port": l.address.port(),
                "allowedRoutes": { "namespaces": { "from": "Same" } },
            }],
        },
    });
    // HTTPRoute hostnames are per route: one route for each set of host conditions.
    let mut by_hosts: BTreeMap<Vec<String>, Vec<Value>> = BTreeMap::new();
    for r in &l.rules {
        if !r.conditions.source_ips.is_empty() {
            cx.w.warn(&rule_path(l, r, "source_ip"), format!("listener `{}` rule {}: the source_ip condition has no Gateway API match and is dropped, so the rule matches every client", l.name, r.priority));
        }
        let matches = matches(cx, l, r, &r.conditions);
        if let Some(mut rule) = action(cx, l, Some(r), &r.action) {
            rule.insert("matches".into(), Value::Array(matches));
            by_hosts
                .entry(r.conditions.hosts.clone())
                .or_default()
                .push(Value::Object(rule));
        }
    }
    if let Some(rule) = action(cx, l, None, &l.default_action) {
        by_hosts
            .entry(Vec::new())
            .or_default()
            .push(Value::Object(rule));
    }
    let mut docs = vec![gateway];
    let mut n = 0;
    for (hosts, rules) in by_hosts {
        // At most 16 rules a route.
        for chunk in rules.chunks(16) {
            n += 1;
            let route = if n == 1 {
                name.clone()
            } else {
                format!("{}-{n}", crate::names::shorten(&name, 60, true))
            };
            let mut spec = Map::new();
            spec.insert("parentRefs".into(), json!([{ "name": name }]));
            if !hosts.is_empty() {
                spec.insert("hostnames".into(), json!(hosts));
            }
            spec.insert("rules".into(), json!(chunk));
            docs.push(json!({
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": metadata(cx, &route),
                "spec": spec,
            }));
        }
    }
    docs
}

/// ALB's `*` and `?` path patterns as Gateway API path matches.
fn path_match(cx: &mut Cx<'_, '_>, l: &ListenerSpec, r: &Rule, p: &str) -> Value {
    let wild = |s: &str| s.contains(['*', '?']);
    if !wild(p) {
        return json!({ "type": "Exact", "value": p });
    }
    if let Some(prefix) = p.strip_suffix('*')
        && !wild(prefix)
        && (prefix.ends_with('/') || prefix.is_empty())
    {
        let value = if prefix.len() > 1 {
            prefix.trim_end_matches('/')
        } else {
            "/"
        };
        return json!({ "type": "PathPrefix", "value": value });
    }
    cx.w.warn(&rule_path(l, r, "path"), format!("listener `{}` rule {}: path pattern \"{p}\" becomes a RegularExpression match, which Gateway implementations support only optionally", l.name, r.priority));
    json!({ "type": "RegularExpression", "value": regex(p) })
}

fn regex(pattern: &str) -> String {
    let mut out = String::from("^");
    for c in pattern.chars() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            c if "\\.+()[]{}|^$".contains(c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('$');
    out
}

fn matches(cx: &mut Cx<'_, '_>, l: &ListenerSpec, r: &Rule, c: &Conditions) -> Vec<Value> {
    let paths: Vec<Option<Value>> = if c.paths.is_empty() {
        vec![None]
    } else {
        c.paths
            .iter()
            .map(|p| Some(path_match(cx, l, r, p)))
            .collect()
    };
    let methods: Vec<Option<&String>> = if c.methods.is_empty() {
        vec![None]
    } else {
        c.methods.iter().map(Some).collect()
    };
    // Every header must match, each by one of its values: one match per combination.
    let mut headers: Vec<Vec<Value>> = vec![Vec::new()];
    for (h, values) in &c.headers {
        let mut next = Vec::new();
        for combo in &headers {
            for v in values {
                let m = if v.contains(['*', '?']) {
                    cx.w.warn(&rule_path(l, r, "header"), format!("listener `{}` rule {}: header pattern \"{v}\" becomes a RegularExpression match (optional in Gateway API)", l.name, r.priority));
                    json!({ "type": "RegularExpression", "name": h, "value": format!("(?i){}", regex(v)) })
                } else {
                    json!({ "type": "Exact", "name": h, "value": v })
                };
                let mut c = combo.clone();
                c.push(m);
                next.push(c);
            }
        }
        headers = next;
    }
    let mut out = Vec::new();
    for p in &paths {
        for m in &methods {
            for h in &headers {
                let mut one = Map::new();
                if let Some(p) = p {
                    one.insert("path".into(), p.clone());
                }
                if let Some(m) = m {
                    one.insert("method".into(), json!(m));
                }
                if !h.is_empty() {
                    one.insert("headers".into(), json!(h));
                }
                if one.is_empty() {
                    one.insert("path".into(), json!({ "type": "PathPrefix", "value": "/" }));
                }
                out.push(Value::Object(one));
            }
        }
    }
    if out.len() > 64 {
        cx.w.warn(&rule_path(l, r, "priority"), format!("listener `{}` rule {}: its conditions make {} matches, more than the 64 an HTTPRoute rule takes; the rest are dropped", l.name, r.priority, out.len()));
        out.truncate(64);
    }
    out
}

/// A rule's action as an HTTPRoute rule (without its matches), or None (warned).
fn action(
    cx: &mut Cx<'_, '_>,
    l: &ListenerSpec,
    r: Option<&Rule>,
    a: &Action,
) -> Option<Map<String, Value>> {
    let at = |key: &'static str| match r {
        Some(r) => rule_path(l, r, key),
        None => listener_path(l, "default"),
    };
    let what = match r {
        Some(r) => format!("listener `{}` rule {}", l.name, r.priority),
        None => format!("listener `{}` default action", l.name),
    };
    let mut rule = Map::new();
    match a {
        Action::Forward(groups) => {
            let refs: Vec<Value> = groups
                .iter()
                .map(|w| {
                    let (name, port) = match cx.knative.get(&w.target_group) {
                        Some(kn) => (kn.clone(), 80),
                        None => (
                            cx.services.name(&w.target_group),
                            cx.stack
                                .target_group(&w.target_group)
                                .map_or(80, |tg| tg.port),
                        ),
                    };
                    json!({ "name": name, "port": port, "weight": w.weight })
                })
                .collect();
            rule.insert("backendRefs".into(), Value::Array(refs));
        }
        Action::Redirect(rd) => {
            let mut f = Map::new();
            let placeholder = |s: &Option<String>, own: &str| match s {
                Some(s) if s == own => None,
                other => other.clone(),
            };
            if let Some(p) = placeholder(&rd.protocol, "#{protocol}") {
                f.insert("scheme".into(), json!(p.to_lowercase()));
            }
            if let Some(h) = placeholder(&rd.host, "#{host}") {
                f.insert("hostname".into(), json!(h));
            }
            if let Some(p) = placeholder(&rd.port, "#{port}") {
                match p.parse::<u16>() {
                    Ok(n) => {
                        f.insert("port".into(), json!(n));
                    }
                    Err(_) => cx.w.warn(
                        &at("redirect"),
                        format!("{what}: redirect port \"{p}\" is not a number and is dropped"),
                    ),
                }
            }
            if let Some(p) = placeholder(&rd.path, "/#{path}") {
                f.insert(
                    "path".into(),
                    json!({ "type": "ReplaceFullPath", "replaceFullPath": p }),
                );
            }
            if f.values().any(|v| v.to_string().contains("#{")) {
                cx.w.warn(&at("redirect"), format!("{what}: redirect templates like #{{host}} inside a value have no Gateway API equivalent; the text is kept as written"));
            }
            if rd.query.as_deref().is_some_and(|q| q != "#{query}") {
                cx.w.warn(
                    &at("redirect"),
                    format!("{what}: a redirect's query has no Gateway API field and is dropped"),
                );
            }
            let status = if matches!(rd.status, 301 | 302) {
                rd.status
            } else {
                cx.w.warn(&at("redirect"), format!("{what}: redirect status {} becomes 302 (Gateway API's core statuses are 301 and 302)", rd.status));
                302
            };
            f.insert("statusCode".into(), json!(status));
            rule.insert(
                "filters".into(),
                json!([{ "type": "RequestRedirect", "requestRedirect": f }]),
            );
        }
        Action::FixedResponse(fr) => {
            cx.w.warn(
                &at("fixed_response"),
                format!(
                    "{what}: a fixed response ({}) has no Gateway API equivalent and is dropped{}",
                    fr.status,
                    if r.is_none() {
                        "; unmatched requests get the Gateway's own 404"
                    } else {
                        ""
                    }
                ),
            );
            return None;
        }
    }
    Some(rule)
}

/// Warnings for what the stack has and the export leaves out entirely.
fn unexported(cx: &mut Cx<'_, '_>) {
    let used: Vec<&String> = cx
        .stack
        .policies
        .iter()
        .filter(|p| matches!(p.kind, PolicyKind::Simple { .. } | PolicyKind::Step { .. }))
        .map(|p| &p.name)
        .collect();
    for a in &cx.stack.alarms {
        if !a.alarm_actions.iter().any(|x| used.contains(&x)) {
            cx.w.warn(&path(&format!("alarms.{}", a.name)), format!("alarm `{}` scales nothing and is not exported (a Prometheus alerting rule is the counterpart)", a.name));
        }
    }
    for h in &cx.stack.webhooks {
        cx.w.warn(
            &path(&format!("webhooks.{}", h.name)),
            format!("webhook `{}` is not exported", h.name),
        );
    }
}

mod eks;

#[cfg(test)]
mod tests;
