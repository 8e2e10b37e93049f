use super::*;
use crate::stack::parse;

const TT: &str = r#"
[stack]
name = "sim"
[target_groups.web]
port = 8000
[groups.web]
min = 1
max = 20
desired = 1
target_groups = ["web"]
[groups.web.launch]
command = ["bellows", "app", "echo"]
[policies.cpu]
group = "web"
type = "target_tracking"
metric = "ASGAverageCPUUtilization"
target = 50
period = "60s"
[simulation]
capacity = 100
startup = "60s"
startup_spread = "10s"
"#;

fn run_all(src: &str, trace: &[u32], seed: Option<u64>) -> (Summary, Vec<Second>) {
    let stack = parse(src).unwrap_or_else(|d| panic!("{d:?}"));
    let mut rows = Vec::new();
    let s = run(
        &stack,
        trace,
        &Options {
            scale: 1.0,
            seed,
            start: 0,
            ..Options::default()
        },
        &mut |r| rows.push(*r),
    )
    .unwrap();
    (s, rows)
}

#[test]
fn target_tracking_follows_a_step_in_load_through_the_real_scaler() {
    // 10 minutes at 40 requests a second, then 30 minutes at 400.
    let trace: Vec<u32> = (0..2400).map(|t| if t < 600 { 40 } else { 400 }).collect();
    let (s, rows) = run_all(TT, &trace, None);
    // 400 requests at 50% CPU of 100 each: 8 instances, or one more while the backlog
    // built up in the overload keeps CPU high.
    let last = rows.last().unwrap();
    assert!((8..=9).contains(&last.in_service), "{:?}", s.actions);
    // The first action comes after three one-minute datapoints above the target.
    assert_eq!(
        (s.actions[0].t, s.actions[0].from, s.actions[0].to),
        (780, 1, 2)
    );
    assert!(s.actions.iter().all(|a| a.policy == "cpu"));
    // Overloaded for a while: the alarm needs 3 one-minute datapoints, then start-up.
    assert!(
        s.seconds_over_slo > 180 && s.seconds_over_slo < 1800,
        "{}",
        s.seconds_over_slo
    );
    assert_eq!(s.seconds, 2400);
    assert!(s.instance_hours > 1.0 && s.instance_hours < 8.0 * 2400.0 / 3600.0);
}

#[test]
fn same_seed_same_run_and_another_seed_another_start_up() {
    let trace: Vec<u32> = (0..3600).map(|t| 50 + (t % 900) as u32 / 2).collect();
    let (a, ra) = run_all(TT, &trace, Some(7));
    let (b, rb) = run_all(TT, &trace, Some(7));
    assert_eq!(a, b);
    assert_eq!(ra, rb);
    let (c, _) = run_all(TT, &trace, Some(8));
    assert_ne!(a.instance_hours, c.instance_hours);
}

#[test]
fn the_metrics_alarms_read_are_fed_under_the_live_node_names() {
    let alarm = |name: &str, ns: &str, metric: &str, dims: &str| {
        format!(
            "[alarms.{name}]\nnamespace = \"{ns}\"\nmetric = \"{metric}\"\ndimensions = {dims}\nperiod = \"10s\"\nevaluation_periods = 1\ncomparison = \">\"\nthreshold = 1e9\n"
        )
    };
    let asg = r#"{ AutoScalingGroupName = "web" }"#;
    let tg = r#"{ TargetGroup = "web" }"#;
    let lb = r#"{ LoadBalancer = "sim" }"#;
    let mut src = TT.to_owned();
    for (i, (ns, metric, dims)) in [
        ("AWS/EC2", "CPUUtilization", asg),
        ("AWS/ApplicationELB", "RequestCount", tg),
        ("AWS/ApplicationELB", "RequestCount", lb),
        ("AWS/ApplicationELB", "RequestCountPerTarget", tg),
        ("AWS/ApplicationELB", "TargetResponseTime", tg),
        ("AWS/ApplicationELB", "HTTPCode_Target_2XX_Count", tg),
        ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", tg),
        ("AWS/ApplicationELB", "HealthyHostCount", tg),
        ("AWS/ApplicationELB", "ActiveConnectionCount", lb),
        ("AWS/AutoScaling", "GroupDesiredCapacity", asg),
        ("AWS/AutoScaling", "GroupInServiceInstances", asg),
        ("IPTracker", "RejectedConnections", asg),
        ("IPTracker", "ActiveUsers", asg),
        // Another group's or target group's series are not this simulation's.
        (
            "AWS/EC2",
            "CPUUtilization",
            r#"{ AutoScalingGroupName = "db" }"#,
        ),
        (
            "AWS/ApplicationELB",
            "RequestCount",
            r#"{ TargetGroup = "api" }"#,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        src += &alarm(&format!("a{i}"), ns, metric, dims);
    }
    let stack = parse(&src).unwrap_or_else(|d| panic!("{d:?}"));
    let sim = Sim::new(&stack, &Options::default()).unwrap();
    let fed: Vec<String> = sim
        .feeds
        .iter()
        .map(|(f, k)| format!("{f:?} {k}"))
        .collect();
    expect_test::expect![[r#"
        [
            "ActiveConnections AWS/ApplicationELB/ActiveConnectionCount{LoadBalancer=sim}",
            "Elb5xx AWS/ApplicationELB/HTTPCode_ELB_5XX_Count{TargetGroup=web}",
            "Target2xx AWS/ApplicationELB/HTTPCode_Target_2XX_Count{TargetGroup=web}",
            "HealthyHosts AWS/ApplicationELB/HealthyHostCount{TargetGroup=web}",
            "RequestCount AWS/ApplicationELB/RequestCount{LoadBalancer=sim}",
            "RequestCount AWS/ApplicationELB/RequestCount{TargetGroup=web}",
            "RequestCountPerTarget AWS/ApplicationELB/RequestCountPerTarget{TargetGroup=web}",
            "TargetResponseTime AWS/ApplicationELB/TargetResponseTime{TargetGroup=web}",
            "Desired AWS/AutoScaling/GroupDesiredCapacity{AutoScalingGroupName=web}",
            "InService AWS/AutoScaling/GroupInServiceInstances{AutoScalingGroupName=web}",
            "GroupCpu AWS/EC2/CPUUtilization{AutoScalingGroupName=web}",
            "AppActive IPTracker/ActiveUsers{AutoScalingGroupName=web}",
            "AppRejected IPTracker/RejectedConnections{AutoScalingGroupName=web}",
        ]
    "#]]
    .assert_debug_eq(&fed);
}

/// A stack with the target tracking policy of `TT` and one of each periodic type, and
/// crashes and a queue limit to exercise those paths.
fn stack_with(which: u8) -> Stack {
    let policies = [
        "[policies.p]\ngroup = \"web\"\ntype = \"target_tracking\"\ntarget = 50\nperiod = \"10s\"\n",
        "[policies.p]\ngroup = \"web\"\ntype = \"hpa\"\ntarget = 50\n",
        "[policies.p]\ngroup = \"web\"\ntype = \"kpa\"\ntarget_group = \"web\"\ntarget = 30\n",
        "[policies.p]\ngroup = \"web\"\ntype = \"predictive\"\ntarget_group = \"web\"\ntarget = 30\n",
    ];
    let p = policies[usize::from(which) % policies.len()];
    let src = TT.replace(
        "[simulation]",
        &format!("{p}[simulation]\ncrash_rate = 30\nmax_in_flight = 50"),
    );
    parse(&src).unwrap_or_else(|d| panic!("{d:?}"))
}

/// Desired stays within [min, max], instances billed cover those in service and
/// pending, and no request is counted twice.
fn invariants(trace: Vec<u16>, which: u8, seed: u64) -> bool {
    let stack = stack_with(which);
    let counts: Vec<u32> = trace.iter().map(|c| u32::from(*c % 2000)).collect();
    if counts.is_empty() {
        return true;
    }
    let mut ok = true;
    // Requests arrived and not yet served or turned away: the backlog's bound.
    let mut waiting = 0.0;
    let summary = run(
        &stack,
        &counts,
        &Options {
            seed: Some(seed),
            ..Options::default()
        },
        &mut |r| {
            waiting += r.requests;
            ok &= (1..=20).contains(&r.desired)
                && r.in_service + r.pending <= r.billed
                && r.served >= 0.0
                && r.rejected >= 0.0
                && r.served + r.rejected <= waiting + 1e-6
                && r.p99 >= 0.0;
            waiting -= r.served + r.rejected;
        },
    )
    .unwrap();
    ok && summary.seconds == counts.len() as u64
        && summary.served + summary.rejected <= summary.requests + 1e-6
}

#[test]
fn invariants_hold_for_any_trace_and_policy() {
    // Traces of up to 1,500 seconds, long enough for every policy to act.
    quickcheck::QuickCheck::new()
        .rng(quickcheck::Gen::new(1500))
        .tests(60)
        .quickcheck(invariants as fn(Vec<u16>, u8, u64) -> bool);
}

#[test]
fn scheduled_actions_in_a_named_zone_follow_its_daylight_saving() {
    let src = r#"
[groups.web]
min = 1
max = 10
desired = 1
[groups.web.launch]
command = ["bellows", "app", "echo"]
[[groups.web.scheduled]]
name = "morning"
cron = "30 8 * * *"
time_zone = "Europe/Paris"
desired = 4
[[groups.web.scheduled]]
name = "evening"
cron = "30 20 * * *"
time_zone = "Europe/Paris"
desired = 1
"#;
    let stack = parse(src).unwrap_or_else(|d| panic!("{d:?}"));
    // Paris went from +01:00 to +02:00 at 2026-03-29 01:00 UTC.
    let mut zones = ZoneTable::default();
    zones.insert("Europe/Paris", Time::from_millis(1_761_440_400_000), 60);
    zones.insert("Europe/Paris", Time::from_millis(1_774_746_000_000), 120);
    // From 2026-03-28 06:00 UTC for 26 hours.
    let start = 1_774_677_600;
    let trace = vec![10; 26 * 3600];
    let opts = Options {
        start,
        zones,
        ..Options::default()
    };
    let s = run(&stack, &trace, &opts, &mut |_| {}).unwrap();
    let got: Vec<(u64, &str, u32)> = s
        .actions
        .iter()
        .map(|a| (a.t, a.policy.as_str(), a.to))
        .collect();
    assert_eq!(
        got,
        [
            (1_774_683_000, "morning", 4), // 2026-03-28 07:30 UTC, +01:00
            (1_774_726_200, "evening", 1), // 19:30 UTC
            (1_774_765_800, "morning", 4), // 2026-03-29 06:30 UTC, +02:00
        ]
    );
    // Without the zone's offsets the actions cannot match: the caller must look them up.
    let s = run(
        &stack,
        &trace,
        &Options {
            start,
            ..Options::default()
        },
        &mut |_| {},
    )
    .unwrap();
    assert!(s.actions.is_empty(), "{:?}", s.actions);
}
