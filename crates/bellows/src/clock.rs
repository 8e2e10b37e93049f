//! The one place the binary reads the clock (`clippy.toml` bans it everywhere else):
//! scenarios' deadlines and narration, `bellows load`'s progress and `sim --bench`'s
//! wall time. Timestamps of record come from the node's clock.

use std::time::Duration;

use tokio::time::Instant;

/// Now, on the monotonic clock.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Instant {
    Instant::now()
}

/// How long ago `earlier` was.
pub fn since(earlier: Instant) -> Duration {
    now().saturating_duration_since(earlier)
}
