use super::*;
use bellows_core::scaling::PolicyKind;
use bellows_core::stack::Stack;

/// What `bellows up` builds of a stack, to compare after a round trip.
fn topology(s: &Stack) -> Vec<String> {
    let mut t = Vec::new();
    for g in &s.groups {
        t.push(format!(
            "group {} {}..{} desired {} {:?} grace {} tgs {:?} command {:?} env {:?} port {} type {}",
            g.name, g.min, g.max, g.desired, g.health_check_type, g.health_check_grace_period,
            g.target_groups, g.launch.command, g.launch.env, g.launch.port, g.launch.instance_type.name
        ));
    }
    for tg in &s.target_groups {
        t.push(format!(
            "target group {} port {} {:?} {:?} {:?} dereg {}",
            tg.name, tg.port, tg.health_check, tg.algorithm, tg.stickiness, tg.deregistration_delay
        ));
    }
    for l in &s.listeners {
        t.push(format!(
            "listener {} port {} ingress {:?} rules {:?} default {:?}",
            l.name,
            l.public_port(),
            l.ingress
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            l.rules,
            l.default_action
        ));
    }
    for p in &s.policies {
        if !p.kind.is_periodic() {
            let kind = match &p.kind {
                PolicyKind::TargetTracking {
                    metric,
                    target,
                    disable_scale_in,
                    ..
                } => format!("tracking {metric:?} {target} {disable_scale_in}"),
                other => format!("{other:?}"),
            };
            t.push(format!("policy {} of {}: {kind}", p.name, p.group));
        }
    }
    for a in &s.alarms {
        let actions: Vec<&String> = a
            .alarm_actions
            .iter()
            .filter(|x| {
                s.policies
                    .iter()
                    .any(|p| &p.name == *x && !p.kind.is_periodic())
            })
            .collect();
        t.push(format!(
            "alarm {} {:?} {:?} {:?} {} x{} {:?} {} {:?} {actions:?}",
            a.name,
            a.description,
            a.metric,
            a.statistic,
            a.period,
            a.evaluation_periods,
            a.comparison,
            a.threshold,
            a.treat_missing_data
        ));
    }
    for sa in &s.scheduled {
        t.push(format!("scheduled {sa:?}"));
    }
    t
}

fn round_trip(src: &str) -> (Stack, Stack, Vec<String>) {
    let stack = bellows_core::stack::parse(src).expect("a valid stack");
    let tf = crate::terraform::export(&stack, src, &Default::default())
        .files
        .remove(0)
        .1;
    let imported = import(
        &[Source {
            name: "main.tf".into(),
            text: tf,
        }],
        &stack.name,
    )
    .expect("HCL");
    let back = bellows_core::stack::parse(&imported.stack)
        .unwrap_or_else(|e| panic!("{e:?}\n{}", imported.stack));
    (stack, back, imported.warnings)
}

#[test]
fn what_export_terraform_writes_imports_to_the_same_topology() {
    for src in [
        include_str!("../../../../examples/ip-tracker.toml"),
        include_str!("../../../../examples/flask-asg.toml"),
        include_str!("../../../../examples/cnt-target-tracking.toml"),
        include_str!("../../../../examples/mp2-stress.toml"),
        include_str!("../../../../examples/mp2-load-balancing.toml"),
        include_str!("../../../../examples/sim/aws-step.toml"),
        include_str!("../../../../examples/sim/aws-target-tracking.toml"),
    ] {
        let (before, after, warnings) = round_trip(src);
        assert_eq!(topology(&before), topology(&after), "{warnings:?}");
        // Only the network is left out: security groups but their ingress rules, subnets.
        let rest: Vec<&String> = warnings
            .iter()
            .filter(|w| {
                !w.contains("aws_security_group.")
                    && !w.contains("aws_vpc_security_group_egress_rule.")
                    && !w.contains("`vpc_zone_identifier`")
            })
            .collect();
        assert!(rest.is_empty(), "{rest:?}");
    }
}

#[test]
fn rules_with_weights_headers_and_redirects_round_trip() {
    let src = format!(
        "{}{}",
        include_str!("../../../../examples/sim/hpa.toml").replace("port = 8000", "port = 5000"),
        r#"
[target_groups.canary]
port = 5000

[[listeners.http.rules]]
priority = 5
path = ["/api/*"]
method = ["GET", "POST"]
header = { x-env = ["beta"], x-team = ["a", "b"] }
forward = [{ target_group = "web", weight = 9 }, { target_group = "canary", weight = 1 }]

[[listeners.http.rules]]
priority = 7
host = ["admin.example.com"]
source_ip = ["10.0.0.0/8"]
redirect = { status = 301, protocol = "https", port = "443" }

[[groups.web.scheduled]]
name = "night"
cron = "0 22 * * *"
time_zone = "Europe/Paris"
min = 0
max = 4
"#
    );
    let (before, after, _) = round_trip(&src);
    assert_eq!(topology(&before), topology(&after));
}

#[test]
fn modules_data_sources_and_unknown_arguments_are_reported_with_their_place() {
    let tf = r##"variable "port" {
  default = 8080
}

locals {
  health = "/up"
  name   = "shop-${var.port}"
}

module "vpc" {
  source = "terraform-aws-modules/vpc/aws"
}

data "aws_ami" "ubuntu" {
  most_recent = true
}

resource "aws_s3_bucket" "logs" {
  bucket = "x"
}

resource "aws_lb_target_group" "web" {
  name     = local.name
  port     = var.port
  protocol = "HTTP"
  ip_address_type = "ipv4"
  health_check {
    path = local.health
    interval = 10
  }
}

resource "aws_lb_listener" "http" {
  port = var.port
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.web.arn
  }
}

resource "aws_launch_template" "web" {
  instance_type = "t3.micro"
  user_data     = base64encode("#!/bin/sh\nexport PORT=8080\nexec python3 -m http.server 8080\n")
}

resource "aws_autoscaling_group" "web" {
  min_size          = 1
  max_size          = 3
  desired_capacity  = length(var.port) > 1 ? 2 : 1
  target_group_arns = [aws_lb_target_group.web.arn]
  launch_template {
    id = aws_launch_template.web.id
  }
}
"##;
    let i = import(
        &[Source {
            name: "main.tf".into(),
            text: tf.into(),
        }],
        "shop",
    )
    .unwrap();
    let w = i.warnings.join("\n");
    for needle in [
        "main.tf:10:1: warning: module `vpc` is not imported",
        "main.tf:14:1: warning: data source aws_ami.ubuntu is not imported",
        "main.tf:18:1: warning: resource aws_s3_bucket.logs has no counterpart",
        "main.tf:26:3: warning: aws_lb_target_group.web: `ip_address_type` is not imported",
        "main.tf:49:23: warning: aws_autoscaling_group.web: `desired_capacity` is not imported: an operator or conditional expression is not evaluated",
    ] {
        assert!(w.contains(needle), "{needle} in\n{w}");
    }
    let s = bellows_core::stack::parse(&i.stack).unwrap_or_else(|e| panic!("{e:?}\n{}", i.stack));
    assert_eq!(s.target_groups[0].name, "shop-8080");
    assert_eq!(s.target_groups[0].health_check.path, "/up");
    // A script of the user's own stays the program, as EC2 would run it.
    assert_eq!(
        s.groups[0].launch.user_data.as_deref(),
        Some("#!/bin/sh\nexport PORT=8080\nexec python3 -m http.server 8080\n")
    );
    assert!(s.groups[0].launch.command.is_empty());
    assert_eq!(s.groups[0].launch.port, 8080);
    assert_eq!(s.listeners[0].address.port(), 8080);
}

#[test]
fn a_file_that_is_not_hcl_is_an_error_with_its_place() {
    let e = import(
        &[Source {
            name: "bad.tf".into(),
            text: "resource \"x\" {\n  a = \n".into(),
        }],
        "x",
    )
    .unwrap_err();
    assert!(e.starts_with("bad.tf:"), "{e}");
}

#[test]
fn any_prefix_of_a_terraform_file_imports_or_errors_without_panicking() {
    let src = include_str!("../../../../examples/ip-tracker.toml");
    let stack = bellows_core::stack::parse(src).unwrap();
    let tf = crate::terraform::export(&stack, src, &Default::default())
        .files
        .remove(0)
        .1;
    let mut cuts = 0;
    for (i, _) in tf.char_indices().step_by(7) {
        let _ = import(
            &[Source {
                name: "main.tf".into(),
                text: tf[..i].to_owned(),
            }],
            "x",
        );
        cuts += 1;
    }
    assert!(cuts > 500, "{cuts}");
}

#[test]
fn the_inline_ingress_of_a_load_balancers_security_group_admits_its_clients() {
    let tf = r#"resource "aws_security_group" "alb" {
  name = "alb"
  ingress {
    from_port        = 80
    to_port          = 80
    protocol         = "tcp"
    cidr_blocks      = ["10.0.0.0/8"]
    ipv6_cidr_blocks = ["fd00::/8"]
  }
  ingress {
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["192.168.0.0/16"]
  }
}

resource "aws_security_group" "other" {
  name = "other"
}

resource "aws_lb" "main" {
  name            = "shop"
  security_groups = [aws_security_group.alb.id]
}

resource "aws_lb_target_group" "web" {
  name = "web"
  port = 8000
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.main.arn
  port              = 80
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.web.arn
  }
}

resource "aws_autoscaling_group" "web" {
  min_size          = 1
  max_size          = 2
  target_group_arns = [aws_lb_target_group.web.arn]
}
"#;
    let i = import(
        &[Source {
            name: "main.tf".into(),
            text: tf.into(),
        }],
        "shop",
    )
    .unwrap();
    let s = bellows_core::stack::parse(&i.stack).unwrap_or_else(|e| panic!("{e:?}\n{}", i.stack));
    let l = &s.listeners[0];
    let ingress: Vec<String> = l.ingress.iter().map(ToString::to_string).collect();
    assert_eq!(ingress, ["10.0.0.0/8", "fd00::/8"], "{}", i.stack);
    // Port 80 needs root: bellows listens elsewhere, AWS callers still see 80.
    assert_eq!(l.public_port(), 80);
    assert!(l.address.port() >= 1024);
    let w = i.warnings.join("\n");
    assert!(!w.contains("aws_security_group.alb"), "{w}");
    assert!(
        w.contains("main.tf:18:1: warning: resource aws_security_group.other has no counterpart"),
        "{w}"
    );
}

/// Seed 004's main.tf: the launch template's instance profile carries the app's role,
/// whose attached policy's actions become the group's role, so that the app's boto3
/// calls are allowed as on EC2 and nothing else is.
#[test]
fn the_flask_dynamodb_instance_profile_becomes_the_groups_role() {
    let tf = include_str!("../../../../examples/terraform/flask-dynamodb/main.tf");
    let i = import(
        &[Source {
            name: "main.tf".into(),
            text: tf.into(),
        }],
        "candidates",
    )
    .unwrap();
    let s = bellows_core::stack::parse(&i.stack).unwrap_or_else(|e| panic!("{e:?}\n{}", i.stack));
    let role = &s.groups[0].role;
    assert!(role.name.ends_with("-ec2-role"), "{role:?}");
    for action in ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan"] {
        assert!(
            role.allow.iter().any(|a| a == action),
            "{action} in {role:?}"
        );
    }
    assert!(
        !role.allow.iter().any(|a| a.starts_with("autoscaling:")),
        "{role:?}"
    );
    let w = i.warnings.join("\n");
    for kind in [
        "aws_iam_role.",
        "aws_iam_policy.",
        "aws_iam_instance_profile.",
        "aws_iam_role_policy_attachment.",
    ] {
        assert!(
            !w.lines()
                .any(|l| l.contains(kind) && l.contains("has no counterpart")),
            "{kind} is imported:\n{w}"
        );
    }
}

#[test]
fn what_a_bellows_role_cannot_say_is_a_warning_with_its_place() {
    let tf = r##"resource "aws_iam_role" "app" {
  name = "app"
  assume_role_policy = "{}"
  inline_policy {
    name = "logs"
    policy = jsonencode({
      Statement = [
        { Effect = "Allow", Action = ["logs:PutLogEvents", "cloudwatch:PutMetricData"] },
        { Effect = "Deny", Action = "dynamodb:DeleteTable" },
      ]
    })
  }
}

resource "aws_iam_role_policy" "table" {
  role   = aws_iam_role.app.id
  policy = "{\"Statement\": {\"Effect\": \"Allow\", \"Action\": \"dynamodb:*\"}}"
}

resource "aws_iam_role_policy_attachment" "ssm" {
  role       = aws_iam_role.app.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "app" {
  role = aws_iam_role.app.name
}

resource "aws_launch_template" "web" {
  user_data = base64encode("#!/bin/sh\nexec python3 -m http.server 8080\n")
  iam_instance_profile {
    arn = aws_iam_instance_profile.app.arn
  }
}

resource "aws_autoscaling_group" "web" {
  min_size = 1
  max_size = 1
  launch_template {
    id = aws_launch_template.web.id
  }
}
"##;
    let i = import(
        &[Source {
            name: "main.tf".into(),
            text: tf.into(),
        }],
        "x",
    )
    .unwrap();
    let s = bellows_core::stack::parse(&i.stack).unwrap_or_else(|e| panic!("{e:?}\n{}", i.stack));
    assert_eq!(s.groups[0].role.name, "app");
    assert_eq!(
        s.groups[0].role.allow,
        ["cloudwatch:PutMetricData", "dynamodb:*"]
    );
    let w = i.warnings.join("\n");
    for needle in [
        "main.tf:6:14: warning: aws_iam_role.app.inline_policy: the action logs:PutLogEvents is not imported",
        "main.tf:6:14: warning: aws_iam_role.app.inline_policy: a statement with Effect \"Deny\" is not imported",
        "main.tf:20:1: warning: aws_iam_role_policy_attachment.ssm: arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore is not imported",
    ] {
        assert!(w.contains(needle), "{needle} in\n{w}");
    }
}
