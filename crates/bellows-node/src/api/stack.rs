//! The stack as a whole: its status, the file it runs, and `bellows apply`.

use axum::extract::State;

use super::ApiState;
use super::Call;
use super::auth::Operator;
use super::json::Json;
use super::types::*;

pub(super) async fn status(State(s): State<ApiState>) -> Result<axum::Json<StatusView>, ApiError> {
    s.ask(Call::Status).await.map(axum::Json)
}

pub(super) async fn apply(
    State(s): State<ApiState>,
    Operator(actor): Operator,
    Json(body): Json<ApplyRequest>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    if body.file.len() > 4096 || body.file.contains('\n') {
        return Err(ApiError::bad_request("file: a file name, on one line"));
    }
    s.ask(|reply| Call::Apply {
        file: body.file,
        source: body.source,
        dry_run: body.dry_run,
        actor,
        reply,
    })
    .await?
    .map(axum::Json)
}

pub(super) async fn stack(
    State(s): State<ApiState>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    s.ask(Call::Stack).await.map(axum::Json)
}
