//! Instance refresh, like `aws autoscaling start-instance-refresh`: every instance that
//! was in the group when the refresh started is replaced, in batches small enough to keep
//! `min_healthy_percentage` of desired capacity healthy and in service, each batch waiting
//! until the previous one's replacements are in service, healthy (with ELB health
//! checks: passing the load balancer's) and past their warmup.
//!
//! The group carries it out from `plan`: a batch is a set of terminations, and the
//! group's usual "live below desired" launches bring the replacements.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Command, Group, GroupError, Health, Lifecycle, Refresh, RefreshStatus, is_live};
use crate::event::Event;
use crate::ids::{IdGen, InstanceId};
use crate::{Duration, Time};

/// What the operator asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshSpec {
    /// The share of desired capacity kept healthy and in service (AWS's default: 90).
    /// 100 replaces one instance at a time, 0 all at once.
    pub min_healthy_percentage: u32,
    /// How long a replacement must be in service before it counts as healthy capacity.
    pub warmup: Duration,
}

impl Group {
    /// The refresh in progress, or the last one.
    pub fn refresh(&self) -> Option<&Refresh> {
        self.refresh.as_ref()
    }

    pub fn start_refresh(
        &mut self,
        spec: RefreshSpec,
        now: Time,
        ids: &mut IdGen,
    ) -> Result<Refresh, GroupError> {
        if self
            .refresh
            .as_ref()
            .is_some_and(|r| r.status == RefreshStatus::InProgress)
        {
            return Err(GroupError::RefreshInProgress);
        }
        if spec.min_healthy_percentage > 100 {
            return Err(GroupError::BadRefresh(
                "min_healthy_percentage must be between 0 and 100".to_owned(),
            ));
        }
        let mut remaining = BTreeSet::new();
        let mut skipped = BTreeSet::new();
        for i in self.instances.values().filter(|i| is_live(i)) {
            if i.protected {
                skipped.insert(i.id.clone());
            } else {
                remaining.insert(i.id.clone());
            }
        }
        let refresh = Refresh {
            id: ids.activity_id(),
            group: self.name.clone(),
            status: RefreshStatus::InProgress,
            status_reason: "Waiting for the first batch to start.".to_owned(),
            min_healthy_percentage: spec.min_healthy_percentage,
            warmup: spec.warmup,
            start: now,
            end: None,
            total: remaining.len() as u32,
            remaining,
            skipped,
            percentage_complete: 0,
            batches: 0,
        };
        self.refresh = Some(refresh.clone());
        self.events.push(Event::Refresh {
            time: now,
            refresh: refresh.clone(),
        });
        Ok(refresh)
    }

    /// Stops starting batches; instances already being replaced finish normally.
    pub fn cancel_refresh(&mut self, now: Time) -> Result<Refresh, GroupError> {
        let Some(r) = self
            .refresh
            .as_mut()
            .filter(|r| r.status == RefreshStatus::InProgress)
        else {
            return Err(GroupError::NoRefresh);
        };
        r.status = RefreshStatus::Cancelled;
        r.end = Some(now);
        r.status_reason = format!(
            "Cancelled at {now} with {} of {} instances still to replace.",
            r.remaining.len(),
            r.total
        );
        let r = r.clone();
        self.events.push(Event::Refresh {
            time: now,
            refresh: r.clone(),
        });
        Ok(r)
    }

    /// The next batch, when the last one has settled: terminations that the group's
    /// "live below desired" launches then replace.
    pub(super) fn refresh_step(&mut self, now: Time, ids: &mut IdGen) -> Vec<Command> {
        if self
            .refresh
            .as_ref()
            .is_none_or(|r| r.status != RefreshStatus::InProgress)
        {
            return Vec::new();
        }
        let Some(mut r) = self.refresh.take() else {
            return Vec::new();
        };
        // Old instances that left by other means (scale in, health) need no replacing.
        r.remaining
            .retain(|id| self.instances.get(id).is_some_and(is_live));
        // With ELB health checks, healthy means the load balancer's checks passed, as
        // AWS's refresh waits for them: an instance in service that no target group has
        // found healthy yet serves nothing, and taking the next batch out then would
        // leave the load balancer no target. (With EC2 health checks AWS does not wait,
        // and neither does this: an instance warmup covers it.)
        let load_balanced =
            self.load_balanced && self.health_check_type == super::HealthCheckType::Elb;
        let ready = |i: &super::Instance| {
            i.lifecycle == Lifecycle::InService
                && i.health == Health::Healthy
                && (!load_balanced || i.lb_healthy)
                && i.in_service_at.is_some_and(|t| now.since(t) >= r.warmup)
        };
        let new: Vec<&super::Instance> = self
            .instances
            .values()
            .filter(|i| is_live(i) && !r.remaining.contains(&i.id) && !r.skipped.contains(&i.id))
            .collect();
        let settling = new.iter().filter(|i| !ready(i)).count() as u32;
        let healthy = self
            .instances
            .values()
            .filter(|i| is_live(i) && ready(i))
            .count() as u32;
        let done = r.total - r.remaining.len() as u32;
        r.percentage_complete = (done.saturating_sub(settling.min(done)) * 100)
            .checked_div(r.total)
            .unwrap_or(100);
        let mut commands = Vec::new();
        let before = r.clone();
        if r.remaining.is_empty() && settling == 0 {
            r.status = RefreshStatus::Successful;
            r.end = Some(now);
            r.percentage_complete = 100;
            r.status_reason = if r.skipped.is_empty() {
                format!("Replaced {} instances in {} batches.", r.total, r.batches)
            } else {
                format!(
                    "Replaced {} instances in {} batches; {} protected from scale in were left as they are.",
                    r.total,
                    r.batches,
                    r.skipped.len()
                )
            };
        } else if settling > 0 {
            r.status_reason = format!(
                "Waiting for {settling} new instances to be in service, healthy{} and warmed up ({} warmup).",
                if load_balanced {
                    " in their target groups"
                } else {
                    ""
                },
                r.warmup
            );
        } else if self.live() as u32 >= self.cap.desired {
            // Keep ceil(desired x P%) healthy; always move by at least one.
            let floor = (u64::from(self.cap.desired) * u64::from(r.min_healthy_percentage))
                .div_ceil(100) as u32;
            let batch = healthy.saturating_sub(floor).max(1) as usize;
            let mut old: Vec<&super::Instance> = r
                .remaining
                .iter()
                .filter_map(|id| self.instances.get(id))
                .collect();
            old.sort_by_key(|i| (i.launched_at, i.id.clone()));
            let victims: Vec<InstanceId> = old.iter().take(batch).map(|i| i.id.clone()).collect();
            r.batches += 1;
            r.status_reason = format!(
                "Batch {}: replacing {} of the {} instances left, keeping at least {floor} healthy.",
                r.batches,
                victims.len(),
                r.remaining.len()
            );
            for id in victims {
                r.remaining.remove(&id);
                let cause = format!(
                    "At {now} an instance was taken out of service in response to instance refresh {}. At {now} instance {id} was selected for replacement.",
                    r.id
                );
                commands.push(self.start_termination(&id, now, cause, ids));
            }
        } else {
            r.status_reason =
                "Waiting for the group to reach its desired capacity before the next batch."
                    .to_owned();
        }
        if r.status != before.status || r.batches != before.batches {
            self.events.push(Event::Refresh {
                time: now,
                refresh: r.clone(),
            });
        }
        self.refresh = Some(r);
        commands
    }
}
