//! What a running stack is, compared across the ways of making it (a stack file, the
//! AWS records Terraform makes, a stack imported from Terraform): its topology.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Up, http};

/// The running stack of a node, as its JSON API gives it.
pub fn running_stack(up: &Up) -> Value {
    let control = std::fs::read_to_string(up.state.join("control")).unwrap();
    let (status, body) = http(control.trim(), "GET", "/api/v1/stack", None);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Keeps `keys` of an object, in their order.
pub fn pick(v: &Value, keys: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for k in keys {
        out.insert((*k).to_owned(), v.get(*k).cloned().unwrap_or(Value::Null));
    }
    Value::Object(out)
}

/// What a round trip must keep of a running stack: every group, target group, listener,
/// policy and alarm with the settings both AWS and bellows have. Left out, because
/// they are the two sides' own: the listener's local address (the AWS side has its own
/// loopback address, the port it shows is `aws_port`) and its name (AWS has none), the
/// instances' program (user
/// data in AWS, a command in a stack file: the test checks it serves), zone names
/// (`zone-a` becomes `us-east-1a`; their number is kept), the target group queue (ALB
/// has none: the export warns) and the order of lists whose order means nothing.
pub fn topology(stack: &Value) -> Value {
    let list = |key: &str| stack[key].as_array().cloned().unwrap_or_default();
    let groups: Vec<Value> = list("groups")
        .iter()
        .map(|g| {
            let mut p = pick(
                g,
                &[
                    "name",
                    "min",
                    "max",
                    "desired",
                    "target_groups",
                    "health_check_type",
                    "health_check_grace_period",
                    "default_cooldown",
                    "termination_policy",
                    "role",
                ],
            );
            p["zones"] = json!(g["zones"].as_array().map_or(0, Vec::len));
            p["port"] = g["launch"]["port"].clone();
            p["instance_type"] = g["launch"]["instance_type"]["name"].clone();
            p
        })
        .collect();
    let target_groups: Vec<Value> = list("target_groups")
        .iter()
        .map(|t| {
            pick(
                t,
                &[
                    "name",
                    "port",
                    "algorithm",
                    "stickiness",
                    "deregistration_delay",
                    "slow_start",
                    "health_check",
                ],
            )
        })
        .collect();
    let listeners: Vec<Value> = list("listeners")
        .iter()
        .map(|l| {
            // Listeners have no names in AWS (bellows names the ones it derives after
            // their load balancer and port): they are known by their port.
            let mut p = pick(l, &["rules", "default_action"]);
            let mut ingress: Vec<String> = l["ingress"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            ingress.sort();
            p["ingress"] = json!(ingress);
            p["port"] = l["aws_port"].as_u64().map(Value::from).unwrap_or_else(|| {
                let addr = l["address"].as_str().unwrap_or_default();
                json!(addr.rsplit(':').next().and_then(|p| p.parse::<u64>().ok()))
            });
            p
        })
        .collect();
    let policies: Vec<Value> = list("policies")
        .iter()
        .map(|p| pick(p, &["name", "group", "kind"]))
        .collect();
    let alarms: Vec<Value> = list("alarms")
        .iter()
        .map(|a| {
            let mut p = pick(
                a,
                &[
                    "name",
                    "metric",
                    "statistic",
                    "period",
                    "evaluation_periods",
                    "datapoints_to_alarm",
                    "comparison",
                    "threshold",
                    "treat_missing_data",
                    "alarm_actions",
                    "ok_actions",
                    "description",
                ],
            );
            // Terraform names a target group or load balancer by its ARN's end
            // (`targetgroup/NAME/ID`, `app/NAME/ID`), a stack file by its name: the
            // series read is the same.
            if let Some(dims) = p["metric"]["dimensions"].as_object_mut() {
                for v in dims.values_mut() {
                    let s = v.as_str().unwrap_or_default();
                    let parts: Vec<&str> = s.split('/').collect();
                    if let ["targetgroup" | "app", name, _id] = parts.as_slice() {
                        *v = json!(name);
                    }
                }
            }
            p
        })
        .collect();
    json!({
        "groups": groups,
        "target_groups": target_groups,
        "listeners": listeners,
        "policies": policies,
        "alarms": alarms,
    })
}

/// Asserts two topologies are the same, naming the first section that is not. Each
/// section is compared in one order (by name; listeners by port): the API lists what
/// Terraform made in the order it was made.
pub fn same_topology(want: &Value, got: &Value, what: &str) {
    let sorted = |v: &Value| {
        let mut l = v.as_array().cloned().unwrap_or_default();
        l.sort_by_key(|x| format!("{}{}", x["name"], x["port"]));
        serde_json::to_string_pretty(&l).unwrap()
    };
    for key in ["groups", "target_groups", "listeners", "policies", "alarms"] {
        assert_eq!(
            sorted(&want[key]),
            sorted(&got[key]),
            "{what}: the {key} differ (left: wanted, right: got)"
        );
    }
}

/// Instances in service and every target healthy.
pub fn serving(up: &Up, n: usize) {
    up.wait_for(
        &format!("{n} instances in service and healthy"),
        Duration::from_secs(90),
        |u| u.in_service().len() == n && u.healthy() == n,
    );
}

/// A stack imported from Terraform, made to run here: its listener moved from 8080 to
/// `port` (the AWS side's port 80 needs root; the stack keeps it as `aws_port`), the
/// control API on an ephemeral port, and instances on a loopback network of the test's
/// own.
pub fn run_here(imported: &str, port: u16, network: &str) -> String {
    imported
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace(
            "[stack]\n",
            &format!("[stack]\ncontrol = \"127.0.0.1:0\"\ninstance_network = \"{network}\"\n"),
        )
}
