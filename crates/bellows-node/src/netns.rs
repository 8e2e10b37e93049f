//! Per-instance network namespaces: each such instance has a network of its own, as an
//! EC2 instance has, so that a script written for EC2 may bind `0.0.0.0:PORT`.
//!
//! The shim unshares its network namespace itself (`CLONE_NEWNET`, before it starts a
//! thread), so the namespace lives exactly as long as the instance's processes: it has
//! no name and no mount, and when its last process ends the kernel removes it, the veth
//! inside with it, and the veth's host end with that. bellows creates the veth pair on
//! the host (the host end with the first address of the instance's /30, up), moves the
//! peer into the shim's namespace by pid once the shim says it has one, and the shim
//! sets it up inside: `lo` up, the peer renamed `eth0` with the second address, a
//! default route via the host end. All of it with `ip` (iproute2).
//!
//! What bellows serves an instance (its metadata endpoint, the AWS endpoint and
//! `PUT metrics` for its token) listens on the host end of its veth, the one address of
//! the host it can reach.

use std::collections::HashSet;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};

use bellows_core::stack::Ipv4Net;

/// Where `ip` is looked for (an instance's clean environment may lack `/sbin`).
const IP_PATHS: [&str; 4] = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"];

/// The `ip` binary, if iproute2 is installed.
pub fn ip_binary() -> Option<&'static str> {
    IP_PATHS.into_iter().find(|p| Path::new(p).exists())
}

/// Runs `ip -batch -` with these commands, one a line. Returns `ip`'s complaint.
pub fn ip_batch(ip: &str, commands: &[String]) -> Result<(), String> {
    let mut child = Command::new(ip)
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {ip}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(commands.join("\n").as_bytes());
        let _ = stdin.write_all(b"\n");
    }
    let out = child.wait_with_output().map_err(|e| format!("{ip}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            commands.join("; "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Why instances cannot have namespaces here, or `None` when they can.
pub fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("bellows does not run as root".to_owned());
    }
    if ip_binary().is_none() {
        return Some("`ip` (iproute2) is not installed".to_owned());
    }
    // Root in a container may lack them: unshare needs CAP_SYS_ADMIN, veths CAP_NET_ADMIN.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_NET_ADMIN: u64 = 1 << 12;
    const CAP_SYS_ADMIN: u64 = 1 << 21;
    if caps & (CAP_NET_ADMIN | CAP_SYS_ADMIN) != CAP_NET_ADMIN | CAP_SYS_ADMIN {
        return Some("bellows runs as root without CAP_SYS_ADMIN and CAP_NET_ADMIN".to_owned());
    }
    None
}

/// One instance's network: its veth pair and /30.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub index: u32,
    /// The host end of the veth, and the address bellows serves the instance on.
    pub host_dev: String,
    pub host: Ipv4Addr,
    /// The peer's name until the shim renames it `eth0` in its namespace.
    pub peer_dev: String,
    pub instance: Ipv4Addr,
}

/// The /30s of `[stack] namespace_network`, and the veth names of this state directory.
#[derive(Debug)]
pub struct Pool {
    base: u32,
    slots: u32,
    next: u32,
    in_use: HashSet<u32>,
    /// Four hex digits from the state directory: veths are `bw` TAG SLOT `h`/`i`, so a
    /// later run of the same state directory finds an earlier one's.
    tag: String,
}

impl Pool {
    pub fn new(net: Ipv4Net, state_dir: &Path) -> Pool {
        let base = u32::from(net.addr) & (u32::MAX << (32 - u32::from(net.prefix)));
        let slots = (1u64 << (32 - u32::from(net.prefix))) / 4;
        // FNV-1a of the state directory's path.
        let mut h: u32 = 0x811c_9dc5;
        for b in state_dir.as_os_str().as_encoded_bytes() {
            h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
        }
        let slots = slots.min(1 << 20) as u32;
        Pool {
            base,
            slots,
            // Two nodes on one machine (tests in parallel) start apart in the range, so
            // they seldom reach for the same /30 at the same moment.
            next: h % slots,
            in_use: HashSet::new(),
            tag: format!("{:04x}", (h ^ (h >> 16)) & 0xffff),
        }
    }

    /// The prefix every veth of this state directory's instances starts with.
    pub fn prefix(&self) -> String {
        format!("bw{}", self.tag)
    }

    fn slot(&self, index: u32) -> Slot {
        let net = self.base + index * 4;
        Slot {
            index,
            host_dev: format!("{}{index:05x}h", self.prefix()),
            host: Ipv4Addr::from(net + 1),
            peer_dev: format!("{}{index:05x}i", self.prefix()),
            instance: Ipv4Addr::from(net + 2),
        }
    }

    /// The next free /30, round the pool. A /30 whose host address is already on this
    /// machine (another bellows, another network) is passed over.
    pub fn take(&mut self) -> Result<Slot, String> {
        for _ in 0..self.slots.min(4096) {
            let index = self.next % self.slots;
            self.next = (self.next + 1) % self.slots;
            if self.in_use.contains(&index) {
                continue;
            }
            let slot = self.slot(index);
            // Binding succeeds only for an address this machine has.
            if TcpListener::bind(SocketAddrV4::new(slot.host, 0)).is_ok() {
                continue;
            }
            self.in_use.insert(index);
            return Ok(slot);
        }
        Err("no free /30 left in the namespace network".to_owned())
    }

    pub fn release(&mut self, index: u32) {
        self.in_use.remove(&index);
    }
}

/// Creates the veth pair of `slot` on the host, the host end up with its address.
pub fn create(slot: &Slot) -> Result<(), String> {
    let ip = ip_binary().ok_or("`ip` (iproute2) is not installed")?;
    ip_batch(
        ip,
        &[
            format!(
                "link add {} type veth peer name {}",
                slot.host_dev, slot.peer_dev
            ),
            format!("addr add {}/30 dev {}", slot.host, slot.host_dev),
            format!("link set {} up", slot.host_dev),
        ],
    )
    .inspect_err(|_| remove(&slot.host_dev))
}

/// Removes a veth pair by its host end (gone already when its namespace died).
pub fn remove(host_dev: &str) {
    if let Some(ip) = ip_binary() {
        let _ = Command::new(ip)
            .args(["link", "del", host_dev])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The command that moves the peer into the namespace of process `pid`.
pub fn move_command(peer_dev: &str, pid: u32) -> Vec<String> {
    ["link", "set", peer_dev, "netns", &pid.to_string()]
        .map(String::from)
        .to_vec()
}

/// Removes what an earlier run of this state directory left: veths named with `prefix`
/// (a pair whose peer never reached its namespace). Returns how many.
pub fn sweep(prefix: &str) -> usize {
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) && name.ends_with('h') {
            remove(&name);
            n += 1;
        }
    }
    n
}

/// What the shim does inside its namespace once the peer arrived.
pub fn inside_commands(peer_dev: &str, instance: Ipv4Addr, host: Ipv4Addr) -> Vec<String> {
    vec![
        "link set lo up".to_owned(),
        format!("link set {peer_dev} name eth0"),
        format!("addr add {instance}/30 dev eth0"),
        "link set eth0 up".to_owned(),
        format!("route add default via {host}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_slash_30s_with_short_names() {
        let net = Ipv4Net {
            addr: "10.213.0.0".parse().unwrap(),
            prefix: 16,
        };
        let mut pool = Pool::new(net, Path::new("/tmp/state"));
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        // A /30 each: the host end first, the instance second, the next /30 after.
        let (h, i) = (u32::from(a.host), u32::from(a.instance));
        assert_eq!((h % 4, i), (1, h + 1));
        assert!((h & 0xffff_0000) == u32::from(Ipv4Addr::new(10, 213, 0, 0)));
        assert!(
            u32::from(b.host) == h + 4 || u32::from(b.host) == 0x0ad5_0001,
            "{b:?}"
        );
        assert!(a.host_dev.len() <= 15 && a.peer_dev.len() <= 15);
        assert!(a.host_dev.starts_with(&pool.prefix()) && a.host_dev.ends_with('h'));
        assert_ne!(a.host_dev, b.host_dev);
        // A /30 network holds exactly one slot, handed out again once released.
        let mut one = Pool::new(
            Ipv4Net {
                addr: "10.9.9.8".parse().unwrap(),
                prefix: 30,
            },
            Path::new("/x"),
        );
        let s = one.take().unwrap();
        assert!(one.take().is_err());
        one.release(s.index);
        assert_eq!(
            one.take().unwrap().instance,
            "10.9.9.10".parse::<Ipv4Addr>().unwrap()
        );
        // Another state directory names its veths apart.
        assert_ne!(
            Pool::new(net, Path::new("/tmp/other")).prefix(),
            pool.prefix()
        );
    }
}
