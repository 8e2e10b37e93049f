//! One function a cause: each weighs its evidence and proposes a hypothesis with a
//! confidence and a remedy, or none.

use super::*;

/// More users or requests than the instances admit: 503s or the app's rejections, while
/// the group cannot grow (at max) or has not grown yet (cooldown, launches under way).
pub(super) fn capacity_limit(inputs: &Inputs<'_>) -> Option<Hypothesis> {
    let e503 = lb_series(inputs, metric::ELB_503);
    let t5xx = lb_series(inputs, metric::TARGET_5XX);
    let mut best: Option<Hypothesis> = None;
    for g in inputs.groups {
        let app = group_series(inputs, APP_NAMESPACE, APP_REJECTED, &g.name, Statistic::Sum);
        let rejected = e503.sum() + t5xx.sum() + app.sum();
        if rejected < 1.0 {
            continue;
        }
        let mut evidence = Vec::new();
        let mut confidence: f64 = 0.4;
        for w in [&e503, &t5xx, &app] {
            if w.sum() >= 1.0 {
                evidence.push(w.evidence(format!(
                    "{}: {:.0} rejected in the window (peak {:.0}/s), first at {}",
                    w.key,
                    w.sum(),
                    w.max(),
                    w.first_above(0.0).map(|t| t.to_string()).unwrap_or_default()
                )));
            }
        }
        if let Some(limit) = g.max_users_per_instance {
            let users = group_series(
                inputs,
                APP_NAMESPACE,
                APP_USERS,
                &g.name,
                Statistic::Maximum,
            );
            let per_instance = users.max() / f64::from(g.in_service.max(1));
            if users.max() > 0.0 && per_instance >= f64::from(limit) * 0.9 {
                confidence += 0.1;
                evidence.push(users.evidence(format!(
                    "ActiveUsers peaked at {:.0} over {} instances: {per_instance:.0} each, the limit is MAX_USERS_PER_INSTANCE = {limit}",
                    users.max(),
                    g.in_service
                )));
            }
        }
        let at_max = g.desired >= g.max;
        let target = format!("group/{}", g.name);
        let scaled: Vec<&AuditRecord> = audits(inputs)
            .filter(|r| {
                r.target == target
                    && matches!(r.action.as_str(), "ExecutePolicy" | "SetDesiredCapacity")
                    && r.time >= inputs.since
            })
            .collect();
        // An operator's own change of capacity (`bellows scale`, the dashboard, the API)
        // is a scale-out too, and the reader should see it as the cause of the new size.
        let operator: Vec<&AuditRecord> = audits(inputs)
            .filter(|r| {
                r.target == target
                    && r.action == "UpdateAutoScalingGroup"
                    && r.succeeded()
                    && r.time >= inputs.since
            })
            .collect();
        let grew = !scaled.is_empty() || !operator.is_empty();
        let by = {
            let mut who: Vec<String> = Vec::new();
            if !operator.is_empty() {
                who.push(format!(
                    "{}'s change of capacity",
                    operator.last().map_or("the operator", |r| r.actor.as_str())
                ));
            }
            if !scaled.is_empty() {
                who.push("its policies".to_owned());
            }
            who.join(" and ")
        };
        let still_scaling = !at_max && grew && g.in_service < g.desired;
        if at_max {
            confidence += 0.35;
            evidence.push(Evidence {
                kind: EvidenceKind::Capacity,
                time: Some(inputs.now),
                text: format!(
                    "group {} is at its maximum: desired {} = max {}, so no policy can add an instance",
                    g.name, g.desired, g.max
                ),
                series: None,
            });
        } else if still_scaling {
            confidence += 0.2;
            evidence.push(Evidence {
                kind: EvidenceKind::Capacity,
                time: Some(inputs.now),
                text: format!(
                    "group {} is still scaling out, by {by} (desired {}, {} in service): rejections last until the new instances serve",
                    g.name, g.desired, g.in_service
                ),
                series: None,
            });
        } else if grew {
            confidence += 0.2;
            evidence.push(Evidence {
                kind: EvidenceKind::Capacity,
                time: Some(inputs.now),
                text: format!(
                    "group {} was scaled out in the window by {by}: desired {}, all {} in service now; the rejections came while it had fewer",
                    g.name, g.desired, g.in_service
                ),
                series: None,
            });
        }
        let mut changes: Vec<&AuditRecord> =
            operator.iter().chain(scaled.iter()).copied().collect();
        changes.sort_by_key(|r| r.time);
        evidence.extend(changes.iter().map(|r| audit_evidence(r)));
        evidence.extend(alarm_evidence(inputs));
        if inputs.alarm.is_some_and(|a| {
            let a = a.to_lowercase();
            a.contains("503")
                || a.contains("connection")
                || a.contains("reject")
                || a.contains("capacity")
                || a.contains("user")
        }) {
            confidence += 0.1;
        }
        let (text, command) = if at_max {
            (
                "raise the group's maximum so its policies can scale out further (or admit more users per instance)".to_owned(),
                format!(
                    "bellows scale {} --max {}",
                    g.name,
                    g.max + 2.max(g.max / 2)
                ),
            )
        } else {
            (
                "scale out now instead of waiting for the policy and its cooldown".to_owned(),
                format!(
                    "bellows scale {} --desired {}",
                    g.name,
                    (g.desired + 2).min(g.max)
                ),
            )
        };
        let h = Hypothesis {
            cause: Cause::CapacityLimit,
            title: format!(
                "capacity limit reached in group {}{}",
                g.name,
                if at_max {
                    " (at max)".to_owned()
                } else if still_scaling {
                    " (still scaling out)".to_owned()
                } else if grew {
                    format!(" (scaled out since, by {by})")
                } else {
                    " (no scale-out)".to_owned()
                }
            ),
            confidence: confidence.min(0.99),
            evidence,
            remedy: Remedy { text, command },
        };
        if best.as_ref().is_none_or(|b| b.confidence < h.confidence) {
            best = Some(h);
        }
    }
    best
}

/// A listener's ingress rule was revoked, and requests stopped or were dropped. Of
/// several revokes, the rule named is the one that admitted the clients now turned away
/// (the last revoked rule that contains their addresses), not merely the last revoked:
/// authorizing it again is what lets them back in.
pub(super) fn ingress_revoked(inputs: &Inputs<'_>) -> Option<Hypothesis> {
    let window_start = Time::from_millis(
        inputs
            .since
            .as_millis()
            .saturating_sub(inputs.baseline.as_millis()),
    );
    let revokes: Vec<&AuditRecord> = audits(inputs)
        .filter(|r| {
            r.action == "RevokeSecurityGroupIngress" && r.succeeded() && r.time >= window_start
        })
        .collect();
    let listener_of = |r: &AuditRecord| {
        r.target
            .strip_prefix("listener/")
            .unwrap_or(&r.target)
            .to_owned()
    };
    let cidr_of = |r: &AuditRecord| r.after["cidr"].as_str().unwrap_or("0.0.0.0/0").to_owned();
    let turned_away = |r: &AuditRecord| -> Vec<core::net::IpAddr> {
        let listener = listener_of(r);
        let Ok(cidr) = cidr_of(r).parse::<crate::lb::cidr::Cidr>() else {
            return Vec::new();
        };
        inputs
            .rejected_sources
            .iter()
            .filter(|(l, ip)| *l == listener && cidr.contains(*ip))
            .map(|(_, ip)| *ip)
            .collect()
    };
    let admitted = revokes
        .iter()
        .rev()
        .find(|r| !turned_away(r).is_empty())
        .copied();
    let revoke = admitted.or(revokes.last().copied())?;
    let listener = listener_of(revoke);
    let listener = listener.as_str();
    let cidr = cidr_of(revoke);
    let restored = audits(inputs).any(|r| {
        r.action == "AuthorizeSecurityGroupIngress"
            && r.succeeded()
            && r.time > revoke.time
            && r.target == revoke.target
            && r.after["cidr"].as_str() == Some(cidr.as_str())
    });
    let still = inputs
        .ingress
        .iter()
        .find(|(l, _)| l == listener)
        .is_some_and(|(_, list)| !list.contains(&cidr));
    let mut confidence: f64 = 0.45;
    let mut evidence = vec![audit_evidence(revoke)];
    let sources = turned_away(revoke);
    if !sources.is_empty() {
        let mut shown: Vec<String> = sources.iter().map(ToString::to_string).collect();
        shown.dedup();
        let others: Vec<String> = revokes
            .iter()
            .filter(|r| !std::ptr::eq(**r, revoke) && r.target == revoke.target)
            .map(|r| cidr_of(r))
            .filter(|c| *c != cidr)
            .collect();
        evidence.push(Evidence {
            kind: EvidenceKind::Audit,
            time: Some(revoke.time),
            text: format!(
                "the clients turned away ({}) were admitted by {cidr}{}",
                shown.join(", "),
                if others.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; the other rules revoked ({}) do not admit them",
                        others.join(", ")
                    )
                }
            ),
            series: None,
        });
    }
    let dropped = lb_series(inputs, metric::REJECTED_CONNECTION_COUNT);
    if dropped.sum() >= 1.0 {
        confidence += 0.3;
        evidence.push(dropped.evidence(format!(
            "RejectedConnectionCount: {:.0} connections dropped by the listener's allow-list, first at {}",
            dropped.sum(),
            dropped.first_above(0.0).map(|t| t.to_string()).unwrap_or_default()
        )));
    }
    let requests = lb_series(inputs, metric::REQUEST_COUNT);
    let (m, now) = (requests.baseline_mean(), mean(&requests.values()));
    let fell = m >= 0.5 && now < m * 0.5;
    if fell {
        confidence += 0.15;
        evidence.push(requests.evidence(format!(
            "RequestCount fell to {now:.2}/s from {m:.2}/s after the change"
        )));
    }
    // A revoke that dropped no connection and cost no request explains nothing: it
    // stays below the threshold however long it holds.
    let harmless = dropped.sum() < 1.0 && !fell;
    if still {
        confidence += 0.1;
        evidence.push(Evidence {
            kind: EvidenceKind::Audit,
            time: Some(inputs.now),
            text: format!("{cidr} is still missing from listener {listener}'s ingress list"),
            series: None,
        });
    } else if restored {
        confidence -= 0.25;
    }
    evidence.extend(alarm_evidence(inputs));
    Some(Hypothesis {
        cause: Cause::IngressRevoked,
        title: format!(
            "ingress rule {cidr} revoked on listener {listener} by {} at {}",
            revoke.actor, revoke.time
        ),
        confidence: if harmless {
            confidence.min(0.4)
        } else {
            confidence.clamp(0.0, 0.99)
        },
        evidence,
        remedy: Remedy {
            text: format!("authorize {cidr} on listener {listener} again"),
            command: format!("bellows ingress authorize {listener} {cidr}"),
        },
    })
}

/// Targets turned unhealthy soon after a change (apply, refresh, launch template).
pub(super) fn health_after_change(inputs: &Inputs<'_>) -> Option<Hypothesis> {
    let unhealthy: Vec<(Time, String)> = inputs
        .events
        .iter()
        .filter_map(|e| match e {
            Event::TargetHealth {
                time,
                target_group,
                instance,
                to: TargetState::Unhealthy,
                reason,
                ..
            } if *time >= inputs.since => Some((
                *time,
                format!(
                    "{target_group}/{instance} unhealthy: {}",
                    reason.clone().unwrap_or_default()
                ),
            )),
            _ => None,
        })
        .collect();
    let first = unhealthy.first()?.0;
    let change = audits(inputs)
        .filter(|r| {
            matches!(
                r.action.as_str(),
                "ApplyStack" | "StartInstanceRefresh" | "UpdateAutoScalingGroup"
            ) && r.succeeded()
                && r.time <= first
                && first.since(r.time) <= Duration::from_secs(600)
        })
        .last()?;
    let mut confidence = 0.45 + 0.05 * unhealthy.len().min(6) as f64;
    if first.since(change.time) <= Duration::from_secs(120) {
        confidence += 0.2;
    }
    let mut evidence = vec![audit_evidence(change)];
    evidence.extend(unhealthy.iter().take(10).map(|(t, text)| Evidence {
        kind: EvidenceKind::Health,
        time: Some(*t),
        text: text.clone(),
        series: None,
    }));
    evidence.extend(alarm_evidence(inputs));
    let group = change.target.strip_prefix("group/").unwrap_or("GROUP");
    let remedy = match change.action.as_str() {
        "StartInstanceRefresh" => Remedy {
            text: "cancel the refresh; the instances not yet replaced keep serving".to_owned(),
            command: format!("bellows refresh {group} --cancel"),
        },
        _ => Remedy {
            text: "apply the previous stack file again (the change is in the audit record)"
                .to_owned(),
            command: "bellows apply PREVIOUS.toml".to_owned(),
        },
    };
    Some(Hypothesis {
        cause: Cause::HealthChecksFailingAfterChange,
        title: format!(
            "health checks failing since {} by {} at {}",
            change.action, change.actor, change.time
        ),
        confidence: confidence.min(0.99),
        evidence,
        remedy,
    })
}

/// Instances that die soon after launch, again and again.
pub(super) fn crash_loop(inputs: &Inputs<'_>) -> Option<Hypothesis> {
    let mut failed: Vec<(Time, String, String, String)> = Vec::new();
    for e in inputs.events {
        if let Event::Activity { activity } = e
            && activity.status == ActivityStatus::Failed
            && activity.start >= inputs.since
        {
            failed.push((
                activity.end.unwrap_or(activity.start),
                activity.group.clone(),
                activity.instance.to_string(),
                format!(
                    "{}: {}",
                    activity.description,
                    activity.status_message.clone().unwrap_or_default()
                ),
            ));
        }
    }
    // Instances that left without ever serving count as failed launches too.
    for e in inputs.events {
        if let Event::Lifecycle {
            time,
            group,
            instance,
            from: Some(Lifecycle::Pending),
            to: Lifecycle::Terminated,
            ..
        } = e
            && *time >= inputs.since
            && !failed.iter().any(|f| f.2 == instance.as_str())
        {
            failed.push((
                *time,
                group.clone(),
                instance.to_string(),
                format!("{instance} ended before it came into service"),
            ));
        }
    }
    if failed.len() < 3 {
        return None;
    }
    let group = failed[0].1.clone();
    let mut evidence: Vec<Evidence> = failed
        .iter()
        .take(8)
        .map(|(t, _, _, text)| Evidence {
            kind: EvidenceKind::Activity,
            time: Some(*t),
            text: text.clone(),
            series: None,
        })
        .collect();
    let lines: Vec<&LogLine> = inputs
        .log_errors
        .iter()
        .filter(|l| l.group == group)
        .collect();
    evidence.extend(lines.iter().take(8).map(|l| Evidence {
        kind: EvidenceKind::Log,
        time: None,
        text: format!("{}: {}", l.instance, l.line),
        series: None,
    }));
    let confidence =
        (0.4 + 0.1 * failed.len() as f64 + if lines.is_empty() { 0.0 } else { 0.1 }).min(0.95);
    let last = failed.last().map(|f| f.2.clone()).unwrap_or_default();
    Some(Hypothesis {
        cause: Cause::CrashLoop,
        title: format!(
            "instances of group {group} crash at launch ({} failed launches)",
            failed.len()
        ),
        confidence,
        evidence,
        remedy: Remedy {
            text: "read the last instance's log, fix the launch template's command or environment, and apply it".to_owned(),
            command: format!("bellows logs {last}"),
        },
    })
}

/// Instances the kernel killed for going past their instance type's memory limit: the
/// node says `OOMKilled` in their health reason, read from the cgroup's counters.
pub(super) fn out_of_memory(inputs: &Inputs<'_>) -> Option<Hypothesis> {
    let kills: Vec<(Time, &str, &crate::ids::InstanceId, &str)> = inputs
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Health {
                time,
                group,
                instance,
                reason,
                ..
            } if *time >= inputs.since && reason.contains("OOMKilled") => {
                Some((*time, group.as_str(), instance, reason.as_str()))
            }
            _ => None,
        })
        .collect();
    let (_, group, last, _) = *kills.last()?;
    let evidence = kills
        .iter()
        .filter(|k| k.1 == group)
        .take(8)
        .map(|(t, _, id, reason)| Evidence {
            kind: EvidenceKind::Health,
            time: Some(*t),
            text: format!("{id}: {reason}"),
            series: None,
        })
        .collect::<Vec<_>>();
    let n = kills.iter().filter(|k| k.1 == group).count();
    Some(Hypothesis {
        cause: Cause::OutOfMemory,
        title: format!(
            "instances of group {group} are killed for running out of memory ({n} OOMKilled)"
        ),
        // The kernel's own count says so: strong from the first kill.
        confidence: (0.7f64 + 0.1 * n as f64).min(0.97),
        evidence,
        remedy: Remedy {
            text: "give the launch template an instance type with more memory, or find what grows in the app (its log), and apply it".to_owned(),
            command: format!("bellows logs {last}"),
        },
    })
}

/// CPU near saturation while the group cannot (or does not) add instances.
pub(super) fn cpu_saturation(inputs: &Inputs<'_>) -> Option<Hypothesis> {
    let mut best: Option<Hypothesis> = None;
    for g in inputs.groups {
        let cpu = group_cpu(inputs, &g.name);
        let values = cpu.values();
        if values.len() < 10 {
            continue;
        }
        let hot = values.iter().filter(|v| **v >= 85.0).count() as f64 / values.len() as f64;
        if hot < 0.5 {
            continue;
        }
        let scaled = audits(inputs).any(|r| {
            r.target == format!("group/{}", g.name)
                && r.action == "ExecutePolicy"
                && r.time >= inputs.since
        });
        let at_max = g.desired >= g.max;
        let mut confidence = 0.35 + 0.3 * hot;
        if at_max {
            confidence += 0.25;
        } else if !scaled {
            confidence += 0.1;
        }
        let mut evidence = vec![cpu.evidence(format!(
            "CPUUtilization of group {} at or above 85% for {:.0}% of the window (peak {:.0}%)",
            g.name,
            hot * 100.0,
            cpu.max()
        ))];
        evidence.push(Evidence {
            kind: EvidenceKind::Capacity,
            time: Some(inputs.now),
            text: if at_max {
                format!("group {} is at max ({}): scaling is blocked", g.name, g.max)
            } else if scaled {
                format!("group {} is scaling out (desired {})", g.name, g.desired)
            } else {
                format!("no policy scaled group {} in the window", g.name)
            },
            series: None,
        });
        let h = Hypothesis {
            cause: Cause::CpuSaturation,
            title: format!(
                "CPU saturation in group {}{}",
                g.name,
                if at_max {
                    " with scaling blocked at max"
                } else {
                    ""
                }
            ),
            confidence: confidence.min(0.95),
            evidence,
            remedy: Remedy {
                text: "add capacity (and a CPU policy if the group has none)".to_owned(),
                command: format!(
                    "bellows scale {} --max {} --desired {}",
                    g.name,
                    g.max + 2,
                    (g.desired + 2).min(g.max + 2)
                ),
            },
        };
        if best.as_ref().is_none_or(|b| b.confidence < h.confidence) {
            best = Some(h);
        }
    }
    best
}

/// Responses slowed down without errors: a target is slow, not failing.
pub(super) fn slow_target(inputs: &Inputs<'_>) -> Option<Hypothesis> {
    let errors =
        lb_series(inputs, metric::TARGET_5XX).sum() + lb_series(inputs, metric::ELB_5XX).sum();
    for g in inputs.groups {
        for tg in &g.target_groups {
            let rt = tg_series(inputs, metric::TARGET_RESPONSE_TIME, tg, Statistic::Average);
            let (m, sd, now) = (rt.baseline_mean(), rt.baseline_sd(), mean(&rt.values()));
            if rt.window.len() < 5 || m <= 0.0 || now < 3.0 * m || now < m + 3.0 * sd {
                continue;
            }
            let confidence = if errors < 1.0 { 0.7 } else { 0.45 };
            return Some(Hypothesis {
                cause: Cause::SlowTarget,
                title: format!(
                    "targets of {tg} slowed down ({:.0} ms against {:.0} ms) without errors",
                    now * 1000.0,
                    m * 1000.0
                ),
                confidence,
                evidence: vec![rt.evidence(format!(
                    "TargetResponseTime of {tg}: {:.0} ms in the window, baseline {:.0} ms; {errors:.0} 5xx",
                    now * 1000.0,
                    m * 1000.0
                ))],
                remedy: Remedy {
                    text: "replace the group's instances (a slow one is replaced with the rest), then look at what they wait on".to_owned(),
                    command: format!("bellows refresh {} --min-healthy-percentage 90", g.name),
                },
            });
        }
    }
    None
}
