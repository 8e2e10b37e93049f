//! The schema of the stack file: defaults, ranges and cross references.

use core::net::{Ipv4Addr, SocketAddr};
use std::collections::BTreeMap;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::reader::{Cx, FromToml, Table};
use super::{
    AwsKeySpec, CheckSpec, Diagnostic, GithubSpec, GroupSpec, HealthCheckSpec, HealthCheckType,
    IncidentsSpec, InstanceType, Ipv4Net, LaunchTemplate, ListenerSpec, RESERVED_ENV,
    SimulationSpec, Stack, Stickiness, TargetGroupSpec, TerminationPolicy, WebhookSpec,
};
use crate::Duration;
use crate::alarm::{AlarmSpec, Comparison, MissingData};
use crate::lb::cidr::Cidr;
use crate::lb::rules::{Action, Conditions, FixedResponse, Redirect, Rule, WeightedTargetGroup};
use crate::lb::select::Algorithm;
use crate::metrics::{SeriesKey, Statistic};
use crate::scaling::{
    AdjustmentType, HpaSpec, KpaSpec, PolicyKind, PolicySpec, PredictiveSpec, ScheduledAction,
    Step, TrackedMetric,
};
use crate::schedule::Cron;

/// The control API's address when the stack file names none.
pub const DEFAULT_CONTROL: &str = "127.0.0.1:9900";
/// Instances' private addresses come from here unless the stack file says otherwise.
pub const DEFAULT_INSTANCE_NETWORK: &str = "127.1.0.0/16";
/// A group may not grow past this: every instance is a process on one machine.
pub const MAX_GROUP_SIZE: i64 = 256;

/// The region when `[stack]` names none.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Whether `s` looks like an AWS region name: lower-case words and a number joined by
/// dashes (`us-east-1`, `eu-central-2`, `us-gov-west-1`).
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && s.len() <= 32
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// Parses and validates a stack file, returning every problem it has.
pub fn parse(src: &str) -> Result<Stack, Vec<Diagnostic>> {
    let mut cx = Cx::new(src);
    let doc = match DeTable::parse(src) {
        Ok(doc) => doc,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            cx.error(span, format!("TOML syntax: {}", e.message()));
            return Err(cx.errors);
        }
    };
    let mut root = Table::new(doc.get_ref(), doc.span(), String::new());
    let stack = read_stack(&mut cx, &mut root);
    root.finish(&mut cx);
    match stack {
        Some(stack) if cx.errors.is_empty() => Ok(stack),
        _ => {
            cx.errors.sort_by_key(|d| (d.line, d.column));
            Err(cx.errors)
        }
    }
}

fn read_stack(cx: &mut Cx<'_>, root: &mut Table<'_, '_>) -> Option<Stack> {
    let mut settings = match root.raw("stack") {
        Some(v) => Table::from_value(cx, v, "stack".into()),
        None => None,
    };
    let (name, control, state_dir, network, region) = match settings.as_mut() {
        Some(t) => {
            let name = t.get::<Spanned<String>>(cx, "name");
            let control = t.get::<Spanned<String>>(cx, "control");
            let state_dir = t.get::<String>(cx, "state_dir");
            let network = t.get::<Spanned<String>>(cx, "instance_network");
            let region = t.get::<Spanned<String>>(cx, "region");
            (name, control, state_dir, network, region)
        }
        None => (None, None, None, None, None),
    };
    if let Some(t) = settings {
        t.finish(cx);
    }
    let name = match name {
        Some(n) => {
            check_name(cx, &n, "stack.name");
            n.into_inner()
        }
        None => "bellows".to_owned(),
    };
    let control = match control {
        Some(c) => parse_control(cx, &c),
        None => DEFAULT_CONTROL.parse().ok(),
    };
    let instance_network = match network {
        Some(n) => parse_network(cx, &n),
        None => parse_network(cx, &Spanned::new(0..0, DEFAULT_INSTANCE_NETWORK.to_owned())),
    };
    let region = match region {
        Some(r) => {
            if !is_region(r.get_ref()) {
                cx.error(
                    r.span(),
                    format!(
                        "`stack.region`: `{}` is not a region name like us-east-1",
                        r.get_ref()
                    ),
                );
            }
            r.into_inner()
        }
        None => DEFAULT_REGION.to_owned(),
    };
    let aws = match root.raw("aws") {
        Some(v) => Table::from_value(cx, v, "aws".into()).and_then(|mut t| {
            let id = t.require::<Spanned<String>>(cx, "access_key_id");
            let env = t.require::<Spanned<String>>(cx, "secret_env");
            t.finish(cx);
            let (id, env) = (id?, env?);
            let id_ok = (16..=128).contains(&id.get_ref().len())
                && id.get_ref().bytes().all(|b| b.is_ascii_alphanumeric());
            if !id_ok {
                cx.error(
                    id.span(),
                    "`aws.access_key_id`: 16 to 128 letters and digits, like AKIAIOSFODNN7EXAMPLE",
                );
            }
            let env_ok = !env.get_ref().is_empty()
                && env
                    .get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !env_ok {
                cx.error(
                    env.span(),
                    "`aws.secret_env`: the name of the environment variable that holds the secret (the secret itself never goes in the file)",
                );
            }
            Some(AwsKeySpec {
                access_key_id: id.into_inner(),
                secret_env: env.into_inner(),
            })
        }),
        None => None,
    };

    let mut target_groups = Vec::new();
    for (name, mut t) in root.named_tables(cx, "target_groups") {
        check_name(cx, &name, "a target group name");
        if let Some(tg) = read_target_group(cx, &mut t, name.get_ref()) {
            target_groups.push(tg);
        }
        t.finish(cx);
    }

    let mut listeners: Vec<ListenerSpec> = Vec::new();
    for (name, mut t) in root.named_tables(cx, "listeners") {
        check_name(cx, &name, "a listener name");
        if let Some(l) = read_listener(cx, &mut t, name.get_ref(), &target_groups) {
            let clash = listeners
                .iter()
                .find(|o| o.address == l.address)
                .map(|o| o.name.clone());
            if let Some(other) = clash {
                cx.error(
                    t.span(),
                    format!(
                        "listener `{}` has the address {} of listener `{other}`",
                        l.name, l.address
                    ),
                );
            } else if control.is_some_and(|c| c.port() != 0 && c == l.address) {
                cx.error(
                    t.span(),
                    format!(
                        "listener `{}` has the control API's address {}",
                        l.name, l.address
                    ),
                );
            }
            listeners.push(l);
        }
        t.finish(cx);
    }

    let mut groups = Vec::new();
    let group_tables = root.named_tables(cx, "groups");
    if group_tables.is_empty() && root.raw("groups").is_none() {
        cx.error(
            0..0,
            "the stack has no group; add one as [groups.NAME] with a [groups.NAME.launch] table",
        );
    }
    for (name, mut t) in group_tables {
        check_name(cx, &name, "a group name");
        if let Some(g) = read_group(cx, &mut t, name.get_ref(), &target_groups) {
            groups.push(g);
        }
        t.finish(cx);
    }

    let mut scheduled = Vec::new();
    for (group_name, mut t) in root.named_tables(cx, "groups") {
        // Scheduled actions live under their group: [[groups.NAME.scheduled]].
        let mut entries = t.table_array(cx, "scheduled");
        for s in entries.iter_mut() {
            if let Some(a) = read_scheduled(cx, s, group_name.get_ref()) {
                scheduled.push(a);
            }
        }
        for s in entries {
            s.finish(cx);
        }
    }
    let mut webhooks = Vec::new();
    for (name, mut t) in root.named_tables(cx, "webhooks") {
        check_name(cx, &name, "a webhook name");
        let url = t.require::<Spanned<String>>(cx, "url");
        if let Some(u) = &url {
            check_url(cx, u, &format!("webhooks.{}.url", name.get_ref()));
        }
        t.finish(cx);
        if let Some(u) = url {
            webhooks.push(WebhookSpec {
                name: name.into_inner(),
                url: u.into_inner(),
            });
        }
    }
    let mut policies = Vec::new();
    for (name, mut t) in root.named_tables(cx, "policies") {
        check_name(cx, &name, "a policy name");
        if let Some(p) = read_policy(cx, &mut t, name.get_ref(), &groups, &target_groups) {
            policies.push(p);
        }
        t.finish(cx);
    }
    let mut alarms = Vec::new();
    for (name, mut t) in root.named_tables(cx, "alarms") {
        check_name(cx, &name, "an alarm name");
        if let Some(a) = read_alarm(cx, &mut t, name.get_ref(), &policies, &webhooks) {
            alarms.push(a);
        }
        t.finish(cx);
    }

    let mut checks = Vec::new();
    for mut c in root.table_array(cx, "checks") {
        let path = c.path.clone();
        let name = c.require::<String>(cx, "name");
        let listener = c.get::<Spanned<String>>(cx, "listener");
        if let Some(l) = &listener
            && !listeners.iter().any(|x| &x.name == l.get_ref())
        {
            cx.error(
                l.span(),
                format!(
                    "`{path}.listener`: listener `{}` does not exist",
                    l.get_ref()
                ),
            );
        }
        let method = c
            .get::<String>(cx, "method")
            .unwrap_or_else(|| "GET".to_owned());
        let target = c.require::<Spanned<String>>(cx, "path");
        if let Some(p) = &target
            && !p.get_ref().starts_with('/')
        {
            cx.error(p.span(), format!("`{path}.path` must start with `/`"));
        }
        let body = c.get::<String>(cx, "body");
        let status = t_int(cx, &mut c, "expect_status", 100, 599, false).unwrap_or(200) as u16;
        let expect_body = c.get::<String>(cx, "expect_body");
        c.finish(cx);
        if !method.bytes().all(|b| b.is_ascii_uppercase()) || method.is_empty() {
            cx.error(
                0..0,
                format!("`{path}.method` must be an upper-case method like GET"),
            );
        }
        if let (Some(name), Some(target)) = (name, target) {
            checks.push(CheckSpec {
                name,
                listener: listener.map(Spanned::into_inner),
                method,
                path: target.into_inner(),
                body,
                expect_status: status,
                expect_body,
            });
        }
    }
    if !checks.is_empty() && listeners.is_empty() {
        cx.error(
            0..0,
            "the stack has [[checks]] but no listener to send them to",
        );
    }

    let simulation = match root.raw("simulation") {
        Some(v) => match Table::from_value(cx, v, "simulation".into()) {
            Some(mut t) => {
                let sim = read_simulation(cx, &mut t, &groups);
                t.finish(cx);
                sim
            }
            None => SimulationSpec::default(),
        },
        None => SimulationSpec::default(),
    };

    let incidents = read_incidents(cx, root, &alarms);
    Some(Stack {
        simulation,
        incidents,
        checks,
        alarms,
        policies,
        scheduled,
        webhooks,
        name,
        control: control?,
        state_dir,
        instance_network: instance_network?,
        region,
        aws,
        groups,
        target_groups,
        listeners,
    })
}

/// `[incidents]`; absent: every alarm investigates, nothing is sent anywhere.
fn read_incidents(
    cx: &mut Cx<'_>,
    root: &mut Table<'_, '_>,
    alarms: &[AlarmSpec],
) -> IncidentsSpec {
    let Some(v) = root.raw("incidents") else {
        return IncidentsSpec::default();
    };
    let Some(mut t) = Table::from_value(cx, v, "incidents".into()) else {
        return IncidentsSpec::default();
    };
    let only = t.raw("alarms").is_some().then(|| t.strings(cx, "alarms"));
    if let Some(list) = &only {
        for a in list {
            if !alarms.iter().any(|x| &x.name == a.get_ref()) {
                cx.error(
                    a.span(),
                    format!("`incidents.alarms`: no alarm named `{}`", a.get_ref()),
                );
            }
        }
    }
    let webhook = t.get::<Spanned<String>>(cx, "webhook");
    if let Some(u) = &webhook {
        check_url(cx, u, "incidents.webhook");
    }
    let github = match t.raw("github") {
        None => None,
        Some(v) => Table::from_value(cx, v, "incidents.github".into()).and_then(|mut g| {
            let url = g.require::<Spanned<String>>(cx, "url");
            if let Some(u) = &url {
                check_url(cx, u, "incidents.github.url");
            }
            let repository = g.require::<Spanned<String>>(cx, "repository");
            if let Some(r) = &repository {
                let parts: Vec<&str> = r.get_ref().split('/').collect();
                if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                    cx.error(
                        r.span(),
                        "`incidents.github.repository` must be `owner/name`",
                    );
                }
            }
            let token_env = g
                .get::<String>(cx, "token_env")
                .unwrap_or_else(|| "GITHUB_TOKEN".to_owned());
            let labels = g
                .strings(cx, "labels")
                .into_iter()
                .map(Spanned::into_inner)
                .collect::<Vec<_>>();
            g.finish(cx);
            Some(GithubSpec {
                url: url?.into_inner().trim_end_matches('/').to_owned(),
                repository: repository?.into_inner(),
                token_env,
                labels: if labels.is_empty() {
                    vec!["incident".to_owned(), "bellows".to_owned()]
                } else {
                    labels
                },
            })
        }),
    };
    t.finish(cx);
    IncidentsSpec {
        alarms: only.map(|l| l.into_iter().map(Spanned::into_inner).collect()),
        webhook: webhook.map(Spanned::into_inner),
        github,
    }
}

/// A receiver's URL: http:// or https://, with a host.
fn check_url(cx: &mut Cx<'_>, u: &Spanned<String>, key: &str) {
    let rest = u
        .get_ref()
        .strip_prefix("http://")
        .or_else(|| u.get_ref().strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => {}
        _ => cx.error(
            u.span(),
            format!("`{key}` must be an http:// or https:// URL with a host"),
        ),
    }
}

fn check_name(cx: &mut Cx<'_>, name: &Spanned<String>, what: &str) {
    let n = name.get_ref();
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && n.as_bytes()[0].is_ascii_alphanumeric();
    if !ok {
        cx.error(
            name.span(),
            format!("`{n}` is not a valid {what}: use 1 to 64 lowercase letters, digits, `-` or `_`, starting with a letter or digit"),
        );
    }
}

fn parse_control(cx: &mut Cx<'_>, v: &Spanned<String>) -> Option<SocketAddr> {
    match v.get_ref().parse::<SocketAddr>() {
        Ok(addr) if addr.ip().is_loopback() => Some(addr),
        Ok(addr) => {
            cx.error(
                v.span(),
                format!("`stack.control` is {addr}, but the control API only listens on loopback (127.0.0.0/8 or ::1)"),
            );
            None
        }
        Err(_) => {
            cx.error(v.span(), format!("`stack.control` must be an address and port like \"127.0.0.1:9900\", found \"{}\"", v.get_ref()));
            None
        }
    }
}

fn parse_network(cx: &mut Cx<'_>, v: &Spanned<String>) -> Option<Ipv4Net> {
    let text = v.get_ref();
    let parsed = text.split_once('/').and_then(|(a, p)| {
        Some(Ipv4Net {
            addr: a.parse::<Ipv4Addr>().ok()?,
            prefix: p.parse::<u8>().ok().filter(|p| *p <= 32)?,
        })
    });
    match parsed {
        Some(net) if net.addr.octets()[0] == 127 && (8..=30).contains(&net.prefix) => Some(net),
        Some(_) => {
            cx.error(v.span(), format!("`stack.instance_network` {text} must lie inside 127.0.0.0/8 with a prefix from /8 to /30"));
            None
        }
        None => {
            cx.error(v.span(), format!("`stack.instance_network` must be a network like \"127.1.0.0/16\", found \"{text}\""));
            None
        }
    }
}

/// Reads an integer and checks it against an inclusive range.
fn int_in(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
    lo: i64,
    hi: i64,
) -> Option<i64> {
    let v = t.get::<Spanned<i64>>(cx, key)?;
    in_range(cx, &v, &format!("{}.{key}", t.path), lo, hi)
}

fn in_range(cx: &mut Cx<'_>, v: &Spanned<i64>, path: &str, lo: i64, hi: i64) -> Option<i64> {
    let n = *v.get_ref();
    if (lo..=hi).contains(&n) {
        Some(n)
    } else {
        cx.error(
            v.span(),
            format!("`{path}` is {n}, must be from {lo} to {hi}"),
        );
        None
    }
}

/// Reads a duration and checks it against an inclusive range.
fn duration_in(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
    lo: Duration,
    hi: Duration,
) -> Option<Duration> {
    let v = t.get::<Spanned<Duration>>(cx, key)?;
    let d = *v.get_ref();
    if d < lo || d > hi {
        cx.error(
            v.span(),
            format!("`{}.{key}` is {d}, must be from {lo} to {hi}", t.path),
        );
        return None;
    }
    Some(d)
}

fn one_of<T: Copy>(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
    choices: &[(&str, T)],
) -> Option<T> {
    let v = t.get::<Spanned<String>>(cx, key)?;
    match choices.iter().find(|(name, _)| *name == v.get_ref()) {
        Some((_, value)) => Some(*value),
        None => {
            let names: Vec<String> = choices.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            cx.error(
                v.span(),
                format!(
                    "`{}.{key}` is \"{}\", must be one of {}",
                    t.path,
                    v.get_ref(),
                    names.join(", ")
                ),
            );
            None
        }
    }
}

fn read_target_group(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    name: &str,
) -> Option<TargetGroupSpec> {
    let port = int_in(cx, t, "port", 1, 65535).unwrap_or(5000) as u16;
    let health_check = match t.raw("health_check") {
        Some(v) => {
            let mut h = Table::from_value(cx, v, format!("{}.health_check", t.path))?;
            let hc = read_health_check(cx, &mut h);
            h.finish(cx);
            hc?
        }
        None => default_health_check(),
    };
    let algorithm = one_of(
        cx,
        t,
        "algorithm",
        &[
            ("round_robin", Algorithm::RoundRobin),
            (
                "least_outstanding_requests",
                Algorithm::LeastOutstandingRequests,
            ),
            ("weighted_random", Algorithm::WeightedRandom),
        ],
    )
    .unwrap_or(Algorithm::RoundRobin);
    let mitigation_span = t.raw("anomaly_mitigation").map(|v| v.span());
    let anomaly_mitigation = match (read_bool(cx, t, "anomaly_mitigation"), mitigation_span) {
        (Some(true), Some(span)) if algorithm != Algorithm::WeightedRandom => {
            cx.error(
                span,
                format!(
                    "`{}.anomaly_mitigation` needs `algorithm = \"weighted_random\"` (as on ALB)",
                    t.path
                ),
            );
            false
        }
        (on, _) => on.unwrap_or(false),
    };
    let slow_start_v = t.get::<Spanned<Duration>>(cx, "slow_start");
    let slow_start = match &slow_start_v {
        Some(v)
            if *v.get_ref() != Duration::ZERO
                && (*v.get_ref() < Duration::from_secs(1)
                    || *v.get_ref() > Duration::from_secs(900)) =>
        {
            cx.error(
                v.span(),
                format!(
                    "`{}.slow_start` is {}, must be 0s (off) or from 1s to 15m",
                    t.path,
                    v.get_ref()
                ),
            );
            Duration::ZERO
        }
        Some(v) => *v.get_ref(),
        None => Duration::ZERO,
    };
    if slow_start > Duration::ZERO && algorithm == Algorithm::LeastOutstandingRequests {
        let span = slow_start_v.as_ref().map_or(t.span(), |v| v.span());
        cx.error(
            span,
            format!(
                "`{}`: slow start cannot be combined with least_outstanding_requests (as on ALB)",
                t.path
            ),
        );
    }
    let deregistration_delay = duration_in(
        cx,
        t,
        "deregistration_delay",
        Duration::ZERO,
        Duration::from_secs(3600),
    )
    .unwrap_or(Duration::from_secs(300));
    let stickiness = match t.raw("stickiness") {
        Some(v) => Table::from_value(cx, v, format!("{}.stickiness", t.path)).and_then(|mut st| {
            let kind = one_of(cx, &mut st, "type", &[("lb_cookie", false), ("app_cookie", true)]);
            let cookie = st.get::<Spanned<String>>(cx, "cookie");
            let duration = duration_in(cx, &mut st, "duration", Duration::from_secs(1), Duration::from_secs(7 * 86_400))
                .unwrap_or(Duration::from_secs(86_400));
            let span = st.span();
            let path = st.path.clone();
            st.finish(cx);
            let app_cookie = match (kind, cookie) {
                (None, _) => {
                    cx.error(span, format!("`{path}.type` must be \"lb_cookie\" or \"app_cookie\""));
                    return None;
                }
                (Some(true), Some(c)) if valid_cookie_name(c.get_ref()) => Some(c.into_inner()),
                (Some(true), Some(c)) => {
                    cx.error(c.span(), format!("`{path}.cookie` \"{}\" is not a valid cookie name", c.get_ref()));
                    return None;
                }
                (Some(true), None) => {
                    cx.error(span, format!("`{path}`: app_cookie stickiness needs `cookie`, the application cookie's name"));
                    return None;
                }
                (Some(false), Some(c)) => {
                    cx.error(c.span(), format!("`{path}.cookie` only goes with type \"app_cookie\""));
                    return None;
                }
                (Some(false), None) => None,
            };
            Some(Stickiness { app_cookie, duration })
        }),
        None => None,
    };
    let max_connections = int_in(cx, t, "max_connections", 1, 1_000_000).map(|n| n as u32);
    let queue_size = int_in(cx, t, "queue_size", 0, 1_000_000).map_or(1000, |n| n as u32);
    let queue_timeout = duration_in(
        cx,
        t,
        "queue_timeout",
        Duration::ZERO,
        Duration::from_secs(3600),
    )
    .unwrap_or(Duration::from_secs(10));
    Some(TargetGroupSpec {
        algorithm,
        anomaly_mitigation,
        stickiness,
        slow_start,
        deregistration_delay,
        max_connections,
        queue_size,
        queue_timeout,
        name: name.to_owned(),
        port,
        health_check,
    })
}

/// bellows' health check defaults: ALB's path, thresholds and matcher, but a 5 s interval
/// and 2 s timeout instead of 30 s and 5 s, because instances here start in milliseconds
/// and a workshop should not wait two and a half minutes for a target to turn healthy.
pub fn default_health_check() -> HealthCheckSpec {
    HealthCheckSpec {
        path: "/".to_owned(),
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(2),
        healthy_threshold: 2,
        unhealthy_threshold: 2,
        matcher: vec![(200, 200)],
    }
}

fn read_health_check(cx: &mut Cx<'_>, t: &mut Table<'_, '_>) -> Option<HealthCheckSpec> {
    let d = default_health_check();
    let path = match t.get::<Spanned<String>>(cx, "path") {
        Some(p)
            if p.get_ref().starts_with('/')
                && p.get_ref().len() <= 1024
                && !p.get_ref().contains(char::is_whitespace) =>
        {
            p.into_inner()
        }
        Some(p) => {
            cx.error(
                p.span(),
                format!(
                    "`{}.path` must start with `/` and hold no spaces, found \"{}\"",
                    t.path,
                    p.get_ref()
                ),
            );
            d.path.clone()
        }
        None => d.path.clone(),
    };
    let interval = duration_in(
        cx,
        t,
        "interval",
        Duration::from_secs(1),
        Duration::from_secs(300),
    )
    .unwrap_or(d.interval);
    let timeout_v = t.get::<Spanned<Duration>>(cx, "timeout");
    let healthy =
        int_in(cx, t, "healthy_threshold", 2, 10).map_or(d.healthy_threshold, |n| n as u32);
    let unhealthy =
        int_in(cx, t, "unhealthy_threshold", 2, 10).map_or(d.unhealthy_threshold, |n| n as u32);
    let matcher = match t.get::<Spanned<String>>(cx, "matcher") {
        Some(m) => parse_matcher(cx, &m, &t.path).unwrap_or(d.matcher.clone()),
        None => d.matcher.clone(),
    };
    let timeout = match timeout_v {
        Some(v) => {
            let timeout = *v.get_ref();
            if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(120) {
                cx.error(
                    v.span(),
                    format!(
                        "`{}.timeout` is {timeout}, must be from 100ms to 2m",
                        t.path
                    ),
                );
            } else if timeout >= interval {
                cx.error(
                    v.span(),
                    format!(
                        "`{}.timeout` ({timeout}) must be shorter than the interval ({interval})",
                        t.path
                    ),
                );
            }
            timeout
        }
        None => d.timeout.min(interval),
    };
    Some(HealthCheckSpec {
        path,
        interval,
        timeout,
        healthy_threshold: healthy,
        unhealthy_threshold: unhealthy,
        matcher,
    })
}

/// ALB's matcher syntax: `200`, `200,302`, `200-299`, each code from 200 to 499.
fn parse_matcher(cx: &mut Cx<'_>, v: &Spanned<String>, path: &str) -> Option<Vec<(u16, u16)>> {
    let mut out = Vec::new();
    for part in v.get_ref().split(',') {
        let part = part.trim();
        let range = match part.split_once('-') {
            Some((a, b)) => a
                .trim()
                .parse::<u16>()
                .ok()
                .zip(b.trim().parse::<u16>().ok()),
            None => part.parse::<u16>().ok().map(|c| (c, c)),
        };
        match range {
            Some((a, b)) if (200..=499).contains(&a) && (200..=499).contains(&b) && a <= b => {
                out.push((a, b))
            }
            _ => {
                cx.error(
                    v.span(),
                    format!("`{path}.matcher` \"{}\" must be codes or ranges from 200 to 499, like \"200\", \"200,302\" or \"200-299\"", v.get_ref()),
                );
                return None;
            }
        }
    }
    Some(out)
}

fn read_group(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    name: &str,
    target_groups: &[TargetGroupSpec],
) -> Option<GroupSpec> {
    let launch = match t.raw("launch") {
        Some(v) => Table::from_value(cx, v, format!("{}.launch", t.path)).and_then(|mut l| {
            let launch = read_launch(cx, &mut l);
            l.finish(cx);
            launch
        }),
        None => {
            cx.error(
                t.span(),
                format!(
                    "missing table [{}.launch]: a group needs a launch template with a `command`",
                    t.path
                ),
            );
            None
        }
    };
    let min = t.require::<Spanned<i64>>(cx, "min");
    let max = t.require::<Spanned<i64>>(cx, "max");
    let desired = t.get::<Spanned<i64>>(cx, "desired");
    let path = t.path.clone();
    let min_n = min
        .as_ref()
        .and_then(|v| in_range(cx, v, &format!("{path}.min"), 0, MAX_GROUP_SIZE));
    let max_n = max
        .as_ref()
        .and_then(|v| in_range(cx, v, &format!("{path}.max"), 0, MAX_GROUP_SIZE));
    let desired_n = match &desired {
        Some(v) => in_range(cx, v, &format!("{path}.desired"), 0, MAX_GROUP_SIZE),
        None => min_n,
    };
    if let (Some(lo), Some(hi)) = (min_n, max_n) {
        if lo > hi {
            cx.error(
                max.as_ref().map_or(t.span(), |v| v.span()),
                format!("`{path}.max` ({hi}) is below `min` ({lo})"),
            );
        } else if let Some(d) = desired_n.filter(|d| *d < lo || *d > hi) {
            let span = desired.as_ref().map_or(t.span(), |v| v.span());
            cx.error(
                span,
                format!("`{path}.desired` ({d}) must lie within min and max [{lo}, {hi}]"),
            );
        }
    }

    let zones = match t.get::<Vec<Spanned<String>>>(cx, "zones") {
        Some(zones) => {
            let mut seen: Vec<&str> = Vec::new();
            for z in &zones {
                check_name(cx, z, "zone name");
                if seen.contains(&z.get_ref().as_str()) {
                    cx.error(z.span(), format!("zone `{}` is listed twice", z.get_ref()));
                }
                seen.push(z.get_ref());
            }
            if zones.is_empty() {
                cx.error(
                    t.span(),
                    format!("`{path}.zones` must list at least one zone"),
                );
            }
            zones.into_iter().map(Spanned::into_inner).collect()
        }
        None => vec!["zone-a".to_owned(), "zone-b".to_owned()],
    };
    let health_check_type = one_of(
        cx,
        t,
        "health_check_type",
        &[("EC2", HealthCheckType::Ec2), ("ELB", HealthCheckType::Elb)],
    )
    .unwrap_or(HealthCheckType::Ec2);
    let day = Duration::from_secs(86_400);
    let grace = duration_in(
        cx,
        t,
        "health_check_grace_period",
        Duration::ZERO,
        Duration::from_secs(7200),
    )
    .unwrap_or(Duration::from_secs(30));
    let cooldown = duration_in(cx, t, "default_cooldown", Duration::ZERO, day)
        .unwrap_or(Duration::from_secs(300));
    let warmup = duration_in(
        cx,
        t,
        "default_instance_warmup",
        Duration::ZERO,
        Duration::from_secs(3600),
    );
    let termination_policy = one_of(
        cx,
        t,
        "termination_policy",
        &[
            ("Default", TerminationPolicy::Default),
            ("OldestInstance", TerminationPolicy::OldestInstance),
            ("NewestInstance", TerminationPolicy::NewestInstance),
        ],
    )
    .unwrap_or(TerminationPolicy::Default);
    let scale_from_zero = read_bool(cx, t, "scale_from_zero").unwrap_or(true);
    // Read with the other top-level tables, once the groups are known.
    let _ = t.raw("scheduled");
    let tg_refs = t
        .get::<Vec<Spanned<String>>>(cx, "target_groups")
        .unwrap_or_default();
    for r in &tg_refs {
        if !target_groups.iter().any(|tg| &tg.name == r.get_ref()) {
            let known: Vec<&str> = target_groups.iter().map(|tg| tg.name.as_str()).collect();
            let hint = if known.is_empty() {
                "the stack defines no [target_groups.NAME]".to_owned()
            } else {
                format!("defined: {}", known.join(", "))
            };
            cx.error(r.span(), format!("group `{name}` registers into target group `{}`, which does not exist ({hint})", r.get_ref()));
        }
    }
    if health_check_type == HealthCheckType::Elb && tg_refs.is_empty() {
        cx.error(
            t.span(),
            format!(
                "group `{name}` uses health_check_type \"ELB\" but registers into no target group"
            ),
        );
    }

    Some(GroupSpec {
        name: name.to_owned(),
        launch: launch?,
        min: min_n? as u32,
        max: max_n? as u32,
        desired: desired_n? as u32,
        zones,
        health_check_type,
        health_check_grace_period: grace,
        default_cooldown: cooldown,
        default_instance_warmup: warmup,
        termination_policy,
        target_groups: tg_refs.into_iter().map(Spanned::into_inner).collect(),
        scale_from_zero,
    })
}

fn read_launch(cx: &mut Cx<'_>, t: &mut Table<'_, '_>) -> Option<LaunchTemplate> {
    let path = t.path.clone();
    let command = t.require::<Vec<Spanned<String>>>(cx, "command");
    if let Some(c) = &command
        && (c.is_empty() || c[0].get_ref().is_empty())
    {
        cx.error(
            t.span(),
            format!("`{path}.command` must name a program, like [\"bellows\", \"app\", \"seed\"]"),
        );
    }
    let env = read_env(cx, t);
    let setup = t.get::<String>(cx, "setup");
    let instance_type = read_instance_type(cx, t);
    let boot_delay = duration_in(
        cx,
        t,
        "boot_delay",
        Duration::ZERO,
        Duration::from_secs(600),
    )
    .unwrap_or(Duration::ZERO);
    let port = int_in(cx, t, "port", 1, 65535).unwrap_or(5000) as u16;
    let stop_timeout = duration_in(
        cx,
        t,
        "stop_timeout",
        Duration::ZERO,
        Duration::from_secs(600),
    )
    .unwrap_or(Duration::from_secs(10));
    Some(LaunchTemplate {
        command: command?.into_iter().map(Spanned::into_inner).collect(),
        env: env?,
        setup,
        instance_type: instance_type?,
        boot_delay,
        port,
        stop_timeout,
    })
}

fn read_env(cx: &mut Cx<'_>, t: &mut Table<'_, '_>) -> Option<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    let Some(v) = t.raw("env") else {
        return Some(env);
    };
    let DeValue::Table(table) = v.get_ref() else {
        cx.error(
            v.span(),
            format!(
                "`{}.env` must be a table of strings, like {{ LOG_LEVEL = \"info\" }}",
                t.path
            ),
        );
        return None;
    };
    for (key, value) in table.iter() {
        let k = key.get_ref();
        let valid = !k.is_empty()
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !k.as_bytes()[0].is_ascii_digit();
        if !valid {
            cx.error(
                key.span(),
                format!("`{k}` is not a valid environment variable name"),
            );
        } else if RESERVED_ENV.contains(&k.as_ref()) {
            cx.error(
                key.span(),
                format!("`{k}` is set by bellows for every instance and cannot be set in `env`"),
            );
        }
        if let Some(s) = String::from_toml(cx, value, &format!("{}.env.{k}", t.path)) {
            env.insert(k.to_string(), s);
        }
    }
    Some(env)
}

fn read_instance_type(cx: &mut Cx<'_>, t: &mut Table<'_, '_>) -> Option<InstanceType> {
    let path = format!("{}.instance_type", t.path);
    let Some(v) = t.raw("instance_type") else {
        return InstanceType::named("t2.micro");
    };
    match v.get_ref() {
        DeValue::String(name) => InstanceType::named(name).or_else(|| {
            let known: Vec<&str> = super::INSTANCE_TYPES.iter().map(|(n, ..)| *n).collect();
            cx.error(
                v.span(),
                format!("unknown instance type \"{name}\"; known: {}, or a table {{ vcpu = 0.5, memory = \"256MiB\" }}", known.join(", ")),
            );
            None
        }),
        DeValue::Table(_) => {
            let mut it = Table::from_value(cx, v, path.clone())?;
            let vcpu = it.require::<Spanned<f64>>(cx, "vcpu");
            let memory = it.require::<Spanned<String>>(cx, "memory");
            it.finish(cx);
            let vcpu = vcpu.and_then(|v| {
                let x = *v.get_ref();
                if (0.05..=64.0).contains(&x) {
                    Some(x)
                } else {
                    cx.error(v.span(), format!("`{path}.vcpu` is {x}, must be from 0.05 to 64"));
                    None
                }
            });
            let memory_mib = memory.and_then(|m| match parse_mib(m.get_ref()) {
                Some(mib) if (16..=1_048_576).contains(&mib) => Some(mib),
                _ => {
                    cx.error(m.span(), format!("`{path}.memory` must be a size from 16MiB to 1024GiB, like \"512MiB\" or \"2GiB\", found \"{}\"", m.get_ref()));
                    None
                }
            });
            Some(InstanceType { name: "custom".to_owned(), vcpu: vcpu?, memory_mib: memory_mib? })
        }
        other => {
            cx.error(v.span(), format!("`{path}` must be a type name like \"t2.micro\" or a table, found {}", other.type_str()));
            None
        }
    }
}

/// `512MiB`, `2GiB`, `1048576KiB` -> MiB.
fn parse_mib(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = s[..digits].parse().ok()?;
    match s[digits..].trim() {
        "KiB" => Some(n / 1024),
        "MiB" => Some(n),
        "GiB" => n.checked_mul(1024),
        _ => None,
    }
}

fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && !name.to_ascii_uppercase().starts_with("AWSALB")
        && !name.to_ascii_uppercase().starts_with("BELLOWS")
}

fn read_listener(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    name: &str,
    target_groups: &[TargetGroupSpec],
) -> Option<ListenerSpec> {
    let path = t.path.clone();
    let address = t.require::<Spanned<String>>(cx, "address").and_then(|a| match a.get_ref().parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            cx.error(a.span(), format!("`{path}.address` must be an address and port like \"127.0.0.1:8080\", found \"{}\"", a.get_ref()));
            None
        }
    });
    let ingress = match t.raw("ingress") {
        Some(_) => {
            let list = t.strings(cx, "ingress");
            list.iter()
                .filter_map(|c| {
                    c.get_ref()
                        .parse::<Cidr>()
                        .map_err(|e| cx.error(c.span(), format!("`{path}.ingress`: {e}")))
                        .ok()
                })
                .collect()
        }
        None => vec![
            "0.0.0.0/0".parse().expect("valid"),
            "::/0".parse().expect("valid"),
        ],
    };
    let default_action = match t.raw("default") {
        Some(v) => Table::from_value(cx, v, format!("{path}.default")).and_then(|mut a| {
            let action = read_action(cx, &mut a, target_groups);
            a.finish(cx);
            action
        }),
        None => {
            cx.error(t.span(), format!("missing key `default` in [{path}]: the action when no rule matches, like default = {{ forward = \"web\" }}"));
            None
        }
    };
    let mut rules: Vec<Rule> = Vec::new();
    let mut priorities: Vec<u32> = Vec::new();
    for mut r in t.table_array(cx, "rules") {
        let priority = t_int(cx, &mut r, "priority", 1, 50_000, true);
        let conditions = read_conditions(cx, &mut r);
        let action = read_action(cx, &mut r, target_groups);
        if let Some(p) = priority {
            if priorities.contains(&p) {
                cx.error(
                    r.span(),
                    format!(
                        "`{}`: priority {p} is used by another rule of this listener",
                        r.path
                    ),
                );
            }
            priorities.push(p);
        }
        let span = r.span();
        let rpath = r.path.clone();
        r.finish(cx);
        if let Some(c) = &conditions
            && *c == Conditions::default()
        {
            cx.error(span, format!("`{rpath}` needs a condition (path, host, method, header or source_ip); use `default` for a catch-all"));
        }
        if let (Some(priority), Some(conditions), Some(action)) = (priority, conditions, action) {
            rules.push(Rule {
                priority,
                conditions,
                action,
            });
        }
    }
    rules.sort_by_key(|r| r.priority);
    let idle_timeout = duration_in(
        cx,
        t,
        "idle_timeout",
        Duration::from_secs(1),
        Duration::from_secs(4000),
    )
    .unwrap_or(Duration::from_secs(60));
    let header_timeout = duration_in(
        cx,
        t,
        "header_timeout",
        Duration::from_millis(100),
        Duration::from_secs(300),
    )
    .unwrap_or(Duration::from_secs(10));
    let max_body = match t.get::<Spanned<String>>(cx, "max_body") {
        Some(v) => match parse_mib_or_bytes(v.get_ref()) {
            Some(n) => Some(n),
            None => {
                cx.error(v.span(), format!("`{path}.max_body` must be a size like \"10MiB\" or \"512KiB\", found \"{}\"", v.get_ref()));
                None
            }
        },
        None => None,
    };
    let access_log = match t.raw("access_log") {
        Some(v) => match v.get_ref() {
            DeValue::Boolean(b) => *b,
            other => {
                cx.error(
                    v.span(),
                    format!(
                        "`{path}.access_log` must be true or false, found {}",
                        other.type_str()
                    ),
                );
                true
            }
        },
        None => true,
    };
    Some(ListenerSpec {
        name: name.to_owned(),
        address: address?,
        ingress,
        rules,
        default_action: default_action?,
        idle_timeout,
        header_timeout,
        max_body,
        access_log,
    })
}

fn t_int(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
    lo: i64,
    hi: i64,
    required: bool,
) -> Option<u32> {
    if required {
        let v = t.require::<Spanned<i64>>(cx, key)?;
        in_range(cx, &v, &format!("{}.{key}", t.path), lo, hi).map(|n| n as u32)
    } else {
        int_in(cx, t, key, lo, hi).map(|n| n as u32)
    }
}

fn read_conditions(cx: &mut Cx<'_>, t: &mut Table<'_, '_>) -> Option<Conditions> {
    let path = t.path.clone();
    let mut ok = true;
    let mut list = |cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key: &'static str| -> Vec<String> {
        let values = t.strings(cx, key);
        if values.len() > 5 {
            cx.error(
                values[5].span(),
                format!("`{path}.{key}` takes at most 5 values, as on ALB"),
            );
            ok = false;
        }
        values.into_iter().map(Spanned::into_inner).collect()
    };
    let paths = list(cx, t, "path");
    let hosts = list(cx, t, "host");
    let methods = list(cx, t, "method");
    let sources = t.strings(cx, "source_ip");
    let mut source_ips = Vec::new();
    for s in sources {
        match s.get_ref().parse::<Cidr>() {
            Ok(c) => source_ips.push(c),
            Err(e) => {
                cx.error(s.span(), format!("`{path}.source_ip`: {e}"));
                ok = false;
            }
        }
    }
    for p in &paths {
        if !p.starts_with('/') && !p.starts_with('*') {
            cx.error(
                t.span(),
                format!("`{path}.path` pattern \"{p}\" must start with `/` or `*`"),
            );
            ok = false;
        }
    }
    for m in &methods {
        if m.is_empty()
            || !m
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
        {
            cx.error(
                t.span(),
                format!("`{path}.method` \"{m}\" must be an upper-case method like \"GET\""),
            );
            ok = false;
        }
    }
    let mut headers = Vec::new();
    if let Some(v) = t.raw("header") {
        match Table::from_value(cx, v, format!("{path}.header")) {
            Some(h) => {
                for (name, value) in h.entries() {
                    let values: Option<Vec<String>> = match value.get_ref() {
                        DeValue::String(s) => Some(vec![s.to_string()]),
                        _ => Vec::<Spanned<String>>::from_toml(
                            cx,
                            value,
                            &format!("{path}.header.{}", name.get_ref()),
                        )
                        .map(|v| v.into_iter().map(Spanned::into_inner).collect()),
                    };
                    match values {
                        Some(values) => headers.push((name.get_ref().to_string(), values)),
                        None => ok = false,
                    }
                }
            }
            None => ok = false,
        }
    }
    ok.then_some(Conditions {
        paths,
        hosts,
        methods,
        headers,
        source_ips,
    })
}

/// Exactly one of `forward`, `redirect`, `fixed_response`.
fn read_action(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    target_groups: &[TargetGroupSpec],
) -> Option<Action> {
    let path = t.path.clone();
    let forward = t.raw("forward");
    let redirect = t.raw("redirect");
    let fixed = t.raw("fixed_response");
    let given = [forward.is_some(), redirect.is_some(), fixed.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if given != 1 {
        cx.error(
            t.span(),
            format!("`{path}` needs exactly one action: forward, redirect or fixed_response"),
        );
        return None;
    }
    if let Some(v) = forward {
        let known = |cx: &mut Cx<'_>, name: &Spanned<String>| {
            if !target_groups.iter().any(|tg| &tg.name == name.get_ref()) {
                cx.error(
                    name.span(),
                    format!(
                        "`{path}.forward`: target group `{}` does not exist",
                        name.get_ref()
                    ),
                );
                false
            } else {
                true
            }
        };
        return match v.get_ref() {
            DeValue::String(s) => {
                let name = Spanned::new(v.span(), s.to_string());
                known(cx, &name).then(|| {
                    Action::Forward(vec![WeightedTargetGroup {
                        target_group: name.into_inner(),
                        weight: 1,
                    }])
                })
            }
            DeValue::Array(items) => {
                let mut groups = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let mut g = Table::from_value(cx, item, format!("{path}.forward[{i}]"))?;
                    let tg = g.require::<Spanned<String>>(cx, "target_group");
                    let weight = t_int(cx, &mut g, "weight", 0, 999, false).unwrap_or(1);
                    g.finish(cx);
                    let tg = tg?;
                    if known(cx, &tg) {
                        groups.push(WeightedTargetGroup {
                            target_group: tg.into_inner(),
                            weight,
                        });
                    }
                }
                if groups.is_empty() || groups.len() > 5 {
                    cx.error(
                        v.span(),
                        format!("`{path}.forward` must list 1 to 5 target groups"),
                    );
                    return None;
                }
                (groups.len() == items.len()).then_some(Action::Forward(groups))
            }
            other => {
                cx.error(v.span(), format!("`{path}.forward` must be a target group name or a list of {{ target_group, weight }}, found {}", other.type_str()));
                None
            }
        };
    }
    if let Some(v) = redirect {
        let mut r = Table::from_value(cx, v, format!("{path}.redirect"))?;
        let status = match r.get::<Spanned<i64>>(cx, "status") {
            Some(s) if [301, 302].contains(s.get_ref()) => *s.get_ref() as u16,
            Some(s) => {
                cx.error(
                    s.span(),
                    format!(
                        "`{path}.redirect.status` must be 301 or 302, found {}",
                        s.get_ref()
                    ),
                );
                301
            }
            None => 301,
        };
        let redirect = Redirect {
            status,
            protocol: r.get(cx, "protocol"),
            host: r.get(cx, "host"),
            port: r.get(cx, "port"),
            path: r.get(cx, "path"),
            query: r.get(cx, "query"),
        };
        r.finish(cx);
        if let Some(p) = &redirect.protocol
            && !["http", "https", "#{protocol}"].contains(&p.to_lowercase().as_str())
        {
            cx.error(
                v.span(),
                format!("`{path}.redirect.protocol` must be http, https or #{{protocol}}"),
            );
        }
        return Some(Action::Redirect(redirect));
    }
    let v = fixed?;
    let mut f = Table::from_value(cx, v, format!("{path}.fixed_response"))?;
    let status = t_int(cx, &mut f, "status", 200, 599, true);
    let content_type = f
        .get::<String>(cx, "content_type")
        .unwrap_or_else(|| "text/plain; charset=utf-8".to_owned());
    let body = f.get::<Spanned<String>>(cx, "body");
    f.finish(cx);
    if let Some(b) = &body
        && b.get_ref().len() > 1024
    {
        cx.error(
            b.span(),
            format!(
                "`{path}.fixed_response.body` is {} bytes, at most 1024 (as on ALB)",
                b.get_ref().len()
            ),
        );
    }
    if content_type.contains(['\r', '\n']) {
        cx.error(
            v.span(),
            format!("`{path}.fixed_response.content_type` must be one line"),
        );
        return None;
    }
    Some(Action::FixedResponse(FixedResponse {
        status: status? as u16,
        content_type,
        body: body.map(Spanned::into_inner).unwrap_or_default(),
    }))
}

/// `512KiB`, `10MiB`, `1GiB` or a plain number of bytes like `1048576`.
fn parse_mib_or_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = s[..digits].parse().ok()?;
    match s[digits..].trim() {
        "B" => Some(n),
        "KiB" => n.checked_mul(1024),
        "MiB" => n.checked_mul(1024 * 1024),
        "GiB" => n.checked_mul(1024 * 1024 * 1024),
        _ => None,
    }
}

fn read_bool(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key: &'static str) -> Option<bool> {
    let path = format!("{}.{key}", t.path);
    let v = t.raw(key)?;
    match v.get_ref() {
        DeValue::Boolean(b) => Some(*b),
        other => {
            cx.error(
                v.span(),
                format!("`{path}` must be true or false, found {}", other.type_str()),
            );
            None
        }
    }
}

fn read_f64(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
    required: bool,
) -> Option<f64> {
    if required {
        t.require::<f64>(cx, key)
    } else {
        t.get::<f64>(cx, key)
    }
}

fn read_dimensions(cx: &mut Cx<'_>, t: &mut Table<'_, '_>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let path = format!("{}.dimensions", t.path);
    let Some(v) = t.raw("dimensions") else {
        return out;
    };
    let DeValue::Table(table) = v.get_ref() else {
        cx.error(
            v.span(),
            format!("`{path}` must be a table like {{ AutoScalingGroupName = \"web\" }}"),
        );
        return out;
    };
    for (k, value) in table.iter() {
        if let Some(s) = String::from_toml(cx, value, &format!("{path}.{}", k.get_ref())) {
            out.insert(k.get_ref().to_string(), s);
        }
    }
    out
}

fn read_statistic(cx: &mut Cx<'_>, t: &mut Table<'_, '_>) -> Statistic {
    match t.get::<Spanned<String>>(cx, "statistic") {
        Some(s) => s.get_ref().parse().unwrap_or_else(|e: String| {
            cx.error(s.span(), format!("`{}.statistic`: {e}", t.path));
            Statistic::Average
        }),
        None => Statistic::Average,
    }
}

fn read_alarm(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    name: &str,
    policies: &[PolicySpec],
    webhooks: &[WebhookSpec],
) -> Option<AlarmSpec> {
    let path = t.path.clone();
    let namespace = t
        .get::<String>(cx, "namespace")
        .unwrap_or_else(|| "AWS/EC2".to_owned());
    let metric = t.require::<String>(cx, "metric");
    let dimensions = read_dimensions(cx, t);
    let statistic = read_statistic(cx, t);
    let period = duration_in(
        cx,
        t,
        "period",
        Duration::from_secs(1),
        Duration::from_secs(86_400),
    )
    .unwrap_or(Duration::from_secs(60));
    let n = t_int(cx, t, "evaluation_periods", 1, 100, true);
    let m_v = t.get::<Spanned<i64>>(cx, "datapoints_to_alarm");
    let comparison = match t.require::<Spanned<String>>(cx, "comparison") {
        Some(c) => Comparison::parse(c.get_ref()).or_else(|| {
            cx.error(
                c.span(),
                format!(
                    "`{path}.comparison` \"{}\" must be >, >=, <, <= or CloudWatch's name",
                    c.get_ref()
                ),
            );
            None
        }),
        None => None,
    };
    let threshold = read_f64(cx, t, "threshold", true);
    let treat = one_of(
        cx,
        t,
        "treat_missing_data",
        &[
            ("missing", MissingData::Missing),
            ("notBreaching", MissingData::NotBreaching),
            ("breaching", MissingData::Breaching),
            ("ignore", MissingData::Ignore),
        ],
    )
    .unwrap_or(MissingData::Missing);
    let actions = |cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key: &'static str| -> Vec<String> {
        let list = t.strings(cx, key);
        for a in &list {
            let ok = match a.get_ref().strip_prefix("webhook:") {
                Some(w) => webhooks.iter().any(|x| x.name == w),
                None => policies.iter().any(|p| &p.name == a.get_ref()),
            };
            if !ok {
                cx.error(a.span(), format!("`{path}.{key}`: `{}` is neither a policy nor webhook:NAME of a defined webhook", a.get_ref()));
            }
        }
        list.into_iter().map(Spanned::into_inner).collect()
    };
    let alarm_actions = actions(cx, t, "alarm_actions");
    let ok_actions = actions(cx, t, "ok_actions");
    let insufficient_data_actions = actions(cx, t, "insufficient_data_actions");
    let n = n?;
    let m = match m_v {
        Some(v) => in_range(
            cx,
            &v,
            &format!("{path}.datapoints_to_alarm"),
            1,
            i64::from(n),
        )? as u32,
        None => n,
    };
    Some(AlarmSpec {
        name: name.to_owned(),
        metric: SeriesKey {
            namespace,
            name: metric?,
            dimensions,
        },
        statistic,
        period,
        evaluation_periods: n,
        datapoints_to_alarm: m,
        comparison: comparison?,
        threshold: threshold?,
        treat_missing_data: treat,
        alarm_actions,
        ok_actions,
        insufficient_data_actions,
    })
}

fn read_adjustment_type(cx: &mut Cx<'_>, t: &mut Table<'_, '_>) -> AdjustmentType {
    one_of(
        cx,
        t,
        "adjustment_type",
        &[
            ("ChangeInCapacity", AdjustmentType::ChangeInCapacity),
            ("ExactCapacity", AdjustmentType::ExactCapacity),
            (
                "PercentChangeInCapacity",
                AdjustmentType::PercentChangeInCapacity,
            ),
        ],
    )
    .unwrap_or(AdjustmentType::ChangeInCapacity)
}

fn read_policy(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    name: &str,
    groups: &[GroupSpec],
    target_groups: &[TargetGroupSpec],
) -> Option<PolicySpec> {
    let path = t.path.clone();
    let group = t.require::<Spanned<String>>(cx, "group");
    if let Some(g) = &group
        && !groups.iter().any(|x| &x.name == g.get_ref())
    {
        cx.error(
            g.span(),
            format!("`{path}.group`: group `{}` does not exist", g.get_ref()),
        );
    }
    let kind = t.require::<Spanned<String>>(cx, "type")?;
    let min_mag = t_int(cx, t, "min_adjustment_magnitude", 1, 1000, false).map(i64::from);
    let warmup = duration_in(cx, t, "warmup", Duration::ZERO, Duration::from_secs(3600));
    let kind = match kind.get_ref().as_str() {
        "simple" => {
            let adjustment_type = read_adjustment_type(cx, t);
            let adjustment = t.require::<i64>(cx, "adjustment")?;
            let cooldown = duration_in(
                cx,
                t,
                "cooldown",
                Duration::ZERO,
                Duration::from_secs(86_400),
            );
            let cooldown = cooldown.or_else(|| {
                groups
                    .iter()
                    .find(|g| group.as_ref().is_some_and(|n| n.get_ref() == &g.name))
                    .map(|g| g.default_cooldown)
            });
            PolicyKind::Simple {
                adjustment_type,
                adjustment,
                cooldown,
                min_adjustment_magnitude: min_mag,
            }
        }
        "step" => {
            let adjustment_type = read_adjustment_type(cx, t);
            let mut steps = Vec::new();
            for mut st in t.table_array(cx, "steps") {
                let lower = st.get::<f64>(cx, "lower");
                let upper = st.get::<f64>(cx, "upper");
                let adjustment = st.require::<i64>(cx, "adjustment");
                st.finish(cx);
                if let Some(adjustment) = adjustment {
                    steps.push(Step {
                        lower,
                        upper,
                        adjustment,
                    });
                }
            }
            if let Err(e) = check_steps(&steps) {
                cx.error(t.span(), format!("`{path}.steps`: {e}"));
            }
            PolicyKind::Step {
                adjustment_type,
                steps,
                min_adjustment_magnitude: min_mag,
                warmup,
            }
        }
        "target_tracking" => {
            let target = read_f64(cx, t, "target", true)?;
            let disable_scale_in = read_bool(cx, t, "disable_scale_in").unwrap_or(false);
            let period = duration_in(
                cx,
                t,
                "period",
                Duration::from_secs(1),
                Duration::from_secs(3600),
            )
            .unwrap_or(Duration::from_secs(1));
            let metric = read_tracked_metric(cx, t, &path, target_groups)?;
            if target <= 0.0 {
                cx.error(t.span(), format!("`{path}.target` must be above 0"));
            }
            PolicyKind::TargetTracking {
                metric,
                target,
                disable_scale_in,
                warmup,
                period,
            }
        }
        "hpa" => {
            let metric = read_tracked_metric(cx, t, &path, target_groups)?;
            let target = read_target(cx, t, &path)?;
            let mut h = HpaSpec::new(metric, target);
            let d = |cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key, default| {
                duration_in(cx, t, key, Duration::ZERO, Duration::from_secs(3600))
                    .unwrap_or(default)
            };
            h.sync_period = d(cx, t, "sync_period", h.sync_period).max(Duration::from_secs(1));
            h.scale_down_window = d(cx, t, "scale_down_window", h.scale_down_window);
            h.scale_up_window = d(cx, t, "scale_up_window", h.scale_up_window);
            if let Some(tol) = t.get::<Spanned<f64>>(cx, "tolerance") {
                if (0.0..1.0).contains(tol.get_ref()) {
                    h.tolerance = tol.into_inner();
                } else {
                    cx.error(
                        tol.span(),
                        format!("`{path}.tolerance` must be from 0 to below 1"),
                    );
                }
            }
            PolicyKind::Hpa(h)
        }
        "kpa" => {
            let tg = read_policy_target_group(cx, t, &path, target_groups)?;
            let target = read_target(cx, t, &path)?;
            let mut k = KpaSpec::new(tg, target);
            let d = |cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key, default| {
                duration_in(
                    cx,
                    t,
                    key,
                    Duration::from_secs(1),
                    Duration::from_secs(3600),
                )
                .unwrap_or(default)
            };
            k.stable_window = d(cx, t, "stable_window", k.stable_window);
            k.panic_window = d(cx, t, "panic_window", k.panic_window);
            k.tick = d(cx, t, "tick", k.tick);
            for (key, slot, lo, hi) in [
                ("utilization", &mut k.utilization, 0.01, 1.0),
                ("panic_threshold", &mut k.panic_threshold, 1.0, 100.0),
                (
                    "max_scale_down_rate",
                    &mut k.max_scale_down_rate,
                    1.0,
                    100.0,
                ),
            ] {
                if let Some(v) = float_in(cx, t, &path, key, lo, hi) {
                    *slot = v;
                }
            }
            if k.panic_window > k.stable_window {
                cx.error(
                    t.span(),
                    format!("`{path}.panic_window` must not be longer than `stable_window`"),
                );
            }
            PolicyKind::Kpa(k)
        }
        "predictive" => {
            let tg = read_policy_target_group(cx, t, &path, target_groups)?;
            let target = read_target(cx, t, &path)?;
            let mut p = PredictiveSpec::new(tg, target);
            let d = |cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key, default| {
                duration_in(
                    cx,
                    t,
                    key,
                    Duration::from_secs(1),
                    Duration::from_secs(86_400),
                )
                .unwrap_or(default)
            };
            p.lead = d(cx, t, "lead", p.lead);
            p.tick = d(cx, t, "tick", p.tick);
            p.reactive_window = d(cx, t, "reactive_window", p.reactive_window);
            p.scale_in_window = d(cx, t, "scale_in_window", p.scale_in_window);
            if let Some(n) = int_in(cx, t, "history_days", 1, 28) {
                p.history_days = n as u32;
            }
            if let Some(v) = float_in(cx, t, &path, "burst", 0.0, 10.0) {
                p.burst = v;
            }
            if let Some(v) = float_in(cx, t, &path, "burst_target", 0.001, 1e9) {
                p.burst_target = v;
            }
            PolicyKind::Predictive(p)
        }
        other => {
            cx.error(
                kind.span(),
                format!(
                    "`{path}.type` \"{other}\" must be \"simple\", \"step\", \"target_tracking\", \"hpa\", \"kpa\" or \"predictive\""
                ),
            );
            return None;
        }
    };
    Some(PolicySpec {
        name: name.to_owned(),
        group: group?.into_inner(),
        kind,
    })
}

/// AWS's rules for step bounds: no gaps, no overlaps, at most one open at each end.
fn check_steps(steps: &[Step]) -> Result<(), String> {
    if steps.is_empty() {
        return Err("a step policy needs at least one step ([[policies.NAME.steps]])".to_owned());
    }
    let mut sorted: Vec<&Step> = steps.iter().collect();
    sorted.sort_by(|a, b| {
        a.lower
            .unwrap_or(f64::NEG_INFINITY)
            .total_cmp(&b.lower.unwrap_or(f64::NEG_INFINITY))
    });
    for s in &sorted {
        if let (Some(l), Some(u)) = (s.lower, s.upper)
            && l >= u
        {
            return Err(format!(
                "a step's lower bound {l} is not below its upper bound {u}"
            ));
        }
    }
    for w in sorted.windows(2) {
        match (w[0].upper, w[1].lower) {
            (Some(u), Some(l)) if u == l => {}
            (Some(u), Some(l)) if u < l => return Err(format!("a gap between {u} and {l}")),
            (Some(u), Some(l)) => return Err(format!("steps overlap between {l} and {u}")),
            _ => {
                return Err(
                    "only the first step may lack a lower bound and only the last an upper one"
                        .to_owned(),
                );
            }
        }
    }
    Ok(())
}

fn read_scheduled(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, group: &str) -> Option<ScheduledAction> {
    let path = t.path.clone();
    let name = t.require::<String>(cx, "name");
    let cron = t.require::<Spanned<String>>(cx, "cron");
    let tz = t
        .get::<String>(cx, "time_zone")
        .unwrap_or_else(|| "UTC".to_owned());
    let min = t_int(cx, t, "min", 0, MAX_GROUP_SIZE, false);
    let max = t_int(cx, t, "max", 0, MAX_GROUP_SIZE, false);
    let desired = t_int(cx, t, "desired", 0, MAX_GROUP_SIZE, false);
    if min.is_none() && max.is_none() && desired.is_none() {
        cx.error(
            t.span(),
            format!("`{path}` must set at least one of min, max, desired"),
        );
    }
    let cron = cron.and_then(|c| match Cron::parse(c.get_ref(), &tz) {
        Ok(cron) => Some(cron),
        Err(e) => {
            cx.error(c.span(), format!("`{path}.cron`: {e}"));
            None
        }
    });
    Some(ScheduledAction {
        name: name?,
        group: group.to_owned(),
        cron: cron?,
        min,
        max,
        desired,
    })
}

/// The `[simulation]` section; the model's defaults fill what it leaves out.
fn read_simulation(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, groups: &[GroupSpec]) -> SimulationSpec {
    let d = SimulationSpec::default();
    let path = t.path.clone();
    let group = t.get::<Spanned<String>>(cx, "group");
    if let Some(g) = &group
        && !groups.iter().any(|x| &x.name == g.get_ref())
    {
        cx.error(
            g.span(),
            format!("`{path}.group`: group `{}` does not exist", g.get_ref()),
        );
    }
    let capacity = t.get::<Spanned<f64>>(cx, "capacity");
    let cpu_per_request = duration_in(
        cx,
        t,
        "cpu_per_request",
        Duration::from_millis(1),
        Duration::from_secs(60),
    );
    let vcpu = group
        .as_ref()
        .and_then(|g| groups.iter().find(|x| &x.name == g.get_ref()))
        .or(groups.first())
        .map_or(1.0, |g| g.launch.instance_type.vcpu);
    let capacity = match (capacity, cpu_per_request) {
        (Some(c), Some(_)) => {
            cx.error(
                c.span(),
                format!("`{path}`: set either `capacity` or `cpu_per_request`, not both"),
            );
            d.capacity
        }
        (Some(c), None) if !(*c.get_ref() > 0.0 && *c.get_ref() <= 1e9) => {
            cx.error(
                c.span(),
                format!("`{path}.capacity` must be above 0 (requests per second at 100% CPU)"),
            );
            d.capacity
        }
        (Some(c), None) => c.into_inner(),
        (None, Some(cost)) => vcpu * 1000.0 / cost.as_millis() as f64,
        (None, None) => d.capacity,
    };
    let service_time = duration_in(
        cx,
        t,
        "service_time",
        Duration::from_millis(1),
        Duration::from_secs(600),
    )
    .unwrap_or(d.service_time);
    let slo = duration_in(
        cx,
        t,
        "slo",
        Duration::from_millis(1),
        Duration::from_secs(3600),
    )
    .unwrap_or(d.slo);
    let startup = duration_in(cx, t, "startup", Duration::ZERO, Duration::from_secs(3600));
    let startup_spread = duration_in(
        cx,
        t,
        "startup_spread",
        Duration::ZERO,
        Duration::from_secs(3600),
    )
    .unwrap_or(d.startup_spread);
    let mut number =
        |cx: &mut Cx<'_>, key: &'static str, default: f64| match t.get::<Spanned<f64>>(cx, key) {
            Some(v) if *v.get_ref() >= 0.0 => v.into_inner(),
            Some(v) => {
                cx.error(v.span(), format!("`{path}.{key}` must not be negative"));
                default
            }
            None => default,
        };
    let price_per_hour = number(cx, "price_per_hour", d.price_per_hour);
    let crash_rate = number(cx, "crash_rate", d.crash_rate);
    let max_in_flight = int_in(cx, t, "max_in_flight", 1, 1_000_000_000).map(|n| n as u32);
    let seed = int_in(cx, t, "seed", 0, i64::MAX).map_or(d.seed, |n| n as u64);
    SimulationSpec {
        group: group.map(Spanned::into_inner),
        capacity,
        service_time,
        slo,
        startup,
        startup_spread,
        price_per_hour,
        crash_rate,
        max_in_flight,
        seed,
    }
}

/// The metric a target tracking or HPA policy follows.
fn read_tracked_metric(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    path: &str,
    target_groups: &[TargetGroupSpec],
) -> Option<TrackedMetric> {
    Some(match t.get::<Spanned<String>>(cx, "metric") {
        Some(m) if m.get_ref() == "ASGAverageCPUUtilization" => {
            TrackedMetric::AsgAverageCpuUtilization
        }
        Some(m) if m.get_ref() == "ALBRequestCountPerTarget" => {
            TrackedMetric::AlbRequestCountPerTarget {
                target_group: read_policy_target_group(cx, t, path, target_groups)?,
            }
        }
        Some(m) if m.get_ref() == "custom" => {
            let namespace = t.require::<String>(cx, "namespace")?;
            let metric_name = t.require::<String>(cx, "metric_name")?;
            let dimensions = read_dimensions(cx, t);
            let statistic = read_statistic(cx, t);
            TrackedMetric::Custom {
                metric: SeriesKey {
                    namespace,
                    name: metric_name,
                    dimensions,
                },
                statistic,
            }
        }
        Some(m) => {
            cx.error(m.span(), format!("`{path}.metric` must be \"ASGAverageCPUUtilization\", \"ALBRequestCountPerTarget\" or \"custom\""));
            return None;
        }
        None => TrackedMetric::AsgAverageCpuUtilization,
    })
}

/// A policy's `target_group`, which must exist. Missing, it is reported and read as
/// empty so that the rest of the table is still checked.
fn read_policy_target_group(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    path: &str,
    target_groups: &[TargetGroupSpec],
) -> Option<String> {
    let Some(tg) = t.require::<Spanned<String>>(cx, "target_group") else {
        return Some(String::new());
    };
    if !target_groups.iter().any(|x| &x.name == tg.get_ref()) {
        cx.error(
            tg.span(),
            format!(
                "`{path}.target_group`: target group `{}` does not exist",
                tg.get_ref()
            ),
        );
    }
    Some(tg.into_inner())
}

/// An optional number from `lo` to `hi`; out of range is reported and read as absent.
fn float_in(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    path: &str,
    key: &'static str,
    lo: f64,
    hi: f64,
) -> Option<f64> {
    let v = t.get::<Spanned<f64>>(cx, key)?;
    if (lo..=hi).contains(v.get_ref()) {
        Some(v.into_inner())
    } else {
        cx.error(
            v.span(),
            format!("`{path}.{key}` must be from {lo} to {hi}"),
        );
        None
    }
}

/// A policy's `target`, above zero. A problem is reported and read as 1 so that the
/// rest of the table is still checked (the stack is refused anyway).
fn read_target(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, path: &str) -> Option<f64> {
    let Some(target) = t.require::<Spanned<f64>>(cx, "target") else {
        return Some(1.0);
    };
    if *target.get_ref() <= 0.0 {
        cx.error(target.span(), format!("`{path}.target` must be above 0"));
        return Some(1.0);
    }
    Some(target.into_inner())
}
