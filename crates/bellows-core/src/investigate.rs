//! Investigations: from a symptom (an alarm, or "something is wrong since 15 minutes
//! ago") to ranked, explained hypotheses, offline and without guesswork. Each detector
//! looks for one known cause in what bellows recorded — metrics against their own
//! baseline, the audit trail, scaling activities, health transitions, alarm history,
//! instances' error lines — and scores it only from evidence it can show, with the
//! exact command that would fix it.
//!
//! Sans-I/O like the rest of the core: the node gathers the inputs (store, logs) and
//! passes them in. This file holds the inputs, the report and its rendering;
//! `investigate/evidence.rs` what evidence is made of, `investigate/causes.rs` the
//! detectors.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::event::{AuditRecord, Event};
use crate::group::{ActivityStatus, Lifecycle};
use crate::lb::select::TargetState;
use crate::metrics::catalogue::{self as metric, Metric};
use crate::metrics::{MetricStore, SeriesKey, Statistic};
use crate::{Duration, Time};

mod causes;
mod evidence;

use causes::*;
use evidence::*;

/// Hypotheses below this confidence are shown as unlikely.
pub const CONFIDENCE_THRESHOLD: f64 = 0.5;

/// A group as it is now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupNow {
    pub name: String,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    pub in_service: u32,
    /// The user limit of the app, when its launch template sets MAX_USERS_PER_INSTANCE.
    pub max_users_per_instance: Option<u32>,
    /// The group's target groups and the load balancer's name, for its metrics.
    pub target_groups: Vec<String>,
}

/// An error line from an instance's log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub instance: String,
    pub group: String,
    pub line: String,
}

/// What an investigation reads.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub now: Time,
    /// Where the symptom window starts.
    pub since: Time,
    /// How far before `since` each series' baseline is taken from.
    pub baseline: Duration,
    pub load_balancer: &'a str,
    pub metrics: &'a MetricStore,
    pub groups: &'a [GroupNow],
    /// Events from `since - baseline` on, oldest first: audit records, activities,
    /// health and target health transitions, alarm transitions.
    pub events: &'a [Event],
    pub log_errors: &'a [LogLine],
    /// The alarm that started the investigation, if one did.
    pub alarm: Option<&'a str>,
    /// Every listener's current ingress list, to tell whether a revoke still holds.
    pub ingress: &'a [(String, Vec<String>)],
    /// Client addresses each listener's allow-list turned away lately (listener,
    /// address): which revoked rule used to admit them.
    pub rejected_sources: &'a [(String, core::net::IpAddr)],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    CapacityLimit,
    IngressRevoked,
    HealthChecksFailingAfterChange,
    CrashLoop,
    OutOfMemory,
    CpuSaturation,
    SlowTarget,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    Metric,
    Audit,
    Activity,
    Health,
    Log,
    Alarm,
    Capacity,
}

/// One piece of evidence, with the time it refers to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub kind: EvidenceKind,
    pub time: Option<Time>,
    pub text: String,
    /// For a metric: the series, its points in the window, and its baseline mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<SeriesEvidence>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesEvidence {
    pub key: SeriesKey,
    pub statistic: String,
    pub baseline: f64,
    pub points: Vec<(Time, f64)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Remedy {
    pub text: String,
    pub command: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hypothesis {
    pub cause: Cause,
    pub title: String,
    /// 0 to 1, from the evidence found; see each detector for how.
    pub confidence: f64,
    pub evidence: Vec<Evidence>,
    pub remedy: Remedy,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub generated: Time,
    pub since: Time,
    pub alarm: Option<String>,
    /// Series that left their baseline in the window.
    pub anomalies: Vec<Evidence>,
    /// Most likely first.
    pub hypotheses: Vec<Hypothesis>,
}

impl Report {
    /// The hypotheses at or above the confidence threshold.
    pub fn likely(&self) -> impl Iterator<Item = &Hypothesis> {
        self.hypotheses
            .iter()
            .filter(|h| h.confidence >= CONFIDENCE_THRESHOLD)
    }

    /// A one-line title, for an issue or a notification.
    pub fn title(&self) -> String {
        match self.likely().next() {
            Some(h) => format!(
                "{}{}",
                self.alarm
                    .as_ref()
                    .map(|a| format!("{a}: "))
                    .unwrap_or_default(),
                h.title
            ),
            None => format!(
                "{}no known cause found",
                self.alarm
                    .as_ref()
                    .map(|a| format!("{a}: "))
                    .unwrap_or_default()
            ),
        }
    }

    /// The report as Markdown, readable in a terminal as it is.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Investigation: {}\n", self.title());
        let _ = writeln!(
            out,
            "Window: {} to {}{}.\n",
            self.since,
            self.generated,
            self.alarm
                .as_ref()
                .map(|a| format!(", started by alarm `{a}`"))
                .unwrap_or_default()
        );
        if self.anomalies.is_empty() {
            out += "No metric left its baseline.\n\n";
        } else {
            out += "## What changed\n\n";
            for a in &self.anomalies {
                let _ = writeln!(out, "- {}", a.text);
            }
            out += "\n";
        }
        if self.hypotheses.is_empty() {
            out += "## Hypotheses\n\nNone: no known cause matches what was recorded.\n";
        }
        for (i, h) in self.hypotheses.iter().enumerate() {
            let likely = if h.confidence >= CONFIDENCE_THRESHOLD {
                ""
            } else {
                " (unlikely)"
            };
            let _ = writeln!(
                out,
                "## {}. {} — confidence {:.0}%{likely}\n",
                i + 1,
                h.title,
                h.confidence * 100.0
            );
            out += "Evidence:\n\n";
            for e in &h.evidence {
                let when = e.time.map(|t| format!("{t} ")).unwrap_or_default();
                let _ = writeln!(out, "- [{:?}] {when}{}", e.kind, e.text);
            }
            let _ = writeln!(
                out,
                "\nRemedy: {}\n\n```sh\n{}\n```\n",
                h.remedy.text, h.remedy.command
            );
        }
        out
    }
}

/// Runs every detector and ranks what they found.
pub fn investigate(inputs: &Inputs<'_>) -> Report {
    let anomalies = anomalies(inputs);
    let mut hypotheses: Vec<Hypothesis> = [
        capacity_limit(inputs),
        ingress_revoked(inputs),
        health_after_change(inputs),
        crash_loop(inputs),
        out_of_memory(inputs),
        cpu_saturation(inputs),
        slow_target(inputs),
    ]
    .into_iter()
    .flatten()
    .collect();
    hypotheses.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    Report {
        generated: inputs.now,
        since: inputs.since,
        alarm: inputs.alarm.map(str::to_owned),
        anomalies,
        hypotheses,
    }
}

#[cfg(test)]
mod tests;
