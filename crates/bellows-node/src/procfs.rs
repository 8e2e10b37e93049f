//! Reading processes from `/proc`: process-group membership, CPU time and memory.

use std::collections::HashMap;
use std::fs;

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

/// Every process visible in `/proc`.
pub fn all() -> Vec<ProcStat> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let name = e.ok()?.file_name();
        let pid: i32 = name.to_str()?.parse().ok()?;
        parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    })
    .collect()
}

/// Totals per process group: (CPU ticks, resident pages, process count).
pub fn usage_by_group(procs: &[ProcStat]) -> HashMap<i32, (u64, u64, usize)> {
    let mut out: HashMap<i32, (u64, u64, usize)> = HashMap::new();
    for p in procs {
        let e = out.entry(p.pgrp).or_default();
        e.0 += p.ticks;
        e.1 += p.rss_pages;
        e.2 += 1;
    }
    out
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
                rss_pages: 321
            }
        );
    }

    #[test]
    fn finds_this_process() {
        let me = std::process::id() as i32;
        assert!(all().iter().any(|p| p.pid == me));
    }
}
