//! CloudWatch alarms: a metric statistic per period, compared with a threshold over the
//! last N periods, "M out of N" to alarm, with a treatment for missing data.

use serde::{Deserialize, Serialize};

use crate::metrics::{MetricStore, SeriesKey, Statistic};
use crate::{Duration, Time};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    GreaterThanOrEqualToThreshold,
    GreaterThanThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

impl Comparison {
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => value >= threshold,
            Comparison::GreaterThanThreshold => value > threshold,
            Comparison::LessThanThreshold => value < threshold,
            Comparison::LessThanOrEqualToThreshold => value <= threshold,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => ">=",
            Comparison::GreaterThanThreshold => ">",
            Comparison::LessThanThreshold => "<",
            Comparison::LessThanOrEqualToThreshold => "<=",
        }
    }

    /// `>`, `>=`, `<`, `<=` or CloudWatch's names.
    pub fn parse(s: &str) -> Option<Comparison> {
        Some(match s {
            ">=" | "GreaterThanOrEqualToThreshold" => Comparison::GreaterThanOrEqualToThreshold,
            ">" | "GreaterThanThreshold" => Comparison::GreaterThanThreshold,
            "<" | "LessThanThreshold" => Comparison::LessThanThreshold,
            "<=" | "LessThanOrEqualToThreshold" => Comparison::LessThanOrEqualToThreshold,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MissingData {
    /// Missing periods are left out; with none at all the alarm has insufficient data.
    Missing,
    NotBreaching,
    Breaching,
    /// Missing periods are left out, and with none at all the state stays as it is.
    Ignore,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmState {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "ALARM")]
    Alarm,
    #[serde(rename = "INSUFFICIENT_DATA")]
    InsufficientData,
}

impl std::fmt::Display for AlarmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        })
    }
}

/// An alarm as the stack file defines it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlarmSpec {
    pub name: String,
    pub metric: SeriesKey,
    pub statistic: Statistic,
    pub period: Duration,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub comparison: Comparison,
    pub threshold: f64,
    pub treat_missing_data: MissingData,
    /// Scaling policies (by name) and webhooks (`webhook:NAME`) to run in ALARM.
    pub alarm_actions: Vec<String>,
    pub ok_actions: Vec<String>,
    pub insufficient_data_actions: Vec<String>,
    /// `AlarmDescription`, as the AWS endpoint was given it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether `datapoints_to_alarm` was given (AWS answers it only then).
    #[serde(default = "yes")]
    pub datapoints_given: bool,
}

fn yes() -> bool {
    true
}

/// A state change of an alarm, with the datapoints that caused it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub alarm: String,
    pub time: Time,
    pub from: AlarmState,
    pub to: AlarmState,
    pub reason: String,
}

/// An alarm and its state.
#[derive(Clone, Debug)]
pub struct Alarm {
    pub spec: AlarmSpec,
    pub state: AlarmState,
    pub reason: String,
    pub since: Time,
    /// The latest datapoint evaluated (the newest period's value).
    pub last_value: Option<f64>,
    evaluated_until: u64,
}

impl Alarm {
    pub fn new(spec: AlarmSpec, now: Time) -> Alarm {
        Alarm {
            spec,
            state: AlarmState::InsufficientData,
            reason: "Unchecked: initial alarm creation".to_owned(),
            since: now,
            last_value: None,
            evaluated_until: 0,
        }
    }

    fn period_s(&self) -> u64 {
        (self.spec.period.as_millis() / 1000).max(1)
    }

    /// The values of the last N complete periods before `now`, oldest first.
    pub fn datapoints(&self, store: &MetricStore, now: Time) -> (u64, Vec<Option<f64>>) {
        let p = self.period_s();
        let end = now.as_secs() / p * p;
        let mut points = Vec::new();
        store.statistics(
            &self.spec.metric,
            self.spec.statistic,
            Time::from_millis(end * 1000),
            self.spec.period,
            self.spec.evaluation_periods as usize,
            &mut points,
        );
        (end, points)
    }

    pub fn evaluate(&mut self, store: &MetricStore, now: Time) -> Option<Transition> {
        let p = self.period_s();
        if now.as_secs() / p * p <= self.evaluated_until {
            return None;
        }
        let (end, points) = self.datapoints(store, now);
        self.evaluated_until = end;
        self.last_value = points.last().copied().flatten();
        let s = &self.spec;
        let m = s.datapoints_to_alarm as usize;
        let n = s.evaluation_periods as usize;
        let mut breaching = 0;
        let mut good = 0;
        for v in &points {
            match (v, s.treat_missing_data) {
                (Some(v), _) if s.comparison.breaches(*v, s.threshold) => breaching += 1,
                (Some(_), _) => good += 1,
                (None, MissingData::Breaching) => breaching += 1,
                (None, MissingData::NotBreaching) => good += 1,
                (None, _) => {}
            }
        }
        let next = if breaching + good == 0 {
            match s.treat_missing_data {
                MissingData::Ignore => self.state,
                _ => AlarmState::InsufficientData,
            }
        } else if breaching >= m {
            AlarmState::Alarm
        } else if good > n - m || self.state == AlarmState::InsufficientData {
            // Enough good periods that M breaching ones are out of reach.
            AlarmState::Ok
        } else {
            self.state
        };
        if next == self.state {
            return None;
        }
        // The reason is written only for a transition: with 1-second periods an alarm is
        // evaluated every second, and formatting its datapoints was most of the cost.
        let shown: Vec<String> = points
            .iter()
            .map(|v| v.map_or("missing".to_owned(), |v| format!("{v:.2}")))
            .collect();
        let reason = format!(
            "Threshold Crossed: {breaching} out of the last {n} datapoints [{}] were {} the threshold ({}) ({m} needed to alarm; {} {} {})",
            shown.join(", "),
            if breaching > 0 {
                "breaching"
            } else {
                "not breaching"
            },
            s.threshold,
            s.statistic,
            s.comparison.symbol(),
            s.threshold
        );
        let t = Transition {
            alarm: s.name.clone(),
            time: now,
            from: self.state,
            to: next,
            reason: reason.clone(),
        };
        self.state = next;
        self.reason = reason;
        self.since = now;
        Some(t)
    }

    /// Sets the state by hand, as CloudWatch's SetAlarmState does: it holds until the
    /// next period is evaluated, which decides again from the data. None when the
    /// alarm already was in that state.
    pub fn set_state(
        &mut self,
        state: AlarmState,
        reason: String,
        now: Time,
    ) -> Option<Transition> {
        if state == self.state {
            return None;
        }
        let t = Transition {
            alarm: self.spec.name.clone(),
            time: now,
            from: self.state,
            to: state,
            reason: reason.clone(),
        };
        self.state = state;
        self.reason = reason;
        self.since = now;
        Some(t)
    }

    /// The period index of `now`, to run repeated actions once per period.
    pub fn period_index(&self, now: Time) -> u64 {
        now.as_secs() / self.period_s()
    }
}

#[cfg(test)]
mod tests;
