//! A zone fails: `bellows zone fail` kills every instance in one zone at once (`kill
//! -9`, as a power cut would) and keeps launches out of it. GETs keep flowing
//! throughout: the load balancer retries an idempotent request that could not reach
//! its target on another one, health checks take the dead targets out, and the group
//! launches replacements in the other zones to get back to desired capacity with them
//! balanced. Then the zone comes back (`bellows zone restore`), and the group moves
//! instances into it one at a time, launching each before terminating the one it
//! replaces, still without a failed GET.

use std::collections::BTreeMap;
use std::time::Duration;

use bellows_core::group::{Activity, ActivityKind, Lifecycle};
use bellows_load::chart::load_chart;
use bellows_load::http::Url;
use bellows_load::{Config, Load};
use bellows_node::api::{ZoneChange, ZoneRequest};

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
        // Two instances a zone: a zone's failure kills two targets at once, and the
        // load balancer must still fail no GET.
        desired = 6,
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

/// The group's instances by zone in `snap` (none when the wait for it timed out),
/// said on the timeline.
fn say_zones(env: &Env, snap: Option<&super::Snapshot>, group: &str) -> BTreeMap<String, usize> {
    let Some(s) = snap else {
        return BTreeMap::new();
    };
    let z = zones(s, group);
    env.say(format!("in service by zone: {}", show(&z)));
    z
}

/// Starts or ends `zone`'s outage through the control API (audited).
async fn set_zone(env: &Env, zone: &str, available: bool) -> anyhow::Result<ZoneChange> {
    Ok(env
        .client
        .put(&format!("/api/v1/zones/{zone}"), &ZoneRequest { available })
        .await?)
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
    if snap
        .status
        .groups
        .iter()
        .any(|g| g.name == group && g.zones.iter().all(|z| *z == victim_zone))
    {
        env.say(format!(
            "zone {victim_zone} is group {group}'s only zone: there is nowhere else to launch"
        ));
    }
    // The outage kills the zone's instances (`kill -9`, a power cut) and keeps launches
    // out of it, so the group replaces them in the other zones.
    let killed_at = env.t();
    let outage_start = bellows_node::clock::now();
    let outage = set_zone(env, &victim_zone, false).await?;
    let victims: Vec<String> = outage.killed.iter().map(ToString::to_string).collect();
    env.say(format!(
        "zone {victim_zone} fails (bellows zone fail {victim_zone}, audited): kill -9 {}",
        victims.join(", ")
    ));
    if env.attached() {
        env.say(format!(
            "(the scenario ends the outage itself; should it be stopped before, `bellows zone restore {victim_zone}` does)"
        ));
    }
    // Back to desired, every instance in service.
    let bound = Duration::from_secs(if short { 45 } else { 120 });
    // Every instance seen in the failed zone besides the killed ones (none should be).
    let mut landed: Vec<String> = Vec::new();
    let recovered = env
        .wait_until(
            bound,
            |_| {},
            |s| {
                for i in s.instances.iter().filter(|i| {
                    i.group == group
                        && i.zone == victim_zone
                        && !victims.contains(&i.id.to_string())
                }) {
                    if !landed.contains(&i.id.to_string()) {
                        landed.push(i.id.to_string());
                    }
                }
                let z = zones(s, &group);
                z.values().sum::<usize>() == d0 as usize
                    && s.instances.iter().filter(|i| i.group == group).count() == d0 as usize
                    && !victims
                        .iter()
                        .any(|id| s.instances.iter().any(|i| i.id.to_string() == *id))
            },
        )
        .await?;
    let recovered_at = env.t();
    // A little longer under load: the replacements take requests.
    env.watch_for(Duration::from_secs(2), |_| {}).await?;
    let after = say_zones(env, recovered.as_ref(), &group);

    // What the group said of its launches during the outage: none may promise to
    // terminate an instance in the failed zone, whose instances died with it.
    let promised = promised_terminations(env, &group, &victim_zone, outage_start).await?;
    // The zone comes back, still under load: the group moves instances into it one at
    // a time, each launched before the one it replaces goes.
    set_zone(env, &victim_zone, true).await?;
    env.say(format!(
        "zone {victim_zone} is back (bellows zone restore {victim_zone}, audited)"
    ));
    let restored_at = env.t();
    let mut fewest_in_service = usize::MAX;
    let rebalanced = env
        .wait_until(
            bound,
            |_| {},
            |s| {
                let in_service = s
                    .instances
                    .iter()
                    .filter(|i| i.group == group && i.lifecycle == Lifecycle::InService)
                    .count();
                fewest_in_service = fewest_in_service.min(in_service);
                let z = zones(s, &group);
                let all = before.keys().all(|k| z.contains_key(k));
                let (lo, hi) = (z.values().min(), z.values().max());
                all && hi.zip(lo).is_some_and(|(h, l)| h - l <= 1)
                    && s.instances.iter().filter(|i| i.group == group).count() == d0 as usize
            },
        )
        .await?;
    let rebalanced_at = env.t();
    let back = say_zones(env, rebalanced.as_ref(), &group);
    running.stop();
    let report = running.finish().await;
    if let Some(p) = &a.chart {
        std::fs::write(
            p,
            load_chart("zone-failure: GETs while a zone fails", &report),
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
    let (lo, hi) = (
        after.values().min().copied().unwrap_or(0),
        after.values().max().copied().unwrap_or(0),
    );
    let checks = vec![
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
            recovered.is_some()
                && hi - lo <= 1
                && before
                    .keys()
                    .all(|z| *z == victim_zone || after.contains_key(z)),
            format!("zones left balanced again: {}", show(&after)),
        ),
        check(
            promised.is_empty(),
            format!(
                "no launch during the outage promised to terminate an instance in {victim_zone}, where none is left{}",
                if promised.is_empty() {
                    String::new()
                } else {
                    format!(": {}", promised.join("; "))
                }
            ),
        ),
        check(
            landed.is_empty(),
            format!(
                "no replacement landed in the failed zone {victim_zone}{}",
                if landed.is_empty() {
                    String::new()
                } else {
                    format!(": {}", landed.join(", "))
                }
            ),
        ),
        check(
            rebalanced.is_some() && fewest_in_service >= d0 as usize,
            if rebalanced.is_some() {
                format!(
                    "zone {victim_zone} back: balanced over every zone again {:.1}s later ({}), never fewer than {d0} in service meanwhile (fewest {fewest_in_service})",
                    rebalanced_at - restored_at,
                    show(&back)
                )
            } else {
                format!(
                    "zone {victim_zone} back: balanced over every zone within {}s",
                    bound.as_secs()
                )
            },
        ),
    ];
    Ok(checks)
}

/// The launches of `group` since `since` whose cause says an instance in `zone` is
/// terminated once the launch is in service (a rebalancing's promise), as
/// "INSTANCE: CAUSE".
async fn promised_terminations(
    env: &Env,
    group: &str,
    zone: &str,
    since: bellows_core::Time,
) -> anyhow::Result<Vec<String>> {
    let acts: Vec<Activity> = env.client.get("/api/v1/activities?limit=1000").await?;
    let promise = format!("One instance in {zone} is terminated once it is in service");
    Ok(acts
        .into_iter()
        .filter(|a| {
            a.group == group
                && a.kind == ActivityKind::Launch
                && a.start >= since
                && a.cause.contains(&promise)
        })
        .map(|a| format!("{}: {}", a.instance, a.cause))
        .collect())
}
