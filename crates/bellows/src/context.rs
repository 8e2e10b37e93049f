//! Where a command finds the running `bellows up`: its state directory (the control
//! address it wrote there, and the token for changes) or the address given.

use std::net::SocketAddr;
use std::path::PathBuf;

use bellows_node::client::Client;

/// Where a command finds the running `up` (and where `up` keeps its state and listens):
/// on the commands that talk to a stack, and before the subcommand.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Conn {
    /// The state directory (token, logs, database): where `up` keeps them (instead of
    /// the stack file's), and where the other commands find the running `up` (default
    /// `.bellows` in the current directory).
    #[arg(long, env = "BELLOWS_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The control API's address: where `up` listens (instead of the stack file's), and
    /// where the other commands find it (by default the address the running `up` wrote
    /// into the state directory, else 127.0.0.1:9900).
    #[arg(long, env = "BELLOWS_CONTROL", value_name = "ADDR")]
    pub control: Option<SocketAddr>,
}

impl Conn {
    /// This command's own flags, else those given before the subcommand.
    pub fn or(self, outer: Conn) -> Conn {
        Conn {
            state_dir: self.state_dir.or(outer.state_dir),
            control: self.control.or(outer.control),
        }
    }
}

/// Where the running `up` is, and the token for changes.
pub struct Context {
    pub state_dir: Option<PathBuf>,
    pub control: Option<SocketAddr>,
}

/// The state directory when neither the command line nor the stack file names one.
pub const DEFAULT_STATE_DIR: &str = ".bellows";

impl Context {
    pub fn new(state_dir: Option<PathBuf>, control: Option<SocketAddr>) -> Context {
        Context { state_dir, control }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
    }

    /// A client for the running `up`: the address given, else the one it wrote in the
    /// state directory, else the default; the token from the state directory if readable.
    pub fn client(&self) -> Client {
        let dir = self.state_dir();
        let addr = self
            .control
            .or_else(|| {
                std::fs::read_to_string(dir.join("control"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
            })
            .unwrap_or_else(|| {
                bellows_core::stack::DEFAULT_CONTROL
                    .parse()
                    .expect("valid default")
            });
        let token = std::fs::read_to_string(dir.join("token"))
            .ok()
            .map(|t| t.trim().to_owned());
        Client::new(addr, token)
    }

    /// Why this directory may not lead to the running `up`, for an error a command got
    /// (unreachable, or 401 for want of the token): the CLI finds its stack through the
    /// state directory, which is relative to the current directory.
    pub fn diagnosis(&self) -> Option<String> {
        let dir = self.state_dir();
        let shown = std::path::absolute(&dir).unwrap_or_else(|_| dir.clone());
        let how = if self.state_dir.is_some() {
            format!("the state directory given, {}", shown.display())
        } else {
            format!(
                "the state directory of the current directory, {} (`{DEFAULT_STATE_DIR}` unless --state-dir or BELLOWS_STATE_DIR names another)",
                shown.display()
            )
        };
        let fix = "run the command in the directory where `bellows up` runs, or pass --state-dir with the state directory `bellows up` printed";
        let has_control = dir.join("control").exists();
        let has_token = dir.join("token").exists();
        match (self.control.is_some(), has_control, has_token) {
            (false, false, _) => Some(format!(
                "the CLI finds the running stack through {how}, and no running `bellows up` wrote its address there, so it tried the default address {}: {fix}",
                bellows_core::stack::DEFAULT_CONTROL
            )),
            (_, _, false) => Some(format!(
                "changes need the token that `bellows up` keeps in its state directory; the CLI looked in {how} and found none: {fix}"
            )),
            _ => None,
        }
    }
}
