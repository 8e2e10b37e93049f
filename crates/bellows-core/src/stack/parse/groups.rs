//! `[groups.NAME]`: capacity, zones, health checks, cooldown, warmup, termination
//! policy, the launch template (`[groups.NAME.launch]`, its `env` and instance type) and
//! the scheduled actions (`[[groups.NAME.scheduled]]`).

use std::collections::BTreeMap;

use toml::Spanned;
use toml::de::DeValue;

use super::MAX_GROUP_SIZE;
use super::values::{check_name, duration_in, in_range, int_in, one_of, read_bool, t_int};
use crate::Duration;
use crate::policy::ScheduledAction;
use crate::schedule::Cron;
use crate::stack::reader::{Cx, FromToml, Table};
use crate::stack::{
    GroupSpec, HealthCheckType, INSTANCE_TYPES, InstanceType, LaunchTemplate, NetworkMode,
    RESERVED_ENV, RoleSpec, TargetGroupSpec, TerminationPolicy,
};

/// Every group; a stack needs at least one.
pub(super) fn read_all(
    cx: &mut Cx<'_>,
    root: &mut Table<'_, '_>,
    target_groups: &[TargetGroupSpec],
) -> Vec<GroupSpec> {
    let mut groups = Vec::new();
    let group_tables = root.named_tables(cx, "groups");
    if group_tables.is_empty() && root.raw("groups").is_none() {
        cx.error(
            0..0,
            "the stack has no group; add one as [groups.NAME] with a [groups.NAME.launch] table",
        );
    }
    for (name, mut t) in group_tables {
        check_name(cx, &name, "group name");
        if let Some(g) = read_group(cx, &mut t, name.get_ref(), target_groups) {
            groups.push(g);
        }
        t.finish(cx);
    }
    groups
}

/// Every group's scheduled actions, read once the groups are known.
pub(super) fn read_all_scheduled(
    cx: &mut Cx<'_>,
    root: &mut Table<'_, '_>,
) -> Vec<ScheduledAction> {
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
    scheduled
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
    let role = match t.raw("role") {
        Some(v) => Table::from_value(cx, v, format!("{}.role", t.path))
            .map(|mut r| {
                let role = read_role(cx, &mut r, name);
                r.finish(cx);
                role
            })
            .unwrap_or_else(|| RoleSpec::default_for(name)),
        None => RoleSpec::default_for(name),
    };
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
        role,
    })
}

/// `[groups.NAME.role]`: `name` (a role name) and `allow`, a list of `service:Action`
/// patterns (`dynamodb:*`, `ec2:Describe*`, `cloudwatch:PutMetricData`).
fn read_role(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, group: &str) -> RoleSpec {
    let default = RoleSpec::default_for(group);
    let path = t.path.clone();
    let name = match t.get::<Spanned<String>>(cx, "name") {
        Some(n) => {
            let ok = !n.get_ref().is_empty()
                && n.get_ref().len() <= 64
                && n.get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
            if !ok {
                cx.error(
                    n.span(),
                    format!("`{path}.name` must be 1 to 64 of letters, digits and +=,.@_- (an IAM role name)"),
                );
            }
            n.into_inner()
        }
        None => default.name,
    };
    let allow = match t.get::<Vec<Spanned<String>>>(cx, "allow") {
        Some(list) => {
            for rule in &list {
                let r = rule.get_ref();
                let ok = RoleSpec::allows_pattern(r);
                if !ok {
                    cx.error(
                        rule.span(),
                        format!(
                            "`{path}.allow`: \"{r}\" is not SERVICE:Action (a trailing * allowed), with SERVICE one of {}",
                            crate::stack::ROLE_SERVICES.join(", ")
                        ),
                    );
                }
            }
            list.into_iter().map(Spanned::into_inner).collect()
        }
        None => default.allow,
    };
    RoleSpec { name, allow }
}

fn read_launch(cx: &mut Cx<'_>, t: &mut Table<'_, '_>) -> Option<LaunchTemplate> {
    let path = t.path.clone();
    let user_data = t.get::<String>(cx, "user_data");
    let command = if user_data.is_some() {
        if t.raw("command").is_some() {
            cx.error(
                t.span(),
                format!("`{path}` has both `command` and `user_data`: give one program"),
            );
            return None;
        }
        Some(Vec::new())
    } else {
        t.require::<Vec<Spanned<String>>>(cx, "command")
    };
    if let Some(text) = &user_data
        && let Err(e) = crate::userdata::classify(text)
    {
        cx.error(t.span(), format!("`{path}.user_data`: {e}"));
    }
    let image_id = t.get::<String>(cx, "image_id");
    let network = match t.get::<Spanned<String>>(cx, "network") {
        None => NetworkMode::Auto,
        Some(v) => match v.get_ref().as_str() {
            "auto" => NetworkMode::Auto,
            "namespace" => NetworkMode::Namespace,
            "host" => NetworkMode::Host,
            other => {
                cx.error(
                    v.span(),
                    format!("`{path}.network` must be \"auto\", \"namespace\" or \"host\", found \"{other}\""),
                );
                NetworkMode::Auto
            }
        },
    };
    if user_data.is_none()
        && let Some(c) = &command
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
        user_data,
        image_id,
        env: env?,
        setup,
        instance_type: instance_type?,
        boot_delay,
        port,
        stop_timeout,
        network,
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
            let known: Vec<&str> = INSTANCE_TYPES.iter().map(|(n, ..)| *n).collect();
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
        cron: Some(cron?),
        start: None,
        end: None,
        min,
        max,
        desired,
    })
}
