//! Instance types as cgroup limits: a CPU quota and a memory limit per instance, where
//! the host lets bellows write cgroups (root and a writable v1 or v2 hierarchy).
//! Everything here is best effort: when it cannot, instances run unlimited and CPU is
//! still measured from `/proc` against the instance type's vCPUs.
//!
//! An instance's cgroup is also how it is measured and stopped whole: CPU time and
//! memory are the cgroup's (whatever session or process group its processes are in),
//! an out-of-memory kill is read from its counters, and every process in it can be
//! found and killed (`sweep`), which is also how leftovers of an earlier run are stopped.

use std::fs;
use std::path::{Path, PathBuf};

/// Where this bellows process keeps its instances' cgroups.
#[derive(Debug, Clone)]
pub struct Cgroups {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// cgroup v1: one directory per controller; CPU accounting may be a hierarchy of
    /// its own (`cpuacct` mounted apart from `cpu`) or the `cpu` one.
    V1 {
        cpu: PathBuf,
        cpuacct: Option<PathBuf>,
        memory: PathBuf,
    },
    /// cgroup v2: one unified directory.
    V2 { base: PathBuf },
}

/// The directories one instance was placed in, to join, read, stop and later remove.
#[derive(Debug, Clone, Default)]
pub struct InstanceCgroup {
    pub dirs: Vec<PathBuf>,
    /// Where its CPU time is read: `cpuacct.usage` (v1) or `cpu.stat` (v2).
    cpu: Option<PathBuf>,
    /// Its memory directory (v1) or its unified one (v2); `cgroup.procs` here lists
    /// every process of the instance.
    memory: Option<PathBuf>,
    v2: bool,
}

/// What an instance's cgroup says about its use, read whole each second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupUsage {
    /// CPU time used since the cgroup was made, in nanoseconds.
    pub cpu_ns: Option<u64>,
    /// The working set: memory in use but for inactive file cache, as `kubectl top` and
    /// cAdvisor count it.
    pub memory_bytes: Option<u64>,
    pub processes: usize,
}

const PERIOD_US: u64 = 100_000;

impl Cgroups {
    /// Sets up `bellows-PID` directories under this process's own cgroups, or explains
    /// why limits are not available here.
    pub fn detect() -> Result<Cgroups, String> {
        let own = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let tag = format!("bellows-{}", std::process::id());
        let v1_path = |controller: &str| {
            own.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
                ctrls
                    .split(',')
                    .any(|c| c == controller)
                    .then(|| path.trim_start_matches('/').to_owned())
            })
        };
        let root = Path::new("/sys/fs/cgroup");
        if let (Some(cpu), Some(mem)) = (v1_path("cpu"), v1_path("memory")) {
            let cpu_mount = [root.join("cpu"), root.join("cpu,cpuacct")]
                .into_iter()
                .find(|p| p.join("cpu.cfs_quota_us").exists());
            let mem_mount = root.join("memory");
            if let Some(cpu_mount) = cpu_mount
                && mem_mount.join("memory.limit_in_bytes").exists()
            {
                // CPU time is read from cpuacct: the cpu hierarchy itself when the two
                // are mounted together, or a cpuacct one of its own.
                let cpuacct = if cpu_mount.join("cpuacct.usage").exists() {
                    None
                } else {
                    v1_path("cpuacct").and_then(|path| {
                        let mount = root.join("cpuacct");
                        mount
                            .join("cpuacct.usage")
                            .exists()
                            .then(|| mount.join(path).join(&tag))
                    })
                };
                let cpu = cpu_mount.join(cpu).join(&tag);
                let memory = mem_mount.join(mem).join(&tag);
                // Memory first: its leftovers' processes are killed there.
                clean_stale(memory.parent());
                clean_stale(cpu.parent());
                if let Some(a) = &cpuacct {
                    clean_stale(a.parent());
                }
                for dir in [Some(&cpu), Some(&memory), cpuacct.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
                return Ok(Cgroups {
                    kind: Kind::V1 {
                        cpu,
                        cpuacct,
                        memory,
                    },
                });
            }
        }
        if root.join("cgroup.controllers").exists() {
            let path = own
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .unwrap_or("/")
                .trim_start_matches('/');
            let parent = root.join(path);
            // v2 forbids processes in a cgroup whose controllers are delegated to
            // children, so the instances' cgroups go beside ours, not under it.
            let base = parent.parent().unwrap_or(root).join(&tag);
            clean_stale(base.parent());
            fs::create_dir_all(&base)
                .map_err(|e| format!("cannot create {}: {e}", base.display()))?;
            fs::write(base.join("cgroup.subtree_control"), "+cpu +memory").map_err(|e| {
                format!(
                    "cannot enable cpu and memory controllers in {}: {e}",
                    base.display()
                )
            })?;
            return Ok(Cgroups {
                kind: Kind::V2 { base },
            });
        }
        Err("no writable cgroup hierarchy with cpu and memory controllers".to_owned())
    }

    /// Creates an instance's cgroups with its limits.
    pub fn create(
        &self,
        instance: &str,
        vcpu: f64,
        memory_mib: u64,
    ) -> Result<InstanceCgroup, String> {
        let quota = ((vcpu * PERIOD_US as f64).round() as u64).max(1000);
        let bytes = memory_mib * 1024 * 1024;
        let write = |dir: &Path, file: &str, value: String| {
            fs::write(dir.join(file), &value)
                .map_err(|e| format!("cannot write {value} to {}: {e}", dir.join(file).display()))
        };
        match &self.kind {
            Kind::V1 {
                cpu,
                cpuacct,
                memory,
            } => {
                let c = cpu.join(instance);
                let m = memory.join(instance);
                let a = cpuacct.as_ref().map(|d| d.join(instance));
                for dir in [Some(&c), Some(&m), a.as_ref()].into_iter().flatten() {
                    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
                }
                write(&c, "cpu.cfs_period_us", PERIOD_US.to_string())?;
                write(&c, "cpu.cfs_quota_us", quota.to_string())?;
                write(&m, "memory.limit_in_bytes", bytes.to_string())?;
                let usage = a.clone().unwrap_or_else(|| c.clone()).join("cpuacct.usage");
                let mut dirs = vec![c, m.clone()];
                dirs.extend(a);
                Ok(InstanceCgroup {
                    dirs,
                    cpu: Some(usage),
                    memory: Some(m),
                    v2: false,
                })
            }
            Kind::V2 { base } => {
                let d = base.join(instance);
                fs::create_dir_all(&d).map_err(|e| e.to_string())?;
                write(&d, "cpu.max", format!("{quota} {PERIOD_US}"))?;
                write(&d, "memory.max", bytes.to_string())?;
                Ok(InstanceCgroup {
                    dirs: vec![d.clone()],
                    cpu: Some(d.join("cpu.stat")),
                    memory: Some(d),
                    v2: true,
                })
            }
        }
    }

    /// Removes this process's cgroup directories (they must be empty of processes).
    pub fn remove_all(&self) {
        let dirs = match &self.kind {
            Kind::V1 {
                cpu,
                cpuacct,
                memory,
            } => [Some(memory), Some(cpu), cpuacct.as_ref()]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            Kind::V2 { base } => vec![base.clone()],
        };
        // A shim reports its instance's end just before it exits itself: its cgroup
        // is empty a moment later. Bounded: a directory still busy after a second is
        // left to the next start's sweep of stale directories.
        for _ in 0..50 {
            for dir in &dirs {
                remove_tree(dir);
            }
            if dirs.iter().all(|d| !d.exists()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl InstanceCgroup {
    /// Moves the calling process into the instance's cgroups; its children follow.
    pub fn join(dirs: &[PathBuf]) -> Result<(), String> {
        for dir in dirs {
            fs::write(dir.join("cgroup.procs"), std::process::id().to_string())
                .map_err(|e| format!("cannot join {}: {e}", dir.display()))?;
        }
        Ok(())
    }

    pub fn remove(&self) {
        for dir in &self.dirs {
            let _ = fs::remove_dir(dir);
        }
    }

    /// Whether the instance has a cgroup to be measured and stopped by.
    pub fn is_some(&self) -> bool {
        self.memory.is_some()
    }

    /// Every process in the instance's cgroup, whatever its session or parent.
    pub fn pids(&self, buf: &mut Vec<u8>) -> Vec<i32> {
        self.memory
            .as_deref()
            .map_or_else(Vec::new, |d| procs_of(d, buf))
    }

    /// CPU time, working set and process count, each file read whole once.
    pub fn usage(&self, buf: &mut Vec<u8>) -> CgroupUsage {
        let (Some(cpu), Some(mem)) = (&self.cpu, &self.memory) else {
            return CgroupUsage::default();
        };
        let cpu_ns = if self.v2 {
            read_whole(cpu, buf)
                .and_then(|t| field(t, "usage_usec"))
                .map(|us| us * 1000)
        } else {
            read_whole(cpu, buf).and_then(|t| t.trim().parse().ok())
        };
        let (current, inactive) = if self.v2 {
            ("memory.current", "inactive_file")
        } else {
            ("memory.usage_in_bytes", "total_inactive_file")
        };
        let used: Option<u64> =
            read_whole(&mem.join(current), buf).and_then(|t| t.trim().parse().ok());
        let cache = read_whole(&mem.join("memory.stat"), buf)
            .and_then(|t| field(t, inactive))
            .unwrap_or(0);
        CgroupUsage {
            cpu_ns,
            memory_bytes: used.map(|u| u.saturating_sub(cache)),
            processes: procs_of(mem, buf).len(),
        }
    }

    /// How many times the kernel's out-of-memory killer has killed in this cgroup:
    /// `oom_kill` of `memory.events` (v2) or of `memory.oom_control` (v1). A v1 kernel
    /// too old to count kills (before 4.13) gives `memory.failcnt`, the times the limit
    /// was hit, instead.
    pub fn oom_kills(&self) -> u64 {
        let Some(mem) = &self.memory else {
            return 0;
        };
        let mut buf = Vec::new();
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        match read_whole(&mem.join(file), &mut buf).map(|t| field(t, "oom_kill")) {
            Some(Some(n)) => n,
            _ if !self.v2 => read_whole(&mem.join("memory.failcnt"), &mut buf)
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0),
            _ => 0,
        }
    }

    /// Kills every process in the cgroup but `except` (the shim, which is to outlive
    /// its tree), pass after pass until none is left or `passes` are done; a process
    /// forking meanwhile is caught by the next pass. v2's `cgroup.kill` does it at once
    /// when nothing is to be spared. Returns how many processes are left.
    pub fn sweep(&self, except: Option<i32>, passes: u32) -> usize {
        let Some(mem) = &self.memory else {
            return 0;
        };
        if except.is_none() && self.v2 {
            let _ = fs::write(mem.join("cgroup.kill"), "1");
        }
        sweep_dir(mem, except, passes)
    }
}

/// Kills the processes listed in `dir`'s `cgroup.procs` until it is empty.
fn sweep_dir(dir: &Path, except: Option<i32>, passes: u32) -> usize {
    let mut buf = Vec::new();
    let mut left = 0;
    for pass in 0..passes.max(1) {
        let pids: Vec<i32> = procs_of(dir, &mut buf)
            .into_iter()
            .filter(|p| Some(*p) != except)
            .collect();
        left = pids.len();
        if left == 0 {
            break;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // Killed processes leave the cgroup once they are dead (or reaped); give them
        // a moment, a little longer each pass.
        std::thread::sleep(std::time::Duration::from_millis(5 * u64::from(pass + 1)));
    }
    left
}

/// The pids of a cgroup directory's `cgroup.procs`.
fn procs_of(dir: &Path, buf: &mut Vec<u8>) -> Vec<i32> {
    read_whole(&dir.join("cgroup.procs"), buf)
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// The value of `name` in a `key value` per line file (`cpu.stat`, `memory.stat`,
/// `memory.events`, `memory.oom_control`).
fn field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Reads a small virtual file in one read into `buf`, reused between calls.
fn read_whole<'b>(path: &Path, buf: &'b mut Vec<u8>) -> Option<&'b str> {
    crate::procfs::read_into(path, buf).ok()?;
    std::str::from_utf8(buf).ok()
}

/// Removes `bellows-PID` directories left by a bellows that died without cleaning up.
fn clean_stale(parent: Option<&Path>) {
    let Some(Ok(entries)) = parent.map(fs::read_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("bellows-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            // An earlier run's instances may still be in there (their shims killed with
            // it): they are stopped before their directories go.
            kill_tree(&entry.path());
            remove_tree(&entry.path());
        }
    }
}

/// Kills every process in `dir` and in the cgroups below it.
fn kill_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                kill_tree(&entry.path());
            }
        }
    }
    let _ = fs::write(dir.join("cgroup.kill"), "1");
    let left = sweep_dir(dir, None, 20);
    if left > 0 {
        tracing::warn!(cgroup = %dir.display(), left, "processes of an earlier run would not die");
    } else {
        tracing::debug!(cgroup = %dir.display(), "stopped what an earlier run left");
    }
}

/// cgroup directories are removed with rmdir, children first; files inside are virtual.
fn remove_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}
