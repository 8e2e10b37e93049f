//! The request path, in explicit phases: limits -> rule match -> action -> choose a
//! target (stickiness, selection, queue) -> forward (safe retries) -> respond -> log.
//!
//! Requests arrive parsed by http1.rs and go to targets over upstream.rs; a response
//! is written to the client here, its head copied from the target's with the proxy's
//! changes, in one write when its body came whole.
//!
//! Each phase takes the client's connection and one per-request context, [`Ctx`]: what
//! the earlier phases learnt (the head, how much of the body was read, when it arrived)
//! and the access log's line that every phase fills in, as pingora's phases share one
//! `CTX`. The context lives on the request's stack: it costs no allocation.

use std::cell::Cell;
use std::future::poll_fn;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bellows_core::ids::InstanceId;
use bellows_core::lb::rules::{self, Action, FixedResponse, RequestView};
use bellows_core::stack::{ListenerSpec, Stickiness};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use tokio::io::AsyncWriteExt;

mod choose;
mod fields;

use choose::{choose, cookie, sticky_target};
use fields::{connection_field, connection_listed, hop_by_hop, http_date, named, status_line};

use crate::access_log::Entry;
use crate::clock::{instant, now, since};
use crate::http1::{BodyState, ClientIo, HeadError, RequestHead};
use crate::targets::{InFlight, Target, TargetGroup};
use crate::tunnel;
use crate::upstream::{self, ExchangeError, Framing, Upstream};
use crate::watch;
use crate::wire::{put_chunk, put_field};
use crate::{Listener, Shared};

/// bellows' stickiness cookies, like ALB's AWSALB and AWSALBAPP.
pub const LB_COOKIE: &str = "BELLOWSLB";
pub const APP_COOKIE: &str = "BELLOWSLBAPP";
/// Each header's value, and the request target, may be this long (as on ALB).
const MAX_FIELD: usize = 16 * 1024;
/// All headers together may be this long (as on ALB).
const MAX_HEADERS: usize = 64 * 1024;
/// More addresses than this in X-Forwarded-For gets ALB's 463.
const MAX_FORWARDED: usize = 30;

/// One client connection to a listener.
#[derive(Debug)]
pub(crate) struct Conn {
    pub peer: SocketAddr,
    /// The client's address as an X-Forwarded-For value, made once per connection.
    pub peer_value: HeaderValue,
    pub listener: Arc<Listener>,
    pub shared: Arc<Shared>,
}

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        // Distinct per thread: the address of a thread-local, mixed with the time.
        let local = 0u8;
        let seed = (std::ptr::addr_of!(local) as usize as u64) ^ now().as_millis().rotate_left(17);
        seed | 1
    });
}

/// A fast per-thread random number (xorshift64*), for selection and weights.
fn random() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

thread_local! {
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A request id: a random per-thread prefix and a counter, cheap and unique enough to
/// follow one request through logs.
fn request_id() -> String {
    let (prefix, n) = IDS.with(|ids| {
        let (mut prefix, n) = ids.get();
        if prefix == 0 {
            prefix = random() | 1;
        }
        ids.set((prefix, n + 1));
        (prefix, n)
    });
    // Hex by hand: this runs for every request, and `format!` is measurably slower.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(25);
    for i in 0..16 {
        out.push(char::from(HEX[(prefix >> (60 - 4 * i) & 0xF) as usize]));
    }
    out.push('-');
    for i in 0..8 {
        out.push(char::from(HEX[(n >> (28 - 4 * i) & 0xF) as usize]));
    }
    out
}

/// The rules' view of a request.
struct View<'a> {
    head: &'a RequestHead,
    source: IpAddr,
}

impl RequestView for View<'_> {
    fn method(&self) -> &str {
        self.head.method.as_str()
    }
    fn path(&self) -> &str {
        self.head.path()
    }
    fn host(&self) -> Option<&str> {
        self.head.host()
    }
    fn any_header(&self, name: &str, f: &mut dyn FnMut(&str) -> bool) -> bool {
        self.head
            .values(name)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .any(f)
    }
    fn source(&self) -> IpAddr {
        self.source
    }
}

/// Why the load balancer answered itself.
struct ElbError {
    status: StatusCode,
    reason: &'static str,
}

fn elb(status: u16, reason: &'static str) -> ElbError {
    ElbError {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        reason,
    }
}

fn html(status: StatusCode) -> Bytes {
    let line = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    Bytes::from(format!(
        "<html>\r\n<head><title>{line}</title></head>\r\n<body>\r\n<center><h1>{line}</h1></center>\r\n</body>\r\n</html>\r\n"
    ))
}

/// One request's context, carried through every phase.
struct Ctx<'a> {
    conn: &'a Conn,
    /// The request's head; none when it could not be read.
    head: Option<&'a RequestHead>,
    /// How much of the request's body has been read from the client.
    body: BodyState,
    /// The request id, passed to the target as X-Request-Id.
    trace: &'a str,
    /// When the request arrived, if the access log wants to know.
    start: Option<Instant>,
    /// The access log's line, filled in as the phases go (none when not logged).
    entry: Option<Entry>,
}

impl Ctx<'_> {
    /// Whether some of the request's body is still unread on the client connection.
    fn unread_body(&self) -> bool {
        self.body != BodyState::Done
    }

    fn log(&mut self, f: impl FnOnce(&mut Entry)) {
        if let Some(e) = self.entry.as_mut() {
            f(e);
        }
    }
}

/// A request head that could not be read: the load balancer's answer, and the
/// connection closes.
pub(crate) async fn refuse(conn: &Conn, client: &mut ClientIo, e: HeadError) {
    let e = ElbError {
        status: e.status,
        reason: e.reason,
    };
    let mut cx = Ctx {
        conn,
        head: None,
        body: BodyState::Done,
        trace: "",
        start: None,
        entry: None,
    };
    own_answer(&mut cx, client, &e.own()).await;
}

/// Serves one request: the answer is written to the client. Whether the connection
/// may carry another request.
pub(crate) async fn serve(conn: &Conn, head: RequestHead, client: &mut ClientIo) -> bool {
    let l = &conn.listener;
    let spec = l.spec.load_full();
    l.counters.request_count.fetch_add(1, Relaxed);
    let trace = head
        .value("x-request-id")
        .filter(|v| v.len() <= 200)
        .map(str::to_owned)
        .unwrap_or_else(request_id);
    // The clock is read for the access log only.
    let logged = spec.access_log && conn.shared.access_log.get().is_some();
    let start = logged.then(instant);
    let entry = logged.then(|| Entry {
        time: now().to_string(),
        elb: conn.shared.load_balancer.clone(),
        client: conn.peer.to_string(),
        request: format!(
            "{} http://{}:{}{} {}",
            head.method,
            head.host().map_or("-", rules::host_without_port),
            l.port,
            head.path_and_query(),
            head.version()
        ),
        user_agent: head.value("user-agent").unwrap_or("-").to_owned(),
        trace_id: trace.clone(),
        received_bytes: head.content_length.unwrap_or(0),
        actions: "-",
        ..Entry::default()
    });
    let body = if head.has_body() {
        head.body_state()
    } else {
        BodyState::Done
    };
    let mut cx = Ctx {
        conn,
        head: Some(&head),
        body,
        trace: &trace,
        start,
        entry,
    };

    if let Err(e) = check_limits(&head, &spec) {
        return own_answer(&mut cx, client, &e.own()).await && !cx.unread_body();
    }
    let view = View {
        head: &head,
        source: conn.peer.ip(),
    };
    let (priority, action) = match rules::first_match(&spec.rules, &view) {
        Some(rule) => (Some(rule.priority), &rule.action),
        None => (None, &spec.default_action),
    };
    cx.log(|e| e.rule_priority = priority);
    // The load balancer's own answer, unless the request goes to a target.
    let own = match action {
        Action::FixedResponse(FixedResponse {
            status,
            content_type,
            body: fixed,
        }) => {
            cx.log(|e| e.actions = "fixed-response");
            Own {
                status: StatusCode::from_u16(*status).unwrap_or(StatusCode::OK),
                reason: None,
                content_type,
                location: None,
                body: Bytes::from(fixed.clone()),
            }
        }
        Action::Redirect(r) => {
            cx.log(|e| e.actions = "redirect");
            let host = head.host().map_or("", rules::host_without_port);
            let location = r.location(
                "http",
                host,
                &l.port.to_string(),
                head.path(),
                head.query().unwrap_or(""),
            );
            Own {
                status: if r.status == 302 {
                    StatusCode::FOUND
                } else {
                    StatusCode::MOVED_PERMANENTLY
                },
                reason: None,
                content_type: "text/html",
                location: Some(location),
                body: Bytes::new(),
            }
        }
        Action::Forward(groups) => {
            cx.log(|e| e.actions = "forward");
            match rules::pick_weighted(groups, random())
                .and_then(|n| conn.shared.groups.load().get(n).map(|tg| (n, tg.clone())))
            {
                Some(tg) => {
                    let kept = forward(&mut cx, client, &head, tg).await;
                    // A body left unread would be taken for the next request: close.
                    return kept && !cx.unread_body();
                }
                None => elb(500, "TargetGroupMissing").own(),
            }
        }
    };
    own_answer(&mut cx, client, &own).await && !cx.unread_body()
}

fn check_limits(head: &RequestHead, spec: &ListenerSpec) -> Result<(), ElbError> {
    if head.target().len() > MAX_FIELD {
        return Err(elb(414, "RequestTargetTooLong"));
    }
    let (total, longest) = head.sizes();
    if longest > MAX_FIELD {
        return Err(elb(431, "HeaderTooLarge"));
    }
    if total > MAX_HEADERS {
        return Err(elb(431, "HeadersTooLarge"));
    }
    if !head.http10 && !head.has("host") {
        return Err(elb(400, "MissingHost"));
    }
    let forwarded: usize = head
        .values("x-forwarded-for")
        .map(|v| v.split(|b| *b == b',').count())
        .sum();
    if forwarded > MAX_FORWARDED {
        return Err(elb(463, "TooManyForwardedAddresses"));
    }
    if let (Some(max), Some(len)) = (spec.max_body, head.content_length)
        && len > max
    {
        return Err(elb(413, "RequestBodyTooLarge"));
    }
    Ok(())
}

/// A response of the load balancer's own.
struct Own<'a> {
    status: StatusCode,
    /// Why, for the access log (errors only).
    reason: Option<&'static str>,
    content_type: &'a str,
    location: Option<String>,
    body: Bytes,
}

impl ElbError {
    /// The load balancer's own error page for it.
    fn own(&self) -> Own<'static> {
        Own {
            status: self.status,
            reason: Some(self.reason),
            content_type: "text/html",
            location: None,
            body: html(self.status),
        }
    }
}

/// Writes an answer of the load balancer's own, counted and logged. Whether the
/// connection may go on: the client asked to keep it, its request's body was read
/// whole (else what is left of it would be taken for the next request: the answer
/// says the connection closes), and the write went through.
async fn own_answer(cx: &mut Ctx<'_>, client: &mut ClientIo, own: &Own<'_>) -> bool {
    let (conn, head) = (cx.conn, cx.head);
    let status = own.status;
    let c = &conn.listener.counters;
    match status.as_u16() {
        300..=399 => c.elb_3xx.fetch_add(1, Relaxed),
        400..=499 => c.elb_4xx.fetch_add(1, Relaxed),
        _ => c.elb_5xx.fetch_add(1, Relaxed),
    };
    match status.as_u16() {
        500 => c.elb_500.fetch_add(1, Relaxed),
        502 => c.elb_502.fetch_add(1, Relaxed),
        503 => c.elb_503.fetch_add(1, Relaxed),
        504 => c.elb_504.fetch_add(1, Relaxed),
        _ => 0,
    };
    let len = own.body.len() as u64;
    c.processed_bytes.fetch_add(len, Relaxed);
    if let (Some(mut e), Some(log)) = (cx.entry.take(), conn.shared.access_log.get()) {
        e.elb_status = status.as_u16();
        e.request_processing = cx.start.map(|s| since(s).as_secs_f64());
        e.sent_bytes = len;
        e.error_reason = own.reason;
        log.write(e.line());
    }
    // A request that could not be read ends its connection.
    let keep = head.is_some_and(|h| h.keep_alive) && !cx.unread_body();
    let w = &mut client.wbuf;
    status_line(
        w,
        status,
        status.canonical_reason().unwrap_or("").as_bytes(),
    );
    put_field(w, b"server", b"bellows");
    put_field(w, b"date", http_date(now()).as_bytes());
    put_field(w, b"content-type", own.content_type.as_bytes());
    put_field(w, b"content-length", len.to_string().as_bytes());
    if let Some(location) = &own.location {
        put_field(w, b"location", location.as_bytes());
    }
    connection_field(w, keep, head.is_some_and(|h| h.http10));
    w.extend_from_slice(b"\r\n");
    if head.is_none_or(|h| h.method != Method::HEAD) {
        w.extend_from_slice(&own.body);
    }
    client.flush_wbuf().await.is_ok() && keep
}

/// The request head for the target, serialised once: origin-form whatever the
/// client's URI named, hop-by-hop fields removed, X-Forwarded-* and the request id
/// set, Host kept or taken from an absolute URI.
fn request_head(head: &RequestHead, cx: &Ctx<'_>, chunked: bool) -> Vec<u8> {
    let conn = cx.conn;
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.path_and_query().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let listed = connection_listed(head.fields());
    let mut forwarded_for: Option<Vec<u8>> = None;
    for (name, value) in head.fields() {
        if hop_by_hop(name, head.upgrade, &listed)
            || named(
                name,
                &[
                    "x-forwarded-proto",
                    "x-forwarded-port",
                    "x-request-id",
                    "expect",
                ],
            )
        {
            continue;
        }
        if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            let list = forwarded_for.get_or_insert_with(Vec::new);
            if !list.is_empty() {
                list.extend_from_slice(b", ");
            }
            list.extend_from_slice(value);
            continue;
        }
        put_field(&mut out, name, value);
    }
    if !head.has("host")
        && let Some(a) = head.authority()
    {
        put_field(&mut out, b"host", a.as_bytes());
    }
    match forwarded_for {
        Some(mut list) => {
            list.extend_from_slice(b", ");
            list.extend_from_slice(conn.peer_value.as_bytes());
            put_field(&mut out, b"x-forwarded-for", &list);
        }
        None => put_field(&mut out, b"x-forwarded-for", conn.peer_value.as_bytes()),
    }
    put_field(&mut out, b"x-forwarded-proto", b"http");
    put_field(
        &mut out,
        b"x-forwarded-port",
        conn.listener.port_value.as_bytes(),
    );
    put_field(&mut out, b"x-request-id", cx.trace.as_bytes());
    if chunked {
        put_field(&mut out, b"transfer-encoding", b"chunked");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// How an attempt on a target failed.
enum Failure {
    /// No connection: nothing was sent, and the target is not taking any.
    Connect(String),
    /// The client's request body broke off.
    ClientBody(String),
    /// Sent (in part or whole) on a connection that was `reused`.
    Exchange(ExchangeError, bool),
}

/// Sends the head, then the client's body as it arrives, if there is one, on a
/// connection that was `reused` from the pool or not.
async fn send_request(
    up: &mut Upstream,
    reused: bool,
    head: &[u8],
    client: &mut ClientIo,
    body: &mut BodyState,
    chunked: bool,
) -> Result<(), Failure> {
    let exchange = |e| Failure::Exchange(e, reused);
    up.send(head).await.map_err(exchange)?;
    if *body == BodyState::Done {
        return Ok(());
    }
    let mut framed = Vec::new();
    while let Some(data) = client.body(body).await.map_err(Failure::ClientBody)? {
        if chunked {
            framed.clear();
            put_chunk(&mut framed, &data);
            up.send(&framed).await.map_err(exchange)?;
        } else {
            up.send(&data).await.map_err(exchange)?;
        }
    }
    if chunked {
        up.send(b"0\r\n\r\n").await.map_err(exchange)?;
    }
    Ok(())
}

/// Forwards a request to a target of `tg` and writes its response to the client.
/// Whether the client connection may go on.
async fn forward(
    cx: &mut Ctx<'_>,
    client: &mut ClientIo,
    head: &RequestHead,
    (tg_name, tg): (&str, Arc<TargetGroup>),
) -> bool {
    let conn = cx.conn;
    tg.counters.request_count.fetch_add(1, Relaxed);
    cx.log(|e| e.target_group = Some(tg_name.to_owned()));
    let spec = tg.spec.load_full();
    let cookie_name = |s: &Stickiness| {
        if s.app_cookie.is_some() {
            APP_COOKIE
        } else {
            LB_COOKIE
        }
    };
    let sticky = spec
        .stickiness
        .as_ref()
        .and_then(|s| sticky_target(head, s, &tg));
    let had_cookie = spec
        .stickiness
        .as_ref()
        .is_some_and(|s| cookie(head, cookie_name(s)).is_some());
    let bodiless = !cx.unread_body();
    // Safe to send twice: an idempotent method and no body to replay.
    let retriable = bodiless && matches!(head.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let chunked = head.chunked;
    let up_head = request_head(head, cx, chunked);
    let idle = conn.listener.spec.load().idle_timeout.to_std();
    let mut exclude: Vec<InstanceId> = Vec::new();
    let mut last_error = elb(502, "TargetConnectionError");
    // Each target that fails costs an attempt, and the request goes to another: one
    // that refused the connection was sent nothing, so whatever the request; one that
    // failed after it was sent the request, only when the request is safe to repeat.
    // (Targets dying together, a zone's, can take a GET in flight and then its retry.)
    // A stale pooled connection (the target closed it, or died) costs no attempt: its
    // siblings are closed with it, so it happens once per target.
    let mut attempts_left = 3;
    let mut stale_left = 4;
    while attempts_left > 0 {
        let target =
            match choose(&tg, tg_name, &conn.shared.events, sticky.as_ref(), &exclude).await {
                Ok(t) => t,
                Err(_) if !exclude.is_empty() => {
                    // Nowhere left to retry: the first failure is the answer.
                    break;
                }
                Err(e) => {
                    count_elb(&tg, e.status);
                    return own_answer(cx, client, &e.own()).await;
                }
            };
        let inflight = InFlight::new(target.clone(), tg.clone());
        let sent = instant();
        let outcome = {
            let body = &mut cx.body;
            let exchange = pin!(async {
                let (mut up, reused) = target.connection().await.map_err(Failure::Connect)?;
                send_request(&mut up, reused, &up_head, client, body, chunked).await?;
                match up.read_head(&head.method, head.upgrade).await {
                    Ok(h) => Ok((up, h)),
                    Err(e) => Err(Failure::Exchange(e, reused)),
                }
            });
            watch::deadline(idle, exchange).await
        };
        let (up, response) = match outcome {
            Ok(Ok(x)) => x,
            Ok(Err(failure)) => {
                let was_sent = match failure {
                    Failure::Connect(err) => {
                        tracing::debug!(target = %target.addr, error = %err, "no connection to target");
                        false
                    }
                    Failure::ClientBody(err) => {
                        tracing::debug!(error = %err, "client body broke off");
                        last_error = elb(400, "ClientBodyError");
                        break;
                    }
                    Failure::Exchange(ExchangeError::NoResponse(err), true) if stale_left > 0 => {
                        // Its other idle connections are as old: when the target died
                        // (kill -9), each would cost a try. The next connects afresh.
                        tracing::debug!(target = %target.addr, error = %err, "stale pooled connection");
                        target.close_idle();
                        stale_left -= 1;
                        last_error = elb(502, "TargetConnectionError");
                        if !retriable {
                            break;
                        }
                        tg.counters.retries.fetch_add(1, Relaxed);
                        continue;
                    }
                    Failure::Exchange(ExchangeError::NoResponse(err), _) => {
                        tracing::debug!(target = %target.addr, error = %err, "target closed without a response");
                        true
                    }
                    Failure::Exchange(ExchangeError::Malformed(err), _) => {
                        tracing::debug!(target = %target.addr, error = %err, "malformed response");
                        last_error = elb(502, "TargetResponseMalformed");
                        target.errors.fetch_add(1, Relaxed);
                        cx.log(|e| e.target = Some(target.addr.to_string()));
                        break;
                    }
                };
                last_error = elb(502, "TargetConnectionError");
                tg.counters.target_connection_errors.fetch_add(1, Relaxed);
                target.errors.fetch_add(1, Relaxed);
                exclude.push(target.instance.clone());
                attempts_left -= 1;
                // Sent and lost: again only when safe.
                if was_sent && !retriable {
                    break;
                }
                tg.counters.retries.fetch_add(1, Relaxed);
                continue;
            }
            Err(_) => {
                last_error = elb(504, "TargetResponseTimeout");
                target.errors.fetch_add(1, Relaxed);
                cx.log(|e| e.target = Some(target.addr.to_string()));
                break;
            }
        };
        let target_time = since(sent);
        tg.response_time.record(target_time.as_micros() as u64);
        count_target(conn, &tg, response.status);
        if response.status.is_server_error() {
            target.errors.fetch_add(1, Relaxed);
        }
        let start = cx.start;
        cx.log(|e| {
            e.target = Some(target.addr.to_string());
            e.target_status = Some(response.status.as_u16());
            e.elb_status = response.status.as_u16();
            e.request_processing = start.map(|s| sent.duration_since(s).as_secs_f64());
            e.target_processing = Some(target_time.as_secs_f64());
        });
        let set_cookie = spec.stickiness.as_ref().and_then(|s| {
            sticky_cookie(
                &response,
                s,
                &target.instance,
                sticky.is_none() && had_cookie,
            )
        });
        let reply = Reply {
            target: &target,
            up,
            response,
            set_cookie,
        };
        let written = respond(cx, head, client, reply).await;
        drop(inflight);
        return written;
    }
    count_elb(&tg, last_error.status);
    own_answer(cx, client, &last_error.own()).await
}

/// A target's response, to be written to the client.
struct Reply<'a> {
    target: &'a Target,
    up: Upstream,
    response: upstream::Head,
    set_cookie: Option<String>,
}

/// Writes a target's response to the client: its head with hop-by-hop fields replaced
/// by the client connection's own, then the body, in one write when it came whole.
/// A 101 turns the connection into a tunnel until either side closes it. Whether the
/// client connection may go on.
async fn respond(
    cx: &mut Ctx<'_>,
    head: &RequestHead,
    client: &mut ClientIo,
    reply: Reply<'_>,
) -> bool {
    let Reply {
        target,
        mut up,
        response,
        set_cookie,
    } = reply;
    let switching = response.status == StatusCode::SWITCHING_PROTOCOLS;
    let mut framing = response.framing;
    // The target's framing passes through for a fixed length; anything else goes to an
    // HTTP/1.1 client re-chunked, and to an HTTP/1.0 client until the connection closes.
    let rechunk = matches!(framing, Framing::Chunked(_) | Framing::UntilClose) && !head.http10;
    let mut keep = head.keep_alive
        && !switching
        && !(head.http10 && matches!(framing, Framing::Chunked(_) | Framing::UntilClose));
    let w = &mut client.wbuf;
    status_line(w, response.status, response.reason());
    let listed = connection_listed(response.fields());
    for (name, value) in response.fields() {
        if !hop_by_hop(name, switching, &listed) {
            put_field(w, name, value);
        }
    }
    if let Some(c) = &set_cookie {
        put_field(w, b"set-cookie", c.as_bytes());
    }
    if rechunk {
        put_field(w, b"transfer-encoding", b"chunked");
    }
    if !switching {
        connection_field(w, keep, head.http10);
    }
    w.extend_from_slice(b"\r\n");
    let responded = cx.entry.as_ref().map(|_| instant());
    let mut sent: u64 = 0;
    if switching {
        // A WebSocket: what the target sent after its handshake goes first, then bytes
        // both ways; counted as outstanding (the caller's InFlight) while open.
        let (mut target_io, early) = up.into_parts();
        client.wbuf.extend_from_slice(&early);
        // The response head is a view of the target's read buffer: both go before the
        // tunnel, which keeps no buffer while idle (tunnel.rs).
        drop((early, response));
        if client.flush_wbuf().await.is_ok() {
            let pending = client.take_read();
            if target_io.write_all(&pending).await.is_ok() {
                drop(pending);
                // An idle WebSocket keeps no buffer (tunnel.rs).
                client.release_buffers();
                tunnel::run(&mut client.io, &mut target_io).await;
            }
        }
        finish(cx, responded, 0);
        return false;
    }
    let whole = up.take_whole(&mut framing);
    let reusable = !response.close;
    if let Some(data) = &whole {
        // Read whole: the connection goes back to its pool before the client has
        // the answer, which goes in one write.
        if reusable {
            target.put_back(up);
        }
        sent = data.len() as u64;
        client.wbuf.extend_from_slice(data);
        let ok = client.flush_wbuf().await.is_ok();
        finish(cx, responded, sent);
        return ok && keep;
    }
    if client.flush_wbuf().await.is_err() {
        finish(cx, responded, 0);
        return false;
    }
    loop {
        match poll_fn(|cx| up.poll_body(&mut framing, cx)).await {
            Some(Ok(data)) => {
                sent += data.len() as u64;
                let written = if rechunk {
                    put_chunk(&mut client.wbuf, &data);
                    client.flush_wbuf().await
                } else {
                    client.write(&data).await
                };
                if written.is_err() {
                    keep = false;
                    break;
                }
            }
            None => {
                if rechunk && client.write(b"0\r\n\r\n").await.is_err() {
                    keep = false;
                }
                if reusable {
                    target.put_back(up);
                }
                break;
            }
            Some(Err(e)) => {
                // The target broke off mid-body: so must the client connection, or the
                // client would take a short body for a whole one.
                tracing::debug!(target = %target.addr, error = %e, "response body broke off");
                keep = false;
                break;
            }
        }
    }
    finish(cx, responded, sent);
    keep
}

/// A forwarded request's last bookkeeping: bytes counted, the access log written.
fn finish(cx: &mut Ctx<'_>, responded: Option<Instant>, bytes: u64) {
    let conn = cx.conn;
    conn.listener
        .counters
        .processed_bytes
        .fetch_add(bytes, Relaxed);
    if let (Some(mut e), Some(log)) = (cx.entry.take(), conn.shared.access_log.get()) {
        e.sent_bytes = bytes;
        e.response_processing = responded.map(|r| since(r).as_secs_f64());
        log.write(e.line());
    }
}

/// The stickiness cookie for a response: bellows' own on every response, or, for
/// app_cookie, when the target set its cookie or the request had to move.
fn sticky_cookie(
    response: &upstream::Head,
    s: &Stickiness,
    id: &InstanceId,
    repicked: bool,
) -> Option<String> {
    let (name, set) = match &s.app_cookie {
        None => (LB_COOKIE, true),
        Some(app) => {
            let sets_app = response
                .fields()
                .filter(|(n, _)| n.eq_ignore_ascii_case(b"set-cookie"))
                .filter_map(|(_, v)| std::str::from_utf8(v).ok())
                .any(|v| v.split_once('=').is_some_and(|(k, _)| k.trim() == app));
            (APP_COOKIE, sets_app || repicked)
        }
    };
    set.then(|| {
        format!(
            "{name}={id}; Max-Age={}; Path=/",
            s.duration.as_millis() / 1000
        )
    })
}

fn count_target(conn: &Conn, tg: &TargetGroup, status: StatusCode) {
    let (l, t) = (&conn.listener.counters, &tg.counters);
    let (a, b) = match status.as_u16() {
        100..=299 => (&l.target_2xx, &t.target_2xx),
        300..=399 => (&l.target_3xx, &t.target_3xx),
        400..=499 => (&l.target_4xx, &t.target_4xx),
        _ => (&l.target_5xx, &t.target_5xx),
    };
    a.fetch_add(1, Relaxed);
    b.fetch_add(1, Relaxed);
}

fn count_elb(tg: &TargetGroup, status: StatusCode) {
    match status.as_u16() {
        502 => tg.counters.elb_502.fetch_add(1, Relaxed),
        503 => tg.counters.elb_503.fetch_add(1, Relaxed),
        504 => tg.counters.elb_504.fetch_add(1, Relaxed),
        _ => 0,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct() {
        let a = request_id();
        let b = request_id();
        assert_eq!(a.len(), 25);
        assert_ne!(a, b);
    }
}
