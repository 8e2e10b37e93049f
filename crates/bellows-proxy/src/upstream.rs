//! HTTP/1.1 to targets, written for this proxy.
//!
//! hyper's client runs every connection as a task of its own and passes each request
//! and response to it over channels. Here the request's own task writes the request
//! head (serialised once, straight from the client's, with the proxy's changes), reads
//! the response head with httparse, and the response body is read from the connection
//! as the client takes it. A small response that arrived whole with its head is
//! answered from memory, and its connection goes back to the pool at once.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wire::{Chunk, Decoded, Span, decode_chunk, has_token};

/// A response head longer than this, or with more fields, is malformed (502).
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
const MAX_RESPONSE_FIELDS: usize = 128;
/// Room made in the read buffer before each read.
const READ_SIZE: usize = 16 * 1024;

/// One keep-alive connection to a target.
#[derive(Debug)]
pub struct Upstream {
    io: TcpStream,
    /// Bytes read and not yet consumed.
    buf: BytesMut,
}

/// How a response body is delimited (RFC 9112, section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes remain.
    Length(u64),
    Chunked(Chunk),
    /// Until the target closes the connection, which then cannot be reused.
    UntilClose,
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum ExchangeError {
    /// Not a byte of a response arrived: refused, reset or closed first. Whether the
    /// request may be sent again is the caller's to decide.
    NoResponse(String),
    /// Something arrived, but not a valid response.
    Malformed(String),
}

/// A response's head, its fields pointing into the bytes it arrived as.
#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    raw: Bytes,
    reason: Span,
    fields: Vec<(Span, Span)>,
    pub framing: Framing,
    /// The target closes the connection after this response.
    pub close: bool,
}

impl Head {
    /// The reason phrase of the status line.
    pub fn reason(&self) -> &[u8] {
        self.reason.in_(&self.raw)
    }

    /// Every field, name and value, in the order received.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields
            .iter()
            .map(|(n, v)| (n.in_(&self.raw), v.in_(&self.raw)))
    }
}

impl Upstream {
    pub async fn connect(addr: std::net::SocketAddr) -> std::io::Result<Upstream> {
        let io = TcpStream::connect(addr).await?;
        io.set_nodelay(true)?;
        Ok(Upstream {
            io,
            buf: BytesMut::with_capacity(READ_SIZE),
        })
    }

    /// Whether an idle connection may still carry a request: the target has not
    /// closed it or sent anything unasked. Costs a system call only when the socket
    /// has become readable while idle, which a live keep-alive connection never does.
    pub fn is_reusable(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        if self.io.poll_read_ready(&mut cx).is_pending() {
            return true;
        }
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Sends a whole request head (and any body already in it).
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), ExchangeError> {
        self.io
            .write_all(bytes)
            .await
            .map_err(|e| ExchangeError::NoResponse(e.to_string()))
    }

    /// The socket and the bytes read past the response head: what a tunnel starts
    /// from after a 101 answer.
    pub fn into_parts(self) -> (TcpStream, Bytes) {
        (self.io, self.buf.freeze())
    }

    /// Reads the response head, passing over interim (1xx) responses; with `upgrade`,
    /// a 101 is the answer.
    pub async fn read_head(
        &mut self,
        method: &Method,
        upgrade: bool,
    ) -> Result<Head, ExchangeError> {
        let mut received = false;
        loop {
            if !self.buf.is_empty() {
                received = true;
                if let Some((len, mut head)) = parse_head(&self.buf, method, upgrade)? {
                    head.raw = self.buf.split_to(len).freeze();
                    if head.status.is_informational()
                        && head.status != StatusCode::SWITCHING_PROTOCOLS
                    {
                        continue;
                    }
                    return Ok(head);
                }
                if self.buf.len() > MAX_RESPONSE_HEAD {
                    return Err(ExchangeError::Malformed("response head too long".into()));
                }
            }
            self.buf.reserve(READ_SIZE);
            let failed = |why: String| match received {
                true => ExchangeError::Malformed(why),
                false => ExchangeError::NoResponse(why),
            };
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) => return Err(failed("connection closed before a response".into())),
                Ok(_) => {}
                Err(e) => return Err(failed(e.to_string())),
            }
        }
    }

    /// The whole body if it is already here: a fixed-length body read with its head.
    pub fn take_whole(&mut self, framing: &mut Framing) -> Option<Bytes> {
        match *framing {
            Framing::Length(n) if self.buf.len() as u64 >= n => {
                *framing = Framing::Length(0);
                Some(self.buf.split_to(n as usize).freeze())
            }
            _ => None,
        }
    }

    /// The next piece of the body: `None` at its end (the connection is then ready
    /// for the next request unless the framing was `UntilClose`).
    pub fn poll_body(
        &mut self,
        framing: &mut Framing,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, String>>> {
        loop {
            match *framing {
                Framing::Length(0) => return Poll::Ready(None),
                Framing::Length(n) if !self.buf.is_empty() => {
                    let take = (n as usize).min(self.buf.len());
                    *framing = Framing::Length(n - take as u64);
                    return Poll::Ready(Some(Ok(self.buf.split_to(take).freeze())));
                }
                Framing::UntilClose if !self.buf.is_empty() => {
                    return Poll::Ready(Some(Ok(self.buf.split().freeze())));
                }
                Framing::Chunked(state) if !self.buf.is_empty() => {
                    match decode_chunk(&mut self.buf, state) {
                        Err(e) => return Poll::Ready(Some(Err(e))),
                        Ok(Some(Decoded::Data(next, data))) => {
                            *framing = Framing::Chunked(next);
                            return Poll::Ready(Some(Ok(data)));
                        }
                        Ok(Some(Decoded::Moved(next))) => {
                            *framing = Framing::Chunked(next);
                            continue;
                        }
                        Ok(Some(Decoded::End)) => {
                            *framing = Framing::Length(0);
                            return Poll::Ready(None);
                        }
                        // Not enough bytes to go on: read more below.
                        Ok(None) => {}
                    }
                }
                _ => {}
            }
            self.buf.reserve(READ_SIZE);
            let read = pin!(self.io.read_buf(&mut self.buf)).poll(cx);
            match read {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) if *framing == Framing::UntilClose => {
                    *framing = Framing::Length(0);
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Some(Err("target closed the connection mid-body".into())));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.to_string()))),
            }
        }
    }
}

/// Parses a response head at the start of `buf`: its length and the head, or `None`
/// while it is incomplete.
fn parse_head(
    buf: &[u8],
    method: &Method,
    upgrade: bool,
) -> Result<Option<(usize, Head)>, ExchangeError> {
    let malformed = |why: String| ExchangeError::Malformed(why);
    let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_FIELDS];
    let mut resp = httparse::Response::new(&mut fields);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(malformed(format!("invalid response head: {e}"))),
    };
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .filter(|s| upgrade || *s != StatusCode::SWITCHING_PROTOCOLS)
        .ok_or_else(|| malformed("invalid status".into()))?;
    let http10 = resp.version == Some(0);
    let reason = Span::of(buf, resp.reason.unwrap_or_default().as_bytes());
    let mut fields = Vec::with_capacity(resp.headers.len());
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut other_coding = false;
    let mut close = http10;
    for field in resp.headers.iter() {
        let name = field.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(field.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| malformed("invalid content-length".into()))?;
            if length.is_some_and(|l| l != n) {
                return Err(malformed("conflicting content-length".into()));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Only the last coding frames the body.
            let last = field
                .value
                .rsplit(|b| *b == b',')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            chunked = last.eq_ignore_ascii_case(b"chunked");
            other_coding = !chunked;
        } else if name.eq_ignore_ascii_case(b"connection") {
            if has_token(field.value, "close") {
                close = true;
            } else if http10 && has_token(field.value, "keep-alive") {
                close = false;
            }
        }
        fields.push((Span::of(buf, name), Span::of(buf, field.value)));
    }
    let no_body = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if no_body {
        Framing::Length(0)
    } else if chunked {
        // Transfer-Encoding overrides Content-Length, which must not be passed on.
        drop_length(buf, &mut fields);
        Framing::Chunked(Chunk::Size)
    } else if other_coding {
        drop_length(buf, &mut fields);
        close = true;
        Framing::UntilClose
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        close = true;
        Framing::UntilClose
    };
    Ok(Some((
        len,
        Head {
            status,
            raw: Bytes::new(),
            reason,
            fields,
            framing,
            close,
        },
    )))
}

/// Parses a response head as a connection would and reads all of it (for `fuzzing.rs`).
pub(crate) fn fuzz_response_head(data: &[u8], method: &Method, upgrade: bool) {
    let Ok(Some((len, mut head))) = parse_head(data, method, upgrade) else {
        return;
    };
    assert!(len > 0 && len <= data.len());
    head.raw = Bytes::copy_from_slice(&data[..len]);
    let _ = head.reason();
    for (name, value) in head.fields() {
        assert!(name.len() + value.len() <= len);
        assert!(
            !(matches!(head.framing, Framing::Chunked(_) | Framing::UntilClose)
                && head.status != StatusCode::SWITCHING_PROTOCOLS
                && *method != Method::HEAD
                && name.eq_ignore_ascii_case(b"content-length")),
            "a coded body keeps no Content-Length to pass on"
        );
    }
}

/// Removes every Content-Length field (a coded body's length is not the one sent on).
fn drop_length(buf: &[u8], fields: &mut Vec<(Span, Span)>) {
    fields.retain(|(n, _)| !n.in_(buf).eq_ignore_ascii_case(b"content-length"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str, method: Method) -> Result<Option<(usize, Head)>, ExchangeError> {
        parse_head(raw.as_bytes(), &method, false).map(|o| {
            o.map(|(n, mut h)| {
                h.raw = Bytes::copy_from_slice(&raw.as_bytes()[..n]);
                (n, h)
            })
        })
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let h = |raw: &str| head(raw, Method::GET).unwrap().unwrap().1;
        assert_eq!(
            h("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc").framing,
            Framing::Length(3)
        );
        let chunked =
            h("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: gzip, chunked\r\n\r\n");
        assert_eq!(chunked.framing, Framing::Chunked(Chunk::Size));
        assert!(
            !chunked
                .fields()
                .any(|(n, _)| n.eq_ignore_ascii_case(b"content-length"))
        );
        let until_close = h("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(until_close.framing, Framing::UntilClose);
        assert!(until_close.close);
        assert_eq!(
            h("HTTP/1.1 204 No Content\r\n\r\n").framing,
            Framing::Length(0)
        );
        assert_eq!(
            h("HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n").framing,
            Framing::Length(0)
        );
        let to_head = head("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", Method::HEAD)
            .unwrap()
            .unwrap()
            .1;
        assert_eq!(to_head.framing, Framing::Length(0));
        assert!(h("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n").close);
        assert!(!h("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\n").close);
        assert!(h("HTTP/1.1 200 OK\r\nConnection: Close\r\ncontent-length: 1\r\n\r\n").close);
    }

    #[test]
    fn bad_heads_are_malformed_and_partial_ones_wait() {
        assert!(
            head("HTTP/1.1 200 OK\r\ncontent-le", Method::GET)
                .unwrap()
                .is_none()
        );
        for bad in [
            "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "SMTP ready\r\n\r\n",
        ] {
            assert!(
                matches!(head(bad, Method::GET), Err(ExchangeError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn mangled_responses_never_panic() {
        let valid = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nWiki\r\n0\r\nt: 1\r\n\r\n";
        let mut next = crate::wire::rng(0x2545_F491_4F6C_DD1D);
        for round in 0..20_000 {
            let mut bytes = valid.to_vec();
            for _ in 0..1 + next() % 4 {
                let at = (next() % bytes.len() as u64) as usize;
                if next().is_multiple_of(2) {
                    bytes[at] = next() as u8;
                } else {
                    bytes.remove(at);
                }
            }
            let method = if round % 5 == 0 {
                Method::HEAD
            } else {
                Method::GET
            };
            if let Ok(Some((n, mut h))) = parse_head(&bytes, &method, round % 7 == 0) {
                h.raw = Bytes::copy_from_slice(&bytes[..n]);
                let _ = (h.reason(), h.fields().count());
                let mut buf = BytesMut::from(&bytes[n..]);
                let mut state = Chunk::Size;
                for _ in 0..64 {
                    match decode_chunk(&mut buf, state) {
                        Ok(Some(Decoded::Data(s, _) | Decoded::Moved(s))) => state = s,
                        _ => break,
                    }
                }
            }
        }
    }
}
