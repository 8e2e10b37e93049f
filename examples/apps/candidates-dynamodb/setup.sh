#!/bin/sh
# The instance's user data: install the app's packages from PyPI when they are missing,
# and create its table once (another instance may have created it first).
set -e
python3 -c 'import flask, boto3' 2>/dev/null || python3 -m pip install --quiet --user -r "$(dirname "$0")/requirements.txt"
python3 - <<'PY'
import os
import boto3
from botocore.exceptions import ClientError

name = os.environ.get("CANDIDATES_TABLE", "Candidates")
client = boto3.client("dynamodb")
try:
    client.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "CandidateName", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "CandidateName", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
except ClientError as e:
    if e.response["Error"]["Code"] != "ResourceInUseException":
        raise
client.get_waiter("table_exists").wait(TableName=name)
PY
