//! The node's side of investigations and incidents: gathering what the core's
//! `investigate` reads (events from the store, instances' error lines, groups as they
//! are), and turning an alarm's ALARM and OK into an incident whose report goes to a
//! webhook and to a GitHub-compatible issue, through the persistent outbox.

use std::io::{Read, Seek, SeekFrom};

use bellows_core::event::Event;
use bellows_core::investigate::{self, GroupNow, Inputs, LogLine, Report};
use bellows_core::{Duration, Time};

use super::Node;
use crate::api::ApiError;

/// How much of each log's end is searched for error lines.
const LOG_TAIL: u64 = 32 * 1024;
/// How far before the window each series' baseline goes, at least.
const MIN_BASELINE: Duration = Duration::from_secs(900);

/// Lines that look like errors, in the languages instances are written in.
fn is_error_line(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    [
        "error",
        "panic",
        "exception",
        "fatal",
        "traceback",
        "segmentation fault",
        "killed",
    ]
    .iter()
    .any(|w| l.contains(w))
}

impl Node {
    /// Investigates the last `since`, as `bellows investigate` asks.
    pub(crate) fn investigate(
        &self,
        since: Duration,
        alarm: Option<&str>,
        now: Time,
    ) -> Result<Report, ApiError> {
        if let Some(a) = alarm
            && !self.scaler.alarms.contains_key(a)
        {
            return Err(ApiError::not_found(format!("no alarm named `{a}`")));
        }
        let from = Time::from_millis(now.as_millis().saturating_sub(since.as_millis()));
        let baseline = since.max(MIN_BASELINE);
        let history_from = Time::from_millis(from.as_millis().saturating_sub(baseline.as_millis()));
        // Only this run's record: stacks started one after another in one directory
        // share its state database, and an earlier stack's changes explain nothing here.
        let events = self
            .store
            .events_since(history_from.max(self.started), 100_000)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let groups: Vec<GroupNow> = self
            .groups
            .values()
            .filter_map(|g| {
                let spec = self.stack.group(g.name())?;
                let cap = g.capacity();
                Some(GroupNow {
                    name: g.name().to_owned(),
                    min: cap.min,
                    max: cap.max,
                    desired: cap.desired,
                    in_service: g.count(bellows_core::group::Lifecycle::InService) as u32,
                    max_users_per_instance: spec
                        .launch
                        .env
                        .get("MAX_USERS_PER_INSTANCE")
                        .and_then(|v| v.parse().ok())
                        .or_else(|| {
                            spec.launch
                                .command
                                .iter()
                                .any(|c| c == "ip-tracker")
                                .then_some(25)
                        }),
                    target_groups: spec.target_groups.clone(),
                })
            })
            .collect();
        let log_errors = self.log_errors(&events, from);
        let ingress: Vec<(String, Vec<String>)> = self
            .proxy
            .listeners()
            .into_iter()
            .map(|l| (l.name, l.ingress.iter().map(ToString::to_string).collect()))
            .collect();
        Ok(investigate::investigate(&Inputs {
            now,
            since: from,
            baseline,
            load_balancer: &self.stack.load_balancer,
            metrics: &self.metrics,
            groups: &groups,
            events: &events,
            log_errors: &log_errors,
            alarm,
            ingress: &ingress,
            rejected_sources: &self.proxy.rejected_sources(),
        }))
    }

    /// Error lines from the end of the logs of instances that lived in the window.
    fn log_errors(&self, events: &[Event], from: Time) -> Vec<LogLine> {
        let mut seen = std::collections::BTreeMap::new();
        for e in events {
            if let Event::Lifecycle {
                time,
                group,
                instance,
                ..
            } = e
                && *time >= from
            {
                seen.insert(instance.clone(), group.clone());
            }
        }
        for g in self.groups.values() {
            for i in g.instances() {
                seen.insert(i.id.clone(), g.name().to_owned());
            }
        }
        let mut out = Vec::new();
        for (id, group) in seen.into_iter().take(50) {
            let Ok(mut file) = std::fs::File::open(self.provider.log_path(&id)) else {
                continue;
            };
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL)));
            let mut tail = String::new();
            let _ = file.take(LOG_TAIL).read_to_string(&mut tail);
            let lines: Vec<&str> = tail.lines().filter(|l| is_error_line(l)).collect();
            for line in lines.iter().rev().take(5).rev() {
                out.push(LogLine {
                    instance: id.to_string(),
                    group: group.clone(),
                    line: line.chars().take(300).collect(),
                });
            }
        }
        out
    }

    /// An alarm went to ALARM: investigate, and open an incident unless one is open.
    pub(crate) fn on_alarm(&mut self, alarm: &str, period_span: Duration, now: Time) {
        if !self.stack.incidents.investigates(alarm) {
            return;
        }
        // The symptom window: what the alarm evaluated, and a minute before it.
        let since =
            Duration::from_millis(period_span.as_millis() + 60_000).max(Duration::from_secs(120));
        let report = match self.investigate(since, Some(alarm), now) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(alarm, error = %e.message, "investigation failed");
                return;
            }
        };
        let json = serde_json::to_string(&report).unwrap_or_default();
        let title = report.title();
        let id = match self
            .store
            .save_investigation(now, Some(alarm), &title, &json)
        {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "cannot store an investigation");
                return;
            }
        };
        tracing::info!(alarm, investigation = id, %title, "investigated");
        match self.store.open_incident(alarm) {
            Ok(Some(open)) => {
                tracing::info!(
                    alarm,
                    incident = open.id,
                    "the incident is still open: no new issue"
                );
            }
            Ok(None) => self.open_incident(alarm, &title, id, &report, now),
            Err(e) => tracing::error!(error = %e, "incidents"),
        }
    }

    fn open_incident(
        &mut self,
        alarm: &str,
        title: &str,
        investigation: i64,
        report: &Report,
        now: Time,
    ) {
        let incident = match self
            .store
            .open_new_incident(alarm, title, investigation, now)
        {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "cannot open an incident");
                return;
            }
        };
        let markdown = report.markdown();
        if let Some(url) = self.stack.incidents.webhook.clone() {
            let body = serde_json::json!({
                "source": "bellows",
                "event": "incident.opened",
                "stack": self.stack.name,
                "incident": incident,
                "alarm": alarm,
                "title": title,
                "time": now.to_string(),
                "report": report,
                "markdown": markdown,
            });
            self.deliver(
                incident, "webhook", "POST", &url, &body, None, "notify", now,
            );
        }
        if let Some(gh) = self.stack.incidents.github.clone() {
            let body = serde_json::json!({
                "title": format!("[bellows] {title}"),
                "body": format!("{markdown}\n---\nOpened by bellows for stack `{}`, incident {incident}; it is closed when alarm `{alarm}` is OK again.", self.stack.name),
                "labels": gh.labels,
            });
            let url = format!("{}/repos/{}/issues", gh.url, gh.repository);
            self.deliver(
                incident,
                "github",
                "POST",
                &url,
                &body,
                Some(&gh.token_env),
                "open",
                now,
            );
        }
    }

    /// An alarm is OK again: its open incident is resolved, and its issue closed.
    pub(crate) fn on_alarm_ok(&mut self, alarm: &str, now: Time) {
        let open = match self.store.open_incident(alarm) {
            Ok(Some(i)) => i,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "incidents");
                return;
            }
        };
        let why = format!("alarm `{alarm}` is OK again");
        self.resolve(open, &why, true, now);
    }

    /// Resolves every incident still open: at a stop (the stack that opened them is
    /// gone, so their alarms will never be OK again), telling their webhook and issue;
    /// and at a start, what a previous run left open (after `kill -9`, say), quietly:
    /// that run may have been another stack with other receivers, and this stack's
    /// settings must not post to them.
    pub(crate) fn close_open_incidents(&mut self, why: &str, notify: bool, now: Time) {
        let open = match self.store.incidents(10_000) {
            Ok(list) => list.into_iter().filter(|i| i.resolved.is_none()),
            Err(e) => {
                tracing::error!(error = %e, "incidents");
                return;
            }
        };
        for incident in open.collect::<Vec<_>>() {
            self.resolve(incident, why, notify, now);
        }
    }

    fn resolve(&mut self, open: crate::store::Incident, why: &str, notify: bool, now: Time) {
        let alarm = open.alarm.clone();
        if let Err(e) = self.store.resolve_incident(open.id, now) {
            tracing::error!(error = %e, "cannot resolve an incident");
            return;
        }
        tracing::info!(alarm, incident = open.id, why, "incident resolved");
        if !notify {
            return;
        }
        let took = now.since(open.opened);
        if let Some(url) = self.stack.incidents.webhook.clone() {
            let body = serde_json::json!({
                "source": "bellows",
                "event": "incident.resolved",
                "stack": self.stack.name,
                "incident": open.id,
                "alarm": alarm,
                "title": open.title,
                "time": now.to_string(),
                "duration": took.to_string(),
                "why": why,
            });
            self.deliver(open.id, "webhook", "POST", &url, &body, None, "notify", now);
        }
        if let Some(gh) = self.stack.incidents.github.clone() {
            let base = format!("{}/repos/{}/issues/{{number}}", gh.url, gh.repository);
            let comment = serde_json::json!({
                "body": format!("Resolved: {why} at {now}, {took} after alarm `{alarm}` fired."),
            });
            self.deliver(
                open.id,
                "github",
                "POST",
                &format!("{base}/comments"),
                &comment,
                Some(&gh.token_env),
                "comment",
                now,
            );
            let close = serde_json::json!({ "state": "closed", "state_reason": "completed" });
            self.deliver(
                open.id,
                "github",
                "PATCH",
                &base,
                &close,
                Some(&gh.token_env),
                "close",
                now,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &mut self,
        incident: i64,
        to: &str,
        method: &str,
        url: &str,
        body: &serde_json::Value,
        auth_env: Option<&str>,
        action: &str,
        now: Time,
    ) {
        if let Err(e) = self.store.enqueue_for_incident(
            &format!("incident:{to}"),
            method,
            url,
            &body.to_string(),
            auth_env,
            incident,
            action,
            now,
        ) {
            tracing::error!(error = %e, "cannot queue an incident delivery");
        }
    }
}
