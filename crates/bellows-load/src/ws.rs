//! WebSocket mode: N clients that behave like browser tabs of the IP tracker. Each
//! opens the page (getting its session cookie), opens the page's socket with that
//! cookie, sends a heartbeat every few seconds and reads the live list. A page or
//! socket turned away (503: every instance is full) is retried after a pause, as the
//! tracker's "scaling out" page does by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::http::{Conn, Failure};
use crate::record::{Outcome, WsSummary};
use crate::{Ctx, clock};

#[derive(Debug, Clone)]
pub struct WsConfig {
    pub clients: usize,
    /// The socket's path; by default the page's path followed by `ws`.
    pub socket_path: String,
    pub heartbeat: Duration,
    /// The pause before a client turned away tries again.
    pub retry: Duration,
    /// Clients start evenly over this long, not all at once.
    pub spread: Duration,
}

impl WsConfig {
    /// The IP tracker's socket for a page path: `/app/` -> `/app/ws`.
    pub fn socket_for(page_path: &str) -> String {
        let path = page_path.split('?').next().unwrap_or("/");
        if path.ends_with('/') {
            format!("{path}ws")
        } else {
            format!("{path}/ws")
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    connected: AtomicU64,
    max_connected: AtomicU64,
    opened: AtomicU64,
    heartbeats: AtomicU64,
    turned_away: AtomicU64,
    dropped: AtomicU64,
}

pub(crate) async fn run(ctx: &Ctx, w: &WsConfig) -> (Duration, WsSummary) {
    let counters = Arc::new(Counters::default());
    let deadline = ctx.cfg.duration.map(|d| ctx.started + d);
    let mut tasks = JoinSet::new();
    for i in 0..w.clients {
        let (ctx, w, counters) = (ctx.clone(), w.clone(), counters.clone());
        let delay = w.spread.mul_f64(i as f64 / w.clients.max(1) as f64);
        tasks.spawn(async move {
            if ctx.pause(delay).await {
                client(&ctx, &w, &counters).await;
            }
        });
    }
    // Until the deadline, or until stopped when there is none.
    match deadline {
        Some(d) => {
            tokio::select! {
                _ = tokio::time::sleep_until(d) => {}
                _ = ctx.until_stopped() => {}
            }
        }
        None => ctx.until_stopped().await,
    }
    let elapsed = clock::since(ctx.started);
    // The clients end here, their sockets dropped (or closed, when stopped), still
    // counted as connected: the count at the end is the count when the run ended.
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let connected_at_end = counters.connected.load(Relaxed);
    let summary = WsSummary {
        clients: w.clients,
        connected_at_end,
        max_connected: counters.max_connected.load(Relaxed),
        opened: counters.opened.load(Relaxed),
        heartbeats: counters.heartbeats.load(Relaxed),
        turned_away: counters.turned_away.load(Relaxed),
        dropped: counters.dropped.load(Relaxed),
    };
    (elapsed, summary)
}

fn set_connected(ctx: &Ctx, counters: &Counters, delta: i64) {
    let n = if delta > 0 {
        let n = counters.connected.fetch_add(1, Relaxed) + 1;
        counters.max_connected.fetch_max(n, Relaxed);
        n
    } else {
        counters.connected.fetch_sub(1, Relaxed) - 1
    };
    ctx.rec
        .lock()
        .expect("recorder lock")
        .set_connected(clock::since(ctx.started), n);
}

async fn client(ctx: &Ctx, w: &WsConfig, counters: &Counters) {
    while !ctx.stopping() {
        // The page: a session cookie (and the load balancer's stickiness cookie).
        let t = clock::now();
        ctx.rec.lock().expect("recorder lock").sent(t - ctx.started);
        let page = clock::timeout(ctx.cfg.timeout, async {
            let mut c = Conn::connect(ctx.addr).await?;
            c.send(&ctx.template, true).await
        })
        .await
        .unwrap_or(Err(Failure::Timeout));
        let cookies = match page {
            Ok(r) => {
                ctx.record(clock::since(t), Outcome::Status(r.status));
                if r.status == 200 {
                    r.cookies
                } else {
                    if r.status == 503 {
                        counters.turned_away.fetch_add(1, Relaxed);
                    }
                    if !ctx.pause(w.retry).await {
                        return;
                    }
                    continue;
                }
            }
            Err(f) => {
                ctx.record(clock::since(t), Outcome::Failed(f));
                if !ctx.pause(w.retry).await {
                    return;
                }
                continue;
            }
        };
        // The socket.
        let url = format!("ws://{}{}", ctx.cfg.url.authority(), w.socket_path);
        let Ok(mut req) = url.as_str().into_client_request() else {
            return;
        };
        if !cookies.is_empty()
            && let Ok(v) = cookies.join("; ").parse()
        {
            req.headers_mut()
                .insert(tungstenite::http::header::COOKIE, v);
        }
        let t = clock::now();
        ctx.rec.lock().expect("recorder lock").sent(t - ctx.started);
        let opened = clock::timeout(ctx.cfg.timeout, async {
            let tcp = tokio::net::TcpStream::connect(ctx.addr).await?;
            tokio_tungstenite::client_async(req, tcp)
                .await
                .map_err(std::io::Error::other)
        })
        .await;
        match opened {
            Ok(Ok((mut socket, _))) => {
                ctx.record(clock::since(t), Outcome::Status(101));
                counters.opened.fetch_add(1, Relaxed);
                set_connected(ctx, counters, 1);
                let mut beat = tokio::time::interval_at(clock::now() + w.heartbeat, w.heartbeat);
                loop {
                    tokio::select! {
                        _ = beat.tick() => {
                            if socket.send(Message::text(r#"{"type":"heartbeat"}"#)).await.is_err() {
                                counters.dropped.fetch_add(1, Relaxed);
                                break;
                            }
                            counters.heartbeats.fetch_add(1, Relaxed);
                        }
                        msg = socket.next() => match msg {
                            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                                counters.dropped.fetch_add(1, Relaxed);
                                break;
                            }
                            _ => {}
                        },
                        _ = ctx.until_stopped() => {
                            let _ = socket.close(None).await;
                            return;
                        }
                    }
                }
                set_connected(ctx, counters, -1);
            }
            Ok(Err(e)) => {
                let status = e
                    .get_ref()
                    .and_then(|e| e.downcast_ref::<tungstenite::Error>())
                    .and_then(|e| match e {
                        tungstenite::Error::Http(r) => Some(r.status().as_u16()),
                        _ => None,
                    });
                match status {
                    Some(s) => {
                        if s == 503 {
                            counters.turned_away.fetch_add(1, Relaxed);
                        }
                        ctx.record(clock::since(t), Outcome::Status(s));
                    }
                    None => ctx.record(clock::since(t), Outcome::Failed(Failure::Reset)),
                }
            }
            Err(_) => ctx.record(clock::since(t), Outcome::Failed(Failure::Timeout)),
        }
        if !ctx.pause(w.retry).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_sits_under_the_page() {
        assert_eq!(WsConfig::socket_for("/app-x7k9m2n8/"), "/app-x7k9m2n8/ws");
        assert_eq!(WsConfig::socket_for("/app?x=1"), "/app/ws");
        assert_eq!(WsConfig::socket_for("/"), "/ws");
    }
}
