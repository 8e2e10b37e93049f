#!/usr/bin/env python3
"""Writes the control API's OpenAPI document, crates/bellows-node/assets/openapi.json.

The document is kept in this one place and checked against the router by
crates/bellows-node/src/api/tests.rs (every route documented, every documented change
refused without the token). Run this after changing a route, and commit both.
"""
import json
import pathlib
def ref(n): return {"$ref": f"#/components/schemas/{n}"}
def ok(desc, schema=None, ctype="application/json"):
    r={"description":desc}
    if schema is not None: r["content"]={ctype:{"schema":schema}}
    return r
ERR={"$ref":"#/components/responses/Error"}
def op(summary, responses, params=None, body=None, change=False, tag=None, desc=None, body_required=True):
    o={"summary":summary,"responses":responses}
    if desc: o["description"]=desc
    if tag: o["tags"]=[tag]
    if params: o["parameters"]=params
    if body is not None:
        o["requestBody"]={"required":body_required,"content":{"application/json":{"schema":body}}}
    if body is not None:
        o["responses"].setdefault("413",ERR)
    if change:
        o["security"]=[{"bearer":[]}]
        o["responses"].setdefault("401",ERR)
    o["responses"].setdefault("400",ERR) if (params or body is not None) else None
    return o
def p(name, where="path", desc="", schema=None, required=None):
    return {"name":name,"in":where,"required":(where=="path") if required is None else required,"description":desc,"schema":schema or {"type":"string"}}
ID=p("id",desc="An instance id, i- and 17 hex digits.",schema={"type":"string","pattern":"^i-[0-9a-f]{17}$"})
GROUP=p("group",desc="A group's name from the stack file.")
LISTENER=p("listener",desc="A listener's name from the stack file.")
# What the handlers parse, said exactly enough that every value the document allows is
# accepted (schemathesis checks both ways in scripts/test). A duration: one to four
# number-and-unit parts, each number at most six digits (bellows parses longer ones too,
# but no sensible query needs them and this keeps every allowed value in range).
DURATION={"type":"string","pattern":"^([0-9]{1,6}(ms|s|m|h|d)){1,4}$","example":"30s"}
U64={"type":"integer","minimum":0,"maximum":2**64-1}
I64={"type":"integer","minimum":-2**63,"maximum":2**63-1}
U32={"type":"integer","minimum":0,"maximum":2**32-1}
OCTET="(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
CIDR={"description":"An IPv4 or IPv6 address, alone or with a prefix length.","example":"10.0.0.0/8","anyOf":[
 {"type":"string","format":"ipv4"},{"type":"string","format":"ipv6"},
 {"type":"string","pattern":f"^({OCTET}\\.){{3}}{OCTET}/([0-9]|[12][0-9]|3[0-2])$"}]}
obj=lambda props, req=None, extra=False: {"type":"object","properties":props,**({"required":req} if req else {}),"additionalProperties":extra}
paths={
 "/api/v1/status":{"get":op("The stack, its groups and listeners",{"200":ok("status",ref("Status"))},tag="stack")},
 "/api/v1/instances":{"get":op("Every instance with its state, health, address and usage",{"200":ok("instances",{"type":"array","items":ref("Instance")})},tag="instances")},
 "/api/v1/instances/{id}/logs":{"get":op("An instance's standard output and error",{"200":ok("the log",{"type":"string"},"text/plain"),"404":ERR},
    params=[ID,p("follow","query","Keep the response open and send what the instance writes, until it stops.",{"type":"boolean"}),p("tail","query","Start this many bytes before the end.",U64)],tag="instances")},
 "/api/v1/instances/{id}/protection":{"put":op("Set or clear scale-in protection (SetInstanceProtection)",{"204":ok("done"),"404":ERR,"409":ERR},params=[ID],body=obj({"protected":{"type":"boolean"}},["protected"]),change=True,tag="instances")},
 "/api/v1/instances/{id}/terminate":{"post":op("Terminate an instance (TerminateInstanceInAutoScalingGroup)",{"200":ok("the group's capacity after",ref("Capacity")),"404":ERR,"409":ERR},params=[ID],body=obj({"decrement_desired":{"type":"boolean","default":False}}),change=True,tag="instances",desc="Without decrement_desired the group launches a replacement.")},
 "/api/v1/instances/{id}/health":{"put":op("Set an instance's health (SetInstanceHealth)",{"204":ok("done"),"404":ERR,"409":ERR},params=[ID],body=obj({"health":{"enum":["Healthy","Unhealthy"]}},["health"]),change=True,tag="instances")},
 "/api/v1/instances/{id}/stress":{"post":op("Start a CPU stress on an instance running the stress app",{"200":ok("the instance's answer",{"type":"object"}),"404":ERR,"409":ERR,"502":ERR,"504":ERR},params=[ID],body={"description":"Any JSON, passed on to the instance as it is; the stress app reads `seconds` (default 60) and `workers` (default 1).","example":{"seconds":60,"workers":1}},body_required=False,change=True,tag="instances",desc="Sends the body as `POST /` to the instance, as seed 002 does through the load balancer. An instance that answers other than 2xx (not the stress app) gives 409 `instance_refused`; one that cannot be reached 502, or 504 after 5 s.")},
 "/api/v1/activities":{"get":op("Scaling activities, newest first",{"200":ok("activities",{"type":"array","items":ref("Activity")}),"404":ERR},params=[p("group","query","Only this group."),p("limit","query","At most this many (default 100; a larger number returns 10000).",U64)],tag="groups")},
 "/api/v1/groups/{group}/capacity":{"put":op("Set min, max and/or desired capacity (UpdateAutoScalingGroup)",{"200":ok("the capacity after",ref("Capacity")),"404":ERR,"409":ERR},params=[GROUP],body={**obj({"min":U32,"max":U32,"desired":U32}),"minProperties":1},change=True,tag="groups")},
 "/api/v1/groups/{group}/refresh":{
   "get":op("The group's instance refresh in progress, or its last one",{"200":ok("the refresh",ref("Refresh")),"404":ERR},params=[GROUP],tag="groups"),
   "post":op("Start an instance refresh (StartInstanceRefresh)",{"201":ok("the refresh",ref("Refresh")),"404":ERR,"409":ERR},params=[GROUP],body=obj({"min_healthy_percentage":{"type":["integer","null"],"minimum":0,"maximum":100,"default":90},"warmup":{**DURATION,"type":["string","null"],"description":"A duration such as 30s; default (or null): the group's instance warmup."}}),change=True,tag="groups"),
   "delete":op("Cancel the instance refresh in progress (CancelInstanceRefresh)",{"200":ok("the refresh",ref("Refresh")),"404":ERR,"409":ERR},params=[GROUP],change=True,tag="groups")},
 "/api/v1/stack":{
   "get":op("The running stack, as its file was understood",{"200":ok("the stack",{"type":"object"})},tag="stack"),
   "post":op("Apply a new stack file: validate, compare, and unless dry_run swap it in",{"200":ok("the changes, and whether they were applied",obj({"changes":{"type":"array","items":ref("Change")},"applied":{"type":"boolean"},"template_versions":{"type":"object"}})),"409":ERR},body=obj({"file":{"type":"string","description":"The file's name, for error positions."},"source":{"type":"string","description":"The stack file's text (TOML)."},"dry_run":{"type":"boolean","default":False}},["source"]),change=True,tag="stack",desc="Errors in the file come back as 400 `invalid_stack` with every problem as file:line:column; changes a running stack cannot take (listener addresses, adding or removing listeners and target groups, the stack's own settings) as 409 `invalid_change`, with nothing changed.")},
 "/api/v1/targets":{"get":op("Target health in every target group (DescribeTargetHealth)",{"200":ok("targets",{"type":"array","items":ref("Target")})},tag="load balancer")},
 "/api/v1/tables":{"get":op("DynamoDB's tables of the stack (made through the AWS endpoint): key schema, billing mode, item count and size",{"200":ok("tables",{"type":"array","items":ref("Table")})},tag="groups")},
 "/api/v1/zones":{"get":op("Every zone of the groups: available or in an outage, groups listing it, live instances",{"200":ok("zones",{"type":"array","items":ref("Zone")})},tag="groups")},
 "/api/v1/zones/{zone}":{"put":op("Start a zone's outage (available false: its instances are killed with SIGKILL and nothing is launched there) or end it (true: the groups move instances back, launching first)",{"200":ok("the zone after",ref("ZoneChange")),"404":ERR},params=[p("zone",desc="A zone some group lists.")],body=obj({"available":{"type":"boolean"}},["available"]),change=True,tag="groups")},
 "/api/v1/listeners":{"get":op("Listeners with their ingress allow-lists",{"200":ok("listeners",{"type":"array","items":ref("Listener")})},tag="load balancer")},
 "/api/v1/listeners/{listener}/ingress/authorize":{"post":op("Allow a CIDR on a listener (AuthorizeSecurityGroupIngress)",{"200":ok("the list after",ref("IngressChange")),"404":ERR},params=[LISTENER],body=obj({"cidr":CIDR},["cidr"]),change=True,tag="load balancer")},
 "/api/v1/listeners/{listener}/ingress/revoke":{"post":op("Remove a CIDR from a listener (RevokeSecurityGroupIngress)",{"200":ok("the list after",ref("IngressChange")),"404":ERR},params=[LISTENER],body=obj({"cidr":CIDR},["cidr"]),change=True,tag="load balancer")},
 "/api/v1/alarms":{"get":op("Alarms with state, last value and history (DescribeAlarms)",{"200":ok("alarms",{"type":"array","items":{"type":"object"}})},tag="metrics")},
 "/api/v1/metrics":{
   "get":op("Every metric series (ListMetrics)",{"200":ok("series keys",{"type":"array","items":ref("SeriesKey")})},tag="metrics"),
   "post":op("Put custom metric values (PutMetricData)",{"200":ok("how many were accepted",obj({"accepted":{"type":"integer"}})),"409":ERR},body={"oneOf":[ref("MetricDatum"),obj({"metrics":{"type":"array","items":ref("MetricDatum"),"minItems":1,"maxItems":1000}},["metrics"])]},change=True,tag="metrics",desc="The bearer token is the operator's or an instance's own $BELLOWS_METRICS_TOKEN.")},
 "/api/v1/metrics/query":{"get":op("One metric's statistic over time (GetMetricStatistics)",{"200":ok("series",{"type":"object"})},params=[p("namespace","query",required=True),p("name","query",required=True),p("dimensions","query","Key=Value pairs, comma-separated.",{"type":"string","pattern":"^(,|[^,=]*=[^,]*)*$","example":"TargetGroup=web"}),p("stat","query","Average, Sum, Minimum, Maximum, SampleCount or pNN (default Average).",{"type":"string","pattern":"^(Average|Sum|Minimum|Maximum|SampleCount|p(100(\\.0{1,3})?|[0-9]{1,2}(\\.[0-9]{1,3})?))$"}),p("period","query","Whole seconds, at least 1s (default 1s).",{"type":"string","pattern":"^([0-9]{1,6}(s|m|h|d)){1,4}$","not":{"pattern":"^(0+(s|m|h|d))+$"},"example":"60s"}),p("since","query","How far back (default 5m); the newest 86400 periods at most.",DURATION)],tag="metrics")},
 "/api/v1/deliveries":{"get":op("Webhook deliveries from the outbox, newest first",{"200":ok("deliveries",{"type":"array","items":{"type":"object"}})},tag="metrics")},
 "/api/v1/investigate":{"get":op("Investigate now: ranked hypotheses with evidence and remedies (not stored)",{"200":ok("the report, with `markdown` and `title`",ref("Report")),"404":ERR},params=[p("since","query","How far back the symptom window starts (default 15m; below 10s counts as 10s, above 3h as 3h).",DURATION),p("alarm","query","The alarm that shows the symptom.")],tag="incidents")},
 "/api/v1/investigations":{"get":op("Investigations that alarms started, newest first",{"200":ok("investigations",{"type":"array","items":obj({"id":{"type":"integer"},"time":ref("Time"),"alarm":{"type":["string","null"]},"title":{"type":"string"}})})},tag="incidents")},
 "/api/v1/investigations/{id}":{"get":op("One stored investigation",{"200":ok("the report, with `markdown` and `title`",ref("Report")),"404":ERR},params=[p("id",desc="The investigation's number.",schema=I64)],tag="incidents")},
 "/api/v1/incidents":{"get":op("Incidents and where their notifications and issues stand",{"200":ok("incidents",{"type":"array","items":{"type":"object"}})},tag="incidents")},
 "/api/v1/audit":{"get":op("The audit trail, newest first (LookupEvents)",{"200":ok("records",{"type":"array","items":ref("AuditRecord")})},params=[p("since","query","How far back, e.g. 15m.",DURATION),p("target","query","One resource (group/web) or a kind (instance/)."),p("limit","query","At most this many (default 200; a larger number returns 10000).",U64)],tag="audit")},
 "/api/v1/events":{"get":op("Every state change as Server-Sent Events",{"200":ok("an endless event stream: id = sequence number, event = kind, data = the event as JSON",{"type":"object","properties":{"id":{"type":"string"},"event":{"type":"string"},"data":{"type":"string"}},"required":["data"]},"text/event-stream")},
    params=[p("Last-Event-ID","header","Replay stored events after this sequence number first.",I64,False),p("after","query","The same as Last-Event-ID.",I64)],tag="audit")},
 "/api/v1/openapi.json":{"get":op("This document",{"200":ok("OpenAPI 3.1",{"type":"object"})},tag="stack")},
 "/metrics":{"get":op("Every metric in Prometheus' text format",{"200":ok("metrics",{"type":"string"},"text/plain")},tag="metrics")},
 "/":{"get":op("The dashboard",{"200":ok("the page",{"type":"string"},"text/html")},tag="dashboard")},
 "/assets/{file}":{"get":op("The dashboard's files",{"200":ok("a file",{"type":"string"}),"404":ERR},params=[p("file")],tag="dashboard")},
}
schemas={
 "Error":obj({"error":obj({"code":{"type":"string","example":"invalid_capacity"},"message":{"type":"string"}},["code","message"])},["error"]),
 "Capacity":obj({"min":{"type":"integer"},"max":{"type":"integer"},"desired":{"type":"integer"}},["min","max","desired"]),
 "Status":{"type":"object","properties":{"stack":{"type":"string"},"pid":{"type":"integer"},"started_at":ref("Time"),"groups":{"type":"array","items":{"type":"object"}},"listeners":{"type":"array","items":ref("Listener")},"zones_out":{"type":"array","items":{"type":"string"},"description":"Zones in an outage."}}},
 "Instance":{"type":"object","properties":{"id":{"type":"string"},"group":{"type":"string"},"zone":{"type":"string"},"lifecycle":{"enum":["Pending","InService","Terminating","Terminated"]},"health":{"enum":["Healthy","Unhealthy"]},"protected":{"type":"boolean"},"private_ip":{"type":["string","null"]},"port":{"type":"integer"},"cpu_percent":{"type":["number","null"]},"memory_bytes":{"type":["integer","null"]}}},
 "Activity":{"type":"object","properties":{"id":{"type":"string"},"group":{"type":"string"},"instance":{"type":"string"},"kind":{"enum":["Launch","Terminate"]},"description":{"type":"string"},"cause":{"type":"string"},"start":ref("Time"),"end":{"oneOf":[ref("Time"),{"type":"null"}]},"status":{"enum":["InProgress","Successful","Failed"]}}},
 "Refresh":{"type":"object","properties":{"id":{"type":"string"},"group":{"type":"string"},"status":{"enum":["InProgress","Successful","Cancelled"]},"status_reason":{"type":"string"},"min_healthy_percentage":{"type":"integer"},"warmup":{"type":"string"},"total":{"type":"integer"},"remaining":{"type":"array","items":{"type":"string"}},"percentage_complete":{"type":"integer"},"batches":{"type":"integer"}}},
 "Target":{"type":"object","properties":{"target_group":{"type":"string"},"instance":{"type":"string"},"address":{"type":"string"},"zone":{"type":"string"},"state":{"enum":["initial","healthy","unhealthy","unused","draining"]},"outstanding":{"type":"integer"},"requests":{"type":"integer"},"anomaly":{"enum":["normal","anomalous"],"description":"with anomaly mitigation only"},"weight":{"type":"number","description":"its share under weighted_random, 0.05 to 1; with anomaly mitigation only"}}},
 "Listener":{"type":"object","properties":{"name":{"type":"string"},"address":{"type":"string"},"ingress":{"type":"array","items":{"type":"string"}},"target_groups":{"type":"array","items":{"type":"string"}}}},
 "Table":{"type":"object","properties":{"name":{"type":"string"},"billing_mode":{"enum":["PROVISIONED","PAY_PER_REQUEST"]},"key":{"type":"array","items":{"type":"string"},"description":"the partition key, then the sort key if any: NAME (TYPE)"},"items":{"type":"integer"},"bytes":{"type":"integer"},"read_capacity":{"type":"integer"},"write_capacity":{"type":"integer"}}},
 "Zone":{"type":"object","properties":{"zone":{"type":"string"},"available":{"type":"boolean"},"groups":{"type":"array","items":{"type":"string"}},"instances":{"type":"integer"}}},
 "ZoneChange":{"type":"object","properties":{"zone":{"type":"string"},"available":{"type":"boolean"},"changed":{"type":"boolean"},"killed":{"type":"array","items":{"type":"string"}}}},
 "IngressChange":{"type":"object","properties":{"listener":{"type":"string"},"cidr":{"type":"string"},"changed":{"type":"boolean"},"ingress":{"type":"array","items":{"type":"string"}}}},
 "SeriesKey":{"type":"object","properties":{"namespace":{"type":"string"},"name":{"type":"string"},"dimensions":{"type":"object","additionalProperties":{"type":"string"}}}},
 "MetricDatum":obj({"namespace":{"type":"string","minLength":1,"maxLength":255,"not":{"pattern":"^AWS/"},"description":"Not AWS/, which is bellows' own."},"name":{"type":"string","minLength":1,"maxLength":255},"dimensions":{"type":"object","additionalProperties":{"type":"string"},"maxProperties":30},"value":{"type":"number"}},["namespace","name","value"]),
 "AuditRecord":{"type":"object","properties":{"seq":{"type":"integer"},"time":ref("Time"),"actor":{"type":"string"},"source":{"enum":["api","cli","dashboard","bellows"]},"action":{"type":"string"},"target":{"type":"string"},"before":{},"after":{},"result":{"type":"string","description":"ok, or the error's code and message"}}},
 "Change":{"type":"object","properties":{"kind":{"enum":["stack","group","target_group","listener","alarm","policy","scheduled","webhook","check"]},"name":{"type":"string"},"op":{"enum":["add","remove","modify"]},"fields":{"type":"array","items":obj({"path":{"type":"string"},"before":{},"after":{}})}}},
 "Report":{"type":"object","properties":{"generated":ref("Time"),"since":ref("Time"),"alarm":{"type":["string","null"]},"anomalies":{"type":"array","items":{"type":"object"}},"hypotheses":{"type":"array","items":obj({"cause":{"enum":["capacity_limit","ingress_revoked","health_checks_failing_after_change","crash_loop","out_of_memory","cpu_saturation","slow_target"]},"title":{"type":"string"},"confidence":{"type":"number"},"evidence":{"type":"array","items":{"type":"object"}},"remedy":obj({"text":{"type":"string"},"command":{"type":"string"}})})},"markdown":{"type":"string"},"title":{"type":"string"}}},
 "Time":{"type":"integer","description":"Milliseconds since the Unix epoch, UTC."},
}
doc={"openapi":"3.1.0","info":{"title":"bellows control API","version":"1","description":"The control API of a running `bellows up`. Reads are open on the loopback address; every change needs `Authorization: Bearer TOKEN` (the token is in the state directory's `token` file) and is recorded in the audit trail. Errors are JSON: `{\"error\": {\"code\", \"message\"}}`. Request bodies are at most 64 KiB."},
 "servers":[{"url":"/"}],"paths":paths,
 "components":{"schemas":schemas,"responses":{"Error":{"description":"an error","content":{"application/json":{"schema":ref("Error")}}}},"securitySchemes":{"bearer":{"type":"http","scheme":"bearer"}}}}
out = pathlib.Path(__file__).resolve().parent.parent / "crates/bellows-node/assets/openapi.json"
out.write_text(json.dumps(doc, indent=1) + "\n")
print(f"wrote {out}")
