//! ELBv2 listeners and rules made through the AWS endpoint, as records (see
//! `resources.rs` beside this file): their actions and conditions as AWS answers them.

use bellows_aws::{AwsError, Input, Value};
use serde_json::{Value as J, json};

use super::tags::tags_in;
use super::{
    LB, LISTENER, RULE, TG, invalid, lb_not_found, listener_not_found, rule_not_found, shown,
    tg_not_found,
};
use crate::aws::Ctx;
use crate::resources::Resources;

fn hex_of(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or_default().to_owned()
}

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

pub(super) fn delete_listener_records(r: &mut Resources, arn: &str) -> Result<(), AwsError> {
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
