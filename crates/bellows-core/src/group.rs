//! The auto scaling group's state machine (see LIFECYCLE.md beside this crate).
//!
//! A [`Group`] holds its instances and capacity. Callers tell it what happened
//! (`on_running`, `on_exited`, `set_capacity`, ...) and ask it what to do now (`plan`),
//! which returns [`Command`]s to launch or terminate. Each change is also pushed as an
//! [`Event`] that the caller drains with `take_events`. Nothing here reads a clock.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::event::{Capacity, Event};
use crate::ids::{IdGen, InstanceId};
pub use crate::records::{Activity, ActivityKind, ActivityStatus, Health, Lifecycle};
use crate::stack::{GroupSpec, HealthCheckType, TerminationPolicy};
use crate::{Duration, Time};

/// An instance in service this long has shown it can run, even if no load balancer ever
/// checked it: its death is no crash loop.
pub const EARLY_DEATH: Duration = Duration::from_secs(10);
/// The longest wait before relaunching in place of instances that keep dying before
/// they become healthy.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The crash-loop backoff before launch number `attempt + 1` of a chain whose last
/// `attempt` instances all died before they became healthy: none after the first such
/// death, then 1, 2, 4 ... 60 s.
pub fn crash_loop_delay(attempt: u32) -> Duration {
    if attempt <= 1 {
        Duration::ZERO
    } else {
        Duration::from_secs(1u64 << (attempt - 2).min(6)).min(MAX_BACKOFF)
    }
}
/// AWS bills and chooses "closest to the next instance hour" against this.
const BILLING_PERIOD_MS: u64 = 3_600_000;

/// Who reports an instance's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthSource {
    /// The load balancer's target health; counts only with health check type ELB and
    /// after the grace period.
    Elb,
    /// An operator through the API (SetInstanceHealth); always counts.
    Operator,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: InstanceId,
    pub zone: String,
    pub lifecycle: Lifecycle,
    pub health: Health,
    pub launched_at: Time,
    pub in_service_at: Option<Time>,
    pub protected: bool,
    pub template_version: u32,
    /// Whether it has shown it works: a load balancer found it healthy, or it stayed in
    /// service for [`EARLY_DEATH`]. Only the death of an instance that never did counts
    /// toward crash-loop backoff.
    #[serde(skip)]
    pub became_healthy: bool,
    /// Whether a load balancer has found it healthy: an instance refresh of a group
    /// behind one moves on only then, as AWS's waits for the ELB health checks.
    #[serde(skip)]
    pub lb_healthy: bool,
    /// How many instances in a row died before they became healthy in the chain of
    /// replacements this one continues (0 for a launch that replaces nothing of the kind).
    #[serde(skip)]
    pub crash_loop: u32,
}

/// What the group wants done; the caller carries it out and reports back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Launch {
        group: String,
        instance: InstanceId,
        zone: String,
    },
    Terminate {
        group: String,
        instance: InstanceId,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("desired capacity {desired} is outside the group's range [{min}, {max}]")]
    DesiredOutOfRange { desired: u32, min: u32, max: u32 },
    #[error("min {min} is greater than max {max}")]
    MinAboveMax { min: u32, max: u32 },
    #[error("max {max} is above the limit of {limit} instances per group")]
    TooLarge { max: u32, limit: u32 },
    #[error("instance {0} is not in this group")]
    NoSuchInstance(InstanceId),
    #[error("instance {0} is already terminating")]
    AlreadyTerminating(InstanceId),
    #[error("an instance refresh is already in progress; cancel it first")]
    RefreshInProgress,
    #[error("no instance refresh is in progress")]
    NoRefresh,
    #[error("{0}")]
    BadRefresh(String),
}

/// A launch owed in place of an instance that died before it ever became healthy: it
/// continues that instance's chain of crash-loop attempts and waits its backoff.
#[derive(Clone, Debug)]
struct Retry {
    /// Deaths before becoming healthy in a row, the last one included.
    attempt: u32,
    not_before: Time,
    /// What died and how, for the activity.
    why: String,
    /// The launch activity shown while the launch waits (its instance id reserved).
    waiting: Option<Activity>,
}

/// Where a zone rebalancing is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rebalance {
    /// The instance launched in the emptier zone is starting.
    Launching(InstanceId),
    /// It is in service: one instance of the fullest zone is to go.
    Due,
}

#[derive(Clone, Debug)]
pub struct Group {
    name: String,
    zones: Vec<String>,
    policy: TerminationPolicy,
    health_check_type: HealthCheckType,
    /// Whether the load balancer health-checks its instances (`Stack::load_balanced`):
    /// a refresh with ELB health checks then waits for their targets to be healthy.
    load_balanced: bool,
    grace: Duration,
    cap: Capacity,
    template_version: u32,
    instances: BTreeMap<InstanceId, Instance>,
    /// The open activity of each instance that has one.
    open: BTreeMap<InstanceId, Activity>,
    /// Why capacity last changed, to lead the cause of the activities it brings.
    capacity_cause: Option<String>,
    /// Launches owed to crash-looping instances, earliest due first. Every other launch
    /// goes ahead at once: an instance killed after it served healthily is replaced
    /// without delay, however many die.
    retries: Vec<Retry>,
    events: Vec<Event>,
    /// The refresh in progress, or the last one.
    refresh: Option<Refresh>,
    /// Zones in an outage: nothing is launched there until they are back.
    unavailable: BTreeSet<String>,
    /// Moving an instance from a crowded zone to an empty one, launch first (as AWS
    /// rebalances), so the group never has fewer in service than desired.
    rebalancing: Option<Rebalance>,
}

impl Group {
    pub fn new(spec: &GroupSpec) -> Group {
        Group {
            name: spec.name.clone(),
            zones: spec.zones.clone(),
            policy: spec.termination_policy,
            health_check_type: spec.health_check_type,
            load_balanced: !spec.target_groups.is_empty(),
            grace: spec.health_check_grace_period,
            cap: Capacity {
                min: spec.min,
                max: spec.max,
                desired: spec.desired,
            },
            template_version: 1,
            instances: BTreeMap::new(),
            open: BTreeMap::new(),
            capacity_cause: None,
            retries: Vec::new(),
            events: Vec::new(),
            refresh: None,
            unavailable: BTreeSet::new(),
            rebalancing: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The group's zones, in the order it lists them.
    pub fn zones(&self) -> &[String] {
        &self.zones
    }

    /// Whether the load balancer health-checks its instances, from the stack it runs in
    /// (`Stack::load_balanced`): a group knows its target groups, not which of them a
    /// listener uses. `new` assumes any target group is used; the node and the
    /// simulator set it from the stack whenever the stack changes.
    pub fn set_load_balanced(&mut self, load_balanced: bool) {
        self.load_balanced = load_balanced;
    }

    /// A zone's outage starts (`available` false) or ends. While it lasts nothing is
    /// launched in the zone; afterwards the group moves instances back into it, one at
    /// a time, launching before it terminates. Whether anything changed.
    pub fn set_zone_available(&mut self, zone: &str, available: bool) -> bool {
        if available {
            self.unavailable.remove(zone)
        } else {
            self.unavailable.insert(zone.to_owned())
        }
    }

    pub fn capacity(&self) -> Capacity {
        self.cap
    }

    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.instances.values()
    }

    pub fn instance(&self, id: &InstanceId) -> Option<&Instance> {
        self.instances.get(id)
    }

    /// Instances that count toward capacity: pending or in service.
    pub fn live(&self) -> usize {
        self.instances.values().filter(|i| is_live(i)).count()
    }

    pub fn count(&self, lifecycle: Lifecycle) -> usize {
        self.instances
            .values()
            .filter(|i| i.lifecycle == lifecycle)
            .count()
    }

    /// The events recorded since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Sets min, max and desired, any of them; desired must lie in the new range.
    /// When only min or max change, desired is pulled into the new range, as AWS does.
    pub fn set_capacity(
        &mut self,
        min: Option<u32>,
        max: Option<u32>,
        desired: Option<u32>,
        now: Time,
        actor: &str,
    ) -> Result<Capacity, GroupError> {
        let min = min.unwrap_or(self.cap.min);
        let max = max.unwrap_or(self.cap.max);
        let limit = crate::stack::MAX_GROUP_SIZE as u32;
        if max > limit {
            return Err(GroupError::TooLarge { max, limit });
        }
        if min > max {
            return Err(GroupError::MinAboveMax { min, max });
        }
        let desired = match desired {
            Some(d) if d < min || d > max => {
                return Err(GroupError::DesiredOutOfRange {
                    desired: d,
                    min,
                    max,
                });
            }
            Some(d) => d,
            None => self.cap.desired.clamp(min, max),
        };
        let before = self.cap;
        let after = Capacity { min, max, desired };
        if before != after {
            // A policy or a scheduled action says what happened itself ("At T a
            // monitor alarm ... triggered policy ..."); a person or bellows is named.
            let cause = match actor.strip_suffix('.') {
                Some(_) if actor.starts_with("At ") => actor.to_owned(),
                None if actor.starts_with("At ") => format!(
                    "{actor}, changing the desired capacity from {} to {desired}.",
                    before.desired
                ),
                _ => format!(
                    "At {now} {actor} updated the group's constraints to min: {min}, max: {max}, desired: {desired}, changing the desired capacity from {} to {desired}.",
                    before.desired
                ),
            };
            self.capacity_cause = Some(cause.clone());
            self.cap = after;
            self.events.push(Event::Capacity {
                time: now,
                group: self.name.clone(),
                before,
                after,
                cause,
            });
        }
        Ok(after)
    }

    /// Marks a new launch template version; instances launched from older versions are
    /// preferred for termination by the default policy.
    pub fn bump_template_version(&mut self) -> u32 {
        self.template_version += 1;
        self.template_version
    }

    /// Decides what to launch and terminate now.
    pub fn plan(&mut self, now: Time, ids: &mut IdGen) -> Vec<Command> {
        let mut commands = Vec::new();
        self.note_proven(now);
        self.rebalance_progress();

        // Health replacement: terminate unhealthy instances, at most 10% of desired at a
        // time (one at a time in a small group); their replacements follow below.
        let limit = (self.cap.desired as usize / 10).max(1);
        let replacing = self
            .open
            .values()
            .filter(|a| a.kind == ActivityKind::Terminate && a.cause.contains("health check"))
            .count();
        let unhealthy: Vec<InstanceId> = self
            .instances
            .values()
            .filter(|i| is_live(i) && i.health == Health::Unhealthy)
            .map(|i| i.id.clone())
            .take(limit.saturating_sub(replacing))
            .collect();
        for id in unhealthy {
            let cause = format!(
                "At {now} an instance was taken out of service in response to a{} health check failure.",
                if self.health_check_type == HealthCheckType::Elb {
                    "n ELB system"
                } else {
                    " user"
                }
            );
            commands.push(self.start_termination(&id, now, cause, ids));
        }
        commands.extend(self.refresh_step(now, ids));

        let live = self.live() as u32;
        let lead = self
            .capacity_cause
            .take()
            .map(|c| c + " ")
            .unwrap_or_default();
        if live < self.cap.desired {
            let missing = (self.cap.desired - live) as usize;
            // The earliest owed launches fill the first slots; a slot whose launch still
            // waits its backoff stays empty, and every other slot is filled at once.
            let owed: Vec<Retry> = self
                .retries
                .drain(..missing.min(self.retries.len()))
                .collect();
            let (due, waiting): (Vec<Retry>, Vec<Retry>) =
                owed.into_iter().partition(|r| now >= r.not_before);
            let mut due = due.into_iter();
            let filling = live + (missing - waiting.len()) as u32;
            for n in live..filling {
                // Every zone out: launches wait for one to come back.
                let Some(zone) = self.emptiest_zone() else {
                    break;
                };
                let cause = format!(
                    "{lead}At {now} an instance was started in response to a difference between desired and actual capacity, increasing the capacity from {n} to {}.",
                    n + 1
                );
                commands.push(match due.next() {
                    Some(retry) => self.relaunch(retry, zone, cause, now, ids),
                    None => self.launch(zone, cause, now, ids),
                });
            }
            let mut kept: Vec<Retry> = due.collect();
            for mut retry in waiting {
                if retry.waiting.is_none() {
                    retry.waiting = Some(self.waiting_activity(&retry, &lead, now, ids));
                }
                kept.push(retry);
            }
            kept.append(&mut self.retries);
            kept.sort_by_key(|r| r.not_before);
            self.retries = kept;
        } else if live > self.cap.desired {
            // A rebalancing launch is an instance over desired until it is in service.
            let over = u32::from(matches!(self.rebalancing, Some(Rebalance::Launching(_))));
            for n in (self.cap.desired + over..live).rev() {
                let Some(victim) = self.pick_victim(now) else {
                    break;
                };
                let cause = if self.rebalancing.take_if(|r| *r == Rebalance::Due).is_some() {
                    format!(
                        "At {now} an instance was taken out of service in response to a zone rebalancing, shrinking the capacity from {} to {n}. At {now} instance {victim} was selected for termination.",
                        n + 1
                    )
                } else {
                    format!(
                        "{lead}At {now} an instance was taken out of service in response to a difference between desired and actual capacity, shrinking the capacity from {} to {n}. At {now} instance {victim} was selected for termination.",
                        n + 1
                    )
                };
                commands.push(self.start_termination(&victim, now, cause, ids));
            }
        } else if self.rebalancing.is_none()
            && self.open.is_empty()
            && self.retries.iter().all(|r| now >= r.not_before)
            && self
                .refresh
                .as_ref()
                .is_none_or(|r| r.status != RefreshStatus::InProgress)
            && let Some((from, to)) = self.imbalance()
        {
            let why = if !self.zones.contains(&from) {
                format!("{from} is no longer one of the group's zones")
            } else {
                format!("{from} has more instances than {to}")
            };
            let cause = format!(
                "At {now} an instance was launched in {to} to rebalance the zones: {why}. One instance in {from} is terminated once it is in service."
            );
            // A rebalancing launch that crash-looped before continues its chain.
            let command = match self.retries.is_empty() {
                true => self.launch(to, cause, now, ids),
                false => {
                    let retry = self.retries.remove(0);
                    self.relaunch(retry, to, cause, now, ids)
                }
            };
            if let Command::Launch { instance, .. } = &command {
                self.rebalancing = Some(Rebalance::Launching(instance.clone()));
            }
            commands.push(command);
        }
        self.drop_unneeded_retries(now);
        commands
    }

    /// Launches owed that no slot needs any more (desired fell, or the group filled up
    /// otherwise) go once their backoff is over; a waiting one shows why it was dropped.
    fn drop_unneeded_retries(&mut self, now: Time) {
        let missing = (self.cap.desired as usize).saturating_sub(self.live());
        if self.retries.len() <= missing {
            return;
        }
        let mut kept = Vec::new();
        for (i, retry) in std::mem::take(&mut self.retries).into_iter().enumerate() {
            if i < missing || now < retry.not_before {
                kept.push(retry);
                continue;
            }
            if let Some(mut activity) = retry.waiting {
                activity.end = Some(now);
                activity.status = ActivityStatus::Failed;
                activity.status_message = Some(
                    "cancelled: the group reached its desired capacity without this launch"
                        .to_owned(),
                );
                self.events.push(Event::Activity { activity });
            }
        }
        self.retries = kept;
    }

    /// Opens the activity that shows a launch waiting for its crash-loop backoff.
    fn waiting_activity(
        &mut self,
        retry: &Retry,
        lead: &str,
        now: Time,
        ids: &mut IdGen,
    ) -> Activity {
        let id = ids.instance_id();
        let delay = retry.not_before.since(now);
        let activity = Activity {
            id: ids.activity_id(),
            group: self.name.clone(),
            instance: id.clone(),
            kind: ActivityKind::Launch,
            description: format!("Launching a new EC2 instance: {id}"),
            cause: format!(
                "{lead}At {now} {}; {} instances in a row died before they became healthy, so the replacement waits {delay} (crash-loop backoff).",
                retry.why, retry.attempt
            ),
            start: now,
            end: None,
            status: ActivityStatus::InProgress,
            status_message: Some(format!(
                "Waiting until {} before launching (crash-loop backoff, attempt {}).",
                retry.not_before,
                retry.attempt + 1
            )),
        };
        self.events.push(Event::Activity {
            activity: activity.clone(),
        });
        activity
    }

    /// Launches in place of a crash-looping instance, continuing its chain; a launch
    /// that waited keeps the activity and instance id it showed while waiting.
    fn relaunch(
        &mut self,
        retry: Retry,
        zone: String,
        cause: String,
        now: Time,
        ids: &mut IdGen,
    ) -> Command {
        let command = match retry.waiting {
            Some(mut activity) => {
                activity.cause = format!(
                    "{} At {} the backoff ended. {cause}",
                    activity.cause, retry.not_before
                );
                activity.status_message = None;
                let id = activity.instance.clone();
                self.start_instance(id, zone, activity, now)
            }
            None => {
                let cause = format!("{cause} It replaces {}.", retry.why);
                self.launch(zone, cause, now, ids)
            }
        };
        if let Command::Launch { instance, .. } = &command
            && let Some(inst) = self.instances.get_mut(instance)
        {
            inst.crash_loop = retry.attempt;
        }
        command
    }

    /// Starts an instance in `zone`.
    fn launch(&mut self, zone: String, cause: String, now: Time, ids: &mut IdGen) -> Command {
        let id = ids.instance_id();
        let activity = Activity {
            id: ids.activity_id(),
            group: self.name.clone(),
            instance: id.clone(),
            kind: ActivityKind::Launch,
            description: format!("Launching a new EC2 instance: {id}"),
            cause,
            start: now,
            end: None,
            status: ActivityStatus::InProgress,
            status_message: None,
        };
        self.start_instance(id, zone, activity, now)
    }

    /// Adds a Pending instance with its open launch activity.
    fn start_instance(
        &mut self,
        id: InstanceId,
        zone: String,
        activity: Activity,
        now: Time,
    ) -> Command {
        self.instances.insert(
            id.clone(),
            Instance {
                id: id.clone(),
                zone: zone.clone(),
                lifecycle: Lifecycle::Pending,
                health: Health::Healthy,
                launched_at: now,
                in_service_at: None,
                protected: false,
                template_version: self.template_version,
                became_healthy: false,
                lb_healthy: false,
                crash_loop: 0,
            },
        );
        self.lifecycle_event(&id, None, Lifecycle::Pending, now);
        self.open.insert(id.clone(), activity.clone());
        self.events.push(Event::Activity { activity });
        Command::Launch {
            group: self.name.clone(),
            instance: id,
            zone,
        }
    }

    /// The launched instance runs its command: it is in service.
    pub fn on_running(&mut self, id: &InstanceId, now: Time) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        if inst.lifecycle != Lifecycle::Pending {
            return;
        }
        inst.lifecycle = Lifecycle::InService;
        inst.in_service_at = Some(now);
        self.lifecycle_event(id, Some(Lifecycle::Pending), Lifecycle::InService, now);
        self.close_activity(id, ActivityStatus::Successful, None, now);
    }

    /// The launch did not succeed (the process could not start, or its setup failed).
    pub fn on_launch_failed(&mut self, id: &InstanceId, now: Time, reason: &str) {
        let Some(inst) = self.instances.get(id) else {
            return;
        };
        let from = inst.lifecycle;
        if from == Lifecycle::Terminating {
            // A launch cancelled by a scale-in: the termination simply completes.
            self.finish(id, from, now, ActivityStatus::Successful, None);
            return;
        }
        let inst = inst.clone();
        self.note_crash(
            &inst,
            now,
            format!("the launch of instance {id} failed ({reason})"),
        );
        self.finish(
            id,
            from,
            now,
            ActivityStatus::Failed,
            Some(reason.to_owned()),
        );
    }

    /// The instance's process exited, whatever the reason.
    pub fn on_exited(&mut self, id: &InstanceId, now: Time, status: &str) {
        let Some(inst) = self.instances.get(id).cloned() else {
            return;
        };
        match inst.lifecycle {
            // How it ended is kept: a SIGKILL after the stop timeout, or an
            // out-of-memory kill while it was stopping, is worth knowing.
            Lifecycle::Terminating => self.finish(
                id,
                inst.lifecycle,
                now,
                ActivityStatus::Successful,
                Some(format!("the instance ended: {status}")),
            ),
            Lifecycle::Pending => self.on_launch_failed(
                id,
                now,
                &format!("the instance exited before it came into service: {status}"),
            ),
            Lifecycle::InService => {
                self.note_crash(
                    &inst,
                    now,
                    format!("instance {id} exited before it became healthy ({status})"),
                );
                self.set_health_unchecked(
                    id,
                    Health::Unhealthy,
                    format!("the process exited: {status}"),
                    now,
                );
                // The EC2 health check finds the instance stopped: it is terminated and
                // replaced. The process is gone already, so the termination is immediate.
                let cause = format!(
                    "At {now} an instance was taken out of service in response to an EC2 health check indicating it has been terminated or stopped ({status})."
                );
                let activity = Activity {
                    id: format!("exit-{id}-{}", now.as_millis()),
                    group: self.name.clone(),
                    instance: id.clone(),
                    kind: ActivityKind::Terminate,
                    description: format!("Terminating EC2 instance: {id}"),
                    cause,
                    start: now,
                    end: None,
                    status: ActivityStatus::InProgress,
                    status_message: None,
                };
                self.open.insert(id.clone(), activity);
                self.finish(
                    id,
                    Lifecycle::InService,
                    now,
                    ActivityStatus::Successful,
                    None,
                );
            }
            Lifecycle::Terminated => {}
        }
    }

    /// Records a health report; ELB reports count only with health check type ELB and
    /// after the grace period. Returns whether the report changed the instance's health.
    pub fn set_health(
        &mut self,
        id: &InstanceId,
        health: Health,
        source: HealthSource,
        reason: String,
        now: Time,
    ) -> Result<bool, GroupError> {
        let inst = self
            .instances
            .get(id)
            .ok_or_else(|| GroupError::NoSuchInstance(id.clone()))?;
        if source == HealthSource::Elb {
            let in_grace = inst.in_service_at.is_none_or(|t| now.since(t) < self.grace);
            if self.health_check_type != HealthCheckType::Elb || in_grace {
                return Ok(false);
            }
        }
        if inst.health == health || !is_live(inst) {
            return Ok(false);
        }
        self.set_health_unchecked(id, health, reason, now);
        Ok(true)
    }

    pub fn set_protected(
        &mut self,
        id: &InstanceId,
        protected: bool,
        now: Time,
    ) -> Result<(), GroupError> {
        let inst = self
            .instances
            .get_mut(id)
            .ok_or_else(|| GroupError::NoSuchInstance(id.clone()))?;
        if inst.protected != protected {
            inst.protected = protected;
            self.events.push(Event::Protection {
                time: now,
                group: self.name.clone(),
                instance: id.clone(),
                protected,
            });
        }
        Ok(())
    }

    /// Terminates one instance on request. With `decrement`, desired shrinks by one
    /// (never below min); otherwise the group launches a replacement.
    pub fn terminate_instance(
        &mut self,
        id: &InstanceId,
        decrement: bool,
        now: Time,
        actor: &str,
        ids: &mut IdGen,
    ) -> Result<Command, GroupError> {
        let inst = self
            .instances
            .get(id)
            .ok_or_else(|| GroupError::NoSuchInstance(id.clone()))?;
        if !is_live(inst) {
            return Err(GroupError::AlreadyTerminating(id.clone()));
        }
        if decrement && self.cap.desired > self.cap.min {
            let desired = self.cap.desired - 1;
            self.set_capacity(None, None, Some(desired), now, actor)?;
            self.capacity_cause = None;
        }
        let cause = format!(
            "At {now} instance {id} was taken out of service in response to a user request by {actor}."
        );
        Ok(self.start_termination(id, now, cause, ids))
    }

    fn start_termination(
        &mut self,
        id: &InstanceId,
        now: Time,
        cause: String,
        ids: &mut IdGen,
    ) -> Command {
        let from = self.instances.get(id).map(|i| i.lifecycle);
        if let Some(inst) = self.instances.get_mut(id) {
            inst.lifecycle = Lifecycle::Terminating;
        }
        self.lifecycle_event(id, from, Lifecycle::Terminating, now);
        // A pending launch that is cancelled ends here; its termination takes over.
        if self
            .open
            .get(id)
            .is_some_and(|a| a.kind == ActivityKind::Launch)
        {
            self.close_activity(
                id,
                ActivityStatus::Failed,
                Some("cancelled: the instance was terminated before it came into service".into()),
                now,
            );
        }
        let activity = self.open_activity(
            id,
            ActivityKind::Terminate,
            format!("Terminating EC2 instance: {id}"),
            cause,
            now,
            ids,
        );
        self.events.push(Event::Activity { activity });
        Command::Terminate {
            group: self.name.clone(),
            instance: id.clone(),
        }
    }

    /// Ends an instance: Terminated, its open activity closed, removed from the group.
    fn finish(
        &mut self,
        id: &InstanceId,
        from: Lifecycle,
        now: Time,
        status: ActivityStatus,
        message: Option<String>,
    ) {
        self.lifecycle_event(id, Some(from), Lifecycle::Terminated, now);
        self.close_activity(id, status, message, now);
        self.instances.remove(id);
    }

    fn set_health_unchecked(&mut self, id: &InstanceId, health: Health, reason: String, now: Time) {
        if let Some(inst) = self.instances.get_mut(id) {
            inst.health = health;
        }
        self.events.push(Event::Health {
            time: now,
            group: self.name.clone(),
            instance: id.clone(),
            health,
            reason,
        });
    }

    /// A load balancer found the instance healthy: from now on its death is no crash
    /// loop, its replacement is launched at once, and it counts as a refresh's healthy
    /// capacity.
    pub fn on_healthy(&mut self, id: &InstanceId) {
        if let Some(inst) = self.instances.get_mut(id) {
            inst.became_healthy = true;
            inst.lb_healthy = true;
        }
    }

    /// Instances in service for [`EARLY_DEATH`] have shown they run.
    fn note_proven(&mut self, now: Time) {
        for inst in self.instances.values_mut() {
            if inst
                .in_service_at
                .is_some_and(|t| now.since(t) >= EARLY_DEATH)
            {
                inst.became_healthy = true;
            }
        }
    }

    /// An instance is gone without our asking. If it never became healthy, its
    /// replacement continues its chain and waits the chain's backoff; otherwise the
    /// replacement is an ordinary launch, made at once. A zone's outage is no fault of
    /// the launch template: no backoff for it.
    fn note_crash(&mut self, inst: &Instance, now: Time, why: String) {
        let proven = inst.became_healthy
            || inst
                .in_service_at
                .is_some_and(|t| now.since(t) >= EARLY_DEATH);
        if proven || self.unavailable.contains(&inst.zone) {
            return;
        }
        let attempt = inst.crash_loop + 1;
        let retry = Retry {
            attempt,
            not_before: now + crash_loop_delay(attempt),
            why,
            waiting: None,
        };
        let at = self
            .retries
            .partition_point(|r| r.not_before <= retry.not_before);
        self.retries.insert(at, retry);
    }

    /// When the earliest launch held back by crash-loop backoff may start, if one is.
    pub fn backoff_until(&self) -> Option<Time> {
        self.retries.iter().map(|r| r.not_before).min()
    }

    fn lifecycle_event(
        &mut self,
        id: &InstanceId,
        from: Option<Lifecycle>,
        to: Lifecycle,
        now: Time,
    ) {
        let zone = self
            .instances
            .get(id)
            .map(|i| i.zone.clone())
            .unwrap_or_default();
        self.events.push(Event::Lifecycle {
            time: now,
            group: self.name.clone(),
            instance: id.clone(),
            from,
            to,
            zone,
        });
    }

    fn open_activity(
        &mut self,
        id: &InstanceId,
        kind: ActivityKind,
        description: String,
        cause: String,
        now: Time,
        ids: &mut IdGen,
    ) -> Activity {
        let activity = Activity {
            id: ids.activity_id(),
            group: self.name.clone(),
            instance: id.clone(),
            kind,
            description,
            cause,
            start: now,
            end: None,
            status: ActivityStatus::InProgress,
            status_message: None,
        };
        self.open.insert(id.clone(), activity.clone());
        activity
    }

    fn close_activity(
        &mut self,
        id: &InstanceId,
        status: ActivityStatus,
        message: Option<String>,
        now: Time,
    ) {
        if let Some(mut activity) = self.open.remove(id) {
            activity.end = Some(now);
            activity.status = status;
            activity.status_message = message;
            self.events.push(Event::Activity { activity });
        }
    }
}

fn is_live(i: &Instance) -> bool {
    matches!(i.lifecycle, Lifecycle::Pending | Lifecycle::InService)
}

mod apply;
mod elb;
mod refresh;
mod zones;
pub use crate::records::{Refresh, RefreshStatus};
pub use refresh::RefreshSpec;

#[cfg(test)]
mod tests;
