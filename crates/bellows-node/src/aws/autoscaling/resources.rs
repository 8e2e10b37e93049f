//! Auto Scaling groups, scaling policies and scheduled actions made through the AWS
//! endpoint: records in the output shapes of botocore's model (`auto_scaling_group` by
//! name, `policy` and `scheduled_action` by ARN), which the loop runs as the stack's own
//! groups, policies and scheduled actions (`derive.rs`).

use bellows_aws::arn::ACCOUNT;
use bellows_aws::{AwsError, Input, Value};
use serde_json::{Value as J, json};

use super::{group_not_found, validation};
use crate::aws::{Ctx, from_json, member_from_json};
use crate::resources::Resources;

pub(super) const GROUP: &str = "auto_scaling_group";
pub(super) const POLICY: &str = "policy";
pub(super) const SCHEDULED: &str = "scheduled_action";

fn tags_in(input: &Input, group: &str) -> Result<Vec<J>, AwsError> {
    let mut out = Vec::new();
    for t in input.list("Tags") {
        out.push(json!({
            "ResourceId": t.opt_str("ResourceId")?.unwrap_or_else(|| group.to_owned()),
            "ResourceType": "auto-scaling-group",
            "Key": t.str("Key")?,
            "Value": t.opt_str("Value")?.unwrap_or_default(),
            "PropagateAtLaunch": t.opt_bool("PropagateAtLaunch")?.unwrap_or(false),
        }));
    }
    Ok(out)
}

/// The launch template a group names, with its name and id both (as AWS answers).
fn launch_template_in(input: &Input, r: &Resources) -> Result<J, AwsError> {
    let lt = input.nested("LaunchTemplate");
    let id = lt.opt_str("LaunchTemplateId")?;
    let name = lt.opt_str("LaunchTemplateName")?;
    let version = lt
        .opt_str("Version")?
        .unwrap_or_else(|| "$Default".to_owned());
    let record = r.of("launch_template").find(|x| {
        id.as_ref().is_some_and(|i| *i == x.id)
            || name
                .as_ref()
                .is_some_and(|n| x.body["launchTemplateName"] == n.as_str())
    });
    let Some(record) = record else {
        return Err(validation(format!(
            "The specified launch template, with template {}, does not exist.",
            id.or(name)
                .map(|x| format!("ID {x}"))
                .unwrap_or_else(|| "no ID or name".into())
        )));
    };
    Ok(json!({
        "LaunchTemplateId": record.id,
        "LaunchTemplateName": record.body["launchTemplateName"],
        "Version": version,
    }))
}

fn check_size(min: i64, max: i64, desired: i64) -> Result<(), AwsError> {
    if min > max {
        return Err(validation(format!(
            "The minimum size ({min}) must be less than or equal to the maximum size ({max})"
        )));
    }
    if desired < min || desired > max {
        return Err(validation(format!(
            "Desired capacity:{desired} must be between the specified min size:{min} and max size:{max}"
        )));
    }
    if max > bellows_core::stack::MAX_GROUP_SIZE {
        return Err(validation(format!(
            "bellows runs at most {} instances in a group",
            bellows_core::stack::MAX_GROUP_SIZE
        )));
    }
    Ok(())
}

/// The members given for a group, set on its body (create and update alike).
fn group_members_in(input: &Input, r: &Resources, body: &mut J) -> Result<(), AwsError> {
    for refused in [
        "LaunchConfigurationName",
        "MixedInstancesPolicy",
        "LoadBalancerNames",
        "TrafficSources",
    ] {
        if input.get(refused).is_some_and(|v| !v.items().is_empty()) {
            return Err(validation(format!(
                "bellows launches groups from a launch template, into target groups: {refused} is not supported"
            )));
        }
    }
    if input.get("LaunchTemplate").is_some() {
        body["LaunchTemplate"] = launch_template_in(input, r)?;
    }
    for k in [
        "MinSize",
        "MaxSize",
        "DesiredCapacity",
        "DefaultCooldown",
        "HealthCheckGracePeriod",
        "MaxInstanceLifetime",
        "DefaultInstanceWarmup",
    ] {
        if let Some(n) = input.opt_i64(k)? {
            if n < 0 && k != "DefaultInstanceWarmup" {
                return Err(validation(format!("{k} must not be negative")));
            }
            body[k] = json!(n);
        }
    }
    if let Some(t) = input.opt_str("HealthCheckType")? {
        if t != "EC2" && t != "ELB" {
            return Err(validation(format!(
                "bellows checks health by EC2 or ELB, not {t}"
            )));
        }
        body["HealthCheckType"] = json!(t);
    }
    if input.get("TargetGroupARNs").is_some() {
        let arns = input.strings("TargetGroupARNs")?;
        for a in &arns {
            if !r.contains("target_group", a) {
                return Err(validation(format!("The target group {a} was not found")));
            }
        }
        body["TargetGroupARNs"] = json!(arns);
    }
    if let Some(v) = input.opt_str("VPCZoneIdentifier")? {
        let mut zones: Vec<String> = Vec::new();
        for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let zone = r
                .get("subnet", s)
                .and_then(|b| b["availabilityZone"].as_str().map(str::to_owned))
                .ok_or_else(|| validation(format!("The subnet ID '{s}' does not exist")))?;
            if !zones.contains(&zone) {
                zones.push(zone);
            }
        }
        body["VPCZoneIdentifier"] = json!(v);
        body["AvailabilityZones"] = json!(zones);
    } else if input.get("AvailabilityZones").is_some() {
        body["AvailabilityZones"] = json!(input.strings("AvailabilityZones")?);
    }
    if input.get("TerminationPolicies").is_some() {
        let list = input.strings("TerminationPolicies")?;
        for p in &list {
            if !["Default", "OldestInstance", "NewestInstance"].contains(&p.as_str()) {
                return Err(validation(format!(
                    "bellows' termination policies are Default, OldestInstance and NewestInstance, not {p}"
                )));
            }
        }
        body["TerminationPolicies"] = json!(if list.is_empty() {
            vec!["Default".to_owned()]
        } else {
            list
        });
    }
    for k in ["NewInstancesProtectedFromScaleIn", "CapacityRebalance"] {
        if let Some(b) = input.opt_bool(k)? {
            body[k] = json!(b);
        }
    }
    if let Some(a) = input.opt_str("ServiceLinkedRoleARN")? {
        body["ServiceLinkedRoleARN"] = json!(a);
    }
    Ok(())
}

pub(super) async fn create_group(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input().clone();
    let name = input.str("AutoScalingGroupName")?;
    if name.is_empty() || name.len() > 255 || name.contains(':') {
        return Err(validation(format!(
            "The AutoScalingGroupName '{name}' is not valid: 1 to 255 characters, no colon"
        )));
    }
    if input.get("LaunchTemplate").is_none() {
        return Err(validation(
            "bellows launches a group from a launch template: give LaunchTemplate",
        ));
    }
    let arn = ctx.names().group_arn(&name);
    let now = crate::clock::now().as_millis() as f64 / 1000.0;
    let tags = tags_in(&input, &name)?;
    ctx.change(move |r| {
        if r.contains(GROUP, &name) {
            return Err(AwsError::new(
                400,
                "AlreadyExists",
                format!("AutoScalingGroup by this name already exists - A group with the name {name} already exists"),
            ));
        }
        let mut body = json!({
            "AutoScalingGroupName": name,
            "AutoScalingGroupARN": arn,
            "DefaultCooldown": 300,
            "AvailabilityZones": [],
            "LoadBalancerNames": [],
            "TargetGroupARNs": [],
            "HealthCheckType": "EC2",
            "HealthCheckGracePeriod": 300,
            "CreatedTime": now,
            "SuspendedProcesses": [],
            "VPCZoneIdentifier": "",
            "EnabledMetrics": [],
            "Tags": tags,
            "TerminationPolicies": ["Default"],
            "NewInstancesProtectedFromScaleIn": false,
            "ServiceLinkedRoleARN": format!(
                "arn:aws:iam::{ACCOUNT}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
            ),
            "CapacityRebalance": false,
        });
        group_members_in(&input, r, &mut body)?;
        let min = body["MinSize"].as_i64().unwrap_or(0);
        if body["DesiredCapacity"].is_null() {
            body["DesiredCapacity"] = json!(min);
        }
        check_size(
            min,
            body["MaxSize"].as_i64().unwrap_or(0),
            body["DesiredCapacity"].as_i64().unwrap_or(0),
        )?;
        if body["AvailabilityZones"].as_array().is_none_or(Vec::is_empty) {
            return Err(validation(
                "At least one Availability Zone or VPC Subnet is required.",
            ));
        }
        r.put(GROUP, &name, body)?;
        Ok(())
    })
    .await?;
    Ok(Value::object())
}

/// UpdateAutoScalingGroup of a record group; `None` when the group is not a record's.
pub(super) async fn update_group(ctx: &Ctx<'_>) -> Result<Option<Value>, AwsError> {
    let input = ctx.input().clone();
    let name = input.str("AutoScalingGroupName")?;
    let n = name.clone();
    if !ctx.read(move |r| Ok(r.contains(GROUP, &n))).await? {
        return Ok(None);
    }
    ctx.change(move |r| {
        let mut body = r
            .get(GROUP, &name)
            .cloned()
            .ok_or_else(|| group_not_found(&name))?;
        let before = body.clone();
        group_members_in(&input, r, &mut body)?;
        let num = |k: &str| body[k].as_i64().unwrap_or(0);
        let (min, max) = (num("MinSize"), num("MaxSize"));
        // A new minimum or maximum moves the desired capacity inside it, as on AWS.
        if input.opt_i64("DesiredCapacity")?.is_none() {
            let d = num("DesiredCapacity").clamp(min, max.max(min));
            body["DesiredCapacity"] = json!(d);
        }
        check_size(min, max, body["DesiredCapacity"].as_i64().unwrap_or(0))?;
        if body != before {
            r.put(GROUP, &name, body)?;
        }
        Ok(())
    })
    .await?;
    Ok(Some(Value::object()))
}

/// DeleteAutoScalingGroup of a record group (with its policies and scheduled
/// actions); `None` when the group is not a record's.
pub(super) async fn delete_group(ctx: &Ctx<'_>, live: usize) -> Result<Option<Value>, AwsError> {
    let input = ctx.input();
    let name = input.str("AutoScalingGroupName")?;
    let force = input.opt_bool("ForceDelete")?.unwrap_or(false);
    let n = name.clone();
    if !ctx.read(move |r| Ok(r.contains(GROUP, &n))).await? {
        return Ok(None);
    }
    if live > 0 && !force {
        return Err(AwsError::new(
            400,
            "ResourceInUse",
            "You cannot delete an AutoScalingGroup while there are instances or pending Spot instance request(s) still in the group.",
        ));
    }
    ctx.change(move |r| {
        let owned: Vec<(String, String)> = r
            .of(POLICY)
            .chain(r.of(SCHEDULED))
            .filter(|x| x.body["AutoScalingGroupName"] == name.as_str())
            .map(|x| (x.kind.clone(), x.id.clone()))
            .collect();
        for (kind, id) in owned {
            r.delete(&kind, &id)?;
        }
        r.delete(GROUP, &name)?;
        Ok(())
    })
    .await?;
    Ok(Some(Value::object()))
}

/// The record groups, by name.
pub(super) async fn groups(ctx: &Ctx<'_>) -> Result<Vec<(String, J)>, AwsError> {
    ctx.read(|r| {
        Ok(r.of(GROUP)
            .map(|g| (g.id.clone(), g.body.clone()))
            .collect::<Vec<_>>())
    })
    .await
}

/// A group's answer: what runs (`live`, the instances and capacity) with what the
/// record says of its configuration.
pub(super) fn overlay(live: Value, record: &J) -> Value {
    let mut v = live;
    for key in [
        "LaunchTemplate",
        "DefaultCooldown",
        "TargetGroupARNs",
        "HealthCheckType",
        "HealthCheckGracePeriod",
        "CreatedTime",
        "VPCZoneIdentifier",
        "Tags",
        "TerminationPolicies",
        "NewInstancesProtectedFromScaleIn",
        "ServiceLinkedRoleARN",
        "CapacityRebalance",
        "MaxInstanceLifetime",
        "DefaultInstanceWarmup",
        "AvailabilityZones",
    ] {
        if !record[key].is_null() {
            v.set(key, member_from_json(key, &record[key]));
        }
    }
    v
}

/// A group that has no running counterpart yet (or no longer): its record alone.
pub(super) fn record_only(record: &J) -> Value {
    let mut v = from_json(record);
    v.set("Instances", Value::List(Vec::new()));
    v
}

// ---------------------------------------------------------------- policies

pub(super) async fn put_policy(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input().clone();
    let group = input.str("AutoScalingGroupName")?;
    let name = input.str("PolicyName")?;
    let kind = input
        .opt_str("PolicyType")?
        .unwrap_or_else(|| "SimpleScaling".to_owned());
    let arn = ctx.names().policy_arn(&group, &name);
    let mut body = json!({
        "AutoScalingGroupName": group,
        "PolicyName": name,
        "PolicyARN": arn,
        "PolicyType": kind,
        "Alarms": [],
        "Enabled": input.opt_bool("Enabled")?.unwrap_or(true),
    });
    let adjustment_type = || -> Result<String, AwsError> {
        let t = input
            .opt_str("AdjustmentType")?
            .unwrap_or_else(|| "ChangeInCapacity".to_owned());
        if ![
            "ChangeInCapacity",
            "ExactCapacity",
            "PercentChangeInCapacity",
        ]
        .contains(&t.as_str())
        {
            return Err(validation(format!("Invalid adjustment type {t}")));
        }
        Ok(t)
    };
    match kind.as_str() {
        "SimpleScaling" => {
            body["AdjustmentType"] = json!(adjustment_type()?);
            body["ScalingAdjustment"] = json!(input.opt_i64("ScalingAdjustment")?.ok_or_else(
                || validation("ScalingAdjustment is required for a simple scaling policy")
            )?);
            if let Some(c) = input.opt_i64("Cooldown")? {
                body["Cooldown"] = json!(c);
            }
            if let Some(m) = input.opt_i64("MinAdjustmentMagnitude")? {
                body["MinAdjustmentMagnitude"] = json!(m);
            }
        }
        "StepScaling" => {
            body["AdjustmentType"] = json!(adjustment_type()?);
            let mut steps = Vec::new();
            for s in input.list("StepAdjustments") {
                let mut step = json!({ "ScalingAdjustment": s.i64("ScalingAdjustment")? });
                if let Some(l) = s.opt_f64("MetricIntervalLowerBound")? {
                    step["MetricIntervalLowerBound"] = json!(l);
                }
                if let Some(u) = s.opt_f64("MetricIntervalUpperBound")? {
                    step["MetricIntervalUpperBound"] = json!(u);
                }
                steps.push(step);
            }
            if steps.is_empty() {
                return Err(validation(
                    "StepAdjustments is required for a step scaling policy",
                ));
            }
            body["StepAdjustments"] = J::Array(steps);
            body["MetricAggregationType"] = json!(
                input
                    .opt_str("MetricAggregationType")?
                    .unwrap_or_else(|| "Average".to_owned())
            );
            if let Some(m) = input.opt_i64("MinAdjustmentMagnitude")? {
                body["MinAdjustmentMagnitude"] = json!(m);
            }
            if let Some(w) = input.opt_i64("EstimatedInstanceWarmup")? {
                body["EstimatedInstanceWarmup"] = json!(w);
            }
        }
        "TargetTrackingScaling" => {
            let t = input.nested("TargetTrackingConfiguration");
            let p = t.nested("PredefinedMetricSpecification");
            let metric = p.opt_str("PredefinedMetricType")?.ok_or_else(|| {
                validation("bellows tracks predefined metrics: give PredefinedMetricSpecification")
            })?;
            let mut spec = json!({ "PredefinedMetricType": metric });
            if let Some(l) = p.opt_str("ResourceLabel")? {
                spec["ResourceLabel"] = json!(l);
            }
            body["TargetTrackingConfiguration"] = json!({
                "PredefinedMetricSpecification": spec,
                "TargetValue": t.f64("TargetValue")?,
                "DisableScaleIn": t.opt_bool("DisableScaleIn")?.unwrap_or(false),
            });
            if let Some(w) = input.opt_i64("EstimatedInstanceWarmup")? {
                body["EstimatedInstanceWarmup"] = json!(w);
            }
        }
        other => {
            return Err(validation(format!(
                "bellows runs SimpleScaling, StepScaling and TargetTrackingScaling policies, not {other}"
            )));
        }
    }
    put_for_group(ctx, POLICY, arn.clone(), body).await?;
    Ok(Value::object()
        .with("PolicyARN", arn)
        .with("Alarms", Value::List(Vec::new())))
}

/// DeletePolicy of a record policy; `None` when it is not a record's.
pub(super) async fn delete_policy(ctx: &Ctx<'_>) -> Result<Option<Value>, AwsError> {
    let input = ctx.input();
    let name = input.str("PolicyName")?;
    let group = input.opt_str("AutoScalingGroupName")?;
    let deleted = ctx
        .change(move |r| {
            let found = r
                .of(POLICY)
                .find(|p| {
                    p.id == name
                        || (p.body["PolicyName"] == name.as_str()
                            && group
                                .as_ref()
                                .is_none_or(|g| p.body["AutoScalingGroupName"] == g.as_str()))
                })
                .map(|p| p.id.clone());
            match found {
                Some(id) => {
                    r.delete(POLICY, &id)?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
        .await?;
    Ok(deleted.then(Value::object))
}

/// The record policies: (name, group, output).
pub(super) async fn policies(ctx: &Ctx<'_>) -> Result<Vec<(String, String, Value)>, AwsError> {
    let list = ctx
        .read(|r| {
            Ok(r.of(POLICY)
                .map(|p| {
                    (
                        p.body["PolicyName"].as_str().unwrap_or_default().to_owned(),
                        p.body["AutoScalingGroupName"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        p.body.clone(),
                    )
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(list
        .into_iter()
        .map(|(n, g, b)| (n, g, from_json(&b)))
        .collect())
}

// ---------------------------------------------------------------- scheduled actions

pub(super) async fn put_scheduled(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let group = input.str("AutoScalingGroupName")?;
    let name = input.str("ScheduledActionName")?;
    let arn = ctx.names().scheduled_action_arn(&group, &name);
    let mut body = json!({
        "AutoScalingGroupName": group,
        "ScheduledActionName": name,
        "ScheduledActionARN": arn,
    });
    let recurrence = input.opt_str("Recurrence")?;
    let zone = input.opt_str("TimeZone")?;
    if let Some(r) = &recurrence {
        bellows_core::schedule::Cron::parse(r, zone.as_deref().unwrap_or("UTC"))
            .map_err(|e| validation(format!("Recurrence {r}: {e}")))?;
        body["Recurrence"] = json!(r);
    }
    if let Some(z) = zone {
        body["TimeZone"] = json!(z);
    }
    for k in ["StartTime", "EndTime", "Time"] {
        if let Some(t) = input.opt_time(k)? {
            body[k] = json!(t);
        }
    }
    // A one-time action runs once at its time, which must be ahead (as AWS refuses
    // one in the past); a recurring one runs on its recurrence from its StartTime.
    let now = crate::clock::now().as_millis() as f64 / 1000.0;
    if recurrence.is_none() {
        match body["StartTime"].as_f64().or(body["Time"].as_f64()) {
            Some(t) if t < now => return Err(validation("Given start time is in the past")),
            Some(_) => {}
            None => {
                return Err(validation(
                    "A scheduled action needs a Recurrence, or a StartTime to run once",
                ));
            }
        }
    }
    if let (Some(s), Some(e)) = (body["StartTime"].as_f64(), body["EndTime"].as_f64())
        && e <= s
    {
        return Err(validation("The end time must be after the start time"));
    }
    let mut any = false;
    for k in ["MinSize", "MaxSize", "DesiredCapacity"] {
        if let Some(n) = input.opt_i64(k)? {
            body[k] = json!(n);
            any = true;
        }
    }
    if !any {
        return Err(validation(
            "A scheduled action must set at least one of MinSize, MaxSize and DesiredCapacity",
        ));
    }
    put_for_group(ctx, SCHEDULED, arn, body).await?;
    Ok(Value::object())
}

/// Puts the record `kind`/`arn` of the group its body names (a policy, a scheduled
/// action), unless it is there as it is; the group must be one of the records.
async fn put_for_group(
    ctx: &Ctx<'_>,
    kind: &'static str,
    arn: String,
    body: J,
) -> Result<(), AwsError> {
    ctx.change(move |r| {
        let g = body["AutoScalingGroupName"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !r.contains(GROUP, &g) {
            return Err(group_not_found(&g));
        }
        if r.get(kind, &arn) != Some(&body) {
            r.put(kind, &arn, body)?;
        }
        Ok(())
    })
    .await
}

pub(super) async fn delete_scheduled(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let group = input.str("AutoScalingGroupName")?;
    let name = input.str("ScheduledActionName")?;
    let arn = ctx.names().scheduled_action_arn(&group, &name);
    ctx.change(move |r| {
        if r.delete(SCHEDULED, &arn)?.is_none() {
            return Err(validation(format!(
                "Scheduled Update Group Action name not found - Could not find scheduled action {name} for AutoScalingGroup {group}"
            )));
        }
        Ok(())
    })
    .await?;
    Ok(Value::object())
}

/// The record scheduled actions: (name, group, output).
pub(super) async fn scheduled(ctx: &Ctx<'_>) -> Result<Vec<(String, String, Value)>, AwsError> {
    let list = ctx
        .read(|r| {
            Ok(r.of(SCHEDULED)
                .map(|p| {
                    (
                        p.body["ScheduledActionName"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        p.body["AutoScalingGroupName"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        p.body.clone(),
                    )
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(list
        .into_iter()
        .map(|(n, g, b)| (n, g, from_json(&b)))
        .collect())
}

// ---------------------------------------------------------------- tags

async fn change_tags(ctx: &Ctx<'_>, delete: bool) -> Result<Value, AwsError> {
    let input = ctx.input();
    let mut tags = Vec::new();
    for t in input.list("Tags") {
        let group = t.str("ResourceId")?;
        tags.push((
            group.clone(),
            tags_in(
                &Input::new(
                    Value::object().with("Tags", Value::List(vec![t.root().clone()])),
                    "ValidationError",
                    "ValidationError",
                ),
                &group,
            )?,
        ));
    }
    ctx.change(move |r| {
        for (group, new) in tags {
            let mut body = r
                .get(GROUP, &group)
                .cloned()
                .ok_or_else(|| group_not_found(&group))?;
            let mut list: Vec<J> = body["Tags"].as_array().cloned().unwrap_or_default();
            for t in new {
                list.retain(|x| x["Key"] != t["Key"]);
                if !delete {
                    list.push(t);
                }
            }
            body["Tags"] = J::Array(list);
            r.put(GROUP, &group, body)?;
        }
        Ok(())
    })
    .await?;
    Ok(Value::object())
}

pub(super) async fn create_or_update_tags(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    change_tags(ctx, false).await
}

pub(super) async fn delete_tags(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    change_tags(ctx, true).await
}

pub(super) async fn describe_tags(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let mut groups: Vec<String> = Vec::new();
    for f in ctx.input().list("Filters") {
        if f.str("Name")? == "auto-scaling-group" {
            groups.extend(f.strings("Values")?);
        }
    }
    let tags = ctx
        .read(move |r| {
            Ok(r.of(GROUP)
                .filter(|g| groups.is_empty() || groups.contains(&g.id))
                .flat_map(|g| g.body["Tags"].as_array().cloned().unwrap_or_default())
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(Value::object().with("Tags", Value::List(tags.iter().map(from_json).collect())))
}
