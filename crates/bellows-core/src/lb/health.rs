//! Target health as ALB tracks it: consecutive passes and failures against thresholds.

use serde::{Deserialize, Serialize};

use super::select::TargetState;

/// The outcome of one health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    Pass,
    /// The target answered with a status the matcher does not accept.
    BadStatus(u16),
    Timeout,
    /// No connection, or it broke before an answer.
    ConnectionFailed(String),
}

/// Why a target is in its state, with ALB's reason codes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: String,
    pub description: String,
}

impl Reason {
    fn new(code: &str, description: impl Into<String>) -> Reason {
        Reason {
            code: code.to_owned(),
            description: description.into(),
        }
    }
}

/// One target's health checking state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthTracker {
    pub state: TargetState,
    pub reason: Option<Reason>,
    passes: u32,
    failures: u32,
}

impl Default for HealthTracker {
    fn default() -> Self {
        HealthTracker {
            state: TargetState::Initial,
            reason: Some(Reason::new(
                "Elb.InitialHealthChecking",
                "Initial health checks in progress",
            )),
            passes: 0,
            failures: 0,
        }
    }
}

impl HealthTracker {
    /// Records a check; returns the new state when it changed. A new target turns
    /// healthy on its first pass; after that it takes `healthy` passes in a row to
    /// recover and `unhealthy` failures in a row to fall.
    pub fn observe(
        &mut self,
        result: &CheckResult,
        healthy: u32,
        unhealthy: u32,
    ) -> Option<TargetState> {
        if matches!(self.state, TargetState::Draining | TargetState::Unused) {
            return None;
        }
        let before = self.state;
        match result {
            CheckResult::Pass => {
                self.passes += 1;
                self.failures = 0;
                if self.state == TargetState::Initial
                    || (self.state == TargetState::Unhealthy && self.passes >= healthy)
                {
                    self.state = TargetState::Healthy;
                    self.reason = None;
                }
            }
            failure => {
                self.failures += 1;
                self.passes = 0;
                let reason = match failure {
                    CheckResult::BadStatus(code) => Reason::new(
                        "Target.ResponseCodeMismatch",
                        format!("Health checks failed with these codes: [{code}]"),
                    ),
                    CheckResult::Timeout => Reason::new("Target.Timeout", "Request timed out"),
                    CheckResult::ConnectionFailed(why) => Reason::new(
                        "Target.FailedHealthChecks",
                        format!("Health checks failed: {why}"),
                    ),
                    CheckResult::Pass => unreachable!("handled above"),
                };
                if self.state != TargetState::Unhealthy && self.failures >= unhealthy {
                    self.state = TargetState::Unhealthy;
                }
                if self.state == TargetState::Unhealthy {
                    self.reason = Some(reason);
                }
            }
        }
        (self.state != before).then_some(self.state)
    }

    /// Deregistration started.
    pub fn drain(&mut self) {
        self.state = TargetState::Draining;
        self.reason = Some(Reason::new(
            "Target.DeregistrationInProgress",
            "Target deregistration is in progress",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let mut h = HealthTracker::default();
        let fail = CheckResult::BadStatus(503);
        assert_eq!(h.observe(&fail, 3, 2), None);
        assert_eq!(
            h.observe(&CheckResult::Pass, 3, 2),
            Some(TargetState::Healthy),
            "first pass"
        );
        assert_eq!(h.observe(&fail, 3, 2), None);
        assert_eq!(
            h.observe(&CheckResult::Pass, 3, 2),
            None,
            "a pass resets the failures"
        );
        assert_eq!(h.observe(&fail, 3, 2), None);
        assert_eq!(
            h.observe(&CheckResult::Timeout, 3, 2),
            Some(TargetState::Unhealthy)
        );
        assert_eq!(h.reason.as_ref().unwrap().code, "Target.Timeout");
        assert_eq!(h.observe(&CheckResult::Pass, 3, 2), None);
        assert_eq!(h.observe(&CheckResult::Pass, 3, 2), None);
        assert_eq!(
            h.observe(&CheckResult::Pass, 3, 2),
            Some(TargetState::Healthy)
        );
        h.drain();
        assert_eq!(h.observe(&fail, 3, 2), None);
        assert_eq!(h.state, TargetState::Draining);
    }

    #[test]
    fn a_new_target_that_never_passes_turns_unhealthy() {
        let mut h = HealthTracker::default();
        let down = CheckResult::ConnectionFailed("connection refused".into());
        assert_eq!(h.observe(&down, 5, 2), None);
        assert_eq!(h.observe(&down, 5, 2), Some(TargetState::Unhealthy));
        assert_eq!(
            h.reason.as_ref().unwrap().description,
            "Health checks failed: connection refused"
        );
    }
}
