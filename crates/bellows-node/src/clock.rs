//! The one place the live node reads the wall clock.

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
