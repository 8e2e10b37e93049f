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
use bellows_core::stack::{GroupSpec, Ipv4Net, NetworkMode};
use bellows_core::userdata::{self, UserData};
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

/// Where a launched instance is, and where it reaches bellows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launched {
    /// The instance's private address: the load balancer and health checks connect
    /// to it.
    pub ip: Ipv4Addr,
    /// The address bellows serves the instance on (its metadata endpoint, and in a
    /// namespace the AWS endpoint): the host end of its veth, else `ip` itself.
    pub host: Ipv4Addr,
    /// In a network namespace of its own.
    pub namespace: bool,
}

#[derive(Debug)]
struct Proc {
    group: String,
    ip: Ipv4Addr,
    /// The instance's veth pair and /30, in a namespace.
    slot: Option<crate::netns::Slot>,
    /// The instance's directory (its user data), removed with it.
    dir: PathBuf,
    port: u16,
    pgid: i32,
    pid: Option<u32>,
    vcpu: f64,
    log: PathBuf,
    cgroup: InstanceCgroup,
    control: mpsc::UnboundedSender<Duration>,
    /// Held and never written: when bellows dies the shim sees the pipe close.
    _lifeline: ChildStdin,
    /// CPU time used so far (nanoseconds) and when it was read.
    last_cpu: Option<(u64, std::time::Instant)>,
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
    /// The namespaces' /30s, and why there are none (not root, no `ip`).
    slots: crate::netns::Pool,
    no_netns: Option<String>,
    /// Said once: instances that would have had a namespace run on the host.
    warned_no_netns: bool,
    instances: PathBuf,
    /// The control port, which instances on the host reach as it is and instances in a
    /// namespace on the host end of their veth (the AWS endpoint only).
    control: std::net::SocketAddr,
    procs: HashMap<InstanceId, Proc>,
    events: mpsc::UnboundedSender<ProcEvent>,
    ticks_per_second: u64,
    page_size: u64,
    /// Reused by every read of the sampler.
    buf: Vec<u8>,
}

impl Provider {
    /// `exe` is the bellows binary (for the shim and for commands that start with
    /// `bellows`); logs and shared data go under `state_dir`.
    pub fn new(
        exe: PathBuf,
        state_dir: &Path,
        network: Ipv4Net,
        namespace_network: Ipv4Net,
        control: std::net::SocketAddr,
        cgroups: Option<Cgroups>,
        events: mpsc::UnboundedSender<ProcEvent>,
    ) -> std::io::Result<Provider> {
        let logs = state_dir.join("logs");
        let data = state_dir.join("data");
        let instances = state_dir.join("instances");
        std::fs::create_dir_all(&logs)?;
        std::fs::create_dir_all(&data)?;
        std::fs::create_dir_all(&instances)?;
        let no_netns = crate::netns::unavailable();
        let slots = crate::netns::Pool::new(namespace_network, &std::path::absolute(state_dir)?);
        if no_netns.is_none() {
            let swept = crate::netns::sweep(&slots.prefix());
            if swept > 0 {
                tracing::warn!(
                    veths = swept,
                    "removed veth pairs an earlier run of this state directory left"
                );
            }
        }
        let provider = Provider {
            exe,
            logs,
            data: std::path::absolute(data)?,
            cgroups,
            addrs: AddrPool::new(network),
            slots,
            no_netns,
            warned_no_netns: false,
            instances: std::path::absolute(instances)?,
            control,
            procs: HashMap::new(),
            events,
            ticks_per_second: procfs::clock_ticks_per_second(),
            page_size: procfs::page_size(),
            buf: Vec::with_capacity(4096),
        };
        // The state directory is locked: anything still running as one of its
        // instances is an earlier run's.
        let swept = provider.sweep_leftovers();
        if swept > 0 {
            tracing::warn!(
                processes = swept,
                "stopped what an earlier run of this state directory left running"
            );
        }
        Ok(provider)
    }

    /// Stops what an earlier run of this state directory left running: instances whose
    /// shim died with it, found by their environment (an `INSTANCE_ID`, and this state
    /// directory's `BELLOWS_DATA_DIR`). Leftovers in an earlier run's cgroups were stopped already
    /// when the cgroups were set up (`Cgroups::detect`). Returns how many were killed.
    pub fn sweep_leftovers(&self) -> usize {
        let marker = vec![
            "INSTANCE_ID=".to_owned(),
            format!("BELLOWS_DATA_DIR={}", self.data.display()),
        ];
        let mut killed = 0;
        // A few passes: a leftover may fork while it is being killed.
        for _ in 0..5 {
            let pids = procfs::with_environment(&marker);
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                tracing::warn!(pid, "stopping a process an earlier run left behind");
                if nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                    killed += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        killed
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

    /// `text` (why an instance ended), with which address it should use when its log
    /// says it could not bind its port.
    pub fn with_bind_hint(&self, text: String, id: &InstanceId) -> String {
        let Some(info) = self.info(id) else {
            return text;
        };
        let Ok(mut file) = std::fs::File::open(self.log_path(id)) else {
            return text;
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = std::io::Seek::seek(
            &mut file,
            std::io::SeekFrom::Start(len.saturating_sub(8192)),
        );
        let mut tail = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::Read::take(file, 8192), &mut tail);
        let lower = tail.to_lowercase();
        if lower.contains("address already in use")
            || lower.contains("eaddrinuse")
            || lower.contains("address in use")
        {
            format!(
                "{text}; the command could not bind its port: an instance must listen on its own address $PRIVATE_IP:$PORT ({}:{}), not 0.0.0.0 or another address",
                info.ip, info.port
            )
        } else {
            text
        }
    }

    pub fn is_running(&self, id: &InstanceId) -> bool {
        self.procs.contains_key(id)
    }

    /// Whether an instance of this template gets a network namespace of its own: asked
    /// for (`network = "namespace"`), or by default for user data; never without root.
    fn wants_namespace(&mut self, spec: &GroupSpec) -> bool {
        let launch = &spec.launch;
        let wanted = match launch.network {
            NetworkMode::Host => false,
            NetworkMode::Namespace => true,
            NetworkMode::Auto => launch.user_data.is_some(),
        };
        match &self.no_netns {
            None => wanted,
            Some(reason) => {
                if wanted && !self.warned_no_netns {
                    self.warned_no_netns = true;
                    tracing::warn!(group = %spec.name, %reason, "no network namespaces: instances run on the host's network, each on a loopback address of its own; a program must bind $PRIVATE_IP:$PORT, not 0.0.0.0:$PORT");
                }
                false
            }
        }
    }

    /// The program of an instance: its command, or its user data run as cloud-init runs
    /// it, written to the instance's directory first.
    fn program(&self, spec: &GroupSpec, dir: &Path) -> Result<Vec<OsString>, String> {
        let launch = &spec.launch;
        let Some(text) = &launch.user_data else {
            let mut command: Vec<OsString> = launch.command.iter().map(OsString::from).collect();
            if command.first().is_some_and(|c| c == "bellows") {
                command[0] = self.exe.clone().into();
            }
            return Ok(command);
        };
        let kind = userdata::classify(text)?;
        let write = |name: &str, body: &str, mode: u32| -> Result<PathBuf, String> {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.join(name);
            std::fs::write(&path, body)
                .and_then(|()| {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                })
                .map_err(|e| format!("cannot write the user data to {}: {e}", path.display()))?;
            Ok(path)
        };
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "cannot make the instance's directory {}: {e}",
                dir.display()
            )
        })?;
        Ok(match kind {
            // Executed directly: the kernel runs its `#!` interpreter.
            UserData::Script => vec![write("user-data", text, 0o755)?.into()],
            UserData::Shell => vec!["/bin/sh".into(), write("user-data", text, 0o644)?.into()],
            UserData::CloudConfig { script } => {
                write("user-data", text, 0o644)?;
                vec!["/bin/sh".into(), write("runcmd", &script, 0o755)?.into()]
            }
        })
    }

    /// Starts an instance of `spec` in `zone`. Returns where it is, or why it could not
    /// start.
    pub fn launch(
        &mut self,
        spec: &GroupSpec,
        id: &InstanceId,
        zone: &str,
        extra_env: &[(String, String)],
    ) -> Result<Launched, String> {
        let launch = &spec.launch;
        let dir = self.instances.join(id.as_str());
        let command = self.program(spec, &dir)?;
        let slot = if self.wants_namespace(spec) {
            let slot = self.slots.take()?;
            if let Err(e) = crate::netns::create(&slot) {
                self.slots.release(slot.index);
                return Err(format!("cannot make the instance's network: {e}"));
            }
            Some(slot)
        } else {
            None
        };
        let ip = match &slot {
            Some(s) => s.instance,
            None => self.addrs.take(launch.port)?,
        };
        let host = slot.as_ref().map_or(ip, |s| s.host);
        // Where the instance reaches bellows: the control port as it is on the host;
        // from a namespace the instance's own face on the host end of its veth.
        let bellows = match &slot {
            Some(s) => format!("http://{}:{}", s.host, self.control.port()),
            None => format!("http://{}", self.control),
        };
        let cgroup = match &self.cgroups {
            Some(cg) => cg.create(id.as_str(), launch.instance_type.vcpu, launch.instance_type.memory_mib).unwrap_or_else(|e| {
                tracing::warn!(instance = %id, error = %e, "no resource limits for this instance");
                InstanceCgroup::default()
            }),
            None => InstanceCgroup::default(),
        };
        let log = self.log_path(id);
        let args = ShimArgs {
            log: log.clone(),
            boot_delay: launch.boot_delay.to_std(),
            stop_timeout: launch.stop_timeout.to_std(),
            setup: launch.setup.clone(),
            cgroups: cgroup.dirs.clone(),
            netns: slot.as_ref().map(|s| shim::Netns {
                peer_dev: s.peer_dev.clone(),
                instance: s.instance,
                host: s.host,
            }),
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
        // An image `bellows-app-NAME` carries bellows' built-in apps: this very binary
        // is `bellows` on the instance's PATH, so that user data can run `bellows app NAME`.
        if launch
            .image_id
            .as_deref()
            .is_some_and(|i| i.starts_with(crate::derive::APP_IMAGE_PREFIX))
            && let Some(dir) = self.exe.parent()
        {
            let mut path = OsString::from(dir);
            if let Some(rest) = std::env::var_os("PATH") {
                path.push(":");
                path.push(rest);
            }
            cmd.env("PATH", path);
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
                format!("http://{host}:{}/", crate::imds::METADATA_PORT),
            )
            .env("BELLOWS_API", &bellows)
            .env("AWS_ENDPOINT_URL", &bellows)
            .envs(extra_env.iter().map(|(k, v)| (k, v)));
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                self.release(ip, slot.as_ref());
                cgroup.remove();
                let _ = std::fs::remove_dir_all(&dir);
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
            (child, stdout),
            control_rx,
            slot.as_ref().map(|s| s.peer_dev.clone()),
            id.clone(),
            cgroup.clone(),
            self.data.clone(),
            self.events.clone(),
        ));
        self.procs.insert(
            id.clone(),
            Proc {
                group: spec.name.clone(),
                ip,
                slot,
                dir,
                port: launch.port,
                pgid,
                pid: None,
                vcpu: launch.instance_type.vcpu,
                log,
                cgroup,
                control,
                _lifeline: stdin,
                last_cpu: None,
                usage: Usage::default(),
            },
        );
        Ok(Launched {
            ip,
            host,
            namespace: host != ip,
        })
    }

    fn release(&mut self, ip: Ipv4Addr, slot: Option<&crate::netns::Slot>) {
        match slot {
            Some(s) => {
                // Gone already when its namespace died with the instance; not when
                // the peer never got there.
                crate::netns::remove(&s.host_dev);
                self.slots.release(s.index);
            }
            None => self.addrs.release(ip),
        }
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
            self.release(p.ip, p.slot.as_ref());
            let _ = std::fs::remove_dir_all(&p.dir);
            p.cgroup.remove();
            tracing::debug!(instance = %id, group = %p.group, log = %p.log.display(), "reaped");
        }
    }

    pub fn running(&self) -> impl Iterator<Item = &InstanceId> {
        self.procs.keys()
    }

    /// Samples CPU and memory of every instance, whole: from its cgroup where it has
    /// one, else from the process tree under its shim (a child subreaper, so nothing of
    /// the instance leaves that tree). Only the instances' own files are read, each in
    /// one read; never the whole of `/proc`.
    pub fn sample(&mut self, now: std::time::Instant) {
        for p in self.procs.values_mut() {
            let (cpu_ns, memory, count) = match p.cgroup.usage(&mut self.buf) {
                crate::cgroup::CgroupUsage {
                    cpu_ns: Some(cpu),
                    memory_bytes: Some(mem),
                    processes,
                } => (cpu, mem, processes),
                _ => {
                    let tree = procfs::tree(p.pgid, &mut self.buf);
                    let ticks: u64 = tree.iter().map(|s| s.ticks).sum();
                    let rss: u64 = tree.iter().map(|s| s.rss_pages).sum();
                    (
                        ticks.saturating_mul(1_000_000_000) / self.ticks_per_second.max(1),
                        rss * self.page_size,
                        tree.len(),
                    )
                }
            };
            if let Some((last, at)) = p.last_cpu {
                let secs = now.duration_since(at).as_secs_f64();
                if secs > 0.0 {
                    let used = cpu_ns.saturating_sub(last) as f64 / 1e9;
                    p.usage.cpu_percent = (used / secs / p.vcpu * 100.0).clamp(0.0, 100.0);
                }
            }
            p.last_cpu = Some((cpu_ns, now));
            p.usage.memory_bytes = memory;
            p.usage.processes = count;
        }
    }

    pub fn cleanup(&self) {
        if let Some(cg) = &self.cgroups {
            cg.remove_all();
        }
    }
}

/// Follows one shim until it exits, carrying out termination requests: SIGTERM to the
/// instance's process group and to everything in its cgroup, then, after the stop
/// timeout, SIGKILL to every process of the instance but the shim, which then sweeps
/// its own tree and reports. The shim outlives its tree, never the reverse; whatever is
/// left when it is gone (it was killed itself) is swept from the cgroup, or found by its
/// environment where there are no cgroups. In a network namespace, it moves the veth
/// peer in when the shim says it has its namespace.
async fn watch(
    (mut child, stdout): (Child, tokio::process::ChildStdout),
    mut control: mpsc::UnboundedReceiver<Duration>,
    peer_dev: Option<String>,
    id: InstanceId,
    cgroup: InstanceCgroup,
    data: PathBuf,
    events: mpsc::UnboundedSender<ProcEvent>,
) {
    let shim = child.id().unwrap_or(0) as i32;
    let pgid = Pid::from_raw(shim);
    let mut lines = BufReader::new(stdout).lines();
    let mut kill_at: Option<(tokio::time::Instant, Duration)> = None;
    let mut forced: Option<Duration> = None;
    let mut ended = false;
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                let (word, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                let event = match word {
                    "running" => ProcEvent::Running { instance: id.clone(), pid: rest.parse().unwrap_or(0) },
                    // The shim has its namespace: the veth peer goes in (the shim waits
                    // for it, and fails the launch if it never comes).
                    "netns" => {
                        if let (Some(dev), Some(ip)) = (&peer_dev, crate::netns::ip_binary()) {
                            let moved = Command::new(ip)
                                .args(crate::netns::move_command(dev, shim as u32))
                                .stdin(Stdio::null())
                                .stdout(Stdio::null())
                                .stderr(Stdio::piped())
                                .output()
                                .await;
                            match moved {
                                Ok(o) if o.status.success() => {}
                                Ok(o) => tracing::warn!(instance = %id, error = %String::from_utf8_lossy(&o.stderr).trim(), "cannot move the veth into the instance's namespace"),
                                Err(e) => tracing::warn!(instance = %id, error = %e, "cannot move the veth into the instance's namespace"),
                            }
                        }
                        continue;
                    }
                    "setup-failed" => { ended = true; ProcEvent::LaunchFailed { instance: id.clone(), reason: rest.to_owned() } }
                    "exited" => {
                        ended = true;
                        ProcEvent::Exited { instance: id.clone(), status: exit_status(rest, &cgroup, forced) }
                    }
                    _ => continue,
                };
                if events.send(event).is_err() { break; }
            }
            Some(timeout) = control.recv() => {
                let _ = killpg(pgid, Signal::SIGTERM);
                let mut buf = Vec::new();
                for pid in cgroup.pids(&mut buf) {
                    if pid != shim {
                        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
                    }
                }
                let deadline = crate::clock::after(timeout);
                kill_at = Some(match kill_at {
                    Some((k, t)) if k <= deadline => (k, t),
                    _ => (deadline, timeout),
                });
            }
            _ = async { tokio::time::sleep_until(kill_at.map_or_else(|| crate::clock::after(Duration::ZERO), |k| k.0)).await }, if kill_at.is_some() => {
                let timeout = kill_at.take().map(|k| k.1).unwrap_or_default();
                forced = Some(timeout);
                tracing::info!(instance = %id, stop_timeout = ?timeout, "still running after the stop timeout: SIGKILL to every process of the instance but its shim");
                kill_all_but_shim(shim, &cgroup).await;
            }
        }
    }
    let status = child
        .wait()
        .await
        .map(shim::describe)
        .unwrap_or_else(|e| e.to_string());
    // Whatever is left of the group goes with its leader, and whatever is left in the
    // cgroup (or, without one, carries the instance's environment) after it.
    let _ = killpg(pgid, Signal::SIGKILL);
    let swept = {
        let cgroup = cgroup.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || {
            if cgroup.is_some() {
                cgroup.sweep(None, 20)
            } else {
                let marker = [
                    format!("INSTANCE_ID={id}"),
                    format!("BELLOWS_DATA_DIR={}", data.display()),
                ];
                let mut left = 0;
                for _ in 0..5 {
                    let pids = procfs::with_environment(&marker);
                    left = pids.len();
                    if left == 0 {
                        break;
                    }
                    for pid in pids {
                        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                left
            }
        })
        .await
        .unwrap_or(0)
    };
    if swept > 0 {
        tracing::warn!(instance = %id, left = swept, "processes of the instance would not die");
    }
    let status = exit_status(&status, &cgroup, forced);
    // Only now is the cgroup empty enough to remove.
    cgroup.remove();
    if !ended {
        let _ = events.send(ProcEvent::Exited {
            instance: id,
            status,
        });
    }
}

/// SIGKILL to every process of an instance but its shim: the cgroup's members and the
/// tree under the shim (its group's members are in that tree).
async fn kill_all_but_shim(shim: i32, cgroup: &InstanceCgroup) {
    let cgroup = cgroup.clone();
    let _ = tokio::task::spawn_blocking(move || {
        let mut buf = Vec::new();
        let mut pids: Vec<i32> = procfs::tree(shim, &mut buf)
            .into_iter()
            .map(|p| p.pid)
            .collect();
        pids.extend(cgroup.pids(&mut buf));
        pids.sort_unstable();
        pids.dedup();
        for pid in pids.into_iter().filter(|p| *p != shim) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    })
    .await;
}

/// How an instance ended, as activities and health reasons say it: the kernel's
/// out-of-memory kill is `OOMKilled`, as Kubernetes calls it, not a bare SIGKILL, and a
/// SIGKILL bellows sent after the stop timeout says so.
fn exit_status(status: &str, cgroup: &InstanceCgroup, forced: Option<Duration>) -> String {
    if status.starts_with("OOMKilled") || status.contains("after the stop timeout") {
        return status.to_owned();
    }
    if status.contains("SIGKILL") && cgroup.oom_kills() > 0 {
        return format!("OOMKilled: the instance type's memory limit was reached ({status})");
    }
    match forced {
        Some(t) if status.contains("SIGKILL") || status.contains("signal") => format!(
            "{status}, sent after the stop timeout ({}) because it did not stop on SIGTERM",
            bellows_core::Duration::from_millis(t.as_millis() as u64)
        ),
        _ => status.to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(dir: &Path) -> Provider {
        let (tx, _rx) = mpsc::unbounded_channel();
        let net = |a: &str, p| Ipv4Net {
            addr: a.parse().unwrap(),
            prefix: p,
        };
        Provider::new(
            "/bin/false".into(),
            dir,
            net("127.250.0.0", 24),
            net("10.250.0.0", 24),
            "127.0.0.1:9".parse().unwrap(),
            None,
            tx,
        )
        .unwrap()
    }

    fn group(launch: &str) -> GroupSpec {
        let src = format!("[groups.w]\nmin = 1\nmax = 1\n[groups.w.launch]\n{launch}\n");
        bellows_core::stack::parse(&src).unwrap().groups.remove(0)
    }

    #[test]
    fn namespaces_for_user_data_by_default_and_never_without_root() {
        let dir = std::env::temp_dir().join(format!("bellows-provider-{}", std::process::id()));
        let mut p = provider(&dir);
        let script = group("user_data = \"#!/bin/sh\\nexit 0\\n\"");
        let command = group("command = [\"x\"]");
        let host = group("user_data = \"exit 0\"\nnetwork = \"host\"");
        let asked = group("command = [\"x\"]\nnetwork = \"namespace\"");
        p.no_netns = None;
        assert!(p.wants_namespace(&script));
        assert!(!p.wants_namespace(&command));
        assert!(!p.wants_namespace(&host));
        assert!(p.wants_namespace(&asked));
        // Without root: the host's network, said once.
        p.no_netns = Some("bellows does not run as root".into());
        assert!(!p.wants_namespace(&script) && p.warned_no_netns);
        assert!(!p.wants_namespace(&asked));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn user_data_is_written_and_run_as_cloud_init_runs_it() {
        let dir = std::env::temp_dir().join(format!("bellows-userdata-{}", std::process::id()));
        let p = provider(&dir);
        let inst = dir.join("instances/i-1");
        let argv = |g: &GroupSpec| p.program(g, &inst).unwrap();
        let script = argv(&group(
            "user_data = \"#!/usr/bin/env python3\\nprint(1)\\n\"",
        ));
        assert_eq!(script, vec![OsString::from(inst.join("user-data"))]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(inst.join("user-data"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "executable");
        let shell = argv(&group("user_data = \"echo hi\""));
        assert_eq!(
            shell,
            vec![OsString::from("/bin/sh"), inst.join("user-data").into()]
        );
        let config = argv(&group(
            "user_data = \"#cloud-config\\nruncmd:\\n  - echo a\\n  - [echo, b c]\\n\"",
        ));
        assert_eq!(
            config,
            vec![OsString::from("/bin/sh"), inst.join("runcmd").into()]
        );
        assert_eq!(
            std::fs::read_to_string(inst.join("runcmd")).unwrap(),
            "#!/bin/sh\necho a\necho 'b c'\n"
        );
        let command = argv(&group("command = [\"bellows\", \"app\", \"echo\"]"));
        assert_eq!(command[0], OsString::from("/bin/false"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
