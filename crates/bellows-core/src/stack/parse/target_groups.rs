//! `[target_groups.NAME]`: port, health check, algorithm, slow start, stickiness,
//! deregistration delay and the queue.

use toml::Spanned;

use super::values::{check_name, duration_in, int_in, one_of, read_bool};
use crate::Duration;
use crate::lb::select::Algorithm;
use crate::stack::reader::{Cx, Table};
use crate::stack::{HealthCheckSpec, Stickiness, TargetGroupSpec};

pub(super) fn read_all(cx: &mut Cx<'_>, root: &mut Table<'_, '_>) -> Vec<TargetGroupSpec> {
    let mut target_groups = Vec::new();
    for (name, mut t) in root.named_tables(cx, "target_groups") {
        check_name(cx, &name, "target group name");
        if let Some(tg) = read_target_group(cx, &mut t, name.get_ref()) {
            target_groups.push(tg);
        }
        t.finish(cx);
    }
    target_groups
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

fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && !name.to_ascii_uppercase().starts_with("AWSALB")
        && !name.to_ascii_uppercase().starts_with("BELLOWS")
}
