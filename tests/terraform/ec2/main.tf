# The EC2 part of a stack like the seeds': a VPC, two subnets, a gateway, a route table,
# security groups with rules and a launch template (crates/bellows/tests/terraform_ec2.rs).
# `var.user_data` and `var.rule_port` change between applies: a new template version and
# a rule changed in place.

terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = "5.100.0" }
  }
}

variable "user_data" {
  type    = string
  default = "#!/bin/sh\nexec bellows app echo\n"
}

variable "rule_port" {
  type    = number
  default = 8080
}

provider "aws" {
  region                      = "us-east-1"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}

data "aws_availability_zones" "available" {
  state = "available"
}

resource "aws_vpc" "main" {
  cidr_block           = "10.0.0.0/16"
  enable_dns_hostnames = true
  enable_dns_support   = true
  tags                 = { Name = "web-vpc" }
}

resource "aws_subnet" "public" {
  count                   = 2
  vpc_id                  = aws_vpc.main.id
  cidr_block              = "10.0.${count.index}.0/24"
  availability_zone       = data.aws_availability_zones.available.names[count.index]
  map_public_ip_on_launch = true
  tags                    = { Name = "public-${count.index}" }
}

resource "aws_internet_gateway" "gw" {
  vpc_id = aws_vpc.main.id
  tags   = { Name = "web-igw" }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.main.id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.gw.id
  }
}

resource "aws_route_table_association" "public" {
  count          = 2
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_security_group" "lb" {
  name        = "lb-sg"
  description = "Allow HTTP"
  vpc_id      = aws_vpc.main.id
  ingress {
    from_port   = 80
    to_port     = 80
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  ingress {
    from_port        = 443
    to_port          = 443
    protocol         = "tcp"
    cidr_blocks      = ["10.0.0.0/8"]
    description      = "tls"
  }
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_security_group" "web" {
  name        = "web-sg"
  description = "From the load balancer"
  vpc_id      = aws_vpc.main.id
  ingress {
    from_port       = 5000
    to_port         = 5000
    protocol        = "tcp"
    security_groups = [aws_security_group.lb.id]
  }
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_launch_template" "web" {
  name_prefix   = "web-"
  update_default_version = true
  image_id      = "bellows-app-echo"
  instance_type = "t3.micro"
  user_data     = base64encode(var.user_data)
  vpc_security_group_ids = [aws_security_group.web.id]
  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "web" }
  }
}

# Rules as resources of their own (on groups without inline rules: Terraform wants one
# or the other), and the VPC's default group adopted.
resource "aws_security_group" "extra" {
  name        = "extra-sg"
  description = "Rules of their own"
  vpc_id      = aws_vpc.main.id
}

resource "aws_vpc_security_group_ingress_rule" "alt" {
  security_group_id = aws_security_group.extra.id
  cidr_ipv4         = "10.0.0.0/8"
  from_port         = var.rule_port
  to_port           = var.rule_port
  ip_protocol       = "tcp"
  description       = "alternate port"
  tags              = { Name = "alt" }
}

resource "aws_vpc_security_group_egress_rule" "dns" {
  security_group_id = aws_security_group.extra.id
  cidr_ipv6         = "::/0"
  from_port         = 53
  to_port           = 53
  ip_protocol       = "udp"
}

resource "aws_security_group_rule" "health" {
  type                     = "ingress"
  from_port                = 5001
  to_port                  = 5001
  protocol                 = "tcp"
  security_group_id        = aws_security_group.extra.id
  source_security_group_id = aws_security_group.lb.id
}

resource "aws_default_security_group" "default" {
  vpc_id = aws_vpc.main.id
}

output "vpc" { value = aws_vpc.main.id }
output "lt_version" { value = aws_launch_template.web.latest_version }
