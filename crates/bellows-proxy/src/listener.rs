//! Accepting connections: the ingress allow-list, connection counting, and hyper's
//! HTTP/1.1 server with the limits that stop abuse.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::forward::{self, Conn};
use crate::watch::{Watch, Watched};
use crate::{Listener, Shared};

/// hyper's read buffer: room for ALB's 64 KiB of headers and the request line; the
/// exact limits (16 KiB a header, 64 KiB in all) are checked per request in forward.rs.
pub const MAX_HEAD: usize = 96 * 1024;

pub(crate) async fn serve(
    socket: tokio::net::TcpListener,
    listener: Arc<Listener>,
    shared: Arc<Shared>,
) {
    loop {
        let (stream, peer) = match socket.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
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
    let watch = Watch::new();
    let peer_value = HeaderValue::from_str(&peer.ip().to_string())
        .unwrap_or(HeaderValue::from_static("unknown"));
    let conn = Arc::new(Conn {
        peer,
        peer_value,
        listener: listener.clone(),
        shared,
        watch: watch.clone(),
    });
    let service = service_fn(move |req| forward::handle(conn.clone(), req));
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Targets date their own responses; the load balancer's own answers carry a Date set
    // in forward.rs. (hyper's automatic Date reads the clock for every response.)
    builder
        .max_buf_size(MAX_HEAD)
        .writev(false)
        .keep_alive(true)
        .auto_date_header(false);
    let io = TokioIo::new(Watched {
        inner: stream,
        watch: watch.clone(),
    });
    let served = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(served);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            result = &mut served => {
                if let Err(e) = result {
                    tracing::trace!(error = %e, %peer, "connection ended with an error");
                }
                break;
            }
            _ = tick.tick() => {
                if watch.expired(spec.header_timeout.to_std(), spec.idle_timeout.to_std()) {
                    // Slowloris, or idle past the idle timeout: close.
                    break;
                }
            }
        }
    }
    listener.counters.active_connections.fetch_sub(1, Relaxed);
}
