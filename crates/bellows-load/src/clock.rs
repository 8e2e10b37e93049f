//! The one place the load generator reads the clock (`clippy.toml` bans it everywhere
//! else): tokio's monotonic instant, which the event loops, timeouts and latencies all
//! use.

use std::time::Duration;

use tokio::time::Instant;

/// Now, on the monotonic clock.
#[allow(clippy::disallowed_methods)]
#[inline]
pub fn now() -> Instant {
    Instant::now()
}

/// How long ago `earlier` was.
#[inline]
pub fn since(earlier: Instant) -> Duration {
    now().saturating_duration_since(earlier)
}
