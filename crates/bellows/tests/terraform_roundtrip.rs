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

use serde_json::Value;

use common::terraform::*;
use common::topology::*;
use common::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
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
    let port = free_port();
    let text = std::fs::read_to_string(&imported).unwrap();
    assert!(text.contains("aws_port = 80"), "{text}");
    let text = run_here(&text, port, &network);
    std::fs::write(&imported, &text).unwrap();
    let local = Up::start_file(&imported, &dir);
    serving(&local, 1);
    let got = topology(&running_stack(&local));
    same_topology(&want, &got, &format!("import, then bellows up:\n{text}"));
    let (status, body) = http(&format!("127.0.0.1:{port}"), "GET", "/app-x7k9m2n8/", None);
    assert_eq!(status, 200, "{body}\n{text}");
}
