//! The record of what happened: the audit trail, investigations and incidents.

use std::process::ExitCode;

use bellows_node::store::{AuditEntry, Incident};

use super::{print_json, url_escape};
use crate::context::Context;
use crate::table::Table;

pub async fn audit(
    ctx: &Context,
    since: Option<String>,
    target: Option<String>,
    limit: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut query = vec![format!("limit={limit}")];
    if let Some(s) = since {
        query.push(format!("since={}", url_escape(&s)));
    }
    if let Some(t) = target {
        query.push(format!("target={}", url_escape(&t)));
    }
    let list: Vec<AuditEntry> = ctx
        .client()
        .get(&format!("/api/v1/audit?{}", query.join("&")))
        .await?;
    if json {
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&[
        "TIME", "ACTOR", "ACTION", "TARGET", "BEFORE", "AFTER", "RESULT",
    ]);
    for e in &list {
        let r = &e.record;
        t.row(vec![
            r.time.to_string(),
            if r.actor == r.source {
                r.actor.clone()
            } else {
                format!("{} ({})", r.actor, r.source)
            },
            r.action.clone(),
            r.target.clone(),
            compact(&r.before),
            compact(&r.after),
            r.result.clone(),
        ]);
    }
    // Before and after can hold a whole stack: they give way to fit the terminal, as
    // do the target and the result's message; --json has every value whole.
    let width = crate::table::terminal_width();
    if t.print_fit(width, &[3, 4, 5, 6]) {
        eprintln!(
            "(values cut with … to fit {} columns; `bellows audit --json` has them whole)",
            width.unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A JSON value on one line, without the quotes around keys, for a table cell.
fn compact(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".to_owned(),
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| format!("{k}={}", compact(v)))
            .collect::<Vec<_>>()
            .join(" "),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub async fn investigate(
    ctx: &Context,
    since: &str,
    alarm: Option<String>,
    id: Option<i64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let path = match id {
        Some(id) => format!("/api/v1/investigations/{id}"),
        None => {
            let mut p = format!("/api/v1/investigate?since={}", url_escape(since));
            if let Some(a) = alarm {
                p += &format!("&alarm={}", url_escape(&a));
            }
            p
        }
    };
    let mut report: serde_json::Value = ctx.client().get(&path).await?;
    if json {
        if let Some(m) = report.as_object_mut() {
            m.remove("markdown");
        }
        print_json(&report)?;
    } else {
        out!("{}", report["markdown"].as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn incidents(ctx: &Context, json: bool) -> anyhow::Result<ExitCode> {
    let list: Vec<Incident> = ctx.client().get("/api/v1/incidents").await?;
    if json {
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&[
        "ID",
        "ALARM",
        "OPENED",
        "STATUS",
        "INVESTIGATION",
        "ISSUE",
        "DELIVERIES",
        "TITLE",
    ]);
    for i in &list {
        t.row(vec![
            i.id.to_string(),
            i.alarm.clone(),
            i.opened.to_string(),
            match i.resolved {
                Some(r) => format!("resolved {r}"),
                None => "open".to_owned(),
            },
            format!("bellows investigate --id {}", i.investigation),
            match (&i.issue_number, &i.issue_url) {
                (Some(n), Some(u)) if !u.is_empty() => format!("#{n} {u}"),
                (Some(n), _) => format!("#{n}"),
                _ => "-".to_owned(),
            },
            if i.pending_deliveries == 0 {
                "delivered".to_owned()
            } else {
                format!(
                    "{} pending{}",
                    i.pending_deliveries,
                    i.last_error
                        .as_ref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                )
            },
            i.title.clone(),
        ]);
    }
    t.print();
    Ok(ExitCode::SUCCESS)
}
