//! EC2 Auto Scaling (2011-01-01) on the stack's groups.

use bellows_aws::{AwsError, Value};
use bellows_core::group::{Activity, ActivityStatus, Health, Lifecycle, Refresh, RefreshStatus};
use bellows_core::ids::InstanceId;
use bellows_core::scaling::{AdjustmentType, PolicyKind, PolicySpec, TrackedMetric};

use super::{Ctx, NEXT_TOKEN, Paging, from_api, page, time};
use crate::api::{Call, GroupView, InstanceView, StatusView};

mod resources;

pub(super) async fn handle(ctx: &Ctx<'_>, action: &str) -> Option<Result<Value, AwsError>> {
    Some(match action {
        "DescribeAutoScalingGroups" => describe_groups(ctx).await,
        "DescribeAutoScalingInstances" => describe_instances(ctx).await,
        "DescribeScalingActivities" => describe_activities(ctx).await,
        "SetDesiredCapacity" => set_desired(ctx).await,
        "UpdateAutoScalingGroup" => update_group(ctx).await,
        "TerminateInstanceInAutoScalingGroup" => terminate(ctx).await,
        "SetInstanceHealth" => set_health(ctx).await,
        "SetInstanceProtection" => set_protection(ctx).await,
        "StartInstanceRefresh" => start_refresh(ctx).await,
        "DescribeInstanceRefreshes" => describe_refreshes(ctx).await,
        "CancelInstanceRefresh" => cancel_refresh(ctx).await,
        "DescribePolicies" => describe_policies(ctx).await,
        "DescribeScheduledActions" => describe_scheduled_actions(ctx).await,
        "ExecutePolicy" => execute_policy(ctx).await,
        "CreateAutoScalingGroup" => resources::create_group(ctx).await,
        "DeleteAutoScalingGroup" => delete_group(ctx).await,
        "PutScalingPolicy" => resources::put_policy(ctx).await,
        "DeletePolicy" => delete_policy(ctx).await,
        "PutScheduledUpdateGroupAction" => resources::put_scheduled(ctx).await,
        "DeleteScheduledAction" => resources::delete_scheduled(ctx).await,
        "CreateOrUpdateTags" => resources::create_or_update_tags(ctx).await,
        "DeleteTags" => resources::delete_tags(ctx).await,
        "DescribeTags" => resources::describe_tags(ctx).await,
        _ => return None,
    })
}

fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ValidationError", message)
}

fn group_not_found(name: &str) -> AwsError {
    validation(format!(
        "AutoScalingGroup name not found - AutoScalingGroup '{name}' not found"
    ))
}

fn instance_not_found(id: &str) -> AwsError {
    validation(format!(
        "Instance Id not found - No managed instance found for instance ID: {id}"
    ))
}

fn instance_id(raw: &str) -> Result<InstanceId, AwsError> {
    InstanceId::parse(raw).ok_or_else(|| instance_not_found(raw))
}

fn lifecycle(l: Lifecycle) -> &'static str {
    match l {
        Lifecycle::Pending => "Pending",
        Lifecycle::InService => "InService",
        Lifecycle::Terminating => "Terminating",
        Lifecycle::Terminated => "Terminated",
    }
}

fn health(h: Health) -> &'static str {
    match h {
        Health::Healthy => "Healthy",
        Health::Unhealthy => "Unhealthy",
    }
}

/// A group's spec as the running stack understood it (cooldown, grace period).
async fn stack(ctx: &Ctx<'_>) -> Result<serde_json::Value, AwsError> {
    ctx.ask(Call::Stack).await
}

/// Seconds of a duration the stack JSON writes as `180s`.
fn seconds(v: &serde_json::Value) -> Option<i64> {
    let d: bellows_core::Duration = v.as_str()?.parse().ok()?;
    Some((d.as_millis() / 1000) as i64)
}

fn group_spec<'a>(stack: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    stack["groups"]
        .as_array()?
        .iter()
        .find(|g| g["name"] == name)
}

fn group_value(
    ctx: &Ctx<'_>,
    g: &GroupView,
    spec: Option<&serde_json::Value>,
    instances: &[InstanceView],
    started: bellows_core::Time,
) -> Value {
    let names = ctx.names();
    let json_str = |v: serde_json::Value| v.as_str().map(str::to_owned);
    let members: Vec<Value> = instances
        .iter()
        .filter(|i| i.group == g.name && i.lifecycle != Lifecycle::Terminated)
        .map(|i| {
            Value::object()
                .with("InstanceId", i.id.to_string())
                .with("InstanceType", i.instance_type.as_str())
                .with("AvailabilityZone", i.zone.as_str())
                .with("LifecycleState", lifecycle(i.lifecycle))
                .with("HealthStatus", health(i.health))
                .with("ProtectedFromScaleIn", i.protected)
        })
        .collect();
    let policy = json_str(serde_json::json!(g.termination_policy)).unwrap_or_default();
    Value::object()
        .with("AutoScalingGroupName", g.name.as_str())
        .with("AutoScalingGroupARN", names.group_arn(&g.name))
        .with("MinSize", g.min)
        .with("MaxSize", g.max)
        .with("DesiredCapacity", g.desired)
        .with(
            "DefaultCooldown",
            spec.and_then(|s| seconds(&s["default_cooldown"]))
                .unwrap_or(300),
        )
        .with("AvailabilityZones", g.zones.clone())
        .with("LoadBalancerNames", Value::List(Vec::new()))
        .with(
            "TargetGroupARNs",
            g.target_groups
                .iter()
                .map(|t| names.target_group_arn(t))
                .collect::<Vec<_>>(),
        )
        .with(
            "HealthCheckType",
            json_str(serde_json::json!(g.health_check_type)),
        )
        .with(
            "HealthCheckGracePeriod",
            spec.and_then(|s| seconds(&s["health_check_grace_period"])),
        )
        .with("Instances", Value::List(members))
        .with("CreatedTime", time(started))
        .with("SuspendedProcesses", Value::List(Vec::new()))
        .with(
            "VPCZoneIdentifier",
            g.zones
                .iter()
                .map(|z| names.subnet_id(z))
                .collect::<Vec<_>>()
                .join(","),
        )
        .with("EnabledMetrics", Value::List(Vec::new()))
        .with("Tags", Value::List(Vec::new()))
        .with("TerminationPolicies", vec![policy])
        .with("NewInstancesProtectedFromScaleIn", false)
        .with("CapacityRebalance", false)
        .with(
            "DefaultInstanceWarmup",
            spec.and_then(|s| seconds(&s["default_instance_warmup"])),
        )
}

async fn status(ctx: &Ctx<'_>) -> Result<StatusView, AwsError> {
    ctx.ask(Call::Status).await
}

async fn describe_groups(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let wanted = ctx.input().strings("AutoScalingGroupNames")?;
    let status = status(ctx).await?;
    let instances = ctx.ask(Call::Instances).await?;
    let stack = stack(ctx).await?;
    let records = resources::groups(ctx).await?;
    // Unknown names are left out, as AWS does: the answer is a list, not an error.
    let mut groups: Vec<Value> = status
        .groups
        .iter()
        .filter(|g| wanted.is_empty() || wanted.contains(&g.name))
        .map(|g| {
            let live = group_value(
                ctx,
                g,
                group_spec(&stack, &g.name),
                &instances,
                status.started_at,
            );
            match records.iter().find(|(n, _)| *n == g.name) {
                Some((_, r)) => resources::overlay(live, r),
                None => live,
            }
        })
        .collect();
    // A group whose record is not running (yet).
    for (name, body) in &records {
        if (wanted.is_empty() || wanted.contains(name))
            && !status.groups.iter().any(|g| g.name == *name)
        {
            groups.push(resources::record_only(body));
        }
    }
    let mut out = Value::object();
    page(ctx, &NEXT_TOKEN, groups, &mut out, "AutoScalingGroups")?;
    Ok(out)
}

async fn describe_instances(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let wanted = ctx.input().strings("InstanceIds")?;
    let instances = ctx.ask(Call::Instances).await?;
    let list: Vec<Value> = instances
        .iter()
        .filter(|i| i.lifecycle != Lifecycle::Terminated)
        .filter(|i| wanted.is_empty() || wanted.contains(&i.id.to_string()))
        .map(|i| {
            Value::object()
                .with("InstanceId", i.id.to_string())
                .with("InstanceType", i.instance_type.as_str())
                .with("AutoScalingGroupName", i.group.as_str())
                .with("AvailabilityZone", i.zone.as_str())
                .with("LifecycleState", lifecycle(i.lifecycle))
                .with("HealthStatus", health(i.health).to_uppercase())
                .with("ProtectedFromScaleIn", i.protected)
        })
        .collect();
    let mut out = Value::object();
    page(ctx, &NEXT_TOKEN, list, &mut out, "AutoScalingInstances")?;
    Ok(out)
}

fn activity_value(ctx: &Ctx<'_>, a: &Activity) -> Value {
    let code = match a.status {
        ActivityStatus::InProgress => "InProgress",
        ActivityStatus::Successful => "Successful",
        ActivityStatus::Failed => "Failed",
    };
    Value::object()
        .with("ActivityId", a.id.as_str())
        .with("AutoScalingGroupName", a.group.as_str())
        .with("Description", a.description.as_str())
        .with("Cause", a.cause.as_str())
        .with("StartTime", time(a.start))
        .with("EndTime", a.end.map(time))
        .with("StatusCode", code)
        .with("StatusMessage", a.status_message.clone())
        .with(
            "Progress",
            if a.status == ActivityStatus::InProgress {
                50i64
            } else {
                100
            },
        )
        .with("AutoScalingGroupARN", ctx.names().group_arn(&a.group))
}

async fn describe_activities(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let group = input.opt_str("AutoScalingGroupName")?;
    let ids = input.strings("ActivityIds")?;
    if let Some(g) = &group {
        let status = status(ctx).await?;
        if !status.groups.iter().any(|x| &x.name == g) {
            return Err(group_not_found(g));
        }
    }
    let activities = ctx
        .ask(|reply| Call::Activities {
            group: group.clone(),
            limit: 10_000,
            reply,
        })
        .await?
        .map_err(|e| from_api(e, "ValidationError", "ValidationError"))?;
    let list: Vec<Value> = activities
        .iter()
        .filter(|a| ids.is_empty() || ids.contains(&a.id))
        .map(|a| activity_value(ctx, a))
        .collect();
    let mut out = Value::object();
    let paging = Paging {
        default: 100,
        ..NEXT_TOKEN
    };
    page(ctx, &paging, list, &mut out, "Activities")?;
    Ok(out)
}

async fn set_capacity(
    ctx: &Ctx<'_>,
    group: String,
    min: Option<u32>,
    max: Option<u32>,
    desired: Option<u32>,
) -> Result<(), AwsError> {
    let actor = ctx.actor();
    let g = group.clone();
    ctx.ask(|reply| Call::SetCapacity {
        group: g,
        min,
        max,
        desired,
        actor,
        reply,
    })
    .await?
    .map(|_| ())
    .map_err(|e| {
        if e.status == 404 {
            group_not_found(&group)
        } else {
            from_api(e, "ValidationError", "ValidationError")
        }
    })
}

async fn set_desired(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let group = input.str("AutoScalingGroupName")?;
    let desired = input.u32("DesiredCapacity")?;
    set_capacity(ctx, group, None, None, Some(desired)).await?;
    Ok(Value::Null)
}

/// The members of UpdateAutoScalingGroup that change nothing bellows can change here;
/// given, they are refused rather than silently ignored.
const NOT_UPDATABLE: [&str; 8] = [
    "LaunchConfigurationName",
    "LaunchTemplate",
    "MixedInstancesPolicy",
    "AvailabilityZones",
    "HealthCheckType",
    "VPCZoneIdentifier",
    "TerminationPolicies",
    "DefaultCooldown",
];

async fn update_group(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    if let Some(v) = resources::update_group(ctx).await? {
        return Ok(v);
    }
    let input = ctx.input();
    let group = input.str("AutoScalingGroupName")?;
    if let Some(name) = NOT_UPDATABLE.iter().find(|n| input.get(n).is_some()) {
        return Err(validation(format!(
            "bellows changes {name} through the stack file (`bellows apply`), not UpdateAutoScalingGroup"
        )));
    }
    let min = input.opt_u32("MinSize")?;
    let max = input.opt_u32("MaxSize")?;
    let desired = input.opt_u32("DesiredCapacity")?;
    if min.is_none() && max.is_none() && desired.is_none() {
        // Nothing to change, but the group must exist.
        let status = status(ctx).await?;
        if !status.groups.iter().any(|g| g.name == group) {
            return Err(group_not_found(&group));
        }
        return Ok(Value::Null);
    }
    set_capacity(ctx, group, min, max, desired).await?;
    Ok(Value::Null)
}

/// DeleteAutoScalingGroup: a group made through this endpoint (a stack file's groups
/// go with `bellows apply`).
async fn delete_group(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let group = ctx.input().str("AutoScalingGroupName")?;
    let instances = ctx.ask(Call::Instances).await?;
    let live = instances
        .iter()
        .filter(|i| i.group == group && i.lifecycle != Lifecycle::Terminated)
        .count();
    if let Some(v) = resources::delete_group(ctx, live).await? {
        return Ok(v);
    }
    let status = status(ctx).await?;
    if status.groups.iter().any(|g| g.name == group) {
        return Err(validation(format!(
            "group {group} belongs to the stack file: remove it there and `bellows apply`"
        )));
    }
    Err(group_not_found(&group))
}

/// DeletePolicy: a policy made through this endpoint (a stack file's go with
/// `bellows apply`).
async fn delete_policy(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    if let Some(v) = resources::delete_policy(ctx).await? {
        return Ok(v);
    }
    let name = ctx.input().str("PolicyName")?;
    Err(validation(format!(
        "Policy name not found - policy {name} is not one made through the AWS endpoint"
    )))
}

async fn terminate(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let raw = input.str("InstanceId")?;
    let decrement = input
        .opt_bool("ShouldDecrementDesiredCapacity")?
        .ok_or_else(|| {
            validation("1 validation error detected: Value null at 'shouldDecrementDesiredCapacity' failed to satisfy constraint: Member must not be null")
        })?;
    let instance = instance_id(&raw)?;
    let instances = ctx.ask(Call::Instances).await?;
    let Some(view) = instances
        .iter()
        .find(|i| i.id == instance && i.lifecycle != Lifecycle::Terminated)
    else {
        return Err(instance_not_found(&raw));
    };
    let group = view.group.clone();
    let actor = ctx.actor();
    let id = instance.clone();
    ctx.ask(|reply| Call::Terminate {
        instance: id,
        decrement,
        actor,
        reply,
    })
    .await?
    .map_err(|e| instance_error(e, &raw))?;
    let now = crate::clock::now();
    let activity = Value::object()
        .with(
            "ActivityId",
            ctx.names().refresh_id(&group, now.as_millis() ^ 0x7e51),
        )
        .with("AutoScalingGroupName", group.as_str())
        .with("Description", format!("Terminating EC2 instance: {raw}"))
        .with(
            "Cause",
            format!(
                "At {} instance {raw} was taken out of service in response to a user request{}.",
                bellows_aws::format_time(now.as_millis() as f64 / 1000.0),
                if decrement {
                    ", shrinking the capacity"
                } else {
                    ""
                }
            ),
        )
        .with("StartTime", time(now))
        .with("StatusCode", "InProgress")
        .with("Progress", 0i64)
        .with("AutoScalingGroupARN", ctx.names().group_arn(&group));
    Ok(Value::object().with("Activity", activity))
}

async fn set_health(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let raw = input.str("InstanceId")?;
    let health = match input.str("HealthStatus")?.as_str() {
        "Healthy" => Health::Healthy,
        "Unhealthy" => Health::Unhealthy,
        other => {
            return Err(validation(format!(
                "HealthStatus must be Healthy or Unhealthy, not {other}"
            )));
        }
    };
    let instance = instance_id(&raw)?;
    let actor = ctx.actor();
    ctx.ask(|reply| Call::SetHealth {
        instance,
        health,
        actor,
        reply,
    })
    .await?
    .map_err(|e| instance_error(e, &raw))?;
    Ok(Value::Null)
}

async fn set_protection(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let group = input.str("AutoScalingGroupName")?;
    let ids = input.strings("InstanceIds")?;
    let protected = input
        .opt_bool("ProtectedFromScaleIn")?
        .ok_or_else(|| validation("ProtectedFromScaleIn must be given"))?;
    if ids.is_empty() {
        return Err(validation("InstanceIds must name at least one instance"));
    }
    let instances = ctx.ask(Call::Instances).await?;
    let status = status(ctx).await?;
    if !status.groups.iter().any(|g| g.name == group) {
        return Err(group_not_found(&group));
    }
    // Check every instance first, so that a bad one changes nothing.
    let mut checked = Vec::new();
    for raw in &ids {
        let id = instance_id(raw)?;
        if !instances
            .iter()
            .any(|i| i.id == id && i.group == group && i.lifecycle != Lifecycle::Terminated)
        {
            return Err(validation(format!(
                "The instance {raw} is not part of Auto Scaling group {group}."
            )));
        }
        checked.push(id);
    }
    for instance in checked {
        let actor = ctx.actor();
        let raw = instance.to_string();
        ctx.ask(|reply| Call::SetProtection {
            instance,
            protected,
            actor,
            reply,
        })
        .await?
        .map_err(|e| instance_error(e, &raw))?;
    }
    Ok(Value::object())
}

/// A call on one instance refused by the loop: an instance it does not know is Auto
/// Scaling's not-found ValidationError, the rest as the API said.
fn instance_error(e: crate::api::ApiError, raw: &str) -> AwsError {
    if e.status == 404 {
        instance_not_found(raw)
    } else {
        from_api(e, "ValidationError", "ValidationError")
    }
}

fn refresh_error(e: crate::api::ApiError, group: &str, starting: bool) -> AwsError {
    match e.status {
        404 if e.message.contains("group") => group_not_found(group),
        404 | 409 if !starting => AwsError::new(
            400,
            "ActiveInstanceRefreshNotFound",
            format!(
                "No in progress or pending Instance Refresh found for Auto Scaling group {group}"
            ),
        ),
        409 if starting => AwsError::new(
            400,
            "InstanceRefreshInProgress",
            format!(
                "An Instance Refresh is already in progress and blocks the execution of this Instance Refresh. ({})",
                e.message
            ),
        ),
        _ => from_api(e, "ValidationError", "ValidationError"),
    }
}

async fn start_refresh(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let group = input.str("AutoScalingGroupName")?;
    if let Some(strategy) = input.opt_str("Strategy")?
        && strategy != "Rolling"
    {
        return Err(validation(format!(
            "Strategy {strategy} is not supported: bellows refreshes with Rolling"
        )));
    }
    let prefs = input.nested("Preferences");
    let min_healthy = prefs.opt_u32("MinHealthyPercentage")?;
    if min_healthy.is_some_and(|p| p > 100) {
        return Err(validation("MinHealthyPercentage must be between 0 and 100"));
    }
    let warmup = prefs
        .opt_u32("InstanceWarmup")?
        .map(|s| bellows_core::Duration::from_secs(u64::from(s)));
    let status = status(ctx).await?;
    if !status.groups.iter().any(|g| g.name == group) {
        return Err(group_not_found(&group));
    }
    let actor = ctx.actor();
    let g = group.clone();
    let refresh = ctx
        .ask(|reply| Call::StartRefresh {
            group: g,
            min_healthy_percentage: min_healthy,
            warmup,
            actor,
            reply,
        })
        .await?
        .map_err(|e| refresh_error(e, &group, true))?;
    Ok(Value::object().with("InstanceRefreshId", refresh.id))
}

fn refresh_value(r: &Refresh) -> Value {
    let status = match r.status {
        RefreshStatus::InProgress => "InProgress",
        RefreshStatus::Successful => "Successful",
        RefreshStatus::Cancelled => "Cancelled",
    };
    Value::object()
        .with("InstanceRefreshId", r.id.as_str())
        .with("AutoScalingGroupName", r.group.as_str())
        .with("Status", status)
        .with("StatusReason", r.status_reason.as_str())
        .with("StartTime", time(r.start))
        .with("EndTime", r.end.map(time))
        .with("PercentageComplete", r.percentage_complete)
        .with("InstancesToUpdate", r.remaining.len())
        .with(
            "Preferences",
            Value::object()
                .with("MinHealthyPercentage", r.min_healthy_percentage)
                .with("InstanceWarmup", (r.warmup.as_millis() / 1000) as i64)
                .with("SkipMatching", false)
                .with("AutoRollback", false),
        )
        .with("Strategy", "Rolling")
}

async fn describe_refreshes(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let group = input.str("AutoScalingGroupName")?;
    let ids = input.strings("InstanceRefreshIds")?;
    let g = group.clone();
    let refresh = ctx
        .ask(|reply| Call::Refresh { group: g, reply })
        .await?
        .map_err(|e| {
            if e.status == 404 {
                group_not_found(&group)
            } else {
                from_api(e, "ValidationError", "ValidationError")
            }
        })?;
    // bellows keeps a group's current or last refresh: the list holds that one.
    let list: Vec<Value> = refresh
        .iter()
        .filter(|r| ids.is_empty() || ids.contains(&r.id))
        .map(refresh_value)
        .collect();
    Ok(Value::object().with("InstanceRefreshes", Value::List(list)))
}

async fn cancel_refresh(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let group = ctx.input().str("AutoScalingGroupName")?;
    let actor = ctx.actor();
    let g = group.clone();
    let refresh = ctx
        .ask(|reply| Call::CancelRefresh {
            group: g,
            actor,
            reply,
        })
        .await?
        .map_err(|e| refresh_error(e, &group, false))?;
    Ok(Value::object().with("InstanceRefreshId", refresh.id))
}

fn adjustment_type(t: &AdjustmentType) -> &'static str {
    match t {
        AdjustmentType::ChangeInCapacity => "ChangeInCapacity",
        AdjustmentType::ExactCapacity => "ExactCapacity",
        AdjustmentType::PercentChangeInCapacity => "PercentChangeInCapacity",
    }
}

/// The policy in AWS's shape, or `None` for the kinds AWS does not have (HPA, KPA and
/// bellows' predictive policy run on their own clocks and are not scaling policies).
fn policy_value(ctx: &Ctx<'_>, p: &PolicySpec, alarms: &[(String, Vec<String>)]) -> Option<Value> {
    let names = ctx.names();
    let mut v = Value::object()
        .with("AutoScalingGroupName", p.group.as_str())
        .with("PolicyName", p.name.as_str())
        .with("PolicyARN", names.policy_arn(&p.group, &p.name));
    let secs = |d: &bellows_core::Duration| (d.as_millis() / 1000) as i64;
    match &p.kind {
        PolicyKind::Simple {
            adjustment_type: t,
            adjustment,
            cooldown,
            min_adjustment_magnitude,
        } => {
            v = v
                .with("PolicyType", "SimpleScaling")
                .with("AdjustmentType", adjustment_type(t))
                .with("ScalingAdjustment", *adjustment)
                .with("Cooldown", cooldown.as_ref().map(secs))
                .with("MinAdjustmentMagnitude", *min_adjustment_magnitude);
        }
        PolicyKind::Step {
            adjustment_type: t,
            steps,
            min_adjustment_magnitude,
            warmup,
        } => {
            let steps: Vec<Value> = steps
                .iter()
                .map(|s| {
                    Value::object()
                        .with("MetricIntervalLowerBound", s.lower)
                        .with("MetricIntervalUpperBound", s.upper)
                        .with("ScalingAdjustment", s.adjustment)
                })
                .collect();
            v = v
                .with("PolicyType", "StepScaling")
                .with("AdjustmentType", adjustment_type(t))
                .with("MinAdjustmentMagnitude", *min_adjustment_magnitude)
                .with("StepAdjustments", Value::List(steps))
                .with("MetricAggregationType", "Average")
                .with("EstimatedInstanceWarmup", warmup.as_ref().map(secs));
        }
        PolicyKind::TargetTracking {
            metric,
            target,
            disable_scale_in,
            warmup,
            ..
        } => {
            let mut config = Value::object();
            match metric {
                TrackedMetric::AsgAverageCpuUtilization => config.set(
                    "PredefinedMetricSpecification",
                    Value::object().with("PredefinedMetricType", "ASGAverageCPUUtilization"),
                ),
                TrackedMetric::AlbRequestCountPerTarget { target_group } => {
                    let lb = names.load_balancer_arn(&load_balancer_name(ctx));
                    let tg = names.target_group_arn(target_group);
                    let label = format!(
                        "{}/{}",
                        lb.split(":loadbalancer/").nth(1).unwrap_or_default(),
                        tg.split(':').nth(5).unwrap_or_default()
                    );
                    config.set(
                        "PredefinedMetricSpecification",
                        Value::object()
                            .with("PredefinedMetricType", "ALBRequestCountPerTarget")
                            .with("ResourceLabel", label),
                    );
                }
                TrackedMetric::Custom { metric, statistic } => config.set(
                    "CustomizedMetricSpecification",
                    Value::object()
                        .with("MetricName", metric.name.as_str())
                        .with("Namespace", metric.namespace.as_str())
                        .with(
                            "Dimensions",
                            Value::List(
                                metric
                                    .dimensions
                                    .iter()
                                    .map(|(k, v)| {
                                        Value::object()
                                            .with("Name", k.as_str())
                                            .with("Value", v.as_str())
                                    })
                                    .collect(),
                            ),
                        )
                        .with("Statistic", statistic.to_string()),
                ),
            }
            config.set("TargetValue", *target);
            config.set("DisableScaleIn", *disable_scale_in);
            v = v
                .with("PolicyType", "TargetTrackingScaling")
                .with("EstimatedInstanceWarmup", warmup.as_ref().map(secs))
                .with("TargetTrackingConfiguration", config);
        }
        PolicyKind::Hpa(_) | PolicyKind::Kpa(_) | PolicyKind::Predictive(_) => return None,
    }
    let alarms: Vec<Value> = alarms
        .iter()
        .filter(|(_, actions)| actions.contains(&p.name))
        .map(|(a, _)| {
            Value::object()
                .with("AlarmName", a.as_str())
                .with("AlarmARN", names.alarm_arn(a))
        })
        .collect();
    Some(v.with("Alarms", Value::List(alarms)).with("Enabled", true))
}

/// The load balancer is named after the stack; the ARN seed is the stack's name too.
fn load_balancer_name(ctx: &Ctx<'_>) -> String {
    ctx.face.load_balancer.clone()
}

async fn describe_policies(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let group = input.opt_str("AutoScalingGroupName")?;
    let wanted = input.strings("PolicyNames")?;
    let types = input.strings("PolicyTypes")?;
    let stack = stack(ctx).await?;
    if let Some(g) = &group
        && group_spec(&stack, g).is_none()
    {
        return Err(group_not_found(g));
    }
    let policies: Vec<PolicySpec> = serde_json::from_value(stack["policies"].clone())
        .map_err(|e| AwsError::new(500, "InternalFailure", format!("the stack's policies: {e}")))?;
    let alarms: Vec<(String, Vec<String>)> = stack["alarms"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|a| {
                    let actions = a["alarm_actions"]
                        .as_array()
                        .map(|x| {
                            x.iter()
                                .filter_map(|s| s.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    (a["name"].as_str().unwrap_or_default().to_owned(), actions)
                })
                .collect()
        })
        .unwrap_or_default();
    let records = resources::policies(ctx).await?;
    let mut all: Vec<Value> = records
        .iter()
        .filter(|(_, g, _)| group.as_ref().is_none_or(|x| x == g))
        .filter(|(n, _, _)| wanted.is_empty() || wanted.contains(n))
        .map(|(_, _, v)| v.clone())
        .collect();
    all.extend(
        policies
            .iter()
            .filter(|p| {
                !records
                    .iter()
                    .any(|(n, g, _)| *n == p.name && *g == p.group)
            })
            .filter(|p| group.as_ref().is_none_or(|g| *g == p.group))
            .filter(|p| wanted.is_empty() || wanted.contains(&p.name))
            .filter_map(|p| policy_value(ctx, p, &alarms)),
    );
    let list: Vec<Value> = all
        .into_iter()
        .filter(|v| {
            types.is_empty()
                || v.get("PolicyType")
                    .and_then(Value::as_str)
                    .is_some_and(|t| types.contains(&t))
        })
        .collect();
    let mut out = Value::object();
    page(ctx, &NEXT_TOKEN, list, &mut out, "ScalingPolicies")?;
    Ok(out)
}

async fn describe_scheduled_actions(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let group = input.opt_str("AutoScalingGroupName")?;
    let wanted = input.strings("ScheduledActionNames")?;
    let stack = stack(ctx).await?;
    if let Some(g) = &group
        && group_spec(&stack, g).is_none()
    {
        return Err(group_not_found(g));
    }
    let records = resources::scheduled(ctx).await?;
    let mut list: Vec<Value> = stack["scheduled"]
        .as_array()
        .map(|l| l.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|a| group.as_ref().is_none_or(|g| a["group"] == g.as_str()))
        .filter(|a| wanted.is_empty() || wanted.iter().any(|w| a["name"] == w.as_str()))
        .filter(|a| {
            !records
                .iter()
                .any(|(n, g, _)| a["name"] == n.as_str() && a["group"] == g.as_str())
        })
        .map(|a| {
            let g = a["group"].as_str().unwrap_or_default();
            let n = a["name"].as_str().unwrap_or_default();
            let num = |k: &str| a[k].as_u64().map(|x| x as i64);
            // The stack writes the five cron fields, then the zone (`0 2 * * * UTC`).
            let fields: Vec<&str> = a["cron"]
                .as_str()
                .unwrap_or_default()
                .split_whitespace()
                .collect();
            let recurrence = fields.iter().take(5).copied().collect::<Vec<_>>().join(" ");
            let zone = fields.get(5).map(|z| (*z).to_owned());
            Value::object()
                .with("AutoScalingGroupName", g)
                .with("ScheduledActionName", n)
                .with("ScheduledActionARN", ctx.names().scheduled_action_arn(g, n))
                .with("Recurrence", recurrence)
                .with("MinSize", num("min"))
                .with("MaxSize", num("max"))
                .with("DesiredCapacity", num("desired"))
                .with("TimeZone", zone)
        })
        .collect();
    list.extend(
        records
            .into_iter()
            .filter(|(_, g, _)| group.as_ref().is_none_or(|x| x == g))
            .filter(|(n, _, _)| wanted.is_empty() || wanted.contains(n))
            .map(|(_, _, v)| v),
    );
    let mut out = Value::object();
    page(
        ctx,
        &NEXT_TOKEN,
        list,
        &mut out,
        "ScheduledUpdateGroupActions",
    )?;
    Ok(out)
}

async fn execute_policy(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let group = input.opt_str("AutoScalingGroupName")?;
    let raw = input.str("PolicyName")?;
    // A policy ARN ends in `:policyName/NAME`.
    let policy = raw
        .rsplit_once(":policyName/")
        .map_or(raw.as_str(), |(_, n)| n)
        .to_owned();
    let stack = stack(ctx).await?;
    let owner = stack["policies"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == policy.as_str()))
        .and_then(|p| p["group"].as_str())
        .map(str::to_owned);
    let not_found = || validation(format!("No scaling policy {policy} found"));
    let Some(owner) = owner else {
        return Err(not_found());
    };
    if let Some(g) = &group {
        if group_spec(&stack, g).is_none() {
            return Err(group_not_found(g));
        }
        if *g != owner {
            return Err(not_found());
        }
    }
    let honor_cooldown = input.opt_bool("HonorCooldown")?.unwrap_or(false);
    let metric_value = input.opt_f64("MetricValue")?;
    let breach_threshold = input.opt_f64("BreachThreshold")?;
    let actor = ctx.actor();
    let p = policy.clone();
    ctx.ask(|reply| Call::ExecutePolicy {
        policy: p,
        honor_cooldown,
        metric_value,
        breach_threshold,
        actor,
        reply,
    })
    .await?
    .map_err(|e| match e.status {
        404 => not_found(),
        409 => AwsError::new(
            400,
            "ScalingActivityInProgress",
            format!("Policy {policy} is in its cooldown period: it cannot be executed with HonorCooldown"),
        ),
        _ => from_api(e, "ValidationError", "ValidationError"),
    })?;
    Ok(Value::Null)
}
