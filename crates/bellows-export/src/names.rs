//! Names that the target accepts: Kubernetes' DNS-1035 labels, AWS's 32-character load
//! balancer and target group names. A changed name is reported, never silent.

use std::collections::BTreeMap;

/// A DNS-1035 label: lower case letters, digits and `-`, starting with a letter, ending
/// with a letter or digit, at most 63 characters.
pub fn dns1035(name: &str) -> String {
    shorten(name, 63, true)
}

/// At most `max` characters of `[a-z0-9-]` (or `[A-Za-z0-9-]` for AWS), without a
/// leading or trailing `-`, starting with a letter when `letter_first`.
pub fn shorten(name: &str, max: usize, letter_first: bool) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    if letter_first && !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "x-");
    }
    if out.len() > max {
        // Keep the name recognisable and unique: its start and a short hash of it all.
        let hash = format!("{:08x}", fnv(name) as u32);
        out.truncate(max - hash.len() - 1);
        out = format!("{}-{hash}", out.trim_end_matches('-'));
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() { "x".to_owned() } else { out }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Gives each name of one kind a valid, unique name, and notes every change.
#[derive(Debug, Default)]
pub struct Namer {
    kind: &'static str,
    max: usize,
    taken: BTreeMap<String, String>,
    pub notes: Vec<String>,
}

impl Namer {
    pub fn new(kind: &'static str, max: usize) -> Namer {
        Namer {
            kind,
            max,
            ..Namer::default()
        }
    }

    /// The valid name for `name` (the same one each time it is asked).
    pub fn name(&mut self, name: &str) -> String {
        if let Some((n, _)) = self.taken.iter().find(|(_, from)| *from == name) {
            return n.clone();
        }
        let mut n = shorten(name, self.max, true);
        let mut i = 2;
        while self.taken.contains_key(&n) {
            let suffix = format!("-{i}");
            n = format!("{}{suffix}", shorten(name, self.max - suffix.len(), true));
            i += 1;
        }
        if n != name {
            self.notes
                .push(format!("{} `{name}` is named `{n}`", self.kind));
        }
        self.taken.insert(n.clone(), name.to_owned());
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_dns_1035_labels() {
        assert_eq!(dns1035("web"), "web");
        assert_eq!(dns1035("my_group"), "my-group");
        assert_eq!(dns1035("1st"), "x-1st");
        assert_eq!(dns1035("a__b-"), "a-b");
        let long = "a".repeat(80);
        let n = dns1035(&long);
        assert_eq!(n.len(), 63);
        assert!(n.starts_with("aaaa") && !n.ends_with('-'));
        let mut namer = Namer::new("group", 63);
        assert_eq!(namer.name("a_b"), "a-b");
        assert_eq!(namer.name("a-b"), "a-b-2");
        assert_eq!(namer.name("a_b"), "a-b");
        assert_eq!(
            namer.notes,
            ["group `a_b` is named `a-b`", "group `a-b` is named `a-b-2`"]
        );
    }
}
