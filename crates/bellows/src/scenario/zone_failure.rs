//! A zone fails: every instance in one zone is killed at once (`kill -9`, as a power
//! cut would), and the zone is taken out of the group's zones through `apply` (what
//! one does on AWS with `update-auto-scaling-group --availability-zones`), so that no
//! replacement lands in it. GETs keep flowing throughout: the load balancer retries an
//! idempotent request that could not reach its target on another one, health checks
//! take the dead targets out, and the group launches replacements in the other zones
//! to get back to desired capacity with them balanced.

use std::collections::BTreeMap;
use std::time::Duration;

use bellows_core::group::Lifecycle;
use bellows_load::chart::load_chart;
use bellows_load::http::Url;
use bellows_load::{Config, Load};
use bellows_node::api::ApplyRequest;
use serde::Deserialize;

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

/// `text` (a stack file) with `zone` taken out of group `group`'s zones, the rest of
/// the file as it was; `None` when that would leave the group no zone.
fn without_zone(text: &str, group: &str, zone: &str) -> anyhow::Result<Option<String>> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        groups: BTreeMap<String, GroupZones>,
    }
    #[derive(Deserialize)]
    struct GroupZones {
        zones: Option<toml::Spanned<Vec<String>>>,
    }
    let file: File = toml::from_str(text)?;
    let Some(g) = file.groups.get(group) else {
        anyhow::bail!("the stack file has no group `{group}`");
    };
    let (zones, span) = match &g.zones {
        Some(z) => (z.get_ref().clone(), Some(z.span())),
        // The default zones (see the stack file reference).
        None => (vec!["zone-a".to_owned(), "zone-b".to_owned()], None),
    };
    let rest: Vec<&String> = zones.iter().filter(|z| *z != zone).collect();
    if rest.is_empty() {
        return Ok(None);
    }
    let list = format!(
        "[{}]",
        rest.iter()
            .map(|z| format!("{z:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Some(match span {
        Some(span) => format!("{}{list}{}", &text[..span.start], &text[span.end..]),
        None => {
            // No zones line: add one under the group's header.
            let header = format!("[groups.{group}]");
            let Some(at) = text.lines().position(|l| l.trim() == header) else {
                anyhow::bail!("no `{header}` line to add the zones under");
            };
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            lines.insert(at + 1, format!("zones = {list}"));
            lines.join("\n") + "\n"
        }
    }))
}

/// Takes `zone` out of the group's zones through the audited `apply` path; whether it
/// did, with the timeline saying why not when not.
async fn take_zone_out(env: &Env, group: &str, zone: &str) -> anyhow::Result<bool> {
    let Some(file) = env.own_stack_file() else {
        env.say(format!(
            "attached: the running stack's file is not known here, so zone {zone} stays in group {group}'s zones and replacements may land in it"
        ));
        return Ok(false);
    };
    let (name, text) = file?;
    let Some(source) = without_zone(&text, group, zone)? else {
        env.say(format!(
            "zone {zone} is group {group}'s only zone: there is nowhere else to launch"
        ));
        return Ok(false);
    };
    let done: serde_json::Value = env
        .client
        .post(
            "/api/v1/stack",
            &ApplyRequest {
                file: name,
                source,
                dry_run: false,
            },
        )
        .await?;
    let fields = done["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["fields"].as_array().cloned().unwrap_or_default())
        .map(|f| {
            format!(
                "{}: {} -> {}",
                f["path"].as_str().unwrap_or("?"),
                f["before"],
                f["after"]
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    env.say(format!(
        "zone {zone} taken out of group {group} through apply (audited): {fields}"
    ));
    Ok(true)
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
    // The zone is out of the group before its instances die, so that the group, which
    // notices the deaths within a second, launches their replacements elsewhere.
    let zone_out = take_zone_out(env, &group, &victim_zone).await?;
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
                        && !victims.iter().any(|(id, _)| i.id.to_string() == *id)
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
    let mut checks = vec![
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
    ];
    if zone_out {
        checks.push(check(
            landed.is_empty(),
            format!(
                "no replacement landed in the failed zone {victim_zone}{}",
                if landed.is_empty() {
                    String::new()
                } else {
                    format!(": {}", landed.join(", "))
                }
            ),
        ));
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_is_taken_out_of_one_group_and_the_file_kept() {
        let text = "# ours\n[groups.web]\nmin = 3\nzones = [\"zone-a\", \"zone-b\", \"zone-c\"] # three\n\n[groups.db]\nzones = [\"zone-b\"]\n";
        assert_eq!(
            without_zone(text, "web", "zone-b").unwrap().unwrap(),
            "# ours\n[groups.web]\nmin = 3\nzones = [\"zone-a\", \"zone-c\"] # three\n\n[groups.db]\nzones = [\"zone-b\"]\n"
        );
        // The only zone: nothing to take it out to.
        assert_eq!(without_zone(text, "db", "zone-b").unwrap(), None);
        // No zones line: the defaults, less the zone, written under the header.
        let text = "[groups.web]\nmin = 1\n";
        assert_eq!(
            without_zone(text, "web", "zone-a").unwrap().unwrap(),
            "[groups.web]\nzones = [\"zone-b\"]\nmin = 1\n"
        );
        assert!(without_zone(text, "nope", "zone-a").is_err());
    }
}
