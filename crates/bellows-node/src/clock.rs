//! The one place the live node reads the clock, wall or monotonic (`clippy.toml` bans
//! it everywhere else, tokio's clock included).

use bellows_core::Time;

/// Now, as the core's `Time`.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Time {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Time::from_millis(since_epoch.as_millis() as u64)
}

/// Now, for measuring intervals.
#[allow(clippy::disallowed_methods)]
pub fn instant() -> std::time::Instant {
    std::time::Instant::now()
}

/// A deadline `after` from now, for tokio's timers.
pub fn after(after: std::time::Duration) -> tokio::time::Instant {
    tokio::time::Instant::from_std(instant()) + after
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
