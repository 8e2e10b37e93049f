//! The commands that talk to a running `bellows up` through its control API, one file
//! per job: what the stack shows (`views`), what changes it (`changes`), what it
//! measured (`metrics`), `apply`, the record (`investigate`: audit, investigations,
//! incidents), `check`, `dashboard` and `aws_env`.

mod apply;
mod aws_env;
mod changes;
mod check;
mod dashboard;
mod investigate;
mod metrics;
mod views;

pub use apply::apply;
pub use aws_env::aws_env;
pub use changes::{RefreshAction, ingress, protect, refresh, scale, set_health, terminate, zone};
pub use check::check;
pub use dashboard::dashboard;
pub use investigate::{audit, incidents, investigate};
pub use metrics::{alarms, deliveries, metrics};
pub use views::{activities, instances, logs, status, tables, targets, zones};

use serde::Serialize;

pub(crate) fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    out!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Percent-encodes a query parameter's value.
pub(crate) fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
