//! The commands that talk to a running `bellows up` through its control API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use bellows_core::event::Capacity;
use bellows_core::group::{Activity, ActivityStatus, Refresh, RefreshStatus};
use bellows_core::metrics::SeriesKey;
use bellows_node::api::{
    AlarmView, ApplyRequest, HealthRequest, MetricResult, RefreshRequest, TerminateRequest,
};
use bellows_node::api::{
    CapacityRequest, IngressChange, IngressRequest, InstanceView, ProtectionRequest, StatusView,
    ZoneChange, ZoneRequest, ZoneView,
};
use bellows_node::client::Client;
use bellows_node::clock;
use bellows_node::store::{AuditEntry, Delivery, Incident};
use bellows_proxy::TargetView;
use serde::Serialize;

use crate::table::{Table, age, bytes};

/// Where the running `up` is, and the token for changes.
pub struct Context {
    pub state_dir: Option<PathBuf>,
    pub control: Option<SocketAddr>,
}

/// The state directory when neither the command line nor the stack file names one.
pub const DEFAULT_STATE_DIR: &str = ".bellows";

impl Context {
    pub fn new(state_dir: Option<PathBuf>, control: Option<SocketAddr>) -> Context {
        Context { state_dir, control }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
    }

    /// A client for the running `up`: the address given, else the one it wrote in the
    /// state directory, else the default; the token from the state directory if readable.
    pub fn client(&self) -> Client {
        let dir = self.state_dir();
        let addr = self
            .control
            .or_else(|| {
                std::fs::read_to_string(dir.join("control"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
            })
            .unwrap_or_else(|| {
                bellows_core::stack::DEFAULT_CONTROL
                    .parse()
                    .expect("valid default")
            });
        let token = std::fs::read_to_string(dir.join("token"))
            .ok()
            .map(|t| t.trim().to_owned());
        Client::new(addr, token)
    }
}

fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    out!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

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

pub async fn zone(ctx: &Context, zone: &str, available: bool) -> anyhow::Result<ExitCode> {
    let change: ZoneChange = ctx
        .client()
        .put(&format!("/api/v1/zones/{zone}"), &ZoneRequest { available })
        .await
        .with_context(|| {
            format!(
                "cannot {} zone `{zone}`",
                if available { "restore" } else { "fail" }
            )
        })?;
    let killed: Vec<String> = change.killed.iter().map(ToString::to_string).collect();
    match (available, change.changed) {
        (false, true) => out!(
            "zone {}: outage started; killed {} instance{}{}; nothing is launched there until `bellows zone restore {}`",
            change.zone,
            killed.len(),
            if killed.len() == 1 { "" } else { "s" },
            if killed.is_empty() {
                String::new()
            } else {
                format!(" ({})", killed.join(", "))
            },
            change.zone
        ),
        (false, false) => out!("zone {}: already in an outage", change.zone),
        (true, true) => out!(
            "zone {}: back; the groups move instances into it one at a time, launching first",
            change.zone
        ),
        (true, false) => out!("zone {}: was available", change.zone),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn ingress(
    ctx: &Context,
    listener: &str,
    cidr: &str,
    authorize: bool,
) -> anyhow::Result<ExitCode> {
    let verb = if authorize { "authorize" } else { "revoke" };
    let change: IngressChange = ctx
        .client()
        .post(
            &format!("/api/v1/listeners/{listener}/ingress/{verb}"),
            &IngressRequest {
                cidr: cidr.to_owned(),
            },
        )
        .await
        .with_context(|| format!("cannot {verb} {cidr} on listener `{listener}`"))?;
    let now: Vec<String> = change.ingress.iter().map(ToString::to_string).collect();
    let what = match (authorize, change.changed) {
        (true, true) => "authorized",
        (false, true) => "revoked",
        (true, false) => "was already authorized",
        (false, false) => "was not in the list",
    };
    out!(
        "listener {}: {} {what}; ingress now: {}",
        change.listener,
        change.cidr,
        if now.is_empty() {
            "(none)".to_owned()
        } else {
            now.join(", ")
        }
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn instances(
    ctx: &Context,
    group: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut list: Vec<InstanceView> = ctx.client().get("/api/v1/instances").await?;
    if let Some(g) = &group {
        list.retain(|i| &i.group == g);
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

pub async fn scale(
    ctx: &Context,
    group: &str,
    min: Option<u32>,
    max: Option<u32>,
    desired: Option<u32>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if min.is_none() && max.is_none() && desired.is_none() {
        anyhow::bail!("say what to change: --desired N, --min N or --max N");
    }
    let body = CapacityRequest { min, max, desired };
    let cap: Capacity = ctx
        .client()
        .put(&format!("/api/v1/groups/{group}/capacity"), &body)
        .await
        .with_context(|| format!("cannot scale group `{group}`"))?;
    if json {
        print_json(&cap)?;
    } else {
        out!(
            "group {group}: desired {}, min {}, max {}",
            cap.desired,
            cap.min,
            cap.max
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn protect(ctx: &Context, instance: &str, protected: bool) -> anyhow::Result<ExitCode> {
    let () = ctx
        .client()
        .put(
            &format!("/api/v1/instances/{instance}/protection"),
            &ProtectionRequest { protected },
        )
        .await?;
    out!(
        "{instance}: scale-in protection {}",
        if protected { "on" } else { "off" }
    );
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
    let namespace = namespace.unwrap_or_else(|| "AWS/EC2".to_owned());
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

pub enum RefreshAction {
    Start {
        min_healthy_percentage: u32,
        warmup: Option<String>,
    },
    Status,
    Cancel,
}

pub async fn refresh(
    ctx: &Context,
    group: &str,
    what: RefreshAction,
    wait: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let client = ctx.client();
    let path = format!("/api/v1/groups/{group}/refresh");
    let mut r: Refresh = match what {
        RefreshAction::Start {
            min_healthy_percentage,
            warmup,
        } => client
            .post(
                &path,
                &RefreshRequest {
                    min_healthy_percentage: Some(min_healthy_percentage),
                    warmup,
                },
            )
            .await
            .with_context(|| format!("cannot start an instance refresh of `{group}`"))?,
        RefreshAction::Status => client.get(&path).await?,
        RefreshAction::Cancel => client.delete(&path).await?,
    };
    let line = |r: &Refresh| {
        format!(
            "refresh {} of {}: {:?}, {}% ({} of {} left), {}",
            r.id,
            r.group,
            r.status,
            r.percentage_complete,
            r.remaining.len(),
            r.total,
            r.status_reason
        )
    };
    if wait && !json {
        let mut last = String::new();
        while r.status == RefreshStatus::InProgress {
            let now = line(&r);
            if now != last {
                out!("{now}");
                last = now;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            r = client.get(&path).await?;
        }
    }
    if json {
        print_json(&r)?;
    } else {
        out!("{}", line(&r));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn apply(
    ctx: &Context,
    file: &std::path::Path,
    dry_run: bool,
    yes: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let name = file.display().to_string();
    let source = std::fs::read_to_string(file).with_context(|| format!("{name}: cannot read"))?;
    // The same checks as `validate`, with positions, before anything is sent.
    if let Err(code) = crate::up::parse(&name, &source) {
        return Ok(code);
    }
    let client = ctx.client();
    let ask = |dry_run: bool| ApplyRequest {
        file: name.clone(),
        source: source.clone(),
        dry_run,
    };
    let plan: serde_json::Value = client.post("/api/v1/stack", &ask(true)).await?;
    let changes = plan["changes"].as_array().cloned().unwrap_or_default();
    if !json {
        print_plan(&changes);
    }
    if changes.is_empty() || dry_run {
        if json {
            print_json(&plan)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!("add --yes to apply without a question");
        }
        eprint!("Apply {} change(s)? [y/N] ", changes.len());
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("nothing applied");
            return Ok(ExitCode::from(1));
        }
    }
    let done: serde_json::Value = client
        .post("/api/v1/stack", &ask(false))
        .await
        .with_context(|| format!("cannot apply {name}"))?;
    if json {
        print_json(&done)?;
    } else {
        out!("applied {} change(s)", changes.len());
        if let Some(v) = done["template_versions"].as_object() {
            for (group, version) in v {
                out!(
                    "  group {group}: launch template version {version}: new instances use it; `bellows refresh {group}` replaces the others"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A plan like `terraform plan`'s: + added, - removed, ~ modified with each field.
fn print_plan(changes: &[serde_json::Value]) {
    if changes.is_empty() {
        out!("no changes: the running stack already is this file");
        return;
    }
    for c in changes {
        let (sign, what) = match c["op"].as_str() {
            Some("add") => ("+", "added"),
            Some("remove") => ("-", "removed"),
            _ => ("~", "modified"),
        };
        out!(
            "{sign} {} {} ({what})",
            c["kind"].as_str().unwrap_or("?").replace('_', " "),
            c["name"].as_str().unwrap_or("?")
        );
        for f in c["fields"].as_array().into_iter().flatten() {
            out!(
                "    {}: {} -> {}",
                f["path"].as_str().unwrap_or("?"),
                f["before"],
                f["after"]
            );
        }
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

pub fn dashboard(ctx: &Context) -> anyhow::Result<ExitCode> {
    let client = ctx.client();
    match client.token() {
        Some(t) => out!("http://{}/#token={t}", client.addr()),
        None => {
            out!("http://{}/", client.addr());
            eprintln!(
                "no token readable in {}: the page will be read only until you paste one",
                ctx.state_dir().display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `export` lines for the `aws` CLI and the SDKs: the control address as the one
/// endpoint of every service, and the key pair the running stack accepts (its own,
/// given through `BELLOWS_AWS_*`, or the one derived from the state directory's token).
pub async fn aws_env(ctx: &Context) -> anyhow::Result<ExitCode> {
    let client = ctx.client();
    // The running stack says its region and whether it has a key pair of its own
    // ([aws]: its id, and the variable that holds its secret, read here too).
    let stack: serde_json::Value = client.get("/api/v1/stack").await?;
    let region = stack["region"]
        .as_str()
        .unwrap_or(bellows_node::aws::DEFAULT_REGION)
        .to_owned();
    let given = if let Some(id) = stack["aws"]["access_key_id"].as_str() {
        let var = stack["aws"]["secret_env"].as_str().unwrap_or_default();
        let secret = std::env::var(var).with_context(|| {
            format!("the stack's [aws] key pair takes its secret from {var}, which is not set here")
        })?;
        Some((id.to_owned(), secret))
    } else {
        match (
            std::env::var(bellows_node::aws::ACCESS_KEY_ENV),
            std::env::var(bellows_node::aws::SECRET_KEY_ENV),
        ) {
            (Ok(id), Ok(secret)) => Some((id, secret)),
            _ => None,
        }
    };
    let token = client.token().unwrap_or_default().to_owned();
    if token.is_empty() && given.is_none() {
        anyhow::bail!(
            "no token readable in {}: the AWS key pair is derived from it",
            ctx.state_dir().display()
        );
    }
    let credential = bellows_node::aws::credentials(&token, given)
        .into_iter()
        .next()
        .context("no AWS key pair")?;
    out!("export AWS_ENDPOINT_URL=http://{}", client.addr());
    out!("export AWS_ACCESS_KEY_ID={}", credential.access_key_id);
    out!(
        "export AWS_SECRET_ACCESS_KEY={}",
        credential.secret_access_key
    );
    out!("export AWS_DEFAULT_REGION={region}");
    Ok(ExitCode::SUCCESS)
}

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
    t.print();
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

/// Percent-encodes a query parameter's value.
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One request with `Connection: close`: (status, body).
fn exchange(addr: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\nUser-Agent: bellows-check/1.0\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    Ok(bellows_node::client::split_response(&raw))
}

pub async fn check(ctx: &Context, file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let stack = match crate::up::load_or_default(file.as_deref()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    if stack.checks.is_empty() {
        out!("the stack defines no [[checks]]");
        return Ok(ExitCode::SUCCESS);
    }
    let listeners: Vec<bellows_proxy::ListenerView> = ctx.client().get("/api/v1/listeners").await?;
    let mut failed = 0;
    for c in &stack.checks {
        let listener = match &c.listener {
            Some(name) => listeners.iter().find(|l| &l.name == name),
            None => listeners.first(),
        };
        let Some(listener) = listener else {
            anyhow::bail!("the running stack has no listener for check `{}`", c.name);
        };
        let (addr, method, path, body) = (
            listener.address.clone(),
            c.method.clone(),
            c.path.clone(),
            c.body.clone().unwrap_or_default(),
        );
        let result =
            tokio::task::spawn_blocking(move || exchange(&addr, &method, &path, &body)).await?;
        let verdict = match result {
            Err(e) => Err(format!("no answer: {e}")),
            Ok((status, _)) if status != c.expect_status => {
                Err(format!("expected status {}, got {status}", c.expect_status))
            }
            Ok((_, body))
                if c.expect_body
                    .as_ref()
                    .is_some_and(|want| !body.contains(want.as_str())) =>
            {
                Err(format!(
                    "the body lacks {:?}: {:.200}",
                    c.expect_body.as_deref().unwrap_or(""),
                    body
                ))
            }
            Ok(_) => Ok(()),
        };
        match verdict {
            Ok(()) => out!("✓ {} passed", c.name),
            Err(why) => {
                failed += 1;
                out!("✗ {} failed: {why}", c.name);
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn terminate(
    ctx: &Context,
    instance: &str,
    decrement_desired: bool,
) -> anyhow::Result<ExitCode> {
    let cap: Capacity = ctx
        .client()
        .post(
            &format!("/api/v1/instances/{instance}/terminate"),
            &TerminateRequest { decrement_desired },
        )
        .await
        .with_context(|| format!("cannot terminate {instance}"))?;
    out!(
        "{instance}: terminating; group desired {} (min {}, max {})",
        cap.desired,
        cap.min,
        cap.max
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn set_health(ctx: &Context, instance: &str, health: &str) -> anyhow::Result<ExitCode> {
    let health = if health == "healthy" {
        bellows_core::group::Health::Healthy
    } else {
        bellows_core::group::Health::Unhealthy
    };
    let () = ctx
        .client()
        .put(
            &format!("/api/v1/instances/{instance}/health"),
            &HealthRequest { health },
        )
        .await
        .with_context(|| format!("cannot set the health of {instance}"))?;
    out!("{instance}: {health:?}");
    Ok(ExitCode::SUCCESS)
}
