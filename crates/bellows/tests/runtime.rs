//! A running stack takes listeners, target groups and groups that come and go
//! (`bellows apply`), and a node started empty takes a whole stack file.

// End-to-end tests measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A port nothing listens on now (bound and let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn apply(up: &Up, name: &str, text: &str) {
    let file = write_file(&up.dir, name, text);
    let out = up.cli(&["apply", file.to_str().unwrap(), "--yes"]);
    assert!(
        out.status.success(),
        "apply {name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One `GET /` through `addr`: its status, 0 without an answer.
fn status_of(addr: &str) -> u16 {
    http_status(addr).unwrap_or(0)
}

fn http_status(addr: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    String::from_utf8_lossy(&raw)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn group_names(up: &Up) -> Vec<String> {
    up.json(&["status"])["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|g| g["name"].as_str().map(str::to_owned))
        .collect()
}

fn listener_names(up: &Up) -> Vec<String> {
    up.json(&["status"])["listeners"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|l| l["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_listener_target_group_and_group_come_and_go_under_load_without_a_failed_request() {
    let up = Up::start("runtime", &echo_stack(2, ""));
    up.wait_for("two healthy targets", Duration::from_secs(20), |u| {
        u.healthy() == 2
    });
    let text = std::fs::read_to_string(&up.stack).unwrap();
    let load = GetLoad::start(up.lb(), Duration::from_millis(10));
    std::thread::sleep(Duration::from_millis(500));

    // Added: a second listener, its target group and a group behind it.
    let port = free_port();
    let more = format!(
        r#"{text}
[target_groups.api.health_check]
path = "/health"
interval = "1s"

[listeners.api]
address = "127.0.0.1:{port}"
default = {{ forward = "api" }}

[groups.api]
min = 0
max = 2
desired = 1
zones = ["zone-a"]
target_groups = ["api"]

[groups.api.launch]
command = ["bellows", "app", "echo"]
stop_timeout = "2s"
"#
    );
    let second = format!("127.0.0.1:{port}");
    let plan = up.cli(&[
        "apply",
        write_file(&up.dir, "more.toml", &more).to_str().unwrap(),
        "--dry-run",
    ]);
    assert!(plan.status.success(), "{plan:?}");
    apply(&up, "more.toml", &more);
    up.wait_for("the new listener to serve", Duration::from_secs(30), |_| {
        status_of(&second) == 200
    });
    assert_eq!(listener_names(&up), ["api", "http"]);
    assert!(group_names(&up).contains(&"api".to_owned()));
    let api_targets: Vec<Value> = up
        .targets()
        .into_iter()
        .filter(|t| t["target_group"] == "api")
        .collect();
    assert_eq!(api_targets.len(), 1, "{api_targets:?}");
    let in_api = |u: &Up| {
        u.targets()
            .iter()
            .filter(|t| t["target_group"] == "api" && t["state"] == "healthy")
            .count()
    };

    // Group `web` names `api` too: its instances in service join it, then leave again.
    let both = more.replacen(
        "target_groups = [\"web\"]",
        "target_groups = [\"web\", \"api\"]",
        1,
    );
    assert_ne!(both, more);
    apply(&up, "both.toml", &both);
    up.wait_for("web's instances in api", Duration::from_secs(20), |u| {
        in_api(u) == 3
    });
    apply(&up, "more.toml", &more);
    up.wait_for("web's instances out of api", Duration::from_secs(20), |u| {
        u.targets()
            .iter()
            .filter(|t| t["target_group"] == "api")
            .count()
            == 1
    });
    assert_eq!(up.healthy(), 3, "web's two and api's one");

    // Removed again: the port refuses, the group's instance is terminated.
    apply(&up, "back.toml", &text);
    up.wait_for(
        "the removed listener's port to refuse",
        Duration::from_secs(10),
        |_| TcpStream::connect(&second).is_err(),
    );
    assert_eq!(listener_names(&up), ["http"]);
    up.wait_for(
        "the removed group's instance to stop",
        Duration::from_secs(30),
        |u| {
            !u.instances()
                .iter()
                .any(|i| i["group"] == "api" && i["lifecycle"] != "Terminated")
        },
    );
    assert!(up.targets().iter().all(|t| t["target_group"] == "web"));
    std::thread::sleep(Duration::from_millis(500));
    let (ok, failed) = load.finish();
    assert!(
        failed.is_empty(),
        "{} failed of {}: {failed:?}",
        failed.len(),
        ok
    );
    assert!(ok > 50, "{ok} requests");
    assert_eq!(up.healthy(), 2);

    // A listener on an address that is taken refuses the whole change.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = more.replace(
        &format!("127.0.0.1:{port}"),
        &taken.local_addr().unwrap().to_string(),
    );
    let file = write_file(&up.dir, "busy.toml", &busy);
    let out = up.cli(&["apply", file.to_str().unwrap(), "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listener `api` cannot listen on"), "{err}");
    assert_eq!(listener_names(&up), ["http"]);
    assert!(!group_names(&up).contains(&"api".to_owned()));
}

#[test]
fn an_empty_node_takes_a_whole_stack_file_and_serves_it() {
    let up = Up::start_empty("flask-asg");
    let status = up.json(&["status"]);
    assert_eq!(
        status["groups"].as_array().map(Vec::len),
        Some(0),
        "{status}"
    );
    assert_eq!(
        status["listeners"].as_array().map(Vec::len),
        Some(0),
        "{status}"
    );

    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/flask-asg.toml"
    ))
    .unwrap();
    let port = free_port();
    let lb = format!("127.0.0.1:{port}");
    let text = example.replace("127.0.0.1:8080", &lb);
    assert_ne!(text, example);

    // Another name is refused, with what to do.
    let file = write_file(
        &up.dir,
        "other.toml",
        &text.replace("name = \"flask-asg\"", "name = \"other\""),
    );
    let out = up.cli(&["apply", file.to_str().unwrap(), "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bellows up --empty --name other"), "{err}");

    apply(&up, "flask-asg.toml", &text);
    up.wait_for("two healthy targets", Duration::from_secs(30), |u| {
        u.healthy() == 2
    });
    let (code, body) = http(&lb, "GET", "/gtg?details=true", None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(group_names(&up), ["candidates"]);
}
