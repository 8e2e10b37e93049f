//! Round trips through Terraform, end to end with the real `terraform` and the mirrored
//! hashicorp/aws provider:
//! - `bellows export terraform --create-network` of a stack, applied to a node started
//!   with `up --empty`, runs the same topology as `bellows up STACK` (groups, target
//!   groups, listeners and their rules, policies, alarms), and serves;
//! - `bellows import terraform` of a seed's own Terraform directory gives a stack file
//!   whose `bellows up` runs the topology `terraform apply` of the same directory makes.

// End-to-end tests measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use common::terraform::*;
use common::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The running stack of a node, as its JSON API gives it.
fn running_stack(up: &Up) -> Value {
    let control = std::fs::read_to_string(up.state.join("control")).unwrap();
    let (status, body) = http(control.trim(), "GET", "/api/v1/stack", None);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Keeps `keys` of an object, in their order.
fn pick(v: &Value, keys: &[&str]) -> Value {
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
fn topology(stack: &Value) -> Value {
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
fn same_topology(want: &Value, got: &Value, what: &str) {
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
fn serving(up: &Up, n: usize) {
    up.wait_for(
        &format!("{n} instances in service and healthy"),
        Duration::from_secs(90),
        |u| u.in_service().len() == n && u.healthy() == n,
    );
}

#[test]
fn a_stack_exported_to_terraform_and_applied_to_bellows_runs_the_same_topology() {
    need_terraform();
    let (dir, network) = scratch();
    let port = free_port();
    // The default stack, on a port and a loopback network of this test's own.
    let src = std::fs::read_to_string(root().join("examples/ip-tracker.toml"))
        .unwrap()
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace(
            "[stack]\n",
            &format!("[stack]\ninstance_network = \"{network}\"\n"),
        );
    let stack = dir.join("ip-tracker.toml");
    std::fs::write(&stack, &src).unwrap();
    let exported = dir.join("tf");
    let o = Command::new(BIN)
        .args(["export", "terraform", "--create-network", "-o"])
        .arg(&exported)
        .arg(&stack)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");

    // In a directory of its own: it is removed with the node.
    let local_dir = dir.join("local");
    std::fs::create_dir_all(&local_dir).unwrap();
    let local = Up::start_file(&stack, &local_dir);
    serving(&local, 2);
    let want = topology(&running_stack(&local));
    drop(local);

    let name = format!("rt-export-{}", std::process::id());
    let up = Up::start_empty(&name);
    let tf = Tf::new(&exported, "roundtrip-export", aws_env(&up));
    tf.ok(&["init"]);
    // An image with bellows on its PATH: the user data runs `bellows app ip-tracker`.
    let image = "-var=image_id=bellows-app-ip-tracker";
    tf.ok(&["apply", "-auto-approve", image]);
    tf.plan_is_empty("right after apply", &[image]);
    serving(&up, 2);
    let got = topology(&running_stack(&up));
    same_topology(&want, &got, "export, then terraform apply to bellows");
    assert_eq!(got["groups"][0]["zones"], 2, "{got}");
    // Through the load balancer Terraform made, on its port 80.
    let lbs = aws(
        &tf.env,
        &["elbv2", "describe-load-balancers", "--output", "json"],
    );
    let lbs: Value = serde_json::from_slice(&lbs.stdout).unwrap();
    let dns = lbs["LoadBalancers"][0]["DNSName"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = http(&format!("{dns}:80"), "GET", "/app-x7k9m2n8/", None);
    assert_eq!(status, 200, "GET http://{dns}/app-x7k9m2n8/: {body}");
    tf.ok(&["destroy", "-auto-approve", image]);
    up.wait_for("no instance left", Duration::from_secs(30), |u| {
        u.instances().iter().all(|i| i["lifecycle"] == "Terminated")
    });
}

#[test]
fn a_seed_terraform_directory_imported_runs_the_topology_terraform_makes() {
    need_terraform();
    let example = root().join("examples/terraform/ip-tracker");
    let name = format!("rt-import-{}", std::process::id());
    let up = Up::start_empty(&name);
    let tf = Tf::new(&example, "roundtrip-import", aws_env(&up));
    tf.ok(&["init"]);
    tf.ok(&["apply", "-auto-approve"]);
    serving(&up, 1);
    let want = topology(&running_stack(&up));
    tf.ok(&["destroy", "-auto-approve"]);
    drop(up);

    let (dir, network) = scratch();
    let imported = dir.join("imported.toml");
    let o = Command::new(BIN)
        .args(["import", "terraform"])
        .arg(&example)
        .arg("-o")
        .arg(&imported)
        .output()
        .unwrap();
    let warnings = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{o:?}");
    // Every resource left out is named with its place; the network's are expected.
    assert!(
        warnings.contains("main.tf:") && warnings.contains("aws_vpc.main has no counterpart"),
        "{warnings}"
    );
    // What only this machine has: a loopback network of the test's own, and a free port
    // for the listener (port 80 needs root; the stack keeps it as `aws_port`).
    let port = free_port();
    let text = std::fs::read_to_string(&imported).unwrap();
    assert!(text.contains("aws_port = 80"), "{text}");
    let text = text
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace(
            "[stack]\n",
            &format!("[stack]\ncontrol = \"127.0.0.1:0\"\ninstance_network = \"{network}\"\n"),
        );
    std::fs::write(&imported, &text).unwrap();
    let local = Up::start_file(&imported, &dir);
    serving(&local, 1);
    let got = topology(&running_stack(&local));
    same_topology(&want, &got, &format!("import, then bellows up:\n{text}"));
    let (status, body) = http(&format!("127.0.0.1:{port}"), "GET", "/app-x7k9m2n8/", None);
    assert_eq!(status, 200, "{body}\n{text}");
}
