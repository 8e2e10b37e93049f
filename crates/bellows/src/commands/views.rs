//! Commands that show the running stack: its groups, instances, targets, zones,
//! scaling activities and instances' logs.

use std::process::ExitCode;

use bellows_core::group::{Activity, ActivityStatus};
use bellows_node::api::{InstanceView, StatusView, TableView, ZoneView};
use bellows_node::clock;
use bellows_proxy::TargetView;

use super::print_json;
use crate::context::Context;
use crate::table::{Table, age, bytes};

pub async fn status(ctx: &Context, json: bool) -> anyhow::Result<ExitCode> {
    let s: StatusView = ctx.client().get("/api/v1/status").await?;
    if json {
        print_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    out!(
        "stack {}  pid {}  up {}  control http://{}  instance types {}",
        s.stack,
        s.pid,
        age(clock::now().since(s.started_at)),
        s.control,
        if s.cgroups {
            "enforced (cgroups)"
        } else {
            "measured, not enforced"
        }
    );
    let mut t = Table::new(&[
        "GROUP",
        "DESIRED",
        "MIN",
        "MAX",
        "IN SERVICE",
        "PENDING",
        "TERMINATING",
        "TYPE",
        "ZONES",
    ]);
    for g in &s.groups {
        t.row(vec![
            g.name.clone(),
            g.desired.to_string(),
            g.min.to_string(),
            g.max.to_string(),
            g.in_service.to_string(),
            g.pending.to_string(),
            g.terminating.to_string(),
            g.instance_type.clone(),
            g.zones
                .iter()
                .map(|z| {
                    if s.zones_out.contains(z) {
                        format!("{z} (outage)")
                    } else {
                        z.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(","),
        ]);
    }
    t.print();
    for l in &s.listeners {
        let ingress: Vec<String> = l.ingress.iter().map(ToString::to_string).collect();
        out!(
            "listener {}  http://{}/  -> {}  ingress {}",
            l.name,
            l.address,
            l.target_groups.join(", "),
            if ingress.is_empty() {
                "(none: every connection is dropped)".to_owned()
            } else {
                ingress.join(", ")
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn instances(
    ctx: &Context,
    group: Option<String>,
    json: bool,
    pids: bool,
) -> anyhow::Result<ExitCode> {
    let mut list: Vec<InstanceView> = ctx.client().get("/api/v1/instances").await?;
    if let Some(g) = &group {
        list.retain(|i| &i.group == g);
    }
    if pids {
        let live = list.iter().filter(|i| {
            matches!(
                i.lifecycle,
                bellows_core::group::Lifecycle::Pending | bellows_core::group::Lifecycle::InService
            )
        });
        for pid in live.filter_map(|i| i.pid) {
            out!("{pid}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if json {
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let now = clock::now();
    let mut t = Table::new(&[
        "INSTANCE",
        "GROUP",
        "ZONE",
        "STATE",
        "HEALTH",
        "ADDRESS",
        "PID",
        "CPU",
        "MEMORY",
        "AGE",
        "PROTECTED",
    ]);
    for i in &list {
        t.row(vec![
            i.id.to_string(),
            i.group.clone(),
            i.zone.clone(),
            format!("{:?}", i.lifecycle),
            format!("{:?}", i.health),
            i.private_ip
                .as_ref()
                .map_or("-".into(), |ip| format!("{ip}:{}", i.port)),
            i.pid.map_or("-".into(), |p| p.to_string()),
            i.cpu_percent.map_or("-".into(), |c| format!("{c:.1}%")),
            i.memory_bytes.map_or("-".into(), bytes),
            age(now.since(i.launched_at)),
            if i.protected {
                "yes".into()
            } else {
                "-".into()
            },
        ]);
    }
    t.print();
    Ok(ExitCode::SUCCESS)
}

pub async fn targets(
    ctx: &Context,
    target_group: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut list: Vec<TargetView> = ctx.client().get("/api/v1/targets").await?;
    if let Some(tg) = &target_group {
        list.retain(|t| &t.target_group == tg);
    }
    if json {
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&[
        "TARGET GROUP",
        "INSTANCE",
        "ADDRESS",
        "ZONE",
        "STATE",
        "IN FLIGHT",
        "REQUESTS",
        "ANOMALY",
        "REASON",
    ]);
    for x in &list {
        t.row(vec![
            x.target_group.clone(),
            x.instance.to_string(),
            x.address.clone(),
            x.zone.clone(),
            format!("{:?}", x.state).to_lowercase(),
            x.outstanding.to_string(),
            x.requests.to_string(),
            match (&x.anomaly, x.weight) {
                (Some(a), Some(w)) => format!("{a} ({:.0}%)", w * 100.0),
                _ => "-".to_owned(),
            },
            x.reason.as_ref().map_or("-".to_owned(), |r| {
                format!("{} ({})", r.code, r.description)
            }),
        ]);
    }
    t.print();
    Ok(ExitCode::SUCCESS)
}

pub async fn tables(ctx: &Context, json: bool) -> anyhow::Result<ExitCode> {
    let list: Vec<TableView> = ctx.client().get("/api/v1/tables").await?;
    if json {
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        println!(
            "no DynamoDB tables (create one through the AWS endpoint: `eval \"$(bellows aws-env)\"`, then `aws dynamodb create-table ...`)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&["TABLE", "KEY", "BILLING", "ITEMS", "SIZE"]);
    for v in &list {
        let billing = if v.billing_mode == "PAY_PER_REQUEST" {
            "on demand".to_owned()
        } else {
            format!("{} RCU / {} WCU", v.read_capacity, v.write_capacity)
        };
        t.row(vec![
            v.name.clone(),
            v.key.join(", "),
            billing,
            v.items.to_string(),
            format!("{} B", v.bytes),
        ]);
    }
    t.print();
    Ok(ExitCode::SUCCESS)
}

pub async fn zones(ctx: &Context, json: bool) -> anyhow::Result<ExitCode> {
    let list: Vec<ZoneView> = ctx.client().get("/api/v1/zones").await?;
    if json {
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&["ZONE", "STATE", "INSTANCES", "GROUPS"]);
    for z in &list {
        t.row(vec![
            z.zone.clone(),
            if z.available { "available" } else { "outage" }.to_owned(),
            z.instances.to_string(),
            z.groups.join(", "),
        ]);
    }
    t.print();
    Ok(ExitCode::SUCCESS)
}

pub async fn activities(
    ctx: &Context,
    group: Option<String>,
    limit: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut path = format!("/api/v1/activities?limit={limit}");
    if let Some(g) = &group {
        path += &format!("&group={g}");
    }
    let list: Vec<Activity> = ctx.client().get(&path).await?;
    if json {
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    for a in &list {
        let status = match a.status {
            ActivityStatus::InProgress => "InProgress",
            ActivityStatus::Successful => "Successful",
            ActivityStatus::Failed => "Failed",
        };
        let took = a
            .end
            .map(|e| format!(" ({})", e.since(a.start)))
            .unwrap_or_default();
        out!(
            "{}  {status:<10}  {:<8}  {}{took}",
            a.start,
            a.group,
            a.description
        );
        out!("    cause: {}", a.cause);
        if let Some(m) = &a.status_message {
            out!("    status: {m}");
        }
    }
    if list.is_empty() {
        out!("no activities yet");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn logs(
    ctx: &Context,
    instance: &str,
    follow: bool,
    tail: Option<u64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if json && follow {
        anyhow::bail!("--json prints the log as it is now; use it without --follow");
    }
    let mut path = format!("/api/v1/instances/{instance}/logs?follow={follow}");
    if let Some(t) = tail {
        path += &format!("&tail={t}");
    }
    if json {
        let mut buf = Vec::new();
        ctx.client().stream(&path, &mut buf).await?;
        let log = String::from_utf8_lossy(&buf);
        print_json(&serde_json::json!({ "instance": instance, "log": log }))?;
    } else {
        ctx.client()
            .stream(&path, &mut std::io::stdout().lock())
            .await?;
    }
    Ok(ExitCode::SUCCESS)
}
