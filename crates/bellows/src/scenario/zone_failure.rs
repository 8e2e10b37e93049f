//! A zone fails: every instance in one zone is killed at once (`kill -9`, as a power
//! cut would). GETs keep flowing throughout: the load balancer retries an idempotent
//! request that could not reach its target on another one, health checks take the dead
//! targets out, and the group launches replacements to get back to desired capacity
//! with its zones balanced.

use std::collections::BTreeMap;
use std::time::Duration;

use bellows_core::group::Lifecycle;
use bellows_load::chart::load_chart;
use bellows_load::http::Url;
use bellows_load::{Config, Load};

use super::{Check, Env, ScenarioArgs, check};

pub fn stack(short: bool) -> String {
    format!(
        r#"
[target_groups.web]
deregistration_delay = "{drain}"
[target_groups.web.health_check]
path = "/health"
interval = "1s"
timeout = "500ms"

[listeners.http]
address = "127.0.0.1:0"
default = {{ forward = "web" }}

[groups.web]
min = 3
max = 6
desired = {desired}
zones = ["zone-a", "zone-b", "zone-c"]
target_groups = ["web"]

[groups.web.launch]
command = ["bellows", "app", "echo"]
stop_timeout = "2s"
"#,
        drain = if short { "2s" } else { "10s" },
        // One instance a zone. With two, a GET can meet both dead targets of the zone
        // in a row and use up the load balancer's three attempts (README, Scenarios).
        desired = 3,
    )
}

fn zones(s: &super::Snapshot, group: &str) -> BTreeMap<String, usize> {
    let mut z = BTreeMap::new();
    for i in s
        .instances
        .iter()
        .filter(|i| i.group == group && i.lifecycle == Lifecycle::InService)
    {
        *z.entry(i.zone.clone()).or_default() += 1;
    }
    z
}

fn show(z: &BTreeMap<String, usize>) -> String {
    z.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
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
    let before = zones(&snap, &group);
    env.say(format!(
        "{d0} instances in service by zone: {}",
        show(&before)
    ));
    let Some(victim_zone) = before
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(z, _)| z.clone())
    else {
        return Ok(vec![check(false, "instances in some zone")]);
    };
    let path = a.path.clone().unwrap_or_else(|| "/".to_owned());
    let connections = 4;
    env.say(format!(
        "GET {path} from {connections} keep-alive connections, each sending the next when answered"
    ));
    let cfg = Config {
        url: Url::parse(&env.url(&path))?,
        method: "GET".into(),
        headers: vec![],
        body: vec![],
        keep_alive: true,
        load: Load::Closed { connections },
        duration: None,
        requests: None,
        timeout: Duration::from_secs(10),
        max_connections: 1,
    };
    let running = bellows_load::start(cfg).await?;
    env.watch_for(Duration::from_secs(2), |_| {}).await?;
    let snap = env.poll().await?;
    let victims: Vec<(String, u32)> = snap
        .instances
        .iter()
        .filter(|i| {
            i.group == group && i.zone == victim_zone && i.lifecycle == Lifecycle::InService
        })
        .filter_map(|i| i.pid.map(|p| (i.id.to_string(), p)))
        .collect();
    let killed_at = env.t();
    for (id, pid) in &victims {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        env.say(format!(
            "zone {victim_zone} fails: kill -9 {id} (pid {pid})"
        ));
    }
    // Back to desired, every instance in service.
    let bound = Duration::from_secs(if short { 45 } else { 120 });
    let recovered = env
        .wait_until(
            bound,
            |_| {},
            |s| {
                let z = zones(s, &group);
                z.values().sum::<usize>() == d0 as usize
                    && s.instances.iter().filter(|i| i.group == group).count() == d0 as usize
                    && !victims
                        .iter()
                        .any(|(id, _)| s.instances.iter().any(|i| i.id.to_string() == *id))
            },
        )
        .await?;
    let recovered_at = env.t();
    // A little longer under load: the replacements take requests.
    env.watch_for(Duration::from_secs(2), |_| {}).await?;
    running.stop();
    let report = running.finish().await;
    if let Some(p) = &a.chart {
        std::fs::write(
            p,
            load_chart("zone-failure: GETs while a zone fails", &report.seconds),
        )?;
        out!("chart: {}", p.display());
    }
    let s = &report.summary;
    let failed: u64 = s.errors.values().sum::<u64>()
        + s.statuses
            .iter()
            .filter(|(c, _)| !(200..400).contains(*c))
            .map(|(_, n)| n)
            .sum::<u64>();
    let after = recovered
        .as_ref()
        .map(|s| zones(s, &group))
        .unwrap_or_default();
    let (lo, hi) = (
        after.values().min().copied().unwrap_or(0),
        after.values().max().copied().unwrap_or(0),
    );
    if recovered.is_some() {
        env.say(format!("in service by zone: {}", show(&after)));
    }
    Ok(vec![
        check(
            !victims.is_empty(),
            format!(
                "killed every instance of zone {victim_zone}: {}",
                victims.len()
            ),
        ),
        check(
            failed == 0 && s.completed > 0,
            format!(
                "no GET failed: {} requests, {failed} failed (statuses {:?}, errors {:?}), p99 {:.1} ms, max {:.1} ms",
                s.completed, s.statuses, s.errors, s.latency_ms.p99, s.latency_ms.max
            ),
        ),
        check(
            recovered.is_some(),
            if recovered.is_some() {
                format!(
                    "back to {d0} in service {:.1}s after the failure",
                    recovered_at - killed_at
                )
            } else {
                format!("back to {d0} in service within {}s", bound.as_secs())
            },
        ),
        check(
            recovered.is_some() && hi - lo <= 1 && after.len() >= 2,
            format!("zones balanced again: {}", show(&after)),
        ),
    ])
}
