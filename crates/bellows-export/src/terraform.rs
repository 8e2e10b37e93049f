//! `bellows export terraform`: the stack as hashicorp/aws resources in one `main.tf`.
//! The stack file is modelled on ALB, EC2 Auto Scaling and CloudWatch, so most of it
//! maps one to one; values outside AWS's ranges are clamped and warned about with
//! their place in the stack file, and what AWS has no counterpart for is named.

use bellows_core::Duration;
use bellows_core::alarm::{AlarmSpec, Comparison, MissingData};
use bellows_core::lb::rules::{Action, FixedResponse, Redirect, Rule, WeightedTargetGroup};
use bellows_core::lb::select::Algorithm;
use bellows_core::metrics::Statistic;
use bellows_core::scaling::{AdjustmentType, PolicyKind, PolicySpec, TrackedMetric};
use bellows_core::schedule::Zone;
use bellows_core::stack::{
    GroupSpec, HealthCheckType, ListenerSpec, Stack, TargetGroupSpec, TerminationPolicy,
};

use crate::hcl::{Block, Expr, file, raw};
use crate::locate::{Seg, path};
use crate::{Export, Warnings, number, secs};

mod scaling;

use scaling::*;

/// A Terraform identifier for a stack name (they may start with a digit; these not).
fn ident(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("n{s}")
    } else {
        s
    }
}

/// How the export is written.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Create the network (a VPC, an internet gateway, one public subnet per zone and
    /// their route table) instead of taking `vpc_id` and `subnet_ids` as variables.
    pub create_network: bool,
}

struct Cx<'a, 's> {
    stack: &'a Stack,
    w: Warnings<'s>,
    blocks: Vec<Block>,
    /// The expressions that name the VPC and the subnets: variables, or the resources
    /// `--create-network` writes.
    vpc: String,
    subnets: String,
}

/// Exports the stack; `src` is the stack file's text, for the warnings' places.
pub fn export(stack: &Stack, src: &str, opts: &Options) -> Export {
    let mut cx = Cx {
        stack,
        w: Warnings::new(src),
        blocks: Vec::new(),
        vpc: "var.vpc_id".to_owned(),
        subnets: "var.subnet_ids".to_owned(),
    };
    header(&mut cx, opts);
    crate::check_ports(&mut cx.w, stack);
    load_balancer(&mut cx);
    for tg in &stack.target_groups {
        target_group(&mut cx, tg);
    }
    for l in &stack.listeners {
        listener(&mut cx, l);
    }
    for g in &stack.groups {
        group(&mut cx, g);
    }
    for p in &stack.policies {
        policy(&mut cx, p);
    }
    for a in &stack.alarms {
        alarm(&mut cx, a);
    }
    for h in &stack.webhooks {
        cx.w.warn(&path(&format!("webhooks.{}", h.name)), format!("webhook `{}` is not exported: an SNS topic with an HTTPS subscription is AWS's counterpart", h.name));
    }
    Export {
        files: vec![("main.tf".to_owned(), file(&cx.blocks))],
        warnings: cx.w.finish(),
        notes: Vec::new(),
    }
}

fn variable(name: &str, ty: &str, description: &str, default: Option<Expr>) -> Block {
    Block::new("variable", &[name])
        .attr("type", raw(ty))
        .attr("description", description)
        .opt("default", default)
}

fn header(cx: &mut Cx<'_, '_>, opts: &Options) {
    let s = cx.stack;
    cx.blocks.push(
        Block::new("terraform", &[])
            .attr("required_version", ">= 1.5")
            .block(Block::new("required_providers", &[]).attr(
                "aws",
                Expr::Map(vec![
                    ("source".into(), "hashicorp/aws".into()),
                    ("version".into(), ">= 5.0".into()),
                ]),
            )),
    );
    cx.blocks.push(variable(
        "region",
        "string",
        "The AWS region.",
        Some(s.region.as_str().into()),
    ));
    if opts.create_network {
        network(cx);
    } else {
        cx.blocks.push(variable(
            "vpc_id",
            "string",
            "The VPC the load balancer, target groups and instances are in.",
            None,
        ));
        cx.blocks.push(variable(
            "subnet_ids",
            "list(string)",
            &format!(
                "Subnets in at least two availability zones (the stack's zones: {}).",
                zones(s).join(", ")
            ),
            None,
        ));
    }
    cx.blocks.push(variable(
        "image_id",
        "string",
        "The AMI instances boot; it must hold the launch commands (bellows for `bellows app ...`). On bellows' own AWS endpoint, `bellows-app-NAME` is an image that has bellows on its PATH.",
        None,
    ));
    cx.blocks
        .push(Block::new("provider", &["aws"]).attr("region", raw("var.region")));
}

/// Every zone the stack's groups are placed in, in the order they are first named.
fn zones(s: &Stack) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for z in s.groups.iter().flat_map(|g| &g.zones) {
        if !out.contains(&z.as_str()) {
            out.push(z);
        }
    }
    out
}

/// The availability zone a stack zone becomes: an AWS zone name (`us-east-1a`) as it
/// is, any other the region's zone of the same place in the list (`zone-a`, the first,
/// is `${var.region}a`).
fn availability_zone(zone: &str, index: usize) -> Expr {
    let aws = zone.len() > 3
        && zone.ends_with(|c: char| c.is_ascii_lowercase())
        && zone.split('-').count() == 3
        && zone[..zone.len() - 1].ends_with(|c: char| c.is_ascii_digit());
    if aws {
        zone.into()
    } else {
        let letter = (b'a' + (index % 26) as u8) as char;
        raw(format!("\"${{var.region}}{letter}\""))
    }
}

/// `--create-network`: a VPC with an internet gateway (an internet-facing load balancer
/// needs one) and one public subnet per zone, routed through it.
fn network(cx: &mut Cx<'_, '_>) {
    let s = cx.stack;
    let mut zs = zones(s);
    if zs.len() < 2 {
        // An application load balancer needs subnets in two zones at least.
        for extra in ["zone-a", "zone-b"] {
            if zs.len() < 2 && !zs.contains(&extra) {
                zs.push(extra);
            }
        }
    }
    let tags = || Expr::Map(vec![("Name".into(), s.name.as_str().into())]);
    cx.blocks.push(
        Block::new("resource", &["aws_vpc", "main"])
            .attr("cidr_block", "10.0.0.0/16")
            .attr("tags", tags()),
    );
    cx.blocks.push(
        Block::new("resource", &["aws_internet_gateway", "main"])
            .attr("vpc_id", raw("aws_vpc.main.id"))
            .attr("tags", tags()),
    );
    cx.blocks.push(
        Block::new("resource", &["aws_route_table", "public"])
            .attr("vpc_id", raw("aws_vpc.main.id"))
            .block(
                Block::new("route", &[])
                    .attr("cidr_block", "0.0.0.0/0")
                    .attr("gateway_id", raw("aws_internet_gateway.main.id")),
            )
            .attr("tags", tags()),
    );
    let mut ids = Vec::new();
    for (i, z) in zs.iter().enumerate() {
        let id = ident(z);
        cx.blocks.push(
            Block::new("resource", &["aws_subnet", &id])
                .attr("vpc_id", raw("aws_vpc.main.id"))
                .attr("cidr_block", format!("10.0.{}.0/24", i + 1))
                .attr("availability_zone", availability_zone(z, i))
                .attr(
                    "tags",
                    Expr::Map(vec![("Name".into(), format!("{}-{z}", s.name).into())]),
                ),
        );
        cx.blocks.push(
            Block::new("resource", &["aws_route_table_association", &id])
                .attr("subnet_id", raw(format!("aws_subnet.{id}.id")))
                .attr("route_table_id", raw("aws_route_table.public.id")),
        );
        ids.push(format!("aws_subnet.{id}.id"));
    }
    cx.vpc = "aws_vpc.main.id".to_owned();
    cx.subnets = format!("[{}]", ids.join(", "));
}

/// AWS's names for load balancers and target groups: at most 32 letters, digits and
/// hyphens, not starting or ending with a hyphen.
fn aws_name(cx: &mut Cx<'_, '_>, at: &[Seg<'_>], what: &str, name: &str) -> String {
    let n = crate::names::shorten(name, 32, false);
    if n != name {
        cx.w.warn(
            at,
            format!(
                "{what} `{name}` is named `{n}` in AWS (at most 32 letters, digits and hyphens)"
            ),
        );
    }
    n
}

fn load_balancer(cx: &mut Cx<'_, '_>) {
    let s = cx.stack;
    // The load balancer's name as the AWS face gives it (`[stack] load_balancer`).
    let at = if s.load_balancer == s.name {
        path("stack.name")
    } else {
        path("stack.load_balancer")
    };
    let name = aws_name(cx, &at, "load balancer", &s.load_balancer);
    let mut sg = Block::new("resource", &["aws_security_group", "lb"])
        .attr(
            "name_prefix",
            format!("{}-lb-", crate::names::shorten(&s.name, 20, false)),
        )
        .attr(
            "description",
            format!("The load balancer of stack {}", s.name),
        )
        .attr("vpc_id", raw(cx.vpc.as_str()));
    sg.push(crate::hcl::Item::Block(
        Block::new("lifecycle", &[]).attr("create_before_destroy", true),
    ));
    cx.blocks.push(sg);
    for l in &s.listeners {
        let at = [
            Seg::Key("listeners"),
            Seg::Key(&l.name),
            Seg::Key("ingress"),
        ];
        for (i, cidr) in l.ingress.iter().enumerate() {
            let c = cidr.to_string();
            let family = if c.contains(':') {
                "cidr_ipv6"
            } else {
                "cidr_ipv4"
            };
            cx.blocks.push(
                Block::new(
                    "resource",
                    &[
                        "aws_vpc_security_group_ingress_rule",
                        &format!("{}_{i}", ident(&l.name)),
                    ],
                )
                .attr("security_group_id", raw("aws_security_group.lb.id"))
                .attr("description", format!("listener {} from {c}", l.name))
                .attr(family, c)
                .attr("ip_protocol", "tcp")
                .attr("from_port", u64::from(l.public_port()))
                .attr("to_port", u64::from(l.public_port())),
            );
        }
        let _ = at;
    }
    cx.blocks.push(
        Block::new(
            "resource",
            &["aws_vpc_security_group_egress_rule", "lb_to_instances"],
        )
        .attr("security_group_id", raw("aws_security_group.lb.id"))
        .attr(
            "referenced_security_group_id",
            raw("aws_security_group.instances.id"),
        )
        .attr("ip_protocol", "tcp")
        .attr("from_port", 1u64)
        .attr("to_port", 65535u64),
    );
    cx.blocks.push(
        Block::new("resource", &["aws_security_group", "instances"])
            .attr(
                "name_prefix",
                format!("{}-instances-", crate::names::shorten(&s.name, 20, false)),
            )
            .attr("description", format!("The instances of stack {}", s.name))
            .attr("vpc_id", raw(cx.vpc.as_str())),
    );
    let mut ports: Vec<u16> = s.groups.iter().map(|g| g.launch.port).collect();
    ports.sort_unstable();
    ports.dedup();
    for p in ports {
        cx.blocks.push(
            Block::new(
                "resource",
                &[
                    "aws_vpc_security_group_ingress_rule",
                    &format!("instances_{p}"),
                ],
            )
            .attr("security_group_id", raw("aws_security_group.instances.id"))
            .attr(
                "referenced_security_group_id",
                raw("aws_security_group.lb.id"),
            )
            .attr("ip_protocol", "tcp")
            .attr("from_port", u64::from(p))
            .attr("to_port", u64::from(p)),
        );
    }
    cx.blocks.push(
        Block::new(
            "resource",
            &["aws_vpc_security_group_egress_rule", "instances_all"],
        )
        .attr("security_group_id", raw("aws_security_group.instances.id"))
        .attr("cidr_ipv4", "0.0.0.0/0")
        .attr("ip_protocol", "-1"),
    );
    // One load balancer; bellows' listeners are its listeners. Its idle timeout is the
    // load balancer's, so listeners that differ are warned about.
    let idle = s.listeners.first().map_or(60, |l| secs(l.idle_timeout));
    for l in s.listeners.iter().skip(1) {
        if secs(l.idle_timeout) != idle {
            cx.w.warn(&[Seg::Key("listeners"), Seg::Key(&l.name), Seg::Key("idle_timeout")], format!("listener `{}`: idle_timeout is the load balancer's in AWS, set once ({idle}s, the first listener's)", l.name));
        }
    }
    for l in &s.listeners {
        let log = [
            Seg::Key("listeners"),
            Seg::Key(&l.name),
            Seg::Key("access_log"),
        ];
        if l.access_log && cx.w.at.has(&log) {
            cx.w.warn(&log, format!("listener `{}`: ALB access logs need an S3 bucket (the load balancer's access_logs block); not exported", l.name));
        }
        for key in ["header_timeout", "max_body"] {
            let at = [Seg::Key("listeners"), Seg::Key(&l.name), Seg::Key(key)];
            if cx.w.at.has(&at) {
                cx.w.warn(
                    &at,
                    format!(
                        "listener `{}`: {key} has no ALB setting and is not exported",
                        l.name
                    ),
                );
            }
        }
    }
    cx.blocks.push(
        Block::new("resource", &["aws_lb", "main"])
            .attr("name", name)
            .attr("internal", false)
            .attr("load_balancer_type", "application")
            .attr(
                "security_groups",
                Expr::List(vec![raw("aws_security_group.lb.id")]),
            )
            .attr("subnets", raw(cx.subnets.as_str()))
            .attr("idle_timeout", idle.clamp(1, 4000)),
    );
}

/// Clamps seconds into [lo, hi], warning at `at` when it changes.
fn clamp(cx: &mut Cx<'_, '_>, at: &[Seg<'_>], what: &str, d: Duration, lo: u64, hi: u64) -> u64 {
    let s = secs(d);
    let c = s.clamp(lo, hi);
    if c != s || !d.as_millis().is_multiple_of(1000) {
        cx.w.warn(
            at,
            format!("{what} {d} becomes {c}s (AWS allows {lo}-{hi} s)"),
        );
    }
    c
}

fn tg_at<'a>(tg: &'a TargetGroupSpec, keys: &[&'a str]) -> Vec<Seg<'a>> {
    let mut v = vec![Seg::Key("target_groups"), Seg::Key(&tg.name)];
    v.extend(keys.iter().map(|k| Seg::Key(k)));
    v
}

fn target_group(cx: &mut Cx<'_, '_>, tg: &TargetGroupSpec) {
    let name = aws_name(
        cx,
        &[Seg::Key("target_groups"), Seg::Key(&tg.name)],
        "target group",
        &tg.name,
    );
    let hc = &tg.health_check;
    let interval = clamp(
        cx,
        &tg_at(tg, &["health_check", "interval"]),
        &format!("target group `{}`: health check interval", tg.name),
        hc.interval,
        5,
        300,
    );
    let mut timeout = clamp(
        cx,
        &tg_at(tg, &["health_check", "timeout"]),
        &format!("target group `{}`: health check timeout", tg.name),
        hc.timeout,
        2,
        120,
    );
    if timeout >= interval {
        timeout = interval - 1;
        cx.w.warn(&tg_at(tg, &["health_check", "timeout"]), format!("target group `{}`: health check timeout becomes {timeout}s (AWS needs it below the interval, {interval}s)", tg.name));
    }
    let slow = secs(tg.slow_start);
    let slow_start = if slow == 0 {
        0
    } else {
        let c = slow.clamp(30, 900);
        if c != slow {
            cx.w.warn(
                &tg_at(tg, &["slow_start"]),
                format!(
                    "target group `{}`: slow_start {} becomes {c}s (AWS allows 0 or 30-900 s)",
                    tg.name, tg.slow_start
                ),
            );
        }
        c
    };
    let dereg = clamp(
        cx,
        &tg_at(tg, &["deregistration_delay"]),
        &format!("target group `{}`: deregistration_delay", tg.name),
        tg.deregistration_delay,
        0,
        3600,
    );
    if let Some(n) = tg.max_connections {
        cx.w.warn(&tg_at(tg, &["max_connections"]), format!("target group `{}`: max_connections = {n} and its queue (queue_size {}, queue_timeout {}) have no ALB counterpart and are not exported", tg.name, tg.queue_size, tg.queue_timeout));
    }
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
    let algorithm = match tg.algorithm {
        Algorithm::RoundRobin => "round_robin",
        Algorithm::LeastOutstandingRequests => "least_outstanding_requests",
        Algorithm::WeightedRandom => "weighted_random",
    };
    let mut b = Block::new("resource", &["aws_lb_target_group", &ident(&tg.name)])
        .attr("name", name)
        .attr("port", u64::from(tg.port))
        .attr("protocol", "HTTP")
        .attr("vpc_id", raw(cx.vpc.as_str()))
        .attr("target_type", "instance")
        .attr("deregistration_delay", dereg.to_string())
        .attr("slow_start", slow_start)
        .attr("load_balancing_algorithm_type", algorithm);
    if tg.algorithm == Algorithm::WeightedRandom {
        b = b.attr(
            "load_balancing_anomaly_mitigation",
            if tg.anomaly_mitigation { "on" } else { "off" },
        );
    }
    b = b.block(
        Block::new("health_check", &[])
            .attr("enabled", true)
            .attr("path", hc.path.as_str())
            .attr("protocol", "HTTP")
            .attr("port", "traffic-port")
            .attr("interval", interval)
            .attr("timeout", timeout)
            .attr("healthy_threshold", hc.healthy_threshold)
            .attr("unhealthy_threshold", hc.unhealthy_threshold)
            .attr("matcher", matcher.join(",")),
    );
    if let Some(st) = &tg.stickiness {
        let d = clamp(
            cx,
            &tg_at(tg, &["stickiness", "duration"]),
            &format!("target group `{}`: stickiness duration", tg.name),
            st.duration,
            1,
            604_800,
        );
        let mut s = Block::new("stickiness", &[])
            .attr("enabled", true)
            .attr(
                "type",
                if st.app_cookie.is_some() {
                    "app_cookie"
                } else {
                    "lb_cookie"
                },
            )
            .attr("cookie_duration", d);
        if let Some(c) = &st.app_cookie {
            s = s.attr("cookie_name", c.as_str());
        }
        b = b.block(s);
    }
    cx.blocks.push(b);
}

fn tg_arn(name: &str) -> Expr {
    raw(format!("aws_lb_target_group.{}.arn", ident(name)))
}

fn forward(kind: &str, groups: &[WeightedTargetGroup]) -> Block {
    let b = Block::new(kind, &[]).attr("type", "forward");
    if let [one] = groups {
        return b.attr("target_group_arn", tg_arn(&one.target_group));
    }
    let mut f = Block::new("forward", &[]);
    for g in groups {
        f = f.block(
            Block::new("target_group", &[])
                .attr("arn", tg_arn(&g.target_group))
                .attr("weight", g.weight),
        );
    }
    b.block(f)
}

fn redirect(kind: &str, r: &Redirect) -> Block {
    let mut rd = Block::new("redirect", &[]).attr("status_code", format!("HTTP_{}", r.status));
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
            rd = rd.attr(k, v);
        }
    }
    Block::new(kind, &[]).attr("type", "redirect").block(rd)
}

const CONTENT_TYPES: [&str; 5] = [
    "text/plain",
    "text/css",
    "text/html",
    "application/javascript",
    "application/json",
];

fn fixed(cx: &mut Cx<'_, '_>, at: &[Seg<'_>], kind: &str, f: &FixedResponse) -> Block {
    let ct = if CONTENT_TYPES.contains(&f.content_type.as_str()) {
        f.content_type.clone()
    } else {
        cx.w.warn(
            at,
            format!(
                "fixed response content type \"{}\" becomes text/plain (ALB allows {})",
                f.content_type,
                CONTENT_TYPES.join(", ")
            ),
        );
        "text/plain".to_owned()
    };
    let mut body = f.body.clone();
    if body.len() > 1024 {
        cx.w.warn(at, "a fixed response body is cut to ALB's 1024 bytes");
        body.truncate(body.floor_char_boundary(1024));
    }
    Block::new(kind, &[]).attr("type", "fixed-response").block(
        Block::new("fixed_response", &[])
            .attr("content_type", ct)
            .attr("message_body", body)
            .attr("status_code", f.status.to_string()),
    )
}

/// An action block: `kind` is `default_action` on a listener, `action` on a rule.
fn action(cx: &mut Cx<'_, '_>, at: &[Seg<'_>], kind: &str, a: &Action) -> Block {
    match a {
        Action::Forward(g) => forward(kind, g),
        Action::Redirect(r) => redirect(kind, r),
        Action::FixedResponse(f) => fixed(cx, at, kind, f),
    }
}

fn listener(cx: &mut Cx<'_, '_>, l: &ListenerSpec) {
    let id = ident(&l.name);
    let at = [
        Seg::Key("listeners"),
        Seg::Key(&l.name),
        Seg::Key("default"),
    ];
    let default = action(cx, &at, "default_action", &l.default_action);
    cx.blocks.push(
        Block::new("resource", &["aws_lb_listener", &id])
            .attr("load_balancer_arn", raw("aws_lb.main.arn"))
            .attr("port", u64::from(l.public_port()))
            .attr("protocol", "HTTP")
            .block(default),
    );
    for r in &l.rules {
        rule(cx, l, r);
    }
}

fn rule(cx: &mut Cx<'_, '_>, l: &ListenerSpec, r: &Rule) {
    let at = [
        Seg::Key("listeners"),
        Seg::Key(&l.name),
        Seg::Key("rules"),
        Seg::Where("priority", i64::from(r.priority)),
    ];
    let mut b = Block::new(
        "resource",
        &[
            "aws_lb_listener_rule",
            &format!("{}_{}", ident(&l.name), r.priority),
        ],
    )
    .attr(
        "listener_arn",
        raw(format!("aws_lb_listener.{}.arn", ident(&l.name))),
    )
    .attr("priority", r.priority);
    b = b.block(action(cx, &at, "action", &r.action));
    let c = &r.conditions;
    let list = |v: &[String]| Expr::List(v.iter().map(|s| s.as_str().into()).collect());
    if !c.paths.is_empty() {
        b = b.block(
            Block::new("condition", &[])
                .block(Block::new("path_pattern", &[]).attr("values", list(&c.paths))),
        );
    }
    if !c.hosts.is_empty() {
        b = b.block(
            Block::new("condition", &[])
                .block(Block::new("host_header", &[]).attr("values", list(&c.hosts))),
        );
    }
    if !c.methods.is_empty() {
        b = b.block(
            Block::new("condition", &[])
                .block(Block::new("http_request_method", &[]).attr("values", list(&c.methods))),
        );
    }
    for (h, values) in &c.headers {
        b = b.block(
            Block::new("condition", &[]).block(
                Block::new("http_header", &[])
                    .attr("http_header_name", h.as_str())
                    .attr("values", list(values)),
            ),
        );
    }
    if !c.source_ips.is_empty() {
        let ips: Vec<String> = c.source_ips.iter().map(ToString::to_string).collect();
        b = b.block(
            Block::new("condition", &[])
                .block(Block::new("source_ip", &[]).attr("values", list(&ips))),
        );
    }
    cx.blocks.push(b);
}

#[cfg(test)]
mod tests;
