//! End to end: each workshop scenario passes with short periods, on a stack of its own
//! and attached to a running `bellows up`.

// End-to-end tests measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Runs `bellows [global] scenario NAME --short [args]`, at most `limit`; returns its
/// exit code and output.
fn scenario(global: &[&str], name: &str, args: &[&str], limit: Duration) -> (i32, String) {
    let dir = scratch().0;
    let out_path = dir.join("out.txt");
    let mut child = Command::new(BIN)
        .args(global)
        .args(["scenario", name, "--short"])
        .args(args)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("bellows runs");
    let start = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "scenario {name} ran over {limit:?}:\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = std::fs::read_to_string(&out_path).unwrap();
    let _ = std::fs::remove_dir_all(dir);
    (code, out)
}

fn passes(name: &str, code: i32, out: &str) {
    assert_eq!(code, 0, "scenario {name} failed:\n{out}");
    assert!(out.contains(&format!("verdict: PASS ({name})")), "{out}");
    assert!(!out.contains("  FAIL  "), "{out}");
}

#[test]
fn capacity_turns_users_away_until_the_group_scales_out() {
    let dir = scratch().0;
    let chart = dir.join("capacity.svg");
    let (code, out) = scenario(
        &[],
        "capacity",
        &["--chart", chart.to_str().unwrap()],
        Duration::from_secs(90),
    );
    passes("capacity", code, &out);
    // The timeline tells why: the alarm, and the policy it triggered.
    assert!(
        out.contains("alarm users-turned-away: OK -> ALARM"),
        "{out}"
    );
    assert!(out.contains("triggered policy add-two"), "{out}");
    // The investigation when the group scales out: the capacity limit, with the app's
    // rejections as evidence and the command that adds capacity now.
    assert!(
        out.contains("investigation: capacity limit reached in group tracker"),
        "{out}"
    );
    assert!(out.contains("IPTracker/RejectedConnections"), "{out}");
    assert!(out.contains("remedy: scale out now"), "{out}");
    assert!(out.contains("12/12 users connected"), "{out}");
    // Desired and the 503s side by side, and as a chart.
    assert!(
        out.contains("second  desired  in service  503/s  connected"),
        "{out}"
    );
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.contains("503 per s") && svg.contains("desired"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cpu_stress_scales_out_and_back_in() {
    let (code, out) = scenario(&[], "cpu", &[], Duration::from_secs(120));
    passes("cpu", code, &out);
    assert!(
        out.contains("TargetTracking-cpu50-AlarmHigh: OK -> ALARM"),
        "{out}"
    );
    assert!(
        out.contains("TargetTracking-cpu50-AlarmLow: OK -> ALARM"),
        "{out}"
    );
}

#[test]
fn revoking_ingress_fails_requests_until_it_is_restored() {
    let (code, out) = scenario(&[], "ingress", &[], Duration::from_secs(60));
    passes("ingress", code, &out);
    assert!(
        out.contains("recorded: revoke 127.0.0.0/8 by operator"),
        "{out}"
    );
    assert!(
        out.contains("recorded: authorize 127.0.0.0/8 by operator"),
        "{out}"
    );
    // The investigation during the outage: the revoke, who made it, and the fix.
    assert!(
        out.contains(
            "investigation: ingress rule 127.0.0.0/8 revoked on listener http by operator"
        ),
        "{out}"
    );
    assert!(
        out.contains("remedy: authorize 127.0.0.0/8 on listener http again: bellows ingress authorize http 127.0.0.0/8"),
        "{out}"
    );
}

#[test]
fn losing_a_zone_fails_no_get_and_the_group_recovers_balanced() {
    let (code, out) = scenario(&[], "zone-failure", &[], Duration::from_secs(90));
    passes("zone-failure", code, &out);
    // The outage killed the zone's instances and no replacement went there; when the
    // zone came back the group moved instances into it without dipping below desired.
    assert!(out.contains("fails (bellows zone fail"), "{out}");
    assert!(out.contains("kill -9 i-"), "{out}");
    assert!(
        out.contains("ok    no replacement landed in the failed zone"),
        "{out}"
    );
    // The replacements are said to make up for the dead, not to rebalance away from them.
    assert!(
        out.contains("ok    no launch during the outage promised to terminate an instance in"),
        "{out}"
    );
    assert!(out.contains("is back (bellows zone restore"), "{out}");
    assert!(
        out.contains("back: balanced over every zone again"),
        "{out}"
    );
}

#[test]
fn a_scenario_attaches_to_a_running_up() {
    let up = Up::start(
        "attached",
        r#"
[target_groups.web]
[target_groups.web.health_check]
path = "/health"
interval = "1s"
timeout = "500ms"

[listeners.http]
address = "127.0.0.1:0"
default = { forward = "web" }
ingress = ["127.0.0.0/8"]

[groups.web]
min = 1
max = 1
target_groups = ["web"]

[groups.web.launch]
command = ["bellows", "app", "echo"]
"#,
    );
    let state = up.state.to_str().unwrap().to_owned();
    let (code, out) = scenario(
        &["--state-dir", &state],
        "ingress",
        &["--attach"],
        Duration::from_secs(60),
    );
    passes("ingress", code, &out);
    assert!(!out.contains("starting"), "{out}");
    // The stack is still running, its rule restored.
    let status = up.json(&["status"]);
    assert_eq!(
        status["listeners"][0]["ingress"][0], "127.0.0.0/8",
        "{status}"
    );
}

#[test]
fn a_zone_fails_and_comes_back_on_a_running_up() {
    // Four instances in two zones: the failed zone's two die at once.
    let up = Up::start("zones-attached", &echo_stack(4, ""));
    up.wait_for("4 healthy", Duration::from_secs(20), |u| u.healthy() == 4);
    let state = up.state.to_str().unwrap().to_owned();
    let (code, out) = scenario(
        &["--state-dir", &state],
        "zone-failure",
        &["--attach"],
        Duration::from_secs(120),
    );
    passes("zone-failure", code, &out);
    assert!(
        out.contains("ok    no replacement landed in the failed zone"),
        "{out}"
    );
    // The running stack is left as it was found: every zone available, balanced.
    let zones = up.json(&["zones"]);
    for z in zones.as_array().unwrap() {
        assert_eq!(z["available"], true, "{zones}");
        assert_eq!(z["instances"], 2, "{zones}");
    }
    let audit = up.json(&["audit"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["target"].as_str().unwrap_or("").starts_with("zone/"))
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["EndZoneOutage", "StartZoneOutage"], "{audit:#}");
}

#[test]
fn a_scenario_whose_checks_fail_says_so_and_exits_1() {
    // One zone only: when it fails, nothing is left to take the GETs.
    let (dir, network) = scratch();
    let stack = write_file(
        &dir,
        "one-zone.toml",
        &format!(
            r#"
[stack]
name = "one-zone"
instance_network = "{network}"

[target_groups.web]
[target_groups.web.health_check]
path = "/health"
interval = "1s"
timeout = "500ms"

[listeners.http]
address = "127.0.0.1:0"
default = {{ forward = "web" }}

[groups.web]
min = 2
max = 2
zones = ["zone-a"]
target_groups = ["web"]

[groups.web.launch]
command = ["bellows", "app", "echo"]
stop_timeout = "2s"
"#
        ),
    );
    let (code, out) = scenario(
        &[],
        "zone-failure",
        &["--stack", stack.to_str().unwrap()],
        Duration::from_secs(60),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("verdict: FAIL (zone-failure)"), "{out}");
    assert!(out.contains("FAIL  no GET failed"), "{out}");
    assert!(out.contains("is group web's only zone"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn ingress_attached_to_a_group_at_zero_wakes_it_names_the_admitting_rule_and_draws_its_chart() {
    // A group at 0 that scales from zero, behind a listener that admits loopback twice
    // over: by 127.0.0.0/8 and by 10.0.0.0/8, revoked in that order. The rule that
    // admitted the scenario's requests is 127.0.0.0/8, not the last one revoked.
    let up = Up::start(
        "ingress-zero",
        r#"
[target_groups.web]
[target_groups.web.health_check]
path = "/health"
interval = "1s"
timeout = "500ms"

[listeners.http]
address = "127.0.0.1:0"
default = { forward = "web" }
ingress = ["127.0.0.0/8", "10.0.0.0/8"]

[groups.web]
min = 0
max = 1
desired = 0
target_groups = ["web"]

[groups.web.launch]
command = ["bellows", "app", "echo"]
"#,
    );
    // Something recorded before the scenario: an instance launched and terminated.
    let _ = up.cli(&["scale", "web", "--desired", "1"]);
    up.wait_for("one in service", Duration::from_secs(20), |u| {
        u.in_service().len() == 1
    });
    let earlier = up.in_service()[0]["id"].as_str().unwrap().to_owned();
    let _ = up.cli(&["scale", "web", "--desired", "0"]);
    up.wait_for("none left", Duration::from_secs(20), |u| {
        u.instances().iter().all(|i| i["lifecycle"] == "Terminated")
    });
    let dir = scratch().0;
    let chart = dir.join("ingress.svg");
    let state = up.state.to_str().unwrap().to_owned();
    let (code, out) = scenario(
        &["--state-dir", &state],
        "ingress",
        &["--attach", "--chart", chart.to_str().unwrap()],
        Duration::from_secs(90),
    );
    passes("ingress", code, &out);
    assert!(out.contains("starts one (scale from zero)"), "{out}");
    assert!(
        out.contains("the revoked rule that admitted the requests from 127.0.0.1 (127.0.0.0/8)"),
        "{out}"
    );
    assert!(
        out.contains("`bellows ingress authorize http 127.0.0.0/8`"),
        "{out}"
    );
    assert!(
        !out.contains(&earlier),
        "events from before the scenario are not replayed:\n{out}"
    );
    let svg = std::fs::read_to_string(&chart).expect("the chart is written");
    assert!(
        svg.starts_with("<svg") || svg.contains("<svg"),
        "{svg:.200}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
