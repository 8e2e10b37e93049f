//! What the API shows of the loop's state: the status, the instances, the zones, the
//! alarms, and every metric in Prometheus' text format. Views only read.

use std::collections::BTreeMap;

use bellows_core::group::Lifecycle;

use super::Node;
use crate::api::{self, ApiError, GroupView, InstanceView, StatusView, TableView};

impl Node {
    /// `GET /api/v1/tables`: DynamoDB's tables with their counts and sizes.
    pub(super) fn tables_view(&self) -> Result<Vec<TableView>, ApiError> {
        let all = self
            .tables
            .all()
            .map_err(|e| ApiError::internal(e.message))?;
        Ok(all
            .into_iter()
            .map(|t| TableView {
                key: std::iter::once(&t.def.hash)
                    .chain(t.def.range.as_ref())
                    .map(|k| format!("{} ({})", k.name, k.scalar.name()))
                    .collect(),
                name: t.def.name,
                billing_mode: t.def.billing_mode,
                items: t.items,
                bytes: t.bytes,
                read_capacity: t.def.read_capacity,
                write_capacity: t.def.write_capacity,
            })
            .collect())
    }

    /// Every metric in Prometheus' text format: the proxy's, the groups', the metric
    /// store's newest second, the alarms' states and the instances' usage.
    pub(super) fn prometheus(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.proxy.render_prometheus(&mut out);
        for g in self.groups.values() {
            let cap = g.capacity();
            let labels = [("group", g.name())];
            bellows_proxy::metrics::sample(
                &mut out,
                "bellows_group_desired_capacity",
                &labels,
                cap.desired,
            );
            bellows_proxy::metrics::sample(&mut out, "bellows_group_min_size", &labels, cap.min);
            bellows_proxy::metrics::sample(&mut out, "bellows_group_max_size", &labels, cap.max);
            bellows_proxy::metrics::sample(
                &mut out,
                "bellows_group_in_service_instances",
                &labels,
                g.count(Lifecycle::InService),
            );
            bellows_proxy::metrics::sample(
                &mut out,
                "bellows_group_pending_instances",
                &labels,
                g.count(Lifecycle::Pending),
            );
            bellows_proxy::metrics::sample(
                &mut out,
                "bellows_group_terminating_instances",
                &labels,
                g.count(Lifecycle::Terminating),
            );
        }
        // The metric store's own size: it grows for its first three hours (the 1-second
        // retention), which `scripts/soak` takes out of bellows' memory to see a leak.
        let held = self.metrics.footprint();
        bellows_proxy::metrics::sample(&mut out, "bellows_metric_series", &[], held.series);
        bellows_proxy::metrics::sample(&mut out, "bellows_metric_datapoints", &[], held.datapoints);
        bellows_proxy::metrics::sample(&mut out, "bellows_metric_store_bytes", &[], held.bytes);
        // Every series of the metric store, at its newest second (custom metrics too).
        for key in self.metrics.keys() {
            if let Some((_, d)) = self.metrics.latest(key) {
                let dims: Vec<String> = key
                    .dimensions
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let dims = dims.join(",");
                let labels = [
                    ("namespace", key.namespace.as_str()),
                    ("metric", key.name.as_str()),
                    ("dimensions", dims.as_str()),
                ];
                bellows_proxy::metrics::sample(
                    &mut out,
                    "bellows_cloudwatch_latest",
                    &labels,
                    d.average(),
                );
            }
        }
        for a in self.scaler.alarms.values() {
            let state = match a.state {
                bellows_core::alarm::AlarmState::Ok => 0,
                bellows_core::alarm::AlarmState::Alarm => 1,
                bellows_core::alarm::AlarmState::InsufficientData => 2,
            };
            bellows_proxy::metrics::sample(
                &mut out,
                "bellows_alarm_state",
                &[("alarm", a.spec.name.as_str())],
                state,
            );
        }
        for i in self.instances() {
            if let Some(cpu) = i.cpu_percent {
                let labels = [("group", i.group.as_str()), ("instance", i.id.as_str())];
                bellows_proxy::metrics::sample(
                    &mut out,
                    "bellows_instance_cpu_utilization_percent",
                    &labels,
                    format!("{cpu:.2}"),
                );
                bellows_proxy::metrics::sample(
                    &mut out,
                    "bellows_instance_memory_bytes",
                    &labels,
                    i.memory_bytes.unwrap_or(0),
                );
            }
        }
        out
    }

    /// The stack as `bellows status` shows it.
    pub(super) fn status(&self) -> StatusView {
        StatusView {
            stack: self.stack.name.clone(),
            pid: std::process::id(),
            started_at: self.started,
            state_dir: self.state_dir.display().to_string(),
            control: self.control.to_string(),
            cgroups: self.cgroups,
            listeners: self.proxy.listeners(),
            zones_out: self.zones_out.iter().cloned().collect(),
            groups: self
                .groups
                .values()
                .filter_map(|g| {
                    let spec = self.stack.group(g.name())?;
                    let cap = g.capacity();
                    Some(GroupView {
                        name: g.name().to_owned(),
                        min: cap.min,
                        max: cap.max,
                        desired: cap.desired,
                        pending: g.count(Lifecycle::Pending) as u32,
                        in_service: g.count(Lifecycle::InService) as u32,
                        terminating: g.count(Lifecycle::Terminating) as u32,
                        instance_type: spec.launch.instance_type.name.clone(),
                        zones: spec.zones.clone(),
                        target_groups: spec.target_groups.clone(),
                        health_check_type: spec.health_check_type,
                        termination_policy: spec.termination_policy,
                        refresh: g.refresh().cloned(),
                    })
                })
                .collect(),
        }
    }

    /// Every instance of every group, by group and launch time.
    pub(super) fn instances(&self) -> Vec<InstanceView> {
        let mut out = Vec::new();
        for g in self.groups.values() {
            let Some(spec) = self.stack.group(g.name()) else {
                continue;
            };
            for i in g.instances() {
                let info = self.provider.info(&i.id);
                let memory_total = spec.launch.instance_type.memory_mib * 1024 * 1024;
                out.push(InstanceView {
                    id: i.id.clone(),
                    group: g.name().to_owned(),
                    zone: i.zone.clone(),
                    lifecycle: i.lifecycle,
                    health: i.health,
                    protected: i.protected,
                    private_ip: info.as_ref().map(|p| p.ip.to_string()),
                    port: spec.launch.port,
                    pid: info.as_ref().and_then(|p| p.pid),
                    launched_at: i.launched_at,
                    in_service_at: i.in_service_at,
                    instance_type: spec.launch.instance_type.name.clone(),
                    vcpu: spec.launch.instance_type.vcpu,
                    cpu_percent: info.as_ref().map(|p| p.usage.cpu_percent),
                    memory_bytes: info.as_ref().map(|p| p.usage.memory_bytes),
                    memory_percent: info
                        .as_ref()
                        .map(|p| p.usage.memory_bytes as f64 * 100.0 / memory_total as f64),
                });
            }
        }
        out.sort_by(|a, b| (&a.group, a.launched_at, &a.id).cmp(&(&b.group, b.launched_at, &b.id)));
        out
    }

    /// Every zone some group lists, with its availability and live instances.
    pub(super) fn zones(&self) -> Vec<api::ZoneView> {
        let mut zones: BTreeMap<String, api::ZoneView> = BTreeMap::new();
        for g in self.groups.values() {
            for z in g.zones() {
                let view = zones.entry(z.clone()).or_insert_with(|| api::ZoneView {
                    zone: z.clone(),
                    available: true,
                    groups: Vec::new(),
                    instances: 0,
                });
                view.groups.push(g.name().to_owned());
            }
        }
        // A zone still out that no group lists any more, so that it can be restored.
        for z in &self.zones_out {
            zones.entry(z.clone()).or_insert_with(|| api::ZoneView {
                zone: z.clone(),
                available: false,
                groups: Vec::new(),
                instances: 0,
            });
        }
        for view in zones.values_mut() {
            view.available = !self.zones_out.contains(&view.zone);
        }
        for g in self.groups.values() {
            for i in g.instances() {
                if let Some(view) = zones.get_mut(&i.zone)
                    && matches!(i.lifecycle, Lifecycle::Pending | Lifecycle::InService)
                {
                    view.instances += 1;
                }
            }
        }
        zones.into_values().collect()
    }

    /// Every alarm with its state and its newest transitions.
    pub(super) fn alarms_view(&self) -> Vec<api::AlarmView> {
        self.scaler
            .alarms
            .values()
            .map(|a| api::AlarmView {
                name: a.spec.name.clone(),
                state: a.state,
                reason: a.reason.clone(),
                since: a.since,
                metric: a.spec.metric.to_string(),
                statistic: a.spec.statistic.to_string(),
                period: a.spec.period,
                evaluation_periods: a.spec.evaluation_periods,
                datapoints_to_alarm: a.spec.datapoints_to_alarm,
                comparison: a.spec.comparison.symbol().to_owned(),
                threshold: a.spec.threshold,
                last_value: a.last_value,
                alarm_actions: a.spec.alarm_actions.clone(),
                history: self
                    .alarm_history
                    .get(&a.spec.name)
                    .map(|h| h.iter().rev().cloned().collect())
                    .unwrap_or_default(),
            })
            .collect()
    }
}
