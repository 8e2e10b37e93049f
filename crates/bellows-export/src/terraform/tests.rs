use super::*;

fn run(src: &str) -> (Export, String) {
    let stack = bellows_core::stack::parse(src).expect("a valid stack");
    let e = export(&stack, src, &Options::default());
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

/// The simulator's HPA example (its target group and launch both on port 8000).
fn hpa() -> String {
    HPA_FILE.to_owned()
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

#[test]
fn the_listener_and_its_ingress_are_on_the_aws_port() {
    // The example listens on 127.0.0.1:8080 with `aws_port = 80`.
    assert!(TRACKER.contains("aws_port = 80"));
    let (_, tf) = run(TRACKER);
    let listener = &tf[tf.find("resource \"aws_lb_listener\" ").unwrap()..];
    assert!(listener.contains("port              = 80\n"), "{listener}");
    let ingress = &tf[tf
        .find("resource \"aws_vpc_security_group_ingress_rule\"")
        .unwrap()..];
    assert!(ingress.contains("from_port         = 80\n"), "{ingress}");
    assert!(!tf.contains("= 8080"), "{tf}");
}

#[test]
fn create_network_writes_a_vpc_and_a_subnet_per_zone_instead_of_variables() {
    let stack = bellows_core::stack::parse(TRACKER).unwrap();
    let e = export(
        &stack,
        TRACKER,
        &Options {
            create_network: true,
        },
    );
    let tf = &e.files[0].1;
    assert!(!tf.contains("variable \"vpc_id\""), "{tf}");
    assert!(
        !tf.contains("var.subnet_ids") && !tf.contains("var.vpc_id"),
        "{tf}"
    );
    for needle in [
        "resource \"aws_vpc\" \"main\" {",
        "resource \"aws_internet_gateway\" \"main\" {",
        "gateway_id = aws_internet_gateway.main.id",
        "availability_zone = \"${var.region}a\"",
        "availability_zone = \"${var.region}b\"",
        "vpc_zone_identifier       = [aws_subnet.zone-a.id, aws_subnet.zone-b.id]",
        "subnets            = [aws_subnet.zone-a.id, aws_subnet.zone-b.id]",
    ] {
        assert!(tf.contains(needle), "{needle} in\n{tf}");
    }
    // An AWS zone name stays as it is.
    assert_eq!(
        availability_zone("eu-west-3c", 0),
        Expr::Str("eu-west-3c".into())
    );
    assert_eq!(availability_zone("zone-c", 2), raw("\"${var.region}c\""));
}
