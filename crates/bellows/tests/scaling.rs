//! End to end: metrics, alarms and policies scale a real group.

// End-to-end tests measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::*;

#[test]
fn cpu_stress_scales_out_then_in_and_every_step_is_an_activity() {
    let stack = r#"
[target_groups.stress]
[target_groups.stress.health_check]
path = "/health"
interval = "1s"
timeout = "500ms"

[listeners.http]
address = "127.0.0.1:0"
default = { forward = "stress" }

[groups.stress]
min = 1
max = 2
desired = 1
target_groups = ["stress"]

[groups.stress.launch]
command = ["bellows", "app", "stress"]
instance_type = { vcpu = 0.5, memory = "256MiB" }
stop_timeout = "2s"

[policies.cpu50]
group = "stress"
type = "target_tracking"
metric = "ASGAverageCPUUtilization"
target = 50
warmup = "3s"

[webhooks.down]
url = "http://127.0.0.1:9/nobody-listens"

[alarms.busy]
metric = "CPUUtilization"
dimensions = { AutoScalingGroupName = "stress" }
period = "1s"
evaluation_periods = 2
comparison = ">="
threshold = 80
alarm_actions = ["webhook:down"]
"#;
    let up = Up::start("scaling", stack);
    up.wait_for("one healthy target", Duration::from_secs(15), |u| {
        u.healthy() == 1
    });
    let lb = up.lb();
    let (status, _) = http(&lb, "POST", "/", Some(r#"{"seconds": 12, "workers": 1}"#));
    assert_eq!(status, 202);
    // Three seconds above 50% and the target tracking alarm fires; the new instance
    // must then start, pass a health check and take requests.
    up.wait_for("two healthy targets", Duration::from_secs(20), |u| {
        u.healthy() == 2
    });
    let mut served = std::collections::HashSet::new();
    for _ in 0..20 {
        let (status, _, body) = request(&lb, "GET", "/", &[], "");
        assert_eq!(status, 200);
        served.insert(body);
    }
    assert_eq!(served.len(), 2, "both instances take traffic: {served:?}");
    let alarms = up.json(&["alarms"]);
    let high = alarms
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "TargetTracking-cpu50-AlarmHigh")
        .unwrap();
    assert!(
        high["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["to"] == "ALARM"),
        "{high}"
    );
    // The stress ends; 15 s below 45% and the group scales back in.
    up.wait_for("scale in to one", Duration::from_secs(60), |u| {
        u.json(&["status"])["groups"][0]["desired"] == 1 && u.instances().len() == 1
    });
    let acts = up.activities();
    assert_eq!(
        acts.iter()
            .filter(|a| a["kind"] == "Launch" && a["status"] == "Successful")
            .count(),
        2
    );
    let term = acts.iter().find(|a| a["kind"] == "Terminate").unwrap();
    assert!(
        term["cause"]
            .as_str()
            .unwrap()
            .contains("TargetTracking-cpu50-AlarmLow"),
        "{term}"
    );
    let launch = acts
        .iter()
        .filter(|a| a["kind"] == "Launch")
        .map(|a| a["cause"].as_str().unwrap())
        .find(|c| c.contains("policy cpu50"));
    assert!(launch.is_some(), "{acts:?}");
    // The webhook's receiver is down: the delivery waits in the outbox, retried.
    let deliveries = up.json(&["deliveries"]);
    let d = &deliveries.as_array().unwrap()[0];
    assert!(
        d["delivered"].is_null() && d["attempts"].as_i64().unwrap() >= 1,
        "{d}"
    );
    // The metrics are there to query.
    let q = up.json(&[
        "metrics",
        "--namespace",
        "AWS/AutoScaling",
        "--name",
        "GroupDesiredCapacity",
        "--since",
        "2m",
        "--stat",
        "Maximum",
    ]);
    let points = q["series"][0]["points"].as_array().unwrap();
    assert!(points.iter().any(|p| p[1] == 2.0), "{q}");
}

#[test]
fn instances_put_their_own_metrics_with_their_token() {
    let stack = r#"
[groups.app]
min = 1
max = 1
[groups.app.launch]
command = ["sh", "-c", "while true; do curl -s -X POST -H \"Authorization: Bearer $BELLOWS_METRICS_TOKEN\" -d '{\"namespace\": \"App\", \"name\": \"ActiveUsers\", \"value\": 7}' $BELLOWS_API/api/v1/metrics; echo; sleep 0.5; done"]
"#;
    let up = Up::start("custom", stack);
    up.wait_for("the app's metric", Duration::from_secs(15), |u| {
        let q = u.json(&["metrics", "--namespace", "App", "--name", "ActiveUsers"]);
        q["series"].as_array().is_some_and(|s| !s.is_empty())
    });
    let id = up.instances()[0]["id"].as_str().unwrap().to_owned();
    let q = up.json(&[
        "metrics",
        "--namespace",
        "App",
        "--name",
        "ActiveUsers",
        "--dimension",
        &format!("InstanceId={id}"),
    ]);
    assert_eq!(q["series"][0]["points"][0][1], 7.0);
    let log = String::from_utf8_lossy(&up.cli(&["logs", &id]).stdout).into_owned();
    assert!(log.contains("\"accepted\":1"), "{log}");
    // Without a token, or with a wrong one: refused.
    let control = std::fs::read_to_string(up.state.join("control")).unwrap();
    let (status, body) = http(
        control.trim(),
        "POST",
        "/api/v1/metrics",
        Some(r#"{"namespace": "App", "name": "X", "value": 1}"#),
    );
    assert_eq!(status, 401, "{body}");
    // A malformed body with a token: 400 (without one, the body is not read: 401).
    let token = std::fs::read_to_string(up.state.join("token")).unwrap();
    let auth = format!("Bearer {}", token.trim());
    let (status, _, _) = request(
        control.trim(),
        "POST",
        "/api/v1/metrics",
        &[("Authorization", auth.as_str())],
        "{\"oops\"",
    );
    assert_eq!(status, 400);
    let (status, _) = http(control.trim(), "POST", "/api/v1/metrics", Some("{\"oops\""));
    assert_eq!(status, 401);
}

#[test]
fn a_request_to_an_empty_group_launches_an_instance_and_waits_for_it() {
    let stack = r#"
[target_groups.web]
[target_groups.web.health_check]
path = "/health"
interval = "1s"
timeout = "500ms"

[listeners.http]
address = "127.0.0.1:0"
default = { forward = "web" }

[groups.web]
min = 0
max = 2
desired = 0
target_groups = ["web"]

[groups.web.launch]
command = ["bellows", "app", "echo"]
boot_delay = "1s"
"#;
    let up = Up::start("zero", stack);
    let lb = up.lb();
    assert!(up.instances().is_empty());
    let t = std::time::Instant::now();
    let (status, _, body) = request(&lb, "GET", "/hello", &[], "");
    assert_eq!(status, 200, "{body}");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "it waited for the boot: {:?}",
        t.elapsed()
    );
    let acts = up.activities();
    let launch = acts.iter().find(|a| a["kind"] == "Launch").unwrap();
    assert!(
        launch["cause"]
            .as_str()
            .unwrap()
            .contains("a request arrived for target group web"),
        "{launch}"
    );
    assert_eq!(up.instances().len(), 1);
}

#[test]
fn a_webhook_whose_receiver_was_down_is_delivered_when_it_comes_back() {
    // Reserve a port, and only listen on it a few seconds later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stack = format!(
        r#"
[groups.web]
min = 1
max = 1
[groups.web.launch]
command = ["bellows", "app", "echo"]

[webhooks.ops]
url = "http://127.0.0.1:{port}/hook"

[alarms.up]
namespace = "AWS/AutoScaling"
metric = "GroupInServiceInstances"
dimensions = {{ AutoScalingGroupName = "web" }}
period = "1s"
evaluation_periods = 1
comparison = ">="
threshold = 1
alarm_actions = ["webhook:ops"]
"#
    );
    let up = Up::start("hooks", &stack);
    up.wait_for("a failed attempt", Duration::from_secs(15), |u| {
        u.json(&["deliveries"])
            .as_array()
            .is_some_and(|d| d.first().is_some_and(|d| d["attempts"].as_i64() >= Some(1)))
    });
    let receiver = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    receiver.set_nonblocking(false).unwrap();
    let got = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = receiver.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = vec![0u8; 65536];
        let mut n = 0;
        while !String::from_utf8_lossy(&buf[..n]).contains("\"alarm\"") {
            match s.read(&mut buf[n..]) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    let request = got.join().unwrap();
    assert!(request.starts_with("POST /hook HTTP/1.1"), "{request}");
    assert!(
        request.contains("\"alarm\":\"up\"") && request.contains("\"to\":\"ALARM\""),
        "{request}"
    );
    up.wait_for("delivered", Duration::from_secs(10), |u| {
        u.json(&["deliveries"])
            .as_array()
            .is_some_and(|d| d.iter().any(|d| !d["delivered"].is_null()))
    });
}

#[test]
fn a_scheduled_action_in_a_named_zone_fires_at_its_local_minute() {
    // The next minute on Paris's clock (the one after if this one ends too soon for
    // bellows to be up): Paris is never at UTC's offset, so an action matched in the
    // wrong zone, or in none, does not fire then.
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let minutes_ahead = if now_s % 60 > 45 { 2 } else { 1 };
    let fire_at = (now_s / 60 + minutes_ahead) * 60;
    let offset = bellows_node::zones::utc_offset(
        "Europe/Paris",
        bellows_core::Time::from_millis(fire_at * 1000),
    )
    .expect("the system's time zone database knows Europe/Paris");
    assert_ne!(offset, 0);
    let local = fire_at as i64 + i64::from(offset) * 60;
    let (hour, minute) = (local.rem_euclid(86_400) / 3600, local.rem_euclid(3600) / 60);
    let extra = format!(
        "[[groups.web.scheduled]]\nname = \"paris\"\ncron = \"{minute} {hour} * * *\"\ntime_zone = \"Europe/Paris\"\ndesired = 2\n"
    );
    let up = Up::start("paris", &echo_stack(1, &extra));
    let desired = |u: &Up| u.json(&["status"])["groups"][0]["desired"].as_u64();
    assert_eq!(desired(&up), Some(1));
    let waited = up.wait_for(
        "the scheduled action to set desired 2",
        Duration::from_secs(minutes_ahead * 60 + 30),
        |u| desired(u) == Some(2),
    );
    let fired = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // The scaler runs once a second: the action fires in the first seconds of its
    // minute, never before it (allowing a loaded machine 15 s).
    assert!(
        (fire_at..fire_at + 15).contains(&fired),
        "fired at {fired}, its minute starts at {fire_at} (waited {waited:?})"
    );
    let activities = up.activities();
    assert!(
        activities.iter().any(|a| a["cause"]
            .as_str()
            .is_some_and(|c| c.contains("scheduled action paris"))),
        "{activities:#?}"
    );
}
