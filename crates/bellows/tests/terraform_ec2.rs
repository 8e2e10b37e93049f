//! End to end: the real `terraform` with the hashicorp/aws provider (5.100.0, from the
//! machine's filesystem mirror) applies, re-applies and destroys the EC2 part of a
//! stack (tests/terraform/ec2/main.tf) against bellows; the plan right after each apply
//! and after a restart of bellows is empty. Terraform's debug log is kept, its path
//! printed, when a step fails.

// End-to-end tests measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::terraform::*;
use common::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn terraform_applies_changes_and_destroys_the_ec2_resources_with_empty_plans() {
    need_clients();
    let mut up = Up::start("tf-ec2", &echo_stack(0, ""));
    let mut tf = Tf::new(&root().join("tests/terraform/ec2"), "ec2", aws_env(&up));
    tf.ok(&["init"]);
    tf.ok(&["apply", "-auto-approve"]);
    tf.plan_is_empty("right after apply", &[]);
    let vpc = tf.ok(&["output", "-raw", "vpc"]);
    assert!(vpc.starts_with("vpc-"), "{vpc}");

    // A new template version, the default one with update_default_version; a rule's
    // port changed in place.
    let changed = "-var=user_data=#!/bin/sh\nexec bellows app ip-tracker\n";
    let port = "-var=rule_port=8443";
    let apply = tf.ok(&["apply", "-auto-approve", changed, port]);
    assert!(apply.contains("0 added, 2 changed, 0 destroyed"), "{apply}");
    assert_eq!(tf.ok(&["output", "-raw", "lt_version"]), "2");
    tf.plan_is_empty("after the change", &[changed, port]);

    // After a restart the same resources are there, and nothing to change.
    up.signal("INT");
    assert!(
        up.wait_exit(Duration::from_secs(60)).is_some(),
        "bellows stops"
    );
    up.restart(&[]);
    tf.env = aws_env(&up);
    tf.plan_is_empty("after a restart", &[changed, port]);

    tf.ok(&["destroy", "-auto-approve", changed, port]);
    let vpcs = aws(&tf.env, &["ec2", "describe-vpcs", "--output", "json"]);
    let vpcs: serde_json::Value = serde_json::from_slice(&vpcs.stdout).unwrap();
    assert_eq!(vpcs["Vpcs"], serde_json::json!([]), "destroy leaves no VPC");
    let templates = aws(
        &tf.env,
        &["ec2", "describe-launch-templates", "--output", "json"],
    );
    let templates: serde_json::Value = serde_json::from_slice(&templates.stdout).unwrap();
    assert_eq!(templates["LaunchTemplates"], serde_json::json!([]));
}
