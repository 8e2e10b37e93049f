//! Readers and checks of single values that every section shares: names, URLs, numbers
//! and durations in a range, one of a few words, booleans, dimensions and statistics.
//! Each reports a problem at the value's position with its full path.

use std::collections::BTreeMap;

use toml::Spanned;
use toml::de::DeValue;

use crate::Duration;
use crate::metrics::Statistic;
use crate::stack::reader::{Cx, FromToml, Table};

/// A receiver's URL: http:// or https://, with a host.
pub(super) fn check_url(cx: &mut Cx<'_>, u: &Spanned<String>, key: &str) {
    let rest = u
        .get_ref()
        .strip_prefix("http://")
        .or_else(|| u.get_ref().strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => {}
        _ => cx.error(
            u.span(),
            format!("`{key}` must be an http:// or https:// URL with a host"),
        ),
    }
}

/// What a stack name may be made of: 1 to `max` of letters (`lowercase`: only lower
/// case), digits, `-` and `_` (a bare TOML key), starting with a letter or digit.
fn check_name_rule(
    cx: &mut Cx<'_>,
    name: &Spanned<String>,
    what: &str,
    max: usize,
    lowercase: bool,
) {
    let n = name.get_ref();
    let letter = |b: u8| {
        if lowercase {
            b.is_ascii_lowercase()
        } else {
            b.is_ascii_alphabetic()
        }
    };
    let ok = !n.is_empty()
        && n.len() <= max
        && n.bytes()
            .all(|b| letter(b) || b.is_ascii_digit() || b == b'-' || b == b'_')
        && n.as_bytes()[0].is_ascii_alphanumeric();
    if !ok {
        let letters = if lowercase {
            "lowercase letters"
        } else {
            "letters"
        };
        cx.error(
            name.span(),
            format!("`{n}` is not a valid {what}: use 1 to {max} {letters}, digits, `-` or `_`, starting with a letter or digit"),
        );
    }
}

pub(super) fn check_name(cx: &mut Cx<'_>, name: &Spanned<String>, what: &str) {
    check_name_rule(cx, name, what, 64, true);
}

/// An alarm's name: in any case, as CloudWatch's often are (`HighCPUUtilization`), and
/// up to 255 long.
pub(super) fn check_alarm_name(cx: &mut Cx<'_>, name: &Spanned<String>) {
    check_name_rule(cx, name, "alarm name", 255, false);
}

/// Reads an integer and checks it against an inclusive range.
pub(super) fn int_in(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
    lo: i64,
    hi: i64,
) -> Option<i64> {
    let v = t.get::<Spanned<i64>>(cx, key)?;
    in_range(cx, &v, &format!("{}.{key}", t.path), lo, hi)
}

pub(super) fn in_range(
    cx: &mut Cx<'_>,
    v: &Spanned<i64>,
    path: &str,
    lo: i64,
    hi: i64,
) -> Option<i64> {
    let n = *v.get_ref();
    if (lo..=hi).contains(&n) {
        Some(n)
    } else {
        cx.error(
            v.span(),
            format!("`{path}` is {n}, must be from {lo} to {hi}"),
        );
        None
    }
}

/// Reads a duration and checks it against an inclusive range.
pub(super) fn duration_in(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
    lo: Duration,
    hi: Duration,
) -> Option<Duration> {
    let v = t.get::<Spanned<Duration>>(cx, key)?;
    let d = *v.get_ref();
    if d < lo || d > hi {
        cx.error(
            v.span(),
            format!("`{}.{key}` is {d}, must be from {lo} to {hi}", t.path),
        );
        return None;
    }
    Some(d)
}

pub(super) fn one_of<T: Copy>(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
    choices: &[(&str, T)],
) -> Option<T> {
    let v = t.get::<Spanned<String>>(cx, key)?;
    match choices.iter().find(|(name, _)| *name == v.get_ref()) {
        Some((_, value)) => Some(*value),
        None => {
            let names: Vec<String> = choices.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            cx.error(
                v.span(),
                format!(
                    "`{}.{key}` is \"{}\", must be one of {}",
                    t.path,
                    v.get_ref(),
                    names.join(", ")
                ),
            );
            None
        }
    }
}

pub(super) fn t_int(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
    lo: i64,
    hi: i64,
    required: bool,
) -> Option<u32> {
    if required {
        let v = t.require::<Spanned<i64>>(cx, key)?;
        in_range(cx, &v, &format!("{}.{key}", t.path), lo, hi).map(|n| n as u32)
    } else {
        int_in(cx, t, key, lo, hi).map(|n| n as u32)
    }
}

pub(super) fn read_bool(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key: &'static str) -> Option<bool> {
    let path = format!("{}.{key}", t.path);
    let v = t.raw(key)?;
    match v.get_ref() {
        DeValue::Boolean(b) => Some(*b),
        other => {
            cx.error(
                v.span(),
                format!("`{path}` must be true or false, found {}", other.type_str()),
            );
            None
        }
    }
}

pub(super) fn read_f64(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
    required: bool,
) -> Option<f64> {
    if required {
        t.require::<f64>(cx, key)
    } else {
        t.get::<f64>(cx, key)
    }
}

/// An optional number from `lo` to `hi`; out of range is reported and read as absent.
pub(super) fn float_in(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    path: &str,
    key: &'static str,
    lo: f64,
    hi: f64,
) -> Option<f64> {
    let v = t.get::<Spanned<f64>>(cx, key)?;
    if (lo..=hi).contains(v.get_ref()) {
        Some(v.into_inner())
    } else {
        cx.error(
            v.span(),
            format!("`{path}.{key}` must be from {lo} to {hi}"),
        );
        None
    }
}

pub(super) fn read_dimensions(cx: &mut Cx<'_>, t: &mut Table<'_, '_>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let path = format!("{}.dimensions", t.path);
    let Some(v) = t.raw("dimensions") else {
        return out;
    };
    let DeValue::Table(table) = v.get_ref() else {
        cx.error(
            v.span(),
            format!("`{path}` must be a table like {{ AutoScalingGroupName = \"web\" }}"),
        );
        return out;
    };
    for (k, value) in table.iter() {
        if let Some(s) = String::from_toml(cx, value, &format!("{path}.{}", k.get_ref())) {
            out.insert(k.get_ref().to_string(), s);
        }
    }
    out
}

pub(super) fn read_statistic(cx: &mut Cx<'_>, t: &mut Table<'_, '_>) -> Statistic {
    match t.get::<Spanned<String>>(cx, "statistic") {
        Some(s) => s.get_ref().parse().unwrap_or_else(|e: String| {
            cx.error(s.span(), format!("`{}.statistic`: {e}", t.path));
            Statistic::Average
        }),
        None => Statistic::Average,
    }
}
