//! Instance types as cgroup limits: a CPU quota and a memory limit per instance, where
//! the host lets bellows write cgroups (root and a writable v1 or v2 hierarchy).
//! Everything here is best effort: when it cannot, instances run unlimited and CPU is
//! still measured from `/proc` against the instance type's vCPUs.

use std::fs;
use std::path::{Path, PathBuf};

/// Where this bellows process keeps its instances' cgroups.
#[derive(Debug, Clone)]
pub struct Cgroups {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// cgroup v1: one directory per controller.
    V1 { cpu: PathBuf, memory: PathBuf },
    /// cgroup v2: one unified directory.
    V2 { base: PathBuf },
}

/// The directories one instance was placed in, to join and later remove.
#[derive(Debug, Clone, Default)]
pub struct InstanceCgroup {
    pub dirs: Vec<PathBuf>,
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
                let cpu = cpu_mount.join(cpu).join(&tag);
                let memory = mem_mount.join(mem).join(&tag);
                clean_stale(cpu.parent());
                clean_stale(memory.parent());
                fs::create_dir_all(&cpu)
                    .map_err(|e| format!("cannot create {}: {e}", cpu.display()))?;
                fs::create_dir_all(&memory)
                    .map_err(|e| format!("cannot create {}: {e}", memory.display()))?;
                return Ok(Cgroups {
                    kind: Kind::V1 { cpu, memory },
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
            Kind::V1 { cpu, memory } => {
                let c = cpu.join(instance);
                let m = memory.join(instance);
                fs::create_dir_all(&c).map_err(|e| e.to_string())?;
                fs::create_dir_all(&m).map_err(|e| e.to_string())?;
                write(&c, "cpu.cfs_period_us", PERIOD_US.to_string())?;
                write(&c, "cpu.cfs_quota_us", quota.to_string())?;
                write(&m, "memory.limit_in_bytes", bytes.to_string())?;
                Ok(InstanceCgroup { dirs: vec![c, m] })
            }
            Kind::V2 { base } => {
                let d = base.join(instance);
                fs::create_dir_all(&d).map_err(|e| e.to_string())?;
                write(&d, "cpu.max", format!("{quota} {PERIOD_US}"))?;
                write(&d, "memory.max", bytes.to_string())?;
                Ok(InstanceCgroup { dirs: vec![d] })
            }
        }
    }

    /// Removes this process's cgroup directories (they must be empty of processes).
    pub fn remove_all(&self) {
        let dirs = match &self.kind {
            Kind::V1 { cpu, memory } => vec![cpu.clone(), memory.clone()],
            Kind::V2 { base } => vec![base.clone()],
        };
        for dir in dirs {
            remove_tree(&dir);
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
            remove_tree(&entry.path());
        }
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
