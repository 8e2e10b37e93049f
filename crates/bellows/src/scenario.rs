//! `bellows scenario NAME`: the seeds' workshop scenarios, run for real and narrated.
//!
//! Each scenario starts its own stack (an embedded one, with workshop periods or with
//! `--short` ones for the tests) or attaches to a running `bellows up` through its
//! control API, drives load or faults, and prints a timeline of what happened and why
//! (alarm transitions, scaling activities with their causes, capacity changes, what the
//! load saw) and a verdict with the numbers. Exit code 0 on pass, 1 on fail.

mod capacity;
mod cpu;
mod ingress;
mod zone_failure;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use bellows_core::alarm::AlarmState;
use bellows_core::group::Activity;
use bellows_load::chart::{Panel, Series};
use bellows_node::api::{AlarmView, InstanceView, StatusView};
use bellows_node::client::Client;
use tokio::time::Instant;

use crate::context::Context;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Name {
    /// Seed 001, scenario 1: more users than the instances admit; 503s; the alarm
    /// fires; the group scales out; the 503s stop.
    Capacity,
    /// Seed 002: CPU stress through the load balancer; CPU alarm; scale out; the
    /// stress ends; scale in.
    Cpu,
    /// Seed 001, scenario 2: revoke the listener's ingress rule; requests fail;
    /// restore it; service comes back.
    Ingress,
    /// A zone fails (every instance in it killed) and comes back: the group replaces
    /// them in the other zones, then rebalances into it, never below desired, with no
    /// failed GET.
    ZoneFailure,
}

#[derive(Debug, clap::Args)]
pub struct ScenarioArgs {
    /// The scenario to run.
    pub name: Name,
    /// With --attach: where the running `bellows up` is.
    #[command(flatten)]
    pub conn: crate::context::Conn,
    /// Short periods (and for capacity and cpu a smaller group): what the tests run;
    /// the default is the workshop's pace.
    #[arg(long)]
    pub short: bool,
    /// Start this stack file instead of the embedded one (it must fit the scenario:
    /// the first group behind the first listener).
    #[arg(long, value_name = "FILE", conflicts_with = "attach")]
    pub stack: Option<PathBuf>,
    /// Run against the running `bellows up` (found through --control and --state-dir)
    /// instead of starting a stack.
    #[arg(long)]
    pub attach: bool,
    /// The page or path to load (default: the scenario's own).
    #[arg(long)]
    pub path: Option<String>,
    /// capacity: how many users (WebSocket clients) to open.
    #[arg(long)]
    pub users: Option<usize>,
    /// Draw the scenario's per-second curves as an SVG chart.
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<PathBuf>,
}

/// One check of a verdict.
#[derive(Debug)]
pub struct Check {
    pub ok: bool,
    pub what: String,
}

pub fn check(ok: bool, what: impl Into<String>) -> Check {
    Check {
        ok,
        what: what.into(),
    }
}

/// What the control API says at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub status: StatusView,
    pub alarms: Vec<AlarmView>,
    pub instances: Vec<InstanceView>,
}

impl Snapshot {
    pub fn group(&self, name: &str) -> Option<&bellows_node::api::GroupView> {
        self.status.groups.iter().find(|g| g.name == name)
    }

    pub fn desired(&self, group: &str) -> u32 {
        self.group(group).map_or(0, |g| g.desired)
    }

    pub fn in_service(&self, group: &str) -> u32 {
        self.group(group).map_or(0, |g| g.in_service)
    }
}

/// A stack this scenario started, stopped when the scenario ends.
#[derive(Debug)]
struct Own {
    child: tokio::process::Child,
    dir: PathBuf,
}

/// The scenario's world: the API, the clock, the timeline.
pub struct Env {
    pub client: Client,
    pub t0: Instant,
    pub short: bool,
    /// The first listener's address.
    pub lb: String,
    /// The group behind it.
    pub group: String,
    /// The first listener's name.
    pub listener: String,
    /// The page or path the scenario loads (`--path`, else `/`).
    pub path: String,
    own: Option<Own>,
    seen_activities: HashSet<String>,
    seen_transitions: HashSet<(String, bellows_core::Time)>,
    last_capacity: BTreeMap<String, (u32, u32)>,
    /// (seconds since start, desired, in service) of the group, one per poll.
    pub capacity_log: Vec<(f64, u32, u32)>,
}

impl Env {
    /// Seconds since the scenario started.
    pub fn t(&self) -> f64 {
        crate::clock::since(self.t0).as_secs_f64()
    }

    /// One line of the timeline.
    pub fn say(&self, msg: impl AsRef<str>) {
        out!("t+{:>5.1}s  {}", self.t(), msg.as_ref());
    }

    /// Investigates the last `window_secs` through the API and narrates the most likely
    /// cause, its strongest evidence and the remedy; the report as JSON.
    pub async fn investigate(&self, window_secs: u64) -> Option<serde_json::Value> {
        let report: serde_json::Value = match self
            .client
            .get(&format!("/api/v1/investigate?since={window_secs}s"))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                self.say(format!("investigation failed: {e}"));
                return None;
            }
        };
        match report["hypotheses"].get(0) {
            None => self.say("investigation: no known cause matches what was recorded"),
            Some(h) => {
                self.say(format!(
                    "investigation: {} (confidence {:.0}%)",
                    h["title"].as_str().unwrap_or_default(),
                    h["confidence"].as_f64().unwrap_or_default() * 100.0
                ));
                for e in h["evidence"].as_array().into_iter().flatten().take(3) {
                    self.say(format!(
                        "  evidence [{}] {}",
                        e["kind"].as_str().unwrap_or_default(),
                        e["text"].as_str().unwrap_or_default()
                    ));
                }
                self.say(format!(
                    "  remedy: {}: {}",
                    h["remedy"]["text"].as_str().unwrap_or_default(),
                    h["remedy"]["command"].as_str().unwrap_or_default()
                ));
            }
        }
        Some(report)
    }

    /// Takes in the alarm transitions and activities recorded so far without narrating
    /// them, so that an attached scenario's timeline starts with what it does.
    pub async fn prime(&mut self) -> anyhow::Result<()> {
        let alarms: Vec<AlarmView> = self.client.get("/api/v1/alarms").await?;
        let acts: Vec<Activity> = self.client.get("/api/v1/activities?limit=1000").await?;
        for a in &alarms {
            for h in &a.history {
                self.seen_transitions.insert((a.name.clone(), h.time));
            }
        }
        for a in &acts {
            self.seen_activities.insert(a.id.clone());
            if !matches!(a.status, bellows_core::group::ActivityStatus::InProgress) {
                self.seen_activities.insert(format!("{}:done", a.id));
            }
        }
        Ok(())
    }

    /// Reads the API and narrates what changed since the last poll.
    pub async fn poll(&mut self) -> anyhow::Result<Snapshot> {
        let status: StatusView = self.client.get("/api/v1/status").await?;
        let alarms: Vec<AlarmView> = self.client.get("/api/v1/alarms").await?;
        let instances: Vec<InstanceView> = self.client.get("/api/v1/instances").await?;
        let mut acts: Vec<Activity> = self.client.get("/api/v1/activities?limit=200").await?;
        acts.reverse();
        let mut lines = Vec::new();
        for a in &alarms {
            let mut new: Vec<_> = a
                .history
                .iter()
                .filter(|h| !self.seen_transitions.contains(&(a.name.clone(), h.time)))
                .collect();
            new.sort_by_key(|h| h.time);
            for h in new {
                self.seen_transitions.insert((a.name.clone(), h.time));
                if h.from == AlarmState::InsufficientData && h.to == AlarmState::Ok {
                    continue;
                }
                lines.push(format!(
                    "alarm {}: {} -> {}: {}",
                    a.name,
                    state(h.from),
                    state(h.to),
                    h.reason
                ));
            }
        }
        for a in &acts {
            let done = !matches!(a.status, bellows_core::group::ActivityStatus::InProgress);
            let first = self.seen_activities.insert(a.id.clone());
            let finished = done && self.seen_activities.insert(format!("{}:done", a.id));
            let status = format!(
                "{:?}{}",
                a.status,
                a.status_message
                    .as_ref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            );
            match (first, finished) {
                (true, true) => {
                    lines.push(format!("{}: {status} (why: {})", a.description, a.cause))
                }
                (true, false) => lines.push(format!("{} (why: {})", a.description, a.cause)),
                (false, true) => lines.push(format!("{}: {status}", a.description)),
                (false, false) => {}
            }
        }
        for g in &status.groups {
            let now = (g.desired, g.in_service);
            match self.last_capacity.insert(g.name.clone(), now) {
                Some(before) if before == now => {}
                Some((d0, s0)) => {
                    let mut what = Vec::new();
                    if d0 != g.desired {
                        what.push(format!("desired {d0} -> {}", g.desired));
                    }
                    if s0 != g.in_service {
                        what.push(format!("in service {s0} -> {}", g.in_service));
                    }
                    lines.push(format!("group {}: {}", g.name, what.join(", ")));
                }
                None => lines.push(format!(
                    "group {}: desired {}, in service {} (min {}, max {})",
                    g.name, g.desired, g.in_service, g.min, g.max
                )),
            }
        }
        for l in lines {
            self.say(l);
        }
        let snap = Snapshot {
            status,
            alarms,
            instances,
        };
        self.capacity_log.push((
            self.t(),
            snap.desired(&self.group),
            snap.in_service(&self.group),
        ));
        Ok(snap)
    }

    /// Polls every 500 ms, narrating, until `ready` holds (true) or `timeout` passes
    /// (false). `tick` runs on every poll, for the scenario's own lines.
    pub async fn wait_until(
        &mut self,
        timeout: Duration,
        mut tick: impl FnMut(&Env),
        mut ready: impl FnMut(&Snapshot) -> bool,
    ) -> anyhow::Result<Option<Snapshot>> {
        let end = crate::clock::now() + timeout;
        loop {
            let snap = self.poll().await?;
            tick(self);
            if ready(&snap) {
                return Ok(Some(snap));
            }
            if crate::clock::now() >= end {
                return Ok(None);
            }
            crate::clock::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until the group has `n` in service and as many healthy targets (health
    /// checks passed, so every one takes requests); false after `timeout`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<Option<Snapshot>> {
        let group = self.group.clone();
        let end = crate::clock::now() + timeout;
        let mut woken = false;
        loop {
            let snap = self.poll().await?;
            let n = snap.desired(&group);
            if n == 0 && !woken {
                // A group at 0 (min 0, scale from zero) starts an instance for the first
                // request, which the load balancer holds until that instance serves.
                woken = true;
                self.say(format!(
                    "group {group} has no instance: a request to http://{}{} starts one (scale from zero)",
                    self.lb, self.path
                ));
                let (addr, path) = (self.lb.clone(), self.path.clone());
                tokio::spawn(wake(addr, path));
            }
            if n > 0 && snap.in_service(&group) >= n {
                let targets: Vec<bellows_proxy::TargetView> =
                    self.client.get("/api/v1/targets").await?;
                let healthy = targets
                    .iter()
                    .filter(|t| t.state == bellows_core::lb::select::TargetState::Healthy)
                    .count();
                if healthy >= n as usize {
                    return Ok(Some(snap));
                }
            }
            if crate::clock::now() >= end {
                return Ok(None);
            }
            crate::clock::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Polls for `d`, narrating.
    pub async fn watch_for(
        &mut self,
        d: Duration,
        tick: impl FnMut(&Env),
    ) -> anyhow::Result<Snapshot> {
        let snap = self.wait_until(d, tick, |_| false).await?;
        match snap {
            Some(s) => Ok(s),
            None => self.poll().await,
        }
    }

    /// The load balancer's URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.lb)
    }

    /// The desired-capacity curve of the group, one point per poll, for charts.
    pub fn capacity_series(&self) -> (Series, Series) {
        (
            Series {
                name: "desired".into(),
                color: "#d9480f",
                points: self
                    .capacity_log
                    .iter()
                    .map(|p| (p.0, p.1 as f64))
                    .collect(),
                step: true,
                dashed: false,
            },
            Series {
                name: "in service".into(),
                color: "#2b8a3e",
                points: self
                    .capacity_log
                    .iter()
                    .map(|p| (p.0, p.2 as f64))
                    .collect(),
                step: true,
                dashed: false,
            },
        )
    }

    /// Whether this scenario runs on a stack it did not start (`--attach`).
    pub fn attached(&self) -> bool {
        self.own.is_none()
    }

    async fn stop_own(&mut self) {
        if let Some(mut own) = self.own.take() {
            if let Some(pid) = own.child.id() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            if crate::clock::timeout(Duration::from_secs(20), own.child.wait())
                .await
                .is_err()
            {
                let _ = own.child.kill().await;
            }
            let _ = std::fs::remove_dir_all(&own.dir);
        }
    }
}

fn state(s: AlarmState) -> &'static str {
    match s {
        AlarmState::Ok => "OK",
        AlarmState::Alarm => "ALARM",
        AlarmState::InsufficientData => "INSUFFICIENT_DATA",
    }
}

/// One GET through the load balancer, answered or not: what wakes a group at 0.
async fn wake(addr: String, path: String) {
    let _ = bellows_node::http::Http::new()
        .exchange(
            "GET",
            &format!("http://{addr}{path}"),
            &[("user-agent", "bellows-scenario")],
            Vec::new(),
            Duration::from_secs(40),
        )
        .await;
}

/// A loopback network of its own for a started stack, so that scenarios run side by
/// side (and beside the tests) never share instance addresses.
fn network() -> String {
    let pid = std::process::id();
    format!("127.{}.{}.0/24", 230 + pid % 20, (pid / 20) % 250)
}

/// Starts `bellows up` on `stack` (the text of a stack file without its `[stack]`
/// table, or a file given with --stack) and waits for its control API.
async fn start_own(name: &str, stack: Option<&Path>, text: &str) -> anyhow::Result<Env> {
    let dir = std::env::temp_dir().join(format!("bellows-scenario-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = match stack {
        Some(f) => f.to_owned(),
        None => {
            let f = dir.join("stack.toml");
            let text = format!(
                "[stack]\nname = \"scenario-{name}\"\ninstance_network = \"{}\"\n\n{text}",
                network()
            );
            std::fs::write(&f, text)?;
            f
        }
    };
    let state = dir.join("state");
    let log = std::fs::File::create(dir.join("up.log"))?;
    let exe = std::env::current_exe().context("cannot find the bellows binary")?;
    let child = tokio::process::Command::new(exe)
        .args(["--control", "127.0.0.1:0", "up"])
        .arg(&file)
        .arg("--state-dir")
        .arg(&state)
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start bellows up")?;
    let mut own = Own { child, dir };
    let end = crate::clock::now() + Duration::from_secs(20);
    let addr: SocketAddr = loop {
        if let Some(a) = std::fs::read_to_string(state.join("control"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break a;
        }
        if let Ok(Some(status)) = own.child.try_wait() {
            let log = std::fs::read_to_string(own.dir.join("up.log")).unwrap_or_default();
            let _ = std::fs::remove_dir_all(&own.dir);
            anyhow::bail!("bellows up exited ({status}):\n{log}");
        }
        if crate::clock::now() >= end {
            anyhow::bail!(
                "bellows up did not start within 20 s; see {}",
                own.dir.display()
            );
        }
        crate::clock::sleep(Duration::from_millis(100)).await;
    };
    let token = std::fs::read_to_string(state.join("token"))
        .ok()
        .map(|t| t.trim().to_owned());
    let mut env = env_for(Client::new(addr, token)).await?;
    env.own = Some(own);
    Ok(env)
}

async fn env_for(client: Client) -> anyhow::Result<Env> {
    let status: StatusView = client.get("/api/v1/status").await?;
    let listener = status
        .listeners
        .first()
        .context("the stack has no listener")?;
    let group = status
        .groups
        .iter()
        .find(|g| {
            g.target_groups
                .iter()
                .any(|t| listener.target_groups.contains(t))
        })
        .or(status.groups.first())
        .context("the stack has no group")?;
    Ok(Env {
        client,
        t0: crate::clock::now(),
        short: false,
        lb: listener.address.clone(),
        group: group.name.clone(),
        listener: listener.name.clone(),
        path: "/".to_owned(),
        own: None,
        seen_activities: HashSet::new(),
        seen_transitions: HashSet::new(),
        last_capacity: BTreeMap::new(),
        capacity_log: Vec::new(),
    })
}

pub async fn run(ctx: &Context, a: ScenarioArgs) -> anyhow::Result<ExitCode> {
    let (title, stack_text) = match a.name {
        Name::Capacity => ("capacity", capacity::stack(a.short)),
        Name::Cpu => ("cpu", cpu::stack(a.short)),
        Name::Ingress => ("ingress", ingress::stack(a.short)),
        Name::ZoneFailure => ("zone-failure", zone_failure::stack(a.short)),
    };
    let mut env = if a.attach {
        let client = ctx.client();
        env_for(client)
            .await
            .context("cannot attach to the running bellows up")?
    } else {
        out!(
            "starting {} stack for the {title} scenario...",
            if a.stack.is_some() {
                "the given"
            } else if a.short {
                "a short"
            } else {
                "the workshop"
            }
        );
        start_own(title, a.stack.as_deref(), &stack_text).await?
    };
    env.short = a.short;
    if let Some(p) = &a.path {
        env.path = p.clone();
    }
    if a.attach {
        // What happened before the scenario is not its timeline: mark it seen.
        env.prime().await?;
    }
    env.t0 = crate::clock::now();
    env.say(format!(
        "{title}: group `{}` behind listener `{}` at http://{}/",
        env.group, env.listener, env.lb
    ));
    let result = match a.name {
        Name::Capacity => capacity::run(&mut env, &a).await,
        Name::Cpu => cpu::run(&mut env, &a).await,
        Name::Ingress => ingress::run(&mut env, &a).await,
        Name::ZoneFailure => zone_failure::run(&mut env, &a).await,
    };
    let own_log = env.own.as_ref().map(|o| o.dir.join("up.log"));
    let checks = match result {
        Ok(c) => c,
        Err(e) => {
            if let Some(l) = own_log {
                let log = std::fs::read_to_string(l).unwrap_or_default();
                eprintln!("bellows up's log:\n{log}");
            }
            env.stop_own().await;
            return Err(e);
        }
    };
    env.stop_own().await;
    let pass = checks.iter().all(|c| c.ok);
    out!("");
    out!("verdict: {} ({title})", if pass { "PASS" } else { "FAIL" });
    for c in &checks {
        out!("  {}  {}", if c.ok { "ok  " } else { "FAIL" }, c.what);
    }
    Ok(if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Writes a chart of panels to `path` when asked.
pub fn write_chart(path: Option<&Path>, title: &str, panels: &[Panel]) -> anyhow::Result<()> {
    if let Some(p) = path {
        std::fs::write(p, bellows_load::chart::svg(title, "seconds", panels))
            .with_context(|| format!("cannot write {}", p.display()))?;
        out!("chart: {}", p.display());
    }
    Ok(())
}
