//! The schema of the stack file: defaults, ranges and cross references.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::reader::{Cx, FromToml, Table};
use super::{
    Diagnostic, GroupSpec, HealthCheckSpec, HealthCheckType, InstanceType, Ipv4Net, LaunchTemplate,
    RESERVED_ENV, Stack, TargetGroupSpec, TerminationPolicy,
};
use crate::Duration;

/// The control API's address when the stack file names none.
pub const DEFAULT_CONTROL: &str = "127.0.0.1:9900";
/// Instances' private addresses come from here unless the stack file says otherwise.
pub const DEFAULT_INSTANCE_NETWORK: &str = "127.1.0.0/16";
/// A group may not grow past this: every instance is a process on one machine.
pub const MAX_GROUP_SIZE: i64 = 256;

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
    let (name, control, state_dir, network) = match settings.as_mut() {
        Some(t) => {
            let name = t.get::<Spanned<String>>(cx, "name");
            let control = t.get::<Spanned<String>>(cx, "control");
            let state_dir = t.get::<String>(cx, "state_dir");
            let network = t.get::<Spanned<String>>(cx, "instance_network");
            (name, control, state_dir, network)
        }
        None => (None, None, None, None),
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

    let mut target_groups = Vec::new();
    for (name, mut t) in root.named_tables(cx, "target_groups") {
        check_name(cx, &name, "a target group name");
        if let Some(tg) = read_target_group(cx, &mut t, name.get_ref()) {
            target_groups.push(tg);
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

    Some(Stack {
        name,
        control: control?,
        state_dir,
        instance_network: instance_network?,
        groups,
        target_groups,
    })
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
    Some(TargetGroupSpec {
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
            if timeout < Duration::from_secs(1) || timeout > Duration::from_secs(120) {
                cx.error(
                    v.span(),
                    format!("`{}.timeout` is {timeout}, must be from 1s to 2m", t.path),
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
