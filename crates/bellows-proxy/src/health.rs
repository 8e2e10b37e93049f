//! Active health checks: one task per target, an HTTP GET on a fresh connection every
//! interval, judged by the group's matcher and thresholds (core's `HealthTracker`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::time::Duration;

use bellows_core::lb::health::CheckResult;
use bellows_core::lb::select::TargetState;
use bytes::Bytes;
use http_body_util::Empty;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use crate::ProxyEvent;
use crate::clock::now;
use crate::targets::{Target, TargetGroup};

/// Starts checking `target` unless a check task already runs for it. The task ends
/// when the target is removed or drains, or its group stops receiving traffic or is
/// removed; a group that is used again starts it again.
pub(crate) fn start(
    group: String,
    tg: Arc<TargetGroup>,
    target: Arc<Target>,
    events: mpsc::UnboundedSender<ProxyEvent>,
) {
    if target.checking.swap(true, AcqRel) {
        return;
    }
    tokio::spawn(async move {
        loop {
            watch(&group, &tg, &target, &events).await;
            target.checking.store(false, Release);
            // Used again between the task's last look and now: go on checking, unless
            // another task has just been started.
            if !wanted(&tg, &target) || target.checking.swap(true, AcqRel) {
                return;
            }
        }
    });
}

/// Whether `target` should be checked now.
fn wanted(tg: &TargetGroup, target: &Target) -> bool {
    tg.used.load(Acquire)
        && !tg.retired.load(Acquire)
        && !target.removed.load(Relaxed)
        && target.load_state() != TargetState::Draining
}

/// Checks `target` for as long as it is `wanted`.
async fn watch(
    group: &str,
    tg: &TargetGroup,
    target: &Target,
    events: &mpsc::UnboundedSender<ProxyEvent>,
) {
    loop {
        if !wanted(tg, target) {
            return;
        }
        let spec = tg.spec.load_full();
        let hc = &spec.health_check;
        let result = check(target.addr, &hc.path, hc.timeout.to_std(), &hc.matcher).await;
        // A new target is checked every 200 ms until it first answers, so it gets
        // traffic as soon as its app listens, and a refused connection does not count
        // against it for as long as the thresholds would give it anyway. (ALB checks at
        // registration, then each interval; processes here start in milliseconds.)
        let booting = target.load_state() == TargetState::Initial;
        let patience = hc
            .interval
            .saturating_mul(u64::from(hc.unhealthy_threshold));
        if booting
            && matches!(result, CheckResult::ConnectionFailed(_))
            && now().since(target.registered_at) < patience
        {
            crate::clock::sleep(INITIAL_RETRY).await;
            continue;
        }
        let change = {
            // Under the tracker's lock, which `Proxy::commit` takes to mark a target
            // unused, so that a check that ran meanwhile cannot undo it.
            let mut h = target.health.lock().unwrap_or_else(|e| e.into_inner());
            if !wanted(tg, target) {
                // Unused, removed or draining while the check ran: its result is moot.
                return;
            }
            let before = h.state;
            let change = h
                .observe(&result, hc.healthy_threshold, hc.unhealthy_threshold)
                .map(|to| (before, to, h.reason.clone()));
            if let Some((_, to, _)) = &change {
                target.set_state(*to, now());
            }
            change
        };
        if let Some((from, to, reason)) = change {
            if to == TargetState::Healthy {
                tg.became_healthy.notify_waiters();
            }
            tracing::debug!(target_group = %group, instance = %target.instance, ?from, ?to, "target health");
            let _ = events.send(ProxyEvent::TargetHealth {
                target_group: group.to_owned(),
                instance: target.instance.clone(),
                from,
                to,
                reason,
            });
        }
        let next = if target.load_state() == TargetState::Initial {
            INITIAL_RETRY
        } else {
            hc.interval.to_std()
        };
        tokio::select! {
            () = crate::clock::sleep(next) => {}
            () = tg.reconfigured.notified() => {}
        }
    }
}

/// How often a new target is checked until it first answers.
const INITIAL_RETRY: Duration = Duration::from_millis(200);

/// One health check: GET `path` on a new connection, within `timeout`.
pub async fn check(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    matcher: &[(u16, u16)],
) -> CheckResult {
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| CheckResult::ConnectionFailed(e.to_string()))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| CheckResult::ConnectionFailed(e.to_string()))?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header(hyper::header::HOST, addr.to_string())
            .header(hyper::header::USER_AGENT, "bellows-health-check/1.0")
            .header(hyper::header::CONNECTION, "close")
            .body(Empty::new())
            .map_err(|e| CheckResult::ConnectionFailed(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| CheckResult::ConnectionFailed(e.to_string()))?;
        Ok::<u16, CheckResult>(resp.status().as_u16())
    };
    match crate::clock::timeout(timeout, attempt).await {
        Err(_) => CheckResult::Timeout,
        Ok(Err(failed)) => failed,
        Ok(Ok(code)) if matcher.iter().any(|&(lo, hi)| (lo..=hi).contains(&code)) => {
            CheckResult::Pass
        }
        Ok(Ok(code)) => CheckResult::BadStatus(code),
    }
}
