//! A lean HTTP/1.1 client for load: one request at a time on a connection, the request
//! serialised once, the response head parsed with `httparse` and its body skipped.
//!
//! It is not a general client: no TLS, no redirects, no pipelining. What it needs to be
//! is cheap per request, so that the generator is not the bottleneck it measures.

use std::net::SocketAddr;

use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;

/// Where the load goes: `http://host[:port]/path?query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    pub fn parse(raw: &str) -> Result<Url, Error> {
        let bad = |why: &str| Error::Usage(format!("URL `{raw}`: {why}"));
        let rest = if let Some(r) = raw.strip_prefix("http://") {
            r
        } else if raw.starts_with("https://") {
            return Err(bad("https is not supported; load a plain http:// URL"));
        } else {
            return Err(bad("expected http://HOST[:PORT]/PATH"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("expected a host"));
        }
        let (host, port) = if let Some(h) = authority.strip_prefix('[') {
            // [::1]:8080
            let (h, p) = h.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            (h.to_owned(), p.strip_prefix(':').unwrap_or(""))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p),
                None => (authority.to_owned(), ""),
            }
        };
        let port = if port.is_empty() {
            80
        } else {
            port.parse().map_err(|_| bad("the port is not a number"))?
        };
        if host.is_empty() || path.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(bad("expected a host and a path without spaces"));
        }
        Ok(Url { host, port, path })
    }

    /// The Host header's value.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else if self.port == 80 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub async fn resolve(&self) -> Result<SocketAddr, Error> {
        tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| Error::Usage(format!("cannot resolve `{}`", self.host)))
    }
}

/// A request serialised once and written as it is for every send.
#[derive(Debug, Clone)]
pub struct Template {
    pub bytes: Bytes,
    pub head_only: bool,
}

impl Template {
    pub fn new(
        url: &Url,
        method: &str,
        headers: &[(String, String)],
        body: &[u8],
        keep_alive: bool,
    ) -> Result<Template, Error> {
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Error::Usage(format!(
                "`{method}` is not an HTTP method (GET, POST, ...)"
            )));
        }
        let mut head = format!("{method} {} HTTP/1.1\r\n", url.path);
        let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if !has("host") {
            head += &format!("Host: {}\r\n", url.authority());
        }
        if !has("user-agent") {
            head += "User-Agent: bellows-load\r\n";
        }
        for (k, v) in headers {
            if k.is_empty()
                || k.bytes().any(|b| !b.is_ascii_graphic() || b == b':')
                || v.bytes().any(|b| b == b'\r' || b == b'\n')
            {
                return Err(Error::Usage(format!("bad header `{k}: {v}`")));
            }
            // As with curl, a header given with no value is not sent, and neither is
            // the default of that name (`User-Agent:`).
            if !v.is_empty() {
                head += &format!("{k}: {v}\r\n");
            }
        }
        if !body.is_empty() || !matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS") {
            head += &format!("Content-Length: {}\r\n", body.len());
        }
        if !keep_alive && !has("connection") {
            head += "Connection: close\r\n";
        }
        head += "\r\n";
        let mut bytes = BytesMut::from(head.as_bytes());
        bytes.extend_from_slice(body);
        Ok(Template {
            bytes: bytes.freeze(),
            head_only: method == "HEAD",
        })
    }
}

/// What went wrong with one request, in the words the summary counts it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    ConnectRefused,
    ConnectTimeout,
    ConnectOther,
    /// The connection was reset or closed before a whole response came back.
    Reset,
    Timeout,
    BadResponse,
}

impl Failure {
    pub fn label(self) -> &'static str {
        match self {
            Failure::ConnectRefused => "connection refused",
            Failure::ConnectTimeout => "connect timeout",
            Failure::ConnectOther => "connect error",
            Failure::Reset => "connection reset or closed",
            Failure::Timeout => "timeout",
            Failure::BadResponse => "bad response",
        }
    }

    pub(crate) fn of_connect(e: &std::io::Error) -> Failure {
        match e.kind() {
            std::io::ErrorKind::ConnectionRefused => Failure::ConnectRefused,
            std::io::ErrorKind::TimedOut => Failure::ConnectTimeout,
            _ => Failure::ConnectOther,
        }
    }
}

/// A response as the generator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The server will close the connection: do not reuse it.
    pub close: bool,
    /// `name=value` of each Set-Cookie, when asked for.
    pub cookies: Vec<String>,
}

/// Reads one response out of the bytes a connection delivers, however they are cut,
/// without doing any I/O itself: the tokio [`Conn`] and the closed loop's event loop
/// both feed it. Bodies are skipped as they arrive, not kept (except a chunked body,
/// kept until its end is in).
#[derive(Debug)]
pub struct ResponseReader {
    head_only: bool,
    want_cookies: bool,
    state: ReadState,
}

#[derive(Debug)]
enum ReadState {
    Head,
    Body {
        status: u16,
        close: bool,
        cookies: Vec<String>,
        body: BodyLen,
    },
}

#[derive(Debug, Clone, Copy)]
enum BodyLen {
    /// This many bytes are still to come.
    Fixed(usize),
    Chunked,
    UntilClose,
}

impl ResponseReader {
    pub fn new(head_only: bool, want_cookies: bool) -> ResponseReader {
        ResponseReader {
            head_only,
            want_cookies,
            state: ReadState::Head,
        }
    }

    /// Takes what it can from `buf` (the bytes read so far and not yet taken); the
    /// response once it is whole. Reading starts over for the next response then.
    pub fn feed(&mut self, buf: &mut BytesMut) -> Result<Option<Response>, Failure> {
        loop {
            match &mut self.state {
                ReadState::Head => match self.head(buf)? {
                    Some(state) => self.state = state,
                    None => return Ok(None),
                },
                ReadState::Body { body, .. } => {
                    match body {
                        BodyLen::Fixed(left) => {
                            let n = (*left).min(buf.len());
                            buf.advance(n);
                            *left -= n;
                            if *left > 0 {
                                return Ok(None);
                            }
                        }
                        BodyLen::Chunked => match chunked_end(buf)? {
                            Some(n) => {
                                buf.advance(n);
                            }
                            None => return Ok(None),
                        },
                        BodyLen::UntilClose => {
                            buf.clear();
                            return Ok(None);
                        }
                    }
                    return Ok(Some(self.done()));
                }
            }
        }
    }

    /// The connection reached its end: the response if that is where it ends.
    pub fn eof(&mut self) -> Result<Response, Failure> {
        match self.state {
            ReadState::Body {
                body: BodyLen::UntilClose,
                ..
            } => Ok(self.done()),
            _ => Err(Failure::Reset),
        }
    }

    fn done(&mut self) -> Response {
        match std::mem::replace(&mut self.state, ReadState::Head) {
            ReadState::Body {
                status,
                close,
                cookies,
                ..
            } => Response {
                status,
                close,
                cookies,
            },
            ReadState::Head => unreachable!("a response is done only after its head"),
        }
    }

    /// Parses the head once it is all in `buf` and takes it from there; `None` while
    /// it is not.
    fn head(&self, buf: &mut BytesMut) -> Result<Option<ReadState>, Failure> {
        loop {
            // Left uninitialised: the parser writes the ones it fills.
            let mut headers = [const { std::mem::MaybeUninit::uninit() }; 32];
            let mut resp = httparse::Response::new(&mut []);
            let n = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut resp,
                buf,
                &mut headers,
            ) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) if buf.len() > 64 * 1024 => {
                    return Err(Failure::BadResponse);
                }
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(_) => return Err(Failure::BadResponse),
            };
            let status = resp.code.unwrap_or(0);
            if (100..200).contains(&status) && status != 101 {
                // An interim response: drop it and read the real one.
                buf.advance(n);
                continue;
            }
            let mut close = resp.version == Some(0);
            let no_body = self.head_only || status == 204 || status == 304;
            let mut body = if no_body {
                BodyLen::Fixed(0)
            } else {
                BodyLen::UntilClose
            };
            let mut cookies = Vec::new();
            for h in resp.headers.iter() {
                // The names' lengths tell the few headers that matter from the rest
                // before any comparison of their letters.
                match h.name.len() {
                    14 if !no_body && h.name.eq_ignore_ascii_case("content-length") => {
                        body = BodyLen::Fixed(
                            decimal(h.value.trim_ascii()).ok_or(Failure::BadResponse)?,
                        );
                    }
                    17 if !no_body
                        && h.name.eq_ignore_ascii_case("transfer-encoding")
                        && contains_token(h.value, b"chunked") =>
                    {
                        body = BodyLen::Chunked;
                    }
                    10 if h.name.eq_ignore_ascii_case("connection") => {
                        if contains_token(h.value, b"close") {
                            close = true;
                        } else if contains_token(h.value, b"keep-alive") {
                            close = false;
                        }
                    }
                    10 if self.want_cookies && h.name.eq_ignore_ascii_case("set-cookie") => {
                        if let Some(pair) = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.split(';').next())
                        {
                            cookies.push(pair.trim().to_owned());
                        }
                    }
                    _ => {}
                }
            }
            if let BodyLen::UntilClose = body {
                close = true;
            }
            buf.advance(n);
            return Ok(Some(ReadState::Body {
                status,
                close,
                cookies,
                body,
            }));
        }
    }
}

/// One client connection.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    /// The last read left room in the buffer: the socket had no more to give.
    drained: bool,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Result<Conn, Failure> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| Failure::of_connect(&e))?;
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            buf: BytesMut::with_capacity(READ_BUFFER),
            drained: false,
        })
    }

    /// Sends one request and reads its whole response.
    pub async fn send(&mut self, req: &Template, want_cookies: bool) -> Result<Response, Failure> {
        self.buf.clear();
        self.stream
            .write_all(&req.bytes)
            .await
            .map_err(|_| Failure::Reset)?;
        let mut reader = ResponseReader::new(req.head_only, want_cookies);
        let response = loop {
            if self.read_more().await? == 0 {
                break reader.eof()?;
            }
            if let Some(r) = reader.feed(&mut self.buf)? {
                break r;
            }
        };
        if !response.close && self.drained {
            // The whole response is in and the last read did not fill the buffer, so the
            // socket is empty: say so to tokio. Otherwise the next request's first read
            // would be a system call that only learns "nothing yet" (one in three per
            // request). Should the server still send something (a close), our next
            // write draws a reset, which wakes the read anyway.
            let _ = self.stream.try_io(tokio::io::Interest::READABLE, || {
                Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
            });
        }
        Ok(response)
    }

    async fn read_more(&mut self) -> Result<usize, Failure> {
        reserve(&mut self.buf);
        let room = self.buf.capacity() - self.buf.len();
        let n = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .map_err(|_| Failure::Reset)?;
        self.drained = n < room;
        Ok(n)
    }
}

/// A connection's read buffer: what one read may take at most.
pub(crate) const READ_BUFFER: usize = 8192;

/// Makes room in `buf` for a read.
pub(crate) fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < READ_BUFFER / 2 {
        buf.reserve(READ_BUFFER);
    }
}

/// A Content-Length's digits as a number; `None` if empty, not all digits or too big.
fn decimal(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0usize, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(usize::from(d - b'0')))?
    })
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Where a chunked body ends in `body` (after the last chunk and the trailers), `None`
/// if it has not all arrived yet, an error if it is not chunked encoding.
pub fn chunked_end(body: &[u8]) -> Result<Option<usize>, Failure> {
    let mut at = 0;
    loop {
        let Some(eol) = find_crlf(&body[at..]) else {
            return Ok(None);
        };
        let line = &body[at..at + eol];
        let hex = line
            .split(|&b| b == b';')
            .next()
            .unwrap_or(&[])
            .trim_ascii();
        let size = std::str::from_utf8(hex)
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
            .ok_or(Failure::BadResponse)?;
        at += eol + 2;
        if size == 0 {
            // Trailers, each ending in CRLF, then an empty line.
            loop {
                let Some(eol) = find_crlf(&body[at..]) else {
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if body.len() < at + size + 2 {
            return Ok(None);
        }
        at += size + 2;
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_or_say_why_not() {
        let u = Url::parse("http://127.0.0.1:8080/app/?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8080, "/app/?x=1")
        );
        let u = Url::parse("http://localhost").unwrap();
        assert_eq!(
            (u.port, u.path.as_str(), u.authority().as_str()),
            (80, "/", "localhost")
        );
        let u = Url::parse("http://[::1]:9/x").unwrap();
        assert_eq!(
            (u.host.as_str(), u.authority().as_str()),
            ("::1", "[::1]:9")
        );
        assert_eq!(Url::parse("http://h?q").unwrap().path, "/?q");
        for bad in [
            "https://x/",
            "ftp://x",
            "http://",
            "http://h:port/",
            "http://h/a b",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_template_is_a_whole_request() {
        let u = Url::parse("http://127.0.0.1:81/p").unwrap();
        let t = Template::new(&u, "POST", &[("X-A".into(), "1".into())], b"{}", false).unwrap();
        assert_eq!(
            &t.bytes[..],
            b"POST /p HTTP/1.1\r\nHost: 127.0.0.1:81\r\nUser-Agent: bellows-load\r\nX-A: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        );
        let t = Template::new(&u, "GET", &[], b"", true).unwrap();
        assert!(!String::from_utf8_lossy(&t.bytes).contains("Content-Length"));
        assert!(Template::new(&u, "get", &[], b"", true).is_err());
        // An empty value takes a header out, a default one included: wrk's request.
        let none = [("User-Agent".into(), String::new())];
        let t = Template::new(&u, "GET", &none, b"", true).unwrap();
        assert_eq!(
            &t.bytes[..],
            b"GET /p HTTP/1.1\r\nHost: 127.0.0.1:81\r\n\r\n"
        );
        assert!(
            Template::new(&u, "GET", &[("Bad Name".into(), String::new())], b"", true).is_err()
        );
        let host = [("host".into(), "example.test".into())];
        let t = Template::new(&u, "GET", &host, b"", true).unwrap();
        assert!(
            t.bytes.starts_with(
                b"GET /p HTTP/1.1\r\nUser-Agent: bellows-load\r\nhost: example.test\r\n"
            )
        );
        assert!(Template::new(&u, "GET", &[("A\r\nB".into(), "x".into())], b"", true).is_err());
    }

    #[test]
    fn chunked_bodies_end_where_they_end() {
        assert_eq!(chunked_end(b"5\r\nhello\r\n0\r\n\r\n"), Ok(Some(15)));
        assert_eq!(
            chunked_end(b"5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n"),
            Ok(Some(25))
        );
        assert_eq!(chunked_end(b"5\r\nhel"), Ok(None));
        assert_eq!(chunked_end(b"5\r\nhello\r\n0\r\n"), Ok(None));
        assert_eq!(chunked_end(b"zz\r\n"), Err(Failure::BadResponse));
    }
}
