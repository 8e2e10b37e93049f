#!/usr/bin/env python3
"""Run as an instance: boto3's default credential chain with no configuration, as an
app on EC2 would. Writes what each call answered to $RESULT as JSON, then stays up."""

import json
import os
import time

import boto3
from botocore.exceptions import ClientError

out = {"endpoint": os.environ.get("AWS_ENDPOINT_URL"), "region": os.environ.get("AWS_DEFAULT_REGION")}


def code(call):
    try:
        call()
        return "allowed"
    except ClientError as e:
        return f"{e.response['Error']['Code']} {e.response['ResponseMetadata']['HTTPStatusCode']}"


try:
    creds = boto3.Session().get_credentials()
    out["method"] = creds.method
    out["key"] = creds.access_key
    out["has_token"] = bool(creds.token)
    ddb = boto3.client("dynamodb")
    table = "role-" + os.environ["INSTANCE_ID"]
    ddb.create_table(TableName=table, AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
    ddb.put_item(TableName=table, Item={"id": {"S": "x"}, "by": {"S": os.environ["INSTANCE_ID"]}})
    out["item"] = ddb.get_item(TableName=table, Key={"id": {"S": "x"}})["Item"]["by"]["S"]
    out["metrics"] = code(lambda: boto3.client("cloudwatch").put_metric_data(
        Namespace="App", MetricData=[{"MetricName": "Hits", "Value": 1}]))
    out["identity"] = boto3.client("sts").get_caller_identity()["Arn"]
    out["set_desired_capacity"] = code(lambda: boto3.client("autoscaling").set_desired_capacity(
        AutoScalingGroupName=os.environ["GROUP"], DesiredCapacity=3))
    out["revoke_ingress"] = code(lambda: boto3.client("ec2").revoke_security_group_ingress(
        GroupId="sg-0123456789abcdef0", IpProtocol="tcp", FromPort=80, ToPort=80, CidrIp="0.0.0.0/0"))
    out["set_alarm_state"] = code(lambda: boto3.client("cloudwatch").set_alarm_state(
        AlarmName="x", StateValue="ALARM", StateReason="test"))
except Exception as e:  # noqa: BLE001 - the test reads what went wrong
    out["error"] = repr(e)
tmp = os.environ["RESULT"] + ".tmp"
with open(tmp, "w") as f:
    json.dump(out, f)
os.rename(tmp, os.environ["RESULT"])
while True:
    time.sleep(60)
