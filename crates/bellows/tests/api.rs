//! End to end: the control API's audit trail and event stream on a real `bellows up`.

// End-to-end tests measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn control(up: &Up) -> String {
    std::fs::read_to_string(up.state.join("control"))
        .unwrap()
        .trim()
        .to_owned()
}

fn token(up: &Up) -> String {
    std::fs::read_to_string(up.state.join("token"))
        .unwrap()
        .trim()
        .to_owned()
}

fn audit(up: &Up) -> Vec<Value> {
    up.json(&["audit", "--limit", "1000"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The newest record of `action` on `target`.
fn find<'a>(records: &'a [Value], action: &str, target: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["action"] == action && r["target"] == target)
        .unwrap_or_else(|| panic!("no {action} on {target} in {records:#?}"))
}

#[test]
fn every_change_is_one_audit_record_that_survives_a_restart() {
    let mut up = Up::start("audit", &echo_stack(1, ""));
    up.wait_for("one instance in service", Duration::from_secs(15), |u| {
        u.in_service().len() == 1
    });
    let addr = control(&up);
    let token = token(&up);

    // From the CLI: who, where from, before and after.
    assert!(up.cli(&["scale", "web", "--desired", "2"]).status.success());
    let records = audit(&up);
    let scale = find(&records, "UpdateAutoScalingGroup", "group/web");
    assert_eq!(scale["actor"], "operator");
    assert_eq!(scale["source"], "cli");
    assert_eq!(scale["before"]["desired"], 1);
    assert_eq!(scale["after"]["desired"], 2);
    assert_eq!(scale["result"], "ok");

    // A refused change through the API is recorded with its error, and changes nothing.
    let auth = format!("Bearer {token}");
    let (status, _, body) = request(
        &addr,
        "PUT",
        "/api/v1/groups/web/capacity",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        r#"{"desired": 99}"#,
    );
    assert_eq!(status, 409, "{body}");
    let records = audit(&up);
    let refused = &records[0];
    assert_eq!(refused["action"], "UpdateAutoScalingGroup");
    assert_eq!(refused["source"], "api");
    assert!(
        refused["result"]
            .as_str()
            .unwrap()
            .starts_with("invalid_capacity"),
        "{refused}"
    );
    assert_eq!(refused["before"]["desired"], 2);

    // Without the token: 401, and no record at all.
    let before = records.len();
    let (status, _) = http(
        &addr,
        "PUT",
        "/api/v1/groups/web/capacity",
        Some(r#"{"desired": 0}"#),
    );
    assert_eq!(status, 401);
    assert_eq!(audit(&up).len(), before);
    assert_eq!(up.json(&["status"])["groups"][0]["desired"], 2);

    // Ingress: both changes, with the list before and after.
    assert!(
        up.cli(&["ingress", "revoke", "http", "0.0.0.0/0"])
            .status
            .success()
    );
    assert!(
        up.cli(&["ingress", "authorize", "http", "0.0.0.0/0"])
            .status
            .success()
    );
    let records = audit(&up);
    let revoke = find(&records, "RevokeSecurityGroupIngress", "listener/http");
    assert_eq!(
        revoke["before"]["ingress"],
        serde_json::json!(["0.0.0.0/0", "::/0"])
    );
    assert_eq!(revoke["after"]["ingress"], serde_json::json!(["::/0"]));
    let authorize = find(&records, "AuthorizeSecurityGroupIngress", "listener/http");
    assert_eq!(
        authorize["after"]["ingress"],
        serde_json::json!(["::/0", "0.0.0.0/0"])
    );

    // Instance changes name the instance.
    let id = up.in_service()[0]["id"].as_str().unwrap().to_owned();
    assert!(up.cli(&["protect", &id]).status.success());
    let records = audit(&up);
    let protect = find(&records, "SetInstanceProtection", &format!("instance/{id}"));
    assert_eq!(protect["before"]["protected"], false);
    assert_eq!(protect["after"]["protected"], true);

    // The table form reads well enough to grep.
    let table = String::from_utf8(up.cli(&["audit"]).stdout).unwrap();
    assert!(table.contains("RevokeSecurityGroupIngress"), "{table}");
    assert!(table.contains("operator (cli)"), "{table}");

    // Filters.
    let only_listener = up.json(&["audit", "--target", "listener/"]);
    assert_eq!(
        only_listener.as_array().unwrap().len(),
        2,
        "{only_listener}"
    );

    // Stop and start again on the same state directory: the trail is still there.
    let count = audit(&up).len();
    up.signal("TERM");
    assert_eq!(up.wait_exit(Duration::from_secs(20)), Some(0));
    let _ = std::fs::remove_file(up.state.join("control"));
    let again = Up::start_file(&up.stack, &up.dir);
    let kept = audit(&again);
    assert!(kept.len() >= count, "{} < {count}", kept.len());
    find(&kept, "RevokeSecurityGroupIngress", "listener/http");
    // bellows' own changes: the stop and the start again.
    assert_eq!(kept[0]["action"], "StartStack", "{:#?}", &kept[..2]);
    assert_eq!(kept[0]["actor"], "bellows");
    assert_eq!(kept[1]["action"], "StopStack");
    assert_eq!(kept[1]["before"]["instances"], 2);
}

/// Reads Server-Sent Events until `done` says so or `timeout` passes; returns them as
/// (id, event, data).
fn read_events(
    addr: &str,
    last_event_id: Option<i64>,
    timeout: Duration,
    mut act: impl FnMut(),
    mut done: impl FnMut(&[(i64, String, Value)]) -> bool,
) -> Vec<(i64, String, Value)> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut head =
        format!("GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
    if let Some(id) = last_event_id {
        head += &format!("Last-Event-ID: {id}\r\n");
    }
    head += "\r\n";
    s.write_all(head.as_bytes()).unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    // The status line and headers.
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("200"), "{line}");
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    act();
    let deadline = Instant::now() + timeout;
    let mut events = Vec::new();
    let (mut id, mut kind, mut data) = (0, String::new(), String::new());
    while Instant::now() < deadline && !done(&events) {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => continue,
        }
        // Chunked transfer: size lines are hex alone; SSE lines have a field name.
        let l = line.trim_end();
        if let Some(v) = l.strip_prefix("id:") {
            id = v.trim().parse().unwrap();
        } else if let Some(v) = l.strip_prefix("event:") {
            kind = v.trim().to_owned();
        } else if let Some(v) = l.strip_prefix("data:") {
            data = v.trim().to_owned();
            if let Ok(value) = serde_json::from_str(&data) {
                events.push((id, std::mem::take(&mut kind), value));
            }
        }
    }
    let _ = data;
    events
}

#[test]
fn the_event_stream_sends_each_change_and_replays_what_a_client_missed() {
    let up = Up::start("events", &echo_stack(0, ""));
    let addr = control(&up);
    let seen = read_events(
        &addr,
        None,
        Duration::from_secs(20),
        || {
            assert!(up.cli(&["scale", "web", "--desired", "1"]).status.success());
        },
        |events| {
            events
                .iter()
                .any(|(_, k, v)| k == "lifecycle" && v["to"] == "InService" && v["group"] == "web")
        },
    );
    let kinds: Vec<&str> = seen.iter().map(|(_, k, _)| k.as_str()).collect();
    for kind in ["capacity", "audit", "activity", "lifecycle"] {
        assert!(kinds.contains(&kind), "no {kind} event in {kinds:?}");
    }
    let ids: Vec<i64> = seen.iter().map(|(id, _, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");
    let capacity = seen.iter().find(|(_, k, _)| k == "capacity").unwrap();
    assert_eq!(capacity.2["after"]["desired"], 1);

    // Reconnecting with the id before the capacity change replays it first.
    let replay = read_events(
        &addr,
        Some(capacity.0 - 1),
        Duration::from_secs(10),
        || {},
        |events| events.len() >= 2,
    );
    assert_eq!(replay[0].0, capacity.0);
    assert_eq!(replay[0].1, "capacity");
    // A wrong id is a JSON error.
    let (status, _, body) = request(
        &addr,
        "GET",
        "/api/v1/events",
        &[("Last-Event-ID", "x")],
        "",
    );
    assert_eq!(status, 400, "{body}");
}

#[test]
fn a_refresh_replaces_every_instance_under_load_without_a_failed_request() {
    let up = Up::start("refresh", &echo_stack(3, ""));
    up.wait_for("three healthy targets", Duration::from_secs(20), |u| {
        u.healthy() == 3
    });
    let old: Vec<String> = up
        .in_service()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    let load = GetLoad::start(up.lb(), Duration::from_millis(20));
    let out = up.cli(&[
        "refresh",
        "web",
        "--min-healthy-percentage",
        "60",
        "--warmup",
        "1s",
        "--wait",
    ]);
    let (ok, failed) = load.finish();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Successful"), "{text}");
    assert!(
        failed.is_empty(),
        "{} failed of {}: {failed:?}",
        failed.len(),
        ok
    );
    assert!(ok > 20, "{ok} requests");
    let now: Vec<String> = up
        .in_service()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(now.len(), 3);
    assert!(now.iter().all(|id| !old.contains(id)), "{old:?} -> {now:?}");
    let status = up.json(&["refresh", "web", "--status"]);
    assert_eq!(status["total"], 3);
    assert!(status["batches"].as_u64().unwrap() >= 2, "{status}");
    find(&audit(&up), "StartInstanceRefresh", "group/web");
    // No refresh to cancel now: a clear error.
    let out = up.cli(&["refresh", "web", "--cancel"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no instance refresh"));
}

#[test]
fn apply_changes_the_algorithm_and_health_check_under_load_without_a_failed_request() {
    let up = Up::start("apply", &echo_stack(2, ""));
    up.wait_for("two healthy targets", Duration::from_secs(20), |u| {
        u.healthy() == 2
    });
    let text = std::fs::read_to_string(&up.stack).unwrap();
    let load = GetLoad::start(up.lb(), Duration::from_millis(10));
    std::thread::sleep(Duration::from_millis(500));

    // The new file: another algorithm, another health check, a new launch template.
    let changed = text
        .replace(
            "[target_groups.web.health_check]\npath = \"/health\"\ninterval = \"1s\"",
            "[target_groups.web]\nalgorithm = \"least_outstanding_requests\"\n\n[target_groups.web.health_check]\npath = \"/\"\ninterval = \"2s\"\nhealthy_threshold = 3",
        )
        .replace("stop_timeout = \"2s\"", "stop_timeout = \"3s\"");
    assert_ne!(changed, text);
    let file = write_file(&up.dir, "changed.toml", &changed);
    let file = file.to_str().unwrap();

    let plan = up.cli(&["apply", file, "--dry-run"]);
    let shown = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.status.success(), "{shown}");
    assert!(shown.contains("~ target group web (modified)"), "{shown}");
    assert!(
        shown.contains("algorithm: \"round_robin\" -> \"least_outstanding_requests\""),
        "{shown}"
    );
    assert!(
        shown.contains("health_check.path: \"/health\" -> \"/\""),
        "{shown}"
    );
    assert!(shown.contains("~ group web (modified)"), "{shown}");
    // A dry run changes nothing.
    assert_eq!(
        up.json(&["status"])["groups"][0]["name"],
        "web",
        "still running"
    );
    let running: Value =
        serde_json::from_str(&http(&control(&up), "GET", "/api/v1/stack", None).1).unwrap();
    assert_eq!(running["target_groups"][0]["algorithm"], "round_robin");

    let out = up.cli(&["apply", file, "--yes"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("launch template version 2"), "{said}");
    let running: Value =
        serde_json::from_str(&http(&control(&up), "GET", "/api/v1/stack", None).1).unwrap();
    assert_eq!(
        running["target_groups"][0]["algorithm"],
        "least_outstanding_requests"
    );
    assert_eq!(running["target_groups"][0]["health_check"]["path"], "/");
    // Health checks go on with the new settings; the targets stay healthy.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(up.healthy(), 2);
    let (ok, failed) = load.finish();
    assert!(
        failed.is_empty(),
        "{} failed of {}: {failed:?}",
        failed.len(),
        ok
    );
    assert!(ok > 50, "{ok} requests");
    let records = audit(&up);
    let applied = find(&records, "ApplyStack", "stack/apply");
    assert_eq!(applied["result"], "ok");
    assert_eq!(applied["after"]["applied"], true);

    // The same file again: nothing to do.
    let again = up.cli(&["apply", file, "--yes"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("no changes"));

    // What a running stack cannot take is refused as a whole, and says why.
    let renamed = write_file(
        &up.dir,
        "renamed.toml",
        &changed.replace("name = \"apply\"", "name = \"other\""),
    );
    let out = up.cli(&["apply", renamed.to_str().unwrap(), "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[stack] name cannot change"), "{err}");
    // A broken file: every problem with its position, and nothing sent.
    let broken = write_file(
        &up.dir,
        "broken.toml",
        &changed.replace("max = 4", "max = \"four\""),
    );
    let out = up.cli(&["apply", broken.to_str().unwrap(), "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.toml:"), "{err}");
    // Neither was a change: the refusal came at the plan, the broken file never left.
    assert_eq!(audit(&up).len(), records.len());
}
