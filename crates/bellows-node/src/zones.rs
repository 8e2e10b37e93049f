//! Named time zones for scheduled actions, from the system's time zone database
//! (`/usr/share/zoneinfo`), daylight saving included.

use bellows_core::Time;
use bellows_core::schedule::{Zone, ZoneTable};
use bellows_core::stack::Stack;

/// Minutes east of UTC in `zone` at `t`; None for a zone the system does not know.
pub fn utc_offset(zone: &str, t: Time) -> Option<i32> {
    let tz = jiff::tz::TimeZone::get(zone).ok()?;
    let ts = jiff::Timestamp::from_millisecond(t.as_millis() as i64).ok()?;
    Some(tz.to_offset(ts).seconds() / 60)
}

/// The offsets of every named zone of the stacks' scheduled actions from `from` to
/// `to`, transitions included, for a driver on a virtual clock (the simulator). Zones
/// the system does not know are left out (and never match).
pub fn table<'a>(stacks: impl IntoIterator<Item = &'a Stack>, from: Time, to: Time) -> ZoneTable {
    let mut table = ZoneTable::default();
    for a in stacks.into_iter().flat_map(|s| &s.scheduled) {
        let Some(Zone::Named(name)) = a.cron.as_ref().map(|c| c.zone()) else {
            continue;
        };
        let (Ok(tz), Ok(start)) = (
            jiff::tz::TimeZone::get(name),
            jiff::Timestamp::from_millisecond(from.as_millis() as i64),
        ) else {
            continue;
        };
        table.insert(name, from, tz.to_offset(start).seconds() / 60);
        for tr in tz.following(start) {
            let at = tr.timestamp().as_millisecond();
            if at < 0 || at as u64 > to.as_millis() {
                break;
            }
            table.insert(
                name,
                Time::from_millis(at as u64),
                tr.offset().seconds() / 60,
            );
        }
    }
    table
}

/// Every scheduled action whose named zone the system does not know, as messages.
pub fn unknown_zones(stack: &Stack) -> Vec<String> {
    stack
        .scheduled
        .iter()
        .filter_map(|a| match a.cron.as_ref()?.zone() {
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

    /// (zone, seconds since the epoch, minutes east of UTC): each side of 2026's changes.
    const CHANGES: [(&str, u64, i32); 6] = [
        ("Europe/Paris", 1_774_745_999, 60), // 2026-03-29 00:59:59 UTC
        ("Europe/Paris", 1_774_746_000, 120),
        ("Europe/Paris", 1_792_889_999, 120), // 2026-10-25 00:59:59 UTC
        ("Europe/Paris", 1_792_890_000, 60),
        ("America/New_York", 1_772_953_199, -300), // 2026-03-08 06:59:59 UTC
        ("America/New_York", 1_772_953_200, -240),
    ];

    #[test]
    fn offsets_change_at_the_second_of_the_change() {
        for (zone, t, want) in CHANGES {
            let t = Time::from_millis(t * 1000);
            assert_eq!(utc_offset(zone, t), Some(want), "{zone} at {t}");
        }
    }

    #[test]
    fn a_table_for_the_simulator_holds_the_changes_of_its_window() {
        let stack = bellows_core::stack::parse(
            "[groups.web]\nmin = 1\nmax = 2\n[groups.web.launch]\ncommand = [\"x\"]\n\
             [[groups.web.scheduled]]\nname = \"a\"\ncron = \"0 8 * * *\"\ntime_zone = \"Europe/Paris\"\ndesired = 2\n\
             [[groups.web.scheduled]]\nname = \"b\"\ncron = \"0 8 * * *\"\ntime_zone = \"America/New_York\"\ndesired = 2\n",
        )
        .unwrap();
        // All of 2026.
        let table = table(
            [&stack],
            Time::from_millis(1_767_225_600_000),
            Time::from_millis(1_798_761_600_000),
        );
        for (zone, t, want) in CHANGES {
            let t = Time::from_millis(t * 1000);
            assert_eq!(table.offset(zone, t), Some(want), "{zone} at {t}");
        }
        assert_eq!(
            table.offset("Europe/Paris", Time::from_millis(1_767_225_600_000)),
            Some(60)
        );
    }
}
