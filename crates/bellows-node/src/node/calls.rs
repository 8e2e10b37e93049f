//! The API's calls as the loop handles them: `on_call` hands each `Call` to the one
//! function that does it (named after the call: `set_capacity` is what happens on
//! `PUT /api/v1/groups/{group}/capacity`) and sends that function's result back as the
//! reply. Every change is audited here, whether it succeeded or not.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bellows_core::Time;
use bellows_core::event::{Capacity, Event};
use bellows_core::group::{Activity, Group, Health, HealthSource, Lifecycle, Refresh};
use bellows_core::ids::InstanceId;
use bellows_core::lb::cidr::Cidr;
use bellows_core::metrics::SeriesKey;
use bellows_proxy::Proxy;

use super::Node;
use crate::api::{self, Actor, ApiError, Call};
use crate::clock;

impl Node {
    /// Does one API call and replies. A reply nobody waits for any more (the caller went
    /// away) is not an error.
    pub(super) fn on_call(&mut self, call: Call) {
        let now = clock::now();
        match call {
            Call::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Call::Instances(reply) => {
                let _ = reply.send(self.instances());
            }
            Call::Activities {
                group,
                limit,
                reply,
            } => {
                let _ = reply.send(self.activities(group, limit));
            }
            Call::SetCapacity {
                group,
                min,
                max,
                desired,
                actor,
                reply,
            } => {
                let _ = reply.send(self.set_capacity(&group, min, max, desired, &actor, now));
            }
            Call::Terminate {
                instance,
                decrement,
                actor,
                reply,
            } => {
                let _ = reply.send(self.terminate(&instance, decrement, &actor, now));
            }
            Call::SetHealth {
                instance,
                health,
                actor,
                reply,
            } => {
                let _ = reply.send(self.set_health(&instance, health, &actor, now));
            }
            Call::SetProtection {
                instance,
                protected,
                actor,
                reply,
            } => {
                let _ = reply.send(self.set_protection(&instance, protected, &actor, now));
            }
            Call::ExecutePolicy {
                policy,
                honor_cooldown,
                metric_value,
                breach_threshold,
                actor,
                reply,
            } => {
                let _ = reply.send(self.execute_policy(
                    &policy,
                    honor_cooldown,
                    metric_value,
                    breach_threshold,
                    &actor,
                    now,
                ));
            }
            Call::SetAlarmState {
                alarm,
                state,
                reason,
                actor,
                reply,
            } => {
                let _ = reply.send(self.set_alarm_state(&alarm, state, reason, &actor, now));
            }
            Call::PutAlarm { spec, actor, reply } => {
                let _ = reply.send(self.put_alarm(spec, &actor, now));
            }
            Call::DeleteAlarms {
                names,
                actor,
                reply,
            } => {
                let _ = reply.send(self.delete_alarms(&names, &actor));
            }
            Call::Targets(reply) => {
                let _ = reply.send(self.proxy.targets());
            }
            Call::Zones(reply) => {
                let _ = reply.send(self.zones());
            }
            Call::SetZone {
                zone,
                available,
                actor,
                reply,
            } => {
                let _ = reply.send(self.set_zone(&zone, available, &actor));
            }
            Call::Listeners(reply) => {
                let _ = reply.send(self.proxy.listeners());
            }
            Call::Ingress {
                listener,
                cidr,
                authorize,
                actor,
                reply,
            } => {
                let _ = reply.send(self.ingress(&listener, cidr, authorize, &actor, now));
            }
            Call::Alarms(reply) => {
                let _ = reply.send(self.alarms_view());
            }
            Call::MetricsList(reply) => {
                let _ = reply.send(self.metrics.keys().cloned().collect::<Vec<SeriesKey>>());
            }
            Call::MetricsQuery { query, reply } => {
                let _ = reply.send(self.metrics_query(query, now));
            }
            Call::PutMetrics { token, data, reply } => {
                let _ = reply.send(self.put_metrics(token, data, now));
            }
            Call::Tables(reply) => {
                let _ = reply.send(self.tables_view());
            }
            Call::Deliveries(reply) => {
                let _ = reply.send(
                    self.store
                        .deliveries(200)
                        .map_err(|e| ApiError::internal(e.to_string())),
                );
            }
            Call::Metrics(reply) => {
                let _ = reply.send(self.prometheus());
            }
            Call::Apply {
                file,
                source,
                dry_run,
                actor,
                reply,
            } => {
                let _ = reply.send(self.apply(&file, &source, dry_run, &actor, now));
            }
            Call::Stack(reply) => {
                let _ = reply.send(serde_json::to_value(&self.stack).unwrap_or_default());
            }
            Call::StartRefresh {
                group,
                min_healthy_percentage,
                warmup,
                actor,
                reply,
            } => {
                let _ = reply.send(self.start_refresh(
                    &group,
                    min_healthy_percentage,
                    warmup,
                    &actor,
                    now,
                ));
            }
            Call::CancelRefresh {
                group,
                actor,
                reply,
            } => {
                let _ = reply.send(self.cancel_refresh(&group, &actor, now));
            }
            Call::Refresh { group, reply } => {
                let _ = reply.send(self.refresh_status(&group));
            }
            Call::Note {
                actor,
                action,
                target,
                after,
                ok,
                reply,
            } => {
                self.note(&actor, &action, target, after, ok);
                let _ = reply.send(());
            }
            Call::Investigate {
                since,
                alarm,
                reply,
            } => {
                let _ = reply.send(self.investigate(since, alarm.as_deref(), now));
            }
            Call::Investigations(reply) => {
                let _ = reply.send(
                    self.store
                        .investigations(200)
                        .map_err(|e| ApiError::internal(e.to_string())),
                );
            }
            Call::Investigation { id, reply } => {
                let _ = reply.send(self.investigation(id));
            }
            Call::Incidents(reply) => {
                let _ = reply.send(
                    self.store
                        .incidents(200)
                        .map_err(|e| ApiError::internal(e.to_string())),
                );
            }
            Call::Audit {
                since,
                target,
                limit,
                reply,
            } => {
                let _ = reply.send(
                    self.store
                        .audit(since, target.as_deref(), limit)
                        .map_err(|e| ApiError::internal(e.to_string())),
                );
            }
            Call::EventsAfter { seq, reply } => {
                let _ = reply.send(
                    self.store
                        .events_after(seq, 10_000)
                        .map_err(|e| ApiError::internal(e.to_string())),
                );
            }
            Call::Resources { actor, op, reply } => {
                let _ = reply.send(self.on_resources(actor, op, now));
            }
            Call::Log { instance, reply } => {
                let path = self.provider.log_path(&instance);
                let running = self.provider.is_running(&instance);
                let _ = reply.send(path.exists().then_some((path, running)));
            }
        }
    }

    /// `GET /api/v1/activities`: a group's activities (or every group's), newest first.
    fn activities(&self, group: Option<String>, limit: usize) -> Result<Vec<Activity>, ApiError> {
        match &group {
            Some(g) if !self.groups.contains_key(g) => {
                Err(ApiError::not_found(format!("no group named `{g}`")))
            }
            _ => self
                .store
                .activities(group.as_deref(), limit)
                .map_err(|e| ApiError::internal(e.to_string())),
        }
    }

    /// `PUT /api/v1/groups/{group}/capacity`: new minimum, maximum or desired capacity.
    fn set_capacity(
        &mut self,
        group: &str,
        min: Option<u32>,
        max: Option<u32>,
        desired: Option<u32>,
        actor: &Actor,
        now: Time,
    ) -> Result<Capacity, ApiError> {
        let before = self.groups.get(group).map(|g| g.capacity());
        let result = group_named(&mut self.groups, group).and_then(|g| {
            g.set_capacity(min, max, desired, now, &actor.to_string())
                .map_err(|e| ApiError::conflict("capacity", e.to_string()))
        });
        let asked = serde_json::json!({ "min": min, "max": max, "desired": desired });
        let after = match &result {
            Ok(cap) => serde_json::json!(cap),
            Err(_) => asked,
        };
        self.audit(
            actor,
            "UpdateAutoScalingGroup",
            format!("group/{group}"),
            serde_json::json!(before),
            after,
            result.as_ref().map(|_| ()),
        );
        result
    }

    /// `POST /api/v1/instances/{id}/terminate`: terminates one instance, with or without
    /// lowering the group's desired capacity.
    fn terminate(
        &mut self,
        instance: &InstanceId,
        decrement: bool,
        actor: &Actor,
        now: Time,
    ) -> Result<Capacity, ApiError> {
        let before = self.instance_json(instance);
        let ids = &mut self.ids;
        let command = owning_group(&self.owner, &mut self.groups, instance).and_then(|g| {
            g.terminate_instance(instance, decrement, now, &actor.to_string(), ids)
                .map(|c| (c, g.capacity()))
                .map_err(|e| ApiError::conflict("instance", e.to_string()))
        });
        let result = command.map(|(c, cap)| {
            self.execute(c, now);
            cap
        });
        let after = serde_json::json!({
            "instance": self.instance_json(instance),
            "decrement_desired": decrement,
            "capacity": result.as_ref().ok(),
        });
        self.audit(
            actor,
            "TerminateInstanceInAutoScalingGroup",
            format!("instance/{instance}"),
            before,
            after,
            result.as_ref().map(|_| ()),
        );
        result
    }

    /// `PUT /api/v1/instances/{id}/health`: the operator sets an instance's health.
    fn set_health(
        &mut self,
        instance: &InstanceId,
        health: Health,
        actor: &Actor,
        now: Time,
    ) -> Result<(), ApiError> {
        let why = format!("set by {actor}");
        self.change_instance(actor, "SetInstanceHealth", instance, |g| {
            g.set_health(instance, health, HealthSource::Operator, why, now)
                .map(|_| ())
        })
    }

    /// `PUT /api/v1/instances/{id}/protection`: scale-in protection on or off.
    fn set_protection(
        &mut self,
        instance: &InstanceId,
        protected: bool,
        actor: &Actor,
        now: Time,
    ) -> Result<(), ApiError> {
        self.change_instance(actor, "SetInstanceProtection", instance, |g| {
            g.set_protected(instance, protected, now)
        })
    }

    /// `PUT /api/v1/zones/{zone}`: starts or ends a zone's outage.
    fn set_zone(
        &mut self,
        zone: &str,
        available: bool,
        actor: &Actor,
    ) -> Result<api::ZoneChange, ApiError> {
        let result = self.zone_outage(zone, available, actor);
        let after = match &result {
            Ok(c) => serde_json::json!({ "available": c.available, "killed": c.killed }),
            Err(_) => serde_json::json!({ "available": available }),
        };
        self.audit(
            actor,
            if available {
                "EndZoneOutage"
            } else {
                "StartZoneOutage"
            },
            format!("zone/{zone}"),
            match &result {
                // Unchanged: it already was as asked.
                Ok(c) => serde_json::json!({ "available": c.available != c.changed }),
                Err(_) => serde_json::Value::Null,
            },
            after,
            result.as_ref().map(|_| ()),
        );
        result
    }

    /// `POST /api/v1/listeners/{listener}/ingress/authorize` and `.../revoke`: a
    /// CIDR in or out of a listener's allow-list.
    fn ingress(
        &mut self,
        listener: &str,
        cidr: Cidr,
        authorize: bool,
        actor: &Actor,
        now: Time,
    ) -> Result<api::IngressChange, ApiError> {
        let ingress_of = |proxy: &Proxy| {
            proxy
                .listeners()
                .into_iter()
                .find(|l| l.name == listener)
                .map(|l| l.ingress)
        };
        let before = ingress_of(&self.proxy);
        let result = if authorize {
            self.proxy.authorize(listener, cidr)
        } else {
            self.proxy.revoke(listener, cidr)
        };
        let result = match result {
            Ok(changed) => {
                if changed {
                    self.record(Event::Ingress {
                        time: now,
                        listener: listener.to_owned(),
                        cidr: cidr.to_string(),
                        authorized: authorize,
                        actor: actor.to_string(),
                    });
                }
                let ingress = ingress_of(&self.proxy).unwrap_or_default();
                Ok(api::IngressChange {
                    listener: listener.to_owned(),
                    cidr,
                    changed,
                    ingress,
                })
            }
            Err(e) => Err(ApiError::not_found(e.to_string())),
        };
        let after = ingress_of(&self.proxy);
        self.audit(
            actor,
            if authorize {
                "AuthorizeSecurityGroupIngress"
            } else {
                "RevokeSecurityGroupIngress"
            },
            format!("listener/{listener}"),
            serde_json::json!({ "ingress": before }),
            serde_json::json!({ "ingress": after, "cidr": cidr.to_string() }),
            result.as_ref().map(|_| ()),
        );
        result
    }

    /// `POST /api/v1/groups/{group}/refresh`: starts an instance refresh.
    fn start_refresh(
        &mut self,
        group: &str,
        min_healthy_percentage: Option<u32>,
        warmup: Option<bellows_core::Duration>,
        actor: &Actor,
        now: Time,
    ) -> Result<Refresh, ApiError> {
        let default_warmup = self
            .warmups
            .get(group)
            .map(|w| bellows_core::Duration::from_millis(w.as_millis() as u64))
            .unwrap_or_default();
        let spec = bellows_core::group::RefreshSpec {
            min_healthy_percentage: min_healthy_percentage.unwrap_or(90),
            warmup: warmup.unwrap_or(default_warmup),
        };
        let ids = &mut self.ids;
        let result = group_named(&mut self.groups, group).and_then(|g| {
            g.start_refresh(spec, now, ids)
                .map_err(|e| ApiError::conflict("refresh", e.to_string()))
        });
        self.audit(
            actor,
            "StartInstanceRefresh",
            format!("group/{group}"),
            serde_json::Value::Null,
            serde_json::json!(spec),
            result.as_ref().map(|_| ()),
        );
        result
    }

    /// `DELETE /api/v1/groups/{group}/refresh`: cancels the refresh in progress.
    fn cancel_refresh(
        &mut self,
        group: &str,
        actor: &Actor,
        now: Time,
    ) -> Result<Refresh, ApiError> {
        let result = group_named(&mut self.groups, group).and_then(|g| {
            g.cancel_refresh(now)
                .map_err(|e| ApiError::conflict("refresh", e.to_string()))
        });
        let after = result
            .as_ref()
            .ok()
            .map(|r| serde_json::json!({ "status": r.status, "remaining": r.remaining.len() }));
        self.audit(
            actor,
            "CancelInstanceRefresh",
            format!("group/{group}"),
            serde_json::Value::Null,
            serde_json::json!(after),
            result.as_ref().map(|_| ()),
        );
        result
    }

    /// `GET /api/v1/groups/{group}/refresh`: the refresh in progress, or the last one.
    fn refresh_status(&self, group: &str) -> Result<Option<Refresh>, ApiError> {
        match self.groups.get(group) {
            None => Err(ApiError::not_found(format!("no group named `{group}`"))),
            Some(g) => Ok(g.refresh().cloned()),
        }
    }

    /// A change made outside the loop (a request to an instance), into the audit trail.
    fn note(
        &mut self,
        actor: &Actor,
        action: &str,
        target: String,
        after: serde_json::Value,
        ok: bool,
    ) {
        let failed = ApiError::conflict("instance", "the instance refused");
        self.audit(
            actor,
            action,
            target,
            serde_json::Value::Null,
            after,
            if ok { Ok(()) } else { Err(&failed) },
        );
    }

    /// `GET /api/v1/investigations/{id}`: one stored report, with its Markdown.
    fn investigation(&self, id: i64) -> Result<serde_json::Value, ApiError> {
        match self.store.investigation(id) {
            Ok(Some(text)) => serde_json::from_str::<bellows_core::investigate::Report>(&text)
                .map_err(|e| ApiError::internal(e.to_string()))
                .map(|r| {
                    let mut v = serde_json::to_value(&r).unwrap_or_default();
                    v["markdown"] = serde_json::Value::String(r.markdown());
                    v["title"] = serde_json::Value::String(r.title());
                    v["id"] = serde_json::json!(id);
                    v
                }),
            Ok(None) => Err(ApiError::not_found(format!("no investigation {id}"))),
            Err(e) => Err(ApiError::internal(e.to_string())),
        }
    }

    /// An instance as the audit trail shows it before and after a change.
    fn instance_json(&self, id: &InstanceId) -> serde_json::Value {
        let Some(i) = self
            .owner
            .get(id)
            .and_then(|g| self.groups.get(g))
            .and_then(|g| g.instance(id))
        else {
            return serde_json::Value::Null;
        };
        serde_json::json!({
            "lifecycle": i.lifecycle,
            "health": i.health,
            "protected": i.protected,
        })
    }

    /// A change to one instance, audited with the instance as it was before and after.
    fn change_instance(
        &mut self,
        actor: &Actor,
        action: &str,
        instance: &InstanceId,
        op: impl FnOnce(&mut Group) -> Result<(), bellows_core::group::GroupError>,
    ) -> Result<(), ApiError> {
        let before = self.instance_json(instance);
        let result = self
            .group_of(instance)
            .and_then(|g| op(g).map_err(|e| ApiError::conflict("instance", e.to_string())));
        let after = self.instance_json(instance);
        self.audit(
            actor,
            action,
            format!("instance/{instance}"),
            before,
            after,
            result.as_ref().map(|_| ()),
        );
        result
    }

    /// The group an instance in service belongs to, or the API's 404.
    fn group_of(&mut self, instance: &InstanceId) -> Result<&mut Group, ApiError> {
        owning_group(&self.owner, &mut self.groups, instance)
    }

    /// Starts or ends a zone's outage. At its start every live instance in the zone is
    /// killed with SIGKILL, as a power cut would (the groups see them die and replace
    /// them elsewhere); while it lasts no group launches there.
    fn zone_outage(
        &mut self,
        zone: &str,
        available: bool,
        actor: &Actor,
    ) -> Result<api::ZoneChange, ApiError> {
        if !self.zones_out.contains(zone)
            && !self
                .groups
                .values()
                .any(|g| g.zones().iter().any(|z| z == zone))
        {
            return Err(ApiError::not_found(format!(
                "no group has zone `{zone}`; see `bellows zones`"
            )));
        }
        let changed = if available {
            self.zones_out.remove(zone)
        } else {
            self.zones_out.insert(zone.to_owned())
        };
        for g in self.groups.values_mut() {
            g.set_zone_available(zone, available);
        }
        let mut killed = Vec::new();
        if !available {
            for g in self.groups.values() {
                // A power cut: draining instances go too.
                for i in g.instances().filter(|i| {
                    i.zone == zone
                        && matches!(
                            i.lifecycle,
                            Lifecycle::Pending | Lifecycle::InService | Lifecycle::Terminating
                        )
                }) {
                    match self.provider.info(&i.id).and_then(|p| p.pid) {
                        Some(pid) => {
                            let pid = nix::unistd::Pid::from_raw(pid as i32);
                            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                        }
                        // Still starting: its shim takes it down at once.
                        None => self.provider.terminate(&i.id, Duration::ZERO),
                    }
                    killed.push(i.id.clone());
                }
            }
        }
        tracing::warn!(%zone, available, %actor, killed = killed.len(), "zone {}", if available { "back" } else { "out (outage)" });
        Ok(api::ZoneChange {
            zone: zone.to_owned(),
            available,
            changed,
            killed,
        })
    }
}

/// The group an instance in service belongs to, or the API's 404 (a free function, so
/// that a caller can hold other fields of the node at the same time).
fn owning_group<'g>(
    owner: &HashMap<InstanceId, String>,
    groups: &'g mut BTreeMap<String, Group>,
    instance: &InstanceId,
) -> Result<&'g mut Group, ApiError> {
    owner
        .get(instance)
        .and_then(|g| groups.get_mut(g))
        .ok_or_else(|| ApiError::not_found(format!("no instance `{instance}` in service")))
}

/// A group by name, or the API's 404.
fn group_named<'g>(
    groups: &'g mut BTreeMap<String, Group>,
    name: &str,
) -> Result<&'g mut Group, ApiError> {
    groups
        .get_mut(name)
        .ok_or_else(|| ApiError::not_found(format!("no group named `{name}`")))
}
