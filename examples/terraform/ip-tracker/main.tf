# The IP tracker of seed 000 as Terraform: a VPC with two public subnets, an
# application load balancer with a target group and a listener on port 80, an Auto
# Scaling group launched from a launch template whose user data starts the app, two
# simple scaling policies and the CloudWatch alarms that drive them.
#
# Written for AWS; against bellows only the provider's endpoint and credentials
# change, and the image id names bellows' built-in app (see ../README.md).

terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

provider "aws" {
  region = var.region

  # Against bellows: `eval "$(bellows aws-env)"` sets AWS_ENDPOINT_URL and the keys, and
  # these keep the provider from asking the real AWS who the caller is.
  skip_credentials_validation = var.local_endpoint
  skip_requesting_account_id  = var.local_endpoint
  skip_metadata_api_check     = var.local_endpoint
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "local_endpoint" {
  description = "true when AWS_ENDPOINT_URL points at bellows rather than AWS"
  type        = bool
  default     = true
}

variable "zones" {
  description = "two availability zones of the region"
  type        = list(string)
  default     = ["us-east-1a", "us-east-1b"]
}

variable "image_id" {
  description = "an image with the app on it; bellows-app-ip-tracker is bellows' built-in one"
  type        = string
  default     = "bellows-app-ip-tracker"
}

variable "app_command" {
  description = "how the image starts the app"
  type        = string
  default     = "bellows app ip-tracker"
}

variable "instance_type" {
  type    = string
  default = "t2.micro"
}

variable "desired_capacity" {
  type    = number
  default = 1
}

variable "max_users_per_instance" {
  type    = number
  default = 25
}

variable "health_check_page" {
  description = "the page under the app's base path that the target group's health check GETs"
  type        = string
  default     = "health"
}

variable "requests_per_target_alarm" {
  description = "requests per target in a minute above which the group scales out"
  type        = number
  default     = 15
}

locals {
  name      = "ip-tracker"
  base_path = "/app-x7k9m2n8/"
  app_port  = 5000
}

resource "aws_vpc" "main" {
  cidr_block           = "10.0.0.0/16"
  enable_dns_hostnames = true
  enable_dns_support   = true
  tags                 = { Name = "${local.name}-vpc" }
}

resource "aws_subnet" "public" {
  count                   = 2
  vpc_id                  = aws_vpc.main.id
  cidr_block              = "10.0.${count.index + 1}.0/24"
  availability_zone       = var.zones[count.index]
  map_public_ip_on_launch = true
  tags                    = { Name = "${local.name}-public-${count.index + 1}" }
}

resource "aws_internet_gateway" "main" {
  vpc_id = aws_vpc.main.id
  tags   = { Name = "${local.name}-igw" }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.main.id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.main.id
  }
  tags = { Name = "${local.name}-public" }
}

resource "aws_route_table_association" "public" {
  count          = 2
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_security_group" "alb" {
  name        = "${local.name}-alb-sg"
  description = "HTTP from anywhere to the load balancer"
  vpc_id      = aws_vpc.main.id

  ingress {
    from_port   = 80
    to_port     = 80
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_security_group" "instances" {
  name        = "${local.name}-instances-sg"
  description = "The app's port, from the load balancer only"
  vpc_id      = aws_vpc.main.id

  ingress {
    from_port       = local.app_port
    to_port         = local.app_port
    protocol        = "tcp"
    security_groups = [aws_security_group.alb.id]
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_launch_template" "app" {
  name_prefix            = "${local.name}-"
  image_id               = var.image_id
  instance_type          = var.instance_type
  vpc_security_group_ids = [aws_security_group.instances.id]

  user_data = base64encode(<<-SCRIPT
    #!/bin/sh
    # Start the IP tracker on port ${local.app_port} under ${local.base_path}.
    export BASE_PATH=${local.base_path}
    export PORT=${local.app_port}
    export MAX_USERS_PER_INSTANCE=${var.max_users_per_instance}
    exec ${var.app_command}
  SCRIPT
  )

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${local.name}-instance" }
  }
}

resource "aws_lb" "app" {
  name               = "${local.name}-alb"
  internal           = false
  load_balancer_type = "application"
  security_groups    = [aws_security_group.alb.id]
  subnets            = aws_subnet.public[*].id
}

resource "aws_lb_target_group" "app" {
  name                 = "${local.name}-tg"
  port                 = local.app_port
  protocol             = "HTTP"
  vpc_id               = aws_vpc.main.id
  deregistration_delay = 30

  health_check {
    path                = "${local.base_path}${var.health_check_page}"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
    matcher             = "200"
  }

  stickiness {
    type            = "lb_cookie"
    cookie_duration = 86400
    enabled         = true
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.app.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "fixed-response"
    fixed_response {
      content_type = "text/plain"
      message_body = "The IP tracker lives at ${local.base_path}"
      status_code  = "404"
    }
  }
}

resource "aws_lb_listener_rule" "app" {
  listener_arn = aws_lb_listener.http.arn
  priority     = 10

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.app.arn
  }

  condition {
    path_pattern {
      values = ["${local.base_path}*"]
    }
  }
}

resource "aws_autoscaling_group" "app" {
  name                      = "${local.name}-asg"
  min_size                  = 1
  max_size                  = 3
  desired_capacity          = var.desired_capacity
  vpc_zone_identifier       = aws_subnet.public[*].id
  target_group_arns         = [aws_lb_target_group.app.arn]
  health_check_type         = "ELB"
  health_check_grace_period = 60
  default_cooldown          = 180

  launch_template {
    id      = aws_launch_template.app.id
    version = aws_launch_template.app.latest_version
  }

  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 50
    }
  }

  tag {
    key                 = "Name"
    value               = "${local.name}-asg"
    propagate_at_launch = true
  }
}

# The seed's scaling: +2 instances on many requests per target, -1 when connections are few.
resource "aws_autoscaling_policy" "scale_up" {
  name                   = "${local.name}-scale-up"
  autoscaling_group_name = aws_autoscaling_group.app.name
  adjustment_type        = "ChangeInCapacity"
  scaling_adjustment     = 2
  cooldown               = 180
}

resource "aws_autoscaling_policy" "scale_down" {
  name                   = "${local.name}-scale-down"
  autoscaling_group_name = aws_autoscaling_group.app.name
  adjustment_type        = "ChangeInCapacity"
  scaling_adjustment     = -1
  cooldown               = 180
}

resource "aws_cloudwatch_metric_alarm" "high_requests" {
  alarm_name          = "${local.name}-high-requests"
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = 1
  metric_name         = "RequestCountPerTarget"
  namespace           = "AWS/ApplicationELB"
  period              = 60
  statistic           = "Sum"
  threshold           = var.requests_per_target_alarm
  alarm_description   = "More than ${var.requests_per_target_alarm} requests per target in a minute"
  alarm_actions       = [aws_autoscaling_policy.scale_up.arn]
  dimensions = {
    TargetGroup = aws_lb_target_group.app.arn_suffix
  }
}

resource "aws_cloudwatch_metric_alarm" "low_connections" {
  alarm_name          = "${local.name}-low-connections"
  comparison_operator = "LessThanThreshold"
  evaluation_periods  = 15
  metric_name         = "ActiveConnectionCount"
  namespace           = "AWS/ApplicationELB"
  period              = 60
  statistic           = "Maximum"
  threshold           = 3
  alarm_description   = "Fewer than 3 connections for 15 minutes"
  alarm_actions       = [aws_autoscaling_policy.scale_down.arn]
  dimensions = {
    LoadBalancer = aws_lb.app.arn_suffix
  }
}

output "dns" {
  description = "the load balancer's DNS name"
  value       = aws_lb.app.dns_name
}

output "url" {
  value = "http://${aws_lb.app.dns_name}${local.base_path}"
}
