//! End to end: what a restart of bellows keeps and records (issue 16, part 7's small
//! ones): the lock file, the records of a run killed with `kill -9`, and a desired
//! capacity set at run time.

// End-to-end tests measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::*;

fn sleepers(desired: u32) -> String {
    format!(
        r#"
[groups.web]
min = 0
max = 3
desired = {desired}
zones = ["zone-a", "zone-b"]

[groups.web.launch]
command = ["/bin/sh", "-c", "exec sleep 600"]
stop_timeout = "1s"
"#
    )
}

fn stop(up: &mut Up) {
    up.signal("TERM");
    assert_eq!(
        up.wait_exit(Duration::from_secs(30)),
        Some(0),
        "{}",
        up.log()
    );
}

fn in_service(up: &Up, n: usize) {
    up.wait_for(&format!("{n} in service"), Duration::from_secs(20), |u| {
        u.in_service().len() == n
    });
}

#[test]
fn the_lock_file_holds_only_the_pid_after_restarts_and_a_second_up_names_it() {
    let mut up = Up::start("lock", &sleepers(0));
    for _ in 0..2 {
        stop(&mut up);
        up.restart(&[]);
    }
    let text = std::fs::read(up.state.join("lock")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&text),
        up.child.id().to_string(),
        "the pid and nothing else: no NUL bytes"
    );
    let out = std::process::Command::new(BIN)
        .args(["up", up.stack.to_str().unwrap(), "--state-dir"])
        .arg(&up.state)
        .args(["--control", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "another `bellows up` (pid {}) is using",
            up.child.id()
        )),
        "{stderr:?}"
    );
}

#[test]
fn after_kill_9_of_bellows_the_next_start_records_each_termination_and_the_stop() {
    let mut up = Up::start("killed", &sleepers(2));
    in_service(&up, 2);
    let ids: Vec<String> = up
        .in_service()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    kill9(u64::from(up.child.id()));
    assert_eq!(up.wait_exit(Duration::from_secs(10)), Some(-1));
    up.restart(&[]);
    in_service(&up, 2);
    let activities = up.activities();
    for id in &ids {
        let ended = activities.iter().find(|a| {
            a["instance"] == id.as_str()
                && a["description"]
                    .as_str()
                    .unwrap()
                    .starts_with("Terminating")
        });
        let ended = ended.unwrap_or_else(|| panic!("a Terminate activity for {id}"));
        assert_eq!(ended["status"], "Successful");
        assert!(
            ended["cause"]
                .as_str()
                .unwrap()
                .contains("bellows ending without stopping it"),
            "{ended}"
        );
    }
    let audit = up.json(&["audit", "--limit", "100"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["action"].as_str())
        .filter(|a| a.ends_with("Stack"))
        .collect();
    // Newest first: this run's start, the killed run's stop (recorded now), its start.
    assert_eq!(
        actions,
        ["StartStack", "StopStack", "StartStack"],
        "{audit}"
    );
}

#[test]
fn a_desired_capacity_set_at_run_time_is_kept_until_the_file_changes() {
    let mut up = Up::start("kept", &sleepers(1));
    in_service(&up, 1);
    let out = up.cli(&["scale", "web", "--desired", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    in_service(&up, 3);
    stop(&mut up);
    up.restart(&[]);
    let desired = |u: &Up| u.json(&["status"])["groups"][0]["desired"].as_u64();
    assert_eq!(
        desired(&up),
        Some(3),
        "kept across the restart, as AWS keeps it"
    );
    in_service(&up, 3);
    stop(&mut up);
    // Only the file's max changes: it applies, the desired set at run time stays.
    let text = std::fs::read_to_string(&up.stack).unwrap();
    std::fs::write(&up.stack, text.replace("max = 3", "max = 4")).unwrap();
    up.restart(&[]);
    let status = up.json(&["status"]);
    assert_eq!(
        (status["groups"][0]["max"].as_u64(), desired(&up)),
        (Some(4), Some(3)),
        "{status}"
    );
    stop(&mut up);
    // The file's own desired changes: it applies.
    let text = std::fs::read_to_string(&up.stack).unwrap();
    std::fs::write(&up.stack, text.replace("desired = 1", "desired = 2")).unwrap();
    up.restart(&[]);
    assert_eq!(desired(&up), Some(2), "the changed file applies");
    in_service(&up, 2);
}
