//! HTTP/1.1 from clients, written for this proxy (as upstream.rs is for targets).
//!
//! A request head is parsed in place with httparse: the fields stay in the bytes that
//! arrived and are only pointed at, so the head the target gets is copied from the
//! client's with the proxy's changes, and nothing is built that is not sent. The
//! request body is read from the connection as the target takes it. What hyper's
//! server did here (keep-alive, pipelining, chunked bodies, 100-continue, upgrades)
//! is kept; what it could not do cheaply (no map of headers, one write per response)
//! is why this exists.

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::watch::Watched;
use crate::wire::{Chunk, Decoded, Span, decode_chunk, has_token};

/// A request head may be this long (room for ALB's 64 KiB of headers and the request
/// line); the exact limits are checked per request in forward.rs.
pub const MAX_HEAD: usize = 96 * 1024;
/// More header fields than this is a 431.
const MAX_FIELDS: usize = 128;
/// Room made in the read buffer before each read.
const READ_SIZE: usize = 8 * 1024;

/// A request head, its fields pointing into the bytes it arrived as.
#[derive(Debug)]
pub struct RequestHead {
    raw: Bytes,
    pub method: Method,
    /// The request-target as sent.
    target: Span,
    /// The target in origin form (path and query); `None` is `/`.
    origin: Option<Span>,
    /// Where the query starts within `origin` (at the `?`).
    query_at: Option<usize>,
    /// The authority of an absolute-form target.
    authority: Option<Span>,
    pub http10: bool,
    fields: Vec<(Span, Span)>,
    pub content_length: Option<u64>,
    pub chunked: bool,
    /// The client keeps the connection open after this exchange.
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// A protocol upgrade (WebSocket) is asked for.
    pub upgrade: bool,
}

/// Why a request head could not be read: the load balancer's answer.
#[derive(Debug)]
pub struct HeadError {
    pub status: StatusCode,
    pub reason: &'static str,
}

fn bad(status: u16, reason: &'static str) -> HeadError {
    HeadError {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        reason,
    }
}

impl RequestHead {
    fn bytes(&self, s: Span) -> &[u8] {
        s.in_(&self.raw)
    }

    /// A span known to be UTF-8 (checked when parsed).
    fn text(&self, s: Span) -> &str {
        std::str::from_utf8(self.bytes(s)).unwrap_or_default()
    }

    /// The request-target as sent.
    pub fn target(&self) -> &str {
        self.text(self.target)
    }

    /// Path and query, in origin form.
    pub fn path_and_query(&self) -> &str {
        self.origin.map_or("/", |s| self.text(s))
    }

    pub fn path(&self) -> &str {
        let pq = self.path_and_query();
        self.query_at.map_or(pq, |i| &pq[..i])
    }

    pub fn query(&self) -> Option<&str> {
        let pq = self.path_and_query();
        self.query_at.map(|i| &pq[i + 1..])
    }

    /// The authority of an absolute-form target (`http://host:port/...`).
    pub fn authority(&self) -> Option<&str> {
        self.authority.map(|s| self.text(s))
    }

    pub fn version(&self) -> &'static str {
        if self.http10 { "HTTP/1.0" } else { "HTTP/1.1" }
    }

    /// Every field, name and value, in the order received.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields
            .iter()
            .map(|(n, v)| (self.bytes(*n), self.bytes(*v)))
    }

    /// The values of the fields named `name` (case-insensitive).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| self.bytes(*n).eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| self.bytes(*v))
    }

    /// The first value of field `name` that is text.
    pub fn value<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.values(name).find_map(|v| std::str::from_utf8(v).ok())
    }

    pub fn has(&self, name: &str) -> bool {
        self.values(name).next().is_some()
    }

    /// The Host field, or the authority of an absolute-form target.
    pub fn host(&self) -> Option<&str> {
        self.value("host").or_else(|| self.authority())
    }

    /// Whether the request has a body to read.
    pub fn has_body(&self) -> bool {
        self.chunked || self.content_length.is_some_and(|n| n > 0)
    }

    /// The body's framing, to read it with [`ClientIo::body`].
    pub fn body_state(&self) -> BodyState {
        if self.chunked {
            BodyState::Chunked(Chunk::Size)
        } else {
            BodyState::Length(self.content_length.unwrap_or(0))
        }
    }

    /// The fields' total size as ALB counts it, and the longest value.
    pub fn sizes(&self) -> (usize, usize) {
        self.fields.iter().fold((0, 0), |(total, longest), (n, v)| {
            (total + n.len() + v.len() + 4, longest.max(v.len()))
        })
    }
}

/// `parse_request` with the head's bytes copied into it, as a connection would split
/// them off (for `fuzzing.rs`).
pub(crate) fn parse_request_copied(
    buf: &BytesMut,
) -> Result<Option<(usize, RequestHead)>, HeadError> {
    parse_request(buf).map(|o| {
        o.map(|(n, mut h)| {
            h.raw = Bytes::copy_from_slice(&buf[..n]);
            (n, h)
        })
    })
}

/// Whether the request line ends in a well-formed HTTP version (then one not spoken
/// here is a 505; anything else is a 400).
fn names_a_version(buf: &[u8]) -> bool {
    let line = buf
        .split(|b| *b == b'\n')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let version = line.rsplit(|b| *b == b' ').next().unwrap_or_default();
    matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && minor.is_ascii_digit())
        || version == b"HTTP/2"
}

/// Parses a request head at the start of `buf`: its length and the head, or `None`
/// while it is incomplete.
pub fn parse_request(buf: &BytesMut) -> Result<Option<(usize, RequestHead)>, HeadError> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut req = httparse::Request::new(&mut storage);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(bad(431, "TooManyHeaders")),
        Err(httparse::Error::Version) if names_a_version(buf) => {
            return Err(bad(505, "HTTPVersionNotSupported"));
        }
        Err(_) => return Err(bad(400, "MalformedRequest")),
    };
    let method = req
        .method
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .ok_or(bad(400, "MalformedRequest"))?;
    if method == Method::CONNECT {
        return Err(bad(405, "MethodNotAllowed"));
    }
    let target_text = req.path.unwrap_or_default();
    let target = Span::of(buf, target_text.as_bytes());
    let origin_form =
        target_text.starts_with('/') || (target_text == "*" && method == Method::OPTIONS);
    let (origin, authority) = if origin_form {
        (Some(target), None)
    } else {
        let scheme = ["http://", "https://"].into_iter().find(|s| {
            target_text
                .get(..s.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(s))
        });
        let Some(scheme) = scheme else {
            return Err(bad(400, "MalformedRequestTarget"));
        };
        let rest = &target_text[scheme.len()..];
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        if end == 0 || rest[end..].starts_with('?') {
            return Err(bad(400, "MalformedRequestTarget"));
        }
        let authority = target.sub(scheme.len(), scheme.len() + end);
        let origin = (end < rest.len()).then(|| target.sub(scheme.len() + end, target_text.len()));
        (origin, Some(authority))
    };
    let query_at = origin.and_then(|o| std::str::from_utf8(o.in_(buf)).ok()?.find('?'));
    let http10 = req.version == Some(0);
    let mut head = RequestHead {
        raw: Bytes::new(),
        method,
        target,
        origin,
        query_at,
        authority,
        http10,
        fields: Vec::with_capacity(req.headers.len()),
        content_length: None,
        chunked: false,
        keep_alive: !http10,
        expect_continue: false,
        upgrade: false,
    };
    let mut upgrade_field = false;
    let mut connection_upgrade = false;
    let mut transfer_encoding = false;
    for f in req.headers.iter() {
        let name = f.name.as_bytes();
        let value = f.value;
        head.fields
            .push((Span::of(buf, name), Span::of(buf, value)));
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(bad(400, "InvalidContentLength"))?;
            if head.content_length.is_some_and(|l| l != n) {
                return Err(bad(400, "InvalidContentLength"));
            }
            head.content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
            let last = value
                .rsplit(|b| *b == b',')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            head.chunked = last.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            if has_token(value, "close") {
                head.keep_alive = false;
            } else if http10 && has_token(value, "keep-alive") {
                head.keep_alive = true;
            }
            connection_upgrade |= has_token(value, "upgrade");
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade_field = true;
        } else if name.eq_ignore_ascii_case(b"expect") {
            head.expect_continue = !http10 && has_token(value, "100-continue");
        }
    }
    if transfer_encoding && (!head.chunked || head.content_length.is_some() || http10) {
        // A body whose length cannot be known, or two framings at once (the stuff of
        // request smuggling): refused, as RFC 9112 section 6.3 asks.
        return Err(bad(400, "InvalidTransferEncoding"));
    }
    if std::str::from_utf8(target_text.as_bytes()).is_err() {
        return Err(bad(400, "MalformedRequestTarget"));
    }
    head.upgrade = upgrade_field && connection_upgrade && !http10;
    Ok(Some((len, head)))
}

/// Where the reading of a request body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyState {
    /// This many bytes left.
    Length(u64),
    Chunked(Chunk),
    /// Read whole.
    Done,
}

/// A client connection: the socket, what was read and not yet used, and a buffer for
/// what is written.
#[derive(Debug)]
pub struct ClientIo {
    pub io: Watched<TcpStream>,
    rbuf: BytesMut,
    pub wbuf: Vec<u8>,
    /// A 100 Continue is owed before the body is read.
    continue_owed: bool,
}

impl ClientIo {
    pub fn new(io: Watched<TcpStream>) -> ClientIo {
        ClientIo {
            io,
            rbuf: BytesMut::with_capacity(READ_SIZE),
            wbuf: Vec::with_capacity(4096),
            continue_owed: false,
        }
    }

    /// The next request head; `None` when the client closed between requests.
    pub async fn read_head(&mut self) -> Result<Option<RequestHead>, HeadError> {
        loop {
            if !self.rbuf.is_empty() {
                if let Some((len, mut head)) = parse_request(&self.rbuf)? {
                    let raw = self.rbuf.split_to(len).freeze();
                    // A head is a view of the read buffer, which it keeps alive; an
                    // upgrade's head lives as long as its tunnel, so it takes a copy of
                    // its own and the buffer can go (tunnel.rs).
                    head.raw = if head.upgrade {
                        Bytes::copy_from_slice(&raw)
                    } else {
                        raw
                    };
                    self.continue_owed = head.expect_continue;
                    return Ok(Some(head));
                }
                if self.rbuf.len() >= MAX_HEAD {
                    return Err(bad(431, "RequestHeaderTooLarge"));
                }
            }
            self.rbuf.reserve(READ_SIZE);
            match self.io.read_buf(&mut self.rbuf).await {
                Ok(0) if self.rbuf.is_empty() => return Ok(None),
                Ok(0) => return Err(bad(400, "IncompleteRequest")),
                Ok(_) => {}
                // Reset or the like: nobody to answer.
                Err(_) => return Ok(None),
            }
        }
    }

    /// The next piece of the request body; `None` at its end.
    pub async fn body(&mut self, state: &mut BodyState) -> Result<Option<Bytes>, String> {
        if self.continue_owed {
            self.continue_owed = false;
            if self.rbuf.is_empty() {
                self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        loop {
            match *state {
                BodyState::Done | BodyState::Length(0) => {
                    *state = BodyState::Done;
                    return Ok(None);
                }
                BodyState::Length(n) if !self.rbuf.is_empty() => {
                    let take = (n as usize).min(self.rbuf.len());
                    *state = BodyState::Length(n - take as u64);
                    return Ok(Some(self.rbuf.split_to(take).freeze()));
                }
                BodyState::Chunked(chunk) if !self.rbuf.is_empty() => {
                    match decode_chunk(&mut self.rbuf, chunk)? {
                        Some(Decoded::Data(next, data)) => {
                            *state = BodyState::Chunked(next);
                            return Ok(Some(data));
                        }
                        Some(Decoded::Moved(next)) => {
                            *state = BodyState::Chunked(next);
                            continue;
                        }
                        Some(Decoded::End) => {
                            *state = BodyState::Done;
                            return Ok(None);
                        }
                        None => {}
                    }
                }
                _ => {}
            }
            self.rbuf.reserve(READ_SIZE);
            match self.io.read_buf(&mut self.rbuf).await {
                Ok(0) => return Err("client closed mid-body".into()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.write_all(bytes).await
    }

    /// Writes what was gathered in `wbuf`, and empties it.
    pub async fn flush_wbuf(&mut self) -> std::io::Result<()> {
        let result = self.io.write_all(&self.wbuf).await;
        self.wbuf.clear();
        result
    }

    /// What the client sent past its last request (where a tunnel starts after a 101).
    pub fn take_read(&mut self) -> Bytes {
        self.rbuf.split().freeze()
    }

    /// Gives the read and write buffers' memory back, for a connection that has become a
    /// tunnel and will read no more requests.
    pub fn release_buffers(&mut self) {
        self.rbuf = BytesMut::new();
        self.wbuf = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Option<(usize, RequestHead)>, HeadError> {
        let buf = BytesMut::from(raw);
        parse_request(&buf).map(|o| {
            o.map(|(n, mut h)| {
                h.raw = Bytes::copy_from_slice(&buf[..n]);
                (n, h)
            })
        })
    }

    fn head(raw: &str) -> RequestHead {
        parse(raw).unwrap().unwrap().1
    }

    fn status(raw: &str) -> u16 {
        parse(raw).unwrap_err().status.as_u16()
    }

    #[test]
    fn targets_in_every_form() {
        let h =
            head("GET /a/b?x=1&y HTTP/1.1\r\nHost: example.com:8080\r\nX-A: 1\r\nx-a: 2\r\n\r\n");
        assert_eq!((h.path(), h.query()), ("/a/b", Some("x=1&y")));
        assert_eq!(h.host(), Some("example.com:8080"));
        assert_eq!(h.values("X-a").collect::<Vec<_>>(), [b"1", b"2"]);
        assert!(h.keep_alive && !h.http10 && !h.has_body());

        let abs = head("GET http://evil.example:9/p?q HTTP/1.1\r\n\r\n");
        assert_eq!((abs.path_and_query(), abs.path()), ("/p?q", "/p"));
        assert_eq!(
            (abs.authority(), abs.host()),
            (Some("evil.example:9"), Some("evil.example:9"))
        );
        let bare = head("GET HTTP://h HTTP/1.1\r\nhost: other\r\n\r\n");
        assert_eq!((bare.path_and_query(), bare.host()), ("/", Some("other")));
        assert_eq!(head("OPTIONS * HTTP/1.1\r\nhost: h\r\n\r\n").path(), "*");
        for target in [
            "GET * HTTP/1.1",
            "GET ftp://h/ HTTP/1.1",
            "GET http:///x HTTP/1.1",
            "GET x HTTP/1.1",
        ] {
            assert_eq!(status(&format!("{target}\r\n\r\n")), 400, "{target}");
        }
        assert_eq!(status("CONNECT h:443 HTTP/1.1\r\n\r\n"), 405);
    }

    #[test]
    fn framing_and_connection_follow_rfc_9112() {
        let h = head("POST / HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
        assert_eq!(
            (h.content_length, h.has_body(), h.expect_continue),
            (Some(5), true, true)
        );
        assert_eq!(h.body_state(), BodyState::Length(5));
        let c = head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert!(c.chunked && c.has_body());
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(
            head("GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n")
                .upgrade
        );
        assert!(!head("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n").upgrade);
        for smuggling in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(status(smuggling), 400, "{smuggling}");
        }
    }

    #[test]
    fn mangled_heads_never_panic() {
        // Every prefix, and 20,000 random mutations, of a request that uses every form.
        let valid = b"POST http://h:1/p/a?q=1&r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, Upgrade, x-y\r\nUpgrade: websocket\r\nExpect: 100-continue\r\nCookie: a=b; BELLOWSLB=i-1\r\n\r\n";
        let mut next = crate::wire::rng(0x9E37_79B9_7F4A_7C15);
        let check = |bytes: &[u8]| {
            let buf = BytesMut::from(bytes);
            if let Ok(Some((n, mut h))) = parse_request(&buf) {
                h.raw = Bytes::copy_from_slice(&buf[..n]);
                let _ = (
                    h.path(),
                    h.query(),
                    h.host(),
                    h.target(),
                    h.sizes(),
                    h.body_state(),
                );
                let _ = h.values("cookie").count() + h.fields().count();
            }
        };
        for end in 0..valid.len() {
            check(&valid[..end]);
        }
        for _ in 0..20_000 {
            let mut bytes = valid.to_vec();
            for _ in 0..1 + next() % 4 {
                let at = (next() % bytes.len() as u64) as usize;
                match next() % 3 {
                    0 => bytes[at] = next() as u8,
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, b"\r\n :?/*,;\x00\xff"[(next() % 11) as usize]),
                }
            }
            check(&bytes);
        }
    }

    #[test]
    fn partial_heads_wait_and_garbage_is_refused() {
        assert!(parse("GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
        assert_eq!(status("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"), 400);
        assert_eq!(status("THIS IS NOT HTTP\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(status("\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03"), 400);
        let many: String = (0..200).map(|i| format!("x-{i}: y\r\n")).collect();
        assert_eq!(status(&format!("GET / HTTP/1.1\r\n{many}\r\n")), 431);
    }
}
