//! Commands that change the running stack's capacity and instances, a listener's
//! ingress, a zone's availability and instance refreshes, each one audit record.

use std::process::ExitCode;

use anyhow::Context as _;
use bellows_core::event::Capacity;
use bellows_core::group::{Refresh, RefreshStatus};
use bellows_node::api::{
    CapacityRequest, HealthRequest, IngressChange, IngressRequest, ProtectionRequest,
    RefreshRequest, TerminateRequest, ZoneChange, ZoneRequest,
};

use super::print_json;
use crate::context::Context;

pub async fn scale(
    ctx: &Context,
    group: &str,
    min: Option<u32>,
    max: Option<u32>,
    desired: Option<u32>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if min.is_none() && max.is_none() && desired.is_none() {
        anyhow::bail!("say what to change: --desired N, --min N or --max N");
    }
    let body = CapacityRequest { min, max, desired };
    let cap: Capacity = ctx
        .client()
        .put(&format!("/api/v1/groups/{group}/capacity"), &body)
        .await
        .with_context(|| format!("cannot scale group `{group}`"))?;
    if json {
        print_json(&cap)?;
    } else {
        out!(
            "group {group}: desired {}, min {}, max {}",
            cap.desired,
            cap.min,
            cap.max
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn protect(ctx: &Context, instance: &str, protected: bool) -> anyhow::Result<ExitCode> {
    let () = ctx
        .client()
        .put(
            &format!("/api/v1/instances/{instance}/protection"),
            &ProtectionRequest { protected },
        )
        .await?;
    out!(
        "{instance}: scale-in protection {}",
        if protected { "on" } else { "off" }
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn terminate(
    ctx: &Context,
    instance: &str,
    decrement_desired: bool,
) -> anyhow::Result<ExitCode> {
    let cap: Capacity = ctx
        .client()
        .post(
            &format!("/api/v1/instances/{instance}/terminate"),
            &TerminateRequest { decrement_desired },
        )
        .await
        .with_context(|| format!("cannot terminate {instance}"))?;
    out!(
        "{instance}: terminating; group desired {} (min {}, max {})",
        cap.desired,
        cap.min,
        cap.max
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn set_health(ctx: &Context, instance: &str, health: &str) -> anyhow::Result<ExitCode> {
    let health = if health == "healthy" {
        bellows_core::group::Health::Healthy
    } else {
        bellows_core::group::Health::Unhealthy
    };
    let () = ctx
        .client()
        .put(
            &format!("/api/v1/instances/{instance}/health"),
            &HealthRequest { health },
        )
        .await
        .with_context(|| format!("cannot set the health of {instance}"))?;
    out!("{instance}: {health:?}");
    Ok(ExitCode::SUCCESS)
}

pub async fn ingress(
    ctx: &Context,
    listener: &str,
    cidr: &str,
    authorize: bool,
) -> anyhow::Result<ExitCode> {
    let verb = if authorize { "authorize" } else { "revoke" };
    let change: IngressChange = ctx
        .client()
        .post(
            &format!("/api/v1/listeners/{listener}/ingress/{verb}"),
            &IngressRequest {
                cidr: cidr.to_owned(),
            },
        )
        .await
        .with_context(|| format!("cannot {verb} {cidr} on listener `{listener}`"))?;
    let now: Vec<String> = change.ingress.iter().map(ToString::to_string).collect();
    let what = match (authorize, change.changed) {
        (true, true) => "authorized",
        (false, true) => "revoked",
        (true, false) => "was already authorized",
        (false, false) => "was not in the list",
    };
    out!(
        "listener {}: {} {what}; ingress now: {}",
        change.listener,
        change.cidr,
        if now.is_empty() {
            "(none)".to_owned()
        } else {
            now.join(", ")
        }
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn zone(ctx: &Context, zone: &str, available: bool) -> anyhow::Result<ExitCode> {
    let change: ZoneChange = ctx
        .client()
        .put(&format!("/api/v1/zones/{zone}"), &ZoneRequest { available })
        .await
        .with_context(|| {
            format!(
                "cannot {} zone `{zone}`",
                if available { "restore" } else { "fail" }
            )
        })?;
    let killed: Vec<String> = change.killed.iter().map(ToString::to_string).collect();
    match (available, change.changed) {
        (false, true) => out!(
            "zone {}: outage started; killed {} instance{}{}; nothing is launched there until `bellows zone restore {}`",
            change.zone,
            killed.len(),
            if killed.len() == 1 { "" } else { "s" },
            if killed.is_empty() {
                String::new()
            } else {
                format!(" ({})", killed.join(", "))
            },
            change.zone
        ),
        (false, false) => out!("zone {}: already in an outage", change.zone),
        (true, true) => out!(
            "zone {}: back; the groups move instances into it one at a time, launching first",
            change.zone
        ),
        (true, false) => out!("zone {}: was available", change.zone),
    }
    Ok(ExitCode::SUCCESS)
}

pub enum RefreshAction {
    Start {
        min_healthy_percentage: u32,
        warmup: Option<String>,
    },
    Status,
    Cancel,
}

pub async fn refresh(
    ctx: &Context,
    group: &str,
    what: RefreshAction,
    wait: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let client = ctx.client();
    let path = format!("/api/v1/groups/{group}/refresh");
    let mut r: Refresh = match what {
        RefreshAction::Start {
            min_healthy_percentage,
            warmup,
        } => client
            .post(
                &path,
                &RefreshRequest {
                    min_healthy_percentage: Some(min_healthy_percentage),
                    warmup,
                },
            )
            .await
            .with_context(|| format!("cannot start an instance refresh of `{group}`"))?,
        RefreshAction::Status => client.get(&path).await?,
        RefreshAction::Cancel => client.delete(&path).await?,
    };
    let line = |r: &Refresh| {
        format!(
            "refresh {} of {}: {:?}, {}% ({} of {} left), {}",
            r.id,
            r.group,
            r.status,
            r.percentage_complete,
            r.remaining.len(),
            r.total,
            r.status_reason
        )
    };
    if wait && !json {
        let mut last = String::new();
        while r.status == RefreshStatus::InProgress {
            let now = line(&r);
            if now != last {
                out!("{now}");
                last = now;
            }
            crate::clock::sleep(std::time::Duration::from_millis(500)).await;
            r = client.get(&path).await?;
        }
    }
    if json {
        print_json(&r)?;
    } else {
        out!("{}", line(&r));
    }
    Ok(ExitCode::SUCCESS)
}
