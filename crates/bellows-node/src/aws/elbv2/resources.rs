//! ELBv2's load balancers and target groups made through the AWS endpoint: records
//! (see `resources.rs`) in the output shapes of botocore's model, which the loop turns
//! into the stack's listeners and target groups (`derive.rs`). Listeners and rules are in
//! `listeners.rs`, attributes in `attributes.rs`, tags in `tags.rs`.
//!
//! Kinds and ids: `load_balancer`, `target_group`, `listener`, `rule`, each by its ARN.
//! Bodies carry `Attributes` (a key -> value object) and `Tags` (`[{Key, Value}]`)
//! beside the output members; members starting with `_` are the record's own.

use bellows_aws::arn::Names;
use bellows_aws::{AwsError, Input, Value};
use serde_json::{Value as J, json};

use super::attributes::{LB_ATTRIBUTES, TG_ATTRIBUTES, defaults};
use super::listeners::delete_listener_records;
use super::tags::tags_in;
use super::{LB, LISTENER, RULE, TG, invalid, lb_not_found, shown, tg_not_found};
use crate::aws::{Ctx, from_json};
use crate::derive::matcher_ranges;
use crate::resources::Resources;

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
