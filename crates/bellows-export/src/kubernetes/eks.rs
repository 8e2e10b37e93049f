//! `--ingress eks`: per listener an Ingress for the AWS Load Balancer Controller, whose
//! annotations keep ALB's behaviour: target-group attributes (stickiness, algorithm,
//! slow start, deregistration delay) and health checks on the Services, rule order as
//! priority, and actions and conditions (weights, redirects, fixed responses, methods,
//! headers, hosts, source IPs) as the controller's `actions.*` / `conditions.*`.

use bellows_core::lb::rules::{Action, Rule};
use bellows_core::lb::select::Algorithm;
use bellows_core::stack::{ListenerSpec, TargetGroupSpec};
use serde_json::{Map, Value, json};

use super::{Cx, listener_path, metadata};
use crate::secs;

const A: &str = "alb.ingress.kubernetes.io/";

/// The controller's per-target-group annotations, set on the target group's Service.
pub(super) fn service_annotations(tg: &TargetGroupSpec) -> Map<String, Value> {
    let hc = &tg.health_check;
    let mut m = Map::new();
    let mut put = |k: &str, v: String| {
        m.insert(format!("{A}{k}"), Value::String(v));
    };
    put("healthcheck-path", hc.path.clone());
    put(
        "healthcheck-interval-seconds",
        secs(hc.interval).clamp(5, 300).to_string(),
    );
    put(
        "healthcheck-timeout-seconds",
        secs(hc.timeout).clamp(2, 120).to_string(),
    );
    put("healthy-threshold-count", hc.healthy_threshold.to_string());
    put(
        "unhealthy-threshold-count",
        hc.unhealthy_threshold.to_string(),
    );
    let codes: Vec<String> = hc
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
    put("success-codes", codes.join(","));
    let algorithm = match tg.algorithm {
        Algorithm::RoundRobin => "round_robin",
        Algorithm::LeastOutstandingRequests => "least_outstanding_requests",
        Algorithm::WeightedRandom => "weighted_random",
    };
    let mut attrs = vec![
        format!(
            "deregistration_delay.timeout_seconds={}",
            secs(tg.deregistration_delay).min(3600)
        ),
        format!("load_balancing.algorithm.type={algorithm}"),
    ];
    let slow = secs(tg.slow_start);
    if slow > 0 {
        attrs.push(format!(
            "slow_start.duration_seconds={}",
            slow.clamp(30, 900)
        ));
    }
    if tg.algorithm == Algorithm::WeightedRandom && tg.anomaly_mitigation {
        attrs.push("load_balancing.algorithm.anomaly_mitigation=on".to_owned());
    }
    if let Some(s) = &tg.stickiness {
        attrs.push("stickiness.enabled=true".to_owned());
        match &s.app_cookie {
            None => {
                attrs.push("stickiness.type=lb_cookie".to_owned());
                attrs.push(format!(
                    "stickiness.lb_cookie.duration_seconds={}",
                    secs(s.duration).clamp(1, 604_800)
                ));
            }
            Some(c) => {
                attrs.push("stickiness.type=app_cookie".to_owned());
                attrs.push(format!("stickiness.app_cookie.cookie_name={c}"));
                attrs.push(format!(
                    "stickiness.app_cookie.duration_seconds={}",
                    secs(s.duration).clamp(1, 604_800)
                ));
            }
        }
    }
    put("target-group-attributes", attrs.join(","));
    m
}

/// The controller's action JSON for a rule's action.
fn action_json(cx: &mut Cx<'_, '_>, a: &Action) -> Value {
    match a {
        Action::Forward(groups) => {
            let tgs: Vec<Value> = groups
                .iter()
                .map(|w| {
                    let port = cx.stack.target_group(&w.target_group).map_or(80, |t| t.port);
                    json!({ "serviceName": cx.services.name(&w.target_group), "servicePort": port.to_string(), "weight": w.weight })
                })
                .collect();
            json!({ "type": "forward", "forwardConfig": { "targetGroups": tgs } })
        }
        Action::Redirect(r) => {
            let mut c = Map::new();
            for (k, v) in [
                ("protocol", &r.protocol),
                ("host", &r.host),
                ("port", &r.port),
                ("path", &r.path),
                ("query", &r.query),
            ] {
                if let Some(v) = v {
                    let v = if k == "protocol" && !v.starts_with("#{") {
                        v.to_uppercase()
                    } else {
                        v.clone()
                    };
                    c.insert(k.into(), json!(v));
                }
            }
            c.insert("statusCode".into(), json!(format!("HTTP_{}", r.status)));
            json!({ "type": "redirect", "redirectConfig": c })
        }
        Action::FixedResponse(f) => json!({
            "type": "fixed-response",
            "fixedResponseConfig": { "contentType": f.content_type, "statusCode": f.status.to_string(), "messageBody": f.body },
        }),
    }
}

/// A simple forward to one target group: a plain Service backend, no annotation.
fn plain_backend(cx: &mut Cx<'_, '_>, a: &Action) -> Option<Value> {
    match a {
        Action::Forward(g) if g.len() == 1 => {
            let port = cx
                .stack
                .target_group(&g[0].target_group)
                .map_or(80, |t| t.port);
            Some(
                json!({ "service": { "name": cx.services.name(&g[0].target_group), "port": { "number": port } } }),
            )
        }
        _ => None,
    }
}

fn annotated(name: &str) -> Value {
    json!({ "service": { "name": name, "port": { "name": "use-annotation" } } })
}

fn conditions(r: &Rule) -> Vec<Value> {
    let c = &r.conditions;
    let mut out = Vec::new();
    if !c.hosts.is_empty() {
        out.push(json!({ "field": "host-header", "hostHeaderConfig": { "values": c.hosts } }));
    }
    if !c.methods.is_empty() {
        out.push(json!({ "field": "http-request-method", "httpRequestMethodConfig": { "values": c.methods } }));
    }
    for (h, values) in &c.headers {
        out.push(json!({ "field": "http-header", "httpHeaderConfig": { "httpHeaderName": h, "values": values } }));
    }
    if !c.source_ips.is_empty() {
        let ips: Vec<String> = c.source_ips.iter().map(ToString::to_string).collect();
        out.push(json!({ "field": "source-ip", "sourceIpConfig": { "values": ips } }));
    }
    out
}

pub(super) fn ingress(cx: &mut Cx<'_, '_>, l: &ListenerSpec, name: &str) -> Vec<Value> {
    let mut ann = Map::new();
    let mut put = |k: &str, v: String| {
        ann.insert(format!("{A}{k}"), Value::String(v));
    };
    put("scheme", "internet-facing".to_owned());
    put("target-type", "ip".to_owned());
    put(
        "listen-ports",
        json!([{ "HTTP": l.public_port() }]).to_string(),
    );
    put(
        "load-balancer-attributes",
        format!(
            "idle_timeout.timeout_seconds={}",
            secs(l.idle_timeout).clamp(1, 4000)
        ),
    );
    let cidrs: Vec<String> = l.ingress.iter().map(ToString::to_string).collect();
    if cidrs.iter().any(|c| c.contains(':')) {
        put("ip-address-type", "dualstack".to_owned());
    }
    put("inbound-cidrs", cidrs.join(","));
    if l.access_log && cx.w.at.has(&listener_path(l, "access_log")) {
        cx.w.warn(&listener_path(l, "access_log"), format!("listener `{}`: ALB access logs need an S3 bucket (load-balancer-attributes access_logs.s3.*); not exported", l.name));
    }
    for key in ["header_timeout", "max_body"] {
        if cx.w.at.has(&listener_path(l, key)) {
            cx.w.warn(
                &listener_path(l, key),
                format!(
                    "listener `{}`: {key} has no ALB setting and is not exported",
                    l.name
                ),
            );
        }
    }
    // Paths in priority order: the controller gives them ALB priorities in this order.
    let mut paths = Vec::new();
    for r in &l.rules {
        let simple = r.conditions.hosts.is_empty()
            && r.conditions.methods.is_empty()
            && r.conditions.headers.is_empty()
            && r.conditions.source_ips.is_empty();
        let backend = match plain_backend(cx, &r.action) {
            Some(b) if simple => b,
            _ => {
                let action = format!("rule-{}", r.priority);
                let a = action_json(cx, &r.action);
                ann.insert(format!("{A}actions.{action}"), Value::String(a.to_string()));
                let c = conditions(r);
                if !c.is_empty() {
                    ann.insert(
                        format!("{A}conditions.{action}"),
                        Value::String(Value::Array(c).to_string()),
                    );
                }
                annotated(&action)
            }
        };
        let patterns = if r.conditions.paths.is_empty() {
            vec!["/*".to_owned()]
        } else {
            r.conditions.paths.clone()
        };
        for p in patterns {
            // ALB's own wildcards, as the controller passes them through.
            paths.push(
                json!({ "path": p, "pathType": "ImplementationSpecific", "backend": backend }),
            );
        }
    }
    let default = match plain_backend(cx, &l.default_action) {
        Some(b) => b,
        None => {
            let a = action_json(cx, &l.default_action);
            ann.insert(
                format!("{A}actions.default-action"),
                Value::String(a.to_string()),
            );
            annotated("default-action")
        }
    };
    let mut meta = metadata(cx, name);
    meta["annotations"] = Value::Object(ann);
    let mut spec = Map::new();
    spec.insert("ingressClassName".into(), json!("alb"));
    spec.insert("defaultBackend".into(), default);
    if !paths.is_empty() {
        spec.insert("rules".into(), json!([{ "http": { "paths": paths } }]));
    }
    vec![json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta,
        "spec": spec,
    })]
}
