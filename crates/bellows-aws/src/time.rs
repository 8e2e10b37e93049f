//! Timestamps as the XML protocols write them (ISO 8601, UTC, milliseconds).

/// `2026-12-02T06:40:00.000Z` for seconds since the epoch.
pub fn format(epoch_seconds: f64) -> String {
    let millis = (epoch_seconds * 1000.0).round() as i64;
    match jiff::Timestamp::from_millisecond(millis) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => "1970-01-01T00:00:00.000Z".to_owned(),
    }
}

/// Seconds since the epoch from ISO 8601 with an offset (`Z` or `+HH:MM`), or a date
/// and time without one, read as UTC (the Query protocol's timestamps).
pub fn parse(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Some(t.as_millisecond() as f64 / 1000.0);
    }
    let civil: jiff::civil::DateTime = text.parse().ok()?;
    let t = civil.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(t.as_millisecond() as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        assert_eq!(super::format(1_796_193_600.25), "2026-12-02T06:40:00.250Z");
        assert_eq!(
            super::parse("2026-12-02T06:40:00.250Z"),
            Some(1_796_193_600.25)
        );
        assert_eq!(
            super::parse("2026-12-02T06:40:00+00:00"),
            Some(1_796_193_600.0)
        );
        assert_eq!(super::parse("2026-12-02T06:40:00"), Some(1_796_193_600.0));
        assert_eq!(super::parse("yesterday"), None);
    }
}
