//! The persistent outbox: webhook deliveries are written to SQLite first and POSTed by
//! this task with retries and backoff, so a receiver that is down, or a restart of
//! bellows, loses nothing.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::clock;
use crate::store::Store;

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Delivers what is due, every second, until the process ends.
pub async fn run(db: PathBuf) {
    let mut store = match Store::open(&db) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "the outbox cannot open the state database; webhooks are not delivered");
            return;
        }
    };
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let due = match store.due(clock::now()) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "outbox");
                continue;
            }
        };
        for (id, url, body, attempts) in due {
            let result = post(&client, &url, body).await;
            let now = clock::now();
            let recorded = match result {
                Ok(()) => store.delivered(id, now),
                Err(e) => {
                    let wait = Duration::from_secs(1u64 << attempts.clamp(0, 8)).min(MAX_BACKOFF);
                    tracing::info!(delivery = id, %url, attempt = attempts + 1, error = %e, retry_in = ?wait, "webhook delivery failed");
                    store.failed(
                        id,
                        now + bellows_core::Duration::from_millis(wait.as_millis() as u64),
                        &e,
                    )
                }
            };
            if let Err(e) = recorded {
                tracing::warn!(error = %e, "outbox");
            }
        }
    }
}

async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    body: String,
) -> Result<(), String> {
    let req = Request::post(url)
        .header("content-type", "application/json")
        .header("user-agent", "bellows-webhook/1.0")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {status}"))
    }
}
