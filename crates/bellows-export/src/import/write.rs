//! The stack file written from the evaluated resources, one section per kind of
//! resource in the order a stack file reads (load balancer, target groups, listeners
//! and rules, launch templates, groups, schedules, policies, alarms), each argument
//! either mapped or reported as skipped.

use super::*;

const KNOWN: [&str; 10] = [
    "aws_lb",
    "aws_lb_target_group",
    "aws_lb_listener",
    "aws_lb_listener_rule",
    "aws_launch_template",
    "aws_autoscaling_group",
    "aws_autoscaling_policy",
    "aws_autoscaling_schedule",
    "aws_cloudwatch_metric_alarm",
    "aws_vpc_security_group_ingress_rule",
];

/// What a launch template runs. User data in the form `bellows export terraform`
/// writes becomes a command with its environment and setup again; a script of the
/// user's own stays the user data it is, with its image id.
#[derive(Clone, Debug, Default)]
struct Launch {
    command: Vec<String>,
    env: BTreeMap<String, String>,
    setup: Option<String>,
    user_data: Option<String>,
    image_id: Option<String>,
    instance_type: Option<String>,
    /// `export PORT=...` in the script.
    port: Option<String>,
    /// The label of the `aws_iam_instance_profile` it names.
    profile: Option<String>,
}

pub(super) fn write_stack(cx: &mut Cx<'_>, rs: &[Resource<'_>], stack_name: &str) -> String {
    let of = |kind: &'static str| rs.iter().filter(move |r| r.kind == kind);
    let mut out = String::new();
    // Names: a resource's `name` argument where it has one, else its label.
    let mut names: BTreeMap<(String, String), String> = BTreeMap::new();
    for r in rs {
        let n = r
            .block
            .body
            .get_attribute("name")
            .and_then(|a| eval(cx, r.file, &a.value).ok())
            .and_then(|v| v.str());
        let n = n.unwrap_or_else(|| r.name.clone());
        let n = match r.kind.as_str() {
            "aws_cloudwatch_metric_alarm" => alarm_name(&n),
            _ => name(&n),
        };
        names.insert((r.kind.clone(), r.name.clone()), n);
    }
    let named = |v: &V| v.target().and_then(|t| names.get(&t).cloned());
    // The load balancers' security groups: their inline ingress rules admit clients to
    // the listeners, as a stack file's `ingress` does.
    let lb_groups: Vec<String> = of("aws_lb")
        .flat_map(|r| {
            let mut a = Args::new(r.file, format!("aws_lb.{}", r.name), &r.block.body);
            match a.get(cx, "security_groups") {
                Some(V::List(l)) => l
                    .iter()
                    .filter_map(V::target)
                    .filter(|t| t.0 == "aws_security_group")
                    .map(|t| t.1)
                    .collect(),
                _ => Vec::new(),
            }
        })
        .collect();
    let (roles, iam_used) = iam::instance_roles(cx, rs);
    for r in rs.iter().filter(|r| {
        let used = (r.kind == "aws_security_group" && lb_groups.contains(&r.name))
            || iam_used.contains(&(r.kind.clone(), r.name.clone()));
        !(KNOWN.contains(&r.kind.as_str()) || used)
    }) {
        cx.warn(
            r.file,
            r.block.span(),
            format!(
                "resource {}.{} has no counterpart in a stack and is not imported",
                r.kind, r.name
            ),
        );
    }
    let lb_name = of("aws_lb")
        .next()
        .map(|r| names[&(r.kind.clone(), r.name.clone())].clone())
        .unwrap_or_else(|| name(stack_name));
    let _ = writeln!(
        out,
        "# Imported by `bellows import terraform`; see its warnings for what was left out.\n\n[stack]\nname = {}",
        toml_str(&lb_name)
    );
    for r in of("aws_lb") {
        let mut a = Args::new(r.file, format!("aws_lb.{}", r.name), &r.block.body);
        a.get(cx, "name");
        a.finish(
            cx,
            &[
                "internal",
                "load_balancer_type",
                "security_groups",
                "subnets",
                "idle_timeout",
                "tags",
            ],
        );
    }

    let mut tg_ports: BTreeMap<String, String> = BTreeMap::new();
    for r in of("aws_lb_target_group") {
        let mut a = Args::new(
            r.file,
            format!("aws_lb_target_group.{}", r.name),
            &r.block.body,
        );
        let n = &names[&(r.kind.clone(), r.name.clone())];
        a.get(cx, "name");
        let _ = writeln!(out, "\n[target_groups.{n}]");
        if let Some(p) = a.get(cx, "port").and_then(|v| v.num()) {
            let _ = writeln!(out, "port = {}", crate::number(p));
            tg_ports.insert(n.clone(), crate::number(p));
        }
        if let Some(v) = a
            .get(cx, "load_balancing_algorithm_type")
            .and_then(|v| v.str())
        {
            let _ = writeln!(out, "algorithm = {}", toml_str(&v));
        }
        if let Some(v) = a
            .get(cx, "load_balancing_anomaly_mitigation")
            .and_then(|v| v.str())
        {
            let _ = writeln!(out, "anomaly_mitigation = {}", v == "on");
        }
        for key in ["deregistration_delay", "slow_start"] {
            if let Some(s) = a.get(cx, key).as_ref().and_then(secs) {
                let _ = writeln!(out, "{key} = {}", toml_str(&s));
            }
        }
        for hc in a.blocks("health_check") {
            let mut h = Args::new(
                r.file,
                format!("aws_lb_target_group.{}.health_check", r.name),
                &hc.body,
            );
            let _ = writeln!(out, "[target_groups.{n}.health_check]");
            if let Some(p) = h.get(cx, "path").and_then(|v| v.str()) {
                let _ = writeln!(out, "path = {}", toml_str(&p));
            }
            for key in ["interval", "timeout"] {
                if let Some(s) = h.get(cx, key).as_ref().and_then(secs) {
                    let _ = writeln!(out, "{key} = {}", toml_str(&s));
                }
            }
            for key in ["healthy_threshold", "unhealthy_threshold"] {
                if let Some(x) = h.get(cx, key).and_then(|v| v.num()) {
                    let _ = writeln!(out, "{key} = {}", crate::number(x));
                }
            }
            if let Some(m) = h.get(cx, "matcher").and_then(|v| v.str()) {
                let _ = writeln!(out, "matcher = {}", toml_str(&m));
            }
            h.finish(cx, &["enabled", "protocol", "port"]);
        }
        for st in a.blocks("stickiness") {
            let mut s = Args::new(
                r.file,
                format!("aws_lb_target_group.{}.stickiness", r.name),
                &st.body,
            );
            if s.get(cx, "enabled") == Some(V::Bool(false)) {
                continue;
            }
            let _ = writeln!(out, "[target_groups.{n}.stickiness]");
            if let Some(t) = s.get(cx, "type").and_then(|v| v.str()) {
                let _ = writeln!(out, "type = {}", toml_str(&t));
            }
            if let Some(d) = s.get(cx, "cookie_duration").as_ref().and_then(secs) {
                let _ = writeln!(out, "duration = {}", toml_str(&d));
            }
            if let Some(c) = s.get(cx, "cookie_name").and_then(|v| v.str()) {
                let _ = writeln!(out, "cookie = {}", toml_str(&c));
            }
            s.finish(cx, &[]);
        }
        a.finish(cx, &["protocol", "vpc_id", "target_type", "tags"]);
    }

    // Listeners, with the ingress rules of the load balancer's security groups on their
    // port: (from port, to port, CIDR).
    let mut ingress: Vec<(f64, f64, String)> = of("aws_vpc_security_group_ingress_rule")
        .filter_map(|r| {
            let mut a = Args::new(
                r.file,
                format!("aws_vpc_security_group_ingress_rule.{}", r.name),
                &r.block.body,
            );
            let from = a.get(cx, "from_port").and_then(|v| v.num());
            let to = a.get(cx, "to_port").and_then(|v| v.num());
            let cidr = a
                .get(cx, "cidr_ipv4")
                .or_else(|| a.get(cx, "cidr_ipv6"))
                .and_then(|v| v.str());
            a.finish(
                cx,
                &[
                    "security_group_id",
                    "description",
                    "ip_protocol",
                    "referenced_security_group_id",
                    "tags",
                ],
            );
            Some((from?, to.or(from)?, cidr?))
        })
        .collect();
    for r in of("aws_security_group").filter(|r| lb_groups.contains(&r.name)) {
        let what = format!("aws_security_group.{}", r.name);
        let mut a = Args::new(r.file, what.clone(), &r.block.body);
        for b in a.blocks("ingress") {
            let mut i = Args::new(r.file, format!("{what}.ingress"), &b.body);
            let from = i.get(cx, "from_port").and_then(|v| v.num());
            let to = i.get(cx, "to_port").and_then(|v| v.num());
            let protocol = i.get(cx, "protocol").and_then(|v| v.str());
            let tcp = protocol
                .as_deref()
                .is_some_and(|p| matches!(p, "tcp" | "6" | "-1" | "all"));
            // Every protocol is every port, whatever from_port and to_port say.
            let (from, to) = if matches!(protocol.as_deref(), Some("-1" | "all")) {
                (Some(0.0), Some(65535.0))
            } else {
                (from, to)
            };
            for key in ["cidr_blocks", "ipv6_cidr_blocks"] {
                if let Some(V::List(l)) = i.get(cx, key)
                    && let (true, Some(from), Some(to)) = (tcp, from, to)
                {
                    ingress.extend(l.iter().filter_map(V::str).map(|c| (from, to, c)));
                }
            }
            i.finish(cx, &["description"]);
        }
        a.finish(
            cx,
            &[
                "name",
                "name_prefix",
                "description",
                "vpc_id",
                "egress",
                "revoke_rules_on_delete",
                "lifecycle",
                "tags",
            ],
        );
    }
    for (i, r) in of("aws_lb_listener").enumerate() {
        let mut a = Args::new(r.file, format!("aws_lb_listener.{}", r.name), &r.block.body);
        let port = a.get(cx, "port").and_then(|v| v.num()).unwrap_or(80.0);
        let local = if port >= 1024.0 {
            port
        } else {
            8080.0 + i as f64
        };
        let _ = writeln!(
            out,
            "\n[listeners.{}]\naddress = \"127.0.0.1:{}\"",
            name(&r.name),
            crate::number(local)
        );
        if local != port {
            // Nothing is lost: AWS callers and ingress rules still see the port.
            let _ = writeln!(
                out,
                "aws_port = {}  # a port below 1024 needs root: bellows listens on {} here",
                crate::number(port),
                crate::number(local)
            );
        }
        let cidrs: Vec<String> = ingress
            .iter()
            .filter(|(from, to, _)| (*from..=*to).contains(&port))
            .map(|(_, _, c)| toml_str(c))
            .collect();
        if !cidrs.is_empty() {
            let _ = writeln!(out, "ingress = [{}]", cidrs.join(", "));
        }
        if let Some(d) = a.blocks("default_action").first() {
            let act = action(
                cx,
                r.file,
                &format!("aws_lb_listener.{}.default_action", r.name),
                d,
                &named,
            );
            let _ = writeln!(out, "default = {act}");
        }
        a.finish(cx, &["load_balancer_arn", "protocol", "tags"]);
        let mut rules: Vec<(f64, String)> = Vec::new();
        for rr in of("aws_lb_listener_rule") {
            let mut b = Args::new(
                rr.file,
                format!("aws_lb_listener_rule.{}", rr.name),
                &rr.block.body,
            );
            if b.get(cx, "listener_arn").and_then(|v| v.target())
                != Some(("aws_lb_listener".to_owned(), r.name.clone()))
            {
                continue;
            }
            let priority = b.get(cx, "priority").and_then(|v| v.num()).unwrap_or(1.0);
            let mut text = format!(
                "\n[[listeners.{}.rules]]\npriority = {}\n",
                name(&r.name),
                crate::number(priority)
            );
            let mut headers = Vec::new();
            for c in b.blocks("condition") {
                for inner in c.body.blocks() {
                    let mut ca = Args::new(
                        rr.file,
                        format!(
                            "aws_lb_listener_rule.{}.condition.{}",
                            rr.name,
                            inner.ident.value()
                        ),
                        &inner.body,
                    );
                    let values = ca.get(cx, "values");
                    let list = match &values {
                        Some(V::List(l)) => l
                            .iter()
                            .filter_map(V::str)
                            .map(|s| toml_str(&s))
                            .collect::<Vec<_>>()
                            .join(", "),
                        _ => String::new(),
                    };
                    let key = match inner.ident.value().as_str() {
                        "path_pattern" => Some("path"),
                        "host_header" => Some("host"),
                        "http_request_method" => Some("method"),
                        "source_ip" => Some("source_ip"),
                        "http_header" => {
                            let h = ca
                                .get(cx, "http_header_name")
                                .and_then(|v| v.str())
                                .unwrap_or_default();
                            headers.push(format!("{} = [{list}]", toml_str(&h)));
                            None
                        }
                        _ => {
                            cx.warn(
                                rr.file,
                                inner.span(),
                                format!(
                                    "aws_lb_listener_rule.{}: condition {} is not imported",
                                    rr.name,
                                    inner.ident.value()
                                ),
                            );
                            None
                        }
                    };
                    if let Some(k) = key {
                        let _ = writeln!(text, "{k} = [{list}]");
                    }
                    ca.finish(cx, &[]);
                }
            }
            if !headers.is_empty() {
                let _ = writeln!(text, "header = {{ {} }}", headers.join(", "));
            }
            if let Some(act) = b.blocks("action").first() {
                let act = action(
                    cx,
                    rr.file,
                    &format!("aws_lb_listener_rule.{}.action", rr.name),
                    act,
                    &named,
                );
                // An inline table's keys become the rule's own.
                let inner = act
                    .strip_prefix("{ ")
                    .and_then(|a| a.strip_suffix(" }"))
                    .unwrap_or(&act);
                let _ = writeln!(text, "{inner}");
            }
            b.finish(cx, &["tags"]);
            rules.push((priority, text));
        }
        rules.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, t) in rules {
            out.push_str(&t);
        }
    }

    let mut templates: BTreeMap<String, Launch> = BTreeMap::new();
    for r in of("aws_launch_template") {
        let mut a = Args::new(
            r.file,
            format!("aws_launch_template.{}", r.name),
            &r.block.body,
        );
        let instance_type = a.get(cx, "instance_type").and_then(|v| v.str());
        let ud = a.get(cx, "user_data").and_then(|v| v.str());
        let ours = ud.as_deref().and_then(bellows_form);
        // bellows' own user data runs bellows' commands, whatever the image.
        let image_id = if ours.is_none() {
            a.get(cx, "image_id").and_then(|v| v.str())
        } else {
            None
        };
        let mut launch = match ours {
            Some(l) => l,
            None => {
                let port = ud.as_deref().and_then(script_port);
                match ud {
                    Some(ud) if !ud.trim().is_empty() => Launch {
                        user_data: Some(ud),
                        image_id,
                        port,
                        ..Launch::default()
                    },
                    _ => {
                        cx.warn(r.file, r.block.span(), format!("aws_launch_template.{}: it has no user data; the command is `bellows app echo` until you set it", r.name));
                        Launch::default()
                    }
                }
            }
        };
        launch.instance_type = instance_type;
        let has_profile = !a.blocks("iam_instance_profile").is_empty();
        launch.profile = iam::profile_of(cx, r.file, &r.block.body);
        if has_profile && launch.profile.is_none() {
            cx.warn(r.file, r.block.span(), format!("aws_launch_template.{}: its iam_instance_profile names no aws_iam_instance_profile of these files; the group keeps the default role", r.name));
        }
        templates.insert(r.name.clone(), launch);
        a.finish(
            cx,
            &[
                "name",
                "name_prefix",
                "image_id",
                "vpc_security_group_ids",
                "tags",
            ],
        );
    }
    let target_groups = |v: &Option<V>| -> Vec<String> {
        match v {
            Some(V::List(l)) => l.iter().filter_map(&named).collect(),
            _ => Vec::new(),
        }
    };
    for r in of("aws_autoscaling_group") {
        let mut a = Args::new(
            r.file,
            format!("aws_autoscaling_group.{}", r.name),
            &r.block.body,
        );
        let n = &names[&(r.kind.clone(), r.name.clone())];
        a.get(cx, "name");
        let _ = writeln!(out, "\n[groups.{n}]");
        for (key, to) in [
            ("min_size", "min"),
            ("max_size", "max"),
            ("desired_capacity", "desired"),
        ] {
            if let Some(x) = a.get(cx, key).and_then(|v| v.num()) {
                let _ = writeln!(out, "{to} = {}", crate::number(x));
            }
        }
        if let Some(t) = a.get(cx, "health_check_type").and_then(|v| v.str()) {
            let _ = writeln!(out, "health_check_type = {}", toml_str(&t));
        }
        for key in [
            "health_check_grace_period",
            "default_cooldown",
            "default_instance_warmup",
        ] {
            if let Some(s) = a.get(cx, key).as_ref().and_then(secs) {
                let _ = writeln!(out, "{key} = {}", toml_str(&s));
            }
        }
        if let Some(V::List(l)) = a.get(cx, "termination_policies")
            && let Some(p) = l.first().and_then(V::str)
        {
            let _ = writeln!(out, "termination_policy = {}", toml_str(&p));
        }
        let tgs = target_groups(&a.get(cx, "target_group_arns"));
        let list: Vec<String> = tgs.iter().map(|t| toml_str(t)).collect();
        let _ = writeln!(out, "target_groups = [{}]", list.join(", "));
        let lt = a.blocks("launch_template").first().and_then(|b| {
            let mut l = Args::new(
                r.file,
                format!("aws_autoscaling_group.{}.launch_template", r.name),
                &b.body,
            );
            let t = l.get(cx, "id").and_then(|v| v.target()).map(|t| t.1);
            l.get(cx, "version");
            l.finish(cx, &["name"]);
            t
        });
        let launch = lt
            .and_then(|t| templates.get(&t).cloned())
            .unwrap_or_default();
        let _ = writeln!(out, "[groups.{n}.launch]");
        if let Some(ud) = &launch.user_data {
            let _ = writeln!(out, "user_data = {}", toml_str(ud));
            if let Some(i) = &launch.image_id {
                let _ = writeln!(out, "image_id = {}", toml_str(i));
            }
        } else {
            let command = if launch.command.is_empty() {
                vec!["bellows".into(), "app".into(), "echo".into()]
            } else {
                launch.command.clone()
            };
            let cmd: Vec<String> = command.iter().map(|c| toml_str(c)).collect();
            let _ = writeln!(out, "command = [{}]", cmd.join(", "));
            let env: Vec<String> = launch
                .env
                .iter()
                .filter(|(k, _)| !bellows_core::stack::RESERVED_ENV.contains(&k.as_str()))
                .map(|(k, v)| format!("{k} = {}", toml_str(v)))
                .collect();
            if !env.is_empty() {
                let _ = writeln!(out, "env = {{ {} }}", env.join(", "));
            }
        }
        if let Some(it) = &launch.instance_type {
            let _ = writeln!(out, "instance_type = {}", toml_str(it));
        }
        // The port the program listens on: its script's PORT, else its target group's.
        if let Some(p) = launch
            .port
            .clone()
            .or_else(|| tgs.first().and_then(|t| tg_ports.get(t).cloned()))
        {
            let _ = writeln!(out, "port = {p}");
        }
        if let Some(s) = &launch.setup {
            let _ = writeln!(out, "setup = {}", toml_str(s));
        }
        if let Some(role) = launch.profile.as_ref().and_then(|p| roles.get(p)) {
            let allow: Vec<String> = role.allow.iter().map(|x| toml_str(x)).collect();
            let _ = writeln!(
                out,
                "[groups.{n}.role]\nname = {}\nallow = [{}]",
                toml_str(&role.name),
                allow.join(", ")
            );
        }
        for s in of("aws_autoscaling_schedule") {
            let mut b = Args::new(
                s.file,
                format!("aws_autoscaling_schedule.{}", s.name),
                &s.block.body,
            );
            if b.get(cx, "autoscaling_group_name").and_then(|v| v.target())
                != Some((r.kind.clone(), r.name.clone()))
            {
                continue;
            }
            let _ = writeln!(out, "[[groups.{n}.scheduled]]");
            let sn = b
                .get(cx, "scheduled_action_name")
                .and_then(|v| v.str())
                .unwrap_or_else(|| s.name.clone());
            let _ = writeln!(out, "name = {}", toml_str(&sn));
            if let Some(c) = b.get(cx, "recurrence").and_then(|v| v.str()) {
                let _ = writeln!(out, "cron = {}", toml_str(&c));
            }
            if let Some(z) = b.get(cx, "time_zone").and_then(|v| v.str()) {
                let z = if z == "Etc/UTC" { "UTC".to_owned() } else { z };
                let _ = writeln!(out, "time_zone = {}", toml_str(&z));
            }
            for (key, to) in [
                ("min_size", "min"),
                ("max_size", "max"),
                ("desired_capacity", "desired"),
            ] {
                if let Some(x) = b.get(cx, key).and_then(|v| v.num()) {
                    let _ = writeln!(out, "{to} = {}", crate::number(x));
                }
            }
            b.finish(cx, &[]);
        }
        a.finish(cx, &["lifecycle", "tag"]);
    }

    for r in of("aws_autoscaling_policy") {
        let mut a = Args::new(
            r.file,
            format!("aws_autoscaling_policy.{}", r.name),
            &r.block.body,
        );
        let n = &names[&(r.kind.clone(), r.name.clone())];
        a.get(cx, "name");
        let group = a
            .get(cx, "autoscaling_group_name")
            .as_ref()
            .and_then(named)
            .unwrap_or_default();
        let _ = writeln!(out, "\n[policies.{n}]\ngroup = {}", toml_str(&group));
        let kind = a
            .get(cx, "policy_type")
            .and_then(|v| v.str())
            .unwrap_or_else(|| "SimpleScaling".into());
        if let Some(t) = a.get(cx, "adjustment_type").and_then(|v| v.str()) {
            let _ = writeln!(out, "adjustment_type = {}", toml_str(&t));
        }
        if let Some(w) = a
            .get(cx, "estimated_instance_warmup")
            .as_ref()
            .and_then(secs)
        {
            let _ = writeln!(out, "warmup = {}", toml_str(&w));
        }
        if let Some(m) = a.get(cx, "min_adjustment_magnitude").and_then(|v| v.num()) {
            let _ = writeln!(out, "min_adjustment_magnitude = {}", crate::number(m));
        }
        match kind.as_str() {
            "SimpleScaling" => {
                let _ = writeln!(out, "type = \"simple\"");
                if let Some(x) = a.get(cx, "scaling_adjustment").and_then(|v| v.num()) {
                    let _ = writeln!(out, "adjustment = {}", crate::number(x));
                }
                if let Some(c) = a.get(cx, "cooldown").as_ref().and_then(secs) {
                    let _ = writeln!(out, "cooldown = {}", toml_str(&c));
                }
            }
            "StepScaling" => {
                let _ = writeln!(out, "type = \"step\"");
                a.get(cx, "metric_aggregation_type");
                for st in a.blocks("step_adjustment") {
                    let mut s = Args::new(
                        r.file,
                        format!("aws_autoscaling_policy.{}.step_adjustment", r.name),
                        &st.body,
                    );
                    let _ = writeln!(out, "[[policies.{n}.steps]]");
                    for (key, to) in [
                        ("metric_interval_lower_bound", "lower"),
                        ("metric_interval_upper_bound", "upper"),
                        ("scaling_adjustment", "adjustment"),
                    ] {
                        if let Some(x) = s.get(cx, key).and_then(|v| v.num()) {
                            let _ = writeln!(out, "{to} = {}", crate::number(x));
                        }
                    }
                    s.finish(cx, &[]);
                }
            }
            "TargetTrackingScaling" => {
                let _ = writeln!(out, "type = \"target_tracking\"");
                for tt in a.blocks("target_tracking_configuration") {
                    let mut t = Args::new(
                        r.file,
                        format!(
                            "aws_autoscaling_policy.{}.target_tracking_configuration",
                            r.name
                        ),
                        &tt.body,
                    );
                    if let Some(x) = t.get(cx, "target_value").and_then(|v| v.num()) {
                        let _ = writeln!(out, "target = {}", crate::number(x));
                    }
                    if t.get(cx, "disable_scale_in") == Some(V::Bool(true)) {
                        let _ = writeln!(out, "disable_scale_in = true");
                    }
                    for p in t.blocks("predefined_metric_specification") {
                        let mut pa = Args::new(
                            r.file,
                            format!(
                                "aws_autoscaling_policy.{}.predefined_metric_specification",
                                r.name
                            ),
                            &p.body,
                        );
                        let m = pa
                            .get(cx, "predefined_metric_type")
                            .and_then(|v| v.str())
                            .unwrap_or_default();
                        let _ = writeln!(out, "metric = {}", toml_str(&m));
                        if m == "ALBRequestCountPerTarget" {
                            // AWS counts per minute.
                            let label = pa
                                .get(cx, "resource_label")
                                .and_then(|v| v.str())
                                .unwrap_or_default();
                            let tg = label
                                .split("aws_lb_target_group.")
                                .nth(1)
                                .and_then(|s| s.split('.').next())
                                .map(|l| {
                                    names
                                        .get(&("aws_lb_target_group".to_owned(), l.to_owned()))
                                        .cloned()
                                        .unwrap_or_else(|| name(l))
                                })
                                .unwrap_or_default();
                            let _ =
                                writeln!(out, "target_group = {}\nperiod = \"60s\"", toml_str(&tg));
                        }
                        pa.finish(cx, &[]);
                    }
                    for c in t.blocks("customized_metric_specification") {
                        cx.warn(r.file, c.span(), format!("aws_autoscaling_policy.{}: a customized metric is not imported; the policy tracks CPU", r.name));
                    }
                    t.finish(cx, &[]);
                }
            }
            other => cx.warn(
                r.file,
                r.block.span(),
                format!(
                    "aws_autoscaling_policy.{}: policy_type {other} is not imported",
                    r.name
                ),
            ),
        }
        a.finish(cx, &[]);
    }

    for r in of("aws_cloudwatch_metric_alarm") {
        let mut a = Args::new(
            r.file,
            format!("aws_cloudwatch_metric_alarm.{}", r.name),
            &r.block.body,
        );
        let n = alarm_name(
            &a.get(cx, "alarm_name")
                .and_then(|v| v.str())
                .unwrap_or_else(|| r.name.clone()),
        );
        let _ = writeln!(out, "\n[alarms.{n}]");
        if let Some(d) = a.get(cx, "alarm_description").and_then(|v| v.str()) {
            let _ = writeln!(out, "description = {}", toml_str(&d));
        }
        for (key, to) in [
            ("namespace", "namespace"),
            ("metric_name", "metric"),
            ("statistic", "statistic"),
            ("comparison_operator", "comparison"),
            ("treat_missing_data", "treat_missing_data"),
        ] {
            if let Some(s) = a.get(cx, key).and_then(|v| v.str()) {
                let _ = writeln!(out, "{to} = {}", toml_str(&s));
            }
        }
        if let Some(s) = a.get(cx, "extended_statistic").and_then(|v| v.str()) {
            let _ = writeln!(out, "statistic = {}", toml_str(&s));
        }
        if let Some(p) = a.get(cx, "period").as_ref().and_then(secs) {
            let _ = writeln!(out, "period = {}", toml_str(&p));
        }
        for key in ["evaluation_periods", "datapoints_to_alarm", "threshold"] {
            if let Some(x) = a.get(cx, key).and_then(|v| v.num()) {
                let _ = writeln!(out, "{key} = {}", crate::number(x));
            }
        }
        if let Some(V::Map(dims)) = a.get(cx, "dimensions") {
            let d: Vec<String> = dims
                .iter()
                .map(|(k, v)| {
                    let value = named(v).or_else(|| v.str()).unwrap_or_default();
                    // The stack names its load balancer after the stack.
                    let value = if k == "LoadBalancer" && v.target().is_some() {
                        lb_name.clone()
                    } else {
                        value
                    };
                    format!("{k} = {}", toml_str(&value))
                })
                .collect();
            let _ = writeln!(out, "dimensions = {{ {} }}", d.join(", "));
        }
        for key in ["alarm_actions", "ok_actions", "insufficient_data_actions"] {
            if let Some(V::List(l)) = a.get(cx, key) {
                let acts: Vec<String> = l.iter().filter_map(&named).map(|s| toml_str(&s)).collect();
                if !acts.is_empty() {
                    let _ = writeln!(out, "{key} = [{}]", acts.join(", "));
                }
            }
        }
        a.finish(cx, &["actions_enabled", "tags"]);
    }
    out
}

fn action(
    cx: &mut Cx<'_>,
    file: usize,
    what: &str,
    b: &Block,
    named: &dyn Fn(&V) -> Option<String>,
) -> String {
    let mut a = Args::new(file, what.to_owned(), &b.body);
    let kind = a.get(cx, "type").and_then(|v| v.str()).unwrap_or_default();
    let text = match kind.as_str() {
        "forward" => {
            if let Some(t) = a.get(cx, "target_group_arn").as_ref().and_then(named) {
                format!("{{ forward = {} }}", toml_str(&t))
            } else {
                let mut groups = Vec::new();
                for f in a.blocks("forward") {
                    for tg in f.body.get_blocks("target_group") {
                        let mut g =
                            Args::new(file, format!("{what}.forward.target_group"), &tg.body);
                        let arn = g
                            .get(cx, "arn")
                            .as_ref()
                            .and_then(named)
                            .unwrap_or_default();
                        let w = g.get(cx, "weight").and_then(|v| v.num()).unwrap_or(1.0);
                        groups.push(format!(
                            "{{ target_group = {}, weight = {} }}",
                            toml_str(&arn),
                            crate::number(w)
                        ));
                        g.finish(cx, &[]);
                    }
                }
                format!("{{ forward = [{}] }}", groups.join(", "))
            }
        }
        "redirect" => {
            let mut parts = Vec::new();
            for r in a.blocks("redirect") {
                let mut ra = Args::new(file, format!("{what}.redirect"), &r.body);
                if let Some(s) = ra.get(cx, "status_code").and_then(|v| v.str()) {
                    parts.push(format!("status = {}", s.trim_start_matches("HTTP_")));
                }
                for key in ["protocol", "host", "port", "path", "query"] {
                    if let Some(v) = ra.get(cx, key).and_then(|v| v.str()) {
                        let v = if key == "protocol" && !v.starts_with("#{") {
                            v.to_lowercase()
                        } else {
                            v
                        };
                        parts.push(format!("{key} = {}", toml_str(&v)));
                    }
                }
                ra.finish(cx, &[]);
            }
            format!("{{ redirect = {{ {} }} }}", parts.join(", "))
        }
        "fixed-response" => {
            let mut parts = Vec::new();
            for f in a.blocks("fixed_response") {
                let mut fa = Args::new(file, format!("{what}.fixed_response"), &f.body);
                if let Some(s) = fa.get(cx, "status_code").and_then(|v| v.str()) {
                    parts.push(format!("status = {s}"));
                }
                if let Some(s) = fa.get(cx, "content_type").and_then(|v| v.str()) {
                    parts.push(format!("content_type = {}", toml_str(&s)));
                }
                if let Some(s) = fa.get(cx, "message_body").and_then(|v| v.str()) {
                    parts.push(format!("body = {}", toml_str(&s)));
                }
                fa.finish(cx, &[]);
            }
            format!("{{ fixed_response = {{ {} }} }}", parts.join(", "))
        }
        other => {
            cx.warn(
                file,
                b.span(),
                format!("{what}: action type `{other}` is not imported; the action answers 503"),
            );
            "{ fixed_response = { status = 503, content_type = \"text/plain\", body = \"not imported\" } }".to_owned()
        }
    };
    a.finish(cx, &["order"]);
    text
}

/// User data as `bellows export terraform` writes it (bellows' data directory made,
/// then `exec COMMAND`): its command, environment and setup. Any other script is not.
fn bellows_form(script: &str) -> Option<Launch> {
    const DATA_DIR: &str = "mkdir -p \"$BELLOWS_DATA_DIR\"";
    if !script.lines().any(|l| l == DATA_DIR) {
        return None;
    }
    let mut launch = Launch::default();
    let mut setup = Vec::new();
    for line in script.lines() {
        if line.starts_with("#!") || line == "set -e" || line == DATA_DIR {
            continue;
        }
        if let Some(rest) = line.strip_prefix("exec ") {
            launch.command = shell_words(rest);
        } else if let Some(rest) = line.strip_prefix("export ") {
            // Values that read the environment are bellows' own variables, which
            // bellows sets itself (`${PRIVATE_IP:-0.0.0.0}`).
            if let Some((k, v)) = rest.split_once('=')
                && !v.contains('$')
            {
                launch.env.insert(k.to_owned(), shell_words(v).join(" "));
            }
        } else {
            setup.push(line);
        }
    }
    launch.port = launch.env.get("PORT").cloned();
    launch.setup = (!setup.is_empty()).then(|| setup.join("\n"));
    (!launch.command.is_empty()).then_some(launch)
}

/// The `export PORT=N` of a script of the user's own, if it has one.
fn script_port(script: &str) -> Option<String> {
    script.lines().find_map(|l| {
        let v = l.trim().strip_prefix("export PORT=")?;
        let v = v.trim_matches(|c| c == '\'' || c == '"');
        v.parse::<u16>().ok().map(|p| p.to_string())
    })
}

/// Splits `'a' 'b c' d` as the shell does for single quotes and bare words.
fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ' ' | '\t' => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}
