//! The simulator from the command line: errors, determinism, and fidelity to a live run
//! of the same trace through `bellows up`.

// The fidelity test paces real requests by the wall clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::Value;

fn sim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("sim")
        .args(args)
        .output()
        .expect("bellows runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const STACK: &str = r#"
[target_groups.web]
[target_groups.web.health_check]
path = "/"
interval = "1s"
timeout = "500ms"
healthy_threshold = 2

[listeners.http]
address = "127.0.0.1:0"
default = { forward = "web" }

[groups.web]
min = 1
max = 5
desired = 1
target_groups = ["web"]
[groups.web.launch]
command = ["bellows", "app", "echo"]
stop_timeout = "2s"

# More than 30 requests a second over 2 of 2 five-second periods: two more instances;
# fewer than 15 over 4 of 4: one less. Cooldowns of 20 s.
[policies.out]
group = "web"
type = "simple"
adjustment = 2
cooldown = "20s"
[policies.in]
group = "web"
type = "simple"
adjustment = -1
cooldown = "20s"

[alarms.busy]
namespace = "AWS/ApplicationELB"
metric = "RequestCount"
dimensions = { TargetGroup = "web" }
statistic = "Sum"
period = "5s"
evaluation_periods = 2
comparison = ">"
threshold = 150
alarm_actions = ["out"]

[alarms.idle]
namespace = "AWS/ApplicationELB"
metric = "RequestCount"
dimensions = { TargetGroup = "web" }
statistic = "Sum"
period = "5s"
evaluation_periods = 4
comparison = "<"
threshold = 75
alarm_actions = ["in"]

[simulation]
startup = "2s"
"#;

/// The fidelity test's trace: five and a half minutes in which the stack's alarms go
/// off five times (out, in twice to the minimum, out twice to the maximum), at least
/// 20 s apart (the policies' cooldown), each level starting on a 5-second period
/// boundary and far from the thresholds, so that no request arriving a few milliseconds
/// early or late changes what an alarm sees. Totals per 5 s: 300 and 200 (above 150:
/// out by 2), 110 (neither), 25 (below 75: in by 1). It replays in real time, so it is
/// kept as short as covers every kind of step: each second of it is a second of CI.
fn trace() -> Vec<u32> {
    (0..330)
        .map(|t| match t {
            0..30 => 10,
            // Out once (1 -> 3), then held: the second busy period never comes.
            30..55 => 60,
            55..150 => 22,
            // In twice (3 -> 2 -> 1), then at the minimum.
            150..240 => 5,
            // Out twice (1 -> 3 -> 5), then at the maximum.
            _ => 60,
        })
        .collect()
}

fn write_trace(dir: &std::path::Path, counts: &[u32]) -> std::path::PathBuf {
    let text: String = counts.iter().map(|c| format!("{c}\n")).collect();
    write_file(dir, "trace.txt", &text)
}

#[test]
fn bad_traces_and_flags_get_clear_errors() {
    let (dir, _) = scratch();
    let stack = write_file(
        &dir,
        "stack.toml",
        &format!("[stack]\nname = \"s\"\n{STACK}"),
    );
    let stack = stack.to_str().unwrap();
    let bad = write_file(&dir, "bad.txt", "3\n4\nfive\n6\n");
    let (code, _, err) = sim(&[stack, "--trace", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("bad.txt:3: `five` is not a count of requests"),
        "{err}"
    );
    let good = write_trace(&dir, &[1, 2, 3]);
    let good = good.to_str().unwrap();
    for (args, want) in [
        (vec!["--scale=-2"], "--scale must be a positive number"),
        (vec!["--scale", "0"], "--scale must be a positive number"),
        (
            vec!["--start", "10"],
            "--start 10s is past the end of the trace",
        ),
        (
            vec!["--duration", "soon"],
            "--duration: `soon` is not a duration",
        ),
    ] {
        let mut all = vec![stack, "--trace", good];
        all.extend(args);
        let (code, _, err) = sim(&all);
        assert_eq!(code, 1, "{all:?}");
        assert!(err.contains(want), "{all:?}: {err}");
    }
    let (code, _, err) = sim(&[stack, "--trace", "/nonexistent/trace.gz"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("/nonexistent/trace.gz: cannot read the trace"),
        "{err}"
    );
    // A stack file's problems come as file:line:column, exit status 2.
    let broken = write_file(
        &dir,
        "broken.toml",
        "[groups.web]\nmin = 1\nmax = 2\n[groups.web.launch]\ncommand = [\"x\"]\n[simulation]\nslo = 5\n",
    );
    let (code, _, err) = sim(&[broken.to_str().unwrap(), "--trace", good]);
    assert_eq!(code, 2);
    assert!(
        err.contains("broken.toml:7:7: `simulation.slo` must be a duration"),
        "{err}"
    );
}

#[test]
fn same_seed_same_timeline_byte_for_byte_and_gzip_reads_the_same() {
    let (dir, _) = scratch();
    let stack = write_file(
        &dir,
        "stack.toml",
        &format!("[stack]\nname = \"s\"\n{STACK}\nstartup_spread = \"5s\"\ncrash_rate = 20\n"),
    );
    let counts: Vec<u32> = (0..1800).map(|t| 20 + (t % 600) / 6).collect();
    let plain = write_trace(&dir, &counts);
    let gz = dir.join("trace.txt.gz");
    let status = Command::new("gzip")
        .arg("-k")
        .arg(&plain)
        .status()
        .expect("gzip runs");
    assert!(status.success());
    let run = |trace: &std::path::Path, seed: &str, csv: &str| {
        let csv = dir.join(csv);
        let (code, out, err) = sim(&[
            stack.to_str().unwrap(),
            "--trace",
            trace.to_str().unwrap(),
            "--seed",
            seed,
            "--csv",
            csv.to_str().unwrap(),
            "--chart",
            dir.join("chart.svg").to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("seconds over SLO"), "{out}");
        std::fs::read(csv).unwrap()
    };
    let a = run(&plain, "7", "a.csv");
    let b = run(&gz, "7", "b.csv");
    let c = run(&plain, "8", "c.csv");
    assert_eq!(a, b, "same seed, same bytes (and gzip reads as plain)");
    assert_ne!(a, c, "another seed draws other start-up times and crashes");
    let text = String::from_utf8(a).unwrap();
    assert_eq!(text.lines().count(), 1801);
    assert!(text.starts_with("stack,t,requests,served,rejected,p99_ms,cpu,demand,desired,in_service,pending,billed,capacity,over_slo\n"));
    let svg = std::fs::read_to_string(dir.join("chart.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<path"), "{svg}");

    // Two stacks side by side: one column each, one CSV, one chart with both.
    let other = write_file(
        &dir,
        "other.toml",
        &std::fs::read_to_string(&stack)
            .unwrap()
            .replace("threshold = 150", "threshold = 100"),
    );
    let csv = dir.join("both.csv");
    let (code, out, err) = sim(&[
        stack.to_str().unwrap(),
        other.to_str().unwrap(),
        "--trace",
        plain.to_str().unwrap(),
        "--compare",
        "--csv",
        csv.to_str().unwrap(),
        "--chart",
        dir.join("both.svg").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let header = out
        .lines()
        .find(|l| l.contains("stack") && l.contains("other"))
        .unwrap_or("");
    assert!(header.trim_start().starts_with("stack"), "{out}");
    let csv = std::fs::read_to_string(csv).unwrap();
    assert_eq!(
        csv.lines().filter(|l| l.starts_with("stack,")).count(),
        1800 + 1
    );
    assert_eq!(
        csv.lines().filter(|l| l.starts_with("other,")).count(),
        1800
    );
    let svg = std::fs::read_to_string(dir.join("both.svg")).unwrap();
    assert!(svg.contains("stack: desired") && svg.contains("other: desired"));
}

/// Sends `counts[t]` requests in second `t` from `start`, evenly spread, over one
/// keep-alive connection; returns how many got a 200.
fn replay(addr: &str, counts: &[u32], start: Instant) -> usize {
    let connect = || {
        let c = TcpStream::connect(addr).expect("connect to the load balancer");
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // One write a request, sent at once (no Nagle delay against delayed ACKs).
        c.set_nodelay(true).unwrap();
        let r = BufReader::new(c.try_clone().unwrap());
        (c, r)
    };
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let (mut conn, mut reader) = connect();
    let mut ok = 0;
    for (t, &n) in counts.iter().enumerate() {
        for i in 0..n {
            let due = start + Duration::from_secs_f64(t as f64 + f64::from(i) / f64::from(n));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let sent = conn.write_all(request.as_bytes());
            if sent.is_err() || read_response(&mut reader) != Some(200) {
                // Reconnect after a failure and go on.
                (conn, reader) = connect();
                continue;
            }
            ok += 1;
        }
    }
    ok
}

/// Reads one HTTP/1.1 response with a Content-Length; its status.
fn read_response(r: &mut BufReader<TcpStream>) -> Option<u16> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut length = 0usize;
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).ok()?;
    Some(status)
}

/// (seconds after `start_s`, from, to) of each `scaling` line in the node's log, whose
/// times are HH:MM:SS in UTC.
fn live_actions(log: &str, start_s: u64) -> Vec<(i64, u64, u64)> {
    log.lines()
        .filter(|l| l.contains(" scaling") && l.contains("policy="))
        .filter_map(|l| {
            let hms: Vec<u64> = l
                .get(..8)?
                .split(':')
                .filter_map(|x| x.parse().ok())
                .collect();
            let day_s = hms.first()? * 3600 + hms.get(1)? * 60 + hms.get(2)?;
            let rel = (day_s + 86_400 - start_s % 86_400) % 86_400;
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            Some((rel as i64, field("from=")?, field("to=")?))
        })
        .collect()
}

#[test]
fn a_live_replay_and_the_simulator_take_the_same_scaling_actions() {
    let (dir, network) = scratch();
    let stack = write_file(
        &dir,
        "stack.toml",
        &format!("[stack]\nname = \"fidelity\"\ninstance_network = \"{network}\"\n{STACK}"),
    );
    let counts = trace();
    let trace = write_trace(&dir, &counts);

    // The simulator first: it takes a moment.
    let (code, out, err) = sim(&[
        stack.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let simulated: Vec<(i64, u64, u64)> = report[0]["summary"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["t"].as_i64().unwrap(),
                a["from"].as_u64().unwrap(),
                a["to"].as_u64().unwrap(),
            )
        })
        .collect();
    // The trace does what it was designed to do, with room between the actions.
    let steps: Vec<_> = simulated.iter().map(|a| (a.1, a.2)).collect();
    assert_eq!(
        steps,
        [(1, 3), (3, 2), (2, 1), (1, 3), (3, 5)],
        "{simulated:?}"
    );
    assert!(
        simulated.windows(2).all(|w| w[1].0 - w[0].0 >= 20),
        "{simulated:?}"
    );

    // Then live, with the trace's first second on a 5-second boundary of the wall clock
    // (the alarms' periods), as in the simulator where it is second 0.
    let up = Up::start_file(&stack, &dir);
    up.wait_for("one healthy target", Duration::from_secs(20), |u| {
        u.healthy() == 1
    });
    let lb = up.lb();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let start_s = (now.as_secs() / 5 + 2) * 5;
    let wait = Duration::from_secs(start_s) - now;
    let start = Instant::now() + wait;
    let ok = replay(&lb, &counts, start);
    let late =
        Instant::now().saturating_duration_since(start + Duration::from_secs(counts.len() as u64));
    assert!(
        late < Duration::from_secs(2),
        "the replay fell {late:?} behind"
    );
    let sent: u32 = counts.iter().sum();
    assert!(ok as f64 >= 0.99 * f64::from(sent), "{ok} of {sent} served");
    std::thread::sleep(Duration::from_secs(2));
    // What the live group did within the trace's seconds (it goes on after them).
    let live: Vec<_> = live_actions(&up.log(), start_s)
        .into_iter()
        .filter(|a| a.0 < counts.len() as i64)
        .collect();

    let show = format!(
        "live {live:?}\nsimulated {simulated:?}\nstart {start_s}, {ok} served\nlog:\n{}",
        up.log()
    );
    assert_eq!(live.len(), simulated.len(), "{show}");
    for (l, s) in live.iter().zip(&simulated) {
        assert_eq!((l.1, l.2), (s.1, s.2), "{show}");
        assert!((l.0 - s.0).abs() <= 3, "times within 3 s: {show}");
    }
    // The seconds each action came after the trace started, for the record.
    eprintln!("live {live:?}\nsimulated {simulated:?}");
}

#[test]
fn scheduled_actions_in_a_named_zone_run_on_its_clock() {
    let (dir, _) = scratch();
    // The virtual clock starts at the epoch: 1970-01-01, when Paris was at +01:00 all
    // year, so 08:30 in Paris is 07:30 UTC.
    let stack = write_file(
        &dir,
        "stack.toml",
        "[stack]\nname = \"s\"\n[groups.web]\nmin = 1\nmax = 5\ndesired = 1\n\
         [groups.web.launch]\ncommand = [\"bellows\", \"app\", \"echo\"]\n\
         [[groups.web.scheduled]]\nname = \"morning\"\ncron = \"30 8 * * *\"\ntime_zone = \"Europe/Paris\"\ndesired = 3\n",
    );
    let trace = write_trace(&dir, &vec![5; 86_400]);
    let (code, out, err) = sim(&[
        stack.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let actions = &v[0]["summary"]["actions"];
    assert_eq!(
        actions,
        &serde_json::json!([{ "t": 27_000, "policy": "morning", "from": 1, "to": 3 }]),
        "{out}"
    );
}
