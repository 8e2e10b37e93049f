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
