//! Seed 001, scenario 2: revoke the listener's ingress rule (its security group) while
//! requests flow; they fail, connections dropped without an answer; restore it and
//! service comes back. Both changes are recorded.

use std::net::IpAddr;
use std::time::Duration;

use bellows_core::lb::cidr::Cidr;
use bellows_load::chart::load_chart;
use bellows_load::http::Url;
use bellows_load::schedule::Plan;
use bellows_load::{Config, Load};
use bellows_node::api::{IngressChange, IngressRequest};
use bellows_proxy::ListenerView;

use super::{Check, Env, ScenarioArgs, check};

/// The chart when no load ran: the group's desired and in-service curves.
fn write_capacity_chart(env: &Env, a: &ScenarioArgs) -> anyhow::Result<()> {
    let (desired, in_service) = env.capacity_series();
    super::write_chart(
        a.chart.as_deref(),
        "ingress: the group did not come into service",
        &[bellows_load::chart::Panel {
            title: "instances".into(),
            series: vec![desired, in_service],
            x_axis: None,
        }],
    )
}

pub fn stack(short: bool) -> String {
    format!(
        r#"
[target_groups.web]
[target_groups.web.health_check]
path = "/health"
interval = "{interval}"
timeout = "500ms"

[listeners.http]
address = "127.0.0.1:0"
default = {{ forward = "web" }}
# The security group: who may connect.
ingress = ["127.0.0.0/8"]

[groups.web]
min = 2
max = 2
desired = 2
zones = ["zone-a", "zone-b"]
target_groups = ["web"]

[groups.web.launch]
command = ["bellows", "app", "echo"]
stop_timeout = "2s"
"#,
        interval = if short { "1s" } else { "5s" }
    )
}

pub async fn run(env: &mut Env, a: &ScenarioArgs) -> anyhow::Result<Vec<Check>> {
    let short = env.short;
    if env.wait_ready(Duration::from_secs(30)).await?.is_none() {
        write_capacity_chart(env, a)?;
        return Ok(vec![check(
            false,
            "the group came into service within 30 s",
        )]);
    }
    let listeners: Vec<ListenerView> = env.client.get("/api/v1/listeners").await?;
    let listener = listeners
        .iter()
        .find(|l| l.name == env.listener)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("listener {} is gone", env.listener))?;
    // Revoke whatever admits us (all of it: a workshop stack may list several).
    let rules: Vec<Cidr> = listener.ingress.clone();
    if rules.is_empty() {
        return Ok(vec![check(
            false,
            "the listener has ingress rules to revoke",
        )]);
    }
    let phase = Duration::from_secs(if short { 3 } else { 10 });
    let rate = 50.0;
    let path = a.path.clone().unwrap_or_else(|| "/".to_owned());
    env.say(format!(
        "GET {path} at {rate:.0}/s, a new connection each (the rule is checked when a connection opens), {}s per phase",
        phase.as_secs()
    ));
    let cfg = Config {
        url: Url::parse(&env.url(&path))?,
        method: "GET".into(),
        headers: vec![],
        body: vec![],
        keep_alive: false,
        load: Load::Open {
            plan: Plan::fixed(rate, 3600.0),
            what: format!("fixed {rate}/s"),
        },
        duration: None,
        requests: None,
        timeout: Duration::from_secs(2),
        max_connections: 256,
    };
    let started_at = bellows_node::clock::now();
    let running = bellows_load::start(cfg).await?;
    let rec = running.recorder().clone();
    let counts = || {
        let r = rec.lock().expect("recorder lock");
        let ok: u64 = r.seconds.iter().map(|s| s.ok).sum();
        (ok, r.completed() - ok)
    };
    let settle = Duration::from_millis(700);
    env.watch_for(phase, |_| {}).await?;
    let (ok1, bad1) = counts();
    env.say(format!("before: {ok1} answered, {bad1} failed"));
    let revoked = change_all(env, &rules, false).await?;
    // In-flight requests finish; count from when the change has taken hold.
    crate::clock::sleep(settle).await;
    let (ok2a, bad2a) = counts();
    env.watch_for(phase, |_| {}).await?;
    let (ok2, bad2) = counts();
    let (ok_revoked, bad_revoked) = (ok2 - ok2a, bad2 - bad2a);
    env.say(format!(
        "while revoked: {ok_revoked} answered, {bad_revoked} failed (connections dropped, no answer)"
    ));
    // What CloudWatch Investigations does in the seed: find the cause from the record.
    let window = phase.as_secs() * 2 + 5;
    let found = env.investigate(window).await;
    let top = found.as_ref().and_then(|r| r["hypotheses"].get(0).cloned());
    let restored = change_all(env, &rules, true).await?;
    crate::clock::sleep(settle).await;
    let (ok3a, bad3a) = counts();
    env.watch_for(phase, |_| {}).await?;
    let (ok3, bad3) = counts();
    let (ok_back, bad_back) = (ok3 - ok3a, bad3 - bad3a);
    env.say(format!("after: {ok_back} answered, {bad_back} failed"));
    running.stop();
    let report = running.finish().await;
    if let Some(p) = &a.chart {
        std::fs::write(
            p,
            load_chart(
                &format!("ingress: revoked at +{:.0}s, restored", phase.as_secs_f64()),
                &report,
            ),
        )?;
        out!("chart: {}", p.display());
    }
    // The record of both changes: the audit trail.
    let after: Vec<ListenerView> = env.client.get("/api/v1/listeners").await?;
    let now_rules = after
        .iter()
        .find(|l| l.name == env.listener)
        .map(|l| l.ingress.clone())
        .unwrap_or_default();
    let recorded = recorded_changes(env, started_at).await;
    if let Some(r) = &recorded {
        for (authorized, cidr, actor) in r {
            env.say(format!(
                "recorded: {} {cidr} by {actor}",
                if *authorized { "authorize" } else { "revoke" }
            ));
        }
    }
    let holds = |auth: bool| {
        recorded.as_ref().is_some_and(|r| {
            rules.iter().all(|c| {
                r.iter()
                    .any(|(a, cidr, _)| *a == auth && *cidr == c.to_string())
            })
        })
    };
    let cause = top
        .as_ref()
        .map(|h| h["cause"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let remedy = top
        .as_ref()
        .map(|h| {
            h["remedy"]["command"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default();
    // The scenario's requests come from 127.0.0.1.
    let client: IpAddr = std::net::Ipv4Addr::LOCALHOST.into();
    let named = named_rule(&remedy, &env.listener);
    Ok(vec![
        check(
            cause == "ingress_revoked" && names_the_admitting_rule(named, &rules, client),
            format!(
                "the investigation names the revoked rule that admitted the requests from {client} ({}) as the cause and `{remedy}` as the remedy (top cause: {cause})",
                named.map_or("none named".to_owned(), |c| c.to_string())
            ),
        ),
        check(
            bad1 == 0 && ok1 > 0,
            format!(
                "before the change every request was answered ({ok1} of {})",
                ok1 + bad1
            ),
        ),
        check(
            ok_revoked == 0 && bad_revoked > 0,
            format!(
                "while revoked every request failed ({bad_revoked} failed, {ok_revoked} answered)"
            ),
        ),
        check(
            bad_back == 0 && ok_back > 0,
            format!(
                "after restoring, every request was answered again ({ok_back} of {})",
                ok_back + bad_back
            ),
        ),
        check(
            revoked.iter().all(|c| c.changed) && restored.iter().all(|c| c.changed),
            format!(
                "both changes were made and recorded: {} revoked, {} authorized",
                revoked.len(),
                restored.len()
            ),
        ),
        check(
            rules.iter().all(|r| now_rules.contains(r)),
            format!(
                "the listener admits [{}] again",
                now_rules
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        check(
            holds(false) && holds(true),
            format!(
                "the audit trail holds both changes with who made them ({} ingress records)",
                recorded.as_ref().map_or(0, Vec::len),
            ),
        ),
    ])
}

/// The rule a remedy `bellows ingress authorize LISTENER CIDR` authorizes again.
fn named_rule(remedy: &str, listener: &str) -> Option<Cidr> {
    remedy
        .strip_prefix(&format!("bellows ingress authorize {listener} "))
        .and_then(|c| c.trim().parse().ok())
}

/// Whether the rule named is one of those revoked and admits the scenario's client: a
/// remedy that authorizes another revoked rule again (the last one revoked, say) would
/// let no one back in, so naming just any rule does not pass.
fn names_the_admitting_rule(named: Option<Cidr>, revoked: &[Cidr], client: IpAddr) -> bool {
    named.is_some_and(|c| revoked.contains(&c) && c.contains(client))
}

/// Revokes (or authorizes again) every rule through the API, narrating each.
async fn change_all(
    env: &Env,
    rules: &[Cidr],
    authorize: bool,
) -> anyhow::Result<Vec<IngressChange>> {
    let verb = if authorize { "authorize" } else { "revoke" };
    let mut changes = Vec::new();
    for cidr in rules {
        let c: IngressChange = env
            .client
            .post(
                &format!("/api/v1/listeners/{}/ingress/{verb}", env.listener),
                &IngressRequest {
                    cidr: cidr.to_string(),
                },
            )
            .await?;
        env.say(format!(
            "{} {} on listener {}: ingress now [{}] (changed: {})",
            if authorize { "authorized" } else { "revoked" },
            c.cidr,
            c.listener,
            c.ingress
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            c.changed
        ));
        changes.push(c);
    }
    Ok(changes)
}

/// The ingress changes in the audit trail since `since`, as (authorized, cidr, actor).
async fn recorded_changes(
    env: &Env,
    since: bellows_core::Time,
) -> Option<Vec<(bool, String, String)>> {
    let ago = bellows_node::clock::now().since(since).as_millis() / 1000 + 5;
    let records: Vec<bellows_node::store::AuditEntry> = env
        .client
        .get(&format!(
            "/api/v1/audit?target=listener/{}&since={ago}s&limit=1000",
            env.listener
        ))
        .await
        .ok()?;
    Some(
        records
            .into_iter()
            .rev()
            .map(|e| e.record)
            .filter(|r| r.time >= since && r.succeeded())
            .filter_map(|r| {
                let authorized = match r.action.as_str() {
                    "AuthorizeSecurityGroupIngress" => true,
                    "RevokeSecurityGroupIngress" => false,
                    _ => return None,
                };
                let cidr = r.after["cidr"].as_str()?.to_owned();
                Some((authorized, cidr, format!("{} ({})", r.actor, r.source)))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn the_verdict_wants_the_rule_that_admitted_the_client_not_any_rule() {
        let client: IpAddr = std::net::Ipv4Addr::LOCALHOST.into();
        // Revoked in this order: the last one revoked does not admit 127.0.0.1.
        let revoked = [cidr("127.0.0.0/8"), cidr("10.0.0.0/8")];
        let verdict =
            |remedy: &str| names_the_admitting_rule(named_rule(remedy, "http"), &revoked, client);
        assert!(verdict("bellows ingress authorize http 127.0.0.0/8"));
        assert!(!verdict("bellows ingress authorize http 10.0.0.0/8"));
        // A rule that admits the client but was never revoked is not the cause.
        assert!(!verdict("bellows ingress authorize http 0.0.0.0/0"));
        // Another listener's rule, another remedy, or none at all.
        assert!(!verdict("bellows ingress authorize https 127.0.0.0/8"));
        assert!(!verdict("bellows scale web --desired 2"));
        assert!(!verdict(""));
        assert_eq!(
            named_rule("bellows ingress authorize http 127.0.0.0/8", "http"),
            Some(cidr("127.0.0.0/8"))
        );
    }
}
