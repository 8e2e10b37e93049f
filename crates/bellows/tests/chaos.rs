//! End to end: killing instances under load fails no request (issue 16, part 1).
//!
//! `examples/mp2-load-balancing.toml` as it is (two seed instances behind one listener),
//! moved to ephemeral ports and a private loopback network, under a steady closed-loop
//! GET load from `bellows load`. Every 3 s for 30 s a random process of a random
//! instance in service, its app or its shim, gets `kill -9`. Every GET must still be
//! answered 2xx (the load balancer retries an idempotent request on another target when
//! its target's connection breaks), and the group must be back at desired soon after.

// End-to-end tests measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Up, kill9, pgid_of, scratch};

/// How long, after the last kill, the group may take to have its two instances in
/// service and healthy in the load balancer again.
const BACK_AT_DESIRED: Duration = Duration::from_secs(15);

/// A small xorshift generator, seeded from the clock and printed, so a failing run can
/// be told apart from another.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn killing_instance_processes_under_load_fails_no_request() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/mp2-load-balancing.toml");
    let text = std::fs::read_to_string(&example).expect("the example stack");
    let (dir, network) = scratch();
    let moved = text
        .replace(
            "control = \"127.0.0.1:9900\"",
            &format!("control = \"127.0.0.1:0\"\ninstance_network = \"{network}\""),
        )
        .replace("address = \"127.0.0.1:8080\"", "address = \"127.0.0.1:0\"");
    assert_ne!(moved, text, "the example's addresses were found and moved");
    let stack = dir.join("mp2.toml");
    std::fs::write(&stack, moved).unwrap();
    let up = Up::start_file(&stack, &dir);
    up.wait_for("two healthy targets", Duration::from_secs(30), |u| {
        u.healthy() == 2
    });
    let lb = up.lb();

    // 16 connections, one GET after the other each, a little longer than the kills.
    let load = Command::new(BIN)
        .args(["load", &format!("http://{lb}/"), "--concurrency", "16"])
        .args(["--duration", "36s", "--timeout", "5s", "--json", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("bellows load starts");
    std::thread::sleep(Duration::from_secs(2));

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("chaos seed {seed}");
    let mut rng = Rng(seed);
    let mut kills = Vec::new();
    let start = Instant::now();
    for round in 0..10u32 {
        let due = start + Duration::from_secs(3 * u64::from(round));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let running: Vec<(String, u64)> = up
            .in_service()
            .iter()
            .filter_map(|i| Some((i["id"].as_str()?.to_owned(), i["pid"].as_u64()?)))
            .collect();
        if running.is_empty() {
            kills.push(format!(
                "{:>4.1}s: nothing in service",
                start.elapsed().as_secs_f64()
            ));
            continue;
        }
        let (id, app) = &running[rng.next() as usize % running.len()];
        // The shim leads the instance's process group.
        let (what, pid) = if rng.next().is_multiple_of(2) {
            ("app", *app)
        } else {
            ("shim", u64::from(pgid_of(*app as u32)))
        };
        kill9(pid);
        kills.push(format!(
            "{:>4.1}s: kill -9 {what} {pid} of {id}",
            start.elapsed().as_secs_f64()
        ));
    }
    // Polled rather than waited for with a panic, so that a slow recovery still shows
    // what the load saw.
    let back = {
        let since = Instant::now();
        loop {
            if up.in_service().len() == 2 && up.healthy() == 2 {
                break Some(since.elapsed());
            }
            if since.elapsed() > BACK_AT_DESIRED {
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    let out = load.wait_with_output().expect("bellows load ends");
    assert!(out.status.success(), "bellows load failed");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    let statuses = summary["statuses"].as_object().cloned().unwrap_or_default();
    let ok: u64 = statuses
        .iter()
        .filter(|(code, _)| code.starts_with('2'))
        .map(|(_, n)| n.as_u64().unwrap_or(0))
        .sum();
    let not_ok: Vec<String> = statuses
        .iter()
        .filter(|(code, _)| !code.starts_with('2'))
        .map(|(code, n)| format!("{code}: {n}"))
        .collect();
    let errors = summary["errors"].as_object().cloned().unwrap_or_default();
    let activities: Vec<String> = up
        .activities()
        .iter()
        .rev()
        .map(|a| {
            format!(
                "{} {} {} {}",
                a["description"].as_str().unwrap_or(""),
                a["status"].as_str().unwrap_or(""),
                a["status_message"].as_str().unwrap_or(""),
                a["cause"].as_str().unwrap_or("")
            )
        })
        .collect();
    let report = format!(
        "back at desired after the last kill: {back:?}\n{ok} answered 2xx; not 2xx {not_ok:?}; socket errors {errors:?}\nkills:\n{}\nactivities:\n{}",
        kills.join("\n"),
        activities.join("\n")
    );
    eprintln!("{report}");
    assert!(ok > 1000, "the load ran: {report}");
    assert!(
        back.is_some(),
        "two instances in service and healthy within {BACK_AT_DESIRED:?} of the last kill: {report}"
    );
    assert!(
        not_ok.is_empty() && errors.is_empty(),
        "every GET answered 2xx under chaos: {report}"
    );
    assert!(
        kills.iter().filter(|k| k.contains("kill -9")).count() >= 8,
        "the chaos ran: {report}"
    );
}
