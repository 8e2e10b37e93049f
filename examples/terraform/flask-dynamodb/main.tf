# Seed 004's stack as Terraform: Flask microservices on an Auto Scaling group behind an
# application load balancer, their candidates in a DynamoDB table, reached with the
# credentials of an IAM instance profile (no keys anywhere). A VPC with two public
# subnets, an internet gateway and a route table, security groups, the table, a role
# with a policy on the table and an instance profile, a launch template whose user data
# starts the app, a target group (health check /gtg) and a listener on port 80, and a
# group of 2 to 4 instances scaled on CPU by two simple policies and their alarms.
#
# Written for AWS; against bellows only the provider's endpoint and credentials change
# (see ../README.md). On AWS, give an AMI with the app under var.app_dir (the seed's
# Packer step builds one).

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
  description = "an image with Python 3 and the app under app_dir (any id against bellows, which runs the user data on this machine)"
  type        = string
  default     = "bellows-image-python3"
}

variable "app_dir" {
  description = "where the image holds examples/apps/candidates-dynamodb (app.py and requirements.txt)"
  type        = string
  default     = "/opt/candidates-dynamodb"
}

variable "instance_type" {
  type    = string
  default = "t2.micro"
}

variable "asg_instances" {
  description = "the group's minimum and desired capacity"
  type        = number
  default     = 2
}

locals {
  name     = "flask"
  app_port = 8000
  table    = "Candidates"
}

resource "aws_vpc" "main" {
  cidr_block           = "10.0.0.0/24"
  enable_dns_hostnames = true
  enable_dns_support   = true
  tags                 = { Name = "${local.name}-vpc" }
}

resource "aws_subnet" "public" {
  count                   = 2
  vpc_id                  = aws_vpc.main.id
  cidr_block              = "10.0.0.${count.index * 128}/25"
  availability_zone       = var.zones[count.index]
  map_public_ip_on_launch = true
  tags                    = { Name = "${local.name}-subnet-${count.index + 1}" }
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
  tags = { Name = "${local.name}-route-table" }
}

resource "aws_route_table_association" "public" {
  count          = 2
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_security_group" "http" {
  name        = "${local.name}-sg-http"
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

resource "aws_security_group" "app" {
  name        = "${local.name}-sg-app"
  description = "The Flask port, from the load balancer"
  vpc_id      = aws_vpc.main.id

  ingress {
    from_port       = local.app_port
    to_port         = local.app_port
    protocol        = "tcp"
    security_groups = [aws_security_group.http.id]
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_dynamodb_table" "candidates" {
  name         = local.table
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "CandidateName"

  attribute {
    name = "CandidateName"
    type = "S"
  }

  tags = { Name = local.table }
}

# The instances' role: what their metadata credentials may do, on the table only.
resource "aws_iam_role" "app" {
  name = "${local.name}-ec2-role"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_policy" "table" {
  name        = "${local.name}-dynamodb-access"
  description = "Read and write the candidates table"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect = "Allow"
      Action = [
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:Scan",
      ]
      Resource = aws_dynamodb_table.candidates.arn
    }]
  })
}

resource "aws_iam_role_policy_attachment" "table" {
  role       = aws_iam_role.app.name
  policy_arn = aws_iam_policy.table.arn
}

resource "aws_iam_instance_profile" "app" {
  name = "${local.name}-instance-profile"
  role = aws_iam_role.app.name
}

resource "aws_launch_template" "app" {
  name          = "${local.name}-launch-template"
  description   = "Flask candidates service"
  image_id      = var.image_id
  instance_type = var.instance_type

  vpc_security_group_ids = [aws_security_group.app.id]

  iam_instance_profile {
    name = aws_iam_instance_profile.app.name
  }

  # The instance's program, as cloud-init runs it. The app binds $PRIVATE_IP when it is
  # set, else 0.0.0.0 as on EC2. Run as root, bellows gives each instance a network
  # namespace of its own, where 0.0.0.0:8000 works for every instance as well; without
  # root instances share the host's network, and only $PRIVATE_IP keeps them apart.
  user_data = base64encode(<<-SCRIPT
    #!/bin/sh
    set -e
    cd ${var.app_dir}
    python3 -c 'import flask, boto3' 2>/dev/null || python3 -m pip install --quiet --user -r requirements.txt
    export CANDIDATES_TABLE=${local.table}
    export PORT=${local.app_port}
    exec python3 app.py
  SCRIPT
  )

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${local.name}-lt-instance" }
  }
}

resource "aws_lb" "app" {
  name               = "${local.name}-alb"
  internal           = false
  load_balancer_type = "application"
  security_groups    = [aws_security_group.http.id]
  subnets            = aws_subnet.public[*].id
}

resource "aws_lb_target_group" "app" {
  name     = "${local.name}-alb-tg"
  port     = local.app_port
  protocol = "HTTP"
  vpc_id   = aws_vpc.main.id

  health_check {
    path                = "/gtg"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
    matcher             = "200"
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.app.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.app.arn
  }
}

resource "aws_autoscaling_group" "app" {
  name                      = "${local.name}-asg"
  min_size                  = var.asg_instances
  max_size                  = 4
  desired_capacity          = var.asg_instances
  vpc_zone_identifier       = aws_subnet.public[*].id
  target_group_arns         = [aws_lb_target_group.app.arn]
  health_check_type         = "ELB"
  health_check_grace_period = 60
  default_cooldown          = 120
  default_instance_warmup   = 60

  launch_template {
    id      = aws_launch_template.app.id
    version = "$Latest"
  }

  tag {
    key                 = "Name"
    value               = "${local.name}-asg"
    propagate_at_launch = true
  }
}

# The seed's scaling: CPU > 60% for 2 x 30 s adds one instance, CPU < 60% for
# 10 x 30 s removes one; 120 s cooldowns.
resource "aws_autoscaling_policy" "scale_up" {
  name                   = "scale-up-policy"
  autoscaling_group_name = aws_autoscaling_group.app.name
  adjustment_type        = "ChangeInCapacity"
  scaling_adjustment     = 1
  cooldown               = 120
}

resource "aws_autoscaling_policy" "scale_down" {
  name                   = "scale-down-policy"
  autoscaling_group_name = aws_autoscaling_group.app.name
  adjustment_type        = "ChangeInCapacity"
  scaling_adjustment     = -1
  cooldown               = 120
}

resource "aws_cloudwatch_metric_alarm" "cpu_high" {
  alarm_name          = "HighCPUUtilization"
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = 2
  metric_name         = "CPUUtilization"
  namespace           = "AWS/EC2"
  period              = 30
  statistic           = "Average"
  threshold           = 60
  alarm_description   = "Scale up when CPU is above 60% for two 30 s periods"
  alarm_actions       = [aws_autoscaling_policy.scale_up.arn]
  dimensions = {
    AutoScalingGroupName = aws_autoscaling_group.app.name
  }
}

resource "aws_cloudwatch_metric_alarm" "cpu_low" {
  alarm_name          = "LowCPUUtilization"
  comparison_operator = "LessThanThreshold"
  evaluation_periods  = 10
  metric_name         = "CPUUtilization"
  namespace           = "AWS/EC2"
  period              = 30
  statistic           = "Average"
  threshold           = 60
  alarm_description   = "Scale down when CPU is below 60% for ten 30 s periods"
  alarm_actions       = [aws_autoscaling_policy.scale_down.arn]
  dimensions = {
    AutoScalingGroupName = aws_autoscaling_group.app.name
  }
}

output "dns" {
  description = "the load balancer's DNS name"
  value       = aws_lb.app.dns_name
}

output "url" {
  value = "http://${aws_lb.app.dns_name}/gtg?details=true"
}
