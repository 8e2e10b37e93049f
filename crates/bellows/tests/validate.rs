//! `bellows validate`: every example is valid; a broken file gets every error.

// End-to-end tests measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::process::Command;

use common::*;

#[test]
fn examples_validate() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    // The stacks at the top and the simulator's comparison stacks in examples/sim.
    let mut files: Vec<_> = [root.to_owned(), format!("{root}/sim")]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap().flatten())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 2);
    let out = Command::new(BIN)
        .arg("validate")
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(": ok"))
            .count(),
        files.len()
    );
}

#[test]
fn a_broken_file_gets_every_error_with_its_position_and_exit_2() {
    let (dir, _) = scratch();
    let file = write_file(
        &dir,
        "broken.toml",
        "[groups.web]\nmin = 2\nmax = 1\nflavour = \"x\"\n[groups.web.launch]\ncommand = \"app\"\n",
    );
    let out = Command::new(BIN)
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let f = file.display();
    let expected = format!(
        "{f}:3:7: `groups.web.max` (1) is below `min` (2)\n\
         {f}:4:1: unknown key `flavour` in [groups.web]; expected one of: default_cooldown, default_instance_warmup, desired, health_check_grace_period, health_check_type, launch, max, min, role, scale_from_zero, scheduled, target_groups, termination_policy, zones\n\
         {f}:6:11: `groups.web.launch.command` must be an array of strings, found string\n\
         {f}: 3 errors\n"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), expected);

    let out = Command::new(BIN)
        .arg("validate")
        .arg(dir.join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));

    // `up` refuses an invalid file the same way, before starting anything.
    let out = Command::new(BIN)
        .arg("up")
        .arg(&file)
        .arg("--state-dir")
        .arg(dir.join("s"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.join("s").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_example_runs_as_it_is() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    // Not examples/sim: those stacks are for `bellows sim`, and idle their policies
    // scale the group in at once.
    let mut files: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for file in files {
        let (dir, _) = scratch();
        // As it is, but for the listener's port: a fixed one may be taken on a test machine.
        let stack = std::fs::read_to_string(&file)
            .unwrap()
            .replace(":8080\"", ":0\"");
        let copy = write_file(&dir, "example.toml", &stack);
        // From the repository's root, as the examples' comments say to run them.
        let repo = std::path::Path::new(root).join("..");
        let mut up = Up::start_file_in(&copy, &dir, &repo);
        if stack.contains("[listeners.") {
            up.wait_for(
                "a healthy target",
                std::time::Duration::from_secs(20),
                |u| u.healthy() > 0,
            );
            // Served by an instance (whatever its app answers), not the load balancer; the
            // IP tracker lives under its path prefix.
            let path = if stack.contains("/app-x7k9m2n8/") {
                "/app-x7k9m2n8/"
            } else {
                "/"
            };
            let (status, headers, _) = request(&up.lb(), "GET", path, &[], "");
            // bellows' apps name themselves; the Flask app of flask-dynamodb.toml is
            // known by its server, which the load balancer never writes.
            let by_instance = header(&headers, "x-bellows-instance").is_some()
                || header(&headers, "server").is_some_and(|s| s.starts_with("Werkzeug"));
            assert!(status < 500 && by_instance, "{}: {status}", file.display());
        }
        let desired: usize = stack
            .lines()
            .filter_map(|l| l.strip_prefix("desired = "))
            .map(|n| n.trim().parse::<usize>().unwrap())
            .sum();
        up.wait_for(
            &format!("{} instances of {}", desired, file.display()),
            std::time::Duration::from_secs(20),
            |u| u.in_service().len() == desired,
        );
        up.signal("TERM");
        assert_eq!(up.wait_exit(std::time::Duration::from_secs(20)), Some(0));
    }
}

/// The CLI finds its stack through the state directory of the current directory: from
/// another directory a change is refused for want of the token, and the command says
/// where it looked instead of a bare 401; `dashboard` says why its link is read only,
/// and prints no link where no stack answers.
#[test]
fn from_another_directory_the_cli_says_how_it_looked_for_the_stack() {
    let up = Up::start("elsewhere", &echo_stack(1, ""));
    let control = std::fs::read_to_string(up.state.join("control")).unwrap();
    let (elsewhere, _) = scratch();
    let out = Command::new(BIN)
        .current_dir(&elsewhere)
        .env_remove("BELLOWS_STATE_DIR")
        .args(["--control", control.trim(), "apply", "--dry-run"])
        .arg(&up.stack)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("state directory of the current directory"),
        "{err}"
    );
    assert!(err.contains(".bellows"), "{err}");
    assert!(err.contains("--state-dir"), "{err}");
    let dashboard = |control: &str| {
        Command::new(BIN)
            .current_dir(&elsewhere)
            .env_remove("BELLOWS_STATE_DIR")
            .env_remove("BELLOWS_CONTROL")
            .args(["--control", control, "dashboard"])
            .output()
            .unwrap()
    };
    let out = dashboard(control.trim());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("http://{}/", control.trim())
    );
    assert!(err.contains("read only"), "{err}");
    assert!(
        err.contains("state directory of the current directory"),
        "{err}"
    );
    // Where no stack answers, no link: the command says it cannot reach one.
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .to_string();
    let out = dashboard(&nobody);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains(&format!("cannot reach bellows at {nobody}")),
        "{err}"
    );
    assert!(err.contains("--state-dir"), "{err}");
    // With the state directory, the same commands work.
    let ok = up.cli(&["apply", "--dry-run", up.stack.to_str().unwrap()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let link = up.cli(&["dashboard"]);
    assert!(String::from_utf8_lossy(&link.stdout).contains("#token="));
    // The audit table fits an 80-column terminal; --json keeps every value whole.
    let audit = Command::new(BIN)
        .env("COLUMNS", "80")
        .arg("--state-dir")
        .arg(&up.state)
        .arg("audit")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&audit.stdout);
    assert!(table.contains("StartStack"), "{table}");
    for line in table.lines() {
        assert!(
            line.chars().count() <= 80,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    let whole = up.json(&["audit"]);
    assert!(whole.to_string().contains("listeners"), "{whole}");
    let _ = std::fs::remove_dir_all(elsewhere);
}
