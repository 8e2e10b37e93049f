//! End to end: the real `terraform` with the hashicorp/aws provider (5.100.0, from the
//! machine's filesystem mirror) applies, re-applies and destroys the EC2 part of a
//! stack (tests/terraform/ec2/main.tf) against bellows; the plan right after each apply
//! and after a restart of bellows is empty. Terraform's debug log is kept under the
//! target directory and named when a step fails.

// End-to-end tests measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A directory holding `registry.terraform.io/hashicorp/aws/5.100.0`: `TF_PLUGIN_MIRROR`
/// if set, else Terraform's own implied mirror directories, else one under `/opt`.
fn provider_mirror() -> PathBuf {
    let has = |d: &Path| {
        d.join("registry.terraform.io/hashicorp/aws/5.100.0")
            .is_dir()
    };
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_default());
    let mut candidates: Vec<PathBuf> = std::env::var_os("TF_PLUGIN_MIRROR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.extend([
        home.join(".terraform.d/plugins"),
        home.join(".local/share/terraform/plugins"),
        PathBuf::from("/usr/local/share/terraform/plugins"),
        PathBuf::from("/usr/share/terraform/plugins"),
    ]);
    if let Ok(dirs) = std::fs::read_dir("/opt") {
        candidates.extend(dirs.flatten().map(|d| d.path()));
    }
    candidates.into_iter().find(|d| has(d)).unwrap_or_else(|| {
        panic!(
            "no filesystem mirror of the hashicorp/aws 5.100.0 provider found (TF_PLUGIN_MIRROR, \
             ~/.terraform.d/plugins, /usr/share/terraform/plugins, /opt/*)"
        )
    })
}

struct Tf {
    dir: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl Tf {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("terraform")
            .current_dir(&self.dir)
            .env_remove("AWS_PROFILE")
            .env("TF_CLI_CONFIG_FILE", self.dir.join("cli.tfrc"))
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_LOG", "debug")
            .env("TF_LOG_PATH", &self.log)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .args(if args[0] == "output" {
                &["-no-color"][..]
            } else {
                &["-input=false", "-no-color"][..]
            })
            .output()
            .expect("terraform runs (it is on PATH)")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "terraform {}: {stdout}\n{}\nTerraform's log: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.log.display()
        );
        stdout
    }

    /// `plan -detailed-exitcode` must find nothing to change (exit 0).
    fn empty_plan(&self, when: &str) {
        let out = self.run(&["plan", "-detailed-exitcode"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "the plan {when} is not empty:\n{}\n{}\nTerraform's log: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log.display()
        );
    }
}

#[test]
fn terraform_applies_changes_and_destroys_the_ec2_resources_with_empty_plans() {
    need_clients();
    assert!(
        Command::new("terraform")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "terraform is missing: it must be on PATH for this test"
    );
    let mut up = Up::start("tf-ec2", &echo_stack(0, ""));
    let dir = up.dir.join("tf");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        root().join("tests/terraform/ec2/main.tf"),
        dir.join("main.tf"),
    )
    .unwrap();
    std::fs::write(
        dir.join("cli.tfrc"),
        format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"registry.terraform.io/hashicorp/aws\"]\n  }}\n  direct {{\n    exclude = [\"registry.terraform.io/hashicorp/aws\"]\n  }}\n}}\n",
            provider_mirror().display()
        ),
    )
    .unwrap();
    let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("terraform-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut tf = Tf {
        dir,
        env: aws_env(&up),
        log: logs.join(format!("ec2-{}.log", std::process::id())),
    };
    let _ = std::fs::remove_file(&tf.log);
    tf.ok(&["init"]);
    tf.ok(&["apply", "-auto-approve"]);
    tf.empty_plan("right after apply");
    let vpc = tf.ok(&["output", "-raw", "vpc"]);
    assert!(vpc.starts_with("vpc-"), "{vpc}");

    // A new template version, the default one with update_default_version; a rule's
    // port changed in place.
    let changed = "-var=user_data=#!/bin/sh\nexec bellows app ip-tracker\n";
    let port = "-var=rule_port=8443";
    let apply = tf.ok(&["apply", "-auto-approve", changed, port]);
    assert!(apply.contains("0 added, 2 changed, 0 destroyed"), "{apply}");
    assert_eq!(tf.ok(&["output", "-raw", "lt_version"]), "2");
    let out = tf.run(&["plan", "-detailed-exitcode", changed, port]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the plan after the change is not empty:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // After a restart the same resources are there, and nothing to change.
    up.signal("INT");
    assert!(
        up.wait_exit(Duration::from_secs(60)).is_some(),
        "bellows stops"
    );
    up.restart(&[]);
    tf.env = aws_env(&up);
    let out = tf.run(&["plan", "-detailed-exitcode", changed, port]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the plan after a restart is not empty:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );

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
    let _ = std::fs::remove_file(&tf.log);
}
