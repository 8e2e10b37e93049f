//! The phase that chooses a target: stickiness first, then the group's algorithm, the
//! queue while every target is at its limit, and the wait for a group scaling from zero.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bellows_core::ids::InstanceId;
use bellows_core::lb::select::{Candidate, Pick, TargetState};
use bellows_core::stack::Stickiness;

use super::{APP_COOKIE, ElbError, LB_COOKIE, elb, random};
use crate::clock::{instant, now};
use crate::http1::RequestHead;
use crate::targets::{Target, TargetGroup};
use crate::watch;

/// The sticky target named by the request's cookie, if it may still take traffic.
pub(super) fn sticky_target(
    head: &RequestHead,
    stickiness: &Stickiness,
    tg: &TargetGroup,
) -> Option<InstanceId> {
    let name = if stickiness.app_cookie.is_some() {
        APP_COOKIE
    } else {
        LB_COOKIE
    };
    let value = cookie(head, name)?;
    InstanceId::parse(value).filter(|id| {
        let targets = tg.targets.load();
        let healthy_exists = targets
            .iter()
            .any(|t| t.load_state() == TargetState::Healthy);
        targets.iter().any(|t| {
            &t.instance == id
                && !t.at_capacity()
                && match t.load_state() {
                    TargetState::Healthy => true,
                    TargetState::Unhealthy => !healthy_exists,
                    _ => false,
                }
        })
    })
}

pub(super) fn cookie<'h>(head: &'h RequestHead, name: &str) -> Option<&'h str> {
    head.values("cookie")
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// How long a request waits for a group to scale from zero.
pub const COLD_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Chooses a target: the sticky one if it may take the request, else by the group's
/// algorithm, waiting in the group's queue while every target is at its limit.
pub(super) async fn choose(
    tg: &TargetGroup,
    name: &str,
    cold: &tokio::sync::mpsc::UnboundedSender<crate::ProxyEvent>,
    sticky: Option<&InstanceId>,
    exclude: &[InstanceId],
) -> Result<Arc<Target>, ElbError> {
    if let Some(id) = sticky.filter(|id| !exclude.contains(id))
        && let Some(t) = tg.find(id)
    {
        return Ok(t);
    }
    let selection = tg.selection();
    let mut deadline = None;
    loop {
        let targets = tg.targets.load();
        let ex: Vec<usize> = targets
            .iter()
            .enumerate()
            .filter(|(_, t)| exclude.contains(&t.instance))
            .map(|(i, _)| i)
            .collect();
        // The clock matters only to slow start.
        let at = if selection.slow_start > bellows_core::Duration::ZERO {
            now()
        } else {
            bellows_core::Time::default()
        };
        match selection.pick(
            &targets,
            at,
            tg.counter.fetch_add(1, Relaxed),
            random(),
            &ex,
        ) {
            Pick::Target(i) => return Ok(targets[i].clone()),
            Pick::NoTarget
                if tg.cold_start.load(Relaxed)
                    && exclude.is_empty()
                    && targets
                        .iter()
                        .all(|t| t.load_state() == TargetState::Initial) =>
            {
                // Scale from zero: ask for an instance, hold the request until one is
                // healthy (bounded by the queue and COLD_START_TIMEOUT), then go on.
                let started = *deadline.get_or_insert_with(|| {
                    tg.counters.queued.fetch_add(1, Relaxed);
                    instant() + COLD_START_TIMEOUT
                });
                if instant() >= started || tg.queued.load(Relaxed) >= tg.spec.load().queue_size {
                    tg.counters.queue_timeouts.fetch_add(1, Relaxed);
                    return Err(elb(503, "ColdStartTimeout"));
                }
                let now_ms = watch::coarse_now();
                let asked = tg.cold_start_asked.load(Relaxed);
                if now_ms.saturating_sub(asked) > 1000
                    && tg
                        .cold_start_asked
                        .compare_exchange(asked, now_ms, Relaxed, Relaxed)
                        .is_ok()
                {
                    let _ = cold.send(crate::ProxyEvent::ColdStart {
                        target_group: name.to_owned(),
                    });
                }
                tg.queued.fetch_add(1, Relaxed);
                let _ =
                    crate::clock::timeout(Duration::from_millis(250), tg.became_healthy.notified())
                        .await;
                tg.queued.fetch_sub(1, Relaxed);
            }
            Pick::NoTarget => return Err(elb(503, "NoHealthyTarget")),
            Pick::AllBusy => {
                let spec = tg.spec.load();
                let deadline = *deadline.get_or_insert_with(|| {
                    tg.counters.queued.fetch_add(1, Relaxed);
                    instant() + spec.queue_timeout.to_std()
                });
                if tg.queued.load(Relaxed) >= spec.queue_size && instant() < deadline {
                    // No room in the queue: refuse rather than pile up.
                    tg.counters.queue_timeouts.fetch_add(1, Relaxed);
                    return Err(elb(503, "QueueFull"));
                }
                let now = instant();
                if now >= deadline {
                    tg.counters.queue_timeouts.fetch_add(1, Relaxed);
                    return Err(elb(503, "QueueTimeout"));
                }
                tg.queued.fetch_add(1, Relaxed);
                let wait = (deadline - now).min(Duration::from_millis(100));
                let _ = crate::clock::timeout(wait, tg.freed.notified()).await;
                tg.queued.fetch_sub(1, Relaxed);
            }
        }
    }
}
