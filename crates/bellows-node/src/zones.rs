//! Named time zones for scheduled actions, from the system's time zone database
//! (`/usr/share/zoneinfo`), daylight saving included.

use bellows_core::Time;
use bellows_core::schedule::Zone;
use bellows_core::stack::Stack;

/// Minutes east of UTC in `zone` at `t`; None for a zone the system does not know.
pub fn utc_offset(zone: &str, t: Time) -> Option<i32> {
    let tz = jiff::tz::TimeZone::get(zone).ok()?;
    let ts = jiff::Timestamp::from_millisecond(t.as_millis() as i64).ok()?;
    Some(tz.to_offset(ts).seconds() / 60)
}

/// Every scheduled action whose named zone the system does not know, as messages.
pub fn unknown_zones(stack: &Stack) -> Vec<String> {
    stack
        .scheduled
        .iter()
        .filter_map(|a| match a.cron.zone() {
            Zone::Named(name) if jiff::tz::TimeZone::get(name).is_err() => Some(format!(
                "scheduled action `{}` of group `{}`: unknown time zone `{name}` (not in the system's time zone database)",
                a.name, a.group
            )),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_daylight_saving() {
        // 2026-11-23 (winter) and 2026-07-01 (summer), noon UTC.
        assert_eq!(
            utc_offset("Europe/Paris", Time::from_millis(1_795_435_200_000)),
            Some(60)
        );
        assert_eq!(
            utc_offset("Europe/Paris", Time::from_millis(1_782_907_200_000)),
            Some(120)
        );
        assert_eq!(
            utc_offset("America/New_York", Time::from_millis(1_795_435_200_000)),
            Some(-300)
        );
        assert_eq!(utc_offset("Nowhere/Atlantis", Time::from_millis(0)), None);
    }
}
