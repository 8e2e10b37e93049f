//! Accepting connections: the ingress allow-list, connection counting, and each
//! connection's loop of requests (http1.rs) under the watchdog that stops abuse.
//!
//! A listener that an apply removes (or moves to another address) is stopped: it
//! accepts no more, its socket closes, and each of its connections closes once its
//! request in flight is answered (an idle one at once; one still busy after the
//! listener's idle timeout, such as a WebSocket, then).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use http::HeaderValue;

use crate::forward::{self, Conn};
use crate::http1::ClientIo;
use crate::watch::{Watch, Watched};
use crate::{Listener, Shared};

pub(crate) async fn serve(
    socket: tokio::net::TcpListener,
    listener: Arc<Listener>,
    shared: Arc<Shared>,
) {
    let mut stop = listener.stop.subscribe();
    loop {
        if *stop.borrow_and_update() {
            // Dropping the socket closes it: new connections are refused.
            return;
        }
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            _ = stop.changed() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                tracing::warn!(error = %e, "accept failed");
                crate::clock::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !listener
            .ingress
            .load()
            .iter()
            .any(|c| c.contains(peer.ip()))
        {
            // A security group drops the packet; the closest a socket can come is to
            // reset the connection without a byte of answer.
            listener.counters.rejected_connections.fetch_add(1, Relaxed);
            // Off the request path (a refused connection), so a short lock is fine.
            {
                let mut recent = listener
                    .rejected_sources
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let ip = peer.ip();
                recent.retain(|r| *r != ip);
                recent.push_back(ip);
                if recent.len() > crate::REJECTED_SOURCES {
                    recent.pop_front();
                }
            }
            // Linger zero makes close send a reset at once; it cannot block here.
            #[allow(deprecated)]
            let _ = stream.set_linger(Some(Duration::ZERO));
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        listener.counters.new_connections.fetch_add(1, Relaxed);
        tokio::spawn(connection(stream, peer, listener.clone(), shared.clone()));
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    listener: Arc<Listener>,
    shared: Arc<Shared>,
) {
    listener.counters.active_connections.fetch_add(1, Relaxed);
    let spec = listener.spec.load_full();
    let mut stop = listener.stop.subscribe();
    // When the connection saw its listener stopped, while busy (coarse ms).
    let mut stopped_at: Option<u64> = None;
    let watch = Watch::new();
    let peer_value = HeaderValue::from_str(&peer.ip().to_string())
        .unwrap_or(HeaderValue::from_static("unknown"));
    let conn = Conn {
        peer,
        peer_value,
        listener: listener.clone(),
        shared,
    };
    let mut client = ClientIo::new(Watched {
        inner: stream,
        watch: watch.clone(),
    });
    let served = async {
        loop {
            let head = match client.read_head().await {
                Ok(Some(head)) => head,
                Ok(None) => break,
                Err(e) => {
                    forward::refuse(&conn, &mut client, e).await;
                    break;
                }
            };
            watch.begin();
            let keep = forward::serve(&conn, head, &mut client).await;
            watch.end();
            if !keep || listener.stopped() {
                break;
            }
        }
    };
    tokio::pin!(served);
    let mut tick = crate::clock::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut served => break,
            _ = tick.tick() => {
                if watch.expired(spec.header_timeout.to_std(), spec.idle_timeout.to_std()) {
                    // Slowloris, or idle past the idle timeout: close.
                    break;
                }
                if listener.stopped() {
                    // Idle: close now. Busy (a long answer, a WebSocket): its listener's
                    // idle timeout more, then close anyway.
                    let since = *stopped_at.get_or_insert_with(crate::watch::coarse_now);
                    let grace = spec.idle_timeout.to_std().as_millis() as u64;
                    if watch.idle() || crate::watch::coarse_now().saturating_sub(since) > grace {
                        break;
                    }
                }
            }
            Ok(()) = stop.changed(), if !*stop.borrow() => {
                // The listener is gone: an idle connection closes now, a busy one once
                // its request is answered (the loop above looks after each).
                if watch.idle() {
                    break;
                }
            }
        }
    }
    listener.counters.active_connections.fetch_sub(1, Relaxed);
}
