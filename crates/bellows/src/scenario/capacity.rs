//! Seed 001, scenario 1: more users than the group's instances admit. The IP tracker
//! turns the extra ones away with a 503 "scaling out" page, the app's
//! RejectedConnections metric breaches the alarm, the policy adds two instances, the
//! turned-away users get in on their next try and the 503s stop.

use std::time::Duration;

use bellows_load::chart::{Panel, Series};
use bellows_load::http::Url;
use bellows_load::ws::WsConfig;
use bellows_load::{Config, Load};

use super::{Check, Env, ScenarioArgs, check, write_chart};

/// The IP tracker's page on the default stack.
const PAGE: &str = "/app-x7k9m2n8/";

/// Users one instance admits in the short stack.
const SHORT_USERS_PER_INSTANCE: usize = 5;

pub fn stack(short: bool) -> String {
    if !short {
        // The default stack as it is, on an ephemeral port so that it never collides
        // with a running `bellows up`.
        let example = include_str!("../../../../examples/ip-tracker.toml");
        let body = example
            .split_once("\n[target_groups")
            .map_or(example, |(_, rest)| rest);
        return format!("[target_groups{body}").replace("127.0.0.1:8080", "127.0.0.1:0");
    }
    format!(
        r#"
[target_groups.tracker]
port = 5000
algorithm = "least_outstanding_requests"
deregistration_delay = "2s"
[target_groups.tracker.stickiness]
type = "lb_cookie"
duration = "1d"
[target_groups.tracker.health_check]
path = "{PAGE}health"
interval = "1s"
timeout = "500ms"

[listeners.http]
address = "127.0.0.1:0"
default = {{ fixed_response = {{ status = 404, content_type = "text/plain", body = "The IP tracker lives at {PAGE}" }} }}

[[listeners.http.rules]]
priority = 10
path = "{PAGE}*"
forward = "tracker"

[groups.tracker]
min = 1
max = 6
desired = 1
zones = ["zone-a", "zone-b"]
health_check_type = "ELB"
default_cooldown = "30s"
target_groups = ["tracker"]

[groups.tracker.launch]
command = ["bellows", "app", "ip-tracker"]
env = {{ BASE_PATH = "{PAGE}", MAX_USERS_PER_INSTANCE = "{SHORT_USERS_PER_INSTANCE}", HEARTBEAT_SECONDS = "1", SESSION_TIMEOUT_SECONDS = "30" }}
stop_timeout = "2s"

[policies.add-two]
group = "tracker"
type = "simple"
adjustment = 2
cooldown = "30s"

[alarms.users-turned-away]
namespace = "IPTracker"
metric = "RejectedConnections"
dimensions = {{ AutoScalingGroupName = "tracker" }}
statistic = "Sum"
period = "2s"
evaluation_periods = 1
comparison = ">"
threshold = 0
treat_missing_data = "notBreaching"
alarm_actions = ["add-two"]
"#
    )
}

pub async fn run(env: &mut Env, a: &ScenarioArgs) -> anyhow::Result<Vec<Check>> {
    let short = env.short;
    let group = env.group.clone();
    let Some(snap) = env.wait_ready(Duration::from_secs(30)).await? else {
        return Ok(vec![check(
            false,
            "the group came into service within 30 s",
        )]);
    };
    let d0 = snap.desired(&group);
    let per = if short { SHORT_USERS_PER_INSTANCE } else { 25 };
    let admit = d0 as usize * per;
    let users = a.users.unwrap_or(admit + if short { 7 } else { 10 });
    let retry = Duration::from_secs(if short { 1 } else { 5 });
    let (quiet, bound) = if short {
        (Duration::from_secs(5), Duration::from_secs(75))
    } else {
        (Duration::from_secs(15), Duration::from_secs(300))
    };
    let path = a.path.clone().unwrap_or_else(|| PAGE.to_owned());
    env.say(format!(
        "opening {users} users (browser tabs: page, then WebSocket with heartbeats) while {d0} instance{} admit {admit} ({per} each): the rest get the 503 \"scaling out\" page and try again every {}s",
        if d0 == 1 { "" } else { "s" },
        retry.as_secs()
    ));
    let cfg = Config {
        url: Url::parse(&env.url(&path))?,
        method: "GET".into(),
        headers: vec![],
        body: vec![],
        keep_alive: false,
        load: Load::WebSocket(WsConfig {
            clients: users,
            socket_path: WsConfig::socket_for(&path),
            heartbeat: Duration::from_secs(if short { 1 } else { 30 }),
            retry,
            spread: Duration::from_secs(if short { 2 } else { 5 }),
        }),
        duration: None,
        requests: None,
        timeout: Duration::from_secs(10),
        max_connections: 1,
    };
    let running = bellows_load::start(cfg).await?;
    let load_t0 = env.t();
    let rec = running.recorder().clone();
    let mut narrated_second = 0u64;
    let mut first_503: Option<f64> = None;
    let mut last_503: Option<f64> = None;
    let mut alarm_at: Option<(f64, String)> = None;
    let mut out_at: Option<f64> = None;
    let mut peak = d0;
    let mut found: Option<serde_json::Value> = None;
    let start = crate::clock::now();
    let settled = loop {
        let snap = env.poll().await?;
        let elapsed = running.elapsed();
        let (connected, rows) = {
            let mut r = rec.lock().expect("recorder lock");
            r.advance(elapsed);
            (r.connected, r.seconds.clone())
        };
        // Each whole second of load once: what the users saw.
        let now_sec = elapsed.as_secs();
        let from = narrated_second;
        for row in rows
            .iter()
            .filter(|r| r.second >= from && r.second < now_sec)
        {
            let t = load_t0 + row.second as f64;
            if row.status_503 > 0 {
                first_503.get_or_insert(t);
                last_503 = Some(t + 1.0);
            }
            env.say(format!(
                "users: {} connected, {} turned away (503) in second {}",
                row.connected, row.status_503, row.second
            ));
            narrated_second = row.second + 1;
        }
        if alarm_at.is_none()
            && let Some(al) = snap.alarms.iter().find(|al| {
                al.history
                    .iter()
                    .any(|h| h.to == bellows_core::alarm::AlarmState::Alarm)
            })
        {
            alarm_at = Some((env.t(), al.name.clone()));
        }
        let d = snap.desired(&group);
        peak = peak.max(d);
        if out_at.is_none() && d > d0 {
            out_at = Some(env.t());
            // What CloudWatch Investigations does in the seed: the cause, from the record.
            let window = (env.t() - load_t0) as u64 + 10;
            found = env.investigate(window).await;
        }
        let quiet_since = last_503.unwrap_or(load_t0);
        if out_at.is_some()
            && connected as usize == users
            && env.t() - quiet_since >= quiet.as_secs_f64()
        {
            break true;
        }
        if crate::clock::since(start) >= bound {
            break false;
        }
        crate::clock::sleep(Duration::from_millis(500)).await;
    };
    running.stop();
    let report = running.finish().await;
    let rows = report.seconds;
    let total_503: u64 = rows.iter().map(|r| r.status_503).sum();
    // Desired and 503s side by side, a row per second.
    out!("");
    out!("  second  desired  in service  503/s  connected");
    for row in &rows {
        let t = load_t0 + row.second as f64 + 1.0;
        let (d, s) = env
            .capacity_log
            .iter()
            .rev()
            .find(|p| p.0 <= t)
            .map_or((d0, d0), |p| (p.1, p.2));
        out!(
            "  {:>6}  {:>7}  {:>10}  {:>5}  {:>9}  {}",
            row.second,
            d,
            s,
            row.status_503,
            row.connected,
            "#".repeat(row.status_503.min(60) as usize)
        );
    }
    let (desired, in_service) = env.capacity_series();
    let shift = |p: &[(f64, f64)]| -> Vec<(f64, f64)> {
        p.iter()
            .map(|&(t, v)| (t - load_t0, v))
            .filter(|p| p.0 >= 0.0)
            .collect()
    };
    write_chart(
        a.chart.as_deref(),
        "capacity: users turned away (503) while the group scales out",
        &[
            Panel {
                title: format!("group {group}: capacity"),
                series: vec![
                    Series {
                        points: shift(&desired.points),
                        ..desired
                    },
                    Series {
                        points: shift(&in_service.points),
                        ..in_service
                    },
                ],
                x_axis: None,
            },
            Panel {
                title: "users".into(),
                series: vec![
                    Series {
                        name: "503 per s".into(),
                        color: "#c92a2a",
                        points: rows
                            .iter()
                            .map(|r| (r.second as f64, r.status_503 as f64))
                            .collect(),
                        step: false,
                        dashed: false,
                    },
                    Series {
                        name: "connected".into(),
                        color: "#1c7ed6",
                        points: rows
                            .iter()
                            .map(|r| (r.second as f64, r.connected as f64))
                            .collect(),
                        step: true,
                        dashed: false,
                    },
                ],
                x_axis: None,
            },
        ],
    )?;
    let ws = report.summary.websocket.unwrap_or_default();
    let top = found.as_ref().and_then(|r| r["hypotheses"].get(0).cloned());
    let field = |k: &str| {
        top.as_ref()
            .map(|h| h[k].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    let (cause, remedy) = (
        field("cause"),
        top.as_ref()
            .map(|h| {
                h["remedy"]["command"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .unwrap_or_default(),
    );
    let evidence = top
        .as_ref()
        .map(|h| h["evidence"].to_string())
        .unwrap_or_default();
    let alarm_named = alarm_at
        .as_ref()
        .is_some_and(|(_, name)| evidence.contains(name.as_str()));
    Ok(vec![
        check(
            cause == "capacity_limit"
                && alarm_named
                && evidence.contains("ExecutePolicy")
                && remedy.starts_with("bellows scale"),
            format!(
                "the investigation names the capacity limit (top cause: {cause}), with the alarm and the policy's audit record as evidence, and `{remedy}` as the remedy"
            ),
        ),
        check(
            total_503 > 0,
            format!(
                "503s appeared: {total_503} pages or sockets turned away{}",
                first_503
                    .map(|t| format!(", the first at t+{t:.0}s"))
                    .unwrap_or_default()
            ),
        ),
        check(
            alarm_at.is_some(),
            match &alarm_at {
                Some((t, name)) => format!("alarm {name} fired (seen at t+{t:.1}s)"),
                None => "an alarm fired".into(),
            },
        ),
        check(
            out_at.is_some(),
            format!(
                "the group scaled out: desired {d0} -> {peak}{}",
                out_at.map(|t| format!(" at t+{t:.1}s")).unwrap_or_default()
            ),
        ),
        check(
            settled,
            format!(
                "the 503s stopped: {}; {}/{users} users connected at the end ({} sockets opened in all)",
                match last_503 {
                    Some(t) => format!(
                        "the last at t+{t:.0}s, then {:.0}s without one",
                        env.t() - t
                    ),
                    None => "none seen".into(),
                },
                ws.connected_at_end,
                ws.opened
            ),
        ),
    ])
}
