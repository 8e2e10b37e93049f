//! The live runtime of bellows.
//!
//! The node drives the core with real time: a loop that each second (and on every
//! event) asks the groups what to do, has the process provider carry it out, records
//! every event in the state directory's SQLite database, and answers the control API.
//! Only this crate spawns processes and owns persistent state.

#![forbid(unsafe_code)]

pub mod api;
pub mod aws;
pub mod cgroup;
pub mod client;
pub mod clock;
pub mod derive;
pub mod http;
pub mod imds;
pub mod netns;
mod node;
pub mod outbox;
pub mod procfs;
pub mod provider;
mod publish;
pub mod resources;
pub mod sessions;
pub mod shim;
pub mod store;
pub mod tables;
pub mod token;
pub mod zones;

pub use node::{NodeError, NodeOptions, run};
