#!/usr/bin/env python3
"""boto3 against a running bellows: every implemented action per service, CloudWatch in
each of its three protocols, the error cases with their exact codes, and every answer's
elements checked against botocore's own model of the output shape (botocore drops
elements it does not know without a word, so a misspelt one would only show up as a
missing field).

Run with the variables `bellows aws-env` prints, and the stack's names:

    python3 tests/aws/check.py --group ip-tracker-asg --target-group tracker \
        --listener http --load-balancer ip-tracker-alb --alarm custom-orders

Exits 0 when every check passed; prints each check as it goes.
"""

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

import boto3
import botocore
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

ACCOUNT = "123456789012"
FAILURES = []
CHECKED = {"answers": 0, "elements": 0}


def ok(cond, what):
    if cond:
        print(f"ok    {what}")
    else:
        print(f"FAIL  {what}")
        FAILURES.append(what)


def local(tag):
    return tag.rsplit("}", 1)[-1]


# --- Shape checks -------------------------------------------------------------------


def check_scalar(shape, text, path, problems):
    t = shape.type_name
    try:
        if t in ("integer", "long"):
            int(text)
        elif t in ("double", "float"):
            float(text)
        elif t == "boolean":
            assert text in ("true", "false"), text
        elif t == "timestamp":
            assert text.endswith("Z") and "T" in text, text
    except (ValueError, AssertionError):
        problems.append(f"{path}: {text!r} is not a {t}")


def walk_xml(node, shape, path, problems, ec2):
    CHECKED["elements"] += 1
    t = shape.type_name
    if t == "structure":
        by_name = {}
        for name, member in shape.members.items():
            by_name[member.serialization.get("name", name)] = member
        seen = set()
        for child in node:
            tag = local(child.tag)
            if tag not in by_name:
                problems.append(f"{path}/{tag}: not a member of {shape.name}")
                continue
            seen.add(tag)
            walk_xml(child, by_name[tag], f"{path}/{tag}", problems, ec2)
        for req in shape.required_members:
            wire = shape.members[req].serialization.get("name", req)
            if wire not in seen:
                problems.append(f"{path}: required {req} is missing")
    elif t == "list":
        item = shape.member.serialization.get("name", "item" if ec2 else "member")
        for child in node:
            if local(child.tag) != item:
                problems.append(f"{path}/{local(child.tag)}: list items are <{item}>")
                continue
            walk_xml(child, shape.member, f"{path}/{item}", problems, ec2)
    elif t == "map":
        for entry in node:
            kv = {local(c.tag): c for c in entry}
            if local(entry.tag) != "entry" or set(kv) != {"key", "value"}:
                problems.append(f"{path}: map entries are <entry><key/><value/></entry>")
                continue
            walk_xml(kv["value"], shape.value, f"{path}/value", problems, ec2)
    else:
        if len(node):
            problems.append(f"{path}: a {t} with child elements")
        check_scalar(shape, node.text or "", path, problems)


def walk_doc(value, shape, path, problems):
    CHECKED["elements"] += 1
    t = shape.type_name
    if t == "structure":
        if not isinstance(value, dict):
            problems.append(f"{path}: not an object")
            return
        for k, v in value.items():
            if k not in shape.members:
                problems.append(f"{path}/{k}: not a member of {shape.name}")
                continue
            walk_doc(v, shape.members[k], f"{path}/{k}", problems)
        for req in shape.required_members:
            if req not in value:
                problems.append(f"{path}: required {req} is missing")
    elif t == "list":
        if not isinstance(value, list):
            problems.append(f"{path}: not a list")
            return
        for i, v in enumerate(value):
            walk_doc(v, shape.member, f"{path}[{i}]", problems)
    elif t == "map":
        for k, v in value.items():
            walk_doc(v, shape.value, f"{path}/{k}", problems)
    elif t == "timestamp":
        if not isinstance(value, (int, float)) and not hasattr(value, "timestamp"):
            problems.append(f"{path}: a timestamp must be epoch seconds, not {value!r}")
    elif t in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{path}: {value!r} is not an integer")
    elif t in ("double", "float"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append(f"{path}: {value!r} is not a number")
    elif t == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{path}: {value!r} is not a boolean")
    elif t == "string":
        if not isinstance(value, str):
            problems.append(f"{path}: {value!r} is not a string")


def check_answer(operation_model, response_dict, **_):
    """botocore's before-parse hook: checks a successful answer's raw body."""
    if response_dict["status_code"] != 200:
        return
    CHECKED["answers"] += 1
    body = response_dict["body"]
    headers = {k.lower(): v for k, v in response_dict["headers"].items()}
    protocol = operation_model.service_model.resolved_protocol
    shape = operation_model.output_shape
    op = operation_model.name
    problems = []
    if not body:
        problems.append("the body is empty")
    elif protocol in ("query", "ec2"):
        root = ET.fromstring(body)
        if local(root.tag) != f"{op}Response":
            problems.append(f"the root is <{local(root.tag)}>")
        if protocol == "query":
            result = [c for c in root if local(c.tag) == f"{op}Result"]
            meta = [c for c in root if local(c.tag) == "ResponseMetadata"]
            if not meta:
                problems.append("no ResponseMetadata")
            if shape is None and result:
                problems.append(f"{op} has no output shape but a Result element")
            if shape is not None:
                if not result:
                    problems.append(f"no {op}Result")
                else:
                    walk_xml(result[0], shape, op, problems, False)
        else:
            rid = [c for c in root if local(c.tag) == "requestId"]
            if not rid:
                problems.append("no requestId")
            if shape is not None:
                rest = ET.Element("x")
                rest.extend([c for c in root if local(c.tag) != "requestId"])
                walk_xml(rest, shape, op, problems, True)
    elif protocol == "json":
        if headers.get("content-type") != "application/x-amz-json-1.0":
            problems.append(f"content-type {headers.get('content-type')}")
        if shape is not None:
            walk_doc(json.loads(body), shape, op, problems)
    elif protocol == "smithy-rpc-v2-cbor":
        if headers.get("smithy-protocol") != "rpc-v2-cbor":
            problems.append("no smithy-protocol: rpc-v2-cbor header")
        parser = botocore.parsers.RpcV2CBORParser()
        doc = parser._initial_body_parse(body)
        if shape is not None:
            walk_doc(doc, shape, op, problems)
    for p in problems:
        FAILURES.append(f"{protocol} {op}: {p}")
        print(f"FAIL  shape {protocol} {op}: {p}")


# --- Clients --------------------------------------------------------------------------


def narrowed_data_path(protocol):
    """A directory with CloudWatch's model narrowed to one protocol, for AWS_DATA_PATH."""
    src = os.path.join(os.path.dirname(botocore.__file__), "data", "cloudwatch", "2010-08-01")
    model = json.load(gzip.open(os.path.join(src, "service-2.json.gz")))
    model["metadata"]["protocol"] = protocol
    model["metadata"]["protocols"] = [protocol]
    root = tempfile.mkdtemp(prefix=f"cw-{protocol}-")
    dst = os.path.join(root, "cloudwatch", "2010-08-01")
    os.makedirs(dst)
    with open(os.path.join(dst, "service-2.json"), "w") as f:
        json.dump(model, f)
    for extra in ("paginators-1.json", "waiters-2.json"):
        if os.path.exists(os.path.join(src, extra)):
            shutil.copy(os.path.join(src, extra), dst)
    return root


def client(service, data_path=None, **overrides):
    session = botocore.session.Session()
    if data_path:
        session.set_config_variable("data_path", data_path)
    session.register("before-parse", check_answer)
    config = Config(retries={"max_attempts": 1}, **overrides.pop("config", {}))
    if "aws_access_key_id" in overrides or "aws_secret_access_key" in overrides:
        overrides.setdefault("aws_access_key_id", os.environ["AWS_ACCESS_KEY_ID"])
        overrides.setdefault("aws_secret_access_key", os.environ["AWS_SECRET_ACCESS_KEY"])
    return boto3.Session(botocore_session=session).client(service, config=config, **overrides)


def code_of(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


# --- Per service ---------------------------------------------------------------------


def sts(a):
    c = client("sts")
    who = c.get_caller_identity()
    ok(who["Account"] == ACCOUNT, "sts GetCallerIdentity names the fixed account")
    ok(who["Arn"].startswith(f"arn:aws:iam::{ACCOUNT}:"), "sts GetCallerIdentity's Arn")


def autoscaling(a):
    c = client("autoscaling")
    groups = c.describe_auto_scaling_groups()["AutoScalingGroups"]
    g = next((x for x in groups if x["AutoScalingGroupName"] == a.group), None)
    ok(g is not None, f"autoscaling DescribeAutoScalingGroups lists {a.group}")
    arn = g["AutoScalingGroupARN"]
    ok(
        arn.startswith(f"arn:aws:autoscaling:us-east-1:{ACCOUNT}:autoScalingGroup:")
        and arn.endswith(f":autoScalingGroupName/{a.group}"),
        f"the group's ARN has AWS's shape: {arn}",
    )
    ok(len(g["Instances"]) >= g["MinSize"], "the group's instances are listed")
    again = c.describe_auto_scaling_groups(AutoScalingGroupNames=[a.group])["AutoScalingGroups"]
    ok(again[0]["AutoScalingGroupARN"] == arn, "the same group keeps its ARN")
    none = c.describe_auto_scaling_groups(AutoScalingGroupNames=["no-such-group"])
    ok(none["AutoScalingGroups"] == [], "an unknown group name gives an empty list")
    inst = c.describe_auto_scaling_instances()["AutoScalingInstances"]
    ok(all(i["AutoScalingGroupName"] == a.group for i in inst) and inst, "DescribeAutoScalingInstances")
    acts = c.describe_scaling_activities(AutoScalingGroupName=a.group)["Activities"]
    ok(len(acts) > 0 and all(x["StatusCode"] in ("InProgress", "Successful", "Failed") for x in acts),
       "DescribeScalingActivities lists the launches")
    ok(code_of(c.describe_scaling_activities, AutoScalingGroupName="no-such-group") == ("ValidationError", 400),
       "an unknown group's activities: ValidationError")
    one = c.describe_scaling_activities(AutoScalingGroupName=a.group, MaxRecords=1)
    ok(len(one["Activities"]) == 1 and ("NextToken" in one) == (len(acts) > 1),
       "DescribeScalingActivities pages by MaxRecords, with a NextToken when there is more")
    paged = [x["ActivityId"] for p in c.get_paginator("describe_scaling_activities").paginate(
        AutoScalingGroupName=a.group, PaginationConfig={"PageSize": 1}) for x in p["Activities"]]
    ok({x["ActivityId"] for x in acts} <= set(paged) and len(paged) == len(set(paged)),
       f"boto3's paginator walks every page ({len(paged)} activities one by one, {len(acts)} at once)")
    e = code_of(c.describe_scaling_activities, AutoScalingGroupName=a.group, NextToken="made-up")
    ok(e == ("InvalidNextToken", 400), f"a made-up NextToken: InvalidNextToken ({e})")
    desired = g["DesiredCapacity"]
    c.set_desired_capacity(AutoScalingGroupName=a.group, DesiredCapacity=desired)
    ok(True, "SetDesiredCapacity to the same capacity")
    e = code_of(c.set_desired_capacity, AutoScalingGroupName=a.group, DesiredCapacity=g["MaxSize"] + 1)
    ok(e == ("ValidationError", 400), f"SetDesiredCapacity above max: ValidationError ({e})")
    e = code_of(c.set_desired_capacity, AutoScalingGroupName="no-such-group", DesiredCapacity=1)
    ok(e == ("ValidationError", 400), "SetDesiredCapacity on an unknown group: ValidationError")
    try:
        c.set_desired_capacity(AutoScalingGroupName="no-such-group", DesiredCapacity=1)
    except ClientError as err:
        ok("not found" in err.response["Error"]["Message"], "... and its message says not found")
    c.update_auto_scaling_group(AutoScalingGroupName=a.group, MaxSize=g["MaxSize"])
    ok(True, "UpdateAutoScalingGroup MaxSize")
    e = code_of(c.update_auto_scaling_group, AutoScalingGroupName=a.group, HealthCheckType="EC2")
    ok(e == ("ValidationError", 400), "UpdateAutoScalingGroup of what only the stack file changes: ValidationError")
    one = g["Instances"][0]["InstanceId"]
    c.set_instance_protection(AutoScalingGroupName=a.group, InstanceIds=[one], ProtectedFromScaleIn=True)
    prot = c.describe_auto_scaling_instances(InstanceIds=[one])["AutoScalingInstances"][0]
    ok(prot["ProtectedFromScaleIn"] is True, "SetInstanceProtection protects")
    c.set_instance_protection(AutoScalingGroupName=a.group, InstanceIds=[one], ProtectedFromScaleIn=False)
    c.set_instance_health(InstanceId=one, HealthStatus="Healthy")
    ok(True, "SetInstanceHealth Healthy")
    e = code_of(c.set_instance_health, InstanceId="i-00000000000000000", HealthStatus="Healthy")
    ok(e == ("ValidationError", 400), "SetInstanceHealth of an unknown instance: ValidationError")
    rid = c.start_instance_refresh(
        AutoScalingGroupName=a.group, Preferences={"MinHealthyPercentage": 100, "InstanceWarmup": 5}
    )["InstanceRefreshId"]
    refs = c.describe_instance_refreshes(AutoScalingGroupName=a.group)["InstanceRefreshes"]
    ok(refs and refs[0]["InstanceRefreshId"] == rid, "Start/DescribeInstanceRefreshes")
    e = code_of(c.start_instance_refresh, AutoScalingGroupName=a.group)
    ok(e == ("InstanceRefreshInProgress", 400), f"a second refresh: InstanceRefreshInProgress ({e})")
    cancelled = c.cancel_instance_refresh(AutoScalingGroupName=a.group)["InstanceRefreshId"]
    ok(cancelled == rid, "CancelInstanceRefresh")
    e = code_of(c.cancel_instance_refresh, AutoScalingGroupName=a.group)
    ok(e == ("ActiveInstanceRefreshNotFound", 400), f"nothing to cancel: ActiveInstanceRefreshNotFound ({e})")
    # The refresh may have replaced instances already: terminate one that is there now.
    now = c.describe_auto_scaling_groups(AutoScalingGroupNames=[a.group])["AutoScalingGroups"][0]
    one = next(i["InstanceId"] for i in now["Instances"] if i["LifecycleState"] in ("InService", "Pending"))
    act = c.terminate_instance_in_auto_scaling_group(InstanceId=one, ShouldDecrementDesiredCapacity=False)
    ok(act["Activity"]["AutoScalingGroupName"] == a.group, "TerminateInstanceInAutoScalingGroup")
    e = code_of(c.terminate_instance_in_auto_scaling_group, InstanceId="i-00000000000000000",
                ShouldDecrementDesiredCapacity=False)
    ok(e == ("ValidationError", 400), "terminating an unknown instance: ValidationError")
    pols = c.describe_policies(AutoScalingGroupName=a.group)["ScalingPolicies"]
    ok(pols and all(p["PolicyType"] == "SimpleScaling" and p["Alarms"] for p in pols),
       "DescribePolicies lists the simple policies with their alarms")
    ok(code_of(c.describe_policies, AutoScalingGroupName="no-such-group") == ("ValidationError", 400),
       "policies of an unknown group: ValidationError")
    before = c.describe_auto_scaling_groups(AutoScalingGroupNames=[a.group])["AutoScalingGroups"][0]
    c.execute_policy(AutoScalingGroupName=a.group, PolicyName=pols[0]["PolicyARN"], HonorCooldown=True)
    after = c.describe_auto_scaling_groups(AutoScalingGroupNames=[a.group])["AutoScalingGroups"][0]
    step = pols[0]["ScalingAdjustment"]
    want = max(after["MinSize"], min(after["MaxSize"], before["DesiredCapacity"] + step))
    ok(after["DesiredCapacity"] == want,
       f"ExecutePolicy by ARN: {before['DesiredCapacity']} -> {after['DesiredCapacity']} (want {want})")
    e = code_of(c.execute_policy, AutoScalingGroupName=a.group, PolicyName=pols[0]["PolicyName"], HonorCooldown=True)
    ok(e == ("ScalingActivityInProgress", 400), f"ExecutePolicy in its cooldown: ScalingActivityInProgress ({e})")
    e = code_of(c.execute_policy, PolicyName="no-such-policy")
    ok(e == ("ValidationError", 400), "ExecutePolicy of an unknown policy: ValidationError")
    c.set_desired_capacity(AutoScalingGroupName=a.group, DesiredCapacity=before["DesiredCapacity"])
    sched = c.describe_scheduled_actions(AutoScalingGroupName=a.group)["ScheduledUpdateGroupActions"]
    ok([x["ScheduledActionName"] for x in sched] == ["nightly"] and sched[0]["Recurrence"] == "0 2 * * *",
       "DescribeScheduledActions")
    e = code_of(c.create_launch_configuration, LaunchConfigurationName="x", ImageId="ami-1", InstanceType="t2.micro")
    ok(e == ("InvalidAction", 400), "an action bellows does not implement: 400 InvalidAction")


def elbv2(a):
    c = client("elbv2")
    lbs = c.describe_load_balancers(Names=[a.load_balancer])["LoadBalancers"]
    lb = lbs[0]
    ok(lb["State"]["Code"] == "active" and lb["Type"] == "application", "DescribeLoadBalancers: active ALB")
    ok(len(lb["SecurityGroups"]) == 1 and lb["SecurityGroups"][0].startswith("sg-")
       and len(lb["SecurityGroups"][0]) == 20, "the load balancer's security group is sg- and 17 hex digits")
    ok(":loadbalancer/app/" in lb["LoadBalancerArn"], "the load balancer's ARN")
    ok(code_of(c.describe_load_balancers, Names=["no-such-lb"]) == ("LoadBalancerNotFound", 400),
       "an unknown load balancer: LoadBalancerNotFound")
    listeners = c.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    ok(len(listeners) >= 1 and listeners[0]["Protocol"] == "HTTP", "DescribeListeners")
    ok(code_of(c.describe_listeners, ListenerArns=[listeners[0]["ListenerArn"] + "0"]) == ("ListenerNotFound", 400),
       "an unknown listener: ListenerNotFound")
    rules = c.describe_rules(ListenerArn=listeners[0]["ListenerArn"])["Rules"]
    ok(any(r["IsDefault"] for r in rules), "DescribeRules has the default rule")
    first = c.describe_rules(ListenerArn=listeners[0]["ListenerArn"], PageSize=1)
    rest = c.describe_rules(ListenerArn=listeners[0]["ListenerArn"], PageSize=1, Marker=first["NextMarker"])
    ok([r["RuleArn"] for r in first["Rules"] + rest["Rules"]] == [r["RuleArn"] for r in rules[:2]],
       "DescribeRules pages by PageSize with Marker and NextMarker")
    tgs = c.describe_target_groups()["TargetGroups"]
    tg = next(t for t in tgs if t["TargetGroupName"] == a.target_group)
    ok(f":targetgroup/{a.target_group}/" in tg["TargetGroupArn"], f"the target group's ARN: {tg['TargetGroupArn']}")
    ok(code_of(c.describe_target_groups, Names=["no-such-tg"]) == ("TargetGroupNotFound", 400),
       "an unknown target group: TargetGroupNotFound")
    health = c.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
    ok(health and all(h["TargetHealth"]["State"] in ("initial", "healthy", "unhealthy", "draining", "unused")
                      for h in health), "DescribeTargetHealth lists the targets with ALB's states")
    bad = tg["TargetGroupArn"].rsplit("/", 1)[0] + "/0000000000000000"
    ok(code_of(c.describe_target_health, TargetGroupArn=bad) == ("TargetGroupNotFound", 400),
       "target health of an unknown target group: TargetGroupNotFound")
    tags = c.describe_tags(ResourceArns=[lb["LoadBalancerArn"], tg["TargetGroupArn"]])["TagDescriptions"]
    ok(len(tags) == 2, "DescribeTags")
    attrs = c.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"]
    ok(any(x["Key"] == "deregistration_delay.timeout_seconds" for x in attrs), "DescribeTargetGroupAttributes")
    attrs = c.describe_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]
    ok(any(x["Key"] == "idle_timeout.timeout_seconds" for x in attrs), "DescribeLoadBalancerAttributes")
    return lb["SecurityGroups"][0], listeners[0]["Port"]


def ec2(a, sg, listener_port):
    c = client("ec2")
    groups = c.describe_security_groups(GroupIds=[sg])["SecurityGroups"]
    perm = groups[0]["IpPermissions"][0]
    port = perm["FromPort"]
    ok(port == perm["ToPort"] == listener_port,
       f"the security group's rule names the listener's port as DescribeListeners gives it ({port})")
    ok(perm["IpProtocol"] == "tcp" and any(r["CidrIp"] == "0.0.0.0/0" for r in perm["IpRanges"]),
       "DescribeSecurityGroups shows the listener's allow-list")
    e = code_of(c.describe_security_groups, GroupIds=["sg-00000000000000000"])
    ok(e == ("InvalidGroup.NotFound", 400), "an unknown security group: InvalidGroup.NotFound")
    e = code_of(c.authorize_security_group_ingress, GroupId=sg, IpProtocol="tcp", FromPort=port, ToPort=port,
                CidrIp="0.0.0.0/0")
    ok(e == ("InvalidPermission.Duplicate", 400), "authorizing a rule that is there: InvalidPermission.Duplicate")
    v6 = [{"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}]
    c.revoke_security_group_ingress(GroupId=sg, IpPermissions=v6)
    after = c.describe_security_groups(GroupIds=[sg])["SecurityGroups"][0]["IpPermissions"][0]
    ok(after["Ipv6Ranges"] == [], "RevokeSecurityGroupIngress of an IPv6 range")
    e = code_of(c.revoke_security_group_ingress, GroupId=sg, IpPermissions=v6)
    ok(e == ("InvalidPermission.NotFound", 400), "revoking a rule that is not there: InvalidPermission.NotFound")
    c.authorize_security_group_ingress(GroupId=sg, IpPermissions=v6)
    ok(True, "AuthorizeSecurityGroupIngress of an IPv6 range")
    res = c.describe_instances()["Reservations"]
    insts = [i for r in res for i in r["Instances"]]
    ok(insts and all(i["PrivateIpAddress"].startswith("127.") for i in insts if i["State"]["Name"] == "running"),
       "DescribeInstances shows private addresses")
    e = code_of(c.describe_instances, InstanceIds=["i-00000000000000000"])
    ok(e == ("InvalidInstanceID.NotFound", 400), "an unknown instance: InvalidInstanceID.NotFound")
    zones = c.describe_availability_zones()["AvailabilityZones"]
    ok(len(zones) >= 1 and all(z["State"] == "available" for z in zones), "DescribeAvailabilityZones")
    e = code_of(c.describe_key_pairs)
    ok(e == ("InvalidAction", 400), "EC2 action not implemented: InvalidAction")


def cloudwatch(a, protocol):
    path = narrowed_data_path(protocol)
    c = client("cloudwatch", data_path=path)
    ok(c.meta.service_model.resolved_protocol == protocol, f"cloudwatch speaks {protocol}")
    c.put_metric_data(
        Namespace="Workshop",
        MetricData=[{"MetricName": "Orders", "Dimensions": [{"Name": "Shop", "Value": protocol}], "Value": 1.0}],
    )
    ok(True, f"[{protocol}] PutMetricData")
    # Forced compression: the body arrives gzipped.
    gz = client("cloudwatch", data_path=path,
                config={"request_min_compression_size_bytes": 1, "disable_request_compression": False})
    gz.put_metric_data(
        Namespace="Workshop",
        MetricData=[{"MetricName": "Orders", "Dimensions": [{"Name": "Shop", "Value": protocol + "-gz"}],
                     "Values": [1.0, 2.0], "Counts": [1.0, 1.0]}],
    )
    ok(True, f"[{protocol}] PutMetricData gzipped")
    found = c.list_metrics(Namespace="Workshop", MetricName="Orders",
                           Dimensions=[{"Name": "Shop", "Value": protocol + "-gz"}])["Metrics"]
    ok(len(found) == 1, f"[{protocol}] ListMetrics finds the gzipped put")
    alarms = c.describe_alarms()["MetricAlarms"]
    ok(any(x["AlarmName"] == a.alarm for x in alarms), f"[{protocol}] DescribeAlarms")
    now = time.time()
    dims = [{"Name": "Shop", "Value": protocol}]
    stats = c.get_metric_statistics(Namespace="Workshop", MetricName="Orders", Dimensions=dims,
                                    StartTime=now - 300, EndTime=now + 60, Period=60,
                                    Statistics=["Sum", "SampleCount"], ExtendedStatistics=["p50"])
    total = sum(p["Sum"] for p in stats["Datapoints"])
    ok(total == 1.0, f"[{protocol}] GetMetricStatistics sums what was put ({stats['Datapoints']})")
    ok(all("p50" in p["ExtendedStatistics"] for p in stats["Datapoints"]), f"[{protocol}] ... with p50")
    e = code_of(c.get_metric_statistics, Namespace="Workshop", MetricName="Orders", StartTime=now - 86400 * 3,
                EndTime=now, Period=60, Statistics=["Sum"])
    ok(e == ("InvalidParameterCombination", 400), f"[{protocol}] too many datapoints: InvalidParameterCombination")
    data = c.get_metric_data(
        StartTime=now - 300, EndTime=now + 60,
        MetricDataQueries=[
            {"Id": "m1", "ReturnData": False, "MetricStat": {
                "Metric": {"Namespace": "Workshop", "MetricName": "Orders", "Dimensions": dims},
                "Period": 60, "Stat": "Sum"}},
            {"Id": "e1", "Expression": "m1 * 100", "Label": "hundredfold"},
        ],
    )["MetricDataResults"]
    ok(len(data) == 1 and data[0]["Id"] == "e1" and sum(data[0]["Values"]) == 100.0,
       f"[{protocol}] GetMetricData with metric math ({data})")
    e = code_of(c.get_metric_data, StartTime=now - 300, EndTime=now,
                MetricDataQueries=[{"Id": "e1", "Expression": "nope * 2"}])
    ok(e == ("ValidationError", 400), f"[{protocol}] an expression on an unknown id: ValidationError ({e})")
    hist = c.describe_alarm_history()["AlarmHistoryItems"]
    ok(isinstance(hist, list), f"[{protocol}] DescribeAlarmHistory")
    c.set_alarm_state(AlarmName=a.alarm, StateValue="ALARM", StateReason=f"drill over {protocol}")
    # The state holds until the alarm's next period (10 s) decides again from the data,
    # so the history is where the change is sure to be seen.
    items = c.describe_alarm_history(AlarmName=a.alarm)["AlarmHistoryItems"]
    ok(any(f"drill over {protocol}" in h["HistoryData"] and "to ALARM" in h["HistorySummary"] for h in items),
       f"[{protocol}] SetAlarmState ALARM is in the alarm's history")
    c.set_alarm_state(AlarmName=a.alarm, StateValue="OK", StateReason="drill over")
    e = code_of(c.set_alarm_state, AlarmName="no-such-alarm", StateValue="OK", StateReason="x")
    ok(e == ("ResourceNotFound", 404), f"[{protocol}] SetAlarmState on an unknown alarm: 404 ResourceNotFound ({e})")
    e = code_of(c.put_metric_data, Namespace="AWS/EC2", MetricData=[{"MetricName": "X", "Value": 1.0}])
    ok(e == ("InvalidParameterValue", 400), f"[{protocol}] a reserved namespace: InvalidParameterValue ({e})")
    e = code_of(c.delete_dashboards, DashboardNames=["x"])
    ok(e == ("InvalidAction", 400), f"[{protocol}] an action not implemented: InvalidAction ({e})")
    bad = client("cloudwatch", data_path=path, aws_secret_access_key="not-the-secret")
    e = code_of(bad.list_metrics)
    ok(e == ("SignatureDoesNotMatch", 403), f"[{protocol}] a bad signature: 403 SignatureDoesNotMatch ({e})")
    unknown = client("cloudwatch", data_path=path, aws_access_key_id="AKIAUNKNOWNKEY000000")
    e = code_of(unknown.list_metrics)
    ok(e == ("InvalidClientTokenId", 403), f"[{protocol}] an unknown key: 403 InvalidClientTokenId ({e})")


def policy_arn(a, name):
    c = client("autoscaling")
    policies = c.describe_policies(AutoScalingGroupName=a.group)["ScalingPolicies"]
    return next(p["PolicyARN"] for p in policies if p["PolicyName"] == name)


def alarms_put(a, protocol):
    """PutMetricAlarm creates and redefines an alarm that DescribeAlarms reads back as
    written; DeleteAlarms removes it, all or none."""
    c = client("cloudwatch", data_path=narrowed_data_path(protocol))
    name = f"put-{protocol}"
    arn = policy_arn(a, "add-two")
    alarm = dict(
        AlarmName=name, Namespace="Workshop", MetricName="Orders",
        Dimensions=[{"Name": "Shop", "Value": protocol}], Statistic="Sum", Period=10,
        EvaluationPeriods=3, DatapointsToAlarm=2, Threshold=1000.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching",
        AlarmActions=[arn], Unit="Count",
    )
    c.put_metric_alarm(**alarm)
    got = c.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    ok(len(got) == 1, f"[{protocol}] PutMetricAlarm creates {name}")
    g = got[0] if got else {}
    for key in ("Namespace", "MetricName", "Dimensions", "Statistic", "Period", "EvaluationPeriods",
                "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData", "AlarmActions"):
        ok(g.get(key) == alarm[key], f"[{protocol}] ... its {key} reads back as written ({g.get(key)!r})")
    c.put_metric_alarm(**{**alarm, "Threshold": 2000.0})
    g = c.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    ok(g["Threshold"] == 2000.0, f"[{protocol}] PutMetricAlarm again redefines it")
    p99 = {k: v for k, v in alarm.items() if k != "Statistic"}
    c.put_metric_alarm(**{**p99, "AlarmName": name + "-p99", "ExtendedStatistic": "p99"})
    g = c.describe_alarms(AlarmNames=[name + "-p99"])["MetricAlarms"]
    ok(g and g[0].get("ExtendedStatistic") == "p99", f"[{protocol}] an alarm on a percentile")
    bad_policy = arn.rsplit(":policyName/", 1)[0] + ":policyName/no-such-policy"
    e = code_of(c.put_metric_alarm, **{**alarm, "AlarmActions": [bad_policy]})
    ok(e == ("InvalidParameterValue", 400), f"[{protocol}] an action on an unknown policy: InvalidParameterValue ({e})")
    e = code_of(c.put_metric_alarm, **{**alarm, "AlarmActions": ["not-an-arn"]})
    ok(e == ("InvalidParameterValue", 400), f"[{protocol}] an action that is no ARN: InvalidParameterValue ({e})")
    e = code_of(c.put_metric_alarm, **{**alarm, "DatapointsToAlarm": 4})
    ok(e == ("InvalidParameterValue", 400), f"[{protocol}] more datapoints than periods: InvalidParameterValue ({e})")
    e = code_of(c.put_metric_alarm, **{**alarm, "ComparisonOperator": "LessThanLowerOrGreaterThanUpperThreshold"})
    ok(e == ("InvalidParameterValue", 400), f"[{protocol}] an anomaly band: InvalidParameterValue ({e})")
    e = code_of(c.delete_alarms, AlarmNames=[name, "no-such-alarm"])
    ok(e == ("ResourceNotFound", 404), f"[{protocol}] DeleteAlarms with an unknown name: ResourceNotFound ({e})")
    ok(len(c.describe_alarms(AlarmNames=[name])["MetricAlarms"]) == 1, f"[{protocol}] ... and deletes none")
    c.delete_alarms(AlarmNames=[name, name + "-p99"])
    ok(c.describe_alarms(AlarmNames=[name, name + "-p99"])["MetricAlarms"] == [], f"[{protocol}] DeleteAlarms")


def kept_for_restart(a):
    """An alarm put and a file's alarm deleted, for the caller to find so after a restart."""
    c = client("cloudwatch")
    c.put_metric_alarm(
        AlarmName="kept-by-aws", Namespace="Workshop", MetricName="Orders", Statistic="Sum",
        Period=60, EvaluationPeriods=1, Threshold=12345.0, ComparisonOperator="GreaterThanThreshold",
        AlarmActions=[policy_arn(a, "add-two")],
    )
    c.delete_alarms(AlarmNames=["few-connections"])
    names = [x["AlarmName"] for x in c.describe_alarms()["MetricAlarms"]]
    ok("kept-by-aws" in names and "few-connections" not in names, "an alarm put, a file's alarm deleted")


def signatures():
    for service, call in [
        ("sts", lambda c: c.get_caller_identity()),
        ("autoscaling", lambda c: c.describe_auto_scaling_groups()),
        ("elbv2", lambda c: c.describe_load_balancers()),
        ("ec2", lambda c: c.describe_security_groups()),
    ]:
        e = code_of(call, client(service, aws_secret_access_key="not-the-secret"))
        ok(e == ("SignatureDoesNotMatch", 403), f"{service}: a bad signature is 403 SignatureDoesNotMatch ({e})")
        e = code_of(call, client(service, aws_access_key_id="AKIAUNKNOWNKEY000000"))
        ok(e == ("InvalidClientTokenId", 403), f"{service}: an unknown key is 403 InvalidClientTokenId ({e})")


def alarm_moves(a):
    """A custom metric put by boto3 moves the stack's alarm on it into ALARM."""
    c = client("cloudwatch")
    print(f"boto3's own choice of protocol for CloudWatch: {c.meta.service_model.resolved_protocol}")
    deadline = time.time() + 60
    state = None
    while time.time() < deadline:
        c.put_metric_data(Namespace="Workshop", MetricData=[{"MetricName": "Orders", "Value": 10.0}])
        state = c.describe_alarms(AlarmNames=[a.alarm])["MetricAlarms"][0]["StateValue"]
        if state == "ALARM":
            break
        time.sleep(1)
    ok(state == "ALARM", f"a custom metric put by boto3 moves {a.alarm} to ALARM (last {state})")
    hist = c.describe_alarm_history(AlarmName=a.alarm)["AlarmHistoryItems"]
    ok(any("to ALARM" in h["HistorySummary"] for h in hist), "DescribeAlarmHistory shows the change")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--group", required=True)
    p.add_argument("--target-group", required=True)
    p.add_argument("--load-balancer", required=True)
    p.add_argument("--alarm", required=True)
    a = p.parse_args()
    for v in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        if not os.environ.get(v):
            sys.exit(f"{v} is not set: run with the variables `bellows aws-env` prints")
    print(f"boto3 {boto3.__version__}, botocore {botocore.__version__}")
    sts(a)
    autoscaling(a)
    sg, listener_port = elbv2(a)
    ec2(a, sg, listener_port)
    for protocol in ("json", "query", "smithy-rpc-v2-cbor"):
        cloudwatch(a, protocol)
        alarms_put(a, protocol)
    signatures()
    alarm_moves(a)
    kept_for_restart(a)
    print(f"{CHECKED['answers']} answers and {CHECKED['elements']} elements checked against botocore's models")
    ok(CHECKED["answers"] > 50, "the shape checks saw the answers")
    if FAILURES:
        print(f"\n{len(FAILURES)} checks failed:")
        for f in FAILURES:
            print(f"  {f}")
        sys.exit(1)
    print("every check passed")


if __name__ == "__main__":
    main()
