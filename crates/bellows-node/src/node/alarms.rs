//! The calls on metrics, alarms and policies as the loop handles them: metric queries
//! and PutMetricData, SetAlarmState, PutMetricAlarm and DeleteAlarms on the stack's
//! alarms, ExecutePolicy. `calls.rs` hands them here from `on_call`. And an alarm's
//! webhook action, queued in the outbox for delivery.

use std::collections::BTreeMap;

use bellows_core::Time;
use bellows_core::alarm::{AlarmSpec, Transition};
use bellows_core::metrics::SeriesKey;

use super::Node;
use crate::api::{self, Actor, ApiError};

impl Node {
    /// `GET /api/v1/metrics/query`: one statistic of the matching series.
    pub(super) fn metrics_query(
        &self,
        q: api::MetricQuery,
        now: Time,
    ) -> Result<api::MetricResult, ApiError> {
        let stat: bellows_core::metrics::Statistic = q
            .stat
            .as_deref()
            .unwrap_or("Average")
            .parse()
            .map_err(ApiError::bad_request)?;
        let period: bellows_core::Duration = q.period.as_deref().unwrap_or("1s").parse().map_err(
            |e: bellows_core::duration::ParseDurationError| {
                ApiError::bad_request(format!("period: {e}"))
            },
        )?;
        let since: bellows_core::Duration = q.since.as_deref().unwrap_or("5m").parse().map_err(
            |e: bellows_core::duration::ParseDurationError| {
                ApiError::bad_request(format!("since: {e}"))
            },
        )?;
        if period.as_millis() < 1000 || !period.as_millis().is_multiple_of(1000) {
            return Err(ApiError::bad_request(
                "period: a whole number of seconds, at least 1s",
            ));
        }
        // A read may not make the loop walk millions of periods: a longer `since` gives
        // the newest 86400 periods, as the OpenAPI document says.
        let since = bellows_core::Duration::from_millis(
            since
                .as_millis()
                .min(86_400u64.saturating_mul(period.as_millis())),
        );
        let mut dims = BTreeMap::new();
        for pair in q
            .dimensions
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                ApiError::bad_request(format!("dimension `{pair}`: write Key=Value"))
            })?;
            dims.insert(k.to_owned(), v.to_owned());
        }
        let from = Time::from_millis(now.as_millis().saturating_sub(since.as_millis()));
        let series = self
            .metrics
            .matching(&q.namespace, &q.name, &dims)
            .take(100)
            .map(|key| api::SeriesResult {
                key: key.clone(),
                statistic: stat.to_string(),
                period,
                points: self.metrics.query(key, stat, from, now, period),
            })
            .collect();
        Ok(api::MetricResult { series })
    }

    /// `POST /api/v1/metrics`: custom metrics, from the operator or an instance.
    pub(super) fn put_metrics(
        &mut self,
        token: Option<String>,
        data: Vec<api::MetricDatum>,
        now: Time,
    ) -> Result<usize, ApiError> {
        let token = token.ok_or_else(|| ApiError::unauthorized("putting metrics needs a bearer token: the operator's, or an instance's $BELLOWS_METRICS_TOKEN"))?;
        let is_operator = token.len() == self.token.len()
            && token
                .bytes()
                .zip(self.token.bytes())
                .fold(0, |a, (x, y)| a | (x ^ y))
                == 0;
        let instance = self.instance_tokens.get(&token).cloned();
        if !is_operator && instance.is_none() {
            return Err(ApiError::unauthorized("the bearer token is not valid"));
        }
        for d in &data {
            // Characters, as the OpenAPI document's maxLength counts them.
            let chars = |s: &str| s.chars().count();
            if !(1..=255).contains(&chars(&d.namespace))
                || !(1..=255).contains(&chars(&d.name))
                || d.dimensions.len() > 30
            {
                return Err(ApiError::bad_request(
                    "namespace and name must be 1 to 255 characters, with at most 30 dimensions",
                ));
            }
            if d.namespace.starts_with("AWS/") {
                return Err(ApiError::bad_request(format!(
                    "namespace `{}`: AWS/ is reserved for bellows' own metrics",
                    d.namespace
                )));
            }
            if !d.value.is_finite() {
                return Err(ApiError::bad_request("a value must be a finite number"));
            }
        }
        if self.metrics.len() + data.len() > 100_000 {
            return Err(ApiError::conflict(
                "metrics",
                "too many series: at most 100000",
            ));
        }
        for d in &data {
            let mut key = SeriesKey {
                namespace: d.namespace.clone(),
                name: d.name.clone(),
                dimensions: d.dimensions.clone(),
            };
            // An instance's own metrics carry its id unless it names one itself.
            if let Some(id) = &instance
                && !key.dimensions.contains_key("InstanceId")
                && key.dimensions.is_empty()
            {
                key.dimensions
                    .insert("InstanceId".to_owned(), id.to_string());
            }
            self.metrics.put(&key, now, d.value);
        }
        Ok(data.len())
    }
}

impl Node {
    pub(super) fn set_alarm_state(
        &mut self,
        alarm: &str,
        state: bellows_core::alarm::AlarmState,
        reason: String,
        actor: &Actor,
        now: Time,
    ) -> Result<(), ApiError> {
        let before = self.scaler.alarms.get(alarm).map(|a| a.state);
        let result = self
            .scaler
            .set_alarm_state(alarm, state, reason.clone(), now)
            .ok_or_else(|| ApiError::not_found(format!("no alarm `{alarm}`")));
        self.audit(
            actor,
            "SetAlarmState",
            format!("alarm/{alarm}"),
            serde_json::json!({ "state": before }),
            serde_json::json!({ "state": state, "reason": reason }),
            result.as_ref().map(|_| ()),
        );
        let outcomes = result?;
        self.on_outcomes(outcomes, now);
        Ok(())
    }

    /// PutMetricAlarm: the alarm's actions must be the stack's policies or webhooks, and
    /// the alarms a target tracking policy owns are its own. The stack's alarms, the
    /// scaler and the state database all take it.
    pub(super) fn put_alarm(
        &mut self,
        spec: AlarmSpec,
        actor: &Actor,
        now: Time,
    ) -> Result<(), ApiError> {
        let name = spec.name.clone();
        let before = self.stack.alarms.iter().find(|a| a.name == name).cloned();
        let result = self.check_alarm(&spec);
        self.audit(
            actor,
            "PutMetricAlarm",
            format!("alarm/{name}"),
            serde_json::to_value(&before).unwrap_or_default(),
            serde_json::to_value(&spec).unwrap_or_default(),
            result.as_ref().map(|_| ()),
        );
        result?;
        if let Err(e) =
            self.store
                .remember_alarm(&self.stack.name, &name, before.as_ref(), Some(&spec))
        {
            tracing::warn!(alarm = %name, error = %e, "cannot keep the alarm for the next start");
        }
        self.scaler.put_alarm(spec.clone(), now);
        match self.stack.alarms.iter_mut().find(|a| a.name == name) {
            Some(a) => *a = spec,
            None => self.stack.alarms.push(spec),
        }
        Ok(())
    }

    pub(super) fn check_alarm(&self, spec: &AlarmSpec) -> Result<(), ApiError> {
        if self.is_owned_alarm(&spec.name) {
            return Err(ApiError::bad_request(format!(
                "alarm `{}` belongs to a target tracking policy, which manages it",
                spec.name
            )));
        }
        for action in spec
            .alarm_actions
            .iter()
            .chain(&spec.ok_actions)
            .chain(&spec.insufficient_data_actions)
        {
            let known = match action.strip_prefix("webhook:") {
                Some(w) => self.stack.webhooks.iter().any(|h| h.name == w),
                None => self.stack.policies.iter().any(|p| &p.name == action),
            };
            if !known {
                return Err(ApiError::bad_request(format!(
                    "alarm `{}`: the action `{action}` is none of the stack's policies or webhooks",
                    spec.name
                )));
            }
        }
        Ok(())
    }

    /// An alarm a target tracking policy created (and deletes with itself).
    pub(super) fn is_owned_alarm(&self, name: &str) -> bool {
        self.scaler.alarms.contains_key(name) && !self.stack.alarms.iter().any(|a| a.name == name)
    }

    /// DeleteAlarms: all named, or none if one of them is not the stack's.
    pub(super) fn delete_alarms(
        &mut self,
        names: &[String],
        actor: &Actor,
    ) -> Result<(), ApiError> {
        let missing: Vec<&str> = names
            .iter()
            .filter(|n| !self.stack.alarms.iter().any(|a| &a.name == *n))
            .map(String::as_str)
            .collect();
        let result = if let Some(owned) = names.iter().find(|n| self.is_owned_alarm(n)) {
            Err(ApiError::bad_request(format!(
                "alarm `{owned}` belongs to a target tracking policy, which manages it"
            )))
        } else if missing.is_empty() {
            Ok(())
        } else {
            Err(ApiError::not_found(format!(
                "no alarm named {}",
                missing.join(", ")
            )))
        };
        for name in names {
            let before = self.stack.alarms.iter().find(|a| &a.name == name);
            let before = serde_json::to_value(before).unwrap_or_default();
            self.audit(
                actor,
                "DeleteAlarms",
                format!("alarm/{name}"),
                before,
                serde_json::Value::Null,
                result.as_ref().map(|_| ()),
            );
        }
        result?;
        for name in names {
            let Some(i) = self.stack.alarms.iter().position(|a| &a.name == name) else {
                continue;
            };
            let before = self.stack.alarms.remove(i);
            self.scaler.remove_alarm(name);
            if let Err(e) = self
                .store
                .remember_alarm(&self.stack.name, name, Some(&before), None)
            {
                tracing::warn!(alarm = %name, error = %e, "cannot keep the deletion for the next start");
            }
        }
        Ok(())
    }
}

impl Node {
    pub(super) fn execute_policy(
        &mut self,
        policy: &str,
        honor_cooldown: bool,
        metric_value: Option<f64>,
        breach_threshold: Option<f64>,
        actor: &Actor,
        now: Time,
    ) -> Result<(), ApiError> {
        use bellows_core::scaling::{ExecuteError, Outcome};
        let before = self
            .scaler
            .policies()
            .find(|p| p.name == policy)
            .and_then(|p| self.groups.get(&p.group))
            .map(|g| g.capacity());
        let result = self
            .scaler
            .execute_policy(
                policy,
                &mut super::Groups {
                    groups: &mut self.groups,
                    warmups: &self.warmups,
                },
                now,
                honor_cooldown,
                metric_value,
                breach_threshold,
            )
            .map_err(|e| match e {
                ExecuteError::NotFound(_) => ApiError::not_found(e.to_string()),
                ExecuteError::Cooldown(_) => ApiError::conflict("cooldown", e.to_string()),
                ExecuteError::Invalid(_) => ApiError::bad_request(e.to_string()),
            });
        let after = match &result {
            Ok(Some(Outcome::Scaled { group, to, .. })) => {
                serde_json::json!({ "group": group, "desired": to })
            }
            _ => serde_json::Value::Null,
        };
        self.audit(
            actor,
            "ExecutePolicy",
            format!("policy/{policy}"),
            serde_json::json!(before),
            after,
            result.as_ref().map(|_| ()),
        );
        result.map(|_| ())
    }

    /// An alarm's transition reached a webhook among its actions: the delivery is
    /// queued in the outbox (`outbox.rs` sends it, with retries).
    pub(super) fn enqueue_webhook(&mut self, webhook: &str, transition: &Transition, now: Time) {
        let Some(hook) = self.stack.webhooks.iter().find(|w| w.name == webhook) else {
            return;
        };
        let body = serde_json::json!({
            "source": "bellows",
            "stack": self.stack.name,
            "alarm": transition.alarm,
            "from": transition.from,
            "to": transition.to,
            "reason": transition.reason,
            "time": transition.time.to_string(),
        });
        if let Err(e) = self.store.enqueue(
            &format!("webhook:{webhook}"),
            &hook.url,
            &body.to_string(),
            now,
        ) {
            tracing::error!(error = %e, "cannot queue a webhook delivery");
        }
    }
}
