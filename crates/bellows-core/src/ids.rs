//! Identifiers, drawn from a seeded generator so that a run can be replayed exactly.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A small, fast, seedable generator (SplitMix64). Not for secrets: the node draws its
/// tokens from the operating system instead.
#[derive(Clone, Debug)]
pub struct IdGen {
    state: u64,
}

impl IdGen {
    pub fn new(seed: u64) -> IdGen {
        IdGen { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An EC2-style instance id: `i-` and 17 hexadecimal digits.
    pub fn instance_id(&mut self) -> InstanceId {
        let hi = self.next_u64() & 0xF;
        let lo = self.next_u64();
        InstanceId(format!("i-{hi:x}{lo:016x}"))
    }

    /// An activity id in the shape AWS uses for scaling activities.
    pub fn activity_id(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xFFFF,
            a & 0xFFFF,
            b >> 48,
            b & 0xFFFF_FFFF_FFFF
        )
    }
}

/// `i-` followed by 17 lowercase hexadecimal digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(String);

impl InstanceId {
    /// Accepts exactly the shape `IdGen::instance_id` produces, so that an id taken from
    /// a request can be used in a file name safely.
    pub fn parse(s: &str) -> Option<InstanceId> {
        let hex = s.strip_prefix("i-")?;
        (hex.len() == 17
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| InstanceId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_have_the_ec2_shape_and_repeat_for_a_seed() {
        let mut a = IdGen::new(7);
        let mut b = IdGen::new(7);
        for _ in 0..100 {
            let id = a.instance_id();
            assert_eq!(id.as_str().len(), 19);
            assert_eq!(InstanceId::parse(id.as_str()), Some(id.clone()));
            assert_eq!(b.instance_id(), id);
        }
        assert!(InstanceId::parse("i-../../etc/passwd").is_none());
        assert!(InstanceId::parse("i-0123456789ABCDEF0").is_none());
    }
}
