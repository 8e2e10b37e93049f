//! The instances' calls: the list, termination, health, protection, logs and stress.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bellows_core::event::Capacity;
use bellows_core::group::Lifecycle;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::Call;
use super::auth::Operator;
use super::json::{Json, RawBody};
use super::types::*;
use super::{ApiState, instance_id};

pub(super) async fn instances(
    State(s): State<ApiState>,
) -> Result<axum::Json<Vec<InstanceView>>, ApiError> {
    s.ask(Call::Instances).await.map(axum::Json)
}

pub(super) async fn terminate(
    State(s): State<ApiState>,
    Operator(actor): Operator,
    Path(id): Path<String>,
    Json(body): Json<TerminateRequest>,
) -> Result<axum::Json<Capacity>, ApiError> {
    let instance = instance_id(&id)?;
    s.ask(|reply| Call::Terminate {
        instance,
        decrement: body.decrement_desired,
        actor,
        reply,
    })
    .await?
    .map(axum::Json)
}

pub(super) async fn set_health(
    State(s): State<ApiState>,
    Operator(actor): Operator,
    Path(id): Path<String>,
    Json(body): Json<HealthRequest>,
) -> Result<StatusCode, ApiError> {
    let instance = instance_id(&id)?;
    s.ask(|reply| Call::SetHealth {
        instance,
        health: body.health,
        actor,
        reply,
    })
    .await??;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn set_protection(
    State(s): State<ApiState>,
    Operator(actor): Operator,
    Path(id): Path<String>,
    Json(body): Json<ProtectionRequest>,
) -> Result<StatusCode, ApiError> {
    let instance = instance_id(&id)?;
    s.ask(|reply| Call::SetProtection {
        instance,
        protected: body.protected,
        actor,
        reply,
    })
    .await??;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub(super) struct LogQuery {
    #[serde(default)]
    follow: bool,
    /// Bytes from the end to start with; the whole log when absent.
    tail: Option<u64>,
}

pub(super) async fn logs(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let instance = instance_id(&id)?;
    let iid = instance.clone();
    let (path, _) = s
        .ask(|reply| Call::Log {
            instance: iid,
            reply,
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no log for instance `{id}`")))?;
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .len();
    let start = q.tail.map_or(0, |t| len.saturating_sub(t));
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("static header"),
    );
    if !q.follow {
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        return Ok((headers, buf).into_response());
    }
    // Follow: send what is there, then what gets appended, until the instance is gone
    // and its log read to the end, or the client goes away.
    let stream = futures_util::stream::unfold(
        (file, s, instance, false),
        |(mut file, s, instance, done)| async move {
            if done {
                return None;
            }
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match file.read(&mut buf).await {
                    Ok(0) => {
                        let running = s
                            .ask(|reply| Call::Log {
                                instance: instance.clone(),
                                reply,
                            })
                            .await
                            .ok()
                            .flatten()
                            .is_some_and(|(_, r)| r);
                        if !running {
                            let mut rest = Vec::new();
                            let _ = file.read_to_end(&mut rest).await;
                            return Some((
                                Ok::<_, std::io::Error>(bytes::Bytes::from(rest)),
                                (file, s, instance, true),
                            ));
                        }
                        crate::clock::sleep(Duration::from_millis(200)).await;
                    }
                    Ok(n) => {
                        buf.truncate(n);
                        return Some((Ok(bytes::Bytes::from(buf)), (file, s, instance, false)));
                    }
                    Err(e) => return Some((Err(e), (file, s, instance, true))),
                }
            }
        },
    );
    Ok((headers, Body::from_stream(stream)).into_response())
}

/// How long an instance has to answer a stress request.
const STRESS_TIMEOUT: Duration = Duration::from_secs(5);

/// `POST /api/v1/instances/{id}/stress`: asks the instance (the stress app of seed 002)
/// to load its CPU, as a `POST /` to it would; the body is passed on as it is.
pub(super) async fn stress(
    State(s): State<ApiState>,
    Operator(actor): Operator,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let instance = instance_id(&id)?;
    if !body.is_empty() {
        serde_json::from_slice::<serde_json::Value>(&body)
            .map_err(|e| ApiError::bad_request(format!("the body must be JSON: {e}")))?;
    }
    let target = s
        .ask(Call::Instances)
        .await?
        .into_iter()
        .find(|i| i.id == instance && i.lifecycle == Lifecycle::InService)
        .and_then(|i| i.private_ip.map(|ip| format!("{ip}:{}", i.port)))
        .ok_or_else(|| ApiError::not_found(format!("no instance `{id}` in service")))?;
    let answer = crate::http::Http::new()
        .exchange(
            "POST",
            &format!("http://{target}/"),
            &[("content-type", "application/json")],
            body.clone(),
            STRESS_TIMEOUT,
        )
        .await
        .map_err(|e| {
            if e.starts_with("no answer within") {
                ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "timeout",
                    format!("{target} did not answer within 5 s"),
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "unreachable",
                    format!("{target}: {e}"),
                )
            }
        })?;
    let (status, text) = (answer.status, answer.text());
    let _ = s
        .ask(|reply| Call::Note {
            actor,
            action: "StartStress".to_owned(),
            target: format!("instance/{id}"),
            after: serde_json::json!({ "request": String::from_utf8_lossy(&body), "status": status }),
            ok: (200..300).contains(&status),
            reply,
        })
        .await;
    if !(200..300).contains(&status) {
        // The instance is there but would not stress (not the stress app, or a body it
        // refuses): the caller's request cannot be carried out there, not a gateway fault.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "instance_refused",
            format!("{target} answered {status}: {}", text.trim()),
        ));
    }
    Ok(axum::Json(
        serde_json::json!({ "instance": id, "status": status, "answer": text.trim() }),
    ))
}
