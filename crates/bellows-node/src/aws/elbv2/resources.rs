//! ELBv2's load balancers, target groups, listeners and rules made through the AWS
//! endpoint: records (see `resources.rs`) in the output shapes of botocore's model,
//! which the loop turns into the stack's listeners and target groups (`derive.rs`).
//!
//! Kinds and ids: `load_balancer`, `target_group`, `listener`, `rule`, each by its ARN.
//! Bodies carry `Attributes` (a key -> value object) and `Tags` (`[{Key, Value}]`)
//! beside the output members; members starting with `_` are the record's own.

use bellows_aws::arn::Names;
use bellows_aws::{AwsError, Input, Value};
use serde_json::{Value as J, json};

use super::{lb_not_found, listener_not_found, tg_not_found};
use crate::aws::{Ctx, from_json};
use crate::derive::matcher_ranges;
use crate::resources::Resources;

pub(super) const LB: &str = "load_balancer";
pub(super) const TG: &str = "target_group";
pub(super) const LISTENER: &str = "listener";
pub(super) const RULE: &str = "rule";

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ValidationError", message)
}

fn rule_not_found() -> AwsError {
    AwsError::new(400, "RuleNotFound", "One or more rules not found")
}

/// An application load balancer's attributes as AWS starts them.
const LB_ATTRIBUTES: [(&str, &str); 19] = [
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
const TG_ATTRIBUTES: [(&str, &str); 13] = [
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

fn defaults(pairs: &[(&str, &str)]) -> J {
    J::Object(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), J::String((*v).to_owned())))
            .collect(),
    )
}

fn tags_in(input: &Input) -> Result<J, AwsError> {
    let mut out = Vec::new();
    for t in input.list("Tags") {
        out.push(json!({ "Key": t.str("Key")?, "Value": t.opt_str("Value")?.unwrap_or_default() }));
    }
    Ok(J::Array(out))
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

/// A body as its output shape: without its attributes, tags and own members.
fn shown(body: &J) -> Value {
    let mut b = body.clone();
    if let Some(m) = b.as_object_mut() {
        m.remove("Attributes");
        m.remove("Tags");
    }
    from_json(&b)
}

fn hex_of(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or_default().to_owned()
}

/// The load balancer's own loopback address: derived from its name, and the next free
/// one if another load balancer has it.
fn address_for(r: &Resources, names: &Names, name: &str) -> String {
    let h = u32::from_str_radix(&names.hex_id("lb-address", name, 6), 16).unwrap_or(0);
    let taken: Vec<String> = r
        .of(LB)
        .map(|l| l.body["DNSName"].as_str().unwrap_or_default().to_owned())
        .collect();
    let slots = 100 * 254;
    (0..slots)
        .map(|i| (h + i) % slots)
        .map(|n| format!("127.0.{}.{}", 100 + n / 254, 1 + n % 254))
        .find(|a| !taken.contains(a))
        .unwrap_or_else(|| "127.0.100.1".to_owned())
}

// ---------------------------------------------------------------- load balancers

pub(super) async fn create_load_balancer(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let name = input.str("Name")?;
    let valid = !name.is_empty()
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.starts_with("internal-");
    if !valid {
        return Err(invalid(format!(
            "The load balancer name '{name}' is not valid: up to 32 letters, digits and hyphens, not starting or ending with a hyphen"
        )));
    }
    match input.opt_str("Type")?.as_deref() {
        None | Some("application") => {}
        Some(t) => {
            return Err(invalid(format!(
                "bellows runs application load balancers, not type {t}"
            )));
        }
    }
    let subnets = input.strings("Subnets")?;
    let mappings: Vec<String> = input
        .list("SubnetMappings")
        .iter()
        .filter_map(|m| m.opt_str("SubnetId").ok().flatten())
        .collect();
    let subnets = if subnets.is_empty() {
        mappings
    } else {
        subnets
    };
    let groups = input.strings("SecurityGroups")?;
    let scheme = input
        .opt_str("Scheme")?
        .unwrap_or_else(|| "internet-facing".to_owned());
    let ip_type = input
        .opt_str("IpAddressType")?
        .unwrap_or_else(|| "ipv4".to_owned());
    let tags = tags_in(input)?;
    let names = ctx.names().clone();
    let arn = names.load_balancer_arn(&name);
    let now = crate::clock::now().as_millis() as f64 / 1000.0;
    let body = ctx
        .change(move |r| {
            if let Some(b) = r.get(LB, &arn) {
                return Ok(b.clone());
            }
            let (zones, vpc) = zones_of(r, &subnets)?;
            for g in &groups {
                if !r.contains("security_group", g) {
                    return Err(AwsError::new(
                        400,
                        "InvalidSecurityGroup",
                        format!("Security group '{g}' does not exist"),
                    ));
                }
            }
            let body = json!({
                "LoadBalancerArn": arn,
                "DNSName": address_for(r, &names, &name),
                "CanonicalHostedZoneId": "Z35SXDOTRQ7X7K",
                "CreatedTime": now,
                "LoadBalancerName": name,
                "Scheme": scheme,
                "VpcId": vpc,
                "State": { "Code": "active" },
                "Type": "application",
                "AvailabilityZones": zones,
                "SecurityGroups": groups,
                "IpAddressType": ip_type,
                "Attributes": defaults(&LB_ATTRIBUTES),
                "Tags": tags,
            });
            r.put(LB, &arn, body.clone())?;
            Ok(body)
        })
        .await?;
    Ok(Value::object().with("LoadBalancers", Value::List(vec![shown(&body)])))
}

/// The zones of subnets (from their records) and their VPC.
fn zones_of(r: &Resources, subnets: &[String]) -> Result<(J, String), AwsError> {
    if subnets.len() < 2 {
        return Err(invalid(
            "At least two subnets in two different Availability Zones must be specified",
        ));
    }
    let mut zones = Vec::new();
    let mut vpc = String::new();
    for s in subnets {
        let b = r.get("subnet", s).ok_or_else(|| {
            AwsError::new(
                400,
                "SubnetNotFound",
                format!("The subnet ID '{s}' is not valid"),
            )
        })?;
        vpc = b["vpcId"].as_str().unwrap_or_default().to_owned();
        zones.push(json!({
            "ZoneName": b["availabilityZone"].as_str().unwrap_or_default(),
            "SubnetId": s,
            "LoadBalancerAddresses": [],
        }));
    }
    Ok((J::Array(zones), vpc))
}

/// The record load balancers, as (ARN, output).
pub(super) async fn load_balancers(
    ctx: &Ctx<'_>,
) -> Result<Vec<(String, String, Value)>, AwsError> {
    ctx.read(|r| {
        Ok(r.of(LB)
            .map(|l| {
                (
                    l.id.clone(),
                    l.body["LoadBalancerName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    l.body.clone(),
                )
            })
            .collect::<Vec<_>>())
    })
    .await
    .map(|v| v.into_iter().map(|(a, n, b)| (a, n, shown(&b))).collect())
}

pub(super) async fn delete_load_balancer(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let arn = ctx.input().str("LoadBalancerArn")?;
    ctx.change(move |r| {
        if !r.contains(LB, &arn) {
            // Deleting one that is gone succeeds, as on AWS.
            return Ok(());
        }
        if r.get(LB, &arn).unwrap()["Attributes"]["deletion_protection.enabled"] == "true" {
            return Err(AwsError::new(
                400,
                "OperationNotPermitted",
                format!(
                    "Load balancer '{arn}' cannot be deleted because deletion protection is enabled"
                ),
            ));
        }
        let listeners: Vec<String> = r
            .of(LISTENER)
            .filter(|l| l.body["LoadBalancerArn"] == arn.as_str())
            .map(|l| l.id.clone())
            .collect();
        for l in &listeners {
            delete_listener_records(r, l)?;
        }
        r.delete(LB, &arn)?;
        Ok(())
    })
    .await?;
    Ok(Value::object())
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

pub(super) async fn set_security_groups(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let arn = input.str("LoadBalancerArn")?;
    let groups = input.strings("SecurityGroups")?;
    let ids = groups.clone();
    ctx.change(move |r| {
        for g in &groups {
            if !r.contains("security_group", g) {
                return Err(AwsError::new(
                    400,
                    "InvalidSecurityGroup",
                    format!("Security group '{g}' does not exist"),
                ));
            }
        }
        let mut body = r.get(LB, &arn).cloned().ok_or_else(lb_not_found)?;
        if body["SecurityGroups"] != json!(groups) {
            body["SecurityGroups"] = json!(groups);
            r.put(LB, &arn, body)?;
        }
        Ok(())
    })
    .await?;
    Ok(Value::object().with("SecurityGroupIds", ids))
}

pub(super) async fn set_subnets(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let arn = input.str("LoadBalancerArn")?;
    let mut subnets = input.strings("Subnets")?;
    if subnets.is_empty() {
        subnets = input
            .list("SubnetMappings")
            .iter()
            .filter_map(|m| m.opt_str("SubnetId").ok().flatten())
            .collect();
    }
    let zones = ctx
        .change(move |r| {
            let mut body = r.get(LB, &arn).cloned().ok_or_else(lb_not_found)?;
            let (zones, _) = zones_of(r, &subnets)?;
            if body["AvailabilityZones"] != zones {
                body["AvailabilityZones"] = zones.clone();
                r.put(LB, &arn, body)?;
            }
            Ok(zones)
        })
        .await?;
    Ok(Value::object()
        .with("AvailabilityZones", from_json(&zones))
        .with("IpAddressType", "ipv4"))
}

// ---------------------------------------------------------------- target groups

fn health_check_in(input: &Input, body: &mut J) -> Result<(), AwsError> {
    let mut set = |k: &str, v: J| body[k] = v;
    if let Some(p) = input.opt_str("HealthCheckProtocol")? {
        if p != "HTTP" {
            return Err(invalid("bellows checks target health over HTTP"));
        }
        set("HealthCheckProtocol", json!(p));
    }
    if let Some(p) = input.opt_str("HealthCheckPort")? {
        set("HealthCheckPort", json!(p));
    }
    if let Some(e) = input.opt_bool("HealthCheckEnabled")? {
        set("HealthCheckEnabled", json!(e));
    }
    let ranged = |k: &str, lo: i64, hi: i64| -> Result<Option<i64>, AwsError> {
        match input.opt_i64(k)? {
            Some(n) if !(lo..=hi).contains(&n) => Err(invalid(format!(
                "The value {n} for {k} is not valid: {lo} to {hi}"
            ))),
            n => Ok(n),
        }
    };
    for (k, lo, hi) in [
        ("HealthCheckIntervalSeconds", 5, 300),
        ("HealthCheckTimeoutSeconds", 2, 120),
        ("HealthyThresholdCount", 2, 10),
        ("UnhealthyThresholdCount", 2, 10),
    ] {
        if let Some(n) = ranged(k, lo, hi)? {
            set(k, json!(n));
        }
    }
    if let Some(p) = input.opt_str("HealthCheckPath")? {
        if !p.starts_with('/') {
            return Err(invalid("HealthCheckPath must start with /"));
        }
        set("HealthCheckPath", json!(p));
    }
    if let Some(code) = input.nested("Matcher").opt_str("HttpCode")? {
        matcher_ranges(&code).map_err(invalid)?;
        set("Matcher", json!({ "HttpCode": code }));
    }
    if int(&body["HealthCheckTimeoutSeconds"]) >= int(&body["HealthCheckIntervalSeconds"]) {
        return Err(invalid(
            "Health check timeout must be smaller than the interval",
        ));
    }
    Ok(())
}

fn int(v: &J) -> i64 {
    v.as_i64().unwrap_or(0)
}

pub(super) async fn create_target_group(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let name = input.str("Name")?;
    if name.is_empty()
        || name.len() > 32
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        || name.starts_with('-')
        || name.ends_with('-')
    {
        return Err(invalid(format!(
            "Target group name '{name}' is not valid: up to 32 letters, digits and hyphens"
        )));
    }
    let protocol = input.opt_str("Protocol")?.unwrap_or_else(|| "HTTP".into());
    if protocol != "HTTP" {
        return Err(invalid(format!(
            "bellows' target groups speak HTTP, not {protocol}"
        )));
    }
    match input.opt_str("TargetType")?.as_deref() {
        None | Some("instance") => {}
        Some(t) => {
            return Err(invalid(format!(
                "bellows' target groups hold instances, not targets of type {t}"
            )));
        }
    }
    let port = input.i64("Port")?;
    if !(1..=65535).contains(&port) {
        return Err(invalid(format!("Port {port} is not valid: 1 to 65535")));
    }
    let vpc = input.opt_str("VpcId")?.unwrap_or_default();
    let names = ctx.names().clone();
    let arn = names.target_group_arn(&name);
    let mut body = json!({
        "TargetGroupArn": arn,
        "TargetGroupName": name,
        "Protocol": protocol,
        "Port": port,
        "VpcId": vpc,
        "HealthCheckProtocol": "HTTP",
        "HealthCheckPort": "traffic-port",
        "HealthCheckEnabled": true,
        "HealthCheckIntervalSeconds": 30,
        "HealthCheckTimeoutSeconds": 5,
        "HealthyThresholdCount": 5,
        "UnhealthyThresholdCount": 2,
        "HealthCheckPath": "/",
        "Matcher": { "HttpCode": "200" },
        "TargetType": "instance",
        "ProtocolVersion": input.opt_str("ProtocolVersion")?.unwrap_or_else(|| "HTTP1".into()),
        "IpAddressType": input.opt_str("IpAddressType")?.unwrap_or_else(|| "ipv4".into()),
        "Attributes": defaults(&TG_ATTRIBUTES),
        "Tags": tags_in(input)?,
    });
    health_check_in(input, &mut body)?;
    let body = ctx
        .change(move |r| {
            if let Some(b) = r.get(TG, &arn) {
                return Ok(b.clone());
            }
            if !vpc.is_empty() && !r.contains("vpc", &vpc) {
                return Err(AwsError::new(
                    400,
                    "ValidationError",
                    format!("The VPC ID '{vpc}' is not found"),
                ));
            }
            r.put(TG, &arn, body.clone())?;
            Ok(body)
        })
        .await?;
    Ok(Value::object().with("TargetGroups", Value::List(vec![shown(&body)])))
}

pub(super) async fn modify_target_group(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input().clone();
    let arn = input.str("TargetGroupArn")?;
    let body = ctx
        .change(move |r| {
            let mut body = r.get(TG, &arn).cloned().ok_or_else(tg_not_found)?;
            let before = body.clone();
            health_check_in(&input, &mut body)?;
            if body != before {
                r.put(TG, &arn, body.clone())?;
            }
            Ok(body)
        })
        .await?;
    Ok(Value::object().with("TargetGroups", Value::List(vec![shown(&body)])))
}

pub(super) async fn delete_target_group(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let arn = ctx.input().str("TargetGroupArn")?;
    ctx.change(move |r| {
        if !r.contains(TG, &arn) {
            return Ok(());
        }
        let used = r
            .of(LISTENER)
            .chain(r.of(RULE))
            .any(|l| l.body.to_string().contains(&format!("\"{arn}\"")));
        if used {
            return Err(AwsError::new(
                400,
                "ResourceInUse",
                format!("Target group '{arn}' is currently in use by a listener or a rule"),
            ));
        }
        r.delete(TG, &arn)?;
        Ok(())
    })
    .await?;
    Ok(Value::object())
}

/// The record target groups, each with the load balancers whose listeners use it.
pub(super) async fn target_groups(ctx: &Ctx<'_>) -> Result<Vec<(String, String, Value)>, AwsError> {
    let list = ctx
        .read(|r| {
            Ok(r.of(TG)
                .map(|t| {
                    let needle = format!("\"{}\"", t.id);
                    let mut lbs: Vec<String> = Vec::new();
                    for l in r.of(LISTENER) {
                        let rules = r
                            .of(RULE)
                            .filter(|x| x.body["_ListenerArn"] == l.id.as_str())
                            .any(|x| x.body.to_string().contains(&needle));
                        let lb = l.body["LoadBalancerArn"].as_str().unwrap_or_default();
                        if (l.body.to_string().contains(&needle) || rules)
                            && !lbs.iter().any(|x| x == lb)
                        {
                            lbs.push(lb.to_owned());
                        }
                    }
                    let mut b = t.body.clone();
                    b["LoadBalancerArns"] = json!(lbs);
                    (
                        t.id.clone(),
                        t.body["TargetGroupName"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        b,
                    )
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(list
        .into_iter()
        .map(|(a, n, b)| (a, n, shown(&b)))
        .collect())
}

// ---------------------------------------------------------------- listeners and rules

/// Actions from the input, as AWS answers them: a forward names its target group both
/// ways, and each action has its order.
fn actions_in(input: &Input, key: &str, r: &Resources) -> Result<J, AwsError> {
    let mut out = Vec::new();
    let given = input.list(key);
    if given.is_empty() {
        return Err(invalid(format!("{key} must hold at least one action")));
    }
    for (i, a) in given.iter().enumerate() {
        let kind = a.str("Type")?;
        let order = a.opt_i64("Order")?.unwrap_or(i as i64 + 1);
        let mut v = json!({ "Type": kind, "Order": order });
        match kind.as_str() {
            "forward" => {
                let mut tgs = Vec::new();
                for t in a.nested("ForwardConfig").list("TargetGroups") {
                    tgs.push(json!({
                        "TargetGroupArn": t.str("TargetGroupArn")?,
                        "Weight": t.opt_i64("Weight")?.unwrap_or(1),
                    }));
                }
                if let Some(arn) = a.opt_str("TargetGroupArn")?
                    && tgs.is_empty()
                {
                    tgs.push(json!({ "TargetGroupArn": arn, "Weight": 1 }));
                }
                if tgs.is_empty() {
                    return Err(invalid("A forward action must name a target group"));
                }
                for t in &tgs {
                    let arn = t["TargetGroupArn"].as_str().unwrap_or_default();
                    if !r.contains(TG, arn) {
                        return Err(tg_not_found());
                    }
                }
                if tgs.len() == 1 {
                    v["TargetGroupArn"] = tgs[0]["TargetGroupArn"].clone();
                }
                let sticky = a
                    .nested("ForwardConfig")
                    .nested("TargetGroupStickinessConfig");
                let mut stickiness =
                    json!({ "Enabled": sticky.opt_bool("Enabled")?.unwrap_or(false) });
                if let Some(d) = sticky.opt_i64("DurationSeconds")? {
                    stickiness["DurationSeconds"] = json!(d);
                }
                v["ForwardConfig"] = json!({
                    "TargetGroups": tgs,
                    "TargetGroupStickinessConfig": stickiness,
                });
            }
            "fixed-response" => {
                let f = a.nested("FixedResponseConfig");
                let mut c = json!({ "StatusCode": f.str("StatusCode")? });
                if let Some(t) = f.opt_str("ContentType")? {
                    c["ContentType"] = json!(t);
                }
                if let Some(b) = f.opt_str("MessageBody")? {
                    c["MessageBody"] = json!(b);
                }
                v["FixedResponseConfig"] = c;
            }
            "redirect" => {
                let f = a.nested("RedirectConfig");
                let part = |k: &str, d: &str| -> Result<String, AwsError> {
                    Ok(f.opt_str(k)?.unwrap_or_else(|| d.to_owned()))
                };
                v["RedirectConfig"] = json!({
                    "Protocol": part("Protocol", "#{protocol}")?,
                    "Port": part("Port", "#{port}")?,
                    "Host": part("Host", "#{host}")?,
                    "Path": part("Path", "/#{path}")?,
                    "Query": part("Query", "#{query}")?,
                    "StatusCode": f.str("StatusCode")?,
                });
            }
            other => {
                return Err(invalid(format!(
                    "bellows runs forward, fixed-response and redirect actions, not {other}"
                )));
            }
        }
        out.push(v);
    }
    Ok(J::Array(out))
}

pub(super) async fn create_listener(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input().clone();
    let lb = input.str("LoadBalancerArn")?;
    let protocol = input.opt_str("Protocol")?.unwrap_or_else(|| "HTTP".into());
    if protocol != "HTTP" {
        return Err(invalid(format!(
            "bellows' listeners speak HTTP, not {protocol}"
        )));
    }
    let port = input.i64("Port")?;
    if !(1..=65535).contains(&port) {
        return Err(invalid(format!("Port {port} is not valid: 1 to 65535")));
    }
    let tags = tags_in(&input)?;
    let names = ctx.names().clone();
    let body = ctx
        .change(move |r| {
            let lb_body = r.get(LB, &lb).ok_or_else(lb_not_found)?;
            let lb_name = lb_body["LoadBalancerName"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if r.of(LISTENER)
                .any(|l| l.body["LoadBalancerArn"] == lb.as_str() && l.body["Port"] == port)
            {
                return Err(AwsError::new(
                    400,
                    "DuplicateListener",
                    "A listener already exists on this port for this load balancer",
                ));
            }
            let actions = actions_in(&input, "DefaultActions", r)?;
            let id = r.new_id("l").map(|i| i[2..18].to_owned())?;
            let arn = format!(
                "arn:aws:elasticloadbalancing:{}:{}:listener/app/{lb_name}/{}/{id}",
                names.region,
                bellows_aws::arn::ACCOUNT,
                hex_of(&lb)
            );
            let body = json!({
                "ListenerArn": arn,
                "LoadBalancerArn": lb,
                "Port": port,
                "Protocol": protocol,
                "DefaultActions": actions,
                "Tags": tags,
            });
            r.put(LISTENER, &arn, body.clone())?;
            Ok(body)
        })
        .await?;
    Ok(Value::object().with("Listeners", Value::List(vec![shown(&body)])))
}

pub(super) async fn modify_listener(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input().clone();
    let arn = input.str("ListenerArn")?;
    let body = ctx
        .change(move |r| {
            let mut body = r
                .get(LISTENER, &arn)
                .cloned()
                .ok_or_else(listener_not_found)?;
            let before = body.clone();
            if let Some(p) = input.opt_str("Protocol")?
                && p != "HTTP"
            {
                return Err(invalid(format!("bellows' listeners speak HTTP, not {p}")));
            }
            if let Some(port) = input.opt_i64("Port")? {
                let lb = body["LoadBalancerArn"].clone();
                if r.of(LISTENER).any(|l| {
                    l.id != arn && l.body["LoadBalancerArn"] == lb && l.body["Port"] == port
                }) {
                    return Err(AwsError::new(
                        400,
                        "DuplicateListener",
                        "A listener already exists on this port for this load balancer",
                    ));
                }
                body["Port"] = json!(port);
            }
            if !input.list("DefaultActions").is_empty() {
                body["DefaultActions"] = actions_in(&input, "DefaultActions", r)?;
            }
            if body != before {
                r.put(LISTENER, &arn, body.clone())?;
            }
            Ok(body)
        })
        .await?;
    Ok(Value::object().with("Listeners", Value::List(vec![shown(&body)])))
}

fn delete_listener_records(r: &mut Resources, arn: &str) -> Result<(), AwsError> {
    let rules: Vec<String> = r
        .of(RULE)
        .filter(|x| x.body["_ListenerArn"] == arn)
        .map(|x| x.id.clone())
        .collect();
    for rule in rules {
        r.delete(RULE, &rule)?;
    }
    r.delete(LISTENER, arn)?;
    Ok(())
}

pub(super) async fn delete_listener(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let arn = ctx.input().str("ListenerArn")?;
    ctx.change(move |r| {
        if !r.contains(LISTENER, &arn) {
            return Err(listener_not_found());
        }
        delete_listener_records(r, &arn)
    })
    .await?;
    Ok(Value::object())
}

/// The record listeners: (ARN, its load balancer's ARN, output).
pub(super) async fn listeners(ctx: &Ctx<'_>) -> Result<Vec<(String, String, Value)>, AwsError> {
    let list = ctx
        .read(|r| {
            Ok(r.of(LISTENER)
                .map(|l| {
                    (
                        l.id.clone(),
                        l.body["LoadBalancerArn"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        l.body.clone(),
                    )
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(list
        .into_iter()
        .map(|(a, lb, b)| (a, lb, shown(&b)))
        .collect())
}

fn conditions_in(input: &Input) -> Result<J, AwsError> {
    let mut out = Vec::new();
    for c in input.list("Conditions") {
        let field = c.str("Field")?;
        let mut v = json!({ "Field": field });
        let config = |key: &str| -> Result<Vec<String>, AwsError> {
            let inner = c.nested(key).strings("Values")?;
            Ok(if inner.is_empty() {
                c.strings("Values")?
            } else {
                inner
            })
        };
        match field.as_str() {
            "path-pattern" | "host-header" => {
                let key = if field == "path-pattern" {
                    "PathPatternConfig"
                } else {
                    "HostHeaderConfig"
                };
                let values = config(key)?;
                v["Values"] = json!(values);
                v[key] = json!({ "Values": values });
            }
            "http-request-method" => {
                v["HttpRequestMethodConfig"] =
                    json!({ "Values": config("HttpRequestMethodConfig")? });
            }
            "source-ip" => {
                v["SourceIpConfig"] = json!({ "Values": config("SourceIpConfig")? });
            }
            "http-header" => {
                let h = c.nested("HttpHeaderConfig");
                v["HttpHeaderConfig"] = json!({
                    "HttpHeaderName": h.str("HttpHeaderName")?,
                    "Values": h.strings("Values")?,
                });
            }
            other => {
                return Err(invalid(format!(
                    "bellows matches path-pattern, host-header, http-request-method, http-header and source-ip conditions, not {other}"
                )));
            }
        }
        out.push(v);
    }
    if out.is_empty() {
        return Err(invalid("A rule needs at least one condition"));
    }
    Ok(J::Array(out))
}

pub(super) async fn create_rule(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input().clone();
    let listener = input.str("ListenerArn")?;
    let priority = input.i64("Priority")?;
    if !(1..=50_000).contains(&priority) {
        return Err(invalid(format!(
            "Priority {priority} is not valid: 1 to 50000"
        )));
    }
    let conditions = conditions_in(&input)?;
    let tags = tags_in(&input)?;
    let body = ctx
        .change(move |r| {
            if !r.contains(LISTENER, &listener) {
                return Err(listener_not_found());
            }
            if r.of(RULE).any(|x| {
                x.body["_ListenerArn"] == listener.as_str()
                    && x.body["Priority"].as_str() == Some(priority.to_string().as_str())
            }) {
                return Err(AwsError::new(
                    400,
                    "PriorityInUse",
                    format!("Priority '{priority}' is currently in use"),
                ));
            }
            let actions = actions_in(&input, "Actions", r)?;
            let id = r.new_id("r").map(|i| i[2..18].to_owned())?;
            let arn = format!(
                "{}/{id}",
                listener.replacen(":listener/", ":listener-rule/", 1)
            );
            let body = json!({
                "RuleArn": arn,
                "Priority": priority.to_string(),
                "Conditions": conditions,
                "Actions": actions,
                "IsDefault": false,
                "_ListenerArn": listener,
                "Tags": tags,
            });
            r.put(RULE, &arn, body.clone())?;
            Ok(body)
        })
        .await?;
    Ok(Value::object().with("Rules", Value::List(vec![shown(&body)])))
}

pub(super) async fn modify_rule(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input().clone();
    let arn = input.str("RuleArn")?;
    let body = ctx
        .change(move |r| {
            let mut body = r.get(RULE, &arn).cloned().ok_or_else(rule_not_found)?;
            let before = body.clone();
            if !input.list("Conditions").is_empty() {
                body["Conditions"] = conditions_in(&input)?;
            }
            if !input.list("Actions").is_empty() {
                body["Actions"] = actions_in(&input, "Actions", r)?;
            }
            if body != before {
                r.put(RULE, &arn, body.clone())?;
            }
            Ok(body)
        })
        .await?;
    Ok(Value::object().with("Rules", Value::List(vec![shown(&body)])))
}

pub(super) async fn set_rule_priorities(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let mut changes = Vec::new();
    for p in ctx.input().list("RulePriorities") {
        changes.push((p.str("RuleArn")?, p.i64("Priority")?));
    }
    let bodies = ctx
        .change(move |r| {
            let mut out = Vec::new();
            for (arn, priority) in changes {
                let mut body = r.get(RULE, &arn).cloned().ok_or_else(rule_not_found)?;
                body["Priority"] = json!(priority.to_string());
                r.put(RULE, &arn, body.clone())?;
                out.push(body);
            }
            Ok(out)
        })
        .await?;
    Ok(Value::object().with("Rules", Value::List(bodies.iter().map(shown).collect())))
}

pub(super) async fn delete_rule(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let arn = ctx.input().str("RuleArn")?;
    ctx.change(move |r| {
        if r.delete(RULE, &arn)?.is_none() {
            return Err(rule_not_found());
        }
        Ok(())
    })
    .await?;
    Ok(Value::object())
}

/// The record rules of a listener (its default rule first), as (ARN, output).
pub(super) async fn rules(
    ctx: &Ctx<'_>,
    listener: Option<String>,
) -> Result<Option<Vec<(String, Value)>>, AwsError> {
    let list = ctx
        .read(move |r| {
            let mut out = Vec::new();
            for l in r.of(LISTENER) {
                if listener.as_ref().is_some_and(|x| *x != l.id) {
                    continue;
                }
                let mut rules: Vec<&crate::resources::Record> = r
                    .of(RULE)
                    .filter(|x| x.body["_ListenerArn"] == l.id.as_str())
                    .collect();
                rules.sort_by_key(|x| {
                    x.body["Priority"]
                        .as_str()
                        .and_then(|p| p.parse::<u32>().ok())
                        .unwrap_or(0)
                });
                for x in rules {
                    out.push((x.id.clone(), x.body.clone()));
                }
                let default = format!(
                    "{}/default",
                    l.id.replacen(":listener/", ":listener-rule/", 1)
                );
                out.push((
                    default.clone(),
                    json!({
                        "RuleArn": default,
                        "Priority": "default",
                        "Conditions": [],
                        "Actions": l.body["DefaultActions"],
                        "IsDefault": true,
                    }),
                ));
            }
            let found = listener.is_none() || !out.is_empty();
            Ok(found.then_some(out))
        })
        .await?;
    Ok(list.map(|l| l.into_iter().map(|(a, b)| (a, shown(&b))).collect()))
}

// ---------------------------------------------------------------- tags

fn kind_of(arn: &str) -> &'static str {
    if arn.contains(":targetgroup/") {
        TG
    } else if arn.contains(":listener-rule/") {
        RULE
    } else if arn.contains(":listener/") {
        LISTENER
    } else {
        LB
    }
}

fn not_found_for(arn: &str) -> AwsError {
    match kind_of(arn) {
        TG => tg_not_found(),
        RULE => rule_not_found(),
        LISTENER => listener_not_found(),
        _ => lb_not_found(),
    }
}

pub(super) async fn add_tags(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let arns = input.strings("ResourceArns")?;
    let tags = tags_in(input)?;
    ctx.change(move |r| {
        for arn in &arns {
            let kind = kind_of(arn);
            let mut body = r
                .get(kind, arn)
                .cloned()
                .ok_or_else(|| not_found_for(arn))?;
            let mut list: Vec<J> = body["Tags"].as_array().cloned().unwrap_or_default();
            for t in tags.as_array().into_iter().flatten() {
                list.retain(|x| x["Key"] != t["Key"]);
                list.push(t.clone());
            }
            body["Tags"] = J::Array(list);
            r.put(kind, arn, body)?;
        }
        Ok(())
    })
    .await?;
    Ok(Value::object())
}

pub(super) async fn remove_tags(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let arns = input.strings("ResourceArns")?;
    let keys = input.strings("TagKeys")?;
    ctx.change(move |r| {
        for arn in &arns {
            let kind = kind_of(arn);
            let mut body = r
                .get(kind, arn)
                .cloned()
                .ok_or_else(|| not_found_for(arn))?;
            let mut list: Vec<J> = body["Tags"].as_array().cloned().unwrap_or_default();
            list.retain(|x| !keys.iter().any(|k| x["Key"] == k.as_str()));
            body["Tags"] = J::Array(list);
            r.put(kind, arn, body)?;
        }
        Ok(())
    })
    .await?;
    Ok(Value::object())
}

/// The tags of each ARN that is a record's (None for the others).
pub(super) async fn tags_of(
    ctx: &Ctx<'_>,
    arns: Vec<String>,
) -> Result<Vec<Option<Value>>, AwsError> {
    let tags = ctx
        .read(move |r| {
            Ok(arns
                .iter()
                .map(|a| r.get(kind_of(a), a).map(|b| b["Tags"].clone()))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(tags.into_iter().map(|t| t.map(|t| from_json(&t))).collect())
}

/// DescribeCapacityReservation: bellows reserves no capacity, so a load balancer's
/// reservation is always empty.
pub(super) async fn describe_capacity_reservation(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let arn = ctx.input().str("LoadBalancerArn")?;
    let known = ctx.read(move |r| Ok(r.contains(LB, &arn))).await?;
    if !known {
        return Err(lb_not_found());
    }
    Ok(Value::object()
        .with("DecreaseRequestsRemaining", 3i64)
        .with("CapacityReservationState", Value::List(Vec::new())))
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
