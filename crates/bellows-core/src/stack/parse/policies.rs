//! `[policies.NAME]`: AWS's simple, step and target tracking policies, and the
//! policies with a clock of their own (HPA, KPA, predictive).

use toml::Spanned;

use super::values::{
    check_name, duration_in, float_in, int_in, one_of, read_bool, read_dimensions, read_f64,
    read_statistic, t_int,
};
use crate::Duration;
use crate::metrics::SeriesKey;
use crate::policy::{
    AdjustmentType, HpaSpec, KpaSpec, PolicyKind, PolicySpec, PredictiveSpec, Step, TrackedMetric,
};
use crate::stack::reader::{Cx, Table};
use crate::stack::{GroupSpec, TargetGroupSpec};

pub(super) fn read_all(
    cx: &mut Cx<'_>,
    root: &mut Table<'_, '_>,
    groups: &[GroupSpec],
    target_groups: &[TargetGroupSpec],
) -> Vec<PolicySpec> {
    let mut policies = Vec::new();
    for (name, mut t) in root.named_tables(cx, "policies") {
        check_name(cx, &name, "policy name");
        if let Some(p) = read_policy(cx, &mut t, name.get_ref(), groups, target_groups) {
            policies.push(p);
        }
        t.finish(cx);
    }
    policies
}

fn read_adjustment_type(cx: &mut Cx<'_>, t: &mut Table<'_, '_>) -> AdjustmentType {
    one_of(
        cx,
        t,
        "adjustment_type",
        &[
            ("ChangeInCapacity", AdjustmentType::ChangeInCapacity),
            ("ExactCapacity", AdjustmentType::ExactCapacity),
            (
                "PercentChangeInCapacity",
                AdjustmentType::PercentChangeInCapacity,
            ),
        ],
    )
    .unwrap_or(AdjustmentType::ChangeInCapacity)
}

fn read_policy(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    name: &str,
    groups: &[GroupSpec],
    target_groups: &[TargetGroupSpec],
) -> Option<PolicySpec> {
    let path = t.path.clone();
    let group = t.require::<Spanned<String>>(cx, "group");
    if let Some(g) = &group
        && !groups.iter().any(|x| &x.name == g.get_ref())
    {
        cx.error(
            g.span(),
            format!("`{path}.group`: group `{}` does not exist", g.get_ref()),
        );
    }
    let kind = t.require::<Spanned<String>>(cx, "type")?;
    let min_mag = t_int(cx, t, "min_adjustment_magnitude", 1, 1000, false).map(i64::from);
    let warmup = duration_in(cx, t, "warmup", Duration::ZERO, Duration::from_secs(3600));
    let kind = match kind.get_ref().as_str() {
        "simple" => {
            let adjustment_type = read_adjustment_type(cx, t);
            let adjustment = t.require::<i64>(cx, "adjustment")?;
            let cooldown = duration_in(
                cx,
                t,
                "cooldown",
                Duration::ZERO,
                Duration::from_secs(86_400),
            );
            let cooldown = cooldown.or_else(|| {
                groups
                    .iter()
                    .find(|g| group.as_ref().is_some_and(|n| n.get_ref() == &g.name))
                    .map(|g| g.default_cooldown)
            });
            PolicyKind::Simple {
                adjustment_type,
                adjustment,
                cooldown,
                min_adjustment_magnitude: min_mag,
            }
        }
        "step" => {
            let adjustment_type = read_adjustment_type(cx, t);
            let mut steps = Vec::new();
            for mut st in t.table_array(cx, "steps") {
                let lower = st.get::<f64>(cx, "lower");
                let upper = st.get::<f64>(cx, "upper");
                let adjustment = st.require::<i64>(cx, "adjustment");
                st.finish(cx);
                if let Some(adjustment) = adjustment {
                    steps.push(Step {
                        lower,
                        upper,
                        adjustment,
                    });
                }
            }
            if let Err(e) = check_steps(&steps) {
                cx.error(t.span(), format!("`{path}.steps`: {e}"));
            }
            PolicyKind::Step {
                adjustment_type,
                steps,
                min_adjustment_magnitude: min_mag,
                warmup,
            }
        }
        "target_tracking" => {
            let target = read_f64(cx, t, "target", true)?;
            let disable_scale_in = read_bool(cx, t, "disable_scale_in").unwrap_or(false);
            let period = duration_in(
                cx,
                t,
                "period",
                Duration::from_secs(1),
                Duration::from_secs(3600),
            )
            .unwrap_or(Duration::from_secs(1));
            let metric = read_tracked_metric(cx, t, &path, target_groups)?;
            if target <= 0.0 {
                cx.error(t.span(), format!("`{path}.target` must be above 0"));
            }
            PolicyKind::TargetTracking {
                metric,
                target,
                disable_scale_in,
                warmup,
                period,
            }
        }
        "hpa" => {
            let metric = read_tracked_metric(cx, t, &path, target_groups)?;
            let target = read_target(cx, t, &path)?;
            let mut h = HpaSpec::new(metric, target);
            let d = |cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key, default| {
                duration_in(cx, t, key, Duration::ZERO, Duration::from_secs(3600))
                    .unwrap_or(default)
            };
            h.sync_period = d(cx, t, "sync_period", h.sync_period).max(Duration::from_secs(1));
            h.scale_down_window = d(cx, t, "scale_down_window", h.scale_down_window);
            h.scale_up_window = d(cx, t, "scale_up_window", h.scale_up_window);
            if let Some(tol) = t.get::<Spanned<f64>>(cx, "tolerance") {
                if (0.0..1.0).contains(tol.get_ref()) {
                    h.tolerance = tol.into_inner();
                } else {
                    cx.error(
                        tol.span(),
                        format!("`{path}.tolerance` must be from 0 to below 1"),
                    );
                }
            }
            PolicyKind::Hpa(h)
        }
        "kpa" => {
            let tg = read_policy_target_group(cx, t, &path, target_groups)?;
            let target = read_target(cx, t, &path)?;
            let mut k = KpaSpec::new(tg, target);
            let d = |cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key, default| {
                duration_in(
                    cx,
                    t,
                    key,
                    Duration::from_secs(1),
                    Duration::from_secs(3600),
                )
                .unwrap_or(default)
            };
            k.stable_window = d(cx, t, "stable_window", k.stable_window);
            k.panic_window = d(cx, t, "panic_window", k.panic_window);
            k.tick = d(cx, t, "tick", k.tick);
            for (key, slot, lo, hi) in [
                ("utilization", &mut k.utilization, 0.01, 1.0),
                ("panic_threshold", &mut k.panic_threshold, 1.0, 100.0),
                (
                    "max_scale_down_rate",
                    &mut k.max_scale_down_rate,
                    1.0,
                    100.0,
                ),
            ] {
                if let Some(v) = float_in(cx, t, &path, key, lo, hi) {
                    *slot = v;
                }
            }
            if k.panic_window > k.stable_window {
                cx.error(
                    t.span(),
                    format!("`{path}.panic_window` must not be longer than `stable_window`"),
                );
            }
            PolicyKind::Kpa(k)
        }
        "predictive" => {
            let tg = read_policy_target_group(cx, t, &path, target_groups)?;
            let target = read_target(cx, t, &path)?;
            let mut p = PredictiveSpec::new(tg, target);
            let d = |cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key, default| {
                duration_in(
                    cx,
                    t,
                    key,
                    Duration::from_secs(1),
                    Duration::from_secs(86_400),
                )
                .unwrap_or(default)
            };
            p.lead = d(cx, t, "lead", p.lead);
            p.tick = d(cx, t, "tick", p.tick);
            p.reactive_window = d(cx, t, "reactive_window", p.reactive_window);
            p.scale_in_window = d(cx, t, "scale_in_window", p.scale_in_window);
            if let Some(n) = int_in(cx, t, "history_days", 1, 28) {
                p.history_days = n as u32;
            }
            if let Some(v) = float_in(cx, t, &path, "burst", 0.0, 10.0) {
                p.burst = v;
            }
            if let Some(v) = float_in(cx, t, &path, "burst_target", 0.001, 1e9) {
                p.burst_target = v;
            }
            PolicyKind::Predictive(p)
        }
        other => {
            cx.error(
                kind.span(),
                format!(
                    "`{path}.type` \"{other}\" must be \"simple\", \"step\", \"target_tracking\", \"hpa\", \"kpa\" or \"predictive\""
                ),
            );
            return None;
        }
    };
    Some(PolicySpec {
        name: name.to_owned(),
        group: group?.into_inner(),
        kind,
    })
}

/// AWS's rules for step bounds: no gaps, no overlaps, at most one open at each end.
fn check_steps(steps: &[Step]) -> Result<(), String> {
    if steps.is_empty() {
        return Err("a step policy needs at least one step ([[policies.NAME.steps]])".to_owned());
    }
    let mut sorted: Vec<&Step> = steps.iter().collect();
    sorted.sort_by(|a, b| {
        a.lower
            .unwrap_or(f64::NEG_INFINITY)
            .total_cmp(&b.lower.unwrap_or(f64::NEG_INFINITY))
    });
    for s in &sorted {
        if let (Some(l), Some(u)) = (s.lower, s.upper)
            && l >= u
        {
            return Err(format!(
                "a step's lower bound {l} is not below its upper bound {u}"
            ));
        }
    }
    for w in sorted.windows(2) {
        match (w[0].upper, w[1].lower) {
            (Some(u), Some(l)) if u == l => {}
            (Some(u), Some(l)) if u < l => return Err(format!("a gap between {u} and {l}")),
            (Some(u), Some(l)) => return Err(format!("steps overlap between {l} and {u}")),
            _ => {
                return Err(
                    "only the first step may lack a lower bound and only the last an upper one"
                        .to_owned(),
                );
            }
        }
    }
    Ok(())
}

/// The metric a target tracking or HPA policy follows.
fn read_tracked_metric(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    path: &str,
    target_groups: &[TargetGroupSpec],
) -> Option<TrackedMetric> {
    Some(match t.get::<Spanned<String>>(cx, "metric") {
        Some(m) if m.get_ref() == "ASGAverageCPUUtilization" => {
            TrackedMetric::AsgAverageCpuUtilization
        }
        Some(m) if m.get_ref() == "ALBRequestCountPerTarget" => {
            TrackedMetric::AlbRequestCountPerTarget {
                target_group: read_policy_target_group(cx, t, path, target_groups)?,
            }
        }
        Some(m) if m.get_ref() == "custom" => {
            let namespace = t.require::<String>(cx, "namespace")?;
            let metric_name = t.require::<String>(cx, "metric_name")?;
            let dimensions = read_dimensions(cx, t);
            let statistic = read_statistic(cx, t);
            TrackedMetric::Custom {
                metric: SeriesKey {
                    namespace,
                    name: metric_name,
                    dimensions,
                },
                statistic,
            }
        }
        Some(m) => {
            cx.error(m.span(), format!("`{path}.metric` must be \"ASGAverageCPUUtilization\", \"ALBRequestCountPerTarget\" or \"custom\""));
            return None;
        }
        None => TrackedMetric::AsgAverageCpuUtilization,
    })
}

/// A policy's `target_group`, which must exist. Missing, it is reported and read as
/// empty so that the rest of the table is still checked.
fn read_policy_target_group(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    path: &str,
    target_groups: &[TargetGroupSpec],
) -> Option<String> {
    let Some(tg) = t.require::<Spanned<String>>(cx, "target_group") else {
        return Some(String::new());
    };
    if !target_groups.iter().any(|x| &x.name == tg.get_ref()) {
        cx.error(
            tg.span(),
            format!(
                "`{path}.target_group`: target group `{}` does not exist",
                tg.get_ref()
            ),
        );
    }
    Some(tg.into_inner())
}

/// A policy's `target`, above zero. A problem is reported and read as 1 so that the
/// rest of the table is still checked (the stack is refused anyway).
fn read_target(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, path: &str) -> Option<f64> {
    let Some(target) = t.require::<Spanned<f64>>(cx, "target") else {
        return Some(1.0);
    };
    if *target.get_ref() <= 0.0 {
        cx.error(target.span(), format!("`{path}.target` must be above 0"));
        return Some(1.0);
    }
    Some(target.into_inner())
}
