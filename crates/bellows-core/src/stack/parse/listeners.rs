//! `[listeners.NAME]`: the address, the ingress allow-list, the default action, the
//! rules with their conditions and actions, timeouts and the body limit.

use core::net::SocketAddr;

use toml::Spanned;
use toml::de::DeValue;

use super::values::{check_name, duration_in, int_in, t_int};
use crate::Duration;
use crate::lb::cidr::Cidr;
use crate::lb::rules::{Action, Conditions, FixedResponse, Redirect, Rule, WeightedTargetGroup};
use crate::stack::reader::{Cx, FromToml, Table};
use crate::stack::{ListenerSpec, TargetGroupSpec};

/// Every listener; two may not share an address, nor take the control API's.
pub(super) fn read_all(
    cx: &mut Cx<'_>,
    root: &mut Table<'_, '_>,
    control: Option<SocketAddr>,
    target_groups: &[TargetGroupSpec],
) -> Vec<ListenerSpec> {
    let mut listeners: Vec<ListenerSpec> = Vec::new();
    for (name, mut t) in root.named_tables(cx, "listeners") {
        check_name(cx, &name, "listener name");
        if let Some(l) = read_listener(cx, &mut t, name.get_ref(), target_groups) {
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
    listeners
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
    let aws_port = int_in(cx, t, "aws_port", 1, 65535).map(|p| p as u16);
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
        aws_port,
    })
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
