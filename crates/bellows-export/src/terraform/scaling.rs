//! Each group as an `aws_launch_template` and an `aws_autoscaling_group`, its policies
//! and scheduled actions, and the CloudWatch alarms that drive them.

use super::*;

/// The user data: bellows' instance environment, the setup script, then the command.
pub(super) fn user_data(g: &GroupSpec) -> String {
    let sh = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut out = String::from("#!/bin/sh\nset -e\n");
    for (k, v) in &g.launch.env {
        out.push_str(&format!("export {k}={}\n", sh(v)));
    }
    out.push_str(&format!(
        "export PORT={}\nexport GROUP={}\n",
        g.launch.port,
        sh(&g.name)
    ));
    // What bellows gives its instances, from what EC2 has; where bellows (or another
    // launcher) already set them, they stay (bellows' own AWS endpoint runs this too).
    out.push_str("export PRIVATE_IP=\"${PRIVATE_IP:-0.0.0.0}\"\n");
    out.push_str(
        "export INSTANCE_ID=\"${INSTANCE_ID:-$(cat /var/lib/cloud/data/instance-id 2>/dev/null || hostname)}\"\n",
    );
    out.push_str(
        "export BELLOWS_DATA_DIR=\"${BELLOWS_DATA_DIR:-/var/lib/bellows}\"\nmkdir -p \"$BELLOWS_DATA_DIR\"\n",
    );
    if let Some(setup) = &g.launch.setup {
        out.push_str(setup);
        if !setup.ends_with('\n') {
            out.push('\n');
        }
    }
    let cmd: Vec<String> = g.launch.command.iter().map(|a| sh(a)).collect();
    out.push_str(&format!("exec {}\n", cmd.join(" ")));
    out
}

pub(super) fn group_at<'a>(g: &'a GroupSpec, keys: &[&'a str]) -> Vec<Seg<'a>> {
    let mut v = vec![Seg::Key("groups"), Seg::Key(&g.name)];
    v.extend(keys.iter().map(|k| Seg::Key(k)));
    v
}

/// The group's instance role as EC2 has it: a role that EC2 may assume, what it allows
/// as an inline policy, and the instance profile the launch template names.
fn role(cx: &mut Cx<'_, '_>, g: &GroupSpec, id: &str) {
    let actions: Vec<String> = g.role.allow.iter().map(|a| crate::hcl::quote(a)).collect();
    cx.blocks.push(
        Block::new("resource", &["aws_iam_role", id])
            .attr("name", g.role.name.as_str())
            .attr(
                "assume_role_policy",
                raw(r#"jsonencode({ Version = "2012-10-17", Statement = [{ Effect = "Allow", Principal = { Service = "ec2.amazonaws.com" }, Action = "sts:AssumeRole" }] })"#),
            ),
    );
    cx.blocks.push(
        Block::new("resource", &["aws_iam_role_policy", id])
            .attr("name", "allow")
            .attr("role", raw(format!("aws_iam_role.{id}.id")))
            .attr(
                "policy",
                raw(format!(
                    r#"jsonencode({{ Version = "2012-10-17", Statement = [{{ Effect = "Allow", Action = [{}], Resource = "*" }}] }})"#,
                    actions.join(", ")
                )),
            ),
    );
    cx.blocks.push(
        Block::new("resource", &["aws_iam_instance_profile", id])
            .attr("name", g.role.name.as_str())
            .attr("role", raw(format!("aws_iam_role.{id}.name"))),
    );
}

pub(super) fn group(cx: &mut Cx<'_, '_>, g: &GroupSpec) {
    let id = ident(&g.name);
    let it = &g.launch.instance_type;
    let instance_type = if it.name == "custom" {
        cx.w.warn(&group_at(g, &["launch", "instance_type"]), format!("group `{}`: a custom instance type ({} vCPU, {} MiB) becomes t3.micro; choose an EC2 type", g.name, number(it.vcpu), it.memory_mib));
        "t3.micro".to_owned()
    } else {
        it.name.clone()
    };
    if g.launch.boot_delay.as_millis() > 0 {
        cx.w.warn(
            &group_at(g, &["launch", "boot_delay"]),
            format!(
                "group `{}`: boot_delay imitates a virtual machine's boot; EC2 boots for real",
                g.name
            ),
        );
    }
    if cx.w.at.has(&group_at(g, &["launch", "stop_timeout"])) {
        cx.w.warn(&group_at(g, &["launch", "stop_timeout"]), format!("group `{}`: stop_timeout has no launch template setting (a lifecycle hook on termination is the counterpart)", g.name));
    }
    if g.wakes_from_zero() {
        cx.w.warn(&group_at(g, &["min"]), format!("group `{}`: scale from zero (a request held while an instance starts) has no ALB counterpart", g.name));
    }
    cx.blocks.push(
        Block::new("resource", &["aws_launch_template", &id])
            .attr(
                "name_prefix",
                format!("{}-", crate::names::shorten(&g.name, 100, false)),
            )
            .attr("image_id", raw("var.image_id"))
            .attr("instance_type", instance_type)
            .attr(
                "vpc_security_group_ids",
                Expr::List(vec![raw("aws_security_group.instances.id")]),
            )
            .attr(
                "user_data",
                raw(format!(
                    "base64encode({})",
                    crate::hcl::quote(&user_data(g))
                )),
            )
            .block(
                Block::new("iam_instance_profile", &[])
                    .attr("name", raw(format!("aws_iam_instance_profile.{id}.name"))),
            ),
    );
    role(cx, g, &id);
    let scaled = cx.stack.policies.iter().any(|p| p.group == g.name)
        || cx.stack.scheduled.iter().any(|s| s.group == g.name);
    let tgs: Vec<Expr> = g.target_groups.iter().map(|t| tg_arn(t)).collect();
    let mut b = Block::new("resource", &["aws_autoscaling_group", &id])
        .attr("name", g.name.as_str())
        .attr("min_size", g.min)
        .attr("max_size", g.max)
        .attr("desired_capacity", g.desired)
        .attr("vpc_zone_identifier", raw(cx.subnets.as_str()))
        .attr(
            "health_check_type",
            match g.health_check_type {
                HealthCheckType::Ec2 => "EC2",
                HealthCheckType::Elb => "ELB",
            },
        )
        .attr(
            "health_check_grace_period",
            secs(g.health_check_grace_period),
        )
        .attr("default_cooldown", secs(g.default_cooldown))
        .opt(
            "default_instance_warmup",
            g.default_instance_warmup.map(secs),
        )
        .attr("target_group_arns", Expr::List(tgs));
    match g.termination_policy {
        TerminationPolicy::Default => {}
        TerminationPolicy::OldestInstance => {
            b = b.attr(
                "termination_policies",
                Expr::List(vec!["OldestInstance".into()]),
            )
        }
        TerminationPolicy::NewestInstance => {
            b = b.attr(
                "termination_policies",
                Expr::List(vec!["NewestInstance".into()]),
            )
        }
    }
    b = b.block(
        Block::new("launch_template", &[])
            .attr("id", raw(format!("aws_launch_template.{id}.id")))
            .attr(
                "version",
                raw(format!("aws_launch_template.{id}.latest_version")),
            ),
    );
    if scaled {
        // The policies own the desired capacity: an apply must not reset it.
        b = b.block(
            Block::new("lifecycle", &[])
                .attr("ignore_changes", Expr::List(vec![raw("desired_capacity")])),
        );
    }
    cx.blocks.push(b);
    // A stack file's actions recur: one-time actions come only from the AWS endpoint's
    // records, which are not exported.
    let recurring = cx
        .stack
        .scheduled
        .iter()
        .filter(|s| s.group == g.name)
        .filter_map(|s| Some((s, s.cron.as_ref()?)));
    for (s, cron) in recurring {
        let time_zone = match cron.zone() {
            Zone::Named(n) => n.clone(),
            Zone::Fixed(0) => "Etc/UTC".to_owned(),
            Zone::Fixed(m) if m % 60 == 0 => {
                // Etc/GMT's sign is inverted: Etc/GMT-2 is two hours east of UTC.
                let h = -m / 60;
                format!("Etc/GMT{}{h}", if h > 0 { "+" } else { "" })
            }
            Zone::Fixed(m) => {
                cx.w.warn(&group_at(g, &["scheduled"]), format!("scheduled action `{}`: a fixed offset of {m} minutes has no IANA zone; UTC is used", s.name));
                "Etc/UTC".to_owned()
            }
        };
        cx.blocks.push(
            Block::new(
                "resource",
                &[
                    "aws_autoscaling_schedule",
                    &format!("{id}_{}", ident(&s.name)),
                ],
            )
            .attr("scheduled_action_name", s.name.as_str())
            .attr(
                "autoscaling_group_name",
                raw(format!("aws_autoscaling_group.{id}.name")),
            )
            .attr(
                "recurrence",
                cron.to_string()
                    .split_whitespace()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join(" "),
            )
            .attr("time_zone", time_zone)
            .opt("min_size", s.min)
            .opt("max_size", s.max)
            .opt("desired_capacity", s.desired),
        );
    }
}

pub(super) fn adjustment_type(t: AdjustmentType) -> &'static str {
    match t {
        AdjustmentType::ChangeInCapacity => "ChangeInCapacity",
        AdjustmentType::ExactCapacity => "ExactCapacity",
        AdjustmentType::PercentChangeInCapacity => "PercentChangeInCapacity",
    }
}

pub(super) fn policy_at<'a>(p: &'a PolicySpec, key: &'a str) -> Vec<Seg<'a>> {
    vec![Seg::Key("policies"), Seg::Key(&p.name), Seg::Key(key)]
}

pub(super) fn statistic(s: &Statistic) -> (&'static str, String) {
    match s {
        Statistic::SampleCount => ("statistic", "SampleCount".into()),
        Statistic::Average => ("statistic", "Average".into()),
        Statistic::Sum => ("statistic", "Sum".into()),
        Statistic::Minimum => ("statistic", "Minimum".into()),
        Statistic::Maximum => ("statistic", "Maximum".into()),
        Statistic::Percentile(p) => ("extended_statistic", format!("p{}", number(*p))),
    }
}

pub(super) fn policy(cx: &mut Cx<'_, '_>, p: &PolicySpec) {
    let group = format!("aws_autoscaling_group.{}.name", ident(&p.group));
    let mut b = Block::new("resource", &["aws_autoscaling_policy", &ident(&p.name)])
        .attr("name", p.name.as_str())
        .attr("autoscaling_group_name", raw(group));
    match &p.kind {
        PolicyKind::Simple {
            adjustment_type: t,
            adjustment,
            cooldown,
            min_adjustment_magnitude,
        } => {
            b = b
                .attr("policy_type", "SimpleScaling")
                .attr("adjustment_type", adjustment_type(*t))
                .attr("scaling_adjustment", *adjustment)
                .opt("cooldown", cooldown.map(secs));
            if *t == AdjustmentType::PercentChangeInCapacity {
                b = b.opt("min_adjustment_magnitude", *min_adjustment_magnitude);
            }
        }
        PolicyKind::Step {
            adjustment_type: t,
            steps,
            min_adjustment_magnitude,
            warmup,
        } => {
            b = b
                .attr("policy_type", "StepScaling")
                .attr("adjustment_type", adjustment_type(*t))
                .attr("metric_aggregation_type", "Average")
                .opt("estimated_instance_warmup", warmup.map(secs));
            if *t == AdjustmentType::PercentChangeInCapacity {
                b = b.opt("min_adjustment_magnitude", *min_adjustment_magnitude);
            }
            for s in steps {
                b = b.block(
                    Block::new("step_adjustment", &[])
                        .opt("metric_interval_lower_bound", s.lower.map(number))
                        .opt("metric_interval_upper_bound", s.upper.map(number))
                        .attr("scaling_adjustment", s.adjustment),
                );
            }
        }
        PolicyKind::TargetTracking {
            metric,
            target,
            disable_scale_in,
            warmup,
            period,
        } => {
            let mut tt = Block::new("target_tracking_configuration", &[]);
            let mut target = *target;
            match metric {
                TrackedMetric::AsgAverageCpuUtilization => {
                    tt = tt.block(
                        Block::new("predefined_metric_specification", &[])
                            .attr("predefined_metric_type", "ASGAverageCPUUtilization"),
                    );
                }
                TrackedMetric::AlbRequestCountPerTarget { target_group } => {
                    let per_minute = target * 60.0 / period.as_secs_f64().max(1.0);
                    if secs(*period) != 60 {
                        cx.w.warn(&policy_at(p, "target"), format!("policy `{}`: {} requests per target per {} becomes {} per minute (AWS counts ALBRequestCountPerTarget per minute)", p.name, number(target), period, number((per_minute * 100.0).round() / 100.0)));
                    }
                    target = (per_minute * 100.0).round() / 100.0;
                    tt = tt.block(
                        Block::new("predefined_metric_specification", &[])
                            .attr("predefined_metric_type", "ALBRequestCountPerTarget")
                            .attr("resource_label", raw(format!("\"${{aws_lb.main.arn_suffix}}/${{aws_lb_target_group.{}.arn_suffix}}\"", ident(target_group)))),
                    );
                }
                TrackedMetric::Custom {
                    metric,
                    statistic: st,
                } => {
                    let (key, value) = statistic(st);
                    if key == "extended_statistic" {
                        cx.w.warn(
                            &policy_at(p, "statistic"),
                            format!(
                                "policy `{}`: target tracking on a percentile becomes Average",
                                p.name
                            ),
                        );
                    }
                    let mut c = Block::new("customized_metric_specification", &[])
                        .attr("metric_name", metric.name.as_str())
                        .attr("namespace", metric.namespace.as_str())
                        .attr(
                            "statistic",
                            if key == "statistic" {
                                value
                            } else {
                                "Average".to_owned()
                            },
                        );
                    for (k, v) in &metric.dimensions {
                        c = c.block(
                            Block::new("metric_dimension", &[])
                                .attr("name", k.as_str())
                                .attr("value", dimension(k, v)),
                        );
                    }
                    tt = tt.block(c);
                }
            }
            tt = tt
                .attr("target_value", target)
                .attr("disable_scale_in", *disable_scale_in);
            b = b
                .attr("policy_type", "TargetTrackingScaling")
                .opt("estimated_instance_warmup", warmup.map(secs))
                .block(tt);
        }
        PolicyKind::Hpa(_) | PolicyKind::Kpa(_) | PolicyKind::Predictive(_) => {
            let what = match &p.kind {
                PolicyKind::Hpa(_) => "Kubernetes' HPA (`bellows export kubernetes` carries it)",
                PolicyKind::Kpa(_) => "Knative's KPA (`bellows export kubernetes` carries it)",
                _ => "bellows' predictive policy (AWS's predictive scaling forecasts differently)",
            };
            cx.w.warn(
                &policy_at(p, "type"),
                format!(
                    "policy `{}`: {what} has no EC2 Auto Scaling equivalent and is not exported",
                    p.name
                ),
            );
            return;
        }
    }
    cx.blocks.push(b);
}

/// A dimension value: the stack's own objects by reference, others as written.
pub(super) fn dimension(key: &str, value: &str) -> Expr {
    match key {
        "AutoScalingGroupName" => raw(format!("aws_autoscaling_group.{}.name", ident(value))),
        "TargetGroup" => raw(format!("aws_lb_target_group.{}.arn_suffix", ident(value))),
        "LoadBalancer" => raw("aws_lb.main.arn_suffix"),
        _ => value.into(),
    }
}

pub(super) fn alarm(cx: &mut Cx<'_, '_>, a: &AlarmSpec) {
    let at = |k: &'static str| -> Vec<Seg<'_>> {
        vec![Seg::Key("alarms"), Seg::Key(&a.name), Seg::Key(k)]
    };
    let p = secs(a.period).max(1);
    let period = match p {
        10 | 20 | 30 => p,
        p if p < 10 => 10,
        p if p < 15 => 10,
        p if p < 25 => 20,
        p if p < 60 => {
            if p <= 45 {
                30
            } else {
                60
            }
        }
        p => p.div_ceil(60) * 60,
    };
    let mut threshold = a.threshold;
    if period != p || !a.period.as_millis().is_multiple_of(1000) {
        let summed = matches!(a.statistic, Statistic::Sum | Statistic::SampleCount);
        if summed {
            threshold = a.threshold * period as f64 / p as f64;
        }
        cx.w.warn(&at("period"), format!("alarm `{}`: period {} becomes {period}s (CloudWatch allows 10, 20, 30 s or a multiple of 60){}", a.name, a.period, if summed { format!(", and its threshold on a sum {} becomes {}", number(a.threshold), number(threshold)) } else { String::new() }));
    }
    let mut evaluations = a.evaluation_periods;
    if u64::from(evaluations) * period > 86_400 {
        evaluations = (86_400 / period) as u32;
        cx.w.warn(
            &at("evaluation_periods"),
            format!(
                "alarm `{}`: {} periods of {period}s exceed a day; {evaluations} are evaluated",
                a.name, a.evaluation_periods
            ),
        );
    }
    let comparison = match a.comparison {
        Comparison::GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
        Comparison::GreaterThanThreshold => "GreaterThanThreshold",
        Comparison::LessThanThreshold => "LessThanThreshold",
        Comparison::LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold",
    };
    let missing = match a.treat_missing_data {
        MissingData::Missing => "missing",
        MissingData::NotBreaching => "notBreaching",
        MissingData::Breaching => "breaching",
        MissingData::Ignore => "ignore",
    };
    let mut actions = |list: &[String], key: &'static str| -> Expr {
        let mut v = Vec::new();
        for x in list {
            if let Some(hook) = x.strip_prefix("webhook:") {
                cx.w.warn(&at(key), format!("alarm `{}`: the action webhook:{hook} is not exported (an SNS topic is its counterpart)", a.name));
            } else if let Some(pol) = cx.stack.policies.iter().find(|p| &p.name == x)
                && matches!(
                    pol.kind,
                    PolicyKind::Simple { .. } | PolicyKind::Step { .. }
                )
            {
                v.push(raw(format!("aws_autoscaling_policy.{}.arn", ident(x))));
            }
        }
        Expr::List(v)
    };
    let alarm_actions = actions(&a.alarm_actions, "alarm_actions");
    let ok_actions = actions(&a.ok_actions, "ok_actions");
    let insufficient = actions(&a.insufficient_data_actions, "insufficient_data_actions");
    let (stat_key, stat) = statistic(&a.statistic);
    let dims: Vec<(String, Expr)> = a
        .metric
        .dimensions
        .iter()
        .map(|(k, v)| (k.clone(), dimension(k, v)))
        .collect();
    let mut b = Block::new(
        "resource",
        &["aws_cloudwatch_metric_alarm", &ident(&a.name)],
    )
    .attr("alarm_name", a.name.as_str())
    .opt("alarm_description", a.description.as_deref())
    .attr("namespace", a.metric.namespace.as_str())
    .attr("metric_name", a.metric.name.as_str())
    .attr(stat_key, stat)
    .attr("period", period)
    .attr("evaluation_periods", evaluations)
    .attr(
        "datapoints_to_alarm",
        a.datapoints_to_alarm.min(evaluations),
    )
    .attr("comparison_operator", comparison)
    .attr("threshold", threshold)
    .attr("treat_missing_data", missing)
    .attr("alarm_actions", alarm_actions)
    .attr("ok_actions", ok_actions)
    .attr("insufficient_data_actions", insufficient);
    if !dims.is_empty() {
        b = b.attr("dimensions", Expr::Map(dims));
    }
    cx.blocks.push(b);
}
