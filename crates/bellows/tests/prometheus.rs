//! A real Prometheus (Debian's `prometheus`, which scripts/test installs when missing)
//! scrapes bellows' `/metrics`, and its queries agree with what bellows reports.

// End-to-end tests measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

struct Prometheus {
    child: Child,
    addr: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_prometheus(dir: &std::path::Path, target: &str) -> Prometheus {
    let bin = which("prometheus")
        .expect("prometheus is missing: run scripts/test (it installs Debian's prometheus)");
    let config = write_file(
        dir,
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: bellows\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus starts");
    let p = Prometheus { child, addr };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(&p.addr).is_ok()
            && http(&p.addr, "GET", "/-/ready", None).0 == 200
        {
            return p;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "prometheus did not get ready: {}",
        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
    );
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.exists())
}

/// One instant query's value, summed over the series it returns.
fn query(p: &Prometheus, q: &str) -> Option<f64> {
    let enc: String = q
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, body) = http(&p.addr, "GET", &format!("/api/v1/query?query={enc}"), None);
    assert_eq!(status, 200, "{q}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let result = v["data"]["result"].as_array()?;
    if result.is_empty() {
        return None;
    }
    Some(
        result
            .iter()
            .map(|r| r["value"][1].as_str().unwrap().parse::<f64>().unwrap())
            .sum(),
    )
}

#[test]
fn prometheus_scrapes_bellows_and_its_request_rate_is_the_one_bellows_reports() {
    let up = Up::start("scraped", &echo_stack(1, ""));
    up.wait_for("a healthy target", Duration::from_secs(20), |u| {
        u.healthy() == 1
    });
    let control = std::fs::read_to_string(up.state.join("control"))
        .unwrap()
        .trim()
        .to_owned();
    let prom = start_prometheus(&up.dir, &control);
    // Prometheus sees bellows up.
    let deadline = Instant::now() + Duration::from_secs(20);
    while query(&prom, "up{job=\"bellows\"}") != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "prometheus never scraped bellows"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // A steady 40 requests a second for 15 s.
    let lb = up.lb();
    let start = Instant::now();
    let mut sent = 0u32;
    while start.elapsed() < Duration::from_secs(15) {
        let due = start + Duration::from_millis(25) * sent;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        assert_eq!(http(&lb, "GET", "/", None).0, 200);
        sent += 1;
    }
    // The rate over the last 10 s, as Prometheus computes it from its scrapes, and as
    // bellows' own metric store has it (RequestCount, per second, averaged over 10 s).
    let prom_rate = query(&prom, "sum(rate(bellows_lb_request_count_total[10s]))")
        .expect("a request rate in prometheus");
    let reported = up.json(&[
        "metrics",
        "--namespace",
        "AWS/ApplicationELB",
        "--name",
        "RequestCount",
        "--dimension",
        "LoadBalancer=scraped",
        "--stat",
        "Average",
        "--period",
        "10s",
        "--since",
        "20s",
    ]);
    let points = reported["series"][0]["points"].as_array().unwrap().clone();
    let bellows_rate = points
        .iter()
        .filter_map(|p| p[1].as_f64())
        .fold(0.0f64, f64::max);
    eprintln!("sent {sent}; prometheus rate {prom_rate:.1}/s, bellows {bellows_rate:.1}/s");
    assert!(
        (prom_rate - 40.0).abs() < 8.0,
        "prometheus rate {prom_rate} vs 40/s sent"
    );
    assert!(
        (prom_rate - bellows_rate).abs() / bellows_rate < 0.2,
        "prometheus {prom_rate}/s vs bellows {bellows_rate}/s"
    );
    // At rest, the counter Prometheus holds is exactly what was sent (and checked).
    std::thread::sleep(Duration::from_secs(3));
    let total = query(&prom, "sum(bellows_lb_request_count_total)").unwrap();
    // (Health checks go to targets directly, not through the listener.)
    assert_eq!(total, f64::from(sent));
    // The metric store's own size, which a soak takes out of bellows' memory.
    let series = query(&prom, "bellows_metric_series").unwrap();
    let points = query(&prom, "bellows_metric_datapoints").unwrap();
    let bytes = query(&prom, "bellows_metric_store_bytes").unwrap();
    assert!(series >= 5.0, "{series} series");
    assert!(
        points > series && bytes >= points * 40.0,
        "{series} {points} {bytes}"
    );
}
