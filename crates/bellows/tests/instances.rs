//! End to end: an instance dies whole and is measured whole (issue 16, part 7), with
//! cgroups (bellows runs as root here, as in CI) and without them (`--no-cgroups`).
//!
//! The hostile app ignores SIGTERM and leaves a child in a session of its own
//! (`setsid`), which neither the process group nor the shim's SIGTERM reaches.

// End-to-end tests measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::*;

/// A group of the hostile app: it ignores SIGTERM, so does its `setsid` child, which
/// writes its pid to the shared data directory.
fn hostile(desired: u32, stop_timeout: &str) -> String {
    format!(
        r#"
[groups.web]
min = 0
max = 2
desired = {desired}
zones = ["zone-a"]

[groups.web.launch]
command = ["/bin/sh", "-c", "trap '' TERM; setsid /bin/sh -c 'echo $$ > \"$BELLOWS_DATA_DIR/orphan-$INSTANCE_ID\"; exec sleep 600' & exec sleep 600"]
stop_timeout = "{stop_timeout}"
"#
    )
}

/// Flags for `up` and what `bellows status` must say of resource limits.
fn mode(cgroups: bool) -> (&'static [&'static str], &'static str) {
    if cgroups {
        (&[], "enforced (cgroups)")
    } else {
        (&["--no-cgroups"], "not enforced")
    }
}

fn check_mode(up: &Up, cgroups: bool) {
    let status = String::from_utf8_lossy(&up.cli(&["status"]).stdout).into_owned();
    let (_, says) = mode(cgroups);
    assert!(
        status.contains(says),
        "this test needs cgroups to be {}: run it as root with a writable cgroup hierarchy (as CI does); status:\n{status}",
        if cgroups { "on" } else { "off" }
    );
}

/// The in-service instance's app pid and its setsid child's pid, once it wrote it.
fn instance_pids(up: &Up) -> (String, u32, u32) {
    up.wait_for("an instance in service", Duration::from_secs(20), |u| {
        u.in_service().len() == 1
    });
    let inst = up.in_service().remove(0);
    let id = inst["id"].as_str().unwrap().to_owned();
    let app = inst["pid"].as_u64().unwrap() as u32;
    let file = up.state.join("data").join(format!("orphan-{id}"));
    up.wait_for("the orphan's pid", Duration::from_secs(10), |_| {
        std::fs::read_to_string(&file).is_ok_and(|t| t.trim().parse::<u32>().is_ok())
    });
    let orphan = std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(orphan), "the setsid child runs");
    assert_ne!(pgid_of(orphan), pgid_of(app), "it left the process group");
    (id, app, orphan)
}

fn a_scale_in_and_sigterm_of_bellows_leave_no_process(cgroups: bool) {
    let (flags, _) = mode(cgroups);
    let mut up = Up::start_with_flags("whole", &hostile(1, "1s"), flags);
    check_mode(&up, cgroups);
    let (id, app, orphan) = instance_pids(&up);

    let out = up.cli(&["scale", "web", "--desired", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    up.wait_for("the termination to end", Duration::from_secs(20), |u| {
        u.activities().iter().any(|a| {
            a["instance"] == id.as_str()
                && a["description"]
                    .as_str()
                    .unwrap()
                    .starts_with("Terminating")
                && a["status"] == "Successful"
        })
    });
    // The instance ends only once its whole tree is gone: nothing is left the moment
    // the activity says Successful.
    assert!(!alive(app), "the app is gone");
    assert!(
        !alive(orphan),
        "the setsid child is gone, not reparented to pid 1"
    );
    let activity = up
        .activities()
        .into_iter()
        .find(|a| {
            a["instance"] == id.as_str()
                && a["description"]
                    .as_str()
                    .unwrap()
                    .starts_with("Terminating")
        })
        .unwrap();
    let message = activity["status_message"].as_str().unwrap_or_default();
    assert!(
        message.contains("SIGKILL") && message.contains("after the stop timeout (1s)"),
        "the forced SIGKILL is recorded: {activity}"
    );

    // The same app, stopped by SIGTERM of bellows itself.
    let out = up.cli(&["scale", "web", "--desired", "1"]);
    assert!(out.status.success());
    let (_, app, orphan) = instance_pids(&up);
    up.signal("TERM");
    assert_eq!(
        up.wait_exit(Duration::from_secs(30)),
        Some(0),
        "{}",
        up.log()
    );
    assert!(!alive(app), "the app is gone after bellows exits");
    assert!(
        !alive(orphan),
        "the setsid child is gone after bellows exits"
    );
}

#[test]
fn with_cgroups_a_scale_in_and_sigterm_of_bellows_leave_no_process() {
    a_scale_in_and_sigterm_of_bellows_leave_no_process(true);
}

#[test]
fn without_cgroups_a_scale_in_and_sigterm_of_bellows_leave_no_process() {
    a_scale_in_and_sigterm_of_bellows_leave_no_process(false);
}

/// bellows and the shim both killed with `kill -9`, before the shim could stop its tree:
/// the app and its setsid child are left running, until the next `up` stops them.
fn the_next_up_stops_an_earlier_runs_leftovers(cgroups: bool) {
    let (flags, _) = mode(cgroups);
    let mut up = Up::start_with_flags("leftovers", &hostile(1, "60s"), flags);
    check_mode(&up, cgroups);
    let (_, app, orphan) = instance_pids(&up);
    let shim = pgid_of(app);
    kill9(u64::from(up.child.id()));
    kill9(u64::from(shim));
    assert_eq!(up.wait_exit(Duration::from_secs(10)), Some(-1));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        alive(app) && alive(orphan),
        "the app and its child were left behind by the killed run"
    );
    // The next run stops its own instances promptly when the test ends.
    let stack = std::fs::read_to_string(&up.stack).unwrap();
    std::fs::write(&up.stack, stack.replace("\"60s\"", "\"1s\"")).unwrap();
    up.restart(flags);
    up.wait_for("the leftovers stopped", Duration::from_secs(10), |_| {
        !alive(app) && !alive(orphan)
    });
}

#[test]
fn with_cgroups_the_next_up_stops_an_earlier_runs_leftovers() {
    the_next_up_stops_an_earlier_runs_leftovers(true);
}

#[test]
fn without_cgroups_the_next_up_stops_an_earlier_runs_leftovers() {
    the_next_up_stops_an_earlier_runs_leftovers(false);
}

/// A busy loop in a session of its own counts in the instance's CPU.
fn cpu_is_measured_over_the_whole_instance(cgroups: bool) {
    let (flags, _) = mode(cgroups);
    let group = r#"
[groups.web]
min = 1
max = 1
desired = 1
zones = ["zone-a"]

[groups.web.launch]
command = ["/bin/sh", "-c", "setsid /bin/sh -c 'while :; do :; done' & exec sleep 600"]
stop_timeout = "1s"
"#;
    let up = Up::start_with_flags("measured", group, flags);
    check_mode(&up, cgroups);
    // Measured by the process group, as before, the instance showed 0.0% (its command
    // sleeps); the loop gets what a loaded machine leaves it, so the bar is low.
    up.wait_for(
        "the setsid busy loop in the instance's CPU",
        Duration::from_secs(30),
        |u| {
            u.in_service()
                .first()
                .and_then(|i| i["cpu_percent"].as_f64())
                .unwrap_or(0.0)
                > 10.0
        },
    );
    let inst = up.in_service().remove(0);
    assert!(
        inst["memory_bytes"].as_u64().unwrap_or(0) > 0,
        "memory is measured: {inst}"
    );
}

#[test]
fn with_cgroups_cpu_is_measured_over_the_whole_instance() {
    cpu_is_measured_over_the_whole_instance(true);
}

#[test]
fn without_cgroups_cpu_is_measured_over_the_whole_instance() {
    cpu_is_measured_over_the_whole_instance(false);
}

/// An app that outgrows its instance type's memory is killed by the kernel's cgroup OOM
/// killer, and every view says OOMKilled, not a bare SIGKILL. (Without cgroups there is
/// no memory limit to enforce.)
#[test]
fn with_cgroups_an_out_of_memory_kill_is_called_oomkilled() {
    let group = r#"
[groups.web]
min = 1
max = 1
desired = 1
zones = ["zone-a"]

[groups.web.launch]
# The shell itself holds 256 MB in a variable, on a 32 MiB instance.
command = ["/bin/sh", "-c", "x=$(head -c 268435456 /dev/zero | tr '\\0' a); sleep 600"]
instance_type = { vcpu = 1, memory = "32MiB" }
stop_timeout = "1s"
"#;
    let up = Up::start_with_flags("oom", group, &[]);
    check_mode(&up, true);
    up.wait_for(
        "a termination caused by OOMKilled",
        Duration::from_secs(30),
        |u| {
            u.activities().iter().any(|a| {
                a["cause"]
                    .as_str()
                    .is_some_and(|c| c.contains("(OOMKilled: the instance type's memory limit was reached (signal 9 (SIGKILL)))"))
            })
        },
    );
    // The investigation reads the health reason ("the process exited: OOMKilled ...").
    let report = up.json(&["investigate", "--since", "5m"]);
    let top = report["hypotheses"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["cause"] == "out_of_memory"))
        .unwrap_or_else(|| panic!("an out-of-memory hypothesis: {report}"));
    assert!(
        top["evidence"]
            .to_string()
            .contains("the process exited: OOMKilled"),
        "{top}"
    );
}

/// 200 sleeping children share their pages: the instance's memory is what its cgroup is
/// charged (the working set), not a sum of their resident sizes, which counts each
/// shared page 200 times.
#[test]
fn with_cgroups_memory_is_the_cgroups_not_a_sum_of_resident_sizes() {
    let group = r#"
[groups.web]
min = 1
max = 1
desired = 1
zones = ["zone-a"]

[groups.web.launch]
command = ["/bin/sh", "-c", "for i in $(seq 200); do sleep 600 & done; exec sleep 600"]
stop_timeout = "1s"
"#;
    let up = Up::start_with_flags("memory", group, &[]);
    check_mode(&up, true);
    up.wait_for("201 processes", Duration::from_secs(30), |u| {
        u.in_service()
            .first()
            .and_then(|i| i["pid"].as_u64())
            .is_some_and(|pid| group_members(&[pgid_of(pid as u32)]).len() >= 202)
    });
    let pid = up.in_service()[0]["pid"].as_u64().unwrap() as u32;
    let rss_sum: u64 = group_members(&[pgid_of(pid)])
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/statm")).ok())
        .filter_map(|t| t.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum::<u64>()
        * 4096;
    // Samples are taken each second: the ones from before every child ran do not count.
    std::thread::sleep(Duration::from_millis(2500));
    let memory = |u: &Up| u.in_service()[0]["memory_bytes"].as_u64().unwrap_or(0);
    up.wait_for(
        &format!("the working set well under the sum of resident sizes ({rss_sum} bytes)"),
        Duration::from_secs(10),
        |u| {
            let m = memory(u);
            m > 0 && m * 2 < rss_sum
        },
    );
    eprintln!(
        "working set {} bytes, sum of resident sizes {rss_sum} bytes",
        memory(&up)
    );
}
