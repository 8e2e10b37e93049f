//! Commands that read what bellows measured and decided: metric series, alarms and
//! the webhook outbox.

use std::process::ExitCode;

use bellows_core::metrics::SeriesKey;
use bellows_node::api::{AlarmView, MetricResult};
use bellows_node::clock;
use bellows_node::store::Delivery;

use super::print_json;
use crate::context::Context;
use crate::table::{Table, age};

/// A one-line chart of values: ▁▂▃▄▅▆▇█ scaled between their minimum and maximum.
pub fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(*v), h.max(*v))
        });
    values
        .iter()
        .map(|v| {
            if hi > lo {
                BARS[(((v - lo) / (hi - lo)) * 7.0).round() as usize]
            } else {
                BARS[0]
            }
        })
        .collect()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
pub async fn metrics(
    ctx: &Context,
    namespace: Option<String>,
    name: Option<String>,
    dimensions: Vec<String>,
    stat: &str,
    period: &str,
    since: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let client = ctx.client();
    let Some(name) = name else {
        let mut keys: Vec<SeriesKey> = client.get("/api/v1/metrics").await?;
        if let Some(ns) = &namespace {
            keys.retain(|k| &k.namespace == ns);
        }
        if json {
            print_json(&keys)?;
        } else {
            for k in &keys {
                out!("{k}");
            }
            if keys.is_empty() {
                out!("no series yet");
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    let namespace = namespace.unwrap_or_else(|| bellows_core::metrics::catalogue::EC2.to_owned());
    let path = format!(
        "/api/v1/metrics/query?namespace={}&name={}&dimensions={}&stat={}&period={}&since={}",
        encode(&namespace),
        encode(&name),
        encode(&dimensions.join(",")),
        encode(stat),
        encode(period),
        encode(since)
    );
    let result: MetricResult = client.get(&path).await?;
    if json {
        print_json(&result)?;
        return Ok(ExitCode::SUCCESS);
    }
    if result.series.is_empty() {
        out!("no series {namespace}/{name} with those dimensions");
    }
    for s in &result.series {
        let values: Vec<f64> = s.points.iter().map(|(_, v)| *v).collect();
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                (l.min(*v), h.max(*v))
            });
        out!(
            "{} {} per {}  ({} datapoints)",
            s.key,
            s.statistic,
            s.period,
            values.len()
        );
        if !values.is_empty() {
            let tail = &values[values.len().saturating_sub(60)..];
            out!(
                "  {}  min {lo:.2}  max {hi:.2}  last {:.2}",
                sparkline(tail),
                values[values.len() - 1]
            );
            for (t, v) in s.points.iter().rev().take(10).rev() {
                out!("  {}  {v:.3}", &t.to_string()[11..19]);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn alarms(ctx: &Context, json: bool) -> anyhow::Result<ExitCode> {
    let list: Vec<AlarmView> = ctx.client().get("/api/v1/alarms").await?;
    if json {
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&["ALARM", "STATE", "CONDITION", "LAST", "SINCE", "ACTIONS"]);
    let now = clock::now();
    for a in &list {
        t.row(vec![
            a.name.clone(),
            a.state.to_string(),
            format!(
                "{} {} {} {} for {} of {} x {}",
                a.metric,
                a.statistic,
                a.comparison,
                a.threshold,
                a.datapoints_to_alarm,
                a.evaluation_periods,
                a.period
            ),
            a.last_value.map_or("-".to_owned(), |v| format!("{v:.2}")),
            age(now.since(a.since)),
            a.alarm_actions.join(","),
        ]);
    }
    t.print();
    for a in list.iter().filter(|a| !a.history.is_empty()) {
        out!("\n{}:", a.name);
        for h in a.history.iter().take(5) {
            out!("  {}  {} -> {}  {}", h.time, h.from, h.to, h.reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn deliveries(ctx: &Context, json: bool) -> anyhow::Result<ExitCode> {
    let list: Vec<Delivery> = ctx.client().get("/api/v1/deliveries").await?;
    if json {
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&["ID", "TO", "CREATED", "ATTEMPTS", "STATUS", "LAST ERROR"]);
    for d in &list {
        t.row(vec![
            d.id.to_string(),
            format!("{} ({})", d.target, d.url),
            d.created.to_string(),
            d.attempts.to_string(),
            match d.delivered {
                Some(t) => format!("delivered {t}"),
                None => format!("pending, next {}", d.next_attempt),
            },
            d.last_error.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    t.print();
    Ok(ExitCode::SUCCESS)
}
