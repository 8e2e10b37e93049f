//! End to end: `bellows load` checked against servers that count what they received.

// End-to-end tests measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::*;
use serde_json::Value;

/// What the counting server saw.
#[derive(Default)]
struct Seen {
    requests: AtomicU64,
    connections: AtomicU64,
    /// Arrival of the first and the last request.
    span: Mutex<Option<(Instant, Instant)>>,
}

/// An HTTP/1.1 server on 127.0.0.1:0 that counts requests and connections, answers
/// each with 200 and keeps connections alive unless asked to close.
fn counting_server() -> (String, Arc<Seen>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let seen = Arc::new(Seen::default());
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let seen = s2.clone();
            seen.connections.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let _ = c.set_nodelay(true);
                let mut buf = [0u8; 8192];
                let mut have = Vec::new();
                loop {
                    let n = match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    have.extend_from_slice(&buf[..n]);
                    while let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&have[..end]).to_lowercase();
                        have.drain(..end + 4);
                        let now = Instant::now();
                        {
                            let mut span = seen.span.lock().unwrap();
                            let first = span.map_or(now, |(f, _)| f);
                            *span = Some((first, now));
                        }
                        seen.requests.fetch_add(1, Ordering::SeqCst);
                        let close = head.contains("connection: close");
                        let resp: &[u8] = if close {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
                        } else {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
                        };
                        if c.write_all(resp).is_err() || close {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, seen)
}

fn load(args: &[&str]) -> (Value, String) {
    let out = Command::new(BIN)
        .arg("load")
        .args(args)
        .arg("--json")
        .output()
        .expect("bellows runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "bellows load {args:?}: {stderr}");
    (serde_json::from_slice(&out.stdout).expect("JSON"), stderr)
}

#[test]
fn an_open_loop_sends_exactly_its_count_at_the_rate_asked() {
    let (addr, seen) = counting_server();
    let (s, stderr) = load(&[
        &format!("http://{addr}/"),
        "--rate",
        "500",
        "--duration",
        "4s",
    ]);
    // Standard error is a pipe here: plain progress lines, every 2 s, no terminal codes.
    let progress: Vec<&str> = stderr.lines().filter(|l| l.contains(" req/s ")).collect();
    assert!(
        (1..=2).contains(&progress.len()) && progress.iter().all(|l| l.contains(" p99 ")),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\r') && !stderr.contains('\x1b'),
        "{stderr}"
    );
    let received = seen.requests.load(Ordering::SeqCst);
    // Counts exact: what the generator reports is what the server received.
    assert_eq!(s["completed"], received, "{s}");
    assert_eq!(s["sent"], received);
    assert_eq!(s["statuses"]["200"], received);
    assert_eq!(received, 2000);
    // The rate as the server measured it, first arrival to last: within 2%.
    let (first, last) = seen.span.lock().unwrap().unwrap();
    let server_rate = (received - 1) as f64 / (last - first).as_secs_f64();
    assert!(
        (server_rate - 500.0).abs() <= 10.0,
        "the server saw {server_rate:.1} req/s"
    );
    let rate = s["rate"].as_f64().unwrap();
    assert!((rate - 500.0).abs() <= 10.0, "{s}");
    assert_eq!(s["corrected_for_coordinated_omission"], true);
    assert!(s["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_closed_loop_sends_its_count_with_a_connection_each_when_asked() {
    let (addr, seen) = counting_server();
    let url = format!("http://{addr}/count");
    let (s, _) = load(&[
        &url,
        "--concurrency",
        "4",
        "--requests",
        "777",
        "--no-keepalive",
    ]);
    assert_eq!(s["completed"], 777);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 777);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 777);
    let before = seen.connections.load(Ordering::SeqCst);
    let (s, _) = load(&[&url, "--concurrency", "3", "-n", "300"]);
    assert_eq!(s["completed"], 300);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1077);
    assert_eq!(
        seen.connections.load(Ordering::SeqCst) - before,
        3,
        "keep-alive"
    );
}

#[test]
fn a_ramp_writes_its_seconds_as_csv_and_a_chart() {
    let (addr, seen) = counting_server();
    let dir = scratch().0;
    let (csv, svg) = (dir.join("load.csv"), dir.join("load.svg"));
    let (s, _) = load(&[
        &format!("http://{addr}/"),
        "--ramp",
        "0:400:3s",
        "--csv",
        csv.to_str().unwrap(),
        "--chart",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(s["completed"], 600);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 600);
    let csv = std::fs::read_to_string(&csv).unwrap();
    let sent: Vec<u64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    // 0 -> 400/s over 3 s: about 67, 200 and 333 in the three seconds.
    assert_eq!(sent.iter().sum::<u64>(), 600, "{csv}");
    assert!(sent[0] < sent[1] && sent[1] < sent[2], "{csv}");
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("p99 ms"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_flags_get_a_clear_error() {
    for (args, says) in [
        (vec!["ftp://x/"], "http://"),
        (
            vec!["http://127.0.0.1:1/", "--ramp", "0:100"],
            "FROM:TO:DURATION",
        ),
        (vec!["http://127.0.0.1:1/", "--rate", "0"], "--rate"),
        (
            vec!["http://127.0.0.1:1/", "--steps", "10"],
            "RATE:DURATION",
        ),
        (vec!["http://127.0.0.1:1/", "--duration", "soon"], "soon"),
        (vec!["http://127.0.0.1:1/", "-H", "nocolon"], "Name: value"),
        (
            vec!["http://127.0.0.1:1/", "--rate", "5", "--concurrency", "2"],
            "cannot be used",
        ),
        (
            vec!["http://127.0.0.1:1/", "--trace", "/nonexistent"],
            "/nonexistent",
        ),
        (vec!["http://127.0.0.1:1/", "-X", "get"], "method"),
    ] {
        let out = Command::new(BIN).arg("load").args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn websocket_clients_fill_an_ip_tracker_and_the_rest_are_turned_away() {
    let data = scratch().0;
    let (mut app, addr) = spawn_app(
        "ip-tracker",
        &[
            ("BELLOWS_DATA_DIR", data.as_os_str()),
            ("BASE_PATH", "/t/".as_ref()),
            ("MAX_USERS_PER_INSTANCE", "5".as_ref()),
        ],
    );
    let (s, _) = load(&[
        &format!("http://{addr}/t/"),
        "--ws",
        "8",
        "--duration",
        "3s",
        "--heartbeat",
        "200ms",
        "--retry",
        "500ms",
        "--spread",
        "200ms",
    ]);
    let ws = &s["websocket"];
    assert_eq!(ws["connected_at_end"], 5, "{s}");
    assert_eq!(ws["max_connected"], 5, "{s}");
    assert!(ws["turned_away"].as_u64().unwrap() >= 3, "{s}");
    assert!(ws["heartbeats"].as_u64().unwrap() >= 5 * 5, "{s}");
    assert!(s["statuses"]["503"].as_u64().unwrap() >= 3, "{s}");
    let _ = app.kill();
    let _ = app.wait();
    let _ = std::fs::remove_dir_all(data);
}
