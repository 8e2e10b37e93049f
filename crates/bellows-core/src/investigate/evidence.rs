//! What hypotheses are made of: a metric's window against its own baseline, the series
//! that left their baseline, the audit records and alarm transitions of the window.

use super::*;

/// A series' baseline and window, per second.
pub(super) struct Window {
    pub(super) key: SeriesKey,
    baseline: Vec<f64>,
    pub(super) window: Vec<(Time, f64)>,
}

impl Window {
    pub(super) fn read(inputs: &Inputs<'_>, key: SeriesKey, stat: Statistic) -> Window {
        let second = Duration::from_secs(1);
        let from = Time::from_millis(
            inputs
                .since
                .as_millis()
                .saturating_sub(inputs.baseline.as_millis()),
        );
        let baseline = inputs
            .metrics
            .query(&key, stat, from, inputs.since, second)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let window = inputs
            .metrics
            .query(&key, stat, inputs.since, inputs.now, second);
        Window {
            key,
            baseline,
            window,
        }
    }

    pub(super) fn baseline_mean(&self) -> f64 {
        mean(&self.baseline)
    }

    pub(super) fn baseline_sd(&self) -> f64 {
        let m = self.baseline_mean();
        let n = self.baseline.len().max(1) as f64;
        (self.baseline.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n).sqrt()
    }

    pub(super) fn values(&self) -> Vec<f64> {
        self.window.iter().map(|(_, v)| *v).collect()
    }

    pub(super) fn sum(&self) -> f64 {
        self.window.iter().map(|(_, v)| v).sum()
    }

    pub(super) fn max(&self) -> f64 {
        self.window.iter().map(|(_, v)| *v).fold(0.0, f64::max)
    }

    /// The first time the series passed `threshold`.
    pub(super) fn first_above(&self, threshold: f64) -> Option<Time> {
        self.window
            .iter()
            .find(|(_, v)| *v > threshold)
            .map(|(t, _)| *t)
    }

    pub(super) fn evidence(&self, text: String) -> Evidence {
        Evidence {
            kind: EvidenceKind::Metric,
            time: self.window.first().map(|(t, _)| *t),
            text,
            series: Some(SeriesEvidence {
                key: self.key.clone(),
                statistic: "Sum per second".to_owned(),
                baseline: self.baseline_mean(),
                points: self.window.clone(),
            }),
        }
    }
}

pub(super) fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The IP tracker's own metrics (seeds 000 and 001), which it publishes itself.
pub(super) const APP_NAMESPACE: &str = "IPTracker";
pub(super) const APP_REJECTED: &str = "RejectedConnections";
pub(super) const APP_USERS: &str = "ActiveUsers";

pub(super) fn lb_series(inputs: &Inputs<'_>, m: Metric) -> Window {
    Window::read(
        inputs,
        m.key(&[("LoadBalancer", inputs.load_balancer)]),
        Statistic::Sum,
    )
}

pub(super) fn tg_series(inputs: &Inputs<'_>, m: Metric, tg: &str, stat: Statistic) -> Window {
    Window::read(inputs, m.key(&[("TargetGroup", tg)]), stat)
}

pub(super) fn group_series(
    inputs: &Inputs<'_>,
    namespace: &str,
    name: &str,
    group: &str,
    stat: Statistic,
) -> Window {
    Window::read(
        inputs,
        SeriesKey::new(namespace, name, &[("AutoScalingGroupName", group)]),
        stat,
    )
}

pub(super) fn group_cpu(inputs: &Inputs<'_>, group: &str) -> Window {
    let m = metric::CPU_UTILIZATION;
    group_series(inputs, m.namespace, m.name, group, Statistic::Average)
}

/// Series that left their own baseline: counts that appeared or grew past three standard
/// deviations, and the request rate falling to a fifth of its usual.
pub(super) fn anomalies(inputs: &Inputs<'_>) -> Vec<Evidence> {
    let mut out = Vec::new();
    for m in [
        metric::ELB_5XX,
        metric::ELB_503,
        metric::TARGET_5XX,
        metric::REJECTED_CONNECTION_COUNT,
        metric::TARGET_CONNECTION_ERROR_COUNT,
    ] {
        let name = m.name;
        let w = lb_series(inputs, m);
        let (m, sd, values) = (w.baseline_mean(), w.baseline_sd(), w.values());
        let now = mean(&values);
        if w.sum() >= 3.0 && now > m + 3.0 * sd.max(0.1) {
            out.push(w.evidence(format!(
                "{name}: {:.0} in the window ({now:.2}/s) against a baseline of {m:.2}/s",
                w.sum()
            )));
        }
    }
    let requests = lb_series(inputs, metric::REQUEST_COUNT);
    let (m, now) = (requests.baseline_mean(), mean(&requests.values()));
    if m >= 1.0 && now < m * 0.2 {
        out.push(requests.evidence(format!(
            "RequestCount fell to {now:.2}/s from a baseline of {m:.2}/s"
        )));
    }
    for g in inputs.groups {
        let cpu = group_cpu(inputs, &g.name);
        let (m, now) = (cpu.baseline_mean(), mean(&cpu.values()));
        if now > 80.0 && now > m + 20.0 {
            out.push(cpu.evidence(format!(
                "CPUUtilization of group {} at {now:.0}% against a baseline of {m:.0}%",
                g.name
            )));
        }
        for tg in &g.target_groups {
            let rt = tg_series(inputs, metric::TARGET_RESPONSE_TIME, tg, Statistic::Average);
            let (m, sd, now) = (rt.baseline_mean(), rt.baseline_sd(), mean(&rt.values()));
            if !rt.window.is_empty() && m > 0.0 && now > 3.0 * m && now > m + 3.0 * sd {
                out.push(rt.evidence(format!(
                    "TargetResponseTime of {tg} at {:.0} ms against a baseline of {:.0} ms",
                    now * 1000.0,
                    m * 1000.0
                )));
            }
        }
    }
    out
}

pub(super) fn audits<'a>(inputs: &'a Inputs<'_>) -> impl Iterator<Item = &'a AuditRecord> {
    inputs.events.iter().filter_map(|e| match e {
        Event::Audit { record } => Some(record),
        _ => None,
    })
}

pub(super) fn audit_evidence(r: &AuditRecord) -> Evidence {
    Evidence {
        kind: EvidenceKind::Audit,
        time: Some(r.time),
        text: format!(
            "{} ({}) {} {}: before {}, after {} — {}",
            r.actor, r.source, r.action, r.target, r.before, r.after, r.result
        ),
        series: None,
    }
}

pub(super) fn alarm_evidence(inputs: &Inputs<'_>) -> Vec<Evidence> {
    inputs
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Alarm {
                time,
                alarm,
                from,
                to,
                reason,
            } if *time >= inputs.since => Some(Evidence {
                kind: EvidenceKind::Alarm,
                time: Some(*time),
                text: format!("alarm {alarm}: {from} -> {to}: {reason}"),
                series: None,
            }),
            _ => None,
        })
        .collect()
}
