//! The one place the sample apps read the clock (`clippy.toml` bans it everywhere
//! else). Apps are ordinary instances, not the core: they keep wall-clock timestamps
//! and measure their own work.

use std::time::Instant;

/// Milliseconds since the Unix epoch.
#[allow(clippy::disallowed_methods)]
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Now, on the monotonic clock.
#[allow(clippy::disallowed_methods)]
pub fn instant() -> Instant {
    Instant::now()
}

/// A sleep of `d` from now: tokio's timers take their deadlines from this clock
/// (`clippy.toml` bans `tokio::time::sleep`, `timeout` and `interval` elsewhere).
pub fn sleep(d: std::time::Duration) -> tokio::time::Sleep {
    tokio::time::sleep_until(tokio::time::Instant::from_std(instant()) + d)
}

/// `f`, given up after `d` from now.
pub fn timeout<F: IntoFuture>(d: std::time::Duration, f: F) -> tokio::time::Timeout<F::IntoFuture> {
    tokio::time::timeout_at(tokio::time::Instant::from_std(instant()) + d, f)
}

/// Ticks every `period`, the first at once.
pub fn interval(period: std::time::Duration) -> tokio::time::Interval {
    tokio::time::interval_at(tokio::time::Instant::from_std(instant()), period)
}
