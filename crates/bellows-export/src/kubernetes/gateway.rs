//! Listeners and target groups as Gateway API objects: a Gateway and HTTPRoutes with
//! their matches and actions, Services for the target groups.

use super::*;

pub(super) fn tg_path<'a>(tg: &'a TargetGroupSpec, key: &'a str) -> Vec<Seg<'a>> {
    vec![Seg::Key("target_groups"), Seg::Key(&tg.name), Seg::Key(key)]
}

pub(super) fn target_group(cx: &mut Cx<'_, '_>, tg: &TargetGroupSpec) -> Vec<Value> {
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

pub(super) fn listener_path<'a>(l: &'a ListenerSpec, key: &'a str) -> Vec<Seg<'a>> {
    vec![Seg::Key("listeners"), Seg::Key(&l.name), Seg::Key(key)]
}

pub(super) fn rule_path<'a>(l: &'a ListenerSpec, r: &Rule, key: &'a str) -> Vec<Seg<'a>> {
    vec![
        Seg::Key("listeners"),
        Seg::Key(&l.name),
        Seg::Key("rules"),
        Seg::Where("priority", i64::from(r.priority)),
        Seg::Key(key),
    ]
}

pub(super) fn listener(cx: &mut Cx<'_, '_>, l: &ListenerSpec) -> Vec<Value> {
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
                "port": l.public_port(),
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
pub(super) fn path_match(cx: &mut Cx<'_, '_>, l: &ListenerSpec, r: &Rule, p: &str) -> Value {
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

pub(super) fn regex(pattern: &str) -> String {
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

pub(super) fn matches(
    cx: &mut Cx<'_, '_>,
    l: &ListenerSpec,
    r: &Rule,
    c: &Conditions,
) -> Vec<Value> {
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
pub(super) fn action(
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
