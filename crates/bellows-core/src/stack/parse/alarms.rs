//! `[alarms.NAME]`: CloudWatch-style alarms on a metric, with the policies and webhooks
//! they act on.

use toml::Spanned;

use super::values::{
    check_alarm_name, duration_in, in_range, one_of, read_dimensions, read_f64, read_statistic,
    t_int,
};
use crate::Duration;
use crate::alarm::{AlarmSpec, Comparison, MissingData};
use crate::metrics::SeriesKey;
use crate::policy::PolicySpec;
use crate::stack::WebhookSpec;
use crate::stack::reader::{Cx, Table};

pub(super) fn read_all(
    cx: &mut Cx<'_>,
    root: &mut Table<'_, '_>,
    policies: &[PolicySpec],
    webhooks: &[WebhookSpec],
) -> Vec<AlarmSpec> {
    let mut alarms = Vec::new();
    for (name, mut t) in root.named_tables(cx, "alarms") {
        check_alarm_name(cx, &name);
        if let Some(a) = read_alarm(cx, &mut t, name.get_ref(), policies, webhooks) {
            alarms.push(a);
        }
        t.finish(cx);
    }
    alarms
}

fn read_alarm(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    name: &str,
    policies: &[PolicySpec],
    webhooks: &[WebhookSpec],
) -> Option<AlarmSpec> {
    let path = t.path.clone();
    let namespace = t
        .get::<String>(cx, "namespace")
        .unwrap_or_else(|| crate::metrics::catalogue::EC2.to_owned());
    let metric = t.require::<String>(cx, "metric");
    let dimensions = read_dimensions(cx, t);
    let statistic = read_statistic(cx, t);
    let period = duration_in(
        cx,
        t,
        "period",
        Duration::from_secs(1),
        Duration::from_secs(86_400),
    )
    .unwrap_or(Duration::from_secs(60));
    let n = t_int(cx, t, "evaluation_periods", 1, 100, true);
    let m_v = t.get::<Spanned<i64>>(cx, "datapoints_to_alarm");
    let comparison = match t.require::<Spanned<String>>(cx, "comparison") {
        Some(c) => Comparison::parse(c.get_ref()).or_else(|| {
            cx.error(
                c.span(),
                format!(
                    "`{path}.comparison` \"{}\" must be >, >=, <, <= or CloudWatch's name",
                    c.get_ref()
                ),
            );
            None
        }),
        None => None,
    };
    let threshold = read_f64(cx, t, "threshold", true);
    let treat = one_of(
        cx,
        t,
        "treat_missing_data",
        &[
            ("missing", MissingData::Missing),
            ("notBreaching", MissingData::NotBreaching),
            ("breaching", MissingData::Breaching),
            ("ignore", MissingData::Ignore),
        ],
    )
    .unwrap_or(MissingData::Missing);
    let actions = |cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key: &'static str| -> Vec<String> {
        let list = t.strings(cx, key);
        for a in &list {
            let ok = match a.get_ref().strip_prefix("webhook:") {
                Some(w) => webhooks.iter().any(|x| x.name == w),
                None => policies.iter().any(|p| &p.name == a.get_ref()),
            };
            if !ok {
                cx.error(a.span(), format!("`{path}.{key}`: `{}` is neither a policy nor webhook:NAME of a defined webhook", a.get_ref()));
            }
        }
        list.into_iter().map(Spanned::into_inner).collect()
    };
    let alarm_actions = actions(cx, t, "alarm_actions");
    let ok_actions = actions(cx, t, "ok_actions");
    let insufficient_data_actions = actions(cx, t, "insufficient_data_actions");
    let description = t.get::<String>(cx, "description");
    let n = n?;
    let m = match m_v {
        Some(v) => in_range(
            cx,
            &v,
            &format!("{path}.datapoints_to_alarm"),
            1,
            i64::from(n),
        )? as u32,
        None => n,
    };
    Some(AlarmSpec {
        name: name.to_owned(),
        metric: SeriesKey {
            namespace,
            name: metric?,
            dimensions,
        },
        statistic,
        period,
        evaluation_periods: n,
        datapoints_to_alarm: m,
        comparison: comparison?,
        threshold: threshold?,
        treat_missing_data: treat,
        alarm_actions,
        ok_actions,
        insufficient_data_actions,
        description,
        datapoints_given: true,
    })
}
