use serde_json::json;

use super::*;
use crate::group::{Activity, ActivityKind};
use crate::ids::InstanceId;

const LB: &str = "shop";
const T0: u64 = 1_800_000_000_000;

/// Ten minutes of baseline, then five of window; `now` at the end.
struct World {
    metrics: MetricStore,
    events: Vec<Event>,
    groups: Vec<GroupNow>,
    logs: Vec<LogLine>,
    ingress: Vec<(String, Vec<String>)>,
    rejected: Vec<(String, core::net::IpAddr)>,
}

fn at(s: u64) -> Time {
    Time::from_millis(T0 + s * 1000)
}

const SINCE: u64 = 600;
const NOW: u64 = 900;

impl World {
    fn new() -> World {
        World {
            metrics: MetricStore::default(),
            events: Vec::new(),
            groups: vec![GroupNow {
                name: "web".to_owned(),
                min: 1,
                max: 4,
                desired: 2,
                in_service: 2,
                max_users_per_instance: None,
                target_groups: vec!["web".to_owned()],
            }],
            logs: Vec::new(),
            ingress: vec![(
                "http".to_owned(),
                vec!["0.0.0.0/0".to_owned(), "::/0".to_owned()],
            )],
            rejected: Vec::new(),
        }
    }

    /// A healthy service: 10 requests a second, 20 ms, 30% CPU, every second; in the
    /// window, the series named in `except` are left for the test to write.
    fn steady(self) -> World {
        self.steady_but(&[])
    }

    fn steady_but(mut self, except: &[&str]) -> World {
        for s in 0..NOW {
            let keep = |name: &str| s < SINCE || !except.contains(&name);
            if keep("RequestCount") {
                self.lb("RequestCount", s, 10.0);
            }
            if keep("TargetResponseTime") {
                self.tg("TargetResponseTime", s, 0.020 + (s % 7) as f64 * 0.001);
            }
            if keep("CPUUtilization") {
                self.cpu(s, 30.0 + (s % 5) as f64);
            }
            for name in [
                "HTTPCode_ELB_503_Count",
                "HTTPCode_Target_5XX_Count",
                "RejectedConnectionCount",
            ] {
                if keep(name) {
                    self.lb(name, s, 0.0);
                }
            }
        }
        self
    }

    fn lb(&mut self, name: &str, s: u64, v: f64) {
        self.metrics.put(
            &SeriesKey::new("AWS/ApplicationELB", name, &[("LoadBalancer", LB)]),
            at(s),
            v,
        );
    }

    fn tg(&mut self, name: &str, s: u64, v: f64) {
        self.metrics.put(
            &SeriesKey::new("AWS/ApplicationELB", name, &[("TargetGroup", "web")]),
            at(s),
            v,
        );
    }

    fn cpu(&mut self, s: u64, v: f64) {
        self.metrics.put(
            &SeriesKey::new(
                "AWS/EC2",
                "CPUUtilization",
                &[("AutoScalingGroupName", "web")],
            ),
            at(s),
            v,
        );
    }

    fn audit(&mut self, s: u64, actor: &str, action: &str, target: &str, after: serde_json::Value) {
        self.events.push(Event::Audit {
            record: AuditRecord {
                time: at(s),
                actor: actor.to_owned(),
                source: if actor == "bellows" { "bellows" } else { "cli" }.to_owned(),
                action: action.to_owned(),
                target: target.to_owned(),
                before: serde_json::Value::Null,
                after,
                result: "ok".to_owned(),
            },
        });
    }

    fn run(&self, alarm: Option<&str>) -> Report {
        investigate(&Inputs {
            now: at(NOW),
            since: at(SINCE),
            baseline: Duration::from_secs(SINCE),
            load_balancer: LB,
            metrics: &self.metrics,
            groups: &self.groups,
            events: &self.events,
            log_errors: &self.logs,
            alarm,
            ingress: &self.ingress,
            rejected_sources: &self.rejected,
        })
    }
}

fn top(r: &Report) -> &Hypothesis {
    r.likely()
        .next()
        .unwrap_or_else(|| panic!("no likely hypothesis:\n{}", r.markdown()))
}

#[test]
fn a_healthy_run_has_no_likely_hypothesis() {
    let r = World::new().steady().run(None);
    assert_eq!(r.likely().count(), 0, "{}", r.markdown());
    assert!(r.anomalies.is_empty(), "{}", r.markdown());
    assert!(r.markdown().contains("None: no known cause"));
}

#[test]
fn rejections_with_the_group_at_max_are_a_capacity_limit() {
    let mut w = World::new().steady_but(&["HTTPCode_ELB_503_Count"]);
    w.groups[0].desired = 4;
    w.groups[0].in_service = 4;
    w.groups[0].max_users_per_instance = Some(25);
    for s in SINCE + 30..NOW {
        w.lb("HTTPCode_ELB_503_Count", s, 3.0);
        w.metrics.put(
            &SeriesKey::new(
                "IPTracker",
                "ActiveUsers",
                &[("AutoScalingGroupName", "web")],
            ),
            at(s),
            100.0,
        );
    }
    w.audit(
        SINCE + 40,
        "bellows",
        "ExecutePolicy",
        "group/web",
        json!({"desired": 4, "by": "scale-out"}),
    );
    let r = w.run(Some("connection-errors"));
    let h = top(&r);
    assert_eq!(h.cause, Cause::CapacityLimit, "{}", r.markdown());
    assert_eq!(h.remedy.command, "bellows scale web --max 6");
    assert!(h.confidence > 0.8, "{}", h.confidence);
    let md = r.markdown();
    assert!(md.contains("MAX_USERS_PER_INSTANCE = 25"), "{md}");
    assert!(md.contains("ExecutePolicy group/web"), "{md}");
    assert!(
        r.anomalies
            .iter()
            .any(|a| a.text.starts_with("HTTPCode_ELB_503_Count"))
    );
    // Every other hypothesis ranks below.
    assert!(
        r.hypotheses
            .iter()
            .skip(1)
            .all(|o| o.confidence < h.confidence)
    );
}

#[test]
fn a_revoked_ingress_rule_that_stopped_traffic_names_who_and_the_command() {
    let mut w = World::new().steady_but(&["RequestCount", "RejectedConnectionCount"]);
    for s in SINCE..NOW {
        w.lb("RequestCount", s, 0.0);
        w.lb("RejectedConnectionCount", s, 4.0);
    }
    w.audit(
        SINCE - 5,
        "operator",
        "RevokeSecurityGroupIngress",
        "listener/http",
        json!({"ingress": ["::/0"], "cidr": "0.0.0.0/0"}),
    );
    w.ingress[0].1 = vec!["::/0".to_owned()];
    let r = w.run(Some("no-requests"));
    let h = top(&r);
    assert_eq!(h.cause, Cause::IngressRevoked, "{}", r.markdown());
    assert_eq!(h.remedy.command, "bellows ingress authorize http 0.0.0.0/0");
    assert!(h.title.contains("by operator"), "{}", h.title);
    assert!(h.confidence > 0.9);
    // Once authorized again, the same revoke is far less likely the cause.
    let mut w2 = w;
    w2.audit(
        NOW - 10,
        "operator",
        "AuthorizeSecurityGroupIngress",
        "listener/http",
        json!({"cidr": "0.0.0.0/0"}),
    );
    w2.ingress[0].1.push("0.0.0.0/0".to_owned());
    let again = w2.run(None);
    let h2 = again
        .hypotheses
        .iter()
        .find(|h| h.cause == Cause::IngressRevoked)
        .unwrap();
    assert!(h2.confidence < h.confidence);
}

#[test]
fn targets_failing_right_after_an_apply_point_at_the_apply() {
    let mut w = World::new().steady();
    w.audit(
        SINCE + 10,
        "operator",
        "ApplyStack",
        "stack/shop",
        json!({"applied": true}),
    );
    for (i, s) in [SINCE + 40, SINCE + 42].into_iter().enumerate() {
        w.events.push(Event::TargetHealth {
            time: at(s),
            target_group: "web".to_owned(),
            instance: InstanceId::parse(&format!("i-{:017x}", i + 1)).unwrap(),
            from: TargetState::Healthy,
            to: TargetState::Unhealthy,
            reason: Some("Target.ResponseCodeMismatch: 404".to_owned()),
        });
    }
    let r = w.run(None);
    let h = top(&r);
    assert_eq!(
        h.cause,
        Cause::HealthChecksFailingAfterChange,
        "{}",
        r.markdown()
    );
    assert_eq!(h.remedy.command, "bellows apply PREVIOUS.toml");
}

#[test]
fn repeated_failed_launches_with_error_lines_are_a_crash_loop() {
    let mut w = World::new().steady();
    for i in 0..4u64 {
        let id = InstanceId::parse(&format!("i-{:017x}", 100 + i)).unwrap();
        w.events.push(Event::Activity {
            activity: Activity {
                id: format!("a{i}"),
                group: "web".to_owned(),
                instance: id.clone(),
                kind: ActivityKind::Launch,
                description: format!("Launching a new EC2 instance: {id}"),
                cause: String::new(),
                start: at(SINCE + 10 * i),
                end: Some(at(SINCE + 10 * i + 1)),
                status: ActivityStatus::Failed,
                status_message: Some("exited with status 1".to_owned()),
            },
        });
    }
    w.logs.push(LogLine {
        instance: "i-00000000000000067".to_owned(),
        group: "web".to_owned(),
        line: "Error: cannot open config.yml".to_owned(),
    });
    let r = w.run(None);
    let h = top(&r);
    assert_eq!(h.cause, Cause::CrashLoop, "{}", r.markdown());
    assert!(h.remedy.command.starts_with("bellows logs i-"));
    assert!(r.markdown().contains("cannot open config.yml"));
}

#[test]
fn instances_the_kernel_killed_for_memory_are_out_of_memory_not_a_bare_sigkill() {
    let mut w = World::new().steady();
    for i in 0..2u64 {
        let id = InstanceId::parse(&format!("i-{:017x}", 200 + i)).unwrap();
        w.events.push(Event::Health {
            time: at(SINCE + 10 * i),
            group: "web".to_owned(),
            instance: id,
            health: crate::group::Health::Unhealthy,
            reason: "the process exited: OOMKilled: the instance type's memory limit was reached (signal 9 (SIGKILL))".to_owned(),
        });
    }
    let r = w.run(None);
    let h = top(&r);
    assert_eq!(h.cause, Cause::OutOfMemory, "{}", r.markdown());
    assert!(h.title.contains("2 OOMKilled"), "{}", h.title);
    assert_eq!(h.remedy.command, "bellows logs i-000000000000000c9");
    assert!(r.markdown().contains("OOMKilled"));
}

#[test]
fn hot_cpu_at_max_is_saturation_with_scaling_blocked() {
    let mut w = World::new().steady_but(&["CPUUtilization"]);
    w.groups[0].desired = 4;
    for s in SINCE..NOW {
        w.cpu(s, 97.0);
    }
    let r = w.run(Some("cpu-high"));
    let h = top(&r);
    assert_eq!(h.cause, Cause::CpuSaturation, "{}", r.markdown());
    assert!(h.title.contains("blocked at max"));
}

#[test]
fn slower_responses_without_errors_are_a_slow_target() {
    let mut w = World::new().steady_but(&["TargetResponseTime"]);
    for s in SINCE..NOW {
        w.tg("TargetResponseTime", s, 0.400);
    }
    let r = w.run(None);
    let h = top(&r);
    assert_eq!(h.cause, Cause::SlowTarget, "{}", r.markdown());
    assert!(h.title.contains("without errors"));
}

#[test]
fn of_several_revokes_the_rule_named_is_the_one_that_admitted_the_clients() {
    // 0.0.0.0/0 admitted the clients; ::/0 and 10.0.0.0/8 were revoked after it, and
    // authorizing either again would let no one back in.
    let mut w = World::new().steady_but(&["RequestCount", "RejectedConnectionCount"]);
    w.ingress[0].1 = vec![
        "10.0.0.0/8".to_owned(),
        "::/0".to_owned(),
        "0.0.0.0/0".to_owned(),
    ];
    for s in SINCE..NOW {
        w.lb("RequestCount", s, 0.0);
        w.lb("RejectedConnectionCount", s, 4.0);
    }
    for (i, cidr) in ["0.0.0.0/0", "::/0", "10.0.0.0/8"].into_iter().enumerate() {
        w.audit(
            SINCE - 5 + i as u64,
            "operator",
            "RevokeSecurityGroupIngress",
            "listener/http",
            json!({"cidr": cidr}),
        );
    }
    w.ingress[0].1.clear();
    w.rejected = vec![("http".to_owned(), "127.0.0.1".parse().unwrap())];
    let r = w.run(None);
    let h = top(&r);
    assert_eq!(h.cause, Cause::IngressRevoked, "{}", r.markdown());
    assert_eq!(h.remedy.command, "bellows ingress authorize http 0.0.0.0/0");
    assert!(h.title.contains("0.0.0.0/0"), "{}", h.title);
    assert!(
        r.markdown().contains("admitted by 0.0.0.0/0"),
        "{}",
        r.markdown()
    );
}

#[test]
fn an_operators_scale_out_is_named_and_a_group_at_desired_is_not_still_scaling_out() {
    // Users were turned away; the operator set desired 2 (bellows scale web --desired 2),
    // and both instances now serve.
    let mut w = World::new().steady_but(&["HTTPCode_ELB_503_Count"]);
    for s in SINCE..NOW {
        w.lb(
            "HTTPCode_ELB_503_Count",
            s,
            if s < SINCE + 60 { 3.0 } else { 0.0 },
        );
    }
    w.events.push(Event::Audit {
        record: AuditRecord {
            time: at(SINCE + 30),
            actor: "operator".to_owned(),
            source: "cli".to_owned(),
            action: "UpdateAutoScalingGroup".to_owned(),
            target: "group/web".to_owned(),
            before: json!({"desired": 1, "min": 1, "max": 4}),
            after: json!({"desired": 2, "min": 1, "max": 4}),
            result: "ok".to_owned(),
        },
    });
    let r = w.run(None);
    let h = r
        .hypotheses
        .iter()
        .find(|h| h.cause == Cause::CapacityLimit)
        .expect("a capacity hypothesis");
    let md = r.markdown();
    assert!(!h.title.contains("still scaling out"), "{}", h.title);
    assert!(
        h.title.contains("operator's change of capacity"),
        "{}",
        h.title
    );
    assert!(
        h.evidence
            .iter()
            .any(|e| e.kind == EvidenceKind::Audit && e.text.contains("UpdateAutoScalingGroup")),
        "{md}"
    );
    assert!(!md.contains("still scaling out"), "{md}");
}

#[test]
fn a_revoke_that_dropped_nothing_is_not_a_likely_cause() {
    // 10.0.0.0/8 revoked and still missing, but no connection was dropped and requests
    // flowed as usual: the report must not blame it.
    let mut w = World::new().steady();
    w.ingress[0].1 = vec!["0.0.0.0/0".to_owned()];
    w.audit(
        SINCE + 10,
        "operator",
        "RevokeSecurityGroupIngress",
        "listener/http",
        json!({"cidr": "10.0.0.0/8"}),
    );
    let r = w.run(Some("cpu-high"));
    assert!(r.likely().next().is_none(), "{}", r.markdown());
    assert!(
        r.markdown().contains("No metric left its baseline"),
        "{}",
        r.markdown()
    );
}
