//! Each group's autoscaler: an HPA, a KEDA ScaledObject or a Knative Service from its
//! policies, with PromQL for the CloudWatch metrics they track.

use super::*;

/// A trigger or metric that scales a group, and how.
pub(super) enum Scaler {
    /// An HPA Utilization target on CPU.
    Cpu(f64),
    /// A KEDA trigger.
    Keda(Value),
}

pub(super) fn autoscaler(
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

pub(super) fn hpa_behavior(cx: &mut Cx<'_, '_>, p: &PolicySpec, h: &HpaSpec) -> Value {
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
pub(super) fn tracked(
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

pub(super) fn promql(name: &str, statistic: &Statistic, dims: &BTreeMap<String, String>) -> String {
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
pub(super) fn snake(s: &str) -> String {
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
pub(super) fn threshold(x: f64) -> String {
    number((x * 10_000.0).round() / 10_000.0)
}

pub(super) fn prometheus(query: &str, threshold_value: f64, per_pod: bool) -> Value {
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
pub(super) fn alarm_driven(cx: &mut Cx<'_, '_>, p: &PolicySpec) -> Vec<Scaler> {
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
        if bellows_core::metrics::catalogue::CPU_UTILIZATION.is(&a.metric)
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

pub(super) fn knative_service(
    cx: &mut Cx<'_, '_>,
    g: &GroupSpec,
    p: &PolicySpec,
    k: &KpaSpec,
) -> Value {
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
