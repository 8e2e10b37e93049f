use super::*;

fn run(src: &str) -> (Export, String) {
    let stack = bellows_core::stack::parse(src).expect("a valid stack");
    let e = export(&stack, src);
    let tf = e.files[0].1.clone();
    (e, tf)
}

fn warnings(e: &Export) -> String {
    e.warnings
        .iter()
        .map(|w| w.render("s.toml"))
        .collect::<Vec<_>>()
        .join("\n")
}

const TRACKER: &str = include_str!("../../../../examples/ip-tracker.toml");
const FLASK: &str = include_str!("../../../../examples/flask-asg.toml");
const HPA_FILE: &str = include_str!("../../../../examples/sim/hpa.toml");

/// The simulator's example registers port 8000 and launches on 5000 (it never runs).
fn hpa() -> String {
    HPA_FILE.replace("port = 8000", "port = 5000")
}

#[test]
fn the_ip_tracker_maps_one_to_one() {
    let (e, tf) = run(TRACKER);
    for needle in [
        "resource \"aws_lb\" \"main\" {",
        "resource \"aws_lb_listener_rule\" \"http_10\" {",
        "values = [\"/app-x7k9m2n8/*\"]",
        "type = \"fixed-response\"",
        "load_balancing_algorithm_type = \"least_outstanding_requests\"",
        "cookie_duration = 86400",
        "ignore_changes = [desired_capacity]",
        "alarm_actions             = [aws_autoscaling_policy.add-two.arn]",
        "TargetGroup = aws_lb_target_group.tracker.arn_suffix",
        "LoadBalancer = aws_lb.main.arn_suffix",
        "cidr_ipv6         = \"::/0\"",
        "user_data              = base64encode(\"#!/bin/sh\\nset -e\\nexport BASE_PATH='/app-x7k9m2n8/'\\n",
    ] {
        assert!(tf.contains(needle), "{needle} in\n{tf}");
    }
    // The 10 s alarm period is allowed as it is.
    assert!(tf.contains("period                    = 10\n"), "{tf}");
    assert!(warnings(&e).is_empty(), "{}", warnings(&e));
}

#[test]
fn values_outside_aws_ranges_are_clamped_and_warned_at_their_place() {
    let src = FLASK
        .replace(
            "path = \"/gtg\"",
            "path = \"/gtg\"\ninterval = \"2s\"\ntimeout = \"1s\"",
        )
        .replace(
            "port = 5000\n",
            "port = 5000\nslow_start = \"10s\"\nmax_connections = 5\n",
        )
        .replace(
            "period = \"30s\"\nevaluation_periods = 2",
            "period = \"45s\"\nevaluation_periods = 2",
        )
        .replace(
            "[target_groups.candidates]",
            "[target_groups.candidates-with-a-name-far-too-long]",
        )
        .replace(
            "[target_groups.candidates.health_check]",
            "[target_groups.candidates-with-a-name-far-too-long.health_check]",
        )
        .replace(
            "forward = \"candidates\"",
            "forward = \"candidates-with-a-name-far-too-long\"",
        )
        .replace(
            "target_groups = [\"candidates\"]",
            "target_groups = [\"candidates-with-a-name-far-too-long\"]",
        );
    let (e, tf) = run(&src);
    let w = warnings(&e);
    let line = |needle: &str| src.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    for (at, msg) in [
        (
            line("interval = \"2s\""),
            "health check interval 2s becomes 5s (AWS allows 5-300 s)",
        ),
        (
            line("timeout = \"1s\""),
            "health check timeout 1s becomes 2s",
        ),
        (
            line("slow_start"),
            "slow_start 10s becomes 30s (AWS allows 0 or 30-900 s)",
        ),
        (line("max_connections"), "max_connections = 5 and its queue"),
        (line("period = \"45s\""), "period 45s becomes 30s"),
    ] {
        assert!(
            w.contains(&format!("s.toml:{at}:1: warning: ")) && w.contains(msg),
            "{at}: {msg} in\n{w}"
        );
    }
    assert!(
        w.contains(
            "target group `candidates-with-a-name-far-too-long` is named `candidates-with-a-name-"
        ),
        "{w}"
    );
    assert!(tf.contains("interval            = 5\n"), "{tf}");
    assert!(tf.contains("slow_start                    = 30\n"), "{tf}");
}

#[test]
fn policies_aws_has_not_are_named() {
    let (e, tf) = run(&hpa());
    assert!(
        warnings(&e).contains("policy `hpa`: Kubernetes' HPA"),
        "{}",
        warnings(&e)
    );
    assert!(!tf.contains("aws_autoscaling_policy"), "{tf}");
    // A policy, even one not exported, still owns the desired capacity.
    assert!(tf.contains("ignore_changes = [desired_capacity]"), "{tf}");
}

#[test]
fn request_count_targets_are_per_minute() {
    let src = hpa().replace(
        "type = \"hpa\"\nmetric = \"ASGAverageCPUUtilization\"\ntarget = 50",
        "type = \"target_tracking\"\nmetric = \"ALBRequestCountPerTarget\"\ntarget_group = \"web\"\ntarget = 5",
    );
    let (e, tf) = run(&src);
    assert!(tf.contains("target_value     = 300"), "{tf}");
    assert!(tf.contains("resource_label         = \"${aws_lb.main.arn_suffix}/${aws_lb_target_group.web.arn_suffix}\""), "{tf}");
    assert!(
        warnings(&e).contains("5 requests per target per 1s becomes 300 per minute"),
        "{}",
        warnings(&e)
    );
}
