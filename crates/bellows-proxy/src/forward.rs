//! The request path, in explicit phases: limits -> rule match -> action -> choose a
//! target (stickiness, selection, queue) -> forward (one safe retry) -> respond -> log.

use std::cell::Cell;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bellows_core::ids::InstanceId;
use bellows_core::lb::rules::{self, Action, FixedResponse, RequestView};
use bellows_core::lb::select::{Candidate, Pick, TargetState};
use bellows_core::stack::{ListenerSpec, Stickiness};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;

use crate::access_log::Entry;
use crate::targets::{InFlight, Target, TargetGroup};
use crate::upstream::{self, ExchangeError, Framing, Upstream};
use crate::{Listener, Shared, now};

/// bellows' stickiness cookies, like ALB's AWSALB and AWSALBAPP.
pub const LB_COOKIE: &str = "BELLOWSLB";
pub const APP_COOKIE: &str = "BELLOWSLBAPP";
/// Each header's value, and the request target, may be this long (as on ALB).
const MAX_FIELD: usize = 16 * 1024;
/// All headers together may be this long (as on ALB).
const MAX_HEADERS: usize = 64 * 1024;
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
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
    pub watch: Arc<crate::watch::Watch>,
}

#[allow(clippy::disallowed_methods)] // The data plane measures its own latency.
fn instant() -> Instant {
    Instant::now()
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
    let mut out = [0u8; 25];
    for i in 0..16 {
        out[i] = HEX[(prefix >> (60 - 4 * i) & 0xF) as usize];
    }
    out[16] = b'-';
    for i in 0..8 {
        out[17 + i] = HEX[(n >> (28 - 4 * i) & 0xF) as usize];
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The response body: a short one of the load balancer's own, or the target's, whole
/// or streamed from its connection, with the request's bookkeeping done when it ends.
#[derive(Debug)]
pub enum ProxyBody {
    Full(Option<Bytes>),
    /// The target's body, read with its head.
    Whole {
        data: Option<Bytes>,
        done: Option<Done>,
    },
    /// The target's body, read from its connection as the client takes it.
    Stream {
        up: Option<Upstream>,
        framing: Framing,
        /// The connection may carry another request once the body has been read.
        keep: bool,
        done: Option<Done>,
    },
}

pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Whole { data, done } => {
                let data = data.take();
                // hyper stops polling once the body says it has ended: finish now.
                if let Some(mut d) = done.take() {
                    d.bytes += data.as_ref().map_or(0, |b| b.len() as u64);
                }
                Poll::Ready(data.map(|b| Ok(Frame::data(b))))
            }
            ProxyBody::Stream {
                up,
                framing,
                keep,
                done,
            } => {
                let Some(conn) = up.as_mut() else {
                    return Poll::Ready(None);
                };
                let polled = conn.poll_body(framing, cx);
                if let Poll::Ready(Some(Ok(data))) = &polled
                    && let Some(d) = done.as_mut()
                {
                    d.bytes += data.len() as u64;
                }
                let ended = matches!(polled, Poll::Ready(None)) || *framing == Framing::Length(0);
                if ended {
                    // The connection goes back to its pool at once.
                    let conn = up.take();
                    if let Some(mut d) = done.take()
                        && *keep
                    {
                        d.upstream = conn;
                    }
                }
                match polled {
                    Poll::Ready(Some(Ok(data))) => Poll::Ready(Some(Ok(Frame::data(data)))),
                    Poll::Ready(Some(Err(e))) => {
                        up.take();
                        Poll::Ready(Some(Err(e.into())))
                    }
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Whole { data, .. } => data.is_none(),
            ProxyBody::Stream { up, framing, .. } => up.is_none() || *framing == Framing::Length(0),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(b) | ProxyBody::Whole { data: b, .. } => {
                SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
            ProxyBody::Stream {
                framing: Framing::Length(n),
                ..
            } => SizeHint::with_exact(*n),
            ProxyBody::Stream { .. } => SizeHint::default(),
        }
    }
}

/// Finishes a forwarded request when its response body ends or is abandoned: the
/// target is released, its connection pooled, and the access log line written.
#[derive(Debug)]
pub struct Done {
    inflight: Option<InFlight>,
    /// The target connection, back to its pool once the response has been read whole.
    upstream: Option<Upstream>,
    entry: Option<Entry>,
    listener: Arc<Listener>,
    shared: Arc<Shared>,
    responded: Instant,
    bytes: u64,
}

impl Drop for Done {
    fn drop(&mut self) {
        if let (Some(up), Some(inflight)) = (self.upstream.take(), &self.inflight) {
            inflight.target.put_back(up);
        }
        self.inflight.take();
        self.listener
            .counters
            .processed_bytes
            .fetch_add(self.bytes, Relaxed);
        if let (Some(mut e), Some(log)) = (self.entry.take(), &self.shared.access_log) {
            e.sent_bytes = self.bytes;
            e.response_processing = Some(self.responded.elapsed().as_secs_f64());
            log.write(e.line());
        }
    }
}

/// The rules' view of a request.
struct View<'a> {
    parts: &'a Parts,
    source: IpAddr,
}

impl RequestView for View<'_> {
    fn method(&self) -> &str {
        self.parts.method.as_str()
    }
    fn path(&self) -> &str {
        self.parts.uri.path()
    }
    fn host(&self) -> Option<&str> {
        host_of(self.parts)
    }
    fn any_header(&self, name: &str, f: &mut dyn FnMut(&str) -> bool) -> bool {
        self.parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(f)
    }
    fn source(&self) -> IpAddr {
        self.source
    }
}

fn host_of(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.host())
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

pub(crate) async fn handle(
    conn: Arc<Conn>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    conn.watch.begin();
    let response = route(&conn, req).await;
    conn.watch.end();
    response
}

async fn route(
    conn: &Arc<Conn>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let start = instant();
    let l = conn.listener.clone();
    let spec = l.spec.load_full();
    l.counters.request_count.fetch_add(1, Relaxed);
    let (mut parts, body) = req.into_parts();
    let trace = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 200)
        .map(str::to_owned)
        .unwrap_or_else(request_id);
    let mut entry = (spec.access_log && conn.shared.access_log.is_some()).then(|| Entry {
        time: now().to_string(),
        elb: conn.shared.stack.clone(),
        client: conn.peer.to_string(),
        request: format!(
            "{} http://{}:{}{} {:?}",
            parts.method,
            host_of(&parts).map_or("-", rules::host_without_port),
            l.port,
            parts.uri.path_and_query().map_or("/", |p| p.as_str()),
            parts.version
        ),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned(),
        trace_id: trace.clone(),
        received_bytes: content_length(&parts.headers).unwrap_or(0),
        actions: "-",
        ..Entry::default()
    });

    if let Err(e) = check_limits(&parts, &spec) {
        return Ok(elb_answer(conn, entry, start, e));
    }
    let view = View {
        parts: &parts,
        source: conn.peer.ip(),
    };
    let (priority, action) = match rules::first_match(&spec.rules, &view) {
        Some(rule) => (Some(rule.priority), &rule.action),
        None => (None, &spec.default_action),
    };
    if let Some(e) = entry.as_mut() {
        e.rule_priority = priority;
    }
    match action {
        Action::FixedResponse(FixedResponse {
            status,
            content_type,
            body,
        }) => {
            if let Some(e) = entry.as_mut() {
                e.actions = "fixed-response";
            }
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
            Ok(answer(
                conn,
                entry,
                start,
                status,
                None,
                Bytes::from(body.clone()),
                content_type,
                None,
            ))
        }
        Action::Redirect(r) => {
            if let Some(e) = entry.as_mut() {
                e.actions = "redirect";
            }
            let host = host_of(&parts)
                .map_or("", rules::host_without_port)
                .to_owned();
            let location = r.location(
                "http",
                &host,
                &l.port.to_string(),
                parts.uri.path(),
                parts.uri.query().unwrap_or(""),
            );
            let status = if r.status == 302 {
                StatusCode::FOUND
            } else {
                StatusCode::MOVED_PERMANENTLY
            };
            Ok(answer(
                conn,
                entry,
                start,
                status,
                None,
                Bytes::new(),
                "text/html",
                Some(location),
            ))
        }
        Action::Forward(groups) => {
            if let Some(e) = entry.as_mut() {
                e.actions = "forward";
            }
            let Some(tg) = rules::pick_weighted(groups, random())
                .and_then(|n| conn.shared.groups.get(n).map(|tg| (n, tg.clone())))
            else {
                return Ok(elb_answer(
                    conn,
                    entry,
                    start,
                    elb(500, "TargetGroupMissing"),
                ));
            };
            let upgrade = is_upgrade(&parts);
            let mut client_upgrade = None;
            let body = if upgrade {
                // Hand the client's side of the upgrade to the tunnel, later.
                let mut req = Request::from_parts(parts, body);
                client_upgrade = Some(hyper::upgrade::on(&mut req));
                let (p, _) = req.into_parts();
                parts = p;
                None
            } else {
                Some(body)
            };
            forward(conn, tg, parts, body, client_upgrade, entry, start, trace).await
        }
    }
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn check_limits(parts: &Parts, spec: &ListenerSpec) -> Result<(), ElbError> {
    if parts
        .uri
        .path_and_query()
        .is_some_and(|p| p.as_str().len() > MAX_FIELD)
    {
        return Err(elb(414, "RequestTargetTooLong"));
    }
    let mut total = 0;
    for (name, value) in &parts.headers {
        if value.len() > MAX_FIELD {
            return Err(elb(431, "HeaderTooLarge"));
        }
        total += name.as_str().len() + value.len() + 4;
    }
    if total > MAX_HEADERS {
        return Err(elb(431, "HeadersTooLarge"));
    }
    if parts.version == Version::HTTP_11 && !parts.headers.contains_key(header::HOST) {
        return Err(elb(400, "MissingHost"));
    }
    let forwarded: usize = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.as_bytes().split(|b| *b == b',').count())
        .sum();
    if forwarded > MAX_FORWARDED {
        return Err(elb(463, "TooManyForwardedAddresses"));
    }
    if let (Some(max), Some(len)) = (spec.max_body, content_length(&parts.headers))
        && len > max
    {
        return Err(elb(413, "RequestBodyTooLarge"));
    }
    Ok(())
}

fn is_upgrade(parts: &Parts) -> bool {
    parts.headers.contains_key(header::UPGRADE)
        && parts.headers.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// The load balancer's own error page for `e`.
fn elb_answer(
    conn: &Conn,
    entry: Option<Entry>,
    start: Instant,
    e: ElbError,
) -> Response<ProxyBody> {
    answer(
        conn,
        entry,
        start,
        e.status,
        Some(e.reason),
        html(e.status),
        "text/html",
        None,
    )
}

/// A response of the load balancer's own, counted and logged.
#[allow(clippy::too_many_arguments)]
fn answer(
    conn: &Conn,
    entry: Option<Entry>,
    start: Instant,
    status: StatusCode,
    reason: Option<&'static str>,
    body: Bytes,
    content_type: &str,
    location: Option<String>,
) -> Response<ProxyBody> {
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
    let len = body.len() as u64;
    c.processed_bytes.fetch_add(len, Relaxed);
    if let (Some(mut e), Some(log)) = (entry, &conn.shared.access_log) {
        e.elb_status = status.as_u16();
        e.request_processing = Some(start.elapsed().as_secs_f64());
        e.target_processing = e.target_processing.or(None);
        e.sent_bytes = len;
        e.error_reason = reason;
        log.write(e.line());
    }
    let mut resp = Response::new(ProxyBody::Full((!body.is_empty()).then_some(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(loc) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        h.insert(header::LOCATION, loc);
    }
    h.insert(header::SERVER, HeaderValue::from_static("bellows"));
    if let Ok(v) = HeaderValue::from_str(&http_date(now())) {
        h.insert(header::DATE, v);
    }
    resp
}

/// The sticky target named by the request's cookie, if it may still take traffic.
fn sticky_target(parts: &Parts, stickiness: &Stickiness, tg: &TargetGroup) -> Option<InstanceId> {
    let name = if stickiness.app_cookie.is_some() {
        APP_COOKIE
    } else {
        LB_COOKIE
    };
    let value = cookie(&parts.headers, name)?;
    InstanceId::parse(value).filter(|id| {
        let targets = tg.targets.load();
        let healthy_exists = targets
            .iter()
            .any(|t| t.load_state() == TargetState::Healthy);
        targets.iter().any(|t| {
            &t.instance == id
                && !t.at_capacity()
                && match t.load_state() {
                    TargetState::Healthy => true,
                    TargetState::Unhealthy => !healthy_exists,
                    _ => false,
                }
        })
    })
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// Chooses a target: the sticky one if it may take the request, else by the group's
/// algorithm, waiting in the group's queue while every target is at its limit.
/// How long a request waits for a group to scale from zero.
pub const COLD_START_TIMEOUT: Duration = Duration::from_secs(30);

async fn choose(
    tg: &TargetGroup,
    name: &str,
    cold: &tokio::sync::mpsc::UnboundedSender<crate::ProxyEvent>,
    sticky: Option<&InstanceId>,
    exclude: &[InstanceId],
) -> Result<Arc<Target>, ElbError> {
    if let Some(id) = sticky.filter(|id| !exclude.contains(id))
        && let Some(t) = tg.find(id)
    {
        return Ok(t);
    }
    let selection = tg.selection();
    let mut deadline = None;
    loop {
        let targets = tg.targets.load();
        let ex: Vec<usize> = targets
            .iter()
            .enumerate()
            .filter(|(_, t)| exclude.contains(&t.instance))
            .map(|(i, _)| i)
            .collect();
        // The clock matters only to slow start.
        let at = if selection.slow_start > bellows_core::Duration::ZERO {
            now()
        } else {
            bellows_core::Time::default()
        };
        match selection.pick(
            &targets,
            at,
            tg.counter.fetch_add(1, Relaxed),
            random(),
            &ex,
        ) {
            Pick::Target(i) => return Ok(targets[i].clone()),
            Pick::NoTarget
                if tg.cold_start
                    && exclude.is_empty()
                    && targets
                        .iter()
                        .all(|t| t.load_state() == TargetState::Initial) =>
            {
                // Scale from zero: ask for an instance, hold the request until one is
                // healthy (bounded by the queue and COLD_START_TIMEOUT), then go on.
                let started = *deadline.get_or_insert_with(|| {
                    tg.counters.queued.fetch_add(1, Relaxed);
                    tokio::time::Instant::now() + COLD_START_TIMEOUT
                });
                if tokio::time::Instant::now() >= started
                    || tg.queued.load(Relaxed) >= tg.spec.load().queue_size
                {
                    tg.counters.queue_timeouts.fetch_add(1, Relaxed);
                    return Err(elb(503, "ColdStartTimeout"));
                }
                let now_ms = crate::watch::coarse_now();
                let asked = tg.cold_start_asked.load(Relaxed);
                if now_ms.saturating_sub(asked) > 1000
                    && tg
                        .cold_start_asked
                        .compare_exchange(asked, now_ms, Relaxed, Relaxed)
                        .is_ok()
                {
                    let _ = cold.send(crate::ProxyEvent::ColdStart {
                        target_group: name.to_owned(),
                    });
                }
                tg.queued.fetch_add(1, Relaxed);
                let _ =
                    tokio::time::timeout(Duration::from_millis(250), tg.became_healthy.notified())
                        .await;
                tg.queued.fetch_sub(1, Relaxed);
            }
            Pick::NoTarget => return Err(elb(503, "NoHealthyTarget")),
            Pick::AllBusy => {
                let spec = tg.spec.load();
                let deadline = *deadline.get_or_insert_with(|| {
                    tg.counters.queued.fetch_add(1, Relaxed);
                    tokio::time::Instant::now() + spec.queue_timeout.to_std()
                });
                if tg.queued.load(Relaxed) >= spec.queue_size
                    && tokio::time::Instant::now() < deadline
                {
                    // No room in the queue: refuse rather than pile up.
                    tg.counters.queue_timeouts.fetch_add(1, Relaxed);
                    return Err(elb(503, "QueueFull"));
                }
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    tg.counters.queue_timeouts.fetch_add(1, Relaxed);
                    return Err(elb(503, "QueueTimeout"));
                }
                tg.queued.fetch_add(1, Relaxed);
                let wait = (deadline - now).min(Duration::from_millis(100));
                let _ = tokio::time::timeout(wait, tg.freed.notified()).await;
                tg.queued.fetch_sub(1, Relaxed);
            }
        }
    }
}

const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, and those the Connection header names; with `upgrade`,
/// keeps the upgrade handshake's own.
fn strip_hop_by_hop(h: &mut HeaderMap, upgrade: bool) {
    if let Some(listed) = h
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    {
        for name in listed.split(',').map(str::trim) {
            if !["close", "keep-alive", "upgrade"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
                && let Ok(name) = HeaderName::from_bytes(name.as_bytes())
            {
                h.remove(name);
            }
        }
    }
    for name in &HOP_BY_HOP {
        if upgrade && (name == header::CONNECTION || name == header::UPGRADE) {
            continue;
        }
        h.remove(name);
    }
}

/// Names the request's Connection header lists, to be removed with it.
fn connection_listed(h: &HeaderMap) -> Vec<HeaderName> {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| {
            !["close", "keep-alive", "upgrade"]
                .iter()
                .any(|k| n.eq_ignore_ascii_case(k))
        })
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .collect()
}

/// The request head for the target, serialised once: origin-form whatever the
/// client's URI named, hop-by-hop fields removed (the upgrade handshake's kept for a
/// WebSocket), X-Forwarded-* and the request id set, Host kept or taken from an
/// absolute URI.
fn request_head(parts: &Parts, conn: &Conn, trace: &str, upgrade: bool, chunked: bool) -> Vec<u8> {
    let h = &parts.headers;
    let mut out = Vec::with_capacity(256 + 64 * h.len());
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes(),
    );
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let listed = if h.contains_key(header::CONNECTION) {
        connection_listed(h)
    } else {
        Vec::new()
    };
    let mut forwarded_for: Option<Vec<u8>> = None;
    for (name, value) in h {
        let handshake = upgrade && (name == header::CONNECTION || name == header::UPGRADE);
        if (HOP_BY_HOP.contains(name) && !handshake)
            || listed.contains(name)
            || name == X_FORWARDED_PROTO
            || name == X_FORWARDED_PORT
            || name == X_REQUEST_ID
            || name == header::EXPECT
        {
            continue;
        }
        if name == X_FORWARDED_FOR {
            let list = forwarded_for.get_or_insert_with(Vec::new);
            if !list.is_empty() {
                list.extend_from_slice(b", ");
            }
            list.extend_from_slice(value.as_bytes());
            continue;
        }
        upstream::put_field(&mut out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !h.contains_key(header::HOST)
        && let Some(a) = parts.uri.authority()
    {
        upstream::put_field(&mut out, b"host", a.as_str().as_bytes());
    }
    match forwarded_for {
        Some(mut list) => {
            list.extend_from_slice(b", ");
            list.extend_from_slice(conn.peer_value.as_bytes());
            upstream::put_field(&mut out, b"x-forwarded-for", &list);
        }
        None => upstream::put_field(&mut out, b"x-forwarded-for", conn.peer_value.as_bytes()),
    }
    upstream::put_field(&mut out, b"x-forwarded-proto", b"http");
    upstream::put_field(
        &mut out,
        b"x-forwarded-port",
        conn.listener.port_value.as_bytes(),
    );
    upstream::put_field(&mut out, b"x-request-id", trace.as_bytes());
    if chunked {
        upstream::put_field(&mut out, b"transfer-encoding", b"chunked");
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

/// Sends the head, then the client's body, if any, as it arrives.
async fn send_request(
    up: &mut Upstream,
    head: &[u8],
    body: Option<Incoming>,
    chunked: bool,
) -> Result<(), Failure> {
    let exchange = |e| Failure::Exchange(e, false);
    let Some(mut body) = body else {
        return up.send(head).await.map_err(exchange);
    };
    up.send(head).await.map_err(exchange)?;
    let mut framed = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Failure::ClientBody(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if chunked {
            framed.clear();
            upstream::put_chunk(&mut framed, &data);
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

#[allow(clippy::too_many_arguments)]
async fn forward(
    conn: &Conn,
    (tg_name, tg): (&str, Arc<TargetGroup>),
    parts: Parts,
    body: Option<Incoming>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    mut entry: Option<Entry>,
    start: Instant,
    trace: String,
) -> Result<Response<ProxyBody>, Infallible> {
    tg.counters.request_count.fetch_add(1, Relaxed);
    if let Some(e) = entry.as_mut() {
        e.target_group = Some(tg_name.to_owned());
    }
    let spec = tg.spec.load_full();
    let sticky = spec
        .stickiness
        .as_ref()
        .and_then(|s| sticky_target(&parts, s, &tg));
    let had_cookie = spec.stickiness.as_ref().is_some_and(|s| {
        cookie(
            &parts.headers,
            if s.app_cookie.is_some() {
                APP_COOKIE
            } else {
                LB_COOKIE
            },
        )
        .is_some()
    });
    let upgrade = client_upgrade.is_some();
    let length = content_length(&parts.headers);
    // Safe to send twice: an idempotent method and no body to replay.
    let bodiless = body
        .as_ref()
        .is_none_or(|b| b.is_end_stream() || length == Some(0));
    let retriable =
        bodiless && matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let chunked = !bodiless && length.is_none();
    let head = request_head(&parts, conn, &trace, upgrade, chunked);
    let idle = conn.listener.spec.load().idle_timeout.to_std();
    let mut body = if bodiless { None } else { body };
    let mut exclude: Vec<InstanceId> = Vec::new();
    let mut last_error = elb(502, "TargetConnectionError");
    // Each target that fails costs an attempt. One that refuses the connection has
    // been sent nothing, so the request may go to another whatever it is; one that
    // fails after it was sent the request only when the request is safe to repeat,
    // once. A stale pooled connection (the target closed it, or died) costs no
    // attempt: its siblings are closed with it, so it happens once per target.
    let mut attempts_left = 3;
    let mut stale_left = 4;
    let mut resent = false;
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
                    return Ok(elb_answer(conn, entry, start, e));
                }
            };
        let inflight = InFlight::new(target.clone(), tg.clone());
        let sent = instant();
        let exchange = async {
            let (mut up, reused) = target.connection().await.map_err(Failure::Connect)?;
            let sent = send_request(&mut up, &head, body.take(), chunked).await;
            if let Err(Failure::Exchange(e, _)) = sent {
                return Err(Failure::Exchange(e, reused));
            }
            sent?;
            match up.read_head(&parts.method, upgrade).await {
                Ok(h) => Ok((up, h)),
                Err(e) => Err(Failure::Exchange(e, reused)),
            }
        };
        let result = tokio::time::timeout(idle, exchange).await;
        let (mut up, response) = match result {
            Ok(Ok(x)) => x,
            Ok(Err(failure)) => {
                let (may_resend, was_sent) = match failure {
                    Failure::Connect(err) => {
                        tracing::debug!(target = %target.addr, error = %err, "no connection to target");
                        (true, false)
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
                        if !retriable {
                            last_error = elb(502, "TargetConnectionError");
                            break;
                        }
                        tg.counters.retries.fetch_add(1, Relaxed);
                        continue;
                    }
                    Failure::Exchange(ExchangeError::NoResponse(err), _) => {
                        tracing::debug!(target = %target.addr, error = %err, "target closed without a response");
                        (retriable && !resent, true)
                    }
                    Failure::Exchange(ExchangeError::Malformed(err), _) => {
                        tracing::debug!(target = %target.addr, error = %err, "malformed response");
                        last_error = elb(502, "TargetResponseMalformed");
                        if let Some(e) = entry.as_mut() {
                            e.target = Some(target.addr.to_string());
                        }
                        break;
                    }
                };
                last_error = elb(502, "TargetConnectionError");
                tg.counters.target_connection_errors.fetch_add(1, Relaxed);
                exclude.push(target.instance.clone());
                attempts_left -= 1;
                if !may_resend {
                    break;
                }
                resent |= was_sent;
                tg.counters.retries.fetch_add(1, Relaxed);
                continue;
            }
            Err(_) => {
                last_error = elb(504, "TargetResponseTimeout");
                if let Some(e) = entry.as_mut() {
                    e.target = Some(target.addr.to_string());
                }
                break;
            }
        };
        let target_time = sent.elapsed();
        tg.response_time.record(target_time.as_micros() as u64);
        let status = response.status;
        count_target(conn, &tg, status);
        if let Some(e) = entry.as_mut() {
            e.target = Some(target.addr.to_string());
            e.target_status = Some(status.as_u16());
            e.elb_status = status.as_u16();
            e.request_processing = Some(sent.duration_since(start).as_secs_f64());
            e.target_processing = Some(target_time.as_secs_f64());
        }
        let switching = status == StatusCode::SWITCHING_PROTOCOLS;
        let mut headers = response.headers;
        strip_hop_by_hop(&mut headers, switching);
        if let Some(s) = &spec.stickiness {
            set_sticky_cookie(
                &mut headers,
                s,
                &target.instance,
                sticky.is_none() && had_cookie,
            );
        }
        let mut out = Response::new(ProxyBody::Full(None));
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        if switching {
            // A WebSocket: a tunnel of its own, counted as outstanding while open.
            if let Some(client_upgrade) = client_upgrade {
                tokio::spawn(async move {
                    if let Ok(client) = client_upgrade.await {
                        let (mut target_io, early) = up.into_parts();
                        let mut client = TokioIo::new(client);
                        // What the target sent right after its handshake goes first.
                        if tokio::io::AsyncWriteExt::write_all(&mut client, &early)
                            .await
                            .is_ok()
                        {
                            let _ =
                                tokio::io::copy_bidirectional(&mut client, &mut target_io).await;
                        }
                    }
                    drop(inflight);
                });
            }
            if let Some(e) = entry
                && let Some(log) = &conn.shared.access_log
            {
                log.write(e.line());
            }
            return Ok(out);
        }
        let mut framing = response.framing;
        let keep = !response.close;
        let done = Done {
            inflight: Some(inflight),
            upstream: None,
            entry,
            listener: conn.listener.clone(),
            shared: conn.shared.clone(),
            responded: instant(),
            bytes: 0,
        };
        *out.body_mut() = match up.take_whole(&mut framing) {
            Some(data) => {
                // Read whole: the connection goes back to its pool before the client
                // has the answer.
                if keep {
                    target.put_back(up);
                }
                ProxyBody::Whole {
                    data: (!data.is_empty()).then_some(data),
                    done: Some(done),
                }
            }
            None => ProxyBody::Stream {
                up: Some(up),
                framing,
                keep,
                done: Some(done),
            },
        };
        return Ok(out);
    }
    count_elb(&tg, last_error.status);
    Ok(elb_answer(conn, entry, start, last_error))
}

/// Sets the stickiness cookie on a response: bellows' own on every response, or, for
/// app_cookie, when the target set its cookie or the request had to move.
fn set_sticky_cookie(out: &mut HeaderMap, s: &Stickiness, id: &InstanceId, repicked: bool) {
    let (name, set) = match &s.app_cookie {
        None => (LB_COOKIE, true),
        Some(app) => {
            let sets_app = out.get_all(header::SET_COOKIE).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.split_once('=').is_some_and(|(k, _)| k.trim() == app))
            });
            (APP_COOKIE, sets_app || repicked)
        }
    };
    if set
        && let Ok(v) = HeaderValue::from_str(&format!(
            "{name}={id}; Max-Age={}; Path=/",
            s.duration.as_millis() / 1000
        ))
    {
        out.append(header::SET_COOKIE, v);
    }
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

/// An HTTP date (RFC 9110 IMF-fixdate): `Sun, 22 Nov 2026 23:15:02 GMT`.
fn http_date(t: bellows_core::Time) -> String {
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

    #[test]
    fn request_ids_are_distinct() {
        let a = request_id();
        let b = request_id();
        assert_eq!(a.len(), 25);
        assert_ne!(a, b);
    }
}
