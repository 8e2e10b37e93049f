//! Elastic Load Balancing v2 (2015-12-01): the stack's load balancer, its listeners and
//! rules, target groups and target health. One stack is one application load balancer,
//! named after the stack.

use bellows_aws::arn::name_in_arn;
use bellows_aws::{AwsError, Value};
use bellows_core::lb::rules::{Action, Rule};
use bellows_core::lb::select::TargetState;

use super::{Ctx, Paging, page, time};

mod attributes;
mod listeners;
mod resources;
mod tags;

/// The kinds of record the load balancer's calls keep (`resources.rs`).
pub(super) const LB: &str = "load_balancer";
pub(super) const TG: &str = "target_group";
pub(super) const LISTENER: &str = "listener";
pub(super) const RULE: &str = "rule";

/// A body as its output shape: without its attributes, tags and own members.
fn shown(body: &serde_json::Value) -> Value {
    let mut b = body.clone();
    if let Some(m) = b.as_object_mut() {
        m.remove("Attributes");
        m.remove("Tags");
    }
    super::from_json(&b)
}

/// ELBv2's paging: `PageSize` (1 to 400), `Marker` in and `NextMarker` out.
const MARKER: Paging = Paging {
    size: "PageSize",
    default: 400,
    max: 400,
    token_in: "Marker",
    token_out: "NextMarker",
    bad_token: "ValidationError",
};
use crate::api::{Call, StatusView};

pub(super) async fn handle(ctx: &Ctx<'_>, action: &str) -> Option<Result<Value, AwsError>> {
    Some(match action {
        "DescribeLoadBalancers" => describe_load_balancers(ctx).await,
        "DescribeListeners" => describe_listeners(ctx).await,
        "DescribeRules" => describe_rules(ctx).await,
        "DescribeTargetGroups" => describe_target_groups(ctx).await,
        "DescribeTargetHealth" => describe_target_health(ctx).await,
        "DescribeTags" => describe_tags(ctx).await,
        "DescribeTargetGroupAttributes" => describe_target_group_attributes(ctx).await,
        "DescribeLoadBalancerAttributes" => describe_load_balancer_attributes(ctx).await,
        "CreateLoadBalancer" => resources::create_load_balancer(ctx).await,
        "DeleteLoadBalancer" => resources::delete_load_balancer(ctx).await,
        "ModifyLoadBalancerAttributes" => attributes::modify_lb_attributes(ctx).await,
        "SetSecurityGroups" => resources::set_security_groups(ctx).await,
        "SetSubnets" => resources::set_subnets(ctx).await,
        "CreateTargetGroup" => resources::create_target_group(ctx).await,
        "ModifyTargetGroup" => resources::modify_target_group(ctx).await,
        "DeleteTargetGroup" => resources::delete_target_group(ctx).await,
        "ModifyTargetGroupAttributes" => attributes::modify_tg_attributes(ctx).await,
        "CreateListener" => listeners::create_listener(ctx).await,
        "ModifyListener" => listeners::modify_listener(ctx).await,
        "DeleteListener" => listeners::delete_listener(ctx).await,
        "CreateRule" => listeners::create_rule(ctx).await,
        "ModifyRule" => listeners::modify_rule(ctx).await,
        "SetRulePriorities" => listeners::set_rule_priorities(ctx).await,
        "DeleteRule" => listeners::delete_rule(ctx).await,
        "AddTags" => tags::add_tags(ctx).await,
        "DescribeCapacityReservation" => resources::describe_capacity_reservation(ctx).await,
        "DescribeListenerAttributes" => attributes::describe_listener_attributes(ctx).await,
        "ModifyListenerAttributes" => attributes::modify_listener_attributes(ctx).await,
        "RemoveTags" => tags::remove_tags(ctx).await,
        _ => return None,
    })
}

fn lb_not_found() -> AwsError {
    AwsError::new(
        400,
        "LoadBalancerNotFound",
        "One or more load balancers not found",
    )
}

fn tg_not_found() -> AwsError {
    AwsError::new(
        400,
        "TargetGroupNotFound",
        "One or more target groups not found",
    )
}

fn listener_not_found() -> AwsError {
    AwsError::new(400, "ListenerNotFound", "One or more listeners not found")
}

fn rule_not_found() -> AwsError {
    AwsError::new(400, "RuleNotFound", "One or more rules not found")
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ValidationError", message)
}

/// What these answers are made from, read once per call.
struct Snapshot {
    status: StatusView,
    stack: serde_json::Value,
    /// Listeners and target groups the AWS resource records make: answered from the
    /// records, not from the stack.
    derived_listeners: Vec<String>,
    derived_target_groups: Vec<String>,
}

async fn snapshot(ctx: &Ctx<'_>) -> Result<Snapshot, AwsError> {
    let (derived_listeners, derived_target_groups) = ctx
        .read(|r| {
            let lbs: Vec<(String, String)> = r
                .of(LB)
                .map(|l| {
                    (
                        l.id.clone(),
                        l.body["LoadBalancerName"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    )
                })
                .collect();
            let listeners = r
                .of(LISTENER)
                .filter_map(|l| {
                    let lb = lbs
                        .iter()
                        .find(|(a, _)| l.body["LoadBalancerArn"] == a.as_str())?;
                    Some(format!("{}-{}", lb.1, l.body["Port"]))
                })
                .collect();
            let tgs = r
                .of(TG)
                .map(|t| {
                    t.body["TargetGroupName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect();
            Ok((listeners, tgs))
        })
        .await?;
    Ok(Snapshot {
        status: ctx.ask(Call::Status).await?,
        stack: ctx.ask(Call::Stack).await?,
        derived_listeners,
        derived_target_groups,
    })
}

impl Snapshot {
    /// The load balancer's name: `[stack] load_balancer`, the stack's name by default.
    fn lb(&self) -> &str {
        self.stack["load_balancer"]
            .as_str()
            .unwrap_or(&self.status.stack)
    }

    fn zones(&self) -> Vec<String> {
        let mut zones: Vec<String> = self
            .status
            .groups
            .iter()
            .flat_map(|g| g.zones.iter().cloned())
            .collect();
        zones.sort();
        zones.dedup();
        zones
    }

    /// The stack's own listeners (not those the records make).
    fn listeners(&self) -> Vec<&serde_json::Value> {
        self.stack["listeners"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter(|x| {
                        !self
                            .derived_listeners
                            .iter()
                            .any(|d| x["name"] == d.as_str())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The stack's own target groups (not those the records make).
    fn target_groups(&self) -> Vec<&serde_json::Value> {
        self.all_target_groups()
            .into_iter()
            .filter(|x| {
                !self
                    .derived_target_groups
                    .iter()
                    .any(|d| x["name"] == d.as_str())
            })
            .collect()
    }

    /// Every target group that runs, the records' included.
    fn all_target_groups(&self) -> Vec<&serde_json::Value> {
        self.stack["target_groups"]
            .as_array()
            .map(|l| l.iter().collect())
            .unwrap_or_default()
    }

    /// Whether the stack has a load balancer of its own: listeners or target groups
    /// that the records do not make.
    fn has_own_lb(&self) -> bool {
        !self.listeners().is_empty() || !self.target_groups().is_empty()
    }
}

fn port_of(address: &str) -> i64 {
    address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

fn seconds(v: &serde_json::Value) -> i64 {
    v.as_str()
        .and_then(|s| s.parse::<bellows_core::Duration>().ok())
        .map_or(0, |d| (d.as_millis() / 1000) as i64)
}

fn load_balancer_value(ctx: &Ctx<'_>, s: &Snapshot) -> Value {
    let names = ctx.names();
    let lb = s.lb();
    // The DNS name is where the first listener answers, so that `curl http://$DNS/`
    // reaches it as it would an ALB.
    let dns = s
        .listeners()
        .first()
        .and_then(|l| l["address"].as_str())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let zones: Vec<Value> = s
        .zones()
        .iter()
        .map(|z| {
            Value::object()
                .with("ZoneName", z.as_str())
                .with("SubnetId", names.subnet_id(z))
        })
        .collect();
    let groups: Vec<String> = s
        .listeners()
        .iter()
        .filter_map(|l| l["name"].as_str())
        .map(|l| names.security_group_id(l))
        .collect();
    Value::object()
        .with("LoadBalancerArn", names.load_balancer_arn(lb))
        .with("DNSName", dns)
        .with("CanonicalHostedZoneId", "Z35SXDOTRQ7X7K")
        .with("CreatedTime", time(s.status.started_at))
        .with("LoadBalancerName", lb)
        .with("Scheme", "internet-facing")
        .with("VpcId", names.vpc_id())
        .with("State", Value::object().with("Code", "active"))
        .with("Type", "application")
        .with("AvailabilityZones", Value::List(zones))
        .with("SecurityGroups", groups)
        .with("IpAddressType", "ipv4")
}

async fn describe_load_balancers(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let arns = input.strings("LoadBalancerArns")?;
    let wanted = input.strings("Names")?;
    let s = snapshot(ctx).await?;
    let mut all = resources::load_balancers(ctx).await?;
    if s.has_own_lb() && !all.iter().any(|(_, n, _)| n == s.lb()) {
        all.push((
            ctx.names().load_balancer_arn(s.lb()),
            s.lb().to_owned(),
            load_balancer_value(ctx, &s),
        ));
    }
    if wanted.iter().any(|n| !all.iter().any(|(_, x, _)| x == n))
        || arns.iter().any(|a| !all.iter().any(|(x, _, _)| x == a))
    {
        return Err(lb_not_found());
    }
    let list: Vec<Value> = all
        .into_iter()
        .filter(|(a, n, _)| {
            (wanted.is_empty() || wanted.contains(n)) && (arns.is_empty() || arns.contains(a))
        })
        .map(|(_, _, v)| v)
        .collect();
    let mut out = Value::object();
    page(ctx, &MARKER, list, &mut out, "LoadBalancers")?;
    Ok(out)
}

/// An action in ELBv2's shape.
fn action_value(ctx: &Ctx<'_>, action: &Action, order: i64) -> Value {
    let names = ctx.names();
    match action {
        Action::Forward(groups) => {
            let mut v = Value::object().with("Type", "forward");
            if let [one] = &groups[..] {
                v.set("TargetGroupArn", names.target_group_arn(&one.target_group));
            }
            let tgs: Vec<Value> = groups
                .iter()
                .map(|g| {
                    Value::object()
                        .with("TargetGroupArn", names.target_group_arn(&g.target_group))
                        .with("Weight", g.weight)
                })
                .collect();
            v.with(
                "ForwardConfig",
                Value::object().with("TargetGroups", Value::List(tgs)),
            )
            .with("Order", order)
        }
        Action::Redirect(r) => Value::object()
            .with("Type", "redirect")
            .with(
                "RedirectConfig",
                Value::object()
                    .with(
                        "Protocol",
                        r.protocol.clone().unwrap_or("#{protocol}".into()),
                    )
                    .with("Port", r.port.clone().unwrap_or("#{port}".into()))
                    .with("Host", r.host.clone().unwrap_or("#{host}".into()))
                    .with("Path", r.path.clone().unwrap_or("/#{path}".into()))
                    .with("Query", r.query.clone().unwrap_or("#{query}".into()))
                    .with("StatusCode", format!("HTTP_{}", r.status)),
            )
            .with("Order", order),
        Action::FixedResponse(f) => {
            let f = serde_json::to_value(f).unwrap_or_default();
            Value::object()
                .with("Type", "fixed-response")
                .with(
                    "FixedResponseConfig",
                    Value::object()
                        .with("MessageBody", f["body"].as_str().map(str::to_owned))
                        .with("StatusCode", f["status"].as_u64().map(|s| s.to_string()))
                        .with("ContentType", f["content_type"].as_str().map(str::to_owned)),
                )
                .with("Order", order)
        }
    }
}

fn listener_value(ctx: &Ctx<'_>, s: &Snapshot, l: &serde_json::Value) -> Value {
    let names = ctx.names();
    let name = l["name"].as_str().unwrap_or_default();
    let default: Option<Action> = serde_json::from_value(l["default_action"].clone()).ok();
    Value::object()
        .with("ListenerArn", names.listener_arn(s.lb(), name))
        .with("LoadBalancerArn", names.load_balancer_arn(s.lb()))
        .with(
            "Port",
            l["aws_port"]
                .as_i64()
                .unwrap_or_else(|| port_of(l["address"].as_str().unwrap_or_default())),
        )
        .with("Protocol", "HTTP")
        .with(
            "DefaultActions",
            Value::List(default.iter().map(|a| action_value(ctx, a, 1)).collect()),
        )
}

async fn describe_listeners(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let lb_arn = input.opt_str("LoadBalancerArn")?;
    let arns = input.strings("ListenerArns")?;
    let s = snapshot(ctx).await?;
    if lb_arn.is_none() && arns.is_empty() {
        return Err(AwsError::new(
            400,
            "ValidationError",
            "You must specify either listener ARNs or a load balancer ARN",
        ));
    }
    let records = listeners::listeners(ctx).await?;
    let lbs = resources::load_balancers(ctx).await?;
    let own_lb = ctx.names().load_balancer_arn(s.lb());
    if lb_arn
        .as_ref()
        .is_some_and(|a| *a != own_lb && !lbs.iter().any(|(x, _, _)| x == a))
    {
        return Err(lb_not_found());
    }
    let mut all: Vec<(String, Value)> = records
        .into_iter()
        .filter(|(_, lb, _)| lb_arn.as_ref().is_none_or(|a| a == lb))
        .map(|(a, _, v)| (a, v))
        .collect();
    if lb_arn.as_ref().is_none_or(|a| *a == own_lb) {
        all.extend(s.listeners().iter().map(|l| {
            let name = l["name"].as_str().unwrap_or_default();
            (
                ctx.names().listener_arn(s.lb(), name),
                listener_value(ctx, &s, l),
            )
        }));
    }
    if arns.iter().any(|a| !all.iter().any(|(arn, _)| arn == a)) {
        return Err(listener_not_found());
    }
    let list: Vec<Value> = all
        .into_iter()
        .filter(|(arn, _)| arns.is_empty() || arns.contains(arn))
        .map(|(_, v)| v)
        .collect();
    let mut out = Value::object();
    page(ctx, &MARKER, list, &mut out, "Listeners")?;
    Ok(out)
}

fn conditions(rule: &Rule) -> Vec<Value> {
    let c = &rule.conditions;
    let mut out = Vec::new();
    let simple = |field: &str, key: &str, values: &[String]| {
        Value::object()
            .with("Field", field)
            .with("Values", values.to_vec())
            .with(key, Value::object().with("Values", values.to_vec()))
    };
    if !c.paths.is_empty() {
        out.push(simple("path-pattern", "PathPatternConfig", &c.paths));
    }
    if !c.hosts.is_empty() {
        out.push(simple("host-header", "HostHeaderConfig", &c.hosts));
    }
    if !c.methods.is_empty() {
        out.push(Value::object().with("Field", "http-request-method").with(
            "HttpRequestMethodConfig",
            Value::object().with("Values", c.methods.clone()),
        ));
    }
    for (name, values) in &c.headers {
        out.push(
            Value::object().with("Field", "http-header").with(
                "HttpHeaderConfig",
                Value::object()
                    .with("HttpHeaderName", name.as_str())
                    .with("Values", values.clone()),
            ),
        );
    }
    if !c.source_ips.is_empty() {
        let ips: Vec<String> = c.source_ips.iter().map(ToString::to_string).collect();
        out.push(
            Value::object()
                .with("Field", "source-ip")
                .with("SourceIpConfig", Value::object().with("Values", ips)),
        );
    }
    out
}

async fn describe_rules(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let listener_arn = input.opt_str("ListenerArn")?;
    let rule_arns = input.strings("RuleArns")?;
    if listener_arn.is_none() && rule_arns.is_empty() {
        return Err(AwsError::new(
            400,
            "ValidationError",
            "You must specify either listener rule ARNs or a listener ARN",
        ));
    }
    let s = snapshot(ctx).await?;
    let names = ctx.names();
    let records = listeners::rules(ctx, listener_arn.clone()).await?;
    let mut found_listener = listener_arn.is_some() && records.is_some();
    let mut all = records.unwrap_or_default();
    for l in s.listeners() {
        let name = l["name"].as_str().unwrap_or_default();
        let arn = names.listener_arn(s.lb(), name);
        if listener_arn.as_ref().is_some_and(|a| *a != arn) {
            continue;
        }
        found_listener = true;
        let rules: Vec<Rule> = serde_json::from_value(l["rules"].clone()).unwrap_or_default();
        for r in &rules {
            let rule_arn = names.rule_arn(s.lb(), name, &r.priority.to_string());
            all.push((
                rule_arn.clone(),
                Value::object()
                    .with("RuleArn", rule_arn)
                    .with("Priority", r.priority.to_string())
                    .with("Conditions", Value::List(conditions(r)))
                    .with(
                        "Actions",
                        Value::List(vec![action_value(ctx, &r.action, 1)]),
                    )
                    .with("IsDefault", false),
            ));
        }
        let default: Option<Action> = serde_json::from_value(l["default_action"].clone()).ok();
        let rule_arn = names.rule_arn(s.lb(), name, "default");
        all.push((
            rule_arn.clone(),
            Value::object()
                .with("RuleArn", rule_arn)
                .with("Priority", "default")
                .with("Conditions", Value::List(Vec::new()))
                .with(
                    "Actions",
                    Value::List(default.iter().map(|a| action_value(ctx, a, 1)).collect()),
                )
                .with("IsDefault", true),
        ));
    }
    if listener_arn.is_some() && !found_listener {
        return Err(listener_not_found());
    }
    if rule_arns
        .iter()
        .any(|a| !all.iter().any(|(arn, _)| arn == a))
    {
        return Err(AwsError::new(
            400,
            "RuleNotFound",
            "One or more rules not found",
        ));
    }
    let list: Vec<Value> = all
        .into_iter()
        .filter(|(arn, _)| rule_arns.is_empty() || rule_arns.contains(arn))
        .map(|(_, v)| v)
        .collect();
    let mut out = Value::object();
    page(ctx, &MARKER, list, &mut out, "Rules")?;
    Ok(out)
}

fn matcher(tg: &serde_json::Value) -> String {
    tg["health_check"]["matcher"]
        .as_array()
        .map(|ranges| {
            ranges
                .iter()
                .filter_map(|r| Some((r[0].as_u64()?, r[1].as_u64()?)))
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_else(|| "200".to_owned())
}

fn target_group_value(ctx: &Ctx<'_>, s: &Snapshot, tg: &serde_json::Value) -> Value {
    let names = ctx.names();
    let name = tg["name"].as_str().unwrap_or_default();
    let hc = &tg["health_check"];
    let used = s.listeners().iter().any(|l| {
        l["name"]
            .as_str()
            .and_then(|n| s.status.listeners.iter().find(|v| v.name == n))
            .is_some_and(|v| v.target_groups.iter().any(|t| t == name))
    });
    let lbs = if used {
        vec![names.load_balancer_arn(s.lb())]
    } else {
        Vec::new()
    };
    Value::object()
        .with("TargetGroupArn", names.target_group_arn(name))
        .with("TargetGroupName", name)
        .with("Protocol", "HTTP")
        .with("Port", tg["port"].as_i64())
        .with("VpcId", names.vpc_id())
        .with("HealthCheckProtocol", "HTTP")
        .with("HealthCheckPort", "traffic-port")
        .with("HealthCheckEnabled", true)
        .with("HealthCheckIntervalSeconds", seconds(&hc["interval"]))
        .with("HealthCheckTimeoutSeconds", seconds(&hc["timeout"]))
        .with("HealthyThresholdCount", hc["healthy_threshold"].as_i64())
        .with(
            "UnhealthyThresholdCount",
            hc["unhealthy_threshold"].as_i64(),
        )
        .with("HealthCheckPath", hc["path"].as_str().map(str::to_owned))
        .with("Matcher", Value::object().with("HttpCode", matcher(tg)))
        .with("LoadBalancerArns", lbs)
        .with("TargetType", "instance")
        .with("ProtocolVersion", "HTTP1")
        .with("IpAddressType", "ipv4")
}

async fn describe_target_groups(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let lb_arn = input.opt_str("LoadBalancerArn")?;
    let arns = input.strings("TargetGroupArns")?;
    let wanted = input.strings("Names")?;
    let s = snapshot(ctx).await?;
    let names = ctx.names();
    let lbs = resources::load_balancers(ctx).await?;
    if lb_arn.as_ref().is_some_and(|a| {
        *a != names.load_balancer_arn(s.lb()) && !lbs.iter().any(|(x, _, _)| x == a)
    }) {
        return Err(lb_not_found());
    }
    let mut all: Vec<(String, String, Value)> = resources::target_groups(ctx).await?;
    for tg in s.target_groups() {
        let name = tg["name"].as_str().unwrap_or_default().to_owned();
        all.push((
            names.target_group_arn(&name),
            name,
            target_group_value(ctx, &s, tg),
        ));
    }
    for a in &arns {
        if !all.iter().any(|(x, _, _)| x == a) {
            return Err(tg_not_found());
        }
    }
    for n in &wanted {
        if !all.iter().any(|(_, x, _)| x == n) {
            return Err(tg_not_found());
        }
    }
    let list: Vec<Value> = all
        .into_iter()
        .filter(|(a, _, _)| arns.is_empty() || arns.contains(a))
        .filter(|(_, n, _)| wanted.is_empty() || wanted.contains(n))
        .map(|(_, _, v)| v)
        .filter(|v| {
            lb_arn.as_ref().is_none_or(|lb| {
                v.get("LoadBalancerArns")
                    .is_some_and(|l| l.items().iter().any(|x| x.as_str().as_deref() == Some(lb)))
            })
        })
        .collect();
    let mut out = Value::object();
    page(ctx, &MARKER, list, &mut out, "TargetGroups")?;
    Ok(out)
}

/// The target group's name from its ARN, checked against the stack.
fn target_group_named(ctx: &Ctx<'_>, s: &Snapshot, arn: &str) -> Result<String, AwsError> {
    let name = name_in_arn(arn, "targetgroup").ok_or_else(tg_not_found)?;
    let known = s
        .all_target_groups()
        .iter()
        .any(|tg| tg["name"] == name && ctx.names().target_group_arn(name) == arn);
    if known {
        Ok(name.to_owned())
    } else {
        Err(tg_not_found())
    }
}

async fn describe_target_health(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let arn = input.str("TargetGroupArn")?;
    let s = snapshot(ctx).await?;
    let name = target_group_named(ctx, &s, &arn)?;
    let port = s
        .all_target_groups()
        .iter()
        .find(|tg| tg["name"] == name.as_str())
        .and_then(|tg| tg["port"].as_i64());
    let wanted: Vec<String> = input
        .list("Targets")
        .iter()
        .filter_map(|t| t.opt_str("Id").ok().flatten())
        .collect();
    let targets = ctx.ask(Call::Targets).await?;
    let list: Vec<Value> = targets
        .iter()
        .filter(|t| t.target_group == name)
        .filter(|t| wanted.is_empty() || wanted.contains(&t.instance.to_string()))
        .map(|t| {
            let state = match t.state {
                TargetState::Initial => "initial",
                TargetState::Healthy => "healthy",
                TargetState::Unhealthy => "unhealthy",
                TargetState::Draining => "draining",
                TargetState::Unused => "unused",
            };
            let mut health = Value::object().with("State", state);
            if let Some(r) = &t.reason {
                health.set("Reason", r.code.as_str());
                health.set("Description", r.description.as_str());
            }
            Value::object()
                .with(
                    "Target",
                    Value::object()
                        .with("Id", t.instance.to_string())
                        .with("Port", port_of(&t.address).max(port.unwrap_or(0)))
                        .with("AvailabilityZone", t.zone.as_str()),
                )
                .with("HealthCheckPort", port_of(&t.address).to_string())
                .with("TargetHealth", health)
        })
        .collect();
    Ok(Value::object().with("TargetHealthDescriptions", Value::List(list)))
}

async fn describe_tags(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let arns = ctx.input().strings("ResourceArns")?;
    if arns.is_empty() {
        return Err(AwsError::new(
            400,
            "ValidationError",
            "ResourceArns must name at least one resource",
        ));
    }
    let s = snapshot(ctx).await?;
    let names = ctx.names();
    let mut list = Vec::new();
    let recorded = tags::tags_of(ctx, arns.clone()).await?;
    for (arn, tags) in arns.iter().zip(recorded) {
        if let Some(tags) = tags {
            list.push(
                Value::object()
                    .with("ResourceArn", arn.as_str())
                    .with("Tags", tags),
            );
            continue;
        }
        let known = *arn == names.load_balancer_arn(s.lb())
            || s.target_groups()
                .iter()
                .any(|tg| names.target_group_arn(tg["name"].as_str().unwrap_or_default()) == *arn)
            || s.listeners().iter().any(|l| {
                names.listener_arn(s.lb(), l["name"].as_str().unwrap_or_default()) == *arn
            });
        if !known {
            return Err(if arn.contains(":targetgroup/") {
                tg_not_found()
            } else if arn.contains(":listener/") {
                listener_not_found()
            } else {
                lb_not_found()
            });
        }
        // bellows objects carry one tag: the stack they belong to.
        list.push(Value::object().with("ResourceArn", arn.as_str()).with(
            "Tags",
            Value::List(vec![
                    Value::object()
                        .with("Key", "bellows:stack")
                        .with("Value", s.lb()),
                ]),
        ));
    }
    Ok(Value::object().with("TagDescriptions", Value::List(list)))
}

fn attributes(pairs: Vec<(&str, String)>) -> Value {
    Value::List(
        pairs
            .into_iter()
            .map(|(k, v)| Value::object().with("Key", k).with("Value", v))
            .collect(),
    )
}

async fn describe_target_group_attributes(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let arn = ctx.input().str("TargetGroupArn")?;
    if let Some(v) = attributes::attributes_of(ctx, TG, arn.clone()).await? {
        return Ok(v);
    }
    let s = snapshot(ctx).await?;
    let name = target_group_named(ctx, &s, &arn)?;
    let tg = s
        .target_groups()
        .into_iter()
        .find(|tg| tg["name"] == name.as_str())
        .cloned()
        .unwrap_or_default();
    let sticky = &tg["stickiness"];
    let algorithm = match tg["algorithm"].as_str() {
        Some("least_outstanding_requests") => "least_outstanding_requests",
        Some("weighted_random") => "weighted_random",
        _ => "round_robin",
    };
    let pairs = vec![
        (
            "deregistration_delay.timeout_seconds",
            seconds(&tg["deregistration_delay"]).to_string(),
        ),
        ("stickiness.enabled", (!sticky.is_null()).to_string()),
        (
            "stickiness.type",
            if sticky["cookie"].is_string() {
                "app_cookie"
            } else {
                "lb_cookie"
            }
            .to_owned(),
        ),
        (
            "stickiness.lb_cookie.duration_seconds",
            if sticky.is_null() {
                86_400
            } else {
                seconds(&sticky["duration"])
            }
            .to_string(),
        ),
        (
            "slow_start.duration_seconds",
            seconds(&tg["slow_start"]).to_string(),
        ),
        ("load_balancing.algorithm.type", algorithm.to_owned()),
        (
            "load_balancing.algorithm.anomaly_mitigation",
            if tg["anomaly_mitigation"] == true {
                "on"
            } else {
                "off"
            }
            .to_owned(),
        ),
        (
            "load_balancing.cross_zone.enabled",
            "use_load_balancer_configuration".to_owned(),
        ),
    ];
    Ok(Value::object().with("Attributes", attributes(pairs)))
}

async fn describe_load_balancer_attributes(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let arn = ctx.input().str("LoadBalancerArn")?;
    if let Some(v) = attributes::attributes_of(ctx, LB, arn.clone()).await? {
        return Ok(v);
    }
    let s = snapshot(ctx).await?;
    if arn != ctx.names().load_balancer_arn(s.lb()) {
        return Err(lb_not_found());
    }
    let idle = s
        .listeners()
        .first()
        .map_or(60, |l| seconds(&l["idle_timeout"]));
    let logs = s.listeners().iter().any(|l| l["access_log"] == true);
    let pairs = vec![
        ("idle_timeout.timeout_seconds", idle.to_string()),
        ("access_logs.s3.enabled", logs.to_string()),
        ("deletion_protection.enabled", "false".to_owned()),
        ("routing.http2.enabled", "false".to_owned()),
        (
            "routing.http.drop_invalid_header_fields.enabled",
            "false".to_owned(),
        ),
        ("load_balancing.cross_zone.enabled", "true".to_owned()),
    ];
    Ok(Value::object().with("Attributes", attributes(pairs)))
}
