use super::*;
use crate::ids::IdGen;
use crate::schedule::Cron;
use crate::stack::parse;

#[test]
fn percent_change_rounds_as_aws_does() {
    // (current, percent, min magnitude) -> change
    for (current, pct, min, want) in [
        (10, 10, None, 1),
        (10, 15, None, 1),   // 1.5 -> 1
        (10, 25, None, 2),   // 2.5 -> 2
        (3, 10, None, 1),    // 0.3 -> 1
        (3, -10, None, -1),  // -0.3 -> -1
        (10, -25, None, -2), // -2.5 -> -2 (toward zero)
        (10, 10, Some(3), 3),
        (10, -10, Some(2), -2),
        (0, 50, None, 0),
    ] {
        assert_eq!(
            percent_change(current, pct, min),
            want,
            "{current} {pct}% min {min:?}"
        );
    }
}

#[test]
fn steps_are_relative_to_the_threshold() {
    let steps = [
        Step {
            lower: Some(0.0),
            upper: Some(10.0),
            adjustment: 10,
        },
        Step {
            lower: Some(10.0),
            upper: None,
            adjustment: 30,
        },
        Step {
            lower: None,
            upper: Some(0.0),
            adjustment: -10,
        },
    ];
    assert_eq!(
        step_for(&steps, 50.0, 50.0).unwrap().adjustment,
        10,
        "lower bound inclusive above"
    );
    assert_eq!(step_for(&steps, 59.9, 50.0).unwrap().adjustment, 10);
    assert_eq!(step_for(&steps, 60.0, 50.0).unwrap().adjustment, 30);
    assert_eq!(step_for(&steps, 20.0, 50.0).unwrap().adjustment, -10);
}

struct Groups {
    groups: BTreeMap<String, Group>,
    warming: u32,
    zones: crate::schedule::ZoneTable,
}

impl GroupView for Groups {
    fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(name)
    }
    fn group_mut(&mut self, name: &str) -> Option<&mut Group> {
        self.groups.get_mut(name)
    }
    fn warming(&self, _: &str, _: Time) -> u32 {
        self.warming
    }
    fn utc_offset(&self, zone: &str, t: Time) -> Option<i32> {
        self.zones.offset(zone, t)
    }
}

/// A group `web` at `desired` (min 1, max 20), every instance in service.
fn groups(desired: u32) -> (Groups, IdGen) {
    let src = format!(
        "[groups.web]\nmin = 1\nmax = 20\ndesired = {desired}\n[groups.web.launch]\ncommand = [\"x\"]\n"
    );
    let mut g = Group::new(&parse(&src).unwrap().groups[0]);
    let mut ids = IdGen::new(3);
    settle(&mut g, &mut ids, Time::from_millis(0));
    (
        Groups {
            groups: [("web".to_owned(), g)].into(),
            warming: 0,
            zones: Default::default(),
        },
        ids,
    )
}

fn settle(g: &mut Group, ids: &mut IdGen, now: Time) {
    for c in g.plan(now, ids) {
        match c {
            crate::group::Command::Launch { instance, .. } => g.on_running(&instance, now),
            crate::group::Command::Terminate { instance, .. } => {
                g.on_exited(&instance, now, "stopped")
            }
        }
    }
}

fn cpu() -> SeriesKey {
    SeriesKey::new(
        "AWS/EC2",
        "CPUUtilization",
        &[("AutoScalingGroupName", "web")],
    )
}

fn alarm(
    name: &str,
    comparison: Comparison,
    threshold: f64,
    n: u32,
    actions: &[&str],
) -> AlarmSpec {
    AlarmSpec {
        name: name.into(),
        metric: cpu(),
        statistic: Statistic::Average,
        period: Duration::from_secs(1),
        evaluation_periods: n,
        datapoints_to_alarm: n,
        comparison,
        threshold,
        treat_missing_data: MissingData::Missing,
        alarm_actions: actions.iter().map(|s| (*s).to_owned()).collect(),
        ok_actions: vec![],
        insufficient_data_actions: vec![],
        description: None,
        datapoints_given: true,
    }
}

/// Puts `value` for second `s` and evaluates at the start of second `s + 1`.
fn tick(
    scaler: &mut Scaler,
    store: &mut MetricStore,
    g: &mut Groups,
    s: u64,
    value: f64,
) -> Vec<Outcome> {
    store.put(&cpu(), Time::from_millis(s * 1000), value);
    scaler.evaluate(store, g, Time::from_millis((s + 1) * 1000))
}

/// A simple policy on group `web` that changes capacity by `adjustment`.
fn simple_policy(name: &str, adjustment: i64, cooldown_secs: u64) -> PolicySpec {
    PolicySpec {
        name: name.into(),
        group: "web".into(),
        kind: PolicyKind::Simple {
            adjustment_type: AdjustmentType::ChangeInCapacity,
            adjustment,
            cooldown: Some(Duration::from_secs(cooldown_secs)),
            min_adjustment_magnitude: None,
        },
    }
}

fn desired(g: &Groups) -> u32 {
    g.groups["web"].capacity().desired
}

#[test]
fn the_step_example_goes_10_11_14() {
    let (mut g, _) = groups(10);
    let policy = PolicySpec {
        name: "steps".into(),
        group: "web".into(),
        kind: PolicyKind::Step {
            adjustment_type: AdjustmentType::PercentChangeInCapacity,
            steps: vec![
                Step {
                    lower: Some(0.0),
                    upper: Some(10.0),
                    adjustment: 10,
                },
                Step {
                    lower: Some(10.0),
                    upper: None,
                    adjustment: 30,
                },
            ],
            min_adjustment_magnitude: None,
            warmup: None,
        },
    };
    let mut s = Scaler::new(
        vec![alarm(
            "high",
            Comparison::GreaterThanOrEqualToThreshold,
            50.0,
            1,
            &["steps"],
        )],
        vec![policy],
        vec![],
        Time::default(),
    );
    let mut store = MetricStore::default();
    tick(&mut s, &mut store, &mut g, 100, 55.0);
    assert_eq!(desired(&g), 11);
    tick(&mut s, &mut store, &mut g, 101, 65.0);
    assert_eq!(desired(&g), 14, "11 + 30% = 14.3, rounded down");
}

#[test]
fn warming_instances_count_toward_desired_so_one_breach_gives_one_activity() {
    let (mut g, _) = groups(2);
    let policy = PolicySpec {
        name: "plus-one".into(),
        group: "web".into(),
        kind: PolicyKind::Step {
            adjustment_type: AdjustmentType::ChangeInCapacity,
            steps: vec![Step {
                lower: Some(0.0),
                upper: None,
                adjustment: 1,
            }],
            min_adjustment_magnitude: None,
            warmup: Some(Duration::from_secs(60)),
        },
    };
    let mut s = Scaler::new(
        vec![alarm(
            "high",
            Comparison::GreaterThanThreshold,
            60.0,
            1,
            &["plus-one"],
        )],
        vec![policy],
        vec![],
        Time::default(),
    );
    let mut store = MetricStore::default();
    tick(&mut s, &mut store, &mut g, 100, 90.0);
    assert_eq!(desired(&g), 3);
    g.warming = 1; // the new instance warms up: repeated breaches add nothing
    for sec in 101..110 {
        tick(&mut s, &mut store, &mut g, sec, 90.0);
    }
    assert_eq!(desired(&g), 3);
    g.warming = 0;
    tick(&mut s, &mut store, &mut g, 110, 90.0);
    assert_eq!(desired(&g), 4, "after warmup the next breach scales again");
}

#[test]
fn cooldown_blocks_a_second_simple_scaling() {
    let (mut g, _) = groups(2);
    let policy = simple_policy("simple", 2, 180);
    let mut s = Scaler::new(
        vec![alarm(
            "high",
            Comparison::GreaterThanThreshold,
            60.0,
            1,
            &["simple"],
        )],
        vec![policy],
        vec![],
        Time::default(),
    );
    let mut store = MetricStore::default();
    tick(&mut s, &mut store, &mut g, 100, 90.0);
    assert_eq!(desired(&g), 4);
    let (web, mut ids) = (g.groups.get_mut("web").unwrap(), IdGen::new(9));
    settle(web, &mut ids, Time::from_millis(101_000));
    for sec in 101..280 {
        tick(&mut s, &mut store, &mut g, sec, 90.0);
    }
    assert_eq!(desired(&g), 4, "in cooldown");
    tick(&mut s, &mut store, &mut g, 281, 90.0);
    assert_eq!(desired(&g), 6, "cooldown over");
}

#[test]
fn target_tracking_scales_out_fast_and_in_slowly_and_the_largest_capacity_wins() {
    let (mut g, _) = groups(2);
    let tt = PolicySpec {
        name: "cpu70".into(),
        group: "web".into(),
        kind: PolicyKind::TargetTracking {
            metric: TrackedMetric::AsgAverageCpuUtilization,
            target: 70.0,
            disable_scale_in: false,
            warmup: None,
            period: Duration::from_secs(1),
        },
    };
    let step = PolicySpec {
        name: "to-ten".into(),
        group: "web".into(),
        kind: PolicyKind::Step {
            adjustment_type: AdjustmentType::ExactCapacity,
            steps: vec![Step {
                lower: Some(0.0),
                upper: None,
                adjustment: 10,
            }],
            min_adjustment_magnitude: None,
            warmup: None,
        },
    };
    let mut s = Scaler::new(
        vec![alarm(
            "very-high",
            Comparison::GreaterThanThreshold,
            99.0,
            1,
            &["to-ten"],
        )],
        vec![tt, step],
        vec![],
        Time::default(),
    );
    let mut store = MetricStore::default();
    // Two seconds above target: not yet (3 of 3 datapoints needed).
    tick(&mut s, &mut store, &mut g, 100, 95.0);
    tick(&mut s, &mut store, &mut g, 101, 95.0);
    assert_eq!(desired(&g), 2);
    // Third: ceil(2 x 95 / 70) = 3.
    tick(&mut s, &mut store, &mut g, 102, 95.0);
    assert_eq!(desired(&g), 3);
    // Both policies fire: target tracking wants ceil(2 x 100 / 70) = 3, the step 10.
    let out = tick(&mut s, &mut store, &mut g, 103, 100.0);
    assert_eq!(desired(&g), 10, "{out:?}");
    // Low load: scale-in only after 15 of 15 seconds below 0.9 x target.
    let (web, mut ids) = (g.groups.get_mut("web").unwrap(), IdGen::new(5));
    settle(web, &mut ids, Time::from_millis(104_000));
    for sec in 104..118 {
        tick(&mut s, &mut store, &mut g, sec, 14.0);
    }
    assert_eq!(desired(&g), 10);
    let out = tick(&mut s, &mut store, &mut g, 118, 14.0);
    assert_eq!(desired(&g), 2, "ceil(10 x 14 / 70) = 2: {out:?}");
}

#[test]
fn scheduled_actions_run_at_their_minute() {
    let (mut g, _) = groups(2);
    let action = ScheduledAction {
        name: "morning".into(),
        group: "web".into(),
        cron: Some(Cron::parse("0 9 * * *", "UTC").unwrap()),
        start: None,
        end: None,
        min: Some(4),
        max: None,
        desired: Some(6),
    };
    let mut s = Scaler::new(
        vec![],
        vec![],
        vec![action],
        Time::from_millis(1_795_424_400_000 - 120_000),
    );
    let store = MetricStore::default();
    assert!(
        s.evaluate(
            &store,
            &mut g,
            Time::from_millis(1_795_424_400_000 - 60_000)
        )
        .is_empty()
    );
    let out = s.evaluate(&store, &mut g, Time::from_millis(1_795_424_400_000 + 5_000));
    assert_eq!(
        out,
        vec![Outcome::Scaled {
            group: "web".into(),
            policy: "morning".into(),
            from: 2,
            to: 6
        }]
    );
    assert_eq!(g.groups["web"].capacity().min, 4);
}

#[test]
fn a_one_time_action_runs_once_at_its_second_and_a_recurrence_only_within_its_window() {
    let (mut g, _) = groups(2);
    let t0 = 1_795_424_400_000; // 09:00 UTC
    let at = |ms: u64| Time::from_millis(t0 + ms);
    let once = ScheduledAction {
        name: "launch-day".into(),
        group: "web".into(),
        cron: None,
        start: Some(at(30_500)),
        end: None,
        min: None,
        max: None,
        desired: Some(5),
    };
    // Every minute, but only from 09:02 until 09:04.
    let window = ScheduledAction {
        name: "every-minute".into(),
        group: "web".into(),
        cron: Some(Cron::parse("* * * * *", "UTC").unwrap()),
        start: Some(at(120_000)),
        end: Some(at(240_000)),
        min: None,
        max: Some(9),
        desired: None,
    };
    let mut s = Scaler::new(vec![], vec![], vec![once, window], at(0));
    let store = MetricStore::default();
    assert!(s.evaluate(&store, &mut g, at(30_000)).is_empty(), "not yet");
    let out = s.evaluate(&store, &mut g, at(31_000));
    assert_eq!(
        out,
        vec![Outcome::Scaled {
            group: "web".into(),
            policy: "launch-day".into(),
            from: 2,
            to: 5
        }],
        "on the first evaluation at or after its time"
    );
    g.groups
        .get_mut("web")
        .unwrap()
        .set_capacity(None, None, Some(2), at(32_000), "operator")
        .unwrap();
    for t in (33_000..600_000).step_by(1_000) {
        s.evaluate(&store, &mut g, at(t));
        if t == 60_000 {
            assert_eq!(
                g.groups["web"].capacity().max,
                20,
                "the recurrence waits for its start"
            );
        }
    }
    assert_eq!(
        g.groups["web"].capacity().desired,
        2,
        "the one-time action ran once"
    );
    assert_eq!(
        g.groups["web"].capacity().max,
        9,
        "the recurrence ran within its window"
    );

    // A one-time action whose time is before the scaler began never runs.
    let (mut g, _) = groups(2);
    let past = ScheduledAction {
        name: "past".into(),
        group: "web".into(),
        cron: None,
        start: Some(at(0)),
        end: None,
        min: None,
        max: None,
        desired: Some(4),
    };
    let mut s = Scaler::new(vec![], vec![], vec![past], at(1_000));
    for t in (2_000..70_000).step_by(1_000) {
        assert!(s.evaluate(&store, &mut g, at(t)).is_empty());
    }
}

/// Europe/Paris around its 2026 change to summer time (2026-03-29 01:00 UTC).
fn paris_spring_2026() -> crate::schedule::ZoneTable {
    let mut zones = crate::schedule::ZoneTable::default();
    zones.insert("Europe/Paris", Time::from_millis(1_761_440_400_000), 60);
    zones.insert("Europe/Paris", Time::from_millis(1_774_746_000_000), 120);
    zones
}

#[test]
fn zone_tables_give_the_offset_in_force() {
    let zones = paris_spring_2026();
    // (zone, seconds since the epoch, offset)
    for (zone, t, want) in [
        ("Europe/Paris", 1_761_440_399, None), // before the table
        ("Europe/Paris", 1_761_440_400, Some(60)),
        ("Europe/Paris", 1_774_745_999, Some(60)), // 2026-03-29 00:59:59 UTC
        ("Europe/Paris", 1_774_746_000, Some(120)), // 01:00:00 UTC, 03:00 in Paris
        ("Europe/Paris", 1_800_000_000, Some(120)),
        ("America/New_York", 1_774_746_000, None),
    ] {
        assert_eq!(
            zones.offset(zone, Time::from_millis(t * 1000)),
            want,
            "{zone} at {t}"
        );
    }
}

#[test]
fn a_named_zone_schedule_follows_daylight_saving() {
    let (mut g, _) = groups(2);
    g.zones = paris_spring_2026();
    let action = |name: &str, cron: &str, zone: &str, desired: u32| ScheduledAction {
        name: name.into(),
        group: "web".into(),
        cron: Some(Cron::parse(cron, zone).unwrap()),
        start: None,
        end: None,
        min: None,
        max: None,
        desired: Some(desired),
    };
    let actions = vec![
        action("morning", "30 8 * * *", "Europe/Paris", 5),
        action("evening", "30 20 * * *", "Europe/Paris", 2),
        // A zone the caller did not look up never matches (the node refuses such a
        // stack when it starts).
        action("nowhere", "* * * * *", "America/New_York", 9),
    ];
    // From 2026-03-28 00:00 UTC, two days minute by minute, across the change.
    let start = 1_774_656_000u64;
    let mut s = Scaler::new(vec![], vec![], actions, Time::from_millis(start * 1000));
    let store = MetricStore::default();
    let mut fired = Vec::new();
    for minute in 1..=2 * 24 * 60 {
        let t = start + minute * 60 + 5;
        for o in s.evaluate(&store, &mut g, Time::from_millis(t * 1000)) {
            if let Outcome::Scaled { policy, to, .. } = o {
                fired.push((t - 5, policy, to));
            }
        }
    }
    // 08:30 and 20:30 in Paris: 07:30 and 19:30 UTC in winter, 06:30 and 18:30 after.
    let want = [
        (1_774_683_000, "morning", 5), // 2026-03-28 07:30 UTC
        (1_774_726_200, "evening", 2), // 2026-03-28 19:30 UTC
        (1_774_765_800, "morning", 5), // 2026-03-29 06:30 UTC
        (1_774_809_000, "evening", 2), // 2026-03-29 18:30 UTC
    ];
    let want: Vec<(u64, String, u32)> = want
        .iter()
        .map(|(t, p, d)| (*t, (*p).to_owned(), *d))
        .collect();
    assert_eq!(fired, want);
}

fn requests() -> SeriesKey {
    SeriesKey::new(
        "AWS/ApplicationELB",
        "RequestCount",
        &[("TargetGroup", "web")],
    )
}

fn periodic(kind: PolicyKind) -> Scaler {
    let p = PolicySpec {
        name: "p".into(),
        group: "web".into(),
        kind,
    };
    Scaler::new(vec![], vec![p], vec![], Time::from_millis(0))
}

/// Runs seconds `from..to` with `value` put for each into `key`; settles the group.
fn run_seconds(
    scaler: &mut Scaler,
    store: &mut MetricStore,
    g: &mut Groups,
    ids: &mut IdGen,
    key: &SeriesKey,
    range: std::ops::Range<u64>,
    value: impl Fn(u64) -> f64,
) {
    for s in range {
        store.put(key, Time::from_millis(s * 1000), value(s));
        let now = Time::from_millis((s + 1) * 1000);
        scaler.evaluate(store, g, now);
        let web = g.groups.get_mut("web").unwrap();
        settle(web, ids, now);
    }
}

#[test]
fn hpa_scales_by_ratio_within_tolerance_and_holds_scale_down_for_its_window() {
    let hpa = HpaSpec::new(TrackedMetric::AsgAverageCpuUtilization, 50.0);
    let mut rig = Rig::with(PolicyKind::Hpa(hpa), 4, cpu());
    // 54% is within 10% of the target: nothing happens.
    assert_eq!(rig.run(0..60, |_| 54.0), 4);
    // 100% on 4 instances: 8, at the next 15-second sync.
    assert_eq!(rig.run(60..75, |_| 100.0), 8);
    // 20% on 8 asks for 4, but the 5-minute window keeps the highest recommendation.
    assert_eq!(rig.run(75..300, |_| 20.0), 8);
    assert_eq!(rig.run(300..400, |_| 20.0), 4);
}

#[test]
fn kpa_panics_on_a_burst_and_does_not_scale_down_while_panicking() {
    let kpa = KpaSpec::new("web".into(), 10.0);
    let mut rig = Rig::with(PolicyKind::Kpa(kpa), 2, requests());
    // 14 requests a second at 7 per instance (10 at 70%): 2, steady.
    assert_eq!(rig.run(0..120, |_| 14.0), 2);
    // A burst of 70 a second: the 6-second window asks for 10 >= 2 x 2 ready: panic.
    assert_eq!(rig.run(120..128, |_| 70.0), 10);
    // The burst ends; panic mode holds the capacity for a stable window.
    // (Panic began at 122, when the 6-second window first held two burst seconds.)
    assert_eq!(rig.run(128..181, |_| 14.0), 10);
    // Then it scales down, at most by half a tick (2 s).
    assert_eq!(rig.run(181..183, |_| 14.0), 5);
    assert_eq!(rig.run(183..260, |_| 14.0), 2);
}

#[test]
fn predictive_scales_ahead_of_yesterdays_peak_and_reacts_to_what_it_missed() {
    let mut rig = Rig::new(PolicyKind::Predictive(PredictiveSpec::new(
        "web".into(),
        50.0,
    )));
    let day = 86_400;
    // Every day: 40 requests a second, 450 from 10:00 to 11:00.
    let load = |s: u64| {
        if (36_000..39_600).contains(&(s % day)) {
            450.0
        } else {
            40.0
        }
    };
    // Day two, 9:55: the load is still 40 a second but the forecast sees 10:00 coming.
    assert_eq!(rig.run(0..day + 35_700, load), 9);
    assert_eq!(rig.run(day + 35_700..day + 39_500, load), 9);
    // An unforecast burst is caught by the reactive part within seconds.
    assert_eq!(rig.run(day + 39_500..day + 39_515, |_| 900.0), 18);
}

/// Every day: 20 requests a second, and from 10:00 to 11:00 a mean of 100 a second that
/// comes either evenly or as 400 in every fourth second (standard deviation 173).
fn daily_hour(bursty: bool) -> impl Fn(u64) -> f64 {
    move |s| {
        if !(36_000..39_600).contains(&(s % 86_400)) {
            20.0
        } else if !bursty {
            100.0
        } else if s % 4 == 3 {
            400.0
        } else {
            0.0
        }
    }
}

/// The predictive policy's desired capacity at 9:57 on day two, after a day of `load`,
/// at 100 requests a second an instance and `burst` standard deviations at
/// `burst_target` an instance.
fn predicted_at_957(burst: f64, burst_target: f64, load: impl Fn(u64) -> f64) -> u32 {
    let mut spec = PredictiveSpec::new("web".into(), 100.0);
    spec.burst = burst;
    spec.burst_target = burst_target;
    Rig::new(PolicyKind::Predictive(spec)).run(0..86_400 + 35_820, load)
}

#[test]
fn predictive_sizes_ahead_for_the_bursts_it_has_seen_not_only_the_mean() {
    // The same mean of 100 a second at 10:00 yesterday; 9:57 today is still at 20.
    // Sized for the mean alone, both need one instance of 100 a second.
    assert_eq!(predicted_at_957(0.0, 100.0, daily_hour(false)), 1);
    assert_eq!(predicted_at_957(0.0, 100.0, daily_hour(true)), 1);
    // Two standard deviations above it: smooth traffic still one, bursty traffic
    // ceil((100 + 2 x 173.2) / 100) = 5, three minutes before it comes.
    assert_eq!(predicted_at_957(2.0, 100.0, daily_hour(false)), 1);
    assert_eq!(predicted_at_957(2.0, 100.0, daily_hour(true)), 5);
    assert_eq!(predicted_at_957(1.0, 100.0, daily_hour(true)), 3);
    // Taken at 200 an instance in a burst: ceil(446.4 / 200) = 3; the mean alone
    // still asks for its one at the sustained target.
    assert_eq!(predicted_at_957(2.0, 200.0, daily_hour(true)), 3);
    assert_eq!(predicted_at_957(2.0, 1000.0, daily_hour(true)), 1);
}

/// One periodic policy, its store and its group, run a second at a time.
/// A periodic policy on a group, fed one series second by second.
struct Rig {
    scaler: Scaler,
    store: MetricStore,
    g: Groups,
    ids: IdGen,
    key: SeriesKey,
}

impl Rig {
    /// One instance, fed the target group's request count.
    fn new(kind: PolicyKind) -> Rig {
        Rig::with(kind, 1, requests())
    }

    fn with(kind: PolicyKind, instances: u32, key: SeriesKey) -> Rig {
        let (g, ids) = groups(instances);
        Rig {
            scaler: periodic(kind),
            store: MetricStore::default(),
            g,
            ids,
            key,
        }
    }

    /// Runs `range` with the series at `load` each second; the desired capacity after.
    fn run(&mut self, range: std::ops::Range<u64>, load: impl Fn(u64) -> f64) -> u32 {
        run_seconds(
            &mut self.scaler,
            &mut self.store,
            &mut self.g,
            &mut self.ids,
            &self.key,
            range,
            load,
        );
        desired(&self.g)
    }
}

#[test]
fn predictive_reacts_to_the_spread_of_the_last_window_and_holds_it_to_scale_in() {
    let mut spec = PredictiveSpec::new("web".into(), 100.0);
    spec.burst = 2.0;
    spec.reactive_window = Duration::from_secs(60);
    spec.scale_in_window = Duration::from_secs(300);
    let mut rig = Rig::new(PolicyKind::Predictive(spec));
    // No history: 60 a second evenly asks for one instance.
    assert_eq!(rig.run(0..120, |_| 60.0), 1);
    // The same mean as 240 in every fourth second (standard deviation 103.9): after a
    // window of it, ceil((60 + 207.8) / 100) = 3.
    let bursty = |s: u64| if s % 4 == 3 { 240.0 } else { 0.0 };
    assert_eq!(rig.run(120..185, bursty), 3);
    // Smooth again: held for the scale-in window, then back to one.
    assert_eq!(rig.run(185..420, |_| 60.0), 3);
    assert_eq!(rig.run(420..560, |_| 60.0), 1);
}

#[test]
fn execute_policy_runs_a_simple_or_step_policy_as_its_alarm_would() {
    let (mut g, _) = groups(2);
    let simple = simple_policy("add-two", 2, 180);
    let steps = PolicySpec {
        name: "steps".into(),
        group: "web".into(),
        kind: PolicyKind::Step {
            adjustment_type: AdjustmentType::ExactCapacity,
            steps: vec![Step {
                lower: Some(0.0),
                upper: None,
                adjustment: 9,
            }],
            min_adjustment_magnitude: None,
            warmup: None,
        },
    };
    let mut s = Scaler::new(vec![], vec![simple, steps], vec![], Time::default());
    let now = Time::from_millis(1_000_000);
    let out = s
        .execute_policy("add-two", &mut g, now, true, None, None)
        .unwrap();
    assert!(
        matches!(out, Some(Outcome::Scaled { from: 2, to: 4, .. })),
        "{out:?}"
    );
    assert_eq!(desired(&g), 4);
    // Within its cooldown: refused when honoured, run when not.
    let later = Time::from_millis(1_060_000);
    assert_eq!(
        s.execute_policy("add-two", &mut g, later, true, None, None),
        Err(ExecuteError::Cooldown("add-two".into()))
    );
    assert!(
        s.execute_policy("add-two", &mut g, later, false, None, None)
            .unwrap()
            .is_some()
    );
    assert_eq!(desired(&g), 6);
    // A step policy needs the metric and the threshold it breached.
    assert!(matches!(
        s.execute_policy("steps", &mut g, later, false, None, None),
        Err(ExecuteError::Invalid(_))
    ));
    s.execute_policy("steps", &mut g, later, false, Some(80.0), Some(70.0))
        .unwrap();
    assert_eq!(desired(&g), 9);
    assert_eq!(
        s.execute_policy("steps", &mut g, later, false, Some(80.0), Some(70.0)),
        Ok(None),
        "already at what it asks for"
    );
    assert_eq!(
        s.execute_policy("nope", &mut g, later, false, None, None),
        Err(ExecuteError::NotFound("nope".into()))
    );
}

#[test]
fn a_put_alarm_keeps_its_state_unless_redefined_and_a_removed_one_runs_nothing() {
    let (mut g, _) = groups(2);
    let policy = simple_policy("simple", 1, 0);
    let mut s = Scaler::new(vec![], vec![policy], vec![], Time::default());
    let mut store = MetricStore::default();
    let high = alarm(
        "high",
        Comparison::GreaterThanThreshold,
        60.0,
        1,
        &["simple"],
    );
    assert!(!s.put_alarm(high.clone(), Time::default()), "a new alarm");
    tick(&mut s, &mut store, &mut g, 100, 90.0);
    assert_eq!(s.alarms["high"].state, AlarmState::Alarm);
    assert_eq!(desired(&g), 3, "the new alarm ran its action");
    // The same definition again: state and history stay.
    assert!(s.put_alarm(high.clone(), Time::from_millis(101_500)));
    assert_eq!(s.alarms["high"].state, AlarmState::Alarm);
    // A changed threshold: evaluated again from the start.
    let higher = alarm(
        "high",
        Comparison::GreaterThanThreshold,
        95.0,
        1,
        &["simple"],
    );
    assert!(s.put_alarm(higher, Time::from_millis(101_600)));
    assert_eq!(s.alarms["high"].state, AlarmState::InsufficientData);
    tick(&mut s, &mut store, &mut g, 101, 90.0);
    assert_eq!(s.alarms["high"].state, AlarmState::Ok, "90 is under 95");
    assert!(s.remove_alarm("high"));
    assert!(!s.remove_alarm("high"), "deleted once");
    let before = desired(&g);
    for sec in 102..110 {
        tick(&mut s, &mut store, &mut g, sec, 99.0);
    }
    assert_eq!(desired(&g), before, "a deleted alarm scales nothing");
}
