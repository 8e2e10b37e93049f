"""The candidates microservice as seed 004 describes it: Flask, boto3 and DynamoDB, the
instance id from the metadata service, credentials from the instance profile.

Nothing here knows bellows: boto3 finds its region, endpoint and credentials the way it
does on EC2 (AWS_DEFAULT_REGION, AWS_ENDPOINT_URL when set, the instance profile behind
the metadata service).

    GET  /gtg                 200, empty; ?details=true: {"connected": "true", "instance-id": ...}
    POST /candidate/<name>    stores it: {"CandidateName": name}; 500 "Unable to update"
    GET  /candidate/<name>    the document, or 404 "Not Found"
    GET  /candidates          every candidate, or 404 "Not Found" when there is none
"""

import json
import os
import urllib.request

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, Response, jsonify

TABLE = os.environ.get("CANDIDATES_TABLE", "Candidates")
# The SDKs' own variable for where the metadata service is; EC2's address otherwise.
METADATA = os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254/").rstrip("/")

app = Flask(__name__)
table = boto3.resource("dynamodb").Table(TABLE)


def instance_id():
    """The instance id, through IMDSv2 as EC2 recommends."""
    token_req = urllib.request.Request(
        METADATA + "/latest/api/token", method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    with urllib.request.urlopen(token_req, timeout=2) as r:
        token = r.read().decode()
    req = urllib.request.Request(METADATA + "/latest/meta-data/instance-id",
                                 headers={"X-aws-ec2-metadata-token": token})
    with urllib.request.urlopen(req, timeout=2) as r:
        return r.read().decode()


def not_found():
    return Response("Not Found", status=404)


@app.route("/gtg")
def gtg():
    from flask import request
    if request.args.get("details"):
        return jsonify({"connected": "true", "instance-id": instance_id()})
    return Response(status=200)


@app.route("/candidate/<name>", methods=["GET"])
def get_candidate(name):
    try:
        item = table.get_item(Key={"CandidateName": name}).get("Item")
    except (BotoCoreError, ClientError):
        return not_found()
    if not item:
        return not_found()
    return Response(json.dumps(item, default=str), mimetype="application/json")


@app.route("/candidate/<name>", methods=["POST"])
def post_candidate(name):
    try:
        table.put_item(Item={"CandidateName": name})
    except (BotoCoreError, ClientError) as e:
        app.logger.error("put_item failed: %s", e)
        return Response("Unable to update", status=500)
    return jsonify({"CandidateName": name})


@app.route("/candidates")
def candidates():
    try:
        items, start = [], None
        while True:
            kw = {"ExclusiveStartKey": start} if start else {}
            page = table.scan(**kw)
            items += page["Items"]
            start = page.get("LastEvaluatedKey")
            if not start:
                break
    except (BotoCoreError, ClientError):
        return not_found()
    if not items:
        return not_found()
    return Response(json.dumps(items, default=str), mimetype="application/json")


if __name__ == "__main__":
    app.run(host=os.environ.get("PRIVATE_IP", "0.0.0.0"), port=int(os.environ.get("PORT", "5000")))
