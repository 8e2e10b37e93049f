//! End to end: a real `bellows up` keeps a group of real instance processes at size.

// End-to-end tests measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn seed_group(extra: &str, launch_extra: &str) -> String {
    format!(
        "[groups.web]\nmin = 0\nmax = 4\ndesired = 2\nzones = [\"zone-a\", \"zone-b\"]\n{extra}\n\n[groups.web.launch]\ncommand = [\"bellows\", \"app\", \"seed\"]\nstop_timeout = \"3s\"\n{launch_extra}\n"
    )
}

#[test]
fn a_killed_instance_is_replaced_within_five_seconds() {
    let up = Up::start("heal", &seed_group("", ""));
    up.wait_for("2 instances in service", Duration::from_secs(15), |u| {
        u.in_service().len() == 2
    });
    let victim = up.in_service()[0].clone();
    let pid = victim["pid"].as_u64().unwrap() as u32;
    kill9(u64::from(pid));

    // The bound: EC2 health notices the exit at once and the replacement starts in
    // milliseconds; five seconds leaves room for a loaded machine.
    let took = up.wait_for("a replacement in service", Duration::from_secs(5), |u| {
        let now = u.in_service();
        now.len() == 2 && now.iter().all(|i| i["id"] != victim["id"])
    });
    eprintln!("replaced in {took:?}");
    let acts = up.activities();
    let term = acts
        .iter()
        .find(|a| a["instance"] == victim["id"] && a["kind"] == "Terminate")
        .expect("the termination is recorded");
    assert_eq!(term["status"], "Successful");
    assert!(
        term["cause"].as_str().unwrap().contains("EC2 health check"),
        "{term}"
    );
    assert!(
        term["cause"].as_str().unwrap().contains("SIGKILL"),
        "{term}"
    );
    assert_eq!(
        acts.iter()
            .filter(|a| a["kind"] == "Launch" && a["status"] == "Successful")
            .count(),
        3
    );
}

#[test]
fn kill_9_of_bellows_leaves_no_instance_behind() {
    let mut up = Up::start(
        "orphans",
        &seed_group("", "setup = \"sleep 300 & echo started a child\""),
    );
    up.wait_for("2 instances in service", Duration::from_secs(15), |u| {
        u.in_service().len() == 2
    });
    let pgids: Vec<u32> = up
        .in_service()
        .iter()
        .map(|i| pgid_of(i["pid"].as_u64().unwrap() as u32))
        .collect();
    let members = group_members(&pgids);
    // shim + app per instance, plus the setup script's stray `sleep` that outlives it.
    assert!(members.len() >= 6, "instance processes: {members:?}");
    up.signal("KILL");
    assert_eq!(up.wait_exit(Duration::from_secs(5)), Some(-1));
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(10) && members.iter().any(|&p| alive(p)) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let left: Vec<u32> = members.iter().copied().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "processes that outlived bellows: {left:?}");
}

#[test]
fn ctrl_c_and_sigterm_stop_every_instance_and_exit_0() {
    for sig in ["INT", "TERM"] {
        let mut up = Up::start("stop", &seed_group("", ""));
        up.wait_for("2 instances in service", Duration::from_secs(15), |u| {
            u.in_service().len() == 2
        });
        let pgids: Vec<u32> = up
            .in_service()
            .iter()
            .map(|i| pgid_of(i["pid"].as_u64().unwrap() as u32))
            .collect();
        let members = group_members(&pgids);
        up.signal(sig);
        assert_eq!(
            up.wait_exit(Duration::from_secs(15)),
            Some(0),
            "exit code after SIG{sig}"
        );
        let left: Vec<u32> = members.iter().copied().filter(|&p| alive(p)).collect();
        assert!(left.is_empty(), "after SIG{sig}, still running: {left:?}");
        assert!(up.log().contains("every instance is gone"));
    }
}

#[test]
fn scale_sets_exact_counts_and_the_termination_policy_chooses() {
    let up = Up::start(
        "scale",
        &seed_group(
            "termination_policy = \"OldestInstance\"\ndesired = 1\nzones = [\"zone-a\"]",
            "",
        )
        .replace("desired = 2\nzones = [\"zone-a\", \"zone-b\"]\n", ""),
    );
    up.wait_for("1 instance", Duration::from_secs(15), |u| {
        u.in_service().len() == 1
    });
    for n in 2..=4 {
        std::thread::sleep(Duration::from_millis(50));
        let out = up.cli(&["scale", "web", "--desired", &n.to_string()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        up.wait_for("scale out", Duration::from_secs(10), |u| {
            u.in_service().len() == n
        });
    }
    let by_age: Vec<String> = up
        .in_service()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();

    // Outside [min, max]: refused with the reason, nothing changes.
    let out = up.cli(&["scale", "web", "--desired", "5"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("desired capacity 5 is outside the group's range [0, 4]"),
        "{err}"
    );

    // Protect the oldest: OldestInstance then removes the next two oldest.
    let out = up.cli(&["protect", &by_age[0]]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = up.cli(&["scale", "web", "--desired", "2"]);
    assert!(out.status.success());
    up.wait_for("scale in to 2", Duration::from_secs(10), |u| {
        u.instances().len() == 2
    });
    let left: Vec<String> = up
        .instances()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, vec![by_age[0].clone(), by_age[3].clone()]);

    let status = up.json(&["status"]);
    assert_eq!(status["groups"][0]["desired"], 2);
    assert_eq!(status["groups"][0]["in_service"], 2);
    let acts = up.activities();
    let terminated: Vec<&str> = acts
        .iter()
        .filter(|a| a["kind"] == "Terminate" && a["status"] == "Successful")
        .map(|a| a["instance"].as_str().unwrap())
        .collect();
    assert_eq!(terminated.len(), 2);
    assert!(terminated.contains(&by_age[1].as_str()) && terminated.contains(&by_age[2].as_str()));
    assert!(acts.iter().any(|a| {
        a["cause"]
            .as_str()
            .unwrap()
            .contains("shrinking the capacity from 4 to 3")
    }));

    // Scaling to zero leaves only the protected instance, as AWS would.
    let out = up.cli(&["scale", "web", "--desired", "0"]);
    assert!(out.status.success());
    up.wait_for(
        "scale in to the protected one",
        Duration::from_secs(10),
        |u| u.instances().len() == 1,
    );
    assert_eq!(up.instances()[0]["id"].as_str().unwrap(), by_age[0]);
}

#[test]
fn changes_need_the_token() {
    let up = Up::start("auth", &seed_group("", ""));
    std::fs::remove_file(up.state.join("token")).unwrap();
    let out = up.cli(&["scale", "web", "--desired", "3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Authorization: Bearer"));
    // Reads stay open.
    assert!(up.cli(&["status"]).status.success());
    // Wrong calls get a JSON error with the right status, never a crash.
    let control = std::fs::read_to_string(up.state.join("control")).unwrap();
    let control = control.trim();
    for (method, path, body, status) in [
        (
            "GET",
            "/api/v1/metrics/query?namespace=AWS/EC2&name=CPUUtilization&since=forever&period=1s",
            None,
            400,
        ),
        (
            "GET",
            "/api/v1/metrics/query?namespace=AWS/EC2&name=X&period=500ms",
            None,
            400,
        ),
        (
            "GET",
            "/api/v1/metrics/query?name=missing-namespace",
            None,
            400,
        ),
        ("GET", "/api/v1/activities?limit=-1", None, 400),
        (
            "GET",
            "/api/v1/instances/..%2F..%2Fetc%2Fpasswd/logs",
            None,
            400,
        ),
        ("GET", "/api/v1/nothing-here", None, 404),
        (
            "PUT",
            "/api/v1/groups/web/capacity",
            Some("{\"desired\": 1}"),
            401,
        ),
        // Without a token, the body is not even read.
        ("POST", "/api/v1/metrics", Some("[1, 2"), 401),
    ] {
        let (got, text) = http(control, method, path, body);
        assert_eq!(got, status, "{method} {path}: {text}");
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"));
        assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string(),
            "{text}"
        );
    }
    assert!(
        up.cli(&["status"]).status.success(),
        "bellows survived every bad call"
    );
}

#[test]
fn logs_keep_each_instances_output_and_a_bind_failure_says_what_to_bind() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let group = format!(
        "[groups.bad]\nmin = 1\nmax = 1\n\n[groups.bad.launch]\nport = {port}\ncommand = [\"python3\", \"-c\", \"import socket; print('binding 127.0.0.1'); socket.socket().bind(('127.0.0.1', {port}))\"]\n\n{}",
        seed_group("", "")
    );
    let up = Up::start("logs", &group);
    up.wait_for(
        "the failed instance's activity",
        Duration::from_secs(15),
        |u| {
            u.activities()
                .iter()
                .any(|a| a["group"] == "bad" && a["kind"] == "Terminate")
        },
    );
    let acts = up.activities();
    let term = acts
        .iter()
        .find(|a| a["group"] == "bad" && a["kind"] == "Terminate")
        .unwrap();
    let cause = term["cause"].as_str().unwrap();
    assert!(cause.contains("exit status 1"), "{cause}");
    assert!(
        cause.contains("must listen on its own address $PRIVATE_IP:$PORT (127."),
        "{cause}"
    );

    let id = term["instance"].as_str().unwrap();
    let out = up.cli(&["logs", id]);
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        log.contains("binding 127.0.0.1") && log.contains("Address already in use"),
        "{log}"
    );

    up.wait_for("the seed instances", Duration::from_secs(15), |u| {
        u.in_service()
            .iter()
            .filter(|i| i["group"] == "web")
            .count()
            == 2
    });
    let web = up
        .in_service()
        .into_iter()
        .find(|i| i["group"] == "web")
        .unwrap();
    let out = up.cli(&["logs", web["id"].as_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("listening on http://{}", address(&web)))
    );
    // --follow prints what the instance writes until it stops.
    let follower = std::process::Command::new(BIN)
        .arg("--state-dir")
        .arg(&up.state)
        .args(["logs", "--follow", web["id"].as_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(up.cli(&["scale", "web", "--desired", "0"]).status.success());
    let out = follower.wait_with_output().unwrap();
    let followed = String::from_utf8_lossy(&out.stdout);
    assert!(
        followed.contains("listening on") && followed.contains("the command exited"),
        "{followed}"
    );
    let json = up.json(&["logs", web["id"].as_str().unwrap()]);
    assert_eq!(json["instance"], web["id"]);
    assert!(json["log"].as_str().unwrap().contains("stopping"));

    let out = up.cli(&["logs", "i-00000000000000000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no log for instance"));
    drop(holder);
}

#[test]
fn operators_terminate_instances_and_set_their_health() {
    let up = Up::start("operate", &seed_group("", ""));
    up.wait_for("2 instances in service", Duration::from_secs(15), |u| {
        u.in_service().len() == 2
    });
    let first = up.in_service()[0]["id"].as_str().unwrap().to_owned();
    // Terminate without decrementing: replaced, desired stays 2.
    let out = up.cli(&["terminate", &first]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    up.wait_for("a replacement", Duration::from_secs(10), |u| {
        let now = u.in_service();
        now.len() == 2 && now.iter().all(|i| i["id"] != first.as_str())
    });
    // Terminate with --decrement-desired: desired 1, no replacement.
    let second = up.in_service()[0]["id"].as_str().unwrap().to_owned();
    let out = up.cli(&["terminate", &second, "--decrement-desired"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("desired 1"));
    up.wait_for("one instance", Duration::from_secs(10), |u| {
        u.instances().len() == 1
    });
    // Unhealthy by hand: the group replaces it.
    let last = up.in_service()[0]["id"].as_str().unwrap().to_owned();
    assert!(up.cli(&["set-health", &last, "unhealthy"]).status.success());
    up.wait_for("the unhealthy one replaced", Duration::from_secs(10), |u| {
        let now = u.in_service();
        now.len() == 1 && now[0]["id"] != last.as_str()
    });
    let acts = up.activities();
    let user = acts
        .iter()
        .filter(|a| {
            a["cause"]
                .as_str()
                .unwrap()
                .contains("in response to a user request")
        })
        .count();
    assert_eq!(user, 2, "{acts:?}");
    assert!(
        acts.iter().any(|a| a["instance"] == last.as_str()
            && a["cause"].as_str().unwrap().contains("health check"))
    );
    // An instance that is gone cannot be terminated again.
    let out = up.cli(&["terminate", &first]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not_found")
            || String::from_utf8_lossy(&out.stderr).contains("no instance")
    );
}

#[test]
fn a_zone_outage_kills_its_instances_keeps_launches_out_and_its_end_rebalances() {
    let up = Up::start(
        "outage",
        "[groups.web]\nmin = 0\nmax = 6\ndesired = 4\nzones = [\"zone-a\", \"zone-b\"]\n\n[groups.web.launch]\ncommand = [\"bellows\", \"app\", \"seed\"]\nstop_timeout = \"3s\"\n",
    );
    let by_zone = |u: &Up| {
        let mut n = std::collections::BTreeMap::new();
        for i in u.in_service().iter().filter(|i| i["group"] == "web") {
            *n.entry(i["zone"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        }
        n
    };
    up.wait_for(
        "2 instances in service in each zone",
        Duration::from_secs(20),
        |u| by_zone(u).values().copied().collect::<Vec<i32>>() == [2, 2],
    );
    let zones = up.json(&["zones"]);
    assert_eq!(zones[1]["zone"], "zone-b", "{zones}");
    assert_eq!(zones[1]["available"], true, "{zones}");
    assert_eq!(zones[1]["instances"], 2, "{zones}");
    let in_b: Vec<Value> = up
        .in_service()
        .into_iter()
        .filter(|i| i["zone"] == "zone-b")
        .collect();

    // The outage: zone-b's two instances are killed, their replacements go to zone-a.
    let out = up.cli(&["zone", "fail", "zone-b"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("zone zone-b: outage started; killed 2 instances"),
        "{text}"
    );
    for i in &in_b {
        assert!(text.contains(i["id"].as_str().unwrap()), "{text}");
    }
    up.wait_for(
        "4 in service, all in zone-a",
        Duration::from_secs(20),
        |u| by_zone(u).get("zone-a") == Some(&4) && u.in_service().len() == 4,
    );
    assert!(
        up.instances()
            .iter()
            .all(|i| i["zone"] != "zone-b" || in_b.contains(i)),
        "nothing launched in zone-b during its outage"
    );
    let term = up
        .activities()
        .into_iter()
        .find(|a| a["instance"] == in_b[0]["id"] && a["kind"] == "Terminate")
        .expect("the killed instance's termination is recorded");
    assert!(
        term["cause"].as_str().unwrap().contains("SIGKILL"),
        "{term}"
    );
    assert_eq!(up.json(&["zones"])[1]["available"], false);
    assert_eq!(up.json(&["status"])["zones_out"][0], "zone-b");
    let status = String::from_utf8_lossy(&up.cli(&["status"]).stdout).into_owned();
    assert!(status.contains("zone-a,zone-b (outage)"), "{status}");

    // A group added by apply during the outage stays out of zone-b too.
    let text = std::fs::read_to_string(&up.stack).unwrap();
    let more = format!(
        "{text}\n[groups.api]\nmin = 0\nmax = 2\ndesired = 2\nzones = [\"zone-b\", \"zone-a\"]\n\n[groups.api.launch]\ncommand = [\"bellows\", \"app\", \"seed\"]\nstop_timeout = \"3s\"\n"
    );
    let file = write_file(&up.dir, "more.toml", &more);
    let out = up.cli(&["apply", file.to_str().unwrap(), "--yes"]);
    assert!(out.status.success(), "{out:?}");
    up.wait_for("group api's 2 in service", Duration::from_secs(20), |u| {
        u.in_service()
            .iter()
            .filter(|i| i["group"] == "api")
            .count()
            == 2
    });
    assert!(
        up.instances()
            .iter()
            .filter(|i| i["group"] == "api")
            .all(|i| i["zone"] == "zone-a"),
        "{:#?}",
        up.instances()
    );

    // A wrong zone is a 404 that says where to look, and changes nothing.
    let out = up.cli(&["zone", "fail", "zone-z"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no group has zone `zone-z`"),
        "{out:?}"
    );

    // The zone is back: two instances move there, each launched before one in zone-a
    // goes, so in service never drops below 4.
    assert!(up.cli(&["zone", "restore", "zone-b"]).status.success());
    let mut fewest = usize::MAX;
    up.wait_for(
        "2 in service in each zone again",
        Duration::from_secs(30),
        |u| {
            let z = by_zone(u);
            fewest = fewest.min(z.values().sum::<i32>() as usize);
            let web = u.instances().iter().filter(|i| i["group"] == "web").count();
            z.values().copied().collect::<Vec<i32>>() == [2, 2] && web == 4
        },
    );
    assert!(
        fewest >= 4,
        "in service dropped to {fewest} while rebalancing"
    );
    let moves: Vec<Value> = up
        .activities()
        .into_iter()
        .filter(|a| {
            a["group"] == "web"
                && a["cause"]
                    .as_str()
                    .unwrap_or("")
                    .contains("to rebalance the zones: zone-a has more instances than zone-b")
        })
        .collect();
    assert_eq!(moves.len(), 2, "{moves:#?}");

    // Both changes are in the audit trail, with what the outage killed.
    let audit = up.json(&["audit"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["target"] == "zone/zone-b")
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["EndZoneOutage", "StartZoneOutage"], "{audit:#}");
}
