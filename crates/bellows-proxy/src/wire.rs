//! HTTP/1.1 pieces that both directions share (http1.rs from clients, upstream.rs to
//! targets): spans into a head's bytes, field tokens, field lines and the chunked
//! coding, decoded and encoded.

use bytes::{Buf, Bytes, BytesMut};

/// A byte range of a message head.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// Where `part` lies in `whole`; empty when it is not in it (an empty slice the
    /// parser made up, say).
    pub fn of(whole: &[u8], part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
        if start > whole.len() || part.len() > whole.len() - start {
            return Span::default();
        }
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    pub fn sub(self, from: usize, to: usize) -> Span {
        Span {
            start: self.start + from as u32,
            end: self.start + to as u32,
        }
    }

    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn in_(self, raw: &[u8]) -> &[u8] {
        &raw[self.start as usize..self.end as usize]
    }
}

/// Whether a comma-separated field value lists `token` (any case).
pub(crate) fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Where a chunked body's decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields up to an empty line.
    Trailers,
}

/// A step of the chunked decoder.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Bytes of a chunk's data, and the state after them.
    Data(Chunk, Bytes),
    /// A size line, a CRLF or a trailer field consumed: the state after it.
    Moved(Chunk),
    /// The empty line after the last chunk: the body is over.
    End,
}

/// Decodes the next step of a chunked body at `state`; `None` when more bytes are
/// needed (nothing is consumed then).
pub(crate) fn decode_chunk(buf: &mut BytesMut, state: Chunk) -> Result<Option<Decoded>, String> {
    let line = |buf: &BytesMut| match find_crlf(buf) {
        Some(end) => Ok(Some(end)),
        None if buf.len() > 4096 => Err("chunk line too long".to_owned()),
        None => Ok(None),
    };
    Ok(Some(match state {
        Chunk::Size => {
            let Some(end) = line(buf)? else {
                return Ok(None);
            };
            let text = &buf[..end];
            // A size, then optional extensions after ';'.
            let digits = text
                .iter()
                .position(|b| *b == b';')
                .map_or(text, |i| &text[..i])
                .trim_ascii();
            let size = std::str::from_utf8(digits)
                .ok()
                .filter(|d| !d.is_empty() && d.len() <= 15)
                .and_then(|d| u64::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("bad chunk size {:?}", String::from_utf8_lossy(digits)))?;
            buf.advance(end + 2);
            Decoded::Moved(if size == 0 {
                Chunk::Trailers
            } else {
                Chunk::Data(size)
            })
        }
        Chunk::Data(n) => {
            let take = (n as usize).min(buf.len());
            if take == 0 {
                return Ok(None);
            }
            let data = buf.split_to(take).freeze();
            let left = n - take as u64;
            Decoded::Data(
                if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                },
                data,
            )
        }
        Chunk::DataEnd => {
            if buf.len() < 2 {
                return Ok(None);
            }
            if &buf[..2] != b"\r\n" {
                return Err("chunk data not followed by CRLF".into());
            }
            buf.advance(2);
            Decoded::Moved(Chunk::Size)
        }
        Chunk::Trailers => {
            // Trailer fields are dropped (as most proxies do); the empty line ends them.
            let Some(end) = line(buf)? else {
                return Ok(None);
            };
            buf.advance(end + 2);
            if end == 0 {
                Decoded::End
            } else {
                Decoded::Moved(Chunk::Trailers)
            }
        }
    }))
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// Appends one `name: value` line to a head.
pub(crate) fn put_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends a chunk of a chunked request body.
pub(crate) fn put_chunk(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// A seeded xorshift generator, for the tests that mangle messages.
#[cfg(test)]
pub(crate) fn rng(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let body = b"4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        for split in 0..body.len() {
            let mut buf = BytesMut::from(&body[..split]);
            let mut state = Chunk::Size;
            let mut out = Vec::new();
            let mut fed = split;
            let mut ended = false;
            for _ in 0..1000 {
                match decode_chunk(&mut buf, state).unwrap() {
                    Some(Decoded::Data(next, d)) => {
                        out.extend_from_slice(&d);
                        state = next;
                    }
                    Some(Decoded::Moved(next)) => state = next,
                    Some(Decoded::End) => {
                        ended = true;
                        break;
                    }
                    None => {
                        assert!(fed < body.len(), "stuck at {state:?} with everything fed");
                        buf.extend_from_slice(&body[fed..]);
                        fed = body.len();
                    }
                }
            }
            assert!(ended, "split {split}");
            buf.extend_from_slice(&body[fed..]);
            assert_eq!(out, b"Wikipedia in \r\n\r\nchunks.", "split {split}");
            assert_eq!(
                &buf[..],
                b"NEXT",
                "split {split}: what follows the body stays"
            );
        }
    }

    #[test]
    fn bad_chunks_are_errors() {
        for bad in ["zz\r\n", "\r\n", "4\r\nWikiXX", "1234567890abcdef0\r\n"] {
            let mut buf = BytesMut::from(bad);
            let mut state = Chunk::Size;
            let mut failed = false;
            for _ in 0..10 {
                match decode_chunk(&mut buf, state) {
                    Ok(Some(Decoded::Data(next, _) | Decoded::Moved(next))) => state = next,
                    Ok(_) => break,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            assert!(failed, "{bad:?}");
        }
    }
}
