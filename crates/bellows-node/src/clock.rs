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
