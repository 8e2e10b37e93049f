//! The instance shim: a small supervisor between bellows and an instance's command.
//!
//! bellows starts `bellows __shim ARGS -- COMMAND...` as the leader of a new process
//! group. The shim joins the instance's cgroups, waits the boot delay, runs the setup
//! script, starts the command with its output in the instance's log, and reports on its
//! standard output, one line each: `running PID`, `setup-failed WHY`, `exited STATUS`.
//!
//! Its standard input is a lifeline: bellows holds the other end and never writes. When
//! bellows dies, even by `kill -9`, the pipe closes and the shim stops the whole
//! instance (SIGTERM, then SIGKILL after the stop timeout), so no instance outlives
//! bellows. As a child subreaper it also catches descendants that leave the group or
//! the session, and it reports an instance's end only once its whole tree is gone.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};

use crate::cgroup::InstanceCgroup;
use crate::procfs;

/// The hidden subcommand that runs the shim.
pub const SUBCOMMAND: &str = "__shim";

/// What the shim needs to know, passed as arguments by the provider.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShimArgs {
    pub log: PathBuf,
    pub boot_delay: Duration,
    pub stop_timeout: Duration,
    pub setup: Option<String>,
    pub cgroups: Vec<PathBuf>,
    /// A network namespace of its own: the veth peer bellows moves in, the instance's
    /// address and the host end's (`netns.rs`).
    pub netns: Option<Netns>,
    pub command: Vec<OsString>,
}

/// The shim's side of an instance's network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    pub peer_dev: String,
    pub instance: std::net::Ipv4Addr,
    pub host: std::net::Ipv4Addr,
}

impl ShimArgs {
    /// The arguments that follow the subcommand.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec![
            "--log".into(),
            self.log.clone().into(),
            "--boot-delay-ms".into(),
            self.boot_delay.as_millis().to_string().into(),
            "--stop-timeout-ms".into(),
            self.stop_timeout.as_millis().to_string().into(),
        ];
        if let Some(s) = &self.setup {
            a.push("--setup".into());
            a.push(s.into());
        }
        for c in &self.cgroups {
            a.push("--cgroup".into());
            a.push(c.clone().into());
        }
        if let Some(n) = &self.netns {
            a.push("--netns".into());
            a.push(format!("{},{},{}", n.peer_dev, n.instance, n.host).into());
        }
        a.push("--".into());
        a.extend(self.command.iter().cloned());
        a
    }

    pub fn from_args(args: Vec<OsString>) -> Result<ShimArgs, String> {
        let mut out = ShimArgs::default();
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            if flag == "--" {
                out.command = it.collect();
                break;
            }
            let value = it
                .next()
                .ok_or_else(|| format!("{} needs a value", flag.to_string_lossy()))?;
            let ms = || {
                value
                    .to_str()
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_millis)
            };
            match flag.to_str() {
                Some("--log") => out.log = value.clone().into(),
                Some("--boot-delay-ms") => out.boot_delay = ms().ok_or("bad --boot-delay-ms")?,
                Some("--stop-timeout-ms") => {
                    out.stop_timeout = ms().ok_or("bad --stop-timeout-ms")?
                }
                Some("--setup") => out.setup = Some(value.to_string_lossy().into_owned()),
                Some("--cgroup") => out.cgroups.push(value.clone().into()),
                Some("--netns") => {
                    let v = value.to_string_lossy();
                    let parts: Vec<&str> = v.split(',').collect();
                    let [dev, instance, host] = parts[..] else {
                        return Err("bad --netns".to_owned());
                    };
                    out.netns = Some(Netns {
                        peer_dev: dev.to_owned(),
                        instance: instance.parse().map_err(|_| "bad --netns address")?,
                        host: host.parse().map_err(|_| "bad --netns address")?,
                    });
                }
                _ => return Err(format!("unknown shim flag {}", flag.to_string_lossy())),
            }
        }
        if out.command.is_empty() {
            return Err("no command after --".to_owned());
        }
        Ok(out)
    }
}

/// Runs the shim to the end and returns its exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let args = match ShimArgs::from_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bellows shim: {e}");
            return 2;
        }
    };
    // A network of its own, unshared while the shim is one thread, so that every
    // thread and process of the instance is in it and it dies with them.
    if args.netns.is_some()
        && let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
    {
        report(&format!(
            "setup-failed cannot make a network namespace: {e}"
        ));
        return 1;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bellows shim: {e}");
            return 1;
        }
    };
    rt.block_on(run(args))
}

/// Describes how a process ended, as shown in activities: `exit status 1`, `signal 9 (SIGKILL)`.
pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("signal {sig} ({})", s.as_str()),
            Err(_) => format!("signal {sig}"),
        },
        _ => "unknown status".to_owned(),
    }
}

fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn note(log: &mut File, line: &str) {
    let _ = writeln!(log, "[bellows] {line}");
}

async fn run(args: ShimArgs) -> i32 {
    let mut log = match OpenOptions::new().create(true).append(true).open(&args.log) {
        Ok(f) => f,
        Err(e) => {
            report(&format!(
                "setup-failed cannot open log {}: {e}",
                args.log.display()
            ));
            return 1;
        }
    };
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        note(&mut log, &format!("cannot become a child subreaper: {e}"));
    }
    if let Err(e) = InstanceCgroup::join(&args.cgroups) {
        note(&mut log, &format!("running without resource limits: {e}"));
    }
    // Signals sent to the whole group reach the shim too; it waits for the command
    // instead of dying first. (Handlers, unlike ignored signals, reset on exec.)
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        report("setup-failed cannot install signal handlers");
        return 1;
    };
    let mut lifeline = tokio::spawn(async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let stop_requested = async |term: &mut tokio::signal::unix::Signal,
                                int: &mut tokio::signal::unix::Signal,
                                hup: &mut tokio::signal::unix::Signal| {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = hup.recv() => {}
        }
    };

    if let Some(n) = &args.netns {
        // bellows moves the veth peer in once it hears this.
        report("netns");
        if let Err(e) = join_network(n).await {
            note(&mut log, &e);
            report(&format!("setup-failed {e}"));
            return 1;
        }
        note(
            &mut log,
            &format!("network namespace: eth0 {}/30 via {}", n.instance, n.host),
        );
    }

    // Boot, then user data.
    tokio::select! {
        _ = crate::clock::sleep(args.boot_delay) => {}
        _ = &mut lifeline => { kill_rest(); return 0; }
        _ = stop_requested(&mut term, &mut int, &mut hup) => { report("exited stopped while booting"); kill_rest(); return 0; }
    }
    let stdio = |log: &File| {
        log.try_clone()
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null())
    };
    if let Some(script) = &args.setup {
        note(&mut log, "running the setup script");
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(stdio(&log))
            .stderr(stdio(&log))
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                report(&format!("setup-failed cannot run /bin/sh: {e}"));
                return 1;
            }
        };
        tokio::select! {
            status = child.wait() => match status {
                Ok(s) if s.success() => {}
                Ok(s) => {
                    note(&mut log, &format!("the setup script failed: {}", describe(s)));
                    report(&format!("setup-failed the setup script failed: {}", describe(s)));
                    kill_rest();
                    return 1;
                }
                Err(e) => { report(&format!("setup-failed {e}")); kill_rest(); return 1; }
            },
            _ = &mut lifeline => { stop_group(&mut child, args.stop_timeout).await; return 0; }
            _ = stop_requested(&mut term, &mut int, &mut hup) => {
                let _ = child.wait().await;
                report("exited stopped during setup");
                kill_rest();
                return 0;
            }
        }
    }

    let mut cmd = Command::new(&args.command[0]);
    cmd.args(&args.command[1..])
        .stdin(Stdio::null())
        .stdout(stdio(&log))
        .stderr(stdio(&log));
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("cannot start {}: {e}", args.command[0].to_string_lossy());
            note(&mut log, &msg);
            report(&format!("setup-failed {msg}"));
            return 1;
        }
    };
    report(&format!("running {}", child.id().unwrap_or(0)));
    loop {
        tokio::select! {
            status = child.wait() => {
                let text = status.map(describe).unwrap_or_else(|e| e.to_string());
                note(&mut log, &format!("the command exited: {text}"));
                // The rest of the tree goes first: the instance is over only when all
                // of it is, and its address is not handed out while a child holds it.
                let left = kill_rest();
                if left > 0 {
                    note(&mut log, &format!("{left} processes would not die"));
                }
                report(&format!("exited {text}"));
                return 0;
            }
            _ = &mut lifeline => {
                note(&mut log, "bellows went away: stopping the instance");
                stop_group(&mut child, args.stop_timeout).await;
                return 0;
            }
            // bellows terminates an instance by signalling the whole group: the command
            // has the signal too, so keep waiting for it to exit.
            _ = stop_requested(&mut term, &mut int, &mut hup) => {}
        }
    }
}

/// Waits (a bounded time) for the veth peer to arrive in the shim's namespace, then sets
/// the namespace's network up.
async fn join_network(n: &Netns) -> Result<(), String> {
    let ip = crate::netns::ip_binary().ok_or("`ip` (iproute2) is not installed")?;
    let mut arrived = false;
    for _ in 0..1000 {
        if nix::net::if_::if_nametoindex(n.peer_dev.as_str()).is_ok() {
            arrived = true;
            break;
        }
        crate::clock::sleep(Duration::from_millis(5)).await;
    }
    if !arrived {
        return Err(format!(
            "the instance's network interface {} never reached its namespace",
            n.peer_dev
        ));
    }
    let commands = crate::netns::inside_commands(&n.peer_dev, n.instance, n.host);
    tokio::task::spawn_blocking(move || crate::netns::ip_batch(ip, &commands))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot set up the instance's network: {e}"))
}

/// SIGTERM to everyone else in the group and below, SIGKILL after the timeout.
async fn stop_group(child: &mut tokio::process::Child, timeout: Duration) {
    signal_rest(Signal::SIGTERM);
    let _ = crate::clock::timeout(timeout, child.wait()).await;
    signal_rest(Signal::SIGKILL);
    let _ = child.wait().await;
    kill_rest();
}

/// Kills every descendant, pass after pass, reaping what the shim inherited as a child
/// subreaper, until none is left (or a bound of passes): the shim outlives its tree.
/// Only called once the command itself was reaped, so reaping any child cannot take
/// its status from tokio. Returns how many processes are left.
fn kill_rest() -> usize {
    let mut left = 0;
    for pass in 0..50u64 {
        left = signal_rest(Signal::SIGKILL);
        reap_orphans();
        if left == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2 * (pass + 1).min(10)));
        reap_orphans();
    }
    left
}

/// Reaps every child that has ended, without waiting.
fn reap_orphans() {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Signals every descendant of the shim (as a child subreaper it inherits those that
/// leave the group or the session), living ones only. Returns how many it signalled.
fn signal_rest(sig: Signal) -> usize {
    let me = std::process::id() as i32;
    let mut buf = Vec::new();
    let mut n = 0;
    for p in procfs::tree(me, &mut buf) {
        if p.pid == me || p.zombie {
            continue;
        }
        let _ = kill(Pid::from_raw(p.pid), sig);
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let a = ShimArgs {
            log: "/tmp/x.log".into(),
            boot_delay: Duration::from_millis(1500),
            stop_timeout: Duration::from_secs(10),
            setup: Some("echo hi -- there".into()),
            cgroups: vec!["/sys/fs/cgroup/cpu/x".into()],
            netns: Some(Netns {
                peer_dev: "bw12340000ai".into(),
                instance: "10.213.0.2".parse().unwrap(),
                host: "10.213.0.1".parse().unwrap(),
            }),
            command: vec!["app".into(), "--".into(), "--flag".into()],
        };
        assert_eq!(ShimArgs::from_args(a.to_args()), Ok(a));
    }
}
