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

/// A sleep of `d` from now: tokio's timers take their deadlines from this clock
/// (`clippy.toml` bans `tokio::time::sleep`, `timeout` and `interval` elsewhere).
pub fn sleep(d: Duration) -> tokio::time::Sleep {
    tokio::time::sleep_until(now() + d)
}

/// `f`, given up after `d` from now.
pub fn timeout<F: IntoFuture>(d: Duration, f: F) -> tokio::time::Timeout<F::IntoFuture> {
    tokio::time::timeout_at(now() + d, f)
}
