//! Reading processes from `/proc`: process trees, CPU time and memory, each file in
//! whole reads into a reused buffer.

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

/// One process as `/proc/PID/stat` describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    /// utime + stime + cutime + cstime, in clock ticks: the time of the process and of
    /// the children it has reaped, so a tree's total does not drop when a child exits.
    pub ticks: u64,
    pub rss_pages: u64,
    /// Dead, waiting to be reaped.
    pub zombie: bool,
}

/// Parses the text of `/proc/PID/stat`. The command name may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let pid = text.split_whitespace().next()?.parse().ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state), so field n is f[n - 3].
    let num = |n: usize| f.get(n - 3).and_then(|s| s.parse::<i64>().ok());
    Some(ProcStat {
        zombie: f.first() == Some(&"Z"),
        pid,
        ppid: num(4)? as i32,
        pgrp: num(5)? as i32,
        ticks: [14, 15, 16, 17]
            .iter()
            .map(|&n| num(n).unwrap_or(0).max(0) as u64)
            .sum(),
        rss_pages: num(24)?.max(0) as u64,
    })
}

/// Reads a whole small file (in `/proc` or a cgroup) into `buf`, reused between calls.
/// With room reserved, the read goes straight into it: one read for the text and one
/// for the end, where `fs::read_to_string` first probes with 32 bytes at a time.
pub fn read_into(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    buf.reserve(4096);
    File::open(path)?.read_to_end(buf).map(|_| ())
}

/// One process's `/proc/PID/stat`.
pub fn stat(pid: i32, buf: &mut Vec<u8>) -> Option<ProcStat> {
    read_into(Path::new(&format!("/proc/{pid}/stat")), buf).ok()?;
    parse_stat(std::str::from_utf8(buf).ok()?)
}

/// The children of `pid`, from each of its threads' `children` file; `None` when the
/// kernel has no such files (built without `CONFIG_PROC_CHILDREN`).
pub fn children(pid: i32, buf: &mut Vec<u8>) -> Option<Vec<i32>> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut out = Vec::new();
    let mut any = false;
    for task in tasks.flatten() {
        if read_into(&task.path().join("children"), buf).is_err() {
            continue;
        }
        any = true;
        if let Ok(text) = std::str::from_utf8(buf) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    any.then_some(out)
}

/// `root` and every descendant of it, read from the tree down (each process's stat and
/// children only), never from the whole of `/proc` but where the kernel cannot list
/// children. A shim is a child subreaper, so the tree under it is the whole instance.
pub fn tree(root: i32, buf: &mut Vec<u8>) -> Vec<ProcStat> {
    let Some(root_stat) = stat(root, buf) else {
        return Vec::new();
    };
    if children(root, buf).is_none() {
        let procs = all();
        let mut out = vec![root_stat];
        let ids = tree_and_group(&procs, root, -1);
        out.extend(procs.into_iter().filter(|p| ids.contains(&p.pid)));
        return out;
    }
    let mut out = vec![root_stat];
    let mut frontier = vec![root];
    // Bounded: a fork bomb cannot keep the sampler here.
    while let Some(parent) = frontier.pop() {
        for child in children(parent, buf).unwrap_or_default() {
            if out.len() >= 100_000 {
                return out;
            }
            if let Some(s) = stat(child, buf) {
                out.push(s);
                frontier.push(child);
            }
        }
    }
    out
}

/// Every process visible in `/proc`.
pub fn all() -> Vec<ProcStat> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut buf = Vec::new();
    dir.filter_map(|e| {
        let name = e.ok()?.file_name();
        let pid: i32 = name.to_str()?.parse().ok()?;
        stat(pid, &mut buf)
    })
    .collect()
}

/// The processes of group `pgid` and every descendant of `root`, but `root` itself.
pub fn tree_and_group(procs: &[ProcStat], root: i32, pgid: i32) -> Vec<i32> {
    let mut found: Vec<i32> = procs
        .iter()
        .filter(|p| p.pgrp == pgid && p.pid != root)
        .map(|p| p.pid)
        .collect();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for p in procs.iter().filter(|p| p.ppid == parent) {
            if !found.contains(&p.pid) {
                found.push(p.pid);
            }
            frontier.push(p.pid);
        }
    }
    found.retain(|&p| p != root);
    found
}

/// Processes whose environment holds every one of `vars` (`NAME=value`, or `NAME=` for
/// any value): how instances of an earlier run are recognised where there are no
/// cgroups to find them by.
pub fn with_environment(vars: &[String]) -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    let mut buf = Vec::new();
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        if pid == me {
            return None;
        }
        read_into(Path::new(&format!("/proc/{pid}/environ")), &mut buf).ok()?;
        let all = vars.iter().all(|v| {
            let any_value = v.ends_with('=');
            buf.split(|b| *b == 0).any(|entry| {
                entry == v.as_bytes() || (any_value && entry.starts_with(v.as_bytes()))
            })
        });
        all.then_some(pid)
    })
    .collect()
}

pub fn clock_ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100, |v| v as u64)
}

pub fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |v| v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_names() {
        let line = "4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 3 0 12345 1000000 321 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            s,
            ProcStat {
                pid: 4242,
                ppid: 1,
                pgrp: 4242,
                ticks: 310,
                rss_pages: 321,
                zombie: false,
            }
        );
    }

    #[test]
    fn finds_this_process() {
        let me = std::process::id() as i32;
        assert!(all().iter().any(|p| p.pid == me));
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // waits a bounded real time for the child's exec
    fn processes_are_found_by_their_environment() {
        let mark = format!("BELLOWS_TEST_MARK={}", std::process::id());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env("BELLOWS_TEST_MARK", std::process::id().to_string())
            .env("INSTANCE_ID", "i-0123")
            .spawn()
            .expect("sleep is installed");
        let pid = child.id() as i32;
        // `spawn` returns once the child has closed its exec pipe, a moment before the
        // kernel has laid out the new environment: look again until it shows, boundedly.
        let start = std::time::Instant::now();
        let mut found = with_environment(&["INSTANCE_ID=".to_owned(), mark.clone()]);
        while found.is_empty() && start.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(10));
            found = with_environment(&["INSTANCE_ID=".to_owned(), mark.clone()]);
        }
        let not = with_environment(&["INSTANCE_ID=i-9999".to_owned(), mark]);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found, [pid], "any INSTANCE_ID with the mark");
        assert!(not.is_empty(), "another instance's id does not match");
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // waits a bounded real time for the child
    fn a_tree_is_read_from_its_root_down_and_holds_a_child_in_a_session_of_its_own() {
        // A child that leaves the process group and session is still in the tree.
        let mut child = std::process::Command::new("setsid")
            .args(["sleep", "30"])
            .spawn()
            .expect("setsid and sleep are installed");
        let pid = child.id() as i32;
        let me = std::process::id() as i32;
        let mut buf = Vec::new();
        let start = std::time::Instant::now();
        let mut found = false;
        while !found && start.elapsed() < std::time::Duration::from_secs(5) {
            let t = tree(me, &mut buf);
            assert_eq!(t[0].pid, me);
            found = t
                .iter()
                .any(|p| p.pid == pid && p.pgrp != stat(me, &mut buf).unwrap().pgrp);
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(found, "the setsid child is in the tree");
        assert!(
            children(me, &mut buf).is_some(),
            "this kernel lists children"
        );
    }
}
