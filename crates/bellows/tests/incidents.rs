//! End to end: an alarm starts an investigation whose top hypothesis is the true cause,
//! and the incident reaches a webhook and a GitHub-compatible issues API (a receiver the
//! test runs), once, even when that receiver is down for a while.

// End-to-end tests measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// What the receiver got: (method, path, authorization header, body).
type Received = Arc<Mutex<Vec<(String, String, String, Value)>>>;

/// A GitHub-compatible receiver on `port` (bound later than the stack starts, so that
/// deliveries fail first): issues are numbered from 7.
fn receiver(port: u16, got: Received) -> std::thread::JoinHandle<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("the receiver's port is free");
    std::thread::spawn(move || {
        let mut next = 7;
        for stream in listener.incoming().take(200) {
            let Ok(stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or("").to_owned(),
                parts.next().unwrap_or("").to_owned(),
            );
            let (mut length, mut auth) = (0usize, String::new());
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
                let lower = h.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("authorization:") {
                    auth = h["authorization:".len()..].trim().to_owned();
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let answer = if method == "POST" && path.ends_with("/issues") {
                next += 1;
                format!(
                    "{{\"number\": {n}, \"html_url\": \"http://127.0.0.1:{port}/acme/shop/issues/{n}\"}}",
                    n = next - 1
                )
            } else {
                "{}".to_owned()
            };
            got.lock().unwrap().push((method, path, auth, value));
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn stack(port: u16, alarm: &str, tg_extra: &str, group: &str) -> String {
    format!(
        r#"
[target_groups.web]
{tg_extra}
[target_groups.web.health_check]
path = "/health"
interval = "1s"

[listeners.http]
address = "127.0.0.1:0"
default = {{ forward = "web" }}

[groups.web]
{group}
target_groups = ["web"]

[groups.web.launch]
command = ["bellows", "app", "echo"]
stop_timeout = "2s"

{alarm}

[incidents]
webhook = "http://127.0.0.1:{port}/hooks/incidents"
[incidents.github]
url = "http://127.0.0.1:{port}/api/v3"
repository = "acme/shop"
labels = ["incident"]
"#
    )
}

/// The token for the issues API comes from bellows' environment, never the file.
fn start_with_token(name: &str, text: &str) -> Up {
    Up::start_with_env(name, text, &[("GITHUB_TOKEN", "test-token-123")])
}

fn wait<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_revoked_ingress_rule_is_found_reported_once_and_closed_when_traffic_returns() {
    let port = free_port();
    let alarm = r#"
[alarms.no-requests]
namespace = "AWS/ApplicationELB"
metric = "RequestCount"
dimensions = { LoadBalancer = "ingress-incident" }
statistic = "Sum"
period = "1s"
evaluation_periods = 3
comparison = "<"
threshold = 1
treat_missing_data = "breaching"
"#;
    let up = start_with_token(
        "ingress-incident",
        &stack(port, alarm, "", "min = 1\nmax = 2\ndesired = 1"),
    );
    up.wait_for("a healthy target", Duration::from_secs(20), |u| {
        u.healthy() == 1
    });
    // Traffic, then a baseline of a few seconds with the alarm OK.
    let load = GetLoad::start(up.lb(), Duration::from_millis(50));
    wait("the alarm to be OK", Duration::from_secs(20), || {
        (up.json(&["alarms"])[0]["state"] == "OK").then_some(())
    });
    std::thread::sleep(Duration::from_secs(5));

    // The operator revokes the rule that lets everyone in. (An incident may already
    // have come and gone at start-up, before traffic began: the alarm treats missing
    // data as breaching. Only the one opened from now on is this test's.)
    let before = up.json(&["incidents"]).as_array().unwrap().len();
    assert!(
        up.cli(&["ingress", "revoke", "http", "0.0.0.0/0"])
            .status
            .success()
    );
    wait("an incident", Duration::from_secs(20), || {
        let list = up.json(&["incidents"]);
        (list.as_array()?.len() == before + 1).then_some(())
    });
    // The receiver is down: deliveries wait in the outbox and say why.
    std::thread::sleep(Duration::from_secs(2));
    let incident = up.json(&["incidents"])[0].clone();
    assert!(incident["resolved"].is_null(), "{incident}");
    assert!(
        incident["pending_deliveries"].as_i64().unwrap() >= 2,
        "{incident}"
    );
    assert!(incident["last_error"].is_string(), "{incident}");

    // The stored investigation: the revoke is the top hypothesis, with who and the fix.
    let report = up.json(&[
        "investigate",
        "--id",
        &incident["investigation"].to_string(),
    ]);
    let top = &report["hypotheses"][0];
    assert_eq!(top["cause"], "ingress_revoked", "{report:#}");
    assert_eq!(
        top["remedy"]["command"],
        "bellows ingress authorize http 0.0.0.0/0"
    );
    assert!(top["title"].as_str().unwrap().contains("operator"), "{top}");
    assert!(
        top["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "audit"
                && e["text"]
                    .as_str()
                    .unwrap()
                    .contains("RevokeSecurityGroupIngress")),
        "{top}"
    );
    assert!(
        top["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "alarm" && e["text"].as_str().unwrap().contains("no-requests")),
        "{top}"
    );
    assert!(top["confidence"].as_f64().unwrap() >= 0.5);
    for other in report["hypotheses"].as_array().unwrap().iter().skip(1) {
        assert!(
            other["confidence"].as_f64() < top["confidence"].as_f64(),
            "{report:#}"
        );
    }
    // By hand, the same answer, as Markdown.
    let md = String::from_utf8(
        up.cli(&["investigate", "--since", "1m", "--alarm", "no-requests"])
            .stdout,
    )
    .unwrap();
    assert!(
        md.starts_with("# Investigation: no-requests: ingress rule 0.0.0.0/0 revoked"),
        "{md}"
    );
    assert!(
        md.contains("bellows ingress authorize http 0.0.0.0/0"),
        "{md}"
    );

    // The receiver comes back: the issue and the notification arrive, once.
    let got: Received = Arc::default();
    let _server = receiver(port, got.clone());
    let is_ours = |r: &(String, String, String, Value)| {
        r.1 == "/api/v3/repos/acme/shop/issues"
            && r.3["title"]
                .as_str()
                .is_some_and(|t| t.contains("ingress rule 0.0.0.0/0 revoked"))
    };
    wait("the issue", Duration::from_secs(30), || {
        let g = got.lock().unwrap();
        (g.iter().any(is_ours) && g.iter().any(|r| r.3["incident"] == incident["id"])).then_some(())
    });
    let number = {
        let g = got.lock().unwrap();
        let issue = g.iter().find(|r| is_ours(r)).unwrap();
        assert_eq!(issue.0, "POST");
        assert_eq!(issue.2, "Bearer test-token-123");
        assert!(
            issue.3["title"]
                .as_str()
                .unwrap()
                .contains("ingress rule 0.0.0.0/0 revoked")
        );
        assert!(
            issue.3["body"]
                .as_str()
                .unwrap()
                .contains("bellows ingress authorize http 0.0.0.0/0")
        );
        assert_eq!(issue.3["labels"], serde_json::json!(["incident"]));
        let hook = g
            .iter()
            .find(|r| r.3["incident"] == incident["id"])
            .unwrap();
        assert_eq!(hook.1, "/hooks/incidents");
        assert_eq!(hook.3["event"], "incident.opened");
        assert_eq!(hook.3["alarm"], "no-requests");
        assert!(hook.2.is_empty(), "the webhook gets no token");
        // The receiver numbers issues from 7 in the order they were opened; a start-up
        // incident's issue may have been opened before or after this one.
        let position = g
            .iter()
            .filter(|r| r.1 == "/api/v3/repos/acme/shop/issues")
            .position(&is_ours)
            .unwrap();
        7 + position as i64
    };
    let ours = format!("/api/v3/repos/acme/shop/issues/{number}");

    // Traffic returns: the alarm is OK, the incident resolved, the issue commented on
    // and closed, and still only one issue was ever opened.
    assert!(
        up.cli(&["ingress", "authorize", "http", "0.0.0.0/0"])
            .status
            .success()
    );
    wait("the issue closed", Duration::from_secs(30), || {
        let g = got.lock().unwrap();
        g.iter()
            .any(|r| r.0 == "PATCH" && r.1 == ours)
            .then_some(())
    });
    // Every incident's deliveries are made (a start-up incident's issue may still have
    // been waiting in the outbox). The load keeps running until then, so that the alarm
    // does not open another incident for the quiet that follows it.
    let incidents = wait("every delivery made", Duration::from_secs(30), || {
        let list = up.json(&["incidents"]);
        list.as_array()?
            .iter()
            .all(|i| i["pending_deliveries"] == 0)
            .then_some(list)
    });
    let _ = load.finish();
    let g = got.lock().unwrap();
    // One issue per incident, ever: no second one for the same open incident.
    let issues = g
        .iter()
        .filter(|r| r.1 == "/api/v3/repos/acme/shop/issues")
        .count();
    assert_eq!(issues, incidents.as_array().unwrap().len(), "{g:?}");
    assert_eq!(g.iter().filter(|r| is_ours(r)).count(), 1);
    assert!(g.iter().any(|r| r.1 == format!("{ours}/comments")));
    let close = g.iter().find(|r| r.0 == "PATCH" && r.1 == ours).unwrap();
    assert_eq!(close.3["state"], "closed");
    assert!(
        g.iter()
            .any(|r| r.3["event"] == "incident.resolved" && r.3["incident"] == incident["id"])
    );
    drop(g);
    let incident = incidents[0].clone();
    assert!(incident["resolved"].is_number(), "{incident}");
    assert_eq!(incident["issue_number"], number);
    // The token never reached the state database or the log.
    let db = std::fs::read(up.state.join("state.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains("test-token-123"));
    assert!(!up.log().contains("test-token-123"));
}

#[test]
fn rejections_at_max_are_a_capacity_limit_and_a_quiet_stack_has_no_cause() {
    let port = free_port();
    let alarm = r#"
[alarms.rejected-503]
namespace = "AWS/ApplicationELB"
metric = "HTTPCode_ELB_503_Count"
dimensions = { LoadBalancer = "capacity-incident" }
statistic = "Sum"
period = "1s"
evaluation_periods = 3
datapoints_to_alarm = 2
comparison = ">"
threshold = 0
treat_missing_data = "notBreaching"
"#;
    let up = start_with_token(
        "capacity-incident",
        &stack(
            port,
            alarm,
            "max_connections = 1\nqueue_size = 1\nqueue_timeout = \"100ms\"",
            "min = 1\nmax = 1\ndesired = 1",
        ),
    );
    up.wait_for("a healthy target", Duration::from_secs(20), |u| {
        u.healthy() == 1
    });
    // Quiet: nothing above the threshold.
    std::thread::sleep(Duration::from_secs(3));
    let quiet = up.json(&["investigate", "--since", "1m"]);
    let likely: Vec<&Value> = quiet["hypotheses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["confidence"].as_f64().unwrap() >= 0.5)
        .collect();
    assert!(likely.is_empty(), "{quiet:#}");

    // More concurrent slow requests than one instance admits.
    let lb = up.lb();
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let lb = lb.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(8);
                let mut codes = Vec::new();
                while Instant::now() < deadline {
                    codes.push(http(&lb, "GET", "/?sleep=300", None).0);
                }
                codes
            })
        })
        .collect();
    let codes: Vec<u16> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(codes.contains(&503), "{codes:?}");
    let incident = wait("an incident", Duration::from_secs(20), || {
        up.json(&["incidents"]).as_array()?.first().cloned()
    });
    assert_eq!(incident["alarm"], "rejected-503");
    let report = up.json(&[
        "investigate",
        "--id",
        &incident["investigation"].to_string(),
    ]);
    let top = &report["hypotheses"][0];
    assert_eq!(top["cause"], "capacity_limit", "{report:#}");
    assert!(top["title"].as_str().unwrap().contains("at max"), "{top}");
    assert_eq!(top["remedy"]["command"], "bellows scale web --max 3");
    assert!(
        top["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "alarm" && e["text"].as_str().unwrap().contains("rejected-503")),
        "{top}"
    );
    for other in report["hypotheses"].as_array().unwrap().iter().skip(1) {
        assert!(
            other["confidence"].as_f64() < top["confidence"].as_f64(),
            "{report:#}"
        );
    }
}

/// Two stacks run one after another in one directory share its state directory: the
/// second's investigations and incidents are its own, and the first's incidents were
/// closed when it stopped.
#[test]
fn a_stopped_stacks_incidents_are_closed_and_the_next_stack_is_not_blamed_for_its_changes() {
    let (dir, network) = scratch();
    let stack = |name: &str, alarm: &str| {
        format!(
            r#"
[stack]
name = "{name}"
control = "127.0.0.1:0"
instance_network = "{network}"

[target_groups.web]
[target_groups.web.health_check]
path = "/health"
interval = "1s"
timeout = "500ms"

[listeners.http]
address = "127.0.0.1:0"
default = {{ forward = "web" }}
ingress = ["127.0.0.0/8", "10.0.0.0/8"]

[groups.web]
min = 1
max = 1
target_groups = ["web"]

[groups.web.launch]
command = ["bellows", "app", "echo"]
{alarm}"#
        )
    };
    // The first stack: an alarm that is in ALARM at once, a webhook for its incidents,
    // and an ingress rule revoked.
    let port = free_port();
    let got: Received = Arc::default();
    let _receiver = receiver(port, got.clone());
    let first = write_file(
        &dir,
        "first.toml",
        &stack(
            "first",
            &(format!("[incidents]\nwebhook = \"http://127.0.0.1:{port}/hook\"\n")
                + r#"
[alarms.always]
namespace = "AWS/AutoScaling"
metric = "GroupDesiredCapacity"
dimensions = { AutoScalingGroupName = "web" }
statistic = "Maximum"
period = "1s"
evaluation_periods = 1
comparison = ">="
threshold = 0
"#),
        ),
    );
    let mut a = Up::start_file(&first, &dir);
    a.wait_for("an open incident", Duration::from_secs(30), |u| {
        u.json(&["incidents"])
            .as_array()
            .is_some_and(|l| l.iter().any(|i| i["resolved"].is_null()))
    });
    let revoked = a.cli(&["ingress", "revoke", "http", "10.0.0.0/8"]);
    assert!(revoked.status.success());
    a.signal("TERM");
    assert_eq!(a.wait_exit(Duration::from_secs(30)), Some(0));
    // Its incident was resolved when it stopped, not left open forever.
    let b_stack = write_file(&dir, "second.toml", &stack("second", ""));
    let b = Up::start_file(&b_stack, &dir);
    let incidents = b.json(&["incidents"]);
    let list = incidents.as_array().unwrap();
    assert!(!list.is_empty(), "{incidents:#}");
    assert!(
        list.iter().all(|i| !i["resolved"].is_null()),
        "the first stack's incident is closed: {incidents:#}"
    );
    // Closed by its stop, which told the webhook (the outbox delivers it, now or from
    // the next run, as it survives restarts).
    b.wait_for("the resolution delivered", Duration::from_secs(30), |_| {
        got.lock().unwrap().iter().any(|r| {
            r.3["event"] == "incident.resolved"
                && r.3["why"]
                    .as_str()
                    .is_some_and(|w| w.contains("`first` stopped"))
        })
    });
    // The second stack, idle, is not blamed for the first one's revoke.
    b.wait_for("in service", Duration::from_secs(20), |u| {
        u.in_service().len() == 1
    });
    let report = b.json(&["investigate", "--since", "15m"]);
    let blamed: Vec<&Value> = report["hypotheses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["cause"] == "ingress_revoked")
        .collect();
    assert!(blamed.is_empty(), "{report:#}");
    drop(b);
    drop(a);
}
