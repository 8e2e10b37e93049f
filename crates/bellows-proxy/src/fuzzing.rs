//! Entry points for the fuzz targets in `fuzz/`: the parsers that read what clients and
//! targets send, each over arbitrary bytes, with the invariants every answer must keep.
//! Not an API: hidden from the docs, and its functions panic when an invariant breaks.

use bytes::{Buf, BytesMut};
use http::Method;

use crate::http1::parse_request_copied;
use crate::upstream::fuzz_response_head;
use crate::wire::{Chunk, Decoded, decode_chunk};

/// Request heads, one after another as on a keep-alive connection, until the bytes
/// run out or one is refused; every accessor of a parsed head is read.
pub fn request_heads(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    for _ in 0..64 {
        let Ok(Some((len, head))) = parse_request_copied(&buf) else {
            return;
        };
        assert!(
            len > 0 && len <= buf.len(),
            "a head of {len} bytes in {}",
            buf.len()
        );
        let _ = (
            head.target(),
            head.path(),
            head.query(),
            head.path_and_query(),
        );
        let _ = (head.authority(), head.host(), head.version(), head.sizes());
        let _ = (head.value("host"), head.has("expect"), head.has_body());
        let _ = head.body_state();
        for (name, value) in head.fields() {
            assert!(name.len() + value.len() <= len);
        }
        buf.advance(len);
    }
}

/// A chunked body decoded step by step: never more data out than bytes in, and every
/// step either consumes bytes, ends the body, or asks for more.
pub fn chunked_body(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let mut state = Chunk::Size;
    let mut out = 0usize;
    for _ in 0..data.len() + 2 {
        let before = buf.len();
        match decode_chunk(&mut buf, state) {
            Ok(Some(Decoded::Data(next, bytes))) => {
                out += bytes.len();
                state = next;
            }
            Ok(Some(Decoded::Moved(next))) => state = next,
            Ok(Some(Decoded::End)) | Ok(None) | Err(_) => break,
        }
        assert!(buf.len() < before, "a step consumed nothing");
    }
    assert!(out <= data.len());
}

/// A target's response head, for a GET and a HEAD, with and without an upgrade asked.
pub fn response_head(data: &[u8]) {
    for method in [Method::GET, Method::HEAD] {
        for upgrade in [false, true] {
            fuzz_response_head(data, &method, upgrade);
        }
    }
}
