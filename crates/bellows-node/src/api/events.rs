//! `GET /api/v1/events`: the event stream (Server-Sent Events), live from the loop's
//! broadcast channel after a replay from the store.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bellows_core::event::Event;
use serde::Deserialize;
use tokio::sync::broadcast;

use super::ApiState;
use super::Call;
use super::types::*;

#[derive(Deserialize)]
pub(super) struct EventsQuery {
    /// Replay stored events after this sequence number first (as `Last-Event-ID`).
    after: Option<i64>,
}

/// `GET /api/v1/events`: every state change as Server-Sent Events, `id` = its sequence
/// number in the store, `event` = its kind, `data` = the event as JSON. A client that
/// reconnects with `Last-Event-ID` (or `?after=`) gets what it missed first.
pub(super) async fn events(
    State(s): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    use axum::response::sse::{Event as Sse, KeepAlive};
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let after = match headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::parse::<i64>)
    {
        Some(Ok(seq)) => Some(seq),
        Some(Err(_)) => return Err(ApiError::bad_request("Last-Event-ID must be a number")),
        None => q.after,
    };
    // Subscribe before reading the store, so nothing falls between the two.
    let live = s.events.subscribe();
    let replay = match after {
        Some(seq) => s.ask(|reply| Call::EventsAfter { seq, reply }).await??,
        None => Vec::new(),
    };
    let last = replay.last().map_or(after.unwrap_or(0), |(seq, _)| *seq);
    let to_sse = |seq: i64, e: &Event| {
        Sse::default()
            .id(seq.to_string())
            .event(e.kind())
            .json_data(e)
            .unwrap_or_else(|_| Sse::default().comment("unserialisable event"))
    };
    let replayed: Vec<Result<Sse, std::convert::Infallible>> =
        replay.iter().map(|(seq, e)| Ok(to_sse(*seq, e))).collect();
    let live = futures_util::stream::unfold((live, last), move |(mut rx, last)| async move {
        loop {
            match rx.recv().await {
                Ok((seq, e)) if seq > last => {
                    return Some((Ok(to_sse(seq, &e)), (rx, seq)));
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let note = Sse::default().event("lagged").data(format!(
                        "{n} events were dropped; reconnect with Last-Event-ID to replay them"
                    ));
                    return Some((Ok(note), (rx, last)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let stream = futures_util::StreamExt::chain(futures_util::stream::iter(replayed), live);
    Ok(axum::response::Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
