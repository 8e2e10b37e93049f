//! The fields the proxy writes or leaves out: hop-by-hop fields, the status line, the
//! Connection field and the Date field's format.

use http::StatusCode;

use crate::wire::put_field;

/// Fields that describe one connection, not the message: never passed on.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub(super) fn named(name: &[u8], list: &[&str]) -> bool {
    list.iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

/// Whether a field is not passed on: hop-by-hop (the upgrade handshake's kept for a
/// WebSocket), or named by the message's Connection field.
pub(super) fn hop_by_hop(name: &[u8], upgrade: bool, listed: &[&[u8]]) -> bool {
    (named(name, &HOP_BY_HOP) && !(upgrade && named(name, &["connection", "upgrade"])))
        || listed.iter().any(|l| name.eq_ignore_ascii_case(l))
}

/// The names a message's Connection fields list, beyond the ones with a meaning.
pub(super) fn connection_listed<'a>(
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Vec<&'a [u8]> {
    fields
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
        .flat_map(|(_, v)| v.split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|n| !n.is_empty() && !named(n, &["close", "keep-alive", "upgrade"]))
        .collect()
}

pub(super) fn status_line(w: &mut Vec<u8>, status: StatusCode, reason: &[u8]) {
    w.extend_from_slice(b"HTTP/1.1 ");
    w.extend_from_slice(status.as_str().as_bytes());
    w.push(b' ');
    w.extend_from_slice(reason);
    w.extend_from_slice(b"\r\n");
}

/// Says whether the connection stays open, where the version's default does not.
pub(super) fn connection_field(w: &mut Vec<u8>, keep: bool, http10: bool) {
    if !keep {
        put_field(w, b"connection", b"close");
    } else if http10 {
        put_field(w, b"connection", b"keep-alive");
    }
}

/// An HTTP date (RFC 9110 IMF-fixdate): `Sun, 22 Nov 2026 23:15:02 GMT`.
pub(super) fn http_date(t: bellows_core::Time) -> String {
    // The core prints RFC 3339; rearrange its fields.
    let iso = t.to_string();
    let (y, m, d) = (&iso[0..4], &iso[5..7], &iso[8..10]);
    let days = t.as_secs() / 86_400;
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][m.parse::<usize>().unwrap_or(1).clamp(1, 12) - 1];
    format!("{weekday}, {d} {month} {y} {} GMT", &iso[11..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(
            http_date(bellows_core::Time::from_millis(1_795_389_302_120)),
            "Sun, 22 Nov 2026 23:15:02 GMT"
        );
        assert_eq!(
            http_date(bellows_core::Time::from_millis(0)),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
    }
}
