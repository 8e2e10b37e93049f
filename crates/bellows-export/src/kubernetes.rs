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

mod autoscale;
mod gateway;

use autoscale::*;
use gateway::*;

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
    if cx.w.at.has(&group_path(g, "role")) {
        cx.w.warn(&group_path(g, "role"), format!("group `{}`: its instance role `{}` ({}) is not exported: on EKS, give the pods' ServiceAccount an IAM role that allows the same (IRSA or EKS Pod Identity)", g.name, g.role.name, g.role.allow.join(", ")));
    }
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
        let (Some(start_cron), Some(end_cron)) = (&s.cron, &e.cron) else {
            continue;
        };
        let (Some(zone), Some(end_zone)) = (time_zone(start_cron), time_zone(end_cron)) else {
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
        cx.w.warn(&at(i, "cron"), format!("scheduled actions `{}` and `{}` become a KEDA cron window from \"{}\" to \"{}\" with a floor of {} replicas", s.name, e.name, fields(start_cron), fields(end_cron), floor(s)));
        triggers.push(json!({
            "type": "cron",
            "metadata": {
                "timezone": zone,
                "start": fields(start_cron),
                "end": fields(end_cron),
                "desiredReplicas": floor(s).to_string(),
            },
        }));
    }
    for (i, s) in list.iter().enumerate() {
        if !paired[i] {
            cx.w.warn(&at(i, "cron"), format!("scheduled action `{}` (cron \"{}\") is not exported: a KEDA cron trigger needs a window, from an action raising the floor above min to one lowering it, in one time zone", s.name, s.cron.as_ref().map(ToString::to_string).unwrap_or_default()));
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
