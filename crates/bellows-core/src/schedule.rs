//! Cron expressions for scheduled actions: five fields (minute, hour, day of month,
//! month, day of week) with `*`, lists, ranges and steps, in UTC, a fixed offset, or a
//! named (IANA) time zone whose offset the caller looks up: the core reads no tz data.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Time;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    text: String,
    /// Allowed values per field, as bit sets.
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    dom_any: bool,
    dow_any: bool,
    zone: Zone,
}

/// Where a schedule's clock is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Zone {
    /// Minutes east of UTC.
    Fixed(i32),
    /// An IANA name like `Europe/Paris`, resolved (with daylight saving) by the caller.
    Named(String),
}

fn field(text: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .map_err(|_| format!("bad step in `{part}`"))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("a step of 0 in `{part}`"));
        }
        let value = |v: &str| -> Result<u32, String> {
            if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
                return Ok(lo + i as u32);
            }
            let n: u32 = v.parse().map_err(|_| format!("`{v}` is not a number"))?;
            // Day of week 7 is Sunday too.
            let n = if hi == 6 && n == 7 { 0 } else { n };
            if n < lo || n > hi {
                return Err(format!("{n} is outside {lo}-{hi}"));
            }
            Ok(n)
        };
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if part.contains('/') => (value(r)?, hi),
                None => {
                    let v = value(r)?;
                    (v, v)
                }
            },
        };
        if a > b {
            return Err(format!("the range `{range}` runs backwards"));
        }
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl Cron {
    /// Parses `MIN HOUR DOM MON DOW` and a time zone: `UTC`, `Z`, or an offset like
    /// `+02:00` / `-05:30`.
    pub fn parse(expr: &str, time_zone: &str) -> Result<Cron, String> {
        let f: Vec<&str> = expr.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!(
                "`{expr}` needs five fields: minute hour day-of-month month day-of-week"
            ));
        }
        const MONTHS: [&str; 12] = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let zone = match time_zone {
            "UTC" | "Z" | "Etc/UTC" => Zone::Fixed(0),
            tz if tz.bytes().next().is_some_and(|b| b.is_ascii_alphabetic()) => {
                let valid = tz.len() <= 64
                    && tz
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"/_-+".contains(&b));
                if !valid {
                    return Err(format!(
                        "time zone `{tz}` is not a zone name like Europe/Paris"
                    ));
                }
                Zone::Named(tz.to_owned())
            }
            tz => {
                let bad = || {
                    format!(
                        "time zone `{tz}`: write UTC, an offset like +02:00, or a name like Europe/Paris"
                    )
                };
                let (sign, rest) = match tz.as_bytes().first() {
                    Some(b'+') => (1, &tz[1..]),
                    Some(b'-') => (-1, &tz[1..]),
                    _ => return Err(bad()),
                };
                let (h, m) = rest.split_once(':').ok_or_else(bad)?;
                let (h, m): (i32, i32) =
                    (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
                if h > 14 || m > 59 {
                    return Err(bad());
                }
                Zone::Fixed(sign * (h * 60 + m))
            }
        };
        Ok(Cron {
            text: format!("{expr} {time_zone}"),
            minutes: field(f[0], 0, 59, &[]).map_err(|e| format!("minute: {e}"))?,
            hours: field(f[1], 0, 23, &[]).map_err(|e| format!("hour: {e}"))? as u32,
            days: field(f[2], 1, 31, &[]).map_err(|e| format!("day of month: {e}"))? as u32,
            months: field(f[3], 1, 12, &MONTHS).map_err(|e| format!("month: {e}"))? as u16,
            weekdays: field(f[4], 0, 6, &DAYS).map_err(|e| format!("day of week: {e}"))? as u8,
            dom_any: f[2] == "*",
            dow_any: f[4] == "*",
            zone,
        })
    }

    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// Whether the minute containing `t` matches, for a fixed zone. A named zone needs
    /// `matches_with_offset` and the zone's offset at `t`.
    pub fn matches(&self, t: Time) -> bool {
        match self.zone {
            Zone::Fixed(offset) => self.matches_with_offset(t, offset),
            Zone::Named(_) => false,
        }
    }

    /// Whether the minute containing `t` matches, with the clock `offset_minutes` east of UTC.
    pub fn matches_with_offset(&self, t: Time, offset_minutes: i32) -> bool {
        let local = t.as_secs() as i64 + i64::from(offset_minutes) * 60;
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (_, month, day) = crate::time::civil_from_days(days);
        let weekday = (days + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday.
        let (hour, minute) = ((secs / 3600) as u32, (secs % 3600 / 60) as u32);
        let dom = self.days & (1 << day) != 0;
        let dow = self.weekdays & (1 << weekday) != 0;
        // As in cron: with both day fields restricted, either may match.
        let day_ok = match (self.dom_any, self.dow_any) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        };
        self.minutes & (1 << minute) != 0
            && self.hours & (1 << hour) != 0
            && self.months & (1 << month) != 0
            && day_ok
    }
}

/// The offsets of named zones over a span of time, as the caller read them from a time
/// zone database: per zone, the offset in force from each instant on. The simulator
/// takes one because it runs on a virtual clock and the core reads no tz data itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZoneTable {
    zones: BTreeMap<String, Vec<(Time, i32)>>,
}

impl ZoneTable {
    /// From `from` on (until a later entry), `zone` is `offset_minutes` east of UTC.
    pub fn insert(&mut self, zone: &str, from: Time, offset_minutes: i32) {
        let entries = self.zones.entry(zone.to_owned()).or_default();
        let at = entries.partition_point(|(t, _)| *t <= from);
        if at > 0 && entries[at - 1].0 == from {
            entries[at - 1].1 = offset_minutes;
        } else {
            entries.insert(at, (from, offset_minutes));
        }
    }

    /// Minutes east of UTC in `zone` at `t`; None for a zone not in the table or an
    /// instant before its first entry.
    pub fn offset(&self, zone: &str, t: Time) -> Option<i32> {
        let entries = self.zones.get(zone)?;
        let at = entries.partition_point(|(from, _)| *from <= t);
        at.checked_sub(1).map(|i| entries[i].1)
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Cron {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cron {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cron, D::Error> {
        let s = String::deserialize(d)?;
        let (expr, tz) = s
            .rsplit_once(' ')
            .ok_or_else(|| serde::de::Error::custom("cron and zone"))?;
        Cron::parse(expr, tz).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc: &str) -> Time {
        // 2026-11-23 is a Monday; minutes from midnight UTC.
        let (h, m): (u64, u64) = (rfc[0..2].parse().unwrap(), rfc[3..5].parse().unwrap());
        Time::from_millis((1_795_392_000 + h * 3600 + m * 60) * 1000)
    }

    #[test]
    fn fields_lists_ranges_steps_and_zones() {
        assert_eq!(
            Time::from_millis(1_795_392_000_000).to_string(),
            "2026-11-23T00:00:00.000Z"
        );
        let weekday_nine = Cron::parse("0 9 * * mon-fri", "UTC").unwrap();
        assert!(weekday_nine.matches(at("09:00")));
        assert!(!weekday_nine.matches(at("09:01")));
        let every_15 = Cron::parse("*/15 * * * *", "UTC").unwrap();
        assert!(every_15.matches(at("13:45")) && !every_15.matches(at("13:50")));
        let berlin_nine = Cron::parse("0 9 * * 1", "+01:00").unwrap();
        assert!(berlin_nine.matches(at("08:00")) && !berlin_nine.matches(at("09:00")));
        let weekend = Cron::parse("0 0 * * 6,7", "UTC").unwrap();
        assert!(!weekend.matches(at("00:00")), "Monday is not the weekend");
        let first_of_month = Cron::parse("30 2 1 * *", "UTC").unwrap();
        assert!(!first_of_month.matches(at("02:30")));
        for bad in [
            "* * * *",
            "60 * * * *",
            "* 5-2 * * *",
            "*/0 * * * *",
            "* * * foo *",
        ] {
            assert!(Cron::parse(bad, "UTC").is_err(), "{bad}");
        }
        let paris = Cron::parse("0 9 * * *", "Europe/Paris").unwrap();
        assert_eq!(paris.zone(), &Zone::Named("Europe/Paris".into()));
        assert!(
            paris.matches_with_offset(at("08:00"), 60),
            "09:00 in Paris in winter"
        );
        assert!(Cron::parse("* * * * *", "Mars Base!").is_err());
    }
}
