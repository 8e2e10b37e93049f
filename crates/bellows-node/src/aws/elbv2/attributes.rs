//! ELBv2 attributes of the record load balancers, target groups and listeners: the
//! defaults AWS starts them with, their checks, and ModifyLoadBalancerAttributes,
//! ModifyTargetGroupAttributes, DescribeListenerAttributes and ModifyListenerAttributes.

use bellows_aws::{AwsError, Input, Value};
use serde_json::Value as J;

use super::{LB, LISTENER, TG, invalid, lb_not_found, listener_not_found, tg_not_found};
use crate::aws::Ctx;

/// An application load balancer's attributes as AWS starts them.
pub(super) const LB_ATTRIBUTES: [(&str, &str); 19] = [
    ("access_logs.s3.enabled", "false"),
    ("access_logs.s3.bucket", ""),
    ("access_logs.s3.prefix", ""),
    ("connection_logs.s3.enabled", "false"),
    ("connection_logs.s3.bucket", ""),
    ("connection_logs.s3.prefix", ""),
    ("deletion_protection.enabled", "false"),
    ("idle_timeout.timeout_seconds", "60"),
    ("client_keep_alive.seconds", "3600"),
    ("routing.http.desync_mitigation_mode", "defensive"),
    ("routing.http.drop_invalid_header_fields.enabled", "false"),
    ("routing.http.preserve_host_header.enabled", "false"),
    (
        "routing.http.x_amzn_tls_version_and_cipher_suite.enabled",
        "false",
    ),
    ("routing.http.xff_client_port.enabled", "false"),
    ("routing.http.xff_header_processing.mode", "append"),
    ("routing.http2.enabled", "true"),
    ("waf.fail_open.enabled", "false"),
    ("load_balancing.cross_zone.enabled", "true"),
    ("zonal_shift.config.enabled", "false"),
];

/// An instance target group's attributes as AWS starts them.
pub(super) const TG_ATTRIBUTES: [(&str, &str); 13] = [
    ("deregistration_delay.timeout_seconds", "300"),
    ("stickiness.enabled", "false"),
    ("stickiness.type", "lb_cookie"),
    ("stickiness.lb_cookie.duration_seconds", "86400"),
    ("stickiness.app_cookie.cookie_name", ""),
    ("stickiness.app_cookie.duration_seconds", "86400"),
    ("slow_start.duration_seconds", "0"),
    ("load_balancing.algorithm.type", "round_robin"),
    ("load_balancing.algorithm.anomaly_mitigation", "off"),
    (
        "load_balancing.cross_zone.enabled",
        "use_load_balancer_configuration",
    ),
    (
        "target_group_health.dns_failover.minimum_healthy_targets.count",
        "1",
    ),
    (
        "target_group_health.dns_failover.minimum_healthy_targets.percentage",
        "off",
    ),
    (
        "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count",
        "1",
    ),
];

pub(super) fn defaults(pairs: &[(&str, &str)]) -> J {
    J::Object(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), J::String((*v).to_owned())))
            .collect(),
    )
}

/// Attributes as the answer lists them.
fn attribute_list(attrs: &J) -> Value {
    Value::List(
        attrs
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                Value::object()
                    .with("Key", k.as_str())
                    .with("Value", v.as_str().unwrap_or_default())
            })
            .collect(),
    )
}

fn attributes_in(input: &Input) -> Result<Vec<(String, String)>, AwsError> {
    let mut out = Vec::new();
    for a in input.list("Attributes") {
        out.push((a.str("Key")?, a.opt_str("Value")?.unwrap_or_default()));
    }
    Ok(out)
}

fn check_attribute(kind: &str, key: &str, value: &str) -> Result<(), AwsError> {
    let known: Vec<&str> = if kind == LB {
        LB_ATTRIBUTES.iter().map(|(k, _)| *k).collect()
    } else {
        TG_ATTRIBUTES
            .iter()
            .map(|(k, _)| *k)
            .chain([
                "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage",
                "load_balancing.algorithm.anomaly_mitigation",
            ])
            .collect()
    };
    if !known.contains(&key) {
        return Err(invalid(format!("Attribute key '{key}' is not recognized")));
    }
    let number = |lo: i64, hi: i64| {
        value
            .parse::<i64>()
            .ok()
            .filter(|n| (lo..=hi).contains(n))
            .map(|_| ())
            .ok_or_else(|| {
                invalid(format!(
                    "'{value}' is not a valid value for {key}: {lo} to {hi}"
                ))
            })
    };
    let one_of = |allowed: &[&str]| {
        if allowed.contains(&value) {
            Ok(())
        } else {
            Err(invalid(format!(
                "'{value}' is not a valid value for {key}: one of {}",
                allowed.join(", ")
            )))
        }
    };
    match key {
        "deregistration_delay.timeout_seconds" => number(0, 3600),
        "slow_start.duration_seconds" => {
            if value == "0" {
                Ok(())
            } else {
                number(30, 900)
            }
        }
        "stickiness.lb_cookie.duration_seconds" | "stickiness.app_cookie.duration_seconds" => {
            number(1, 604_800)
        }
        "idle_timeout.timeout_seconds" => number(1, 4000),
        "load_balancing.algorithm.type" => one_of(&[
            "round_robin",
            "least_outstanding_requests",
            "weighted_random",
        ]),
        "stickiness.type" => one_of(&["lb_cookie", "app_cookie"]),
        k if k.ends_with(".enabled") && k != "load_balancing.cross_zone.enabled" => {
            one_of(&["true", "false"])
        }
        _ => Ok(()),
    }
}

async fn modify_attributes(
    ctx: &Ctx<'_>,
    kind: &'static str,
    arn: String,
    not_found: fn() -> AwsError,
) -> Result<Value, AwsError> {
    let pairs = attributes_in(ctx.input())?;
    for (k, v) in &pairs {
        check_attribute(kind, k, v)?;
    }
    let attrs = ctx
        .change(move |r| {
            let Some(mut body) = r.get(kind, &arn).cloned() else {
                return Err(not_found());
            };
            for (k, v) in pairs {
                body["Attributes"][k] = J::String(v);
            }
            let attrs = body["Attributes"].clone();
            if r.get(kind, &arn) != Some(&body) {
                r.put(kind, &arn, body)?;
            }
            Ok(attrs)
        })
        .await?;
    Ok(Value::object().with("Attributes", attribute_list(&attrs)))
}

pub(super) async fn modify_lb_attributes(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let arn = ctx.input().str("LoadBalancerArn")?;
    modify_attributes(ctx, LB, arn, lb_not_found).await
}

pub(super) async fn modify_tg_attributes(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let arn = ctx.input().str("TargetGroupArn")?;
    modify_attributes(ctx, TG, arn, tg_not_found).await
}

/// A record's attributes, if it is one.
pub(super) async fn attributes_of(
    ctx: &Ctx<'_>,
    kind: &'static str,
    arn: String,
) -> Result<Option<Value>, AwsError> {
    let attrs = ctx
        .read(move |r| Ok(r.get(kind, &arn).map(|b| b["Attributes"].clone())))
        .await?;
    Ok(attrs.map(|a| Value::object().with("Attributes", attribute_list(&a))))
}

/// An HTTP listener's attributes as AWS starts them.
const LISTENER_ATTRIBUTES: [(&str, &str); 1] = [("routing.http.response.server.enabled", "true")];

pub(super) async fn describe_listener_attributes(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let arn = ctx.input().str("ListenerArn")?;
    let attrs = ctx
        .read(move |r| {
            let b = r.get(LISTENER, &arn).ok_or_else(listener_not_found)?;
            let mut attrs = defaults(&LISTENER_ATTRIBUTES);
            if let Some(m) = b["Attributes"].as_object() {
                for (k, v) in m {
                    attrs[k] = v.clone();
                }
            }
            Ok(attrs)
        })
        .await?;
    Ok(Value::object().with("Attributes", attribute_list(&attrs)))
}

pub(super) async fn modify_listener_attributes(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let arn = ctx.input().str("ListenerArn")?;
    let pairs = attributes_in(ctx.input())?;
    for (k, v) in &pairs {
        if !k.starts_with("routing.http.") {
            return Err(invalid(format!("Attribute key '{k}' is not recognized")));
        }
        if k.ends_with(".enabled") && v != "true" && v != "false" {
            return Err(invalid(format!("'{v}' is not a valid value for {k}")));
        }
    }
    let attrs = ctx
        .change(move |r| {
            let mut body = r
                .get(LISTENER, &arn)
                .cloned()
                .ok_or_else(listener_not_found)?;
            let before = body.clone();
            if !body["Attributes"].is_object() {
                body["Attributes"] = defaults(&LISTENER_ATTRIBUTES);
            }
            for (k, v) in pairs {
                body["Attributes"][k] = J::String(v);
            }
            let attrs = body["Attributes"].clone();
            if body != before {
                r.put(LISTENER, &arn, body)?;
            }
            Ok(attrs)
        })
        .await?;
    Ok(Value::object().with("Attributes", attribute_list(&attrs)))
}
