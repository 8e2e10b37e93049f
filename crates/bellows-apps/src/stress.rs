//! The stress app of seeds/002, section 2: `GET /` returns the instance's private IP,
//! `POST /` starts a CPU stress in the background and answers at once, `GET /health`
//! answers health checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

/// A stress request; both fields are optional.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StressRequest {
    pub seconds: u64,
    pub workers: usize,
}

impl Default for StressRequest {
    fn default() -> Self {
        StressRequest {
            seconds: 60,
            workers: 1,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Busy {
    workers: Arc<AtomicUsize>,
}

pub fn app() -> Router {
    Router::new()
        .route("/", get(whoami).post(stress))
        .route("/health", get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(Busy::default())
}

async fn whoami() -> String {
    std::env::var("PRIVATE_IP").unwrap_or_else(|_| "127.0.0.1".to_owned())
}

async fn stress(State(busy): State<Busy>, body: Bytes) -> Response {
    let req = if body.iter().all(u8::is_ascii_whitespace) {
        StressRequest::default()
    } else {
        match serde_json::from_slice::<StressRequest>(&body) {
            Ok(r) => r,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!(
                        "the body must be JSON like {{\"seconds\": 60, \"workers\": 1}}: {e}\n"
                    ),
                )
                    .into_response();
            }
        }
    };
    if !(1..=3600).contains(&req.seconds) || !(1..=64).contains(&req.workers) {
        return (
            StatusCode::BAD_REQUEST,
            "\"seconds\" must be from 1 to 3600 and \"workers\" from 1 to 64\n",
        )
            .into_response();
    }
    for _ in 0..req.workers {
        let workers = busy.workers.clone();
        workers.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || {
            burn(Duration::from_secs(req.seconds));
            workers.fetch_sub(1, Ordering::SeqCst);
        });
    }
    let body = serde_json::json!({
        "stress": "started",
        "seconds": req.seconds,
        "workers": req.workers,
        "busy_workers": busy.workers.load(Ordering::SeqCst),
        "instance": crate::instance_id(),
    });
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}

/// Keeps one core busy for `d`.
fn burn(d: Duration) {
    let end = crate::clock::instant() + d;
    let mut x: u64 = 1;
    while crate::clock::instant() < end {
        for _ in 0..10_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        std::hint::black_box(x);
    }
}
