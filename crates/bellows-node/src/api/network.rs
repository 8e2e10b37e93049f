//! The load balancer's side: targets, listeners and their ingress, and zones.

use axum::extract::{Path, State};
use bellows_core::lb::cidr::Cidr;
use bellows_proxy::{ListenerView, TargetView};

use super::ApiState;
use super::Call;
use super::auth::Operator;
use super::json::Json;
use super::types::*;

pub(super) async fn targets(
    State(s): State<ApiState>,
) -> Result<axum::Json<Vec<TargetView>>, ApiError> {
    s.ask(Call::Targets).await.map(axum::Json)
}

pub(super) async fn listeners(
    State(s): State<ApiState>,
) -> Result<axum::Json<Vec<ListenerView>>, ApiError> {
    s.ask(Call::Listeners).await.map(axum::Json)
}

pub(super) async fn ingress(
    s: ApiState,
    actor: Actor,
    listener: String,
    body: IngressRequest,
    authorize: bool,
) -> Result<axum::Json<IngressChange>, ApiError> {
    let cidr: Cidr = body.cidr.parse().map_err(ApiError::bad_request)?;
    s.ask(|reply| Call::Ingress {
        listener,
        cidr,
        authorize,
        actor,
        reply,
    })
    .await?
    .map(axum::Json)
}

pub(super) async fn authorize(
    State(s): State<ApiState>,
    Operator(actor): Operator,
    Path(listener): Path<String>,
    Json(body): Json<IngressRequest>,
) -> Result<axum::Json<IngressChange>, ApiError> {
    ingress(s, actor, listener, body, true).await
}

pub(super) async fn revoke(
    State(s): State<ApiState>,
    Operator(actor): Operator,
    Path(listener): Path<String>,
    Json(body): Json<IngressRequest>,
) -> Result<axum::Json<IngressChange>, ApiError> {
    ingress(s, actor, listener, body, false).await
}

/// DynamoDB's tables of the stack, with item counts and sizes.
pub(super) async fn tables(
    State(s): State<ApiState>,
) -> Result<axum::Json<Vec<TableView>>, ApiError> {
    s.ask(Call::Tables).await?.map(axum::Json)
}

pub(super) async fn zones(
    State(s): State<ApiState>,
) -> Result<axum::Json<Vec<ZoneView>>, ApiError> {
    s.ask(Call::Zones).await.map(axum::Json)
}

/// A zone's outage starts (`{"available": false}`: its instances are killed and nothing
/// is launched there) or ends (`true`: the groups move instances back, launch first).
pub(super) async fn set_zone(
    State(s): State<ApiState>,
    Operator(actor): Operator,
    Path(zone): Path<String>,
    Json(body): Json<ZoneRequest>,
) -> Result<axum::Json<ZoneChange>, ApiError> {
    s.ask(|reply| Call::SetZone {
        zone,
        available: body.available,
        actor,
        reply,
    })
    .await?
    .map(axum::Json)
}
