//! The IP tracker in a real browser: headless Chromium driven by playwright-core
//! (scripts/test installs both when missing), through the load balancer.

// End-to-end tests measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

#[test]
fn the_tracker_page_shows_who_you_are_and_everyone_live_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let driver = root.join("tests/browser/ip-tracker.mjs");
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .exists(),
        "playwright-core is missing: run scripts/test (it runs npm ci in tests/browser)"
    );
    let (dir, _) = scratch();
    let stack = std::fs::read_to_string(root.join("examples/ip-tracker.toml"))
        .unwrap()
        .replace(":8080\"", ":0\"");
    let file = write_file(&dir, "ip-tracker.toml", &stack);
    let up = Up::start_file(&file, &dir);
    up.wait_for("2 healthy", Duration::from_secs(20), |u| u.healthy() == 2);
    let url = format!("http://{}/app-x7k9m2n8/", up.lb());
    let artifacts = root.join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("ip-tracker.png");
    let out = std::process::Command::new("node")
        .arg(&driver)
        .arg(&url)
        .arg(&shot)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{stderr}"
    );
    eprintln!("{stdout}");
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(
        up.instances().iter().any(|i| i["id"] == result["instance"]),
        "{result}"
    );
    assert!(
        shot.metadata().unwrap().len() > 10_000,
        "a screenshot is kept in artifacts/"
    );
}

#[test]
fn the_dashboard_shows_moving_charts_and_sets_desired_capacity_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let driver = root.join("tests/browser/dashboard.mjs");
    let up = Up::start("dashboard", &echo_stack(1, ""));
    up.wait_for("1 healthy", Duration::from_secs(20), |u| u.healthy() == 1);
    // A DynamoDB table with two items, made through the AWS endpoint: the page lists it.
    need_clients();
    let env = aws_env(&up);
    let made = aws(
        &env,
        &[
            "dynamodb",
            "create-table",
            "--table-name",
            "dash-orders",
            "--attribute-definitions",
            "AttributeName=id,AttributeType=S",
            "--key-schema",
            "AttributeName=id,KeyType=HASH",
            "--billing-mode",
            "PAY_PER_REQUEST",
        ],
    );
    assert!(made.status.success(), "{made:?}");
    for id in ["a", "b"] {
        let item =
            format!(r#"{{"id": {{"S": "{id}"}}, "note": {{"S": "from the dashboard test"}}}}"#);
        let put = aws(
            &env,
            &[
                "dynamodb",
                "put-item",
                "--table-name",
                "dash-orders",
                "--item",
                &item,
            ],
        );
        assert!(put.status.success(), "{put:?}");
    }
    // Load while the page watches: bounded in time.
    let load = GetLoad::start(up.lb(), Duration::from_millis(20));
    let link = String::from_utf8(up.cli(&["dashboard"]).stdout).unwrap();
    assert!(link.contains("#token="), "{link}");
    let artifacts = root.join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("dashboard.png");
    let out = std::process::Command::new("node")
        .arg(&driver)
        .arg(link.trim())
        .arg(&shot)
        .output()
        .expect("node runs");
    let _ = load.finish();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{stderr}"
    );
    eprintln!("{stdout}");
    assert_eq!(up.json(&["status"])["groups"][0]["desired"], 2);
    let audit = up.json(&["audit", "--target", "group/web"]);
    let change = &audit[0];
    assert_eq!(change["action"], "UpdateAutoScalingGroup", "{audit}");
    assert_eq!(change["source"], "dashboard", "{change}");
    assert_eq!(change["after"]["desired"], 2, "{change}");
    let zone = &up.json(&["audit", "--target", "zone/zone-b"])[0];
    assert_eq!(zone["action"], "StartZoneOutage", "{zone}");
    assert_eq!(zone["source"], "dashboard", "{zone}");
    assert_eq!(up.json(&["zones"])[1]["available"], false);
    assert!(
        shot.metadata().unwrap().len() > 10_000,
        "a screenshot is kept in artifacts/"
    );
}
