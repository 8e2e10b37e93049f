//! The one source of random tokens in bellows: the control API's token, instances'
//! metric tokens and IMDSv2 session tokens. It reads the operating system's generator
//! whole or fails: a token is never made of fewer random bytes than asked for, and
//! never of zeros.

use std::fmt::Write as _;
use std::io::Read as _;

/// The operating system's random source could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read random bytes from /dev/urandom for a token: {0}")]
pub struct TokenError(#[from] std::io::Error);

/// `N` random bytes from the operating system, as `2 * N` lowercase hex digits.
pub fn random_hex<const N: usize>() -> Result<String, TokenError> {
    let mut raw = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    let mut out = String::with_capacity(2 * N);
    for b in raw {
        let _ = write!(out, "{b:02x}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_hex_of_the_asked_length_and_differ() {
        let a = random_hex::<16>().expect("a token");
        let b = random_hex::<16>().expect("a token");
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
        assert_ne!(a, "0".repeat(32));
    }
}
