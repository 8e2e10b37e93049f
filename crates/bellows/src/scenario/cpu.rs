//! Seed 002: a CPU stress through the load balancer. The stress app burns a CPU, the
//! target tracking policy's high alarm fires, the group scales out; the stress ends,
//! the low alarm fires after its longer evaluation, the group scales back in.

use std::time::Duration;

use bellows_core::alarm::AlarmState;
use bellows_load::chart::Panel;

use super::{Check, Env, ScenarioArgs, check, write_chart};

pub fn stack(short: bool) -> String {
    let (interval, warmup, instance_type, zones) = if short {
        (
            "1s",
            "3s",
            "{ vcpu = 0.5, memory = \"256MiB\" }",
            "[\"zone-a\", \"zone-b\"]",
        )
    } else {
        (
            "5s",
            "10s",
            "\"t2.micro\"",
            "[\"zone-a\", \"zone-b\", \"zone-c\"]",
        )
    };
    format!(
        r#"
[target_groups.stress]
port = 5000
[target_groups.stress.health_check]
path = "/health"
interval = "{interval}"
timeout = "500ms"

[listeners.http]
address = "127.0.0.1:0"
default = {{ forward = "stress" }}

[groups.stress]
min = 1
max = {max}
desired = 1
zones = {zones}
target_groups = ["stress"]

[groups.stress.launch]
command = ["bellows", "app", "stress"]
instance_type = {instance_type}
stop_timeout = "2s"

# The seed's policy: keep the group's average CPU at 50%.
[policies.cpu50]
group = "stress"
type = "target_tracking"
metric = "ASGAverageCPUUtilization"
target = 50
warmup = "{warmup}"
"#,
        max = if short { 2 } else { 3 },
    )
}

pub async fn run(env: &mut Env, a: &ScenarioArgs) -> anyhow::Result<Vec<Check>> {
    let short = env.short;
    let group = env.group.clone();
    let Some(snap) = env.wait_ready(Duration::from_secs(30)).await? else {
        return Ok(vec![check(
            false,
            "the group came into service within 30 s",
        )]);
    };
    let d0 = snap.desired(&group);
    let seconds = if short { 12 } else { 60 };
    let path = a.path.clone().unwrap_or_else(|| "/".to_owned());
    let url = env.url(&path);
    // Two workers in the short run: on a busy machine one spinning thread may get too
    // little CPU to stay above the target for the alarm's three datapoints.
    let workers = if short { 2 } else { 1 };
    let body = format!(r#"{{"seconds": {seconds}, "workers": {workers}}}"#);
    env.say(format!(
        "POST {path} {body} through the load balancer: one instance burns CPU for {seconds}s"
    ));
    let status = bellows_node::http::Http::new()
        .exchange(
            "POST",
            &url,
            &[("content-type", "application/json")],
            body,
            Duration::from_secs(10),
        )
        .await
        .map(|a| a.status)
        .ok();
    let stress_at = env.t();
    env.say(format!(
        "the stress app answered {}",
        status.map_or("nothing".to_owned(), |s| s.to_string())
    ));
    let cpu_line = |e: &Env, s: &super::Snapshot| {
        let cpus: Vec<String> = s
            .instances
            .iter()
            .filter(|i| i.group == e.group)
            .map(|i| {
                format!(
                    "{} {}",
                    i.id,
                    i.cpu_percent.map_or("-".to_owned(), |c| format!("{c:.0}%"))
                )
            })
            .collect();
        format!("cpu: {}", cpus.join(", "))
    };
    // Scale out: the high alarm, a launch, the new instance in service.
    let mut last_cpu = 0.0;
    let bound_out = Duration::from_secs(if short { 50 } else { 180 });
    let mut out = None;
    let end = crate::clock::now() + bound_out;
    while crate::clock::now() < end {
        let s = env.poll().await?;
        if env.t() - last_cpu >= 2.0 {
            env.say(cpu_line(env, &s));
            last_cpu = env.t();
        }
        if s.desired(&group) > d0 && s.in_service(&group) >= s.desired(&group) {
            out = Some((env.t(), s.desired(&group)));
            break;
        }
        crate::clock::sleep(Duration::from_millis(500)).await;
    }
    let alarm_fired = |s: &super::Snapshot, high: bool| {
        s.alarms.iter().any(|al| {
            al.name
                .contains(if high { "AlarmHigh" } else { "AlarmLow" })
                && al.history.iter().any(|h| h.to == AlarmState::Alarm)
        })
    };
    let s = env.poll().await?;
    let high = alarm_fired(&s, true);
    let stress_end = stress_at + seconds as f64;
    if out.is_some() {
        env.say(format!(
            "scaled out; the stress ends at about t+{stress_end:.0}s, then the low alarm needs its longer run of low datapoints"
        ));
    }
    // Scale in: back to where it started.
    let bound_in = Duration::from_secs(if short { 60 } else { 600 });
    let end = crate::clock::now() + bound_in;
    let mut back = None;
    while out.is_some() && crate::clock::now() < end {
        let s = env.poll().await?;
        if env.t() - last_cpu >= 2.0 {
            env.say(cpu_line(env, &s));
            last_cpu = env.t();
        }
        let live = s.instances.iter().filter(|i| i.group == group).count() as u32;
        if s.desired(&group) == d0 && live == d0 {
            back = Some(env.t());
            break;
        }
        crate::clock::sleep(Duration::from_millis(500)).await;
    }
    let s = env.poll().await?;
    let low = alarm_fired(&s, false);
    let acts: Vec<bellows_core::group::Activity> =
        env.client.get("/api/v1/activities?limit=200").await?;
    let term_cause = acts
        .iter()
        .find(|a| a.kind == bellows_core::group::ActivityKind::Terminate)
        .map(|a| a.cause.clone());
    let (desired, in_service) = env.capacity_series();
    write_chart(
        a.chart.as_deref(),
        "cpu: stress, scale out, scale in",
        &[Panel {
            title: format!("group {group}: capacity"),
            series: vec![desired, in_service],
            x_axis: None,
        }],
    )?;
    Ok(vec![
        check(
            status == Some(202) || status == Some(200),
            format!(
                "the stress started (answer {})",
                status.map_or("none".to_owned(), |s| s.to_string())
            ),
        ),
        check(high, "the CPU high alarm fired"),
        check(
            out.is_some(),
            match out {
                Some((t, d)) => format!(
                    "scaled out: desired {d0} -> {d}, all in service at t+{t:.1}s ({:.1}s after the stress began)",
                    t - stress_at
                ),
                None => format!("scaled out within {}s", bound_out.as_secs()),
            },
        ),
        check(low, "the CPU low alarm fired after the stress"),
        check(
            back.is_some(),
            match back {
                Some(t) if t >= stress_end => format!(
                    "scaled in to {d0} at t+{t:.1}s ({:.1}s after the stress ended)",
                    t - stress_end
                ),
                // The group's average fell below the low target while one instance was
                // still busy (the others idle), and scale-in picked that instance.
                Some(t) => format!(
                    "scaled in to {d0} at t+{t:.1}s, {:.1}s before the stress's planned end: the group's average fell below the low threshold and scale-in terminated the busy instance",
                    stress_end - t
                ),
                None => format!("scaled in to {d0} within {}s", bound_in.as_secs()),
            },
        ),
        check(
            term_cause.is_some(),
            format!(
                "the scale-in is an activity with its cause: {}",
                term_cause.unwrap_or_else(|| "none".into())
            ),
        ),
    ])
}
