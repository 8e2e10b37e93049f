//! Shared helpers for the end-to-end tests: a real `bellows up` on ephemeral ports, in
//! its own temporary directory and loopback network, stopped when the test ends.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod terraform;
pub mod topology;

pub const BIN: &str = env!("CARGO_BIN_EXE_bellows");

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh directory and a loopback network no other test process uses.
pub fn scratch() -> (PathBuf, String) {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("bellows-test-{pid}-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let network = format!(
        "127.{}.{}.0/24",
        10 + pid % 200,
        (pid / 200 % 200) as u32 + n
    );
    (dir, network)
}

/// A port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral port")
}

pub struct Up {
    pub child: Child,
    pub dir: PathBuf,
    pub state: PathBuf,
    pub stack: PathBuf,
}

impl Up {
    /// Starts `bellows up` on `groups` (TOML for groups and target groups) and waits for
    /// its control API.
    pub fn start(name: &str, groups: &str) -> Up {
        let (dir, network) = scratch();
        let stack = dir.join("stack.toml");
        let text = format!(
            "[stack]\nname = \"{name}\"\ncontrol = \"127.0.0.1:0\"\ninstance_network = \"{network}\"\n\n{groups}"
        );
        std::fs::write(&stack, text).unwrap();
        Up::spawn(&stack, &dir, &[], &[])
    }

    /// Like `start`, with more flags for `up` (`--no-cgroups`).
    pub fn start_with_flags(name: &str, groups: &str, flags: &[&str]) -> Up {
        let (dir, network) = scratch();
        let stack = dir.join("stack.toml");
        let text = format!(
            "[stack]\nname = \"{name}\"\ncontrol = \"127.0.0.1:0\"\ninstance_network = \"{network}\"\n\n{groups}"
        );
        std::fs::write(&stack, text).unwrap();
        Up::spawn_flags(&stack, &dir, &[], &[], flags)
    }

    /// Starts `up` again on this one's stack and state directory, after it exited.
    pub fn restart(&mut self, flags: &[&str]) {
        let _ = std::fs::remove_file(self.state.join("control"));
        let child = Up::spawn_flags(&self.stack, &self.dir, &[], &[], flags);
        // The new run takes over; the old handle must not remove the directory.
        let mut child = std::mem::ManuallyDrop::new(child);
        std::mem::swap(&mut self.child, &mut child.child);
    }

    /// Like `start`, with variables in bellows' own environment.
    pub fn start_with_env(name: &str, groups: &str, env: &[(&str, &str)]) -> Up {
        let (dir, network) = scratch();
        let stack = dir.join("stack.toml");
        let text = format!(
            "[stack]\nname = \"{name}\"\ncontrol = \"127.0.0.1:0\"\ninstance_network = \"{network}\"\n\n{groups}"
        );
        std::fs::write(&stack, text).unwrap();
        Up::spawn(&stack, &dir, &[], env)
    }

    /// Starts `bellows up` on a stack file as it is, with only the control address
    /// moved to an ephemeral port.
    pub fn start_file(stack: &Path, dir: &Path) -> Up {
        Up::spawn(stack, dir, &["--control", "127.0.0.1:0"], &[])
    }

    /// Like `start_file`, with `up` (and so its instances) run in `cwd`, as a reader
    /// runs the examples from the repository's root.
    pub fn start_file_in(stack: &Path, dir: &Path, cwd: &Path) -> Up {
        Up::spawn_in(
            stack,
            dir,
            &["--control", "127.0.0.1:0"],
            &[],
            &[],
            Some(cwd),
        )
    }

    /// Starts `bellows up --empty --name NAME` (no listener, target group or group) on
    /// an ephemeral control port and a loopback network of its own. `stack` is where a
    /// test may write the file it applies.
    pub fn start_empty(name: &str) -> Up {
        let (dir, network) = scratch();
        let state = dir.join("state");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("up.log"))
            .unwrap();
        let child = Command::new(BIN)
            .args(["--control", "127.0.0.1:0", "up", "--empty", "--name", name])
            .args(["--instance-network", &network])
            .arg("--state-dir")
            .arg(&state)
            .env("RUST_LOG", "info")
            .stdout(log)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("bellows starts");
        let up = Up {
            child,
            stack: dir.join("stack.toml"),
            dir,
            state,
        };
        up.wait_for("the control API", Duration::from_secs(15), |u| {
            u.state.join("control").exists()
        });
        up
    }

    fn spawn(stack: &Path, dir: &Path, global: &[&str], env: &[(&str, &str)]) -> Up {
        Up::spawn_flags(stack, dir, global, env, &[])
    }

    fn spawn_flags(
        stack: &Path,
        dir: &Path,
        global: &[&str],
        env: &[(&str, &str)],
        flags: &[&str],
    ) -> Up {
        Up::spawn_in(stack, dir, global, env, flags, None)
    }

    fn spawn_in(
        stack: &Path,
        dir: &Path,
        global: &[&str],
        env: &[(&str, &str)],
        flags: &[&str],
        cwd: Option<&Path>,
    ) -> Up {
        let state = dir.join("state");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("up.log"))
            .unwrap();
        let mut cmd = Command::new(BIN);
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        let child = cmd
            .envs(env.iter().copied())
            .args(global)
            .arg("up")
            .arg(stack)
            .arg("--state-dir")
            .arg(&state)
            .args(flags)
            .env("RUST_LOG", "info")
            .stdout(log)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("bellows starts");
        let up = Up {
            child,
            dir: dir.to_owned(),
            state,
            stack: stack.to_owned(),
        };
        up.wait_for("the control API", Duration::from_secs(15), |u| {
            u.state.join("control").exists()
        });
        up
    }

    /// Runs a CLI command against this `up`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .output()
            .expect("bellows runs")
    }

    /// Runs a CLI command with `--json` and parses its output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "bellows {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }

    pub fn instances(&self) -> Vec<Value> {
        self.json(&["instances"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn in_service(&self) -> Vec<Value> {
        self.instances()
            .into_iter()
            .filter(|i| i["lifecycle"] == "InService")
            .collect()
    }

    pub fn activities(&self) -> Vec<Value> {
        self.json(&["activities", "--limit", "1000"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls `ready` every 100 ms until it holds; panics after `timeout`.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut(&Up) -> bool,
    ) -> Duration {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if ready(self) {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out after {timeout:?} waiting for {what}; log:\n{}",
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("up.log")).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} bellows");
    }

    /// Waits for `up` to exit and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            if self.wait_exit(Duration::from_secs(20)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a process is still alive (a zombie waiting to be reaped counts as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Every process in the process groups of these instance processes.
pub fn group_members(pgids: &[u32]) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let pgrp: u32 = fields.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
        if pgids.contains(&pgrp) && !fields[0].starts_with('Z') {
            out.push(pid);
        }
    }
    out
}

/// The process group of a process.
pub fn pgid_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(") ").unwrap();
    rest.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// A minimal HTTP/1.1 client for the tests: method, URL path on `addr`, optional body.
pub fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Like `http`, with request headers, returning the response headers too.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let resp = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

pub fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `kill -9` of a process.
pub fn kill9(pid: u64) {
    assert!(
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success(),
        "kill -9 {pid}"
    );
}

impl Up {
    /// `kill -9` of an instance's command, by instance id.
    pub fn kill_instance(&self, id: &str) {
        let pid = self
            .instances()
            .iter()
            .find(|i| i["id"] == id)
            .expect("the instance")["pid"]
            .as_u64()
            .unwrap();
        kill9(pid);
    }

    /// The instance whose target has `n` requests in flight, waiting up to 5 s for one.
    pub fn target_with_outstanding(&self, n: u64, what: &str) -> String {
        self.wait_for(what, Duration::from_secs(5), |u| {
            u.targets().iter().any(|t| t["outstanding"] == n)
        });
        let t = self
            .targets()
            .into_iter()
            .find(|t| t["outstanding"] == n)
            .unwrap();
        t["instance"].as_str().unwrap().to_owned()
    }

    /// The address of the stack's first listener.
    pub fn lb(&self) -> String {
        self.json(&["status"])["listeners"][0]["address"]
            .as_str()
            .expect("a listener")
            .to_owned()
    }

    pub fn targets(&self) -> Vec<Value> {
        self.json(&["targets"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn healthy(&self) -> usize {
        self.targets()
            .iter()
            .filter(|t| t["state"] == "healthy")
            .count()
    }
}

pub fn address(instance: &Value) -> String {
    format!(
        "{}:{}",
        instance["private_ip"].as_str().unwrap(),
        instance["port"]
    )
}

pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs `bellows app ...` by hand on a free loopback port with `env`; returns the
/// child and its address once it listens.
pub fn spawn_app(app: &str, env: &[(&str, &std::ffi::OsStr)]) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(BIN)
        .args(["app", app, "--listen", &addr])
        .envs(env.iter().copied())
        .stderr(Stdio::null())
        .spawn()
        .expect("the app starts");
    let start = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, addr)
}

/// GETs through a load balancer in a thread, every `pause`, until `finish` (or a
/// three minutes): how many were answered 200, and every other answer (status 0:
/// no connection or no answer).
pub struct GetLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(u32, Vec<(u16, String)>)>,
}

impl GetLoad {
    /// GETs of `/`.
    pub fn start(lb: String, pause: Duration) -> GetLoad {
        GetLoad::start_at(lb, "/", pause)
    }

    /// GETs of `path`.
    pub fn start_at(lb: String, path: &str, pause: Duration) -> GetLoad {
        let path = path.to_owned();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            let deadline = Instant::now() + Duration::from_secs(180);
            while !stopped.load(Ordering::Relaxed) && Instant::now() < deadline {
                match get_once(&lb, &path) {
                    (200, _) => ok += 1,
                    other => failed.push(other),
                }
                std::thread::sleep(pause);
            }
            (ok, failed)
        });
        GetLoad { stop, thread }
    }

    pub fn finish(self) -> (u32, Vec<(u16, String)>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the load thread")
    }
}

/// One GET that never panics: (status, body), status 0 when there was no answer.
fn get_once(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return (0, "connection refused".to_owned());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    if write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return (0, "write failed".to_owned());
    }
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw) {
        return (0, e.to_string());
    }
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        text.split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned(),
    )
}

/// A stack of `n` echo instances behind listener `http` on an ephemeral port, with
/// 1 s health checks on `/health`; `group_extra` adds keys to `[groups.web]`.
pub fn echo_stack(n: u32, group_extra: &str) -> String {
    format!(
        r#"
[target_groups.web.health_check]
path = "/health"
interval = "1s"

[listeners.http]
address = "127.0.0.1:0"
default = {{ forward = "web" }}

[groups.web]
min = 0
max = 4
desired = {n}
zones = ["zone-a", "zone-b"]
target_groups = ["web"]
{group_extra}

[groups.web.launch]
command = ["bellows", "app", "echo"]
stop_timeout = "2s"
"#
    )
}

// The real AWS clients, for tests/aws.rs and tests/dynamodb.rs.

/// Stops the test with a clear message when a client is not installed: scripts/test
/// installs them (`pip install awscli boto3`).
pub fn need_clients() {
    let aws = Command::new("aws").arg("--version").output();
    assert!(
        aws.as_ref().is_ok_and(|o| o.status.success()),
        "the `aws` CLI is missing: run scripts/test, or `python3 -m pip install awscli boto3`"
    );
    let boto3 = Command::new("python3")
        .args(["-c", "import boto3"])
        .output();
    assert!(
        boto3.as_ref().is_ok_and(|o| o.status.success()),
        "boto3 is missing: run scripts/test, or `python3 -m pip install awscli boto3`"
    );
}

/// The variables `bellows aws-env` prints, as (name, value).
pub fn aws_env(up: &Up) -> Vec<(String, String)> {
    let out = up.cli(&["aws-env"]);
    assert!(out.status.success(), "aws-env: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let vars: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for name in [
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
    ] {
        assert!(vars.iter().any(|(k, _)| k == name), "{name} in {text}");
    }
    vars
}

/// The `aws` CLI with only these variables (and PATH, HOME) in its environment.
pub fn aws(env: &[(String, String)], args: &[&str]) -> Output {
    Command::new("aws")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(args)
        .output()
        .expect("aws runs")
}
