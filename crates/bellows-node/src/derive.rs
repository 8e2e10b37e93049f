//! The running stack from the base stack and the AWS resource records: target groups,
//! load balancers with their listeners and rules, Auto Scaling groups, their policies
//! and scheduled actions become the stack's own, so that the loop runs (and diffs, and
//! audits) them exactly as it runs a stack file's.
//!
//! The record bodies are in the AWS face's output shapes (ELBv2 and Auto Scaling
//! PascalCase, EC2 camelCase); see `aws/elbv2.rs`, `aws/autoscaling.rs` and
//! `aws/ec2.rs`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use bellows_core::lb::cidr::Cidr;
use bellows_core::lb::rules::{
    Action, Conditions, FixedResponse, Redirect, Rule, WeightedTargetGroup,
};
use bellows_core::lb::select::Algorithm;
use bellows_core::scaling::{AdjustmentType, PolicyKind, PolicySpec, Step, TrackedMetric};
use bellows_core::stack::{
    GroupSpec, HealthCheckSpec, HealthCheckType, InstanceType, LaunchTemplate, ListenerSpec,
    RoleSpec, Stack, Stickiness, TargetGroupSpec, TerminationPolicy,
};
use bellows_core::{Duration, Time};
use serde_json::Value;

use crate::aws::ec2::derived::LaunchVersion;
use crate::resources::Resources;

/// The image id prefix that names a built-in app: `bellows-app-NAME` is `bellows app NAME`.
pub const APP_IMAGE_PREFIX: &str = "bellows-app-";

/// What AWS callers name the load balancers and target groups made through the endpoint
/// by in metric dimensions, and what bellows publishes them under: CloudWatch's
/// `TargetGroup` is `targetgroup/NAME/ID` and `LoadBalancer` is `app/NAME/ID`, the ends of
/// their ARNs; bellows publishes a target group's name and a load balancer's name (the
/// sum of its listeners, `publish::load_balancer`).
pub fn dimension_aliases(records: &Resources) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for r in records.of("target_group") {
        if let Some((_, suffix)) = r.id.rsplit_once(':') {
            out.insert(
                ("TargetGroup".to_owned(), suffix.to_owned()),
                str_of(&r.body, "TargetGroupName"),
            );
        }
    }
    for r in records.of("load_balancer") {
        if let Some((_, suffix)) = r.id.split_once(":loadbalancer/") {
            out.insert(
                ("LoadBalancer".to_owned(), suffix.to_owned()),
                str_of(&r.body, "LoadBalancerName"),
            );
        }
    }
    out
}

/// The name bellows gives the listener of a load balancer made through the endpoint.
fn listener_name(lb_name: &str, port: impl std::fmt::Display) -> String {
    format!("{lb_name}-{port}")
}

/// The name of the derived listener of each listener record (`LBNAME-PORT`) and the
/// load balancer it belongs to.
pub fn listener_load_balancers(records: &Resources) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for lb in records.of("load_balancer") {
        let lb_name = str_of(&lb.body, "LoadBalancerName");
        for l in records
            .of("listener")
            .filter(|l| l.body["LoadBalancerArn"] == lb.id.as_str())
        {
            let port = int(&l.body["Port"]).unwrap_or(80);
            out.insert(listener_name(&lb_name, port), lb_name.clone());
        }
    }
    out
}

/// The stack the loop runs: `base` with what the records describe added. Alarms are
/// left as `base` has them (the AWS endpoint's alarms are kept by the store already).
pub fn derive(base: &Stack, records: &Resources) -> Result<Stack, String> {
    let mut stack = base.clone();
    let tg_names: BTreeMap<String, String> = records
        .of("target_group")
        .map(|r| (r.id.clone(), str_of(&r.body, "TargetGroupName")))
        .collect();
    for r in records.of("target_group") {
        stack.target_groups.push(target_group(&r.body)?);
    }
    for lb in records.of("load_balancer") {
        let lb_name = str_of(&lb.body, "LoadBalancerName");
        let ip: Ipv4Addr = str_of(&lb.body, "DNSName")
            .parse()
            .map_err(|_| format!("load balancer {lb_name}: its DNSName is not an address"))?;
        let groups: Vec<String> = strings(&lb.body["SecurityGroups"]);
        for l in records
            .of("listener")
            .filter(|l| l.body["LoadBalancerArn"] == lb.id.as_str())
        {
            let port = int(&l.body["Port"]).unwrap_or(80) as u16;
            let mut rules: Vec<Rule> = records
                .of("rule")
                .filter(|r| r.body["_ListenerArn"] == l.id.as_str())
                .map(|r| rule(&r.body, &tg_names))
                .collect::<Result<_, _>>()?;
            rules.sort_by_key(|r| r.priority);
            let default_action = l.body["DefaultActions"]
                .as_array()
                .and_then(|a| a.first())
                .map(|a| action(a, &tg_names))
                .transpose()?
                .ok_or_else(|| format!("listener {}: no default action", l.id))?;
            let idle = lb.body["Attributes"]["idle_timeout.timeout_seconds"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(60);
            stack.listeners.push(ListenerSpec {
                name: listener_name(&lb_name, port),
                address: SocketAddr::new(ip.into(), port),
                ingress: ingress(records, &groups, port),
                rules,
                default_action,
                idle_timeout: Duration::from_secs(idle),
                header_timeout: Duration::from_secs(60),
                max_body: None,
                access_log: false,
                aws_port: None,
            });
        }
    }
    for g in records.of("auto_scaling_group") {
        stack.groups.push(group(records, &g.body, &tg_names)?);
    }
    for p in records.of("policy") {
        stack.policies.push(policy(&p.body, &tg_names)?);
    }
    // A recurring action runs on its cron within StartTime and EndTime; a one-time one
    // (no Recurrence) once at its StartTime (or `Time`, the older name).
    for a in records.of("scheduled_action") {
        let name = str_of(&a.body, "ScheduledActionName");
        let cron = match a.body["Recurrence"].as_str() {
            Some(recurrence) => {
                let zone = a.body["TimeZone"].as_str().unwrap_or("UTC");
                Some(
                    bellows_core::schedule::Cron::parse(recurrence, zone)
                        .map_err(|e| format!("scheduled action {name}: {e}"))?,
                )
            }
            None => None,
        };
        let time = |k: &str| {
            a.body[k]
                .as_f64()
                .filter(|s| *s >= 0.0)
                .map(|s| Time::from_millis((s * 1000.0) as u64))
        };
        let start = time("StartTime").or_else(|| time("Time"));
        if cron.is_none() && start.is_none() {
            continue;
        }
        let size = |k: &str| int(&a.body[k]).map(|n| n.max(0) as u32);
        stack
            .scheduled
            .push(bellows_core::scaling::ScheduledAction {
                group: str_of(&a.body, "AutoScalingGroupName"),
                cron,
                start,
                end: time("EndTime"),
                min: size("MinSize"),
                max: size("MaxSize"),
                desired: size("DesiredCapacity"),
                name,
            });
    }
    Ok(stack)
}

fn str_of(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A number that may be written as a string (Query forms are all strings).
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn secs(v: &Value, default: u64) -> Duration {
    Duration::from_secs(int(v).map_or(default, |n| n.max(0) as u64))
}

/// `200`, `200,202` or `200-299` as inclusive ranges.
pub fn matcher_ranges(code: &str) -> Result<Vec<(u16, u16)>, String> {
    code.split(',')
        .map(|part| {
            let part = part.trim();
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            match (a.trim().parse::<u16>(), b.trim().parse::<u16>()) {
                (Ok(a), Ok(b)) if a <= b && (100..600).contains(&a) && b < 600 => Ok((a, b)),
                _ => Err(format!(
                    "the matcher {code} is not status codes like 200 or 200-299"
                )),
            }
        })
        .collect()
}

fn target_group(b: &Value) -> Result<TargetGroupSpec, String> {
    let name = str_of(b, "TargetGroupName");
    let attr = |k: &str| b["Attributes"][k].as_str().unwrap_or_default().to_owned();
    let sticky = attr("stickiness.enabled") == "true";
    let stickiness = sticky.then(|| {
        if attr("stickiness.type") == "app_cookie" {
            Stickiness {
                app_cookie: Some(attr("stickiness.app_cookie.cookie_name")),
                duration: Duration::from_secs(
                    attr("stickiness.app_cookie.duration_seconds")
                        .parse()
                        .unwrap_or(86_400),
                ),
            }
        } else {
            Stickiness {
                app_cookie: None,
                duration: Duration::from_secs(
                    attr("stickiness.lb_cookie.duration_seconds")
                        .parse()
                        .unwrap_or(86_400),
                ),
            }
        }
    });
    let algorithm = match attr("load_balancing.algorithm.type").as_str() {
        "least_outstanding_requests" => Algorithm::LeastOutstandingRequests,
        "weighted_random" => Algorithm::WeightedRandom,
        _ => Algorithm::RoundRobin,
    };
    Ok(TargetGroupSpec {
        port: int(&b["Port"]).unwrap_or(80) as u16,
        health_check: HealthCheckSpec {
            path: b["HealthCheckPath"].as_str().unwrap_or("/").to_owned(),
            interval: secs(&b["HealthCheckIntervalSeconds"], 30),
            timeout: secs(&b["HealthCheckTimeoutSeconds"], 5),
            healthy_threshold: int(&b["HealthyThresholdCount"]).unwrap_or(5) as u32,
            unhealthy_threshold: int(&b["UnhealthyThresholdCount"]).unwrap_or(2) as u32,
            matcher: matcher_ranges(b["Matcher"]["HttpCode"].as_str().unwrap_or("200"))
                .map_err(|e| format!("target group {name}: {e}"))?,
        },
        algorithm,
        anomaly_mitigation: attr("load_balancing.algorithm.anomaly_mitigation") == "on",
        stickiness,
        slow_start: Duration::from_secs(attr("slow_start.duration_seconds").parse().unwrap_or(0)),
        deregistration_delay: Duration::from_secs(
            attr("deregistration_delay.timeout_seconds")
                .parse()
                .unwrap_or(300),
        ),
        max_connections: None,
        queue_size: 0,
        queue_timeout: Duration::from_secs(0),
        name,
    })
}

/// An ELBv2 action (as a record keeps it) as the load balancer's.
fn action(a: &Value, tg_names: &BTreeMap<String, String>) -> Result<Action, String> {
    let tg = |arn: &str| {
        tg_names
            .get(arn)
            .cloned()
            .ok_or_else(|| format!("target group {arn} not found"))
    };
    match a["Type"].as_str().unwrap_or_default() {
        "forward" => {
            let mut groups = Vec::new();
            if let Some(list) = a["ForwardConfig"]["TargetGroups"].as_array() {
                for g in list {
                    groups.push(WeightedTargetGroup {
                        target_group: tg(g["TargetGroupArn"].as_str().unwrap_or_default())?,
                        weight: int(&g["Weight"]).unwrap_or(1) as u32,
                    });
                }
            }
            if groups.is_empty() {
                groups.push(WeightedTargetGroup {
                    target_group: tg(a["TargetGroupArn"].as_str().unwrap_or_default())?,
                    weight: 1,
                });
            }
            Ok(Action::Forward(groups))
        }
        "redirect" => {
            let r = &a["RedirectConfig"];
            let part = |k: &str| r[k].as_str().map(str::to_owned);
            let status = r["StatusCode"]
                .as_str()
                .and_then(|s| s.strip_prefix("HTTP_"))
                .and_then(|s| s.parse().ok())
                .unwrap_or(302);
            Ok(Action::Redirect(Redirect {
                status,
                protocol: part("Protocol").filter(|p| p != "#{protocol}"),
                host: part("Host").filter(|p| p != "#{host}"),
                port: part("Port").filter(|p| p != "#{port}"),
                path: part("Path").filter(|p| p != "/#{path}"),
                query: part("Query").filter(|p| p != "#{query}"),
            }))
        }
        "fixed-response" => {
            let f = &a["FixedResponseConfig"];
            Ok(Action::FixedResponse(FixedResponse {
                status: int(&f["StatusCode"]).unwrap_or(200) as u16,
                content_type: f["ContentType"].as_str().unwrap_or("text/plain").to_owned(),
                body: f["MessageBody"].as_str().unwrap_or_default().to_owned(),
            }))
        }
        other => Err(format!("bellows cannot run actions of type {other:?}")),
    }
}

fn rule(b: &Value, tg_names: &BTreeMap<String, String>) -> Result<Rule, String> {
    let priority = int(&b["Priority"]).unwrap_or(1) as u32;
    let mut c = Conditions::default();
    for cond in b["Conditions"].as_array().into_iter().flatten() {
        let values = |key: &str| {
            let v = strings(&cond[key]["Values"]);
            if v.is_empty() {
                strings(&cond["Values"])
            } else {
                v
            }
        };
        match cond["Field"].as_str().unwrap_or_default() {
            "path-pattern" => c.paths.extend(values("PathPatternConfig")),
            "host-header" => c.hosts.extend(values("HostHeaderConfig")),
            "http-request-method" => c.methods.extend(values("HttpRequestMethodConfig")),
            "http-header" => c.headers.push((
                str_of(&cond["HttpHeaderConfig"], "HttpHeaderName"),
                strings(&cond["HttpHeaderConfig"]["Values"]),
            )),
            "source-ip" => {
                for ip in values("SourceIpConfig") {
                    c.source_ips
                        .push(ip.parse().map_err(|e| format!("{ip}: {e}"))?);
                }
            }
            other => return Err(format!("bellows cannot match rule conditions on {other:?}")),
        }
    }
    let action = b["Actions"]
        .as_array()
        .and_then(|a| a.first())
        .map(|a| action(a, tg_names))
        .transpose()?
        .ok_or_else(|| format!("rule {priority}: no action"))?;
    Ok(Rule {
        priority,
        conditions: c,
        action,
    })
}

/// A load balancer's security groups' ingress rules for tcp on `port`, as CIDRs: what a
/// listener on that port admits. No security group admits everyone, as a stack file's
/// listener does.
fn ingress(records: &Resources, groups: &[String], port: u16) -> Vec<Cidr> {
    if groups.is_empty() {
        return vec!["0.0.0.0/0".parse().expect("a CIDR")];
    }
    records
        .ingress_cidrs(groups, port)
        .iter()
        .filter_map(|c| c.parse::<Cidr>().ok())
        .collect()
}

/// The launch template version a group names.
fn launch_data(records: &Resources, spec: &Value) -> Result<LaunchVersion, String> {
    let template = spec["LaunchTemplateId"]
        .as_str()
        .filter(|s| !s.is_empty())
        .or_else(|| spec["LaunchTemplateName"].as_str())
        .unwrap_or_default();
    let version = spec["Version"].as_str().unwrap_or("$Default");
    records
        .launch_version(template, version)
        .map_err(|e| e.message)
}

fn group(
    records: &Resources,
    b: &Value,
    tg_names: &BTreeMap<String, String>,
) -> Result<GroupSpec, String> {
    let name = str_of(b, "AutoScalingGroupName");
    let LaunchVersion {
        user_data,
        image_id,
        instance_type,
        instance_profile,
        ..
    } = launch_data(records, &b["LaunchTemplate"]).map_err(|e| format!("group {name}: {e}"))?;
    let role = instance_role(records, &name, instance_profile.as_deref())?;
    let target_groups: Vec<String> = strings(&b["TargetGroupARNs"])
        .iter()
        .filter_map(|arn| tg_names.get(arn).cloned())
        .collect();
    // Instances listen on their target group's port, as the template's program must.
    let port = target_groups
        .first()
        .and_then(|t| {
            records
                .of("target_group")
                .find(|r| r.body["TargetGroupName"] == t.as_str())
                .and_then(|r| int(&r.body["Port"]))
        })
        .unwrap_or(80) as u16;
    let command = match (&user_data, image_id.as_deref()) {
        (None, Some(img)) if img.starts_with(APP_IMAGE_PREFIX) => vec![
            "bellows".to_owned(),
            "app".to_owned(),
            img[APP_IMAGE_PREFIX.len()..].to_owned(),
        ],
        (None, _) => {
            return Err(format!(
                "group {name}: its launch template has no user data to run (or an image id {APP_IMAGE_PREFIX}NAME)"
            ));
        }
        _ => Vec::new(),
    };
    let instance_type = match instance_type {
        Some(t) => InstanceType::named(&t)
            .ok_or_else(|| format!("group {name}: bellows does not know instance type {t}"))?,
        None => InstanceType::named("t2.micro").expect("a known type"),
    };
    let mut zones: Vec<String> = Vec::new();
    for subnet in b["VPCZoneIdentifier"]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let zone = records
            .subnet_zone(subnet)
            .ok_or_else(|| format!("group {name}: subnet {subnet} not found"))?;
        if !zones.contains(&zone) {
            zones.push(zone);
        }
    }
    if zones.is_empty() {
        zones = strings(&b["AvailabilityZones"]);
    }
    if zones.is_empty() {
        return Err(format!(
            "group {name}: give VPCZoneIdentifier or AvailabilityZones"
        ));
    }
    let termination_policy = match strings(&b["TerminationPolicies"])
        .first()
        .map(String::as_str)
    {
        Some("OldestInstance") => TerminationPolicy::OldestInstance,
        Some("NewestInstance") => TerminationPolicy::NewestInstance,
        _ => TerminationPolicy::Default,
    };
    Ok(GroupSpec {
        launch: LaunchTemplate {
            command,
            user_data,
            image_id,
            env: BTreeMap::new(),
            setup: None,
            instance_type,
            boot_delay: Duration::ZERO,
            port,
            stop_timeout: Duration::from_secs(10),
            // User data runs in a network namespace of its own where bellows may make
            // one, as an EC2 instance has its own address.
            network: bellows_core::stack::NetworkMode::Auto,
        },
        min: int(&b["MinSize"]).unwrap_or(0) as u32,
        max: int(&b["MaxSize"]).unwrap_or(0) as u32,
        desired: int(&b["DesiredCapacity"]).unwrap_or(0) as u32,
        zones,
        health_check_type: if b["HealthCheckType"] == "ELB" {
            HealthCheckType::Elb
        } else {
            HealthCheckType::Ec2
        },
        health_check_grace_period: secs(&b["HealthCheckGracePeriod"], 300),
        default_cooldown: secs(&b["DefaultCooldown"], 300),
        default_instance_warmup: int(&b["DefaultInstanceWarmup"])
            .map(|n| Duration::from_secs(n.max(0) as u64)),
        termination_policy,
        target_groups,
        scale_from_zero: false,
        role,
        name,
    })
}

/// A group's instance role: its launch template's instance profile's role, allowed what
/// that role's policies allow; without a profile, the default role.
fn instance_role(
    records: &Resources,
    group: &str,
    profile: Option<&str>,
) -> Result<RoleSpec, String> {
    let Some(profile) = profile else {
        return Ok(RoleSpec::default_for(group));
    };
    let (name, allow) = records
        .profile_role(profile)
        .ok_or_else(|| format!("group {group}: instance profile {profile} not found"))?;
    Ok(RoleSpec { name, allow })
}

fn adjustment_type(b: &Value) -> AdjustmentType {
    match b["AdjustmentType"].as_str() {
        Some("ExactCapacity") => AdjustmentType::ExactCapacity,
        Some("PercentChangeInCapacity") => AdjustmentType::PercentChangeInCapacity,
        _ => AdjustmentType::ChangeInCapacity,
    }
}

fn policy(b: &Value, tg_names: &BTreeMap<String, String>) -> Result<PolicySpec, String> {
    let name = str_of(b, "PolicyName");
    let group = str_of(b, "AutoScalingGroupName");
    let warmup = int(&b["EstimatedInstanceWarmup"]).map(|n| Duration::from_secs(n.max(0) as u64));
    let kind = match b["PolicyType"].as_str().unwrap_or("SimpleScaling") {
        "SimpleScaling" => PolicyKind::Simple {
            adjustment_type: adjustment_type(b),
            adjustment: int(&b["ScalingAdjustment"]).unwrap_or(0),
            cooldown: int(&b["Cooldown"]).map(|n| Duration::from_secs(n.max(0) as u64)),
            min_adjustment_magnitude: int(&b["MinAdjustmentMagnitude"]),
        },
        "StepScaling" => PolicyKind::Step {
            adjustment_type: adjustment_type(b),
            steps: b["StepAdjustments"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| Step {
                    lower: float(&s["MetricIntervalLowerBound"]),
                    upper: float(&s["MetricIntervalUpperBound"]),
                    adjustment: int(&s["ScalingAdjustment"]).unwrap_or(0),
                })
                .collect(),
            min_adjustment_magnitude: int(&b["MinAdjustmentMagnitude"]),
            warmup,
        },
        "TargetTrackingScaling" => {
            let t = &b["TargetTrackingConfiguration"];
            let p = &t["PredefinedMetricSpecification"];
            let metric = match p["PredefinedMetricType"].as_str() {
                Some("ASGAverageCPUUtilization") => TrackedMetric::AsgAverageCpuUtilization,
                Some("ALBRequestCountPerTarget") => {
                    // The label ends in `targetgroup/NAME/ID`.
                    let label = p["ResourceLabel"].as_str().unwrap_or_default();
                    let tg = label
                        .rsplit_once("targetgroup/")
                        .map(|(_, rest)| format!("targetgroup/{rest}"))
                        .and_then(|suffix| {
                            tg_names
                                .iter()
                                .find(|(arn, _)| arn.ends_with(&suffix))
                                .map(|(_, n)| n.clone())
                        })
                        .ok_or_else(|| {
                            format!("policy {name}: no target group in the resource label {label}")
                        })?;
                    TrackedMetric::AlbRequestCountPerTarget { target_group: tg }
                }
                other => {
                    return Err(format!(
                        "policy {name}: bellows tracks ASGAverageCPUUtilization and ALBRequestCountPerTarget, not {other:?}"
                    ));
                }
            };
            PolicyKind::TargetTracking {
                metric,
                target: float(&t["TargetValue"]).unwrap_or(50.0),
                disable_scale_in: t["DisableScaleIn"] == true || t["DisableScaleIn"] == "true",
                warmup,
                period: Duration::from_secs(60),
            }
        }
        other => return Err(format!("policy {name}: bellows has no policy type {other}")),
    };
    Ok(PolicySpec { name, group, kind })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn records(name: &str) -> Resources {
        let dir =
            std::env::temp_dir().join(format!("bellows-derive-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Resources::open(&dir.join("state.db"), "web").unwrap()
    }

    #[test]
    fn a_load_balancer_listener_and_target_group_become_the_stacks_own() {
        let mut r = records("lb");
        r.put(
            "target_group",
            "arn:tg",
            json!({
                "TargetGroupName": "app",
                "Port": 5000,
                "HealthCheckPath": "/health",
                "HealthCheckIntervalSeconds": 10,
                "HealthCheckTimeoutSeconds": 5,
                "HealthyThresholdCount": 2,
                "UnhealthyThresholdCount": 3,
                "Matcher": { "HttpCode": "200-299" },
                "Attributes": {
                    "stickiness.enabled": "true",
                    "stickiness.type": "lb_cookie",
                    "stickiness.lb_cookie.duration_seconds": "3600",
                    "load_balancing.algorithm.type": "least_outstanding_requests",
                    "deregistration_delay.timeout_seconds": "30",
                },
            }),
        )
        .unwrap();
        r.put(
            "load_balancer",
            "arn:lb",
            json!({ "LoadBalancerName": "alb", "DNSName": "127.0.100.7", "SecurityGroups": [] }),
        )
        .unwrap();
        r.put(
            "listener",
            "arn:l",
            json!({
                "LoadBalancerArn": "arn:lb",
                "Port": 80,
                "DefaultActions": [{ "Type": "forward", "TargetGroupArn": "arn:tg" }],
            }),
        )
        .unwrap();
        r.put(
            "rule",
            "arn:r",
            json!({
                "_ListenerArn": "arn:l",
                "Priority": "5",
                "Conditions": [{ "Field": "path-pattern", "Values": ["/api/*"] }],
                "Actions": [{ "Type": "fixed-response", "FixedResponseConfig": { "StatusCode": "418", "MessageBody": "no" } }],
            }),
        )
        .unwrap();
        let base = Stack::empty("web").unwrap();
        let s = derive(&base, &r).unwrap();
        let l = &s.listeners[0];
        assert_eq!(l.name, "alb-80");
        assert_eq!(l.address.to_string(), "127.0.100.7:80");
        assert_eq!(l.ingress, vec!["0.0.0.0/0".parse::<Cidr>().unwrap()]);
        assert_eq!(l.rules.len(), 1);
        assert_eq!(l.rules[0].priority, 5);
        assert_eq!(l.rules[0].conditions.paths, ["/api/*"]);
        assert!(matches!(&l.default_action, Action::Forward(g) if g[0].target_group == "app"));
        let tg = &s.target_groups[0];
        assert_eq!(tg.port, 5000);
        assert_eq!(tg.health_check.matcher, vec![(200, 299)]);
        assert_eq!(tg.health_check.interval, Duration::from_secs(10));
        assert_eq!(tg.algorithm, Algorithm::LeastOutstandingRequests);
        assert_eq!(tg.deregistration_delay, Duration::from_secs(30));
        assert_eq!(
            tg.stickiness,
            Some(Stickiness {
                app_cookie: None,
                duration: Duration::from_secs(3600)
            })
        );
    }

    #[test]
    fn alarms_name_load_balancers_and_target_groups_by_their_arns_ends() {
        let mut r = records("aliases");
        r.put(
            "target_group",
            "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/app/0a1b2c3d4e5f6071",
            json!({ "TargetGroupName": "app" }),
        )
        .unwrap();
        r.put(
            "load_balancer",
            "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/alb/8192a3b4c5d6e7f8",
            json!({ "LoadBalancerName": "alb" }),
        )
        .unwrap();
        let a = dimension_aliases(&r);
        let get = |d: &str, v: &str| a.get(&(d.to_owned(), v.to_owned())).cloned();
        assert_eq!(
            get("TargetGroup", "targetgroup/app/0a1b2c3d4e5f6071").as_deref(),
            Some("app")
        );
        assert_eq!(
            get("LoadBalancer", "app/alb/8192a3b4c5d6e7f8").as_deref(),
            Some("alb"),
            "the load balancer's own series"
        );
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn a_group_without_its_launch_template_is_an_error_not_a_panic() {
        let mut r = records("group");
        r.put(
            "auto_scaling_group",
            "web",
            json!({
                "AutoScalingGroupName": "web",
                "LaunchTemplate": { "LaunchTemplateId": "lt-0123456789abcdef0", "Version": "$Latest" },
                "MinSize": 1, "MaxSize": 2, "DesiredCapacity": 1,
            }),
        )
        .unwrap();
        let err = derive(&Stack::empty("web").unwrap(), &r).unwrap_err();
        assert!(err.contains("group web"), "{err}");
    }

    #[test]
    fn matchers_are_codes_and_ranges() {
        assert_eq!(
            matcher_ranges("200,302").unwrap(),
            vec![(200, 200), (302, 302)]
        );
        assert_eq!(matcher_ranges("200-399").unwrap(), vec![(200, 399)]);
        assert!(matcher_ranges("ok").is_err());
        assert!(matcher_ranges("300-200").is_err());
    }
}
