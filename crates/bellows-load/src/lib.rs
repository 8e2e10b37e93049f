//! The load generator of bellows: `bellows load URL` and the scenarios' traffic.
//!
//! Three ways to load a target. An **open loop** sends each request at its due time
//! from a [`schedule::Plan`] (a fixed rate, a ramp, steps, a trace), whatever the
//! server does, and measures latency from that due time, which corrects for coordinated
//! omission: a stalled server cannot hide the requests it kept waiting. A **closed
//! loop** runs N connections that each send the next request when the last one is
//! answered. **WebSocket mode** ([`ws`]) plays N browser tabs of the IP tracker. Each
//! records into one [`record::Recorder`]: counts by status and failure, an HDR histogram
//! and a row per second.

#![forbid(unsafe_code)]

pub mod chart;
mod clock;
mod closed;
pub mod http;
mod open;
pub mod record;
pub mod schedule;
pub mod ws;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::http::{Template, Url};
use crate::record::{Latency, Outcome, Recorder, Second, Summary};
use crate::schedule::Plan;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad flag or argument; the message says which and why.
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(String),
}

/// How the load is shaped.
#[derive(Debug, Clone)]
pub enum Load {
    /// Requests at their due times from the plan; `what` describes it ("fixed 500/s").
    Open { plan: Plan, what: String },
    /// `connections` connections, each one request after the other.
    Closed { connections: usize },
    /// Browser tabs of the IP tracker, over WebSockets.
    WebSocket(ws::WsConfig),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub url: Url,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Reuse connections; otherwise a new connection per request.
    pub keep_alive: bool,
    pub load: Load,
    /// Stop after this long (an open loop's plan is cut to it).
    pub duration: Option<Duration>,
    /// Stop after this many requests.
    pub requests: Option<u64>,
    /// One request's limit, connecting included.
    pub timeout: Duration,
    /// An open loop's most connections at once; further requests wait for one (and their
    /// wait counts in their latency).
    pub max_connections: usize,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Report {
    pub summary: Summary,
    pub seconds: Vec<Second>,
}

/// A run in progress: read its recorder while it goes, stop it, or await its report.
#[derive(Debug)]
pub struct Running {
    recorder: Arc<Mutex<Recorder>>,
    started: Instant,
    stop: Stopper,
    task: tokio::task::JoinHandle<Report>,
}

impl Running {
    pub fn recorder(&self) -> &Arc<Mutex<Recorder>> {
        &self.recorder
    }

    pub fn elapsed(&self) -> Duration {
        clock::since(self.started)
    }

    /// Asks the run to stop now (in-flight requests finish first).
    pub fn stop(&self) {
        self.stop.stop();
    }

    /// A handle that stops the run from elsewhere (a signal handler).
    pub fn stopper(&self) -> Stopper {
        self.stop.clone()
    }

    pub async fn finish(self) -> Report {
        match self.task.await {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// Stops a run.
#[derive(Debug, Clone)]
pub struct Stopper {
    tx: Arc<watch::Sender<bool>>,
    flag: Arc<AtomicBool>,
}

impl Stopper {
    pub fn stop(&self) {
        self.flag.store(true, Ordering::Relaxed);
        let _ = self.tx.send(true);
    }
}

/// Starts a run on the current runtime.
pub async fn start(cfg: Config) -> Result<Running, Error> {
    let addr = cfg.url.resolve().await?;
    let template = Template::new(
        &cfg.url,
        &cfg.method,
        &cfg.headers,
        &cfg.body,
        cfg.keep_alive,
    )?;
    if let Load::Closed { connections: 0 } = cfg.load {
        return Err(Error::Usage("--concurrency must be at least 1".into()));
    }
    if cfg.max_connections == 0 {
        return Err(Error::Usage("--max-connections must be at least 1".into()));
    }
    let recorder = Arc::new(Mutex::new(Recorder::new()));
    let started = clock::now();
    let (stop, stopped) = watch::channel(false);
    let flag = Arc::new(AtomicBool::new(false));
    let ctx = Ctx {
        cfg: Arc::new(cfg),
        addr,
        template,
        rec: recorder.clone(),
        started,
        stopped,
        stop_flag: flag.clone(),
    };
    let task = tokio::spawn(async move {
        let (elapsed, requested, mode, ws) = match &ctx.cfg.load {
            Load::Open { plan, what } => {
                let plan = match ctx.cfg.duration {
                    Some(d) => plan.clone().truncate(d.as_secs_f64()),
                    None => plan.clone(),
                };
                let e = open_loop(&ctx, &plan).await;
                let requested = if plan.duration() > 0.0 {
                    let total = ctx
                        .cfg
                        .requests
                        .map_or(plan.total(), |n| plan.total().min(n as f64));
                    Some(total / plan.duration().min(e.as_secs_f64()).max(1e-9))
                } else {
                    None
                };
                (e, requested, format!("open loop, {what}"), None)
            }
            Load::Closed { connections } => {
                let e = closed_loop(&ctx, *connections).await;
                (
                    e,
                    None,
                    format!(
                        "closed loop, {connections} connection{}{}",
                        if *connections == 1 { "" } else { "s" },
                        if ctx.cfg.keep_alive {
                            ""
                        } else {
                            ", a new one per request"
                        }
                    ),
                    None,
                )
            }
            Load::WebSocket(w) => {
                let (e, summary) = ws::run(&ctx, w).await;
                (
                    e,
                    None,
                    format!("{} WebSocket clients", w.clients),
                    Some(summary),
                )
            }
        };
        let mut rec = ctx.rec.lock().expect("recorder lock");
        rec.finish(clock::since(ctx.started));
        let completed = rec.completed();
        let summary = Summary {
            url: format!("http://{}{}", ctx.cfg.url.authority(), ctx.cfg.url.path),
            mode,
            elapsed_s: elapsed.as_secs_f64(),
            sent: rec.sent,
            completed,
            rate: completed as f64 / elapsed.as_secs_f64().max(1e-9),
            requested_rate: requested,
            statuses: rec.statuses.clone(),
            errors: rec
                .failures
                .iter()
                .map(|(f, n)| (f.label().to_owned(), *n))
                .collect(),
            latency_ms: Latency::of(&rec),
            latency_percentiles_ms: record::percentiles(&rec.latency),
            corrected_for_coordinated_omission: matches!(ctx.cfg.load, Load::Open { .. }),
            websocket: ws,
        };
        Report {
            summary,
            seconds: rec.seconds.clone(),
        }
    });
    Ok(Running {
        recorder,
        started,
        stop: Stopper {
            tx: Arc::new(stop),
            flag,
        },
        task,
    })
}

/// Runs to the end.
pub async fn run(cfg: Config) -> Result<Report, Error> {
    Ok(start(cfg).await?.finish().await)
}

/// The shared context of one run's tasks.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub cfg: Arc<Config>,
    pub addr: std::net::SocketAddr,
    pub template: Template,
    pub rec: Arc<Mutex<Recorder>>,
    pub started: Instant,
    pub stopped: watch::Receiver<bool>,
    /// The same as `stopped`, cheaper to read on every request.
    pub stop_flag: Arc<AtomicBool>,
}

impl Ctx {
    pub fn stopping(&self) -> bool {
        self.stop_flag.load(Ordering::Relaxed)
    }

    pub fn record(&self, latency: Duration, outcome: Outcome) {
        let at = clock::since(self.started);
        self.rec
            .lock()
            .expect("recorder lock")
            .record(at, latency, outcome);
    }

    /// Returns when the run is asked to stop.
    pub async fn until_stopped(&self) {
        let mut stopped = self.stopped.clone();
        let _ = stopped.wait_for(|s| *s).await;
    }

    /// Waits out `d`, or less when the run is stopped; false if stopped.
    pub async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = clock::sleep(d) => !self.stopping(),
            _ = self.until_stopped() => false,
        }
    }
}

/// Sends every request of the plan at its due time; returns how long sending took.
/// The plan is dealt out among as many event loops as the runtime has worker threads
/// (one on a single-threaded runtime), each with its share of the connections.
async fn open_loop(ctx: &Ctx, plan: &Plan) -> Duration {
    let threads = tokio::runtime::Handle::current()
        .metrics()
        .num_workers()
        .clamp(1, ctx.cfg.max_connections);
    let mut loops = JoinSet::new();
    for share in 0..threads {
        let (ctx, plan) = (ctx.clone(), plan.clone());
        let max_connections = ctx.cfg.max_connections / threads
            + usize::from(share < ctx.cfg.max_connections % threads);
        loops.spawn_blocking(move || {
            open::Loop {
                ctx: &ctx,
                plan: &plan,
                share,
                of: threads,
                max_connections,
            }
            .run()
        });
    }
    let mut last = Duration::ZERO;
    while let Some(r) = loops.join_next().await {
        match r {
            Ok(Ok(l)) => last = last.max(l),
            Ok(Err(e)) => eprintln!("bellows load: event loop: {e}"),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    let planned = Duration::from_secs_f64(plan.duration());
    if ctx.stopping() {
        last
    } else {
        last.max(planned)
    }
}

/// N connections, each sending its next request when the last one is answered, spread
/// over as many event loops as the runtime has worker threads (one on a single-threaded
/// runtime, like wrk -t1).
async fn closed_loop(ctx: &Ctx, connections: usize) -> Duration {
    let budget = Arc::new(AtomicU64::new(0));
    let deadline = match (ctx.cfg.duration, ctx.cfg.requests) {
        (Some(d), _) => Some(ctx.started + d),
        (None, Some(_)) => None,
        (None, None) => Some(ctx.started + Duration::from_secs(10)),
    };
    let threads = tokio::runtime::Handle::current()
        .metrics()
        .num_workers()
        .clamp(1, connections);
    let mut loops = JoinSet::new();
    for k in 0..threads {
        let n = connections / threads + usize::from(k < connections % threads);
        let (ctx, budget) = (ctx.clone(), budget.clone());
        loops.spawn_blocking(move || {
            let l = closed::Loop {
                ctx: &ctx,
                deadline,
                budget: &budget,
            };
            l.run(n)
        });
    }
    while let Some(r) = loops.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // The poller itself failed (out of file descriptors for epoll, say):
                // what was measured stands, and the error is said.
                eprintln!("bellows load: event loop: {e}");
            }
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    clock::since(ctx.started)
}

/// The live line: the last second's rate, errors so far, p50/p99 so far.
pub fn progress_line(rec: &mut Recorder, elapsed: Duration) -> String {
    rec.advance(elapsed);
    let last = rec
        .seconds
        .iter()
        .rev()
        .find(|s| s.second < elapsed.as_secs())
        .map_or(0, |s| s.completed);
    let fivexx: u64 = rec.seconds.iter().map(|s| s.status_5xx).sum();
    let mut line = format!(
        "{:>5.1}s  sent {}  done {}  {} req/s  errors {}  5xx {}  p50 {:.2} ms  p99 {:.2} ms",
        elapsed.as_secs_f64(),
        rec.sent,
        rec.completed(),
        last,
        rec.errors(),
        fivexx,
        rec.percentile_ms(0.5),
        rec.percentile_ms(0.99)
    );
    if rec.connected > 0 {
        line += &format!("  ws connected {}", rec.connected);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers 200 to every request, holding every answer while `stall`
    /// says so (a global pause, as in a GC or a full queue).
    async fn server(stall: Arc<Mutex<Option<(Instant, Instant)>>>) -> (Url, Arc<AtomicU64>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", l.local_addr().unwrap())).unwrap();
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let (c, stall) = (c.clone(), stall.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut have = Vec::new();
                    loop {
                        let n = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        have.extend_from_slice(&buf[..n]);
                        while let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                            have.drain(..end + 4);
                            c.fetch_add(1, Ordering::SeqCst);
                            let window = *stall.lock().unwrap();
                            if let Some((from, to)) = window {
                                let now = clock::now();
                                if now >= from && now < to {
                                    tokio::time::sleep_until(to).await;
                                }
                            }
                            if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, count)
    }

    /// A server on 127.0.0.1:0 that runs `conn` on every connection it accepts; its
    /// URL and a count of the connections accepted.
    async fn serve<F, Fut>(conn: F) -> (Url, Arc<AtomicU64>)
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", l.local_addr().unwrap())).unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let a = accepted.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(conn(s));
            }
        });
        (url, accepted)
    }

    fn config(url: Url, load: Load, secs: f64) -> Config {
        Config {
            url,
            method: "GET".into(),
            headers: vec![],
            body: vec![],
            keep_alive: true,
            load,
            duration: Some(Duration::from_secs_f64(secs)),
            requests: None,
            timeout: Duration::from_secs(5),
            max_connections: 1,
        }
    }

    #[tokio::test]
    async fn an_open_loop_counts_a_stall_against_every_request_it_delayed() {
        let stall = Arc::new(Mutex::new(None));
        let (url, count) = server(stall.clone()).await;
        let now = clock::now();
        *stall.lock().unwrap() = Some((
            now + Duration::from_millis(500),
            now + Duration::from_millis(1000),
        ));
        // 100/s over one connection: the 50 requests due during the half-second stall
        // wait 500 ms down to 10 ms; measured from their due times they fill the top
        // quarter of the distribution.
        let open = Load::Open {
            plan: Plan::fixed(100.0, 2.0),
            what: "fixed 100/s".into(),
        };
        let r = run(config(url.clone(), open, 2.0)).await.unwrap();
        assert_eq!(r.summary.completed, 200);
        assert_eq!(count.load(Ordering::SeqCst), 200);
        assert!(
            r.summary.latency_ms.p90 >= 200.0,
            "{:?}",
            r.summary.latency_ms
        );
        assert!(
            r.summary.latency_ms.p50 < 100.0,
            "{:?}",
            r.summary.latency_ms
        );
        // A closed loop over one connection hides the stall in a single sample.
        let now = clock::now();
        *stall.lock().unwrap() = Some((
            now + Duration::from_millis(300),
            now + Duration::from_millis(800),
        ));
        let closed = Load::Closed { connections: 1 };
        let r = run(config(url, closed, 1.0)).await.unwrap();
        assert!(r.summary.completed > 100, "{}", r.summary.completed);
        assert!(
            r.summary.latency_ms.p90 < 50.0,
            "{:?}",
            r.summary.latency_ms
        );
        assert!(r.summary.latency_ms.max >= 400.0);
    }

    #[tokio::test]
    async fn large_bodies_are_skipped_whole_on_a_kept_connection() {
        let (url, accepted) = serve(|mut s| async move {
            let body = vec![b'x'; 300_000];
            let mut buf = vec![0u8; 4096];
            let mut have = Vec::new();
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => have.extend_from_slice(&buf[..n]),
                }
                while let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                    have.drain(..end + 4);
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                    if s.write_all(head.as_bytes()).await.is_err()
                        || s.write_all(&body).await.is_err()
                    {
                        return;
                    }
                }
            }
        })
        .await;
        let mut cfg = config(url, Load::Closed { connections: 2 }, 60.0);
        cfg.duration = None;
        cfg.requests = Some(40);
        let r = run(cfg).await.unwrap();
        assert_eq!(r.summary.statuses.get(&200), Some(&40), "{:?}", r.summary);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn every_way_a_response_can_end_is_read_to_its_end() {
        // Per connection, in turn: a chunked body (kept alive), an interim 100 then a
        // Content-Length body (kept alive), a 204 with no body (kept alive), a body
        // that ends with the connection (HTTP/1.0 style), then a new connection.
        let (url, accepted) = serve(|mut s| async move {
            let answers: [&[u8]; 4] = [
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok",
                b"HTTP/1.1 204 No Content\r\n\r\n",
                b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
            ];
            let mut buf = vec![0u8; 4096];
            let mut have = Vec::new();
            for answer in answers {
                while !have.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => have.extend_from_slice(&buf[..n]),
                    }
                }
                let end = have.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                have.drain(..end + 4);
                if s.write_all(answer).await.is_err() {
                    return;
                }
            }
            // The last answer ends when the connection does.
        })
        .await;
        // One connection, so that the 40 requests are ten whole rounds of the four.
        let mut cfg = config(url, Load::Closed { connections: 1 }, 60.0);
        cfg.duration = None;
        cfg.requests = Some(40);
        let r = run(cfg).await.unwrap();
        assert_eq!(r.summary.errors, BTreeMap::new(), "{:?}", r.summary);
        assert_eq!(
            r.summary.statuses,
            BTreeMap::from([(200, 20), (201, 10), (204, 10)]),
            "{:?}",
            r.summary
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 10);
    }

    #[tokio::test]
    async fn an_answer_before_the_request_is_all_written_is_read() {
        // The server answers 413 on the head alone, then drains the large body slowly:
        // the answer is in long before the request is all written.
        let (url, _) = serve(|mut s| async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut have = Vec::new();
            while !have.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => have.extend_from_slice(&buf[..n]),
                }
            }
            let answer =
                b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            if s.write_all(answer).await.is_err() {
                return;
            }
            clock::sleep(Duration::from_millis(200)).await;
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    return;
                }
            }
        })
        .await;
        let mut cfg = config(url, Load::Closed { connections: 1 }, 60.0);
        cfg.method = "POST".into();
        cfg.body = vec![b'x'; 32 << 20];
        cfg.duration = None;
        cfg.requests = Some(1);
        cfg.timeout = Duration::from_secs(3);
        let r = run(cfg).await.unwrap();
        assert_eq!(
            (r.summary.statuses.get(&413), r.summary.errors.len()),
            (Some(&1), 0),
            "{:?}",
            r.summary
        );
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_requests_out() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", l.local_addr().unwrap())).unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let mut cfg = config(url, Load::Closed { connections: 2 }, 1.0);
        cfg.timeout = Duration::from_millis(300);
        let r = run(cfg).await.unwrap();
        let timeouts = r.summary.errors["timeout"];
        // Each connection: 0.3 s, 0.6 s, 0.9 s, then one that ends at 1.2 s.
        assert!((6..=8).contains(&timeouts), "{:?}", r.summary.errors);
        assert!(
            r.summary.latency_ms.min >= 299.0,
            "{:?}",
            r.summary.latency_ms
        );
    }

    #[tokio::test]
    async fn a_request_budget_is_exact_and_a_refusing_server_is_an_error() {
        let (url, count) = server(Arc::default()).await;
        let mut cfg = config(url, Load::Closed { connections: 3 }, 60.0);
        cfg.duration = None;
        cfg.requests = Some(101);
        let r = run(cfg).await.unwrap();
        assert_eq!((r.summary.completed, r.summary.statuses[&200]), (101, 101));
        assert_eq!(count.load(Ordering::SeqCst), 101);

        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let mut cfg = config(url, Load::Closed { connections: 1 }, 60.0);
        cfg.duration = None;
        cfg.requests = Some(5);
        let r = run(cfg).await.unwrap();
        assert_eq!(r.summary.errors["connection refused"], 5);
    }
}
