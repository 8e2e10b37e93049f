//! Durations as people write them in stack files: `500ms`, `30s`, `5m`, `1h30m`, `2d`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A span of time with millisecond resolution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

impl Duration {
    pub const ZERO: Duration = Duration(0);

    pub const fn from_millis(ms: u64) -> Duration {
        Duration(ms)
    }

    pub const fn from_secs(s: u64) -> Duration {
        Duration(s * 1000)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }

    pub fn saturating_mul(self, n: u64) -> Duration {
        Duration(self.0.saturating_mul(n))
    }
}

/// Why a duration did not parse; the message completes "invalid duration: ...".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseDurationError(String);

const UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(s: &str) -> Result<Duration, ParseDurationError> {
        let hint = || {
            ParseDurationError(format!(
                "`{s}` is not a duration; write a number and a unit, like `500ms`, `30s`, `5m`, `1h30m`"
            ))
        };
        let s = s.trim();
        if s.is_empty() {
            return Err(hint());
        }
        let mut total: u64 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(hint());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| hint())?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let scale = UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, scale)| *scale)
                .ok_or_else(hint)?;
            total = n
                .checked_mul(scale)
                .and_then(|ms| total.checked_add(ms))
                .ok_or_else(|| ParseDurationError(format!("`{s}` is too long")))?;
        }
        Ok(Duration(total))
    }
}

impl fmt::Display for Duration {
    /// The shortest exact form: `0s`, `500ms`, `1m30s`, `2h`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        for (name, scale) in UNITS.iter().rev() {
            if rest >= *scale {
                write!(f, "{}{name}", rest / scale)?;
                rest %= scale;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, ms, shown) in [
            ("500ms", 500, "500ms"),
            ("30s", 30_000, "30s"),
            ("5m", 300_000, "5m"),
            ("1h30m", 5_400_000, "1h30m"),
            ("90s", 90_000, "1m30s"),
            ("2d", 172_800_000, "2d"),
            ("0s", 0, "0s"),
        ] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.as_millis(), ms, "{text}");
            assert_eq!(d.to_string(), shown, "{text}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for text in [
            "",
            "30",
            "s",
            "5 minutes",
            "-1s",
            "1.5s",
            "10y",
            "99999999999999999999s",
        ] {
            assert!(text.parse::<Duration>().is_err(), "{text:?} parsed");
        }
    }
}
