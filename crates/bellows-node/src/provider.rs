//! The process provider: instances as real, supervised process trees.
//!
//! Each instance is a shim (see `shim.rs`) leading its own process group, with its own
//! loopback address, its log file, and its cgroups where the host allows. A watcher task
//! per instance turns what the shim reports into [`ProcEvent`]s for the node's loop.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bellows_core::ids::InstanceId;
use bellows_core::stack::{GroupSpec, Ipv4Net};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::cgroup::{Cgroups, InstanceCgroup};
use crate::procfs;
use crate::shim::{self, ShimArgs};

/// What happened to an instance's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcEvent {
    /// The command started after boot and setup.
    Running { instance: InstanceId, pid: u32 },
    /// The instance never got to run its command.
    LaunchFailed {
        instance: InstanceId,
        reason: String,
    },
    /// The instance is gone, with how its command ended.
    Exited {
        instance: InstanceId,
        status: String,
    },
}

/// A running instance's resource use, sampled each second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Percent of the instance type's vCPUs, as CloudWatch's CPUUtilization.
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    pub processes: usize,
}

#[derive(Debug)]
struct Proc {
    group: String,
    ip: Ipv4Addr,
    port: u16,
    pgid: i32,
    pid: Option<u32>,
    vcpu: f64,
    log: PathBuf,
    cgroup: InstanceCgroup,
    control: mpsc::UnboundedSender<Duration>,
    /// Held and never written: when bellows dies the shim sees the pipe close.
    _lifeline: ChildStdin,
    last_ticks: Option<(u64, std::time::Instant)>,
    usage: Usage,
}

/// What the API shows of an instance's process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcInfo {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub pid: Option<u32>,
    pub usage: Usage,
}

#[derive(Debug)]
pub struct Provider {
    exe: PathBuf,
    logs: PathBuf,
    data: PathBuf,
    cgroups: Option<Cgroups>,
    addrs: AddrPool,
    procs: HashMap<InstanceId, Proc>,
    events: mpsc::UnboundedSender<ProcEvent>,
    ticks_per_second: u64,
    page_size: u64,
}

impl Provider {
    /// `exe` is the bellows binary (for the shim and for commands that start with
    /// `bellows`); logs and shared data go under `state_dir`.
    pub fn new(
        exe: PathBuf,
        state_dir: &Path,
        network: Ipv4Net,
        cgroups: Option<Cgroups>,
        events: mpsc::UnboundedSender<ProcEvent>,
    ) -> std::io::Result<Provider> {
        let logs = state_dir.join("logs");
        let data = state_dir.join("data");
        std::fs::create_dir_all(&logs)?;
        std::fs::create_dir_all(&data)?;
        Ok(Provider {
            exe,
            logs,
            data: std::path::absolute(data)?,
            cgroups,
            addrs: AddrPool::new(network),
            procs: HashMap::new(),
            events,
            ticks_per_second: procfs::clock_ticks_per_second(),
            page_size: procfs::page_size(),
        })
    }

    pub fn log_path(&self, id: &InstanceId) -> PathBuf {
        self.logs.join(format!("{id}.log"))
    }

    pub fn info(&self, id: &InstanceId) -> Option<ProcInfo> {
        self.procs.get(id).map(|p| ProcInfo {
            ip: p.ip,
            port: p.port,
            pid: p.pid,
            usage: p.usage,
        })
    }

    pub fn is_running(&self, id: &InstanceId) -> bool {
        self.procs.contains_key(id)
    }

    /// Starts an instance of `spec` in `zone`. Returns its private address, or why it
    /// could not start.
    pub fn launch(
        &mut self,
        spec: &GroupSpec,
        id: &InstanceId,
        zone: &str,
        extra_env: &[(String, String)],
    ) -> Result<Ipv4Addr, String> {
        let launch = &spec.launch;
        let ip = self.addrs.take(launch.port)?;
        let cgroup = match &self.cgroups {
            Some(cg) => cg.create(id.as_str(), launch.instance_type.vcpu, launch.instance_type.memory_mib).unwrap_or_else(|e| {
                tracing::warn!(instance = %id, error = %e, "no resource limits for this instance");
                InstanceCgroup::default()
            }),
            None => InstanceCgroup::default(),
        };
        let mut command: Vec<OsString> = launch.command.iter().map(OsString::from).collect();
        if command[0] == "bellows" {
            command[0] = self.exe.clone().into();
        }
        let log = self.log_path(id);
        let args = ShimArgs {
            log: log.clone(),
            boot_delay: launch.boot_delay.to_std(),
            stop_timeout: launch.stop_timeout.to_std(),
            setup: launch.setup.clone(),
            cgroups: cgroup.dirs.clone(),
            command,
        };
        let mut cmd = Command::new(&self.exe);
        cmd.arg(shim::SUBCOMMAND)
            .args(args.to_args())
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(false)
            .env_clear();
        // Instances get a clean environment, as a fresh machine would: a few variables
        // every program expects, then the template's, then bellows' own. Nothing else
        // of the operator's environment (tokens, keys) reaches them.
        for key in [
            "PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME", "TERM",
        ] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        cmd.envs(&launch.env)
            .env("INSTANCE_ID", id.as_str())
            .env("PRIVATE_IP", ip.to_string())
            .env("PORT", launch.port.to_string())
            .env("ZONE", zone)
            .env("GROUP", &spec.name)
            .env("BELLOWS_DATA_DIR", &self.data)
            .env(
                "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                format!("http://{ip}:{}/", crate::imds::METADATA_PORT),
            )
            .envs(extra_env.iter().map(|(k, v)| (k, v)));
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                self.addrs.release(ip);
                cgroup.remove();
                return Err(format!(
                    "cannot start the instance shim {}: {e}",
                    self.exe.display()
                ));
            }
        };
        let pgid = child.id().unwrap_or(0) as i32;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the instance shim has no pipes".to_owned());
        };
        let (control, control_rx) = mpsc::unbounded_channel();
        tokio::spawn(watch(
            child,
            stdout,
            control_rx,
            id.clone(),
            cgroup.clone(),
            self.events.clone(),
        ));
        self.procs.insert(
            id.clone(),
            Proc {
                group: spec.name.clone(),
                ip,
                port: launch.port,
                pgid,
                pid: None,
                vcpu: launch.instance_type.vcpu,
                log,
                cgroup,
                control,
                _lifeline: stdin,
                last_ticks: None,
                usage: Usage::default(),
            },
        );
        Ok(ip)
    }

    /// The instance's command runs as `pid`.
    pub fn set_running(&mut self, id: &InstanceId, pid: u32) {
        if let Some(p) = self.procs.get_mut(id) {
            p.pid = Some(pid);
        }
    }

    /// SIGTERM to the instance's process group, SIGKILL after `stop_timeout`.
    pub fn terminate(&mut self, id: &InstanceId, stop_timeout: Duration) {
        if let Some(p) = self.procs.get(id) {
            let _ = p.control.send(stop_timeout);
        }
    }

    /// Forgets an instance whose shim has exited: its address and cgroups are freed.
    pub fn reap(&mut self, id: &InstanceId) {
        if let Some(p) = self.procs.remove(id) {
            self.addrs.release(p.ip);
            p.cgroup.remove();
            tracing::debug!(instance = %id, group = %p.group, log = %p.log.display(), "reaped");
        }
    }

    pub fn running(&self) -> impl Iterator<Item = &InstanceId> {
        self.procs.keys()
    }

    /// Samples CPU and memory of every instance's process group from `/proc`.
    pub fn sample(&mut self, now: std::time::Instant) {
        let usage = procfs::usage_by_group(&procfs::all());
        for p in self.procs.values_mut() {
            let Some(&(ticks, rss, count)) = usage.get(&p.pgid) else {
                continue;
            };
            if let Some((last, at)) = p.last_ticks {
                let secs = now.duration_since(at).as_secs_f64();
                if secs > 0.0 {
                    let used = ticks.saturating_sub(last) as f64 / self.ticks_per_second as f64;
                    p.usage.cpu_percent = (used / secs / p.vcpu * 100.0).clamp(0.0, 100.0);
                }
            }
            p.last_ticks = Some((ticks, now));
            p.usage.memory_bytes = rss * self.page_size;
            p.usage.processes = count;
        }
    }

    pub fn cleanup(&self) {
        if let Some(cg) = &self.cgroups {
            cg.remove_all();
        }
    }
}

/// Follows one shim until it exits, carrying out termination requests.
async fn watch(
    mut child: Child,
    stdout: tokio::process::ChildStdout,
    mut control: mpsc::UnboundedReceiver<Duration>,
    id: InstanceId,
    cgroup: InstanceCgroup,
    events: mpsc::UnboundedSender<ProcEvent>,
) {
    let pgid = Pid::from_raw(child.id().unwrap_or(0) as i32);
    let mut lines = BufReader::new(stdout).lines();
    let mut kill_at: Option<tokio::time::Instant> = None;
    let mut ended = false;
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                let (word, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                let event = match word {
                    "running" => ProcEvent::Running { instance: id.clone(), pid: rest.parse().unwrap_or(0) },
                    "setup-failed" => { ended = true; ProcEvent::LaunchFailed { instance: id.clone(), reason: rest.to_owned() } }
                    "exited" => { ended = true; ProcEvent::Exited { instance: id.clone(), status: rest.to_owned() } }
                    _ => continue,
                };
                if events.send(event).is_err() { break; }
            }
            Some(timeout) = control.recv() => {
                let _ = killpg(pgid, Signal::SIGTERM);
                let deadline = crate::clock::after(timeout);
                kill_at = Some(kill_at.map_or(deadline, |k| k.min(deadline)));
            }
            _ = async { tokio::time::sleep_until(kill_at.unwrap_or_else(|| crate::clock::after(Duration::ZERO))).await }, if kill_at.is_some() => {
                let _ = killpg(pgid, Signal::SIGKILL);
                kill_at = None;
            }
        }
    }
    let status = child
        .wait()
        .await
        .map(shim::describe)
        .unwrap_or_else(|e| e.to_string());
    // Whatever is left of the group goes with its leader.
    let _ = killpg(pgid, Signal::SIGKILL);
    // Only now is the cgroup empty enough to remove.
    cgroup.remove();
    if !ended {
        let _ = events.send(ProcEvent::Exited {
            instance: id,
            status,
        });
    }
}

/// Private addresses for instances, from the stack's loopback network.
#[derive(Debug)]
struct AddrPool {
    hosts: Vec<Ipv4Addr>,
    next: usize,
    in_use: HashSet<Ipv4Addr>,
}

impl AddrPool {
    fn new(net: Ipv4Net) -> AddrPool {
        // Keep the pool small enough to scan; a /16 still gives 65k addresses.
        AddrPool {
            hosts: net.hosts().take(1 << 16).collect(),
            next: 0,
            in_use: HashSet::new(),
        }
    }

    /// The next free address whose `port` can be bound right now. Addresses are handed
    /// out round the pool rather than reused at once, so a new instance does not meet a
    /// previous one's lingering connections.
    fn take(&mut self, port: u16) -> Result<Ipv4Addr, String> {
        for _ in 0..self.hosts.len().min(4096) {
            let ip = self.hosts[self.next % self.hosts.len()];
            self.next = (self.next + 1) % self.hosts.len();
            if self.in_use.contains(&ip) {
                continue;
            }
            if TcpListener::bind(SocketAddrV4::new(ip, port)).is_ok() {
                self.in_use.insert(ip);
                return Ok(ip);
            }
        }
        Err(format!(
            "no free private address with port {port} left in the instance network"
        ))
    }

    fn release(&mut self, ip: Ipv4Addr) {
        self.in_use.remove(&ip);
    }
}
