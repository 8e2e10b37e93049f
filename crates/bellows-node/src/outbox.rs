//! The persistent outbox: webhook deliveries are written to SQLite first and POSTed by
//! this task with retries and backoff, so a receiver that is down, or a restart of
//! bellows, loses nothing.

use std::path::PathBuf;
use std::time::Duration;

use crate::clock;
use crate::http::Http;
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
    let client = Http::new();
    let mut tick = clock::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let due = match store.due(clock::now()) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "outbox");
                continue;
            }
        };
        for d in due {
            let (id, attempts) = (d.id, d.attempts);
            let result = match prepare(&store, &d) {
                Ok((url, token)) => {
                    send(&client, &d.method, &url, d.body.clone(), token.as_deref()).await
                }
                Err(e) => Err(e),
            };
            let now = clock::now();
            let recorded = match result {
                Ok(answer) => {
                    // An opened issue's number is what later updates address.
                    if let (Some(incident), Some("open")) = (d.incident, d.action.as_deref())
                        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&answer)
                        && let Some(number) = v["number"].as_i64()
                        && let Err(e) = store.set_issue(
                            incident,
                            number,
                            v["html_url"].as_str().unwrap_or_default(),
                        )
                    {
                        tracing::warn!(error = %e, "outbox");
                    }
                    store.delivered(id, now)
                }
                Err(e) => {
                    let wait = Duration::from_secs(1u64 << attempts.clamp(0, 8)).min(MAX_BACKOFF);
                    tracing::info!(delivery = id, url = %d.url, attempt = attempts + 1, error = %e, retry_in = ?wait, "delivery failed");
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

/// The URL with its `{number}` filled in, and the token read from its variable now.
fn prepare(store: &Store, d: &crate::store::Due) -> Result<(String, Option<String>), String> {
    let mut url = d.url.clone();
    if url.contains("{number}") {
        let incident = d
            .incident
            .ok_or("a delivery for an issue without an incident")?;
        let number = store
            .issue_number(incident)
            .map_err(|e| e.to_string())?
            .ok_or("waiting for the incident's issue to be opened")?;
        url = url.replace("{number}", &number.to_string());
    }
    let token = match &d.auth_env {
        None => None,
        Some(var) => Some(
            std::env::var(var).map_err(|_| format!("{var} is not set in bellows' environment"))?,
        ),
    };
    Ok((url, token))
}

async fn send(
    client: &Http,
    method: &str,
    url: &str,
    body: String,
    token: Option<&str>,
) -> Result<String, String> {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("content-type", "application/json"),
        ("accept", "application/vnd.github+json, application/json"),
        ("user-agent", "bellows-webhook/1.0"),
    ];
    if let Some(b) = &bearer {
        headers.push(("authorization", b));
    }
    let answer = client
        .exchange(method, url, &headers, body, Duration::from_secs(10))
        .await?;
    if (200..300).contains(&answer.status) {
        Ok(answer.text())
    } else {
        Err(format!("the receiver answered {}", answer.status))
    }
}
