use expect_test::{Expect, expect};

use super::*;

fn spec(m: u32, n: u32, missing: MissingData) -> AlarmSpec {
    AlarmSpec {
        name: "high-cpu".into(),
        metric: SeriesKey::new(
            "AWS/EC2",
            "CPUUtilization",
            &[("AutoScalingGroupName", "web")],
        ),
        statistic: Statistic::Average,
        period: Duration::from_secs(10),
        evaluation_periods: n,
        datapoints_to_alarm: m,
        comparison: Comparison::GreaterThanThreshold,
        threshold: 60.0,
        treat_missing_data: missing,
        alarm_actions: vec![],
        ok_actions: vec![],
        insufficient_data_actions: vec![],
        description: None,
        datapoints_given: true,
    }
}

/// Feeds one value per period (None: no data) and renders the state after each.
fn check(m: u32, n: u32, missing: MissingData, values: &[Option<f64>], expect: Expect) {
    let mut store = MetricStore::default();
    let mut alarm = Alarm::new(spec(m, n, missing), Time::from_millis(0));
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let t = 1000 + i as u64 * 10;
        if let Some(v) = v {
            store.put(&alarm.spec.metric, Time::from_millis(t * 1000), *v);
        }
        alarm.evaluate(&store, Time::from_millis((t + 10) * 1000));
        out.push(alarm.state.to_string());
    }
    expect.assert_eq(&(out.join(" ") + "\n"));
}

#[test]
fn m_of_n_not_necessarily_consecutive() {
    let v = |x: f64| Some(x);
    check(
        2,
        3,
        MissingData::Missing,
        &[v(70.0), v(50.0), v(70.0), v(50.0), v(50.0), v(50.0)],
        expect![[r#"
            OK OK ALARM OK OK OK
        "#]],
    );
    check(
        3,
        3,
        MissingData::Missing,
        &[v(70.0), v(70.0), v(50.0), v(70.0), v(70.0), v(70.0)],
        expect![[r#"
            OK OK OK OK OK ALARM
        "#]],
    );
}

#[test]
fn missing_data_treatments() {
    let v = |x: f64| Some(x);
    let series = [v(70.0), None, None, None, v(50.0)];
    check(
        2,
        2,
        MissingData::Missing,
        &series,
        expect![[r#"
            OK OK INSUFFICIENT_DATA INSUFFICIENT_DATA OK
        "#]],
    );
    check(
        2,
        2,
        MissingData::Breaching,
        &series,
        expect![[r#"
            ALARM ALARM ALARM ALARM OK
        "#]],
    );
    check(
        2,
        2,
        MissingData::NotBreaching,
        &series,
        expect![[r#"
            OK OK OK OK OK
        "#]],
    );
    check(
        2,
        2,
        MissingData::Ignore,
        &[v(70.0), v(70.0), None, None, None],
        expect![[r#"
            OK ALARM ALARM ALARM ALARM
        "#]],
    );
}

#[test]
fn a_transition_says_why() {
    let mut store = MetricStore::default();
    let mut alarm = Alarm::new(spec(1, 1, MissingData::Missing), Time::from_millis(0));
    store.put(&alarm.spec.metric, Time::from_millis(1_000_000), 95.5);
    let t = alarm
        .evaluate(&store, Time::from_millis(1_010_000))
        .unwrap();
    assert_eq!(
        (t.from, t.to),
        (AlarmState::InsufficientData, AlarmState::Alarm)
    );
    assert_eq!(
        t.reason,
        "Threshold Crossed: 1 out of the last 1 datapoints [95.50] were breaching the threshold (60) (1 needed to alarm; Average > 60)"
    );
    // Evaluated once per period.
    assert_eq!(alarm.evaluate(&store, Time::from_millis(1_015_000)), None);
}
