terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

variable "region" {
  type        = string
  description = "The AWS region."
  default     = "us-east-1"
}

variable "vpc_id" {
  type        = string
  description = "The VPC the load balancer, target groups and instances are in."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Subnets in at least two availability zones (the stack's zones: zone-a, zone-b)."
}

variable "image_id" {
  type        = string
  description = "The AMI instances boot; it must hold the launch commands (bellows for `bellows app ...`)."
}

provider "aws" {
  region = var.region
}

resource "aws_security_group" "lb" {
  name_prefix = "ip-tracker-lb-"
  description = "The load balancer of stack ip-tracker"
  vpc_id      = var.vpc_id

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "http_0" {
  security_group_id = aws_security_group.lb.id
  description       = "listener http from 0.0.0.0/0"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 8080
  to_port           = 8080
}

resource "aws_vpc_security_group_ingress_rule" "http_1" {
  security_group_id = aws_security_group.lb.id
  description       = "listener http from ::/0"
  cidr_ipv6         = "::/0"
  ip_protocol       = "tcp"
  from_port         = 8080
  to_port           = 8080
}

resource "aws_vpc_security_group_egress_rule" "lb_to_instances" {
  security_group_id            = aws_security_group.lb.id
  referenced_security_group_id = aws_security_group.instances.id
  ip_protocol                  = "tcp"
  from_port                    = 1
  to_port                      = 65535
}

resource "aws_security_group" "instances" {
  name_prefix = "ip-tracker-instances-"
  description = "The instances of stack ip-tracker"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "instances_5000" {
  security_group_id            = aws_security_group.instances.id
  referenced_security_group_id = aws_security_group.lb.id
  ip_protocol                  = "tcp"
  from_port                    = 5000
  to_port                      = 5000
}

resource "aws_vpc_security_group_egress_rule" "instances_all" {
  security_group_id = aws_security_group.instances.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
}

resource "aws_lb" "main" {
  name               = "ip-tracker"
  internal           = false
  load_balancer_type = "application"
  security_groups    = [aws_security_group.lb.id]
  subnets            = var.subnet_ids
  idle_timeout       = 60
}

resource "aws_lb_target_group" "tracker" {
  name                          = "tracker"
  port                          = 5000
  protocol                      = "HTTP"
  vpc_id                        = var.vpc_id
  target_type                   = "instance"
  deregistration_delay          = "30"
  slow_start                    = 0
  load_balancing_algorithm_type = "least_outstanding_requests"

  health_check {
    enabled             = true
    path                = "/app-x7k9m2n8/health"
    protocol            = "HTTP"
    port                = "traffic-port"
    interval            = 5
    timeout             = 2
    healthy_threshold   = 2
    unhealthy_threshold = 2
    matcher             = "200"
  }

  stickiness {
    enabled         = true
    type            = "lb_cookie"
    cookie_duration = 86400
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.main.arn
  port              = 8080
  protocol          = "HTTP"

  default_action {
    type = "fixed-response"

    fixed_response {
      content_type = "text/plain"
      message_body = "The IP tracker lives at /app-x7k9m2n8/"
      status_code  = "404"
    }
  }
}

resource "aws_lb_listener_rule" "http_10" {
  listener_arn = aws_lb_listener.http.arn
  priority     = 10

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.tracker.arn
  }

  condition {
    path_pattern {
      values = ["/app-x7k9m2n8/*"]
    }
  }
}

resource "aws_launch_template" "tracker" {
  name_prefix            = "tracker-"
  image_id               = var.image_id
  instance_type          = "t2.micro"
  vpc_security_group_ids = [aws_security_group.instances.id]
  user_data              = base64encode("#!/bin/sh\nset -e\nexport BASE_PATH='/app-x7k9m2n8/'\nexport HEARTBEAT_SECONDS='30'\nexport MAX_USERS_PER_INSTANCE='25'\nexport SESSION_TIMEOUT_SECONDS='300'\nexport PORT=5000\nexport GROUP='tracker'\nexport PRIVATE_IP=0.0.0.0\nexport INSTANCE_ID=\"$(cat /var/lib/cloud/data/instance-id 2>/dev/null || hostname)\"\nexport BELLOWS_DATA_DIR=/var/lib/bellows\nmkdir -p \"$BELLOWS_DATA_DIR\"\nexec 'bellows' 'app' 'ip-tracker'\n")
}

resource "aws_autoscaling_group" "tracker" {
  name                      = "tracker"
  min_size                  = 1
  max_size                  = 10
  desired_capacity          = 2
  vpc_zone_identifier       = var.subnet_ids
  health_check_type         = "ELB"
  health_check_grace_period = 30
  default_cooldown          = 180
  target_group_arns         = [aws_lb_target_group.tracker.arn]

  launch_template {
    id      = aws_launch_template.tracker.id
    version = aws_launch_template.tracker.latest_version
  }

  lifecycle {
    ignore_changes = [desired_capacity]
  }
}

resource "aws_autoscaling_policy" "add-two" {
  name                   = "add-two"
  autoscaling_group_name = aws_autoscaling_group.tracker.name
  policy_type            = "SimpleScaling"
  adjustment_type        = "ChangeInCapacity"
  scaling_adjustment     = 2
  cooldown               = 180
}

resource "aws_autoscaling_policy" "remove-one" {
  name                   = "remove-one"
  autoscaling_group_name = aws_autoscaling_group.tracker.name
  policy_type            = "SimpleScaling"
  adjustment_type        = "ChangeInCapacity"
  scaling_adjustment     = -1
  cooldown               = 180
}

resource "aws_cloudwatch_metric_alarm" "connection-errors" {
  alarm_name                = "connection-errors"
  namespace                 = "AWS/ApplicationELB"
  metric_name               = "TargetConnectionErrorCount"
  statistic                 = "Sum"
  period                    = 60
  evaluation_periods        = 1
  datapoints_to_alarm       = 1
  comparison_operator       = "GreaterThanThreshold"
  threshold                 = 2
  treat_missing_data        = "notBreaching"
  alarm_actions             = [aws_autoscaling_policy.add-two.arn]
  ok_actions                = []
  insufficient_data_actions = []

  dimensions = {
    TargetGroup = aws_lb_target_group.tracker.arn_suffix
  }
}

resource "aws_cloudwatch_metric_alarm" "requests-per-target" {
  alarm_name                = "requests-per-target"
  namespace                 = "AWS/ApplicationELB"
  metric_name               = "RequestCountPerTarget"
  statistic                 = "Sum"
  period                    = 60
  evaluation_periods        = 1
  datapoints_to_alarm       = 1
  comparison_operator       = "GreaterThanThreshold"
  threshold                 = 15
  treat_missing_data        = "missing"
  alarm_actions             = [aws_autoscaling_policy.add-two.arn]
  ok_actions                = []
  insufficient_data_actions = []

  dimensions = {
    TargetGroup = aws_lb_target_group.tracker.arn_suffix
  }
}

resource "aws_cloudwatch_metric_alarm" "few-connections" {
  alarm_name                = "few-connections"
  namespace                 = "AWS/ApplicationELB"
  metric_name               = "ActiveConnectionCount"
  statistic                 = "Maximum"
  period                    = 60
  evaluation_periods        = 15
  datapoints_to_alarm       = 15
  comparison_operator       = "LessThanThreshold"
  threshold                 = 3
  treat_missing_data        = "missing"
  alarm_actions             = [aws_autoscaling_policy.remove-one.arn]
  ok_actions                = []
  insufficient_data_actions = []

  dimensions = {
    LoadBalancer = aws_lb.main.arn_suffix
  }
}

resource "aws_cloudwatch_metric_alarm" "users-turned-away" {
  alarm_name                = "users-turned-away"
  namespace                 = "IPTracker"
  metric_name               = "RejectedConnections"
  statistic                 = "Sum"
  period                    = 10
  evaluation_periods        = 1
  datapoints_to_alarm       = 1
  comparison_operator       = "GreaterThanThreshold"
  threshold                 = 0
  treat_missing_data        = "notBreaching"
  alarm_actions             = [aws_autoscaling_policy.add-two.arn]
  ok_actions                = []
  insufficient_data_actions = []

  dimensions = {
    AutoScalingGroupName = aws_autoscaling_group.tracker.name
  }
}
