#!/usr/bin/env python3
"""boto3 against bellows' DynamoDB, every answer checked against what DynamoDB's
documentation says it answers (not against what bellows printed once): tables, items of
every type, exact numbers, conditional writes, update expressions, queries and scans
with their pagination, batches, projections, and the errors with their codes.

Run with the variables `bellows aws-env` prints:

    python3 tests/aws/dynamodb.py

Exits 0 when every check passed; prints each check as it goes.
"""

import json
import sys
import time
from decimal import Decimal

import boto3
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

FAILURES = []


def ok(cond, what):
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        FAILURES.append(what)


def fails(call, code, what, message=None):
    """The call fails with this error code (and a message containing `message`)."""
    try:
        call()
    except ClientError as e:
        err = e.response["Error"]
        good = err["Code"] == code and (message is None or message in err["Message"])
        ok(good, f"{what}: {err['Code']}: {err['Message']}")
        return
    ok(False, f"{what}: succeeded, {code} expected")


ddb = boto3.client("dynamodb")
res = boto3.resource("dynamodb")
SUFFIX = str(int(time.time() * 1000))
T = "orders-" + SUFFIX
S = "people-" + SUFFIX

# --- Tables --------------------------------------------------------------------------

r = ddb.create_table(
    TableName=T,
    AttributeDefinitions=[
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "N"},
    ],
    KeySchema=[
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
)
d = r["TableDescription"]
ok(d["TableName"] == T and d["TableStatus"] in ("CREATING", "ACTIVE"), "CreateTable answers the table, CREATING")
ok(d["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}], "its key schema")
ok(d["TableArn"].endswith(":table/" + T) and d["TableArn"].startswith("arn:aws:dynamodb:"), "its ARN")
ddb.get_waiter("table_exists").wait(TableName=T, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
d = ddb.describe_table(TableName=T)["Table"]
ok(d["TableStatus"] == "ACTIVE" and d["ItemCount"] == 0, "DescribeTable: ACTIVE, no items")
ok(d["ProvisionedThroughput"]["ReadCapacityUnits"] == 5, "throughput as created")

res.create_table(
    TableName=S,
    AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
    BillingMode="PAY_PER_REQUEST",
).wait_until_exists()
d = ddb.describe_table(TableName=S)["Table"]
ok(d["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST", "on-demand billing recorded")

fails(lambda: ddb.create_table(
    TableName=T,
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    BillingMode="PAY_PER_REQUEST"), "ResourceInUseException", "creating it twice", "Table already exists")
fails(lambda: ddb.create_table(
    TableName="bad-" + SUFFIX,
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "x", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    BillingMode="PAY_PER_REQUEST"), "ValidationException", "an attribute definition not in the key schema",
    "Number of attributes in KeySchema does not exactly match")
fails(lambda: ddb.create_table(
    TableName="bad-" + SUFFIX,
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}]), "ValidationException",
    "provisioned billing without throughput", "ReadCapacityUnits and WriteCapacityUnits must both be specified")
fails(lambda: ddb.describe_table(TableName="nothere-" + SUFFIX), "ResourceNotFoundException",
      "describing a table that is not there", "Requested resource not found")

names = ddb.list_tables()["TableNames"]
ok(T in names and S in names and names == sorted(names), "ListTables lists both, in order")
first = ddb.list_tables(Limit=1)
ok(len(first["TableNames"]) == 1 and first["LastEvaluatedTableName"] == first["TableNames"][0], "ListTables pages: Limit 1")
pages = [n for p in ddb.get_paginator("list_tables").paginate(PaginationConfig={"PageSize": 1}) for n in p["TableNames"]]
ok(pages == names, "ListTables' paginator walks every name once")

u = ddb.update_table(TableName=T, ProvisionedThroughput={"ReadCapacityUnits": 7, "WriteCapacityUnits": 9})
ok(u["TableDescription"]["ProvisionedThroughput"]["WriteCapacityUnits"] == 9, "UpdateTable answers the new throughput")
d = ddb.describe_table(TableName=T)["Table"]
ok((d["ProvisionedThroughput"]["ReadCapacityUnits"], d["ProvisionedThroughput"]["WriteCapacityUnits"]) == (7, 9), "and records it")

# --- Items of every type -------------------------------------------------------------

every = {
    "pk": {"S": "types"},
    "sk": {"N": "1"},
    "s": {"S": "héllo"},
    "n": {"N": "-12.50"},
    "b": {"B": b"\x00\x01\xff"},
    "t": {"BOOL": True},
    "z": {"NULL": True},
    "l": {"L": [{"S": "a"}, {"N": "1E2"}]},
    "m": {"M": {"inner": {"S": "x"}, "deep": {"M": {"k": {"BOOL": False}}}}},
    "ss": {"SS": ["b", "a"]},
    "ns": {"NS": ["3", "1.0", "2"]},
    "bs": {"BS": [b"\x02", b"\x01"]},
}
ok(ddb.put_item(TableName=T, Item=every).get("Attributes") is None, "PutItem answers no attributes by default")
got = ddb.get_item(TableName=T, Key={"pk": {"S": "types"}, "sk": {"N": "1"}})["Item"]
# DynamoDB trims leading and trailing zeros of numbers; sets come back in any order.
want = dict(every, n={"N": "-12.5"}, l={"L": [{"S": "a"}, {"N": "100"}]})
for k in ("ss", "ns", "bs"):
    got[k] = {list(got[k])[0]: sorted(got[k][list(got[k])[0]])}
want["ss"] = {"SS": ["a", "b"]}
want["ns"] = {"NS": ["1", "2", "3"]}
want["bs"] = {"BS": [b"\x01", b"\x02"]}
ok(got == want, f"GetItem returns every type as written: {got}")
ok("Item" not in ddb.get_item(TableName=T, Key={"pk": {"S": "nobody"}, "sk": {"N": "1"}}), "GetItem of a missing item has no Item")

fails(lambda: ddb.put_item(TableName=T, Item={"pk": {"S": "x"}, "ss": {"SS": []}}), "ValidationException",
      "an empty set", "may not be empty")
fails(lambda: ddb.put_item(TableName=T, Item={"pk": {"S": "x"}, "sk": {"N": "1"}, "ss": {"SS": ["a", "a"]}}),
      "ValidationException", "a set with duplicates", "contains duplicates")
fails(lambda: ddb.put_item(TableName=T, Item={"pk": {"S": "x"}}), "ValidationException", "an item without its sort key",
      "Missing the key sk in the item")
fails(lambda: ddb.put_item(TableName=T, Item={"pk": {"N": "1"}, "sk": {"N": "1"}}), "ValidationException",
      "a key of the wrong type", "Type mismatch for key pk expected: S actual: N")
fails(lambda: ddb.put_item(TableName=T, Item={"pk": {"S": ""}, "sk": {"N": "1"}}), "ValidationException",
      "an empty string key", "cannot contain an empty string value")
fails(lambda: ddb.get_item(TableName=T, Key={"pk": {"S": "types"}}), "ValidationException",
      "a key without its sort key", "The provided key element does not match the schema")
fails(lambda: ddb.get_item(TableName="nothere-" + SUFFIX, Key={"pk": {"S": "a"}}), "ResourceNotFoundException",
      "an item of a table that is not there", "Requested resource not found")
fails(lambda: ddb.put_item(TableName=T, Item={"pk": {"S": "big"}, "sk": {"N": "1"}, "v": {"S": "x" * 410000}}),
      "ValidationException", "an item over 400 KB", "Item size has exceeded the maximum allowed size")

# --- Numbers: exact decimals ---------------------------------------------------------

num = res.Table(S)
num.put_item(Item={"name": "acc", "v": Decimal("0.1")})
r = num.update_item(Key={"name": "acc"}, UpdateExpression="SET v = v + :d", ExpressionAttributeValues={":d": Decimal("0.2")},
                    ReturnValues="UPDATED_NEW")
ok(r["Attributes"] == {"v": Decimal("0.3")}, f"0.1 + 0.2 is exactly 0.3: {r['Attributes']}")
big = "12345678901234567890123456789012345678"
ddb.put_item(TableName=S, Item={"name": {"S": "big"}, "v": {"N": big}, "tiny": {"N": "1E-130"}, "huge": {"N": "9.9999999999999999999999999999999999999E+125"}})
g = ddb.get_item(TableName=S, Key={"name": {"S": "big"}})["Item"]
ok(g["v"]["N"] == big, "a 38-digit number comes back digit for digit")
ok(Decimal(g["tiny"]["N"]) == Decimal("1E-130") and Decimal(g["huge"]["N"]) == Decimal("9.9999999999999999999999999999999999999E+125"),
   "the smallest and largest magnitudes are kept exactly")
r = ddb.update_item(TableName=S, Key={"name": {"S": "big"}}, UpdateExpression="ADD v :one",
                    ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="UPDATED_NEW")
ok(r["Attributes"]["v"]["N"] == "12345678901234567890123456789012345679", "ADD on a 38-digit number is exact")
fails(lambda: ddb.put_item(TableName=S, Item={"name": {"S": "x"}, "v": {"N": "1234567890123456789012345678901234567890"}}),
      "ValidationException", "39 or more significant digits", "Attempting to store more than 38 significant digits in a Number")
fails(lambda: ddb.put_item(TableName=S, Item={"name": {"S": "x"}, "v": {"N": "1E126"}}),
      "ValidationException", "a number too large", "Number overflow")
fails(lambda: ddb.put_item(TableName=S, Item={"name": {"S": "x"}, "v": {"N": "abc"}}),
      "ValidationException", "a number that is not one", "cannot be converted to a numeric value")
ddb.put_item(TableName=S, Item={"name": {"S": "ten"}, "v": {"N": "10"}})
ddb.put_item(TableName=S, Item={"name": {"S": "nine"}, "v": {"N": "9"}})
r = ddb.scan(TableName=S, FilterExpression="v > :x", ExpressionAttributeValues={":x": {"N": "9.5"}})
ok(sorted(i["name"]["S"] for i in r["Items"]) == ["big", "ten"], "numbers compare numerically (10 > 9.5, not as text)")

# --- Conditional writes --------------------------------------------------------------

people = res.Table(S)
people.put_item(Item={"name": "ada", "age": 36, "version": 1}, ConditionExpression="attribute_not_exists(#n)",
                ExpressionAttributeNames={"#n": "name"})
fails(lambda: people.put_item(Item={"name": "ada", "age": 99}, ConditionExpression="attribute_not_exists(#n)",
                              ExpressionAttributeNames={"#n": "name"}),
      "ConditionalCheckFailedException", "a second put if not exists", "The conditional request failed")
ok(people.get_item(Key={"name": "ada"})["Item"]["age"] == 36, "the failed put changed nothing")
people.update_item(Key={"name": "ada"}, UpdateExpression="SET version = version + :one, age = :a",
                   ConditionExpression=Attr("version").eq(1), ExpressionAttributeValues={":one": 1, ":a": 37})
fails(lambda: people.update_item(Key={"name": "ada"}, UpdateExpression="SET age = :a",
                                 ConditionExpression=Attr("version").eq(1), ExpressionAttributeValues={":a": 50}),
      "ConditionalCheckFailedException", "an update on a stale version")
ok(people.get_item(Key={"name": "ada"})["Item"] == {"name": "ada", "age": 37, "version": 2}, "optimistic locking: version 2, age 37")
for cond, vals, want_ok, what in [
    ("age BETWEEN :lo AND :hi", {":lo": 30, ":hi": 40}, True, "BETWEEN"),
    ("age > :lo AND (version = :v OR attribute_exists(nothing))", {":lo": 30, ":v": 2}, True, "AND / OR"),
    ("NOT age = :a", {":a": 37}, False, "NOT"),
    ("begins_with(#n, :p)", {":p": "ad"}, True, "begins_with"),
    ("size(#n) = :three", {":three": 3}, True, "size"),
    ("age IN (:a, :b)", {":a": 1, ":b": 2}, False, "IN"),
    ("age <> :a", {":a": 37}, False, "<>"),
    ("#s <> :a", {":a": "done"}, True, "<> on a missing attribute (not equal to anything)"),
    ("#s = :a", {":a": "done"}, False, "= on a missing attribute"),
]:
    names = {k: v for k, v in {"#n": "name", "#s": "status"}.items() if k in cond} or None
    kw = {"ExpressionAttributeNames": names} if names else {}
    try:
        people.put_item(Item={"name": "ada", "age": 37, "version": 2}, ConditionExpression=cond,
                        ExpressionAttributeValues=vals, **kw)
        ok(want_ok, f"condition {what}: {cond} held")
    except ClientError as e:
        ok(not want_ok and e.response["Error"]["Code"] == "ConditionalCheckFailedException",
           f"condition {what}: {cond} failed with {e.response['Error']['Code']}")
people.put_item(Item={"name": "cy", "tags": {"a", "b"}, "notes": ["x"]})
r = people.delete_item(Key={"name": "cy"}, ConditionExpression="contains(tags, :t)", ExpressionAttributeValues={":t": "a"},
                       ReturnValues="ALL_OLD")
ok(r["Attributes"] == {"name": "cy", "tags": {"a", "b"}, "notes": ["x"]}, "DeleteItem with contains(), ALL_OLD")
ok("Item" not in people.get_item(Key={"name": "cy"}), "and the item is gone")
fails(lambda: people.delete_item(Key={"name": "ada"}, ConditionExpression="attribute_not_exists(age)"),
      "ConditionalCheckFailedException", "a conditional delete that fails")
fails(lambda: ddb.put_item(TableName=S, Item={"name": {"S": "q"}}, ConditionExpression="a = :a",
                           ExpressionAttributeValues={":a": {"S": "1"}, ":b": {"S": "2"}}),
      "ValidationException", "an unused expression attribute value", "unused in expressions: keys: {:b}")
fails(lambda: ddb.put_item(TableName=S, Item={"name": {"S": "q"}}, ConditionExpression="a = :zz",
                           ExpressionAttributeValues={":a": {"S": "1"}}),
      "ValidationException", "an undefined expression attribute value", "attribute value: :zz")
fails(lambda: ddb.put_item(TableName=S, Item={"name": {"S": "q"}}, ConditionExpression="a = = :a",
                           ExpressionAttributeValues={":a": {"S": "1"}}),
      "ValidationException", "a syntax error", "Invalid ConditionExpression: Syntax error")

# --- Concurrent writers: each conditional write is atomic ------------------------------

import threading

def adder():
    c = boto3.client("dynamodb")
    for _ in range(25):
        c.update_item(TableName=S, Key={"name": {"S": "counter"}}, UpdateExpression="ADD hits :one",
                      ExpressionAttributeValues={":one": {"N": "1"}})

threads = [threading.Thread(target=adder) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
hits = ddb.get_item(TableName=S, Key={"name": {"S": "counter"}}, ConsistentRead=True)["Item"]["hits"]["N"]
ok(hits == "200", f"8 clients x 25 concurrent ADDs count 200: {hits}")
wins = []

def claimer(i):
    c = boto3.client("dynamodb")
    try:
        c.put_item(TableName=S, Item={"name": {"S": "lock"}, "owner": {"N": str(i)}},
                   ConditionExpression="attribute_not_exists(#n)", ExpressionAttributeNames={"#n": "name"})
        wins.append(i)
    except ClientError as e:
        assert e.response["Error"]["Code"] == "ConditionalCheckFailedException", e

threads = [threading.Thread(target=claimer, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
owner = ddb.get_item(TableName=S, Key={"name": {"S": "lock"}})["Item"]["owner"]["N"]
ok(len(wins) == 1 and owner == str(wins[0]), f"of 8 concurrent put-if-absent, exactly one wins: {wins}, owner {owner}")

# --- Transactions ---------------------------------------------------------------------

def transact():
    return ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": S, "Item": {"name": {"S": "tx-new"}}, "ConditionExpression": "attribute_not_exists(#n)",
                 "ExpressionAttributeNames": {"#n": "name"}}},
        {"Update": {"TableName": S, "Key": {"name": {"S": "tx-count"}}, "UpdateExpression": "ADD n :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        {"ConditionCheck": {"TableName": S, "Key": {"name": {"S": "ada"}}, "ConditionExpression": "attribute_exists(age)"}},
        {"Delete": {"TableName": S, "Key": {"name": {"S": "tx-gone"}}}},
    ])

ddb.put_item(TableName=S, Item={"name": {"S": "tx-gone"}})
transact()
r = ddb.transact_get_items(TransactItems=[
    {"Get": {"TableName": S, "Key": {"name": {"S": "tx-new"}}}},
    {"Get": {"TableName": S, "Key": {"name": {"S": "tx-count"}}, "ProjectionExpression": "n"}},
    {"Get": {"TableName": S, "Key": {"name": {"S": "tx-gone"}}}},
])["Responses"]
ok(r[0]["Item"] == {"name": {"S": "tx-new"}} and r[1]["Item"] == {"n": {"N": "1"}} and "Item" not in r[2],
   f"TransactWriteItems: put, update and delete together; TransactGetItems reads them in order: {r}")
fails(transact, "TransactionCanceledException", "the same transaction again: its put's condition fails",
      "[ConditionalCheckFailed, None, None, None]")
try:
    transact()
    ok(False, "the same transaction a third time: succeeded, TransactionCanceledException expected")
except ClientError as e:
    # boto3 hands the reasons to the caller, one per item in the request's order.
    reasons = e.response.get("CancellationReasons")
    ok(reasons == [{"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"},
                   {"Code": "None"}, {"Code": "None"}, {"Code": "None"}],
       f"a cancelled transaction's CancellationReasons name the failed item: {reasons}")
n = ddb.get_item(TableName=S, Key={"name": {"S": "tx-count"}})["Item"]["n"]["N"]
ok(n == "1", f"a cancelled transaction writes nothing: the counter is still {n}")
fails(lambda: ddb.transact_write_items(TransactItems=[
    {"Put": {"TableName": S, "Item": {"name": {"S": "twice"}}}},
    {"Delete": {"TableName": S, "Key": {"name": {"S": "twice"}}}}]),
    "ValidationException", "two actions on one item", "multiple operations on one item")

# --- Update expressions --------------------------------------------------------------

people.put_item(Item={"name": "bo", "count": 1, "list": [1], "set": {"a"}, "gone": "x", "m": {"k": 1}})
r = people.update_item(
    Key={"name": "bo"},
    UpdateExpression="SET #c = #c - :one, #l = list_append(#l, :more), fresh = if_not_exists(fresh, :zero), m.j = :one "
                     "REMOVE gone ADD #s :bs, total :one DELETE other :none",
    ExpressionAttributeNames={"#c": "count", "#l": "list", "#s": "set"},
    ExpressionAttributeValues={":one": 1, ":more": [2, 3], ":zero": 0, ":bs": {"b", "c"}, ":none": {"q"}},
    ReturnValues="ALL_NEW")
ok(r["Attributes"] == {"name": "bo", "count": 0, "list": [1, 2, 3], "set": {"a", "b", "c"}, "fresh": 0,
                       "m": {"k": 1, "j": 1}, "total": 1},
   f"SET - / list_append / if_not_exists / nested, REMOVE, ADD, DELETE: {r['Attributes']}")
r = people.update_item(Key={"name": "bo"}, UpdateExpression="SET fresh = if_not_exists(fresh, :ten) DELETE #s :a",
                       ExpressionAttributeNames={"#s": "set"}, ExpressionAttributeValues={":ten": 10, ":a": {"a"}},
                       ReturnValues="UPDATED_OLD")
ok(r["Attributes"] == {"fresh": 0, "set": {"a", "b", "c"}}, "if_not_exists keeps a value; UPDATED_OLD has only the updated attributes")
r = people.update_item(Key={"name": "new"}, UpdateExpression="ADD visits :one", ExpressionAttributeValues={":one": 1},
                       ReturnValues="ALL_NEW")
ok(r["Attributes"] == {"name": "new", "visits": 1}, "UpdateItem of a missing item creates it (upsert)")
fails(lambda: people.update_item(Key={"name": "bo"}, UpdateExpression="SET #n = :x", ExpressionAttributeNames={"#n": "name"},
                                 ExpressionAttributeValues={":x": "y"}),
      "ValidationException", "updating a key attribute", "This attribute is part of the key")
fails(lambda: people.update_item(Key={"name": "bo"}, UpdateExpression="SET total = total + :s",
                                 ExpressionAttributeValues={":s": "text"}),
      "ValidationException", "adding a string to a number", "incorrect data type")
fails(lambda: people.update_item(Key={"name": "bo"}, UpdateExpression="SET a = :x REMOVE a",
                                 ExpressionAttributeValues={":x": "y"}),
      "ValidationException", "two actions on one path", "Two document paths overlap")

# --- Query and Scan, with pagination --------------------------------------------------

orders = res.Table(T)
with orders.batch_writer() as bw:
    for i in range(1, 11):
        bw.put_item(Item={"pk": "cust", "sk": i, "total": Decimal(i) / 4})
    bw.put_item(Item={"pk": "other", "sk": 1})
r = orders.query(KeyConditionExpression=Key("pk").eq("cust") & Key("sk").between(3, 7))
ok([int(i["sk"]) for i in r["Items"]] == [3, 4, 5, 6, 7] and r["Count"] == 5, "Query with BETWEEN, ascending")
r = orders.query(KeyConditionExpression=Key("pk").eq("cust") & Key("sk").gt(8), ScanIndexForward=False)
ok([int(i["sk"]) for i in r["Items"]] == [10, 9], "Query with >, ScanIndexForward=False is descending")
r = orders.query(KeyConditionExpression=Key("pk").eq("cust") & Key("sk").lte(2))
ok([int(i["sk"]) for i in r["Items"]] == [1, 2], "Query with <=")
seen, pages, start = [], 0, None
while True:
    kw = {"ExclusiveStartKey": start} if start else {}
    r = orders.query(KeyConditionExpression=Key("pk").eq("cust"), Limit=3, **kw)
    pages += 1
    seen += [int(i["sk"]) for i in r["Items"]]
    if pages == 1:
        ok(r["LastEvaluatedKey"] == {"pk": "cust", "sk": 3}, f"the first page's LastEvaluatedKey is its last key: {r.get('LastEvaluatedKey')}")
    start = r.get("LastEvaluatedKey")
    if not start or pages > 10:
        break
ok(seen == list(range(1, 11)), f"Query pages of 3 walk every item once, in order: {seen}")
ok(pages in (4, 5), f"in 4 pages (5 with an empty last page): {pages}")
seen = []
for p in ddb.get_paginator("query").paginate(TableName=T, KeyConditionExpression="pk = :p",
                                             ExpressionAttributeValues={":p": {"S": "cust"}},
                                             ScanIndexForward=False, PaginationConfig={"PageSize": 4}):
    seen += [int(i["sk"]["N"]) for i in p["Items"]]
ok(seen == list(range(10, 0, -1)), "boto3's query paginator, descending")
r = orders.query(KeyConditionExpression=Key("pk").eq("cust"), FilterExpression=Attr("total").gte(Decimal("2")), Limit=9)
ok(r["ScannedCount"] == 9 and r["Count"] == 2, f"a filter applies after Limit: scanned 9, matched 2: {r['ScannedCount']}, {r['Count']}")
r = orders.query(KeyConditionExpression=Key("pk").eq("cust"), Select="COUNT")
ok(r["Count"] == 10 and "Items" not in r, "Select=COUNT counts without items")
r = orders.query(KeyConditionExpression=Key("pk").eq("cust") & Key("sk").eq(4), ProjectionExpression="#t",
                 ExpressionAttributeNames={"#t": "total"})
ok(r["Items"] == [{"total": Decimal("1")}], "ProjectionExpression: only the projected attribute")
fails(lambda: orders.query(KeyConditionExpression=Key("sk").eq(1)), "ValidationException", "a query without the partition key",
      "Query condition missed key schema element: pk")
fails(lambda: orders.query(KeyConditionExpression=Key("pk").begins_with("c")), "ValidationException",
      "begins_with on the partition key", "Query key condition not supported")
fails(lambda: orders.query(KeyConditionExpression=Key("pk").eq("cust") & Key("sk").between(7, 3)), "ValidationException",
      "BETWEEN with bounds reversed", "BETWEEN operator requires upper bound to be greater than or equal to lower bound")

text = res.Table(S)
for n in ["log#2026-01", "log#2026-02", "log#2025-12", "other"]:
    text.put_item(Item={"name": n})
# begins_with needs a sort key: a table with a string one.
L = "logs-" + SUFFIX
res.create_table(TableName=L, AttributeDefinitions=[{"AttributeName": "h", "AttributeType": "S"}, {"AttributeName": "r", "AttributeType": "S"}],
                 KeySchema=[{"AttributeName": "h", "KeyType": "HASH"}, {"AttributeName": "r", "KeyType": "RANGE"}],
                 BillingMode="PAY_PER_REQUEST").wait_until_exists()
logs = res.Table(L)
for r_ in ["2026-02-01", "2026-01-15", "2025-12-31", "2026-01-01", "Z", "a"]:
    logs.put_item(Item={"h": "x", "r": r_})
r = logs.query(KeyConditionExpression=Key("h").eq("x") & Key("r").begins_with("2026-01"))
ok([i["r"] for i in r["Items"]] == ["2026-01-01", "2026-01-15"], "Query with begins_with on a string sort key")
r = logs.query(KeyConditionExpression=Key("h").eq("x"))
ok([i["r"] for i in r["Items"]] == ["2025-12-31", "2026-01-01", "2026-01-15", "2026-02-01", "Z", "a"],
   "string sort keys order by their bytes (digits, then upper case, then lower case)")

all_items = sorted((i["pk"], int(i["sk"])) for i in orders.scan()["Items"])
ok(all_items == sorted([("cust", i) for i in range(1, 11)] + [("other", 1), ("types", 1)]), "Scan returns every item")
seen, pages, start = [], 0, None
while True:
    kw = {"ExclusiveStartKey": start} if start else {}
    r = orders.scan(Limit=4, **kw)
    pages += 1
    seen += [(i["pk"], int(i["sk"])) for i in r["Items"]]
    ok(r["Count"] <= 4 and r["ScannedCount"] == r["Count"], f"scan page {pages}: at most 4 items")
    start = r.get("LastEvaluatedKey")
    if not start or pages > 10:
        break
ok(sorted(seen) == all_items and len(seen) == len(all_items), f"Scan pages of 4 return every item exactly once: {len(seen)}")
r = orders.scan(FilterExpression=Attr("total").lt(1))
ok(sorted(int(i["sk"]) for i in r["Items"]) == [1, 2, 3] and r["ScannedCount"] == 12, "Scan with a filter: Count and ScannedCount")
n = sum(p["Count"] for p in ddb.get_paginator("scan").paginate(TableName=T, PaginationConfig={"PageSize": 5}))
ok(n == 12, "boto3's scan paginator counts 12")

# --- Batches -------------------------------------------------------------------------

r = ddb.batch_write_item(RequestItems={S: [{"PutRequest": {"Item": {"name": {"S": f"b{i}"}, "i": {"N": str(i)}}}} for i in range(25)]})
ok(r["UnprocessedItems"] == {}, "BatchWriteItem of 25 puts: nothing unprocessed")
fails(lambda: ddb.batch_write_item(RequestItems={S: [{"PutRequest": {"Item": {"name": {"S": f"c{i}"}}}} for i in range(26)]}),
      "ValidationException", "BatchWriteItem of 26", "Member must have length less than or equal to 25")
ok("Item" not in ddb.get_item(TableName=S, Key={"name": {"S": "c0"}}), "and none of the 26 was written")
r = ddb.batch_write_item(RequestItems={S: [{"DeleteRequest": {"Key": {"name": {"S": "b0"}}}},
                                          {"PutRequest": {"Item": {"name": {"S": "b1"}, "i": {"N": "100"}}}}]})
r = ddb.batch_get_item(RequestItems={
    S: {"Keys": [{"name": {"S": "b0"}}, {"name": {"S": "b1"}}, {"name": {"S": "b2"}}], "ProjectionExpression": "#n, i",
        "ExpressionAttributeNames": {"#n": "name"}},
    T: {"Keys": [{"pk": {"S": "cust"}, "sk": {"N": "1"}}]},
})
got = sorted((i["name"]["S"], i["i"]["N"]) for i in r["Responses"][S])
ok(got == [("b1", "100"), ("b2", "2")], f"BatchGetItem after a delete and a put in one batch: {got}")
ok(len(r["Responses"][T]) == 1 and r["UnprocessedKeys"] == {}, "BatchGetItem across two tables")
fails(lambda: ddb.batch_get_item(RequestItems={S: {"Keys": [{"name": {"S": "b1"}}, {"name": {"S": "b1"}}]}}),
      "ValidationException", "BatchGetItem with a key twice", "Provided list of item keys contains duplicates")
with res.Table(S).batch_writer(overwrite_by_pkeys=["name"]) as bw:
    for i in range(60):
        bw.put_item(Item={"name": f"w{i}", "n": i})
ok(res.Table(S).get_item(Key={"name": "w59"})["Item"]["n"] == 59, "boto3's batch_writer puts 60 items")

# --- The AWS CLI's view, and the end of a table ---------------------------------------

d = ddb.describe_table(TableName=S)["Table"]
count = ddb.scan(TableName=S, Select="COUNT")["Count"]
ok(d["ItemCount"] == count and d["TableSizeBytes"] > 0, f"DescribeTable's ItemCount is the item count: {d['ItemCount']} = {count}")
for t in (T, S, L):
    r = ddb.delete_table(TableName=t)
    ok(r["TableDescription"]["TableName"] == t, f"DeleteTable {t}")
fails(lambda: ddb.delete_table(TableName=T), "ResourceNotFoundException", "deleting it twice", "Requested resource not found")
fails(lambda: ddb.get_item(TableName=T, Key={"pk": {"S": "cust"}, "sk": {"N": "1"}}), "ResourceNotFoundException",
      "its items are gone with it")

if FAILURES:
    print(f"{len(FAILURES)} check(s) failed:")
    for f in FAILURES:
        print("  " + f)
    sys.exit(1)
print("every check passed")
