//! The one place the proxy reads the clock (`clippy.toml` bans it everywhere else).
//!
//! Two readings: the wall clock as the core's `Time`, for slow start, the access log
//! and the Date field; and the monotonic clock, for latencies and the queue's
//! deadlines. The connection watchdog's coarse clock (watch.rs) is the wall clock read
//! here every 100 ms.

use std::time::{Duration, Instant};

use bellows_core::Time;

/// The wall clock.
#[allow(clippy::disallowed_methods)]
pub(crate) fn now() -> Time {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Time::from_millis(d.as_millis() as u64)
}

/// The monotonic clock.
#[allow(clippy::disallowed_methods)]
#[inline]
pub(crate) fn instant() -> Instant {
    Instant::now()
}

/// How long ago `earlier` was on the monotonic clock.
#[inline]
pub(crate) fn since(earlier: Instant) -> Duration {
    instant().saturating_duration_since(earlier)
}

/// A sleep of `d` from now: tokio's timers take their deadlines from this clock
/// (`clippy.toml` bans `tokio::time::sleep`, `timeout` and `interval` elsewhere).
pub(crate) fn sleep(d: Duration) -> tokio::time::Sleep {
    tokio::time::sleep_until(tokio::time::Instant::from_std(instant()) + d)
}

/// `f`, given up after `d` from now.
pub(crate) fn timeout<F: IntoFuture>(d: Duration, f: F) -> tokio::time::Timeout<F::IntoFuture> {
    tokio::time::timeout_at(tokio::time::Instant::from_std(instant()) + d, f)
}

/// Ticks every `period`, the first at once.
pub(crate) fn interval(period: Duration) -> tokio::time::Interval {
    tokio::time::interval_at(tokio::time::Instant::from_std(instant()), period)
}
