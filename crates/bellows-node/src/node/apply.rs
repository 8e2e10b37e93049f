//! `bellows apply` in the loop: a new stack file is checked against the running stack,
//! and what a running stack can take is applied to the groups, the load balancer and
//! the scaler at once.

use std::collections::BTreeMap;

use bellows_core::Time;
use bellows_core::group::{Group, Lifecycle};
use bellows_core::ids::InstanceId;
use bellows_core::scaling::Scaler;

use super::{Node, warmups};
use crate::api::{Actor, ApiError};

/// Where a new stack came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Face {
    /// `bellows apply` (a stack file).
    File,
    /// The AWS endpoint's resource records.
    Aws,
}

impl Node {
    /// `bellows apply`: the new stack is parsed and compared with the running one; what
    /// a running stack cannot take is refused as a whole; otherwise groups, the load
    /// balancer and the scaler take the new settings at once (see `stack::diff`).
    pub(super) fn apply(
        &mut self,
        file: &str,
        source: &str,
        dry_run: bool,
        actor: &Actor,
        now: Time,
    ) -> Result<serde_json::Value, ApiError> {
        let invalid = |lines: Vec<String>| {
            ApiError::new_public(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_stack",
                lines.join("\n"),
            )
        };
        let new = bellows_core::stack::parse(source)
            .map_err(|d| invalid(d.iter().map(|d| d.render(file)).collect()))?;
        let zones = crate::zones::unknown_zones(&new);
        if !zones.is_empty() {
            return Err(invalid(
                zones.into_iter().map(|z| format!("{file}: {z}")).collect(),
            ));
        }
        // The file is the new base; what the AWS endpoint made stays on top of it.
        let derived = crate::derive::derive(&new, &self.resources)
            .map_err(|e| invalid(vec![format!("{file}: with the AWS resources: {e}")]))?;
        let result = self.apply_stack(derived, dry_run, actor, now)?;
        if !dry_run {
            self.base = new;
        }
        Ok(result)
    }

    /// The AWS resource records changed: the running stack becomes the base stack and
    /// what the records now describe, applied (and audited) as the AWS caller's change.
    /// Alarms stay as they run: the AWS endpoint's own are kept by the store.
    pub(super) fn apply_records(&mut self, actor: &Actor, now: Time) -> Result<(), ApiError> {
        let mut new = crate::derive::derive(&self.base, &self.resources).map_err(|e| {
            ApiError::new_public(axum::http::StatusCode::BAD_REQUEST, "invalid_resources", e)
        })?;
        new.alarms = self.stack.alarms.clone();
        self.apply_from(new, false, actor, now, Face::Aws)
            .map(|_| ())
    }

    /// Takes `new` as the running stack, whichever face it came from (a stack file, or
    /// the AWS endpoint's resources): what a running stack cannot take is refused as a
    /// whole, the rest is applied at once and audited.
    pub(super) fn apply_stack(
        &mut self,
        new: bellows_core::stack::Stack,
        dry_run: bool,
        actor: &Actor,
        now: Time,
    ) -> Result<serde_json::Value, ApiError> {
        self.apply_from(new, dry_run, actor, now, Face::File)
    }

    fn apply_from(
        &mut self,
        mut new: bellows_core::stack::Stack,
        dry_run: bool,
        actor: &Actor,
        now: Time,
        face: Face,
    ) -> Result<serde_json::Value, ApiError> {
        use bellows_core::stack::diff::{self, Op};
        if self.started_empty {
            // Where a node started with `up --empty` listens, keeps its state and
            // places its instances came from its command line; a file's own say so
            // only where the file is started.
            new.control = self.stack.control;
            new.state_dir.clone_from(&self.stack.state_dir);
            new.instance_network = self.stack.instance_network;
        }
        let changes = diff::diff(&self.stack, &new);
        let mut refused = diff::refused(&self.stack, &new, &changes);
        if self.started_empty && self.stack.name != new.name {
            refused.push(format!(
                "this node started empty as stack `{}`: start it with `bellows up --empty --name {}` to take this stack",
                self.stack.name, new.name
            ));
        }
        let plan = serde_json::json!({ "changes": changes, "applied": false });
        if !refused.is_empty() {
            let error = ApiError::conflict("change", refused.join("; "));
            if !dry_run {
                self.audit_apply(actor, plan, Err(&error));
            }
            return Err(error);
        }
        if dry_run || changes.is_empty() {
            return Ok(plan);
        }
        // Groups first, on copies, so that a change a group refuses leaves all as it was.
        let who = match face {
            Face::File => format!("{actor} (bellows apply)"),
            Face::Aws => format!("{actor} (AWS endpoint)"),
        };
        let mut groups = self.groups.clone();
        let mut versions = BTreeMap::new();
        let mut deleted = Vec::new();
        for c in changes.iter().filter(|c| c.kind == "group") {
            if c.op == Op::Remove {
                // As DeleteAutoScalingGroup with ForceDelete: every instance is
                // terminated (protected or not, drained first), then the group is gone.
                if let Some(g) = groups.get_mut(&c.name) {
                    let ids: Vec<_> = g.instances().map(|i| i.id.clone()).collect();
                    for id in ids {
                        let _ = g.set_protected(&id, false, now);
                    }
                    let why = format!("{actor} (bellows apply: the group is deleted)");
                    if let Err(e) = g.set_capacity(Some(0), Some(0), Some(0), now, &why) {
                        let error =
                            ApiError::conflict("change", format!("group `{}`: {e}", c.name));
                        self.audit_apply(actor, plan, Err(&error));
                        return Err(error);
                    }
                }
                if let Some(spec) = self.stack.group(&c.name) {
                    deleted.push(spec.clone());
                }
                continue;
            }
            let Some(spec) = new.group(&c.name) else {
                continue;
            };
            match c.op {
                Op::Add if self.deleting.contains_key(&c.name) => {
                    let error = ApiError::conflict(
                        "change",
                        format!(
                            "group `{}` is still being deleted (its instances are stopping): apply again once they are gone",
                            c.name
                        ),
                    );
                    self.audit_apply(actor, plan, Err(&error));
                    return Err(error);
                }
                Op::Add => {
                    let mut g = Group::new(spec);
                    for zone in &self.zones_out {
                        g.set_zone_available(zone, false);
                    }
                    groups.insert(c.name.clone(), g);
                }
                Op::Modify => {
                    let (Some(g), Some(old)) = (groups.get_mut(&c.name), self.stack.group(&c.name))
                    else {
                        continue;
                    };
                    match g.reconfigure(old, spec, now, &who) {
                        Ok(Some(v)) => {
                            versions.insert(c.name.clone(), v);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            let error =
                                ApiError::conflict("change", format!("group `{}`: {e}", c.name));
                            self.audit_apply(actor, plan, Err(&error));
                            return Err(error);
                        }
                    }
                }
                Op::Remove => {}
            }
        }
        // The running instances of groups whose target groups change, as (group,
        // target groups added, target groups left).
        let moved: Vec<(String, Vec<String>, Vec<String>)> = changes
            .iter()
            .filter(|c| c.kind == "group" && c.op == Op::Modify && c.touches("target_groups"))
            .filter_map(|c| {
                let (old, spec) = (self.stack.group(&c.name)?, new.group(&c.name)?);
                let added = spec
                    .target_groups
                    .iter()
                    .filter(|t| !old.target_groups.contains(t))
                    .cloned()
                    .collect();
                let left = old
                    .target_groups
                    .iter()
                    .filter(|t| !spec.target_groups.contains(t))
                    .cloned()
                    .collect();
                Some((c.name.clone(), added, left))
            })
            .collect();
        // Then the load balancer's new and moved listeners are bound: an address that
        // cannot be had refuses the whole change, before anything changed.
        let prepared = match self.proxy.prepare(&new) {
            Ok(p) => p,
            Err(e) => {
                let error = ApiError::conflict("change", e.to_string());
                self.audit_apply(actor, plan, Err(&error));
                return Err(error);
            }
        };
        self.groups = groups;
        let new_ingress: Vec<String> = changes
            .iter()
            .filter(|c| c.kind == "listener" && c.touches("ingress"))
            .map(|c| c.name.clone())
            .collect();
        self.proxy.commit(prepared, &new, &new_ingress);
        for spec in deleted {
            self.deleting.insert(spec.name.clone(), spec);
        }
        if changes
            .iter()
            .any(|c| matches!(c.kind, "alarm" | "policy" | "scheduled"))
        {
            // Alarms whose definition did not change keep their state and history.
            let mut scaler = Scaler::new(
                new.alarms.clone(),
                new.policies.clone(),
                new.scheduled.clone(),
                now,
            );
            for (name, alarm) in scaler.alarms.iter_mut() {
                if let Some(old) = self.scaler.alarms.get(name)
                    && old.spec == alarm.spec
                {
                    *alarm = old.clone();
                }
            }
            scaler.keep_clock_of(&self.scaler);
            self.scaler = scaler;
        }
        self.warmups = warmups(&new);
        for spec in &new.groups {
            if let Err(e) = self.store.remember_file_capacity(spec) {
                tracing::warn!(group = %spec.name, error = %e, "cannot remember the file's capacity");
            }
        }
        self.stack = new;
        // A listener that starts or stops forwarding to a group's target group changes
        // whether the load balancer checks its instances, with no change to the group.
        for spec in &self.stack.groups {
            if let Some(g) = self.groups.get_mut(&spec.name) {
                g.set_load_balanced(self.stack.load_balanced(spec));
            }
        }
        // IAM reads a role's policies at each request: what a changed role allows now
        // reaches the instances that carry it, and the credentials they hold.
        for spec in &self.stack.groups {
            let Some(g) = self.groups.get(&spec.name) else {
                continue;
            };
            for i in g.instances() {
                if self
                    .sessions
                    .set_allow(i.id.as_str(), &spec.role.name, &spec.role.allow)
                {
                    tracing::info!(group = %spec.name, instance = %i.id, role = %spec.role.name, "the instance's role allows new actions");
                }
            }
        }
        self.metrics
            .set_aliases(crate::derive::dimension_aliases(&self.resources));
        self.listener_lbs = crate::derive::listener_load_balancers(&self.resources);
        for (group, added, left) in moved {
            self.move_targets(&group, &added, &left);
        }
        self.forget_deleted_groups();
        // A new stack file's alarms replace what the AWS endpoint put; a change through
        // the AWS endpoint keeps them.
        if face == Face::File
            && let Err(e) = self.store.forget_alarm_overrides(&self.stack.name)
        {
            tracing::warn!(error = %e, "cannot forget the alarms put through the AWS endpoint");
        }
        let result = serde_json::json!({
            "changes": changes,
            "applied": true,
            "template_versions": versions,
        });
        self.audit_apply(actor, result.clone(), Ok(()));
        tracing::info!(changes = changes.len(), by = %actor, "applied a new stack");
        Ok(result)
    }

    /// A group's target groups changed: its instances in service are registered in
    /// the ones `added` and deregistered, draining, from the ones it `left` (those
    /// removed from the stack have let go of their targets already).
    fn move_targets(&mut self, group: &str, added: &[String], left: &[String]) {
        let Some(g) = self.groups.get(group) else {
            return;
        };
        let serving: Vec<InstanceId> = g
            .instances()
            .filter(|i| i.lifecycle == Lifecycle::InService && !self.draining.contains_key(&i.id))
            .map(|i| i.id.clone())
            .collect();
        for id in serving {
            for tg in left {
                if self.proxy.deregister_from(tg, &id) {
                    tracing::info!(%group, instance = %id, target_group = %tg, "deregistering from a target group the group no longer names");
                }
            }
            self.register_targets(group, &id, added);
        }
    }

    /// Groups deleted by an apply leave the loop once no instance of theirs is left,
    /// not even a process still stopping.
    pub(super) fn forget_deleted_groups(&mut self) {
        let gone: Vec<String> = self
            .deleting
            .keys()
            .filter(|name| {
                self.groups.get(*name).is_none_or(|g| g.live() == 0)
                    && !self.owner.values().any(|g| g == *name)
            })
            .cloned()
            .collect();
        for name in gone {
            self.deleting.remove(&name);
            self.groups.remove(&name);
            tracing::info!(group = %name, "group deleted");
        }
    }

    /// The audit record of an apply: the plan, and whether it was applied.
    fn audit_apply(
        &mut self,
        actor: &Actor,
        plan: serde_json::Value,
        result: Result<(), &ApiError>,
    ) {
        let target = format!("stack/{}", self.stack.name);
        self.audit(
            actor,
            "ApplyStack",
            target,
            serde_json::Value::Null,
            plan,
            result,
        );
    }
}
