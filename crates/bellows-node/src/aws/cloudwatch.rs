//! CloudWatch (2010-08-01): custom metrics into the same store the alarms and the
//! dashboard read, the metric list, and the stack's alarms with their history.

use std::collections::BTreeMap;

use bellows_aws::{AwsError, Value};
use bellows_core::alarm::AlarmState;

use super::{Ctx, NEXT_TOKEN, Paging, from_api, page, time};
use crate::api::{Call, MetricDatum, MetricQuery};

pub(super) async fn handle(ctx: &Ctx<'_>, action: &str) -> Option<Result<Value, AwsError>> {
    Some(match action {
        "PutMetricData" => put_metric_data(ctx).await,
        "ListMetrics" => list_metrics(ctx).await,
        "DescribeAlarms" => describe_alarms(ctx).await,
        "DescribeAlarmHistory" => describe_alarm_history(ctx).await,
        "GetMetricStatistics" => get_metric_statistics(ctx).await,
        "GetMetricData" => get_metric_data(ctx).await,
        "SetAlarmState" => set_alarm_state(ctx).await,
        "PutMetricAlarm" => put_metric_alarm(ctx).await,
        "DeleteAlarms" => delete_alarms(ctx).await,
        "ListTagsForResource" => list_tags(ctx).await,
        _ => return None,
    })
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "InvalidParameterValue", message)
}

fn dimensions(input: &bellows_aws::Input) -> Result<BTreeMap<String, String>, AwsError> {
    input
        .list("Dimensions")
        .iter()
        .map(|d| Ok((d.str("Name")?, d.str("Value")?)))
        .collect()
}

async fn put_metric_data(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let namespace = input.str("Namespace")?;
    if namespace.starts_with("AWS/") {
        return Err(invalid(format!(
            "The value {namespace} for parameter Namespace is invalid: AWS/ namespaces are reserved"
        )));
    }
    let mut data = Vec::new();
    for d in input.list("MetricData") {
        let name = d.str("MetricName")?;
        let dims = dimensions(&d)?;
        let mut values = Vec::new();
        if let Some(v) = d.opt_f64("Value")? {
            values.push(v);
        }
        let listed = d.get("Values").map(Value::items).unwrap_or_default();
        let counts = d.get("Counts").map(Value::items).unwrap_or_default();
        for (i, v) in listed.iter().enumerate() {
            let v = v
                .as_f64()
                .ok_or_else(|| invalid("Values must be numbers"))?;
            // A value with a count stands for that many equal samples.
            let n = counts.get(i).and_then(|c| c.as_f64()).unwrap_or(1.0);
            for _ in 0..(n.clamp(1.0, 150.0) as usize) {
                values.push(v);
            }
        }
        let stats = d.nested("StatisticValues");
        if let (Some(sum), Some(count)) = (stats.opt_f64("Sum")?, stats.opt_f64("SampleCount")?)
            && count > 0.0
        {
            values.push(sum / count);
        }
        if values.is_empty() {
            return Err(AwsError::new(
                400,
                "MissingParameter",
                format!("The parameter MetricData.member.N.Value is required for {name}"),
            ));
        }
        for value in values {
            if !value.is_finite() {
                return Err(invalid("Metric values must be finite numbers"));
            }
            data.push(MetricDatum {
                namespace: namespace.clone(),
                name: name.clone(),
                dimensions: dims.clone(),
                value,
            });
        }
    }
    if data.is_empty() || data.len() > 1000 {
        return Err(invalid("MetricData must hold 1 to 1000 values"));
    }
    let token = Some(ctx.face.token.clone());
    ctx.ask(|reply| Call::PutMetrics { token, data, reply })
        .await?
        .map_err(|e| from_api(e, "InvalidParameterValue", "InvalidParameterValue"))?;
    Ok(Value::Null)
}

async fn list_metrics(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let namespace = input.opt_str("Namespace")?;
    let name = input.opt_str("MetricName")?;
    let wanted: Vec<(String, Option<String>)> = input
        .list("Dimensions")
        .iter()
        .map(|d| Ok((d.str("Name")?, d.opt_str("Value")?)))
        .collect::<Result<_, AwsError>>()?;
    let keys = ctx.ask(Call::MetricsList).await?;
    let list: Vec<Value> = keys
        .iter()
        .filter(|k| namespace.as_ref().is_none_or(|n| *n == k.namespace))
        .filter(|k| name.as_ref().is_none_or(|n| *n == k.name))
        .filter(|k| {
            wanted.iter().all(|(n, v)| {
                k.dimensions
                    .get(n)
                    .is_some_and(|have| v.as_ref().is_none_or(|v| v == have))
            })
        })
        .map(|k| {
            Value::object()
                .with("Namespace", k.namespace.as_str())
                .with("MetricName", k.name.as_str())
                .with(
                    "Dimensions",
                    Value::List(
                        k.dimensions
                            .iter()
                            .map(|(n, v)| {
                                Value::object()
                                    .with("Name", n.as_str())
                                    .with("Value", v.as_str())
                            })
                            .collect(),
                    ),
                )
        })
        .collect();
    let mut out = Value::object();
    let paging = Paging {
        size: "MaxRecords",
        default: 500,
        max: 500,
        ..NEXT_TOKEN
    };
    page(ctx, &paging, list, &mut out, "Metrics")?;
    Ok(out)
}

fn state(s: AlarmState) -> &'static str {
    match s {
        AlarmState::Ok => "OK",
        AlarmState::Alarm => "ALARM",
        AlarmState::InsufficientData => "INSUFFICIENT_DATA",
    }
}

/// A policy's or webhook's ARN for an alarm action named in the stack.
fn action_arn(ctx: &Ctx<'_>, stack: &serde_json::Value, action: &str) -> String {
    let group = stack["policies"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == action))
        .and_then(|p| p["group"].as_str());
    match group {
        Some(g) => ctx.names().policy_arn(g, action),
        None => format!(
            "arn:aws:sns:{}:{}:{}",
            ctx.names().region,
            bellows_aws::arn::ACCOUNT,
            action.strip_prefix("webhook:").unwrap_or(action)
        ),
    }
}

async fn describe_alarms(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let names = input.strings("AlarmNames")?;
    let prefix = input.opt_str("AlarmNamePrefix")?;
    let state_value = input.opt_str("StateValue")?;
    if names.len() > 100 {
        return Err(invalid("AlarmNames holds at most 100 names"));
    }
    let alarms = ctx.ask(Call::Alarms).await?;
    let stack = ctx.ask(Call::Stack).await?;
    let specs = stack["alarms"].as_array().cloned().unwrap_or_default();
    let list: Vec<Value> = alarms
        .iter()
        .filter(|a| names.is_empty() || names.contains(&a.name))
        .filter(|a| {
            prefix
                .as_ref()
                .is_none_or(|p| a.name.starts_with(p.as_str()))
        })
        .filter(|a| state_value.as_ref().is_none_or(|s| s == state(a.state)))
        .map(|a| {
            let spec = specs.iter().find(|s| s["name"] == a.name.as_str());
            let metric = spec.map(|s| &s["metric"]);
            let dims: Vec<Value> = metric
                .and_then(|m| m["dimensions"].as_object())
                .map(|d| {
                    d.iter()
                        .map(|(k, v)| {
                            Value::object()
                                .with("Name", k.as_str())
                                .with("Value", v.as_str().unwrap_or_default())
                        })
                        .collect()
                })
                .unwrap_or_default();
            let missing = spec
                .and_then(|s| s["treat_missing_data"].as_str())
                .unwrap_or("missing");
            let arns = |key: &str| -> Vec<String> {
                spec.and_then(|s| s[key].as_array())
                    .map(|l| {
                        l.iter()
                            .filter_map(|x| x.as_str())
                            .map(|x| action_arn(ctx, &stack, x))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            Value::object()
                .with("AlarmName", a.name.as_str())
                .with("AlarmArn", ctx.names().alarm_arn(&a.name))
                .with("ActionsEnabled", true)
                .with("OKActions", arns("ok_actions"))
                .with("AlarmActions", arns("alarm_actions"))
                .with("InsufficientDataActions", arns("insufficient_data_actions"))
                .with("StateValue", state(a.state))
                .with("StateReason", a.reason.as_str())
                .with("StateUpdatedTimestamp", time(a.since))
                .with("StateTransitionedTimestamp", time(a.since))
                .with(
                    "MetricName",
                    metric.and_then(|m| m["name"].as_str()).map(str::to_owned),
                )
                .with(
                    "Namespace",
                    metric
                        .and_then(|m| m["namespace"].as_str())
                        .map(str::to_owned),
                )
                .with(
                    if a.statistic.starts_with('p') {
                        "ExtendedStatistic"
                    } else {
                        "Statistic"
                    },
                    a.statistic.as_str(),
                )
                .with("Dimensions", Value::List(dims))
                .with("Period", (a.period.as_millis() / 1000) as i64)
                .with("EvaluationPeriods", a.evaluation_periods)
                .with(
                    "DatapointsToAlarm",
                    (spec.is_none_or(|s| s["datapoints_given"] != false))
                        .then_some(a.datapoints_to_alarm),
                )
                .with(
                    "AlarmDescription",
                    spec.and_then(|s| s["description"].as_str())
                        .map(str::to_owned),
                )
                .with("Threshold", a.threshold)
                .with(
                    "ComparisonOperator",
                    spec.and_then(|s| s["comparison"].as_str())
                        .map(str::to_owned),
                )
                .with("TreatMissingData", missing)
        })
        .collect();
    let mut out = Value::object();
    page(ctx, &NEXT_TOKEN, list, &mut out, "MetricAlarms")?;
    out.set("CompositeAlarms", Value::List(Vec::new()));
    Ok(out)
}

async fn describe_alarm_history(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let name = input.opt_str("AlarmName")?;
    let kind = input.opt_str("HistoryItemType")?;
    let start = input.opt_time("StartDate")?;
    let end = input.opt_time("EndDate")?;
    if kind.as_deref().is_some_and(|k| k != "StateUpdate") {
        // bellows keeps state changes only: other kinds have no items.
        return Ok(Value::object().with("AlarmHistoryItems", Value::List(Vec::new())));
    }
    let alarms = ctx.ask(Call::Alarms).await?;
    let mut items: Vec<_> = alarms
        .iter()
        .filter(|a| name.as_ref().is_none_or(|n| *n == a.name))
        .flat_map(|a| a.history.iter())
        .filter(|t| {
            let at = t.time.as_millis() as f64 / 1000.0;
            start.is_none_or(|s| at >= s) && end.is_none_or(|e| at <= e)
        })
        .collect();
    items.sort_by_key(|t| std::cmp::Reverse(t.time));
    let list: Vec<Value> = items
        .into_iter()
        .map(|t| {
            let summary = format!("Alarm updated from {} to {}", state(t.from), state(t.to));
            let data = serde_json::json!({
                "version": "1.0",
                "oldState": { "stateValue": state(t.from) },
                "newState": { "stateValue": state(t.to), "stateReason": t.reason },
            });
            Value::object()
                .with("AlarmName", t.alarm.as_str())
                .with("AlarmType", "MetricAlarm")
                .with("Timestamp", time(t.time))
                .with("HistoryItemType", "StateUpdate")
                .with("HistorySummary", summary)
                .with("HistoryData", data.to_string())
        })
        .collect();
    let mut out = Value::object();
    let paging = Paging {
        default: 100,
        ..NEXT_TOKEN
    };
    page(ctx, &paging, list, &mut out, "AlarmHistoryItems")?;
    Ok(out)
}

/// The most datapoints one answer carries, as CloudWatch's GetMetricStatistics allows.
const MAX_DATAPOINTS: f64 = 1440.0;

/// One statistic of one metric with exactly these dimensions, from `start` to `end`
/// (seconds), as (period start, value).
#[allow(clippy::too_many_arguments)]
async fn series(
    ctx: &Ctx<'_>,
    namespace: &str,
    name: &str,
    dims: &BTreeMap<String, String>,
    stat: &str,
    period: i64,
    start: f64,
    end: f64,
) -> Result<Vec<(f64, f64)>, AwsError> {
    let now = crate::clock::now().as_millis() as f64 / 1000.0;
    let since = (now - start).ceil().max(period as f64) as i64;
    let query = MetricQuery {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        dimensions: Some(
            dims.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        ),
        stat: Some(stat.to_owned()),
        period: Some(format!("{period}s")),
        since: Some(format!("{since}s")),
    };
    let result = ctx
        .ask(|reply| Call::MetricsQuery { query, reply })
        .await?
        .map_err(|e| from_api(e, "InvalidParameterValue", "InvalidParameterValue"))?;
    // CloudWatch matches dimensions exactly; the store matches a subset.
    Ok(result
        .series
        .iter()
        .filter(|s| s.key.dimensions == *dims)
        .flat_map(|s| s.points.iter())
        .map(|(t, v)| (t.as_millis() as f64 / 1000.0, *v))
        .filter(|(t, _)| *t >= start && *t < end)
        .collect())
}

fn check_window(period: i64, start: f64, end: f64) -> Result<(), AwsError> {
    if period < 1 || (period > 60 && period % 60 != 0) {
        return Err(invalid(
            "The parameter Period must be 1, 5, 10, 30 or a multiple of 60.",
        ));
    }
    if end <= start {
        return Err(invalid(
            "The parameter StartTime must be less than the parameter EndTime.",
        ));
    }
    if (end - start) / period as f64 > MAX_DATAPOINTS {
        return Err(AwsError::new(
            400,
            "InvalidParameterCombination",
            format!(
                "You have requested up to {} datapoints, which exceeds the limit of 1440. You may reduce the datapoints requested by increasing Period, or decreasing the time range.",
                ((end - start) / period as f64).ceil()
            ),
        ));
    }
    Ok(())
}

async fn get_metric_statistics(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let namespace = input.str("Namespace")?;
    let name = input.str("MetricName")?;
    let dims = dimensions(input)?;
    let start = input.time("StartTime")?;
    let end = input.time("EndTime")?;
    let period = input.i64("Period")?;
    check_window(period, start, end)?;
    let stats = input.strings("Statistics")?;
    let extended = input.strings("ExtendedStatistics")?;
    if stats.is_empty() && extended.is_empty() {
        return Err(AwsError::new(
            400,
            "MissingParameter",
            "The parameter Statistics or ExtendedStatistics is required.",
        ));
    }
    let mut points: BTreeMap<i64, Value> = BTreeMap::new();
    for stat in stats.iter().chain(&extended) {
        if !extended.contains(stat)
            && !["SampleCount", "Average", "Sum", "Minimum", "Maximum"].contains(&stat.as_str())
        {
            return Err(invalid(format!(
                "The value {stat} for parameter Statistics is not valid."
            )));
        }
        for (t, v) in series(ctx, &namespace, &name, &dims, stat, period, start, end).await? {
            let p = points
                .entry((t * 1000.0) as i64)
                .or_insert_with(|| Value::object().with("Timestamp", Value::Time(t)));
            if extended.contains(stat) {
                let mut map = p
                    .get("ExtendedStatistics")
                    .cloned()
                    .unwrap_or(Value::Map(Vec::new()));
                map.set(stat, v);
                p.set("ExtendedStatistics", map);
            } else {
                p.set(stat, v);
            }
        }
    }
    let unit = input.opt_str("Unit")?.unwrap_or_else(|| "None".to_owned());
    let list: Vec<Value> = points
        .into_values()
        .map(|p| p.with("Unit", unit.as_str()))
        .collect();
    Ok(Value::object()
        .with("Label", name.as_str())
        .with("Datapoints", Value::List(list)))
}

async fn get_metric_data(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let start = input.time("StartTime")?;
    let end = input.time("EndTime")?;
    let queries = input.list("MetricDataQueries");
    if queries.is_empty() || queries.len() > 500 {
        return Err(invalid("MetricDataQueries must hold 1 to 500 queries"));
    }
    let newest_first = input.opt_str("ScanBy")?.as_deref() != Some("TimestampAscending");
    let mut values: BTreeMap<String, bellows_aws::math::Series> = BTreeMap::new();
    let mut results = Vec::new();
    for q in &queries {
        let id = q.str("Id")?;
        if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(invalid(format!(
                "The value {id} for parameter MetricDataQueries.member.Id is not valid: it must start with a lowercase letter."
            )));
        }
        let label = q.opt_str("Label")?;
        let (points, default_label) = if let Some(expr) = q.opt_str("Expression")? {
            let points = bellows_aws::math::evaluate(&expr, &values).map_err(|e| {
                AwsError::new(
                    400,
                    "ValidationError",
                    format!("Error in expression {id}: {e}"),
                )
            })?;
            (points, id.clone())
        } else {
            let stat = q.nested("MetricStat");
            let metric = stat.nested("Metric");
            let name = metric.str("MetricName")?;
            let period = stat.i64("Period")?;
            check_window(period, start, end)?;
            let points = series(
                ctx,
                &metric.str("Namespace")?,
                &name,
                &dimensions(&metric)?,
                &stat.str("Stat")?,
                period,
                start,
                end,
            )
            .await?;
            (points, name)
        };
        values.insert(id.clone(), points.clone());
        if q.opt_bool("ReturnData")? == Some(false) {
            continue;
        }
        let mut points = points;
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        if newest_first {
            points.reverse();
        }
        results.push(
            Value::object()
                .with("Id", id.as_str())
                .with("Label", label.unwrap_or(default_label))
                .with(
                    "Timestamps",
                    Value::List(points.iter().map(|(t, _)| Value::Time(*t)).collect()),
                )
                .with(
                    "Values",
                    Value::List(points.iter().map(|(_, v)| Value::Float(*v)).collect()),
                )
                .with("StatusCode", "Complete"),
        );
    }
    Ok(Value::object()
        .with("MetricDataResults", Value::List(results))
        .with("Messages", Value::List(Vec::new())))
}

async fn set_alarm_state(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let alarm = input.str("AlarmName")?;
    let state = match input.str("StateValue")?.as_str() {
        "OK" => AlarmState::Ok,
        "ALARM" => AlarmState::Alarm,
        "INSUFFICIENT_DATA" => AlarmState::InsufficientData,
        other => {
            return Err(invalid(format!(
                "The value {other} for parameter StateValue is not valid: OK, ALARM or INSUFFICIENT_DATA"
            )));
        }
    };
    let reason = input.str("StateReason")?;
    if reason.len() > 1023 {
        return Err(invalid("StateReason holds at most 1023 characters"));
    }
    let actor = ctx.actor();
    let name = alarm.clone();
    ctx.ask(|reply| Call::SetAlarmState {
        alarm: name,
        state,
        reason,
        actor,
        reply,
    })
    .await?
    .map_err(|e| {
        if e.status == 404 {
            AwsError::new(404, "ResourceNotFound", format!("Alarm {alarm} not found"))
        } else {
            from_api(e, "ResourceNotFound", "InvalidParameterValue")
        }
    })?;
    Ok(Value::Null)
}

/// An alarm action's ARN as the stack names it: a scaling policy by its name, an SNS
/// topic as the webhook of that name.
fn action_name(arn: &str) -> Result<String, AwsError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let bad = || invalid(format!("Invalid arn syntax: {arn}"));
    if parts.len() != 6 || parts[0] != "arn" {
        return Err(bad());
    }
    match parts[2] {
        "autoscaling" => parts[5]
            .rsplit_once(":policyName/")
            .map(|(_, p)| p.to_owned())
            .filter(|p| !p.is_empty())
            .ok_or_else(bad),
        "sns" if !parts[5].is_empty() => Ok(format!("webhook:{}", parts[5])),
        _ => Err(invalid(format!(
            "The action {arn} is not one bellows runs: a scaling policy's ARN or an SNS topic named like one of the stack's webhooks"
        ))),
    }
}

/// PutMetricAlarm: a metric alarm (no metric math) on the stack's policies and
/// webhooks, created or redefined, and kept when bellows starts again.
async fn put_metric_alarm(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    use bellows_core::alarm::{AlarmSpec, Comparison, MissingData};
    use bellows_core::metrics::{SeriesKey, Statistic};
    let input = ctx.input();
    let name = input.str("AlarmName")?;
    if name.is_empty() || name.len() > 255 {
        return Err(invalid("AlarmName must be 1 to 255 characters"));
    }
    if input.get("Metrics").is_some_and(|m| !m.items().is_empty())
        || input.opt_str("ThresholdMetricId")?.is_some()
    {
        return Err(invalid(
            "bellows alarms watch one metric: metric math and anomaly detection alarms (Metrics, ThresholdMetricId) are not supported",
        ));
    }
    if input.opt_bool("ActionsEnabled")? == Some(false) {
        return Err(invalid(
            "bellows runs the actions of every alarm: ActionsEnabled must be true",
        ));
    }
    let namespace = input.str("Namespace")?;
    let metric_name = input.str("MetricName")?;
    let dims = dimensions(input)?;
    if dims.len() > 30 {
        return Err(invalid("Dimensions holds at most 30 members"));
    }
    let statistic = match (input.opt_str("Statistic")?, input.opt_str("ExtendedStatistic")?) {
        (Some(s), None) if !s.starts_with('p') => s.parse::<Statistic>().ok(),
        (None, Some(s)) if s.starts_with('p') => s.parse::<Statistic>().ok(),
        (Some(_), Some(_)) => {
            return Err(AwsError::new(
                400,
                "InvalidParameterCombination",
                "Statistic and ExtendedStatistic are mutually exclusive",
            ));
        }
        (None, None) => {
            return Err(AwsError::new(
                400,
                "MissingParameter",
                "Statistic or ExtendedStatistic is required",
            ));
        }
        _ => None,
    }
    .ok_or_else(|| {
        invalid("Statistic must be SampleCount, Average, Sum, Minimum or Maximum; ExtendedStatistic a percentile like p99")
    })?;
    let period = input.i64("Period")?;
    if !(1..=86_400).contains(&period) {
        return Err(invalid(format!(
            "The value {period} for parameter Period is not valid: 1 to 86400 seconds"
        )));
    }
    let evaluation_periods = input.u32("EvaluationPeriods")?;
    let datapoints = input
        .opt_u32("DatapointsToAlarm")?
        .unwrap_or(evaluation_periods);
    if evaluation_periods == 0 || datapoints == 0 || datapoints > evaluation_periods {
        return Err(invalid(
            "EvaluationPeriods must be at least 1, and DatapointsToAlarm from 1 to EvaluationPeriods",
        ));
    }
    if u64::from(evaluation_periods) * period as u64 > 7 * 86_400 {
        return Err(invalid(
            "Period multiplied by EvaluationPeriods must not exceed one week",
        ));
    }
    let comparison = input.str("ComparisonOperator")?;
    let comparison = Comparison::parse(&comparison).ok_or_else(|| {
        invalid(format!(
            "The value {comparison} for parameter ComparisonOperator is not valid: bellows takes GreaterThanOrEqualToThreshold, GreaterThanThreshold, LessThanThreshold or LessThanOrEqualToThreshold"
        ))
    })?;
    let threshold = input.f64("Threshold")?;
    if !threshold.is_finite() {
        return Err(invalid("Threshold must be a finite number"));
    }
    let treat_missing_data = match input.opt_str("TreatMissingData")?.as_deref() {
        None | Some("missing") => MissingData::Missing,
        Some("notBreaching") => MissingData::NotBreaching,
        Some("breaching") => MissingData::Breaching,
        Some("ignore") => MissingData::Ignore,
        Some(other) => {
            return Err(invalid(format!(
                "The value {other} for parameter TreatMissingData is not valid: breaching, notBreaching, ignore or missing"
            )));
        }
    };
    let actions = |key: &str| -> Result<Vec<String>, AwsError> {
        let arns = input.strings(key)?;
        if arns.len() > 5 {
            return Err(invalid(format!("{key} holds at most 5 actions")));
        }
        arns.iter().map(|a| action_name(a)).collect()
    };
    let dims: Vec<(&str, &str)> = dims.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let spec = AlarmSpec {
        name: name.clone(),
        metric: SeriesKey::new(&namespace, &metric_name, &dims),
        statistic,
        period: bellows_core::Duration::from_secs(period as u64),
        evaluation_periods,
        datapoints_to_alarm: datapoints,
        comparison,
        threshold,
        treat_missing_data,
        alarm_actions: actions("AlarmActions")?,
        ok_actions: actions("OKActions")?,
        insufficient_data_actions: actions("InsufficientDataActions")?,
        description: input.opt_str("AlarmDescription")?,
        datapoints_given: input.opt_u32("DatapointsToAlarm")?.is_some(),
    };
    let actor = ctx.actor();
    ctx.ask(|reply| Call::PutAlarm { spec, actor, reply })
        .await?
        .map_err(|e| from_api(e, "ResourceNotFound", "InvalidParameterValue"))?;
    Ok(Value::Null)
}

/// DeleteAlarms: up to 100 of the stack's alarms; if one is unknown, none goes.
async fn delete_alarms(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let names = ctx.input().strings("AlarmNames")?;
    if names.len() > 100 {
        return Err(invalid("AlarmNames holds at most 100 names"));
    }
    let actor = ctx.actor();
    ctx.ask(|reply| Call::DeleteAlarms {
        names,
        actor,
        reply,
    })
    .await?
    .map_err(|e| {
        if e.status == 404 {
            AwsError::new(404, "ResourceNotFound", e.message)
        } else {
            from_api(e, "ResourceNotFound", "InvalidParameterValue")
        }
    })?;
    Ok(Value::Null)
}

/// ListTagsForResource: bellows keeps no tags on alarms, so an alarm's list is empty
/// (Terraform reads it after every PutMetricAlarm).
async fn list_tags(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let arn = ctx.input().str("ResourceARN")?;
    let alarms = ctx.ask(Call::Alarms).await?;
    let known = alarms.iter().any(|a| ctx.names().alarm_arn(&a.name) == arn);
    if !known {
        return Err(AwsError::new(
            404,
            "ResourceNotFound",
            format!("The resource {arn} does not exist"),
        ));
    }
    Ok(Value::object().with("Tags", Value::List(Vec::new())))
}
