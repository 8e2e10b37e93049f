//! An echo server for trying the load balancer (like httpbin): it answers with what it
//! received and who it is, and can be asked to misbehave.
//!
//! - any path: `{"instance", "method", "path", "query", "headers", "body_bytes"}`;
//!   `?sleep=MS` first waits that long (at most 10 minutes);
//! - `/status/CODE`: answers with that status;
//! - `/stream/N`: N lines (`line I`, at most ten million), each sent as it is made, so
//!   the body goes out chunked with no length known in advance;
//! - `/ws`: a WebSocket that echoes every message;
//! - `/health`: 200.
//! - `POST /misbehave?status=CODE`: from then on this instance answers every request but
//!   `/health` (and `/behave`) with that status, as a bad deploy that still passes its
//!   health check would; `POST /behave` ends it.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicU16, Ordering::Relaxed};

use axum::routing::{any, get, post};
use futures_util::StreamExt;

pub fn app() -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/misbehave", post(misbehave))
        .route(
            "/behave",
            post(|| async {
                MISBEHAVE.store(0, Relaxed);
                "behaving\n"
            }),
        )
        .route("/status/{code}", any(status))
        .route("/stream/{n}", get(stream))
        .route("/ws", get(ws))
        .fallback(echo)
        .layer(axum::middleware::from_fn(unless_misbehaving))
}

/// The status every request gets while misbehaving; 0 when behaving.
static MISBEHAVE: AtomicU16 = AtomicU16::new(0);

async fn misbehave(Query(q): Query<BTreeMap<String, String>>) -> Response {
    match q.get("status").and_then(|s| s.parse::<u16>().ok()) {
        Some(code @ 200..=599) => {
            MISBEHAVE.store(code, Relaxed);
            format!("answering {code}\n").into_response()
        }
        _ => (StatusCode::BAD_REQUEST, "status must be from 200 to 599\n").into_response(),
    }
}

async fn unless_misbehaving(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let code = MISBEHAVE.load(Relaxed);
    let exempt = ["/health", "/behave", "/misbehave"].contains(&req.uri().path());
    match StatusCode::from_u16(code) {
        Ok(status) if code != 0 && !exempt => (status, "misbehaving\n").into_response(),
        _ => next.run(req).await,
    }
}

async fn status(Path(code): Path<u16>) -> Response {
    match StatusCode::from_u16(code) {
        Ok(s) if code >= 200 => (s, format!("{code}\n")).into_response(),
        _ => (
            StatusCode::BAD_REQUEST,
            "the status must be from 200 to 999\n",
        )
            .into_response(),
    }
}

async fn echo(
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Some(ms) = q.get("sleep").and_then(|s| s.parse::<u64>().ok()) {
        crate::clock::sleep(Duration::from_millis(ms.min(600_000))).await;
    }
    let headers: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    axum::Json(serde_json::json!({
        "instance": crate::instance_id(),
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": headers,
        "body_bytes": body.len(),
    }))
    .into_response()
}

async fn stream(Path(n): Path<u32>) -> Response {
    let lines = futures_util::stream::iter(0..n.min(10_000_000)).then(|i| async move {
        tokio::task::yield_now().await;
        Ok::<_, std::convert::Infallible>(format!("line {i}\n"))
    });
    axum::body::Body::from_stream(lines).into_response()
}

async fn ws(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(|mut socket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            let reply = match msg {
                Message::Text(t) => Message::Text(t),
                Message::Binary(b) => Message::Binary(b),
                Message::Close(_) => break,
                _ => continue,
            };
            if socket.send(reply).await.is_err() {
                break;
            }
        }
    })
}
