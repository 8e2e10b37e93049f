//! End to end: the real `aws` CLI and boto3 against a running `examples/ip-tracker.toml`,
//! signed with the key pair `bellows aws-env` prints.

// End-to-end tests measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The example stack on ephemeral ports and a loopback network of its own, with one
/// more alarm on a custom metric.
fn tracker() -> Up {
    let (dir, network) = scratch();
    let stack = std::fs::read_to_string(root().join("examples/ip-tracker.toml"))
        .unwrap()
        .replace(":8080\"", ":0\"")
        .replace(
            "control = \"127.0.0.1:9900\"",
            &format!("control = \"127.0.0.1:9900\"\ninstance_network = \"{network}\""),
        )
        + "\n[alarms.custom-orders]\nnamespace = \"Workshop\"\nmetric = \"Orders\"\nstatistic = \"Sum\"\n\
           period = \"10s\"\nevaluation_periods = 1\ncomparison = \">\"\nthreshold = 5\n\
           treat_missing_data = \"notBreaching\"\n\n[[groups.ip-tracker-asg.scheduled]]\nname = \"nightly\"\n\
           cron = \"0 2 * * *\"\nmin = 1\n";
    let file = write_file(&dir, "ip-tracker.toml", &stack);
    let up = Up::start_file(&file, &dir);
    up.wait_for("2 healthy", Duration::from_secs(30), |u| u.healthy() == 2);
    up
}

fn aws_ok(env: &[(String, String)], args: &[&str]) -> String {
    let out = aws(env, args);
    assert!(
        out.status.success(),
        "aws {}: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn aws_json(env: &[(String, String)], args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    serde_json::from_str(&aws_ok(env, &all)).unwrap()
}

/// Seed 001's workshop commands (`Important Commands`) as the seed writes them (its
/// group and load balancer names, port 80, `--region`), the default stack carrying those
/// names: the instance refresh, target health (the seed's `<target-group-arn>` found by
/// name), the load balancer's security group found by `--query`, and the ingress rule
/// revoked and authorized again.
#[test]
fn seed_001s_aws_commands_drive_the_running_stack() {
    need_clients();
    let up = tracker();
    let env = aws_env(&up);
    let page = "/app-x7k9m2n8/";
    let lb = up.lb();
    let before: Vec<String> = up
        .in_service()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();

    // Force Instance Refresh.
    aws_ok(
        &env,
        &[
            "autoscaling",
            "start-instance-refresh",
            "--auto-scaling-group-name",
            "ip-tracker-asg",
            "--preferences",
            r#"{"MinHealthyPercentage": 0, "InstanceWarmup": 60}"#,
            "--region",
            "us-east-1",
        ],
    );
    let start = Instant::now();
    let (mut answered, mut polls) = (0u32, 0u32);
    let mut status = String::new();
    while start.elapsed() < Duration::from_secs(180) {
        let r = aws_json(
            &env,
            &[
                "autoscaling",
                "describe-instance-refreshes",
                "--auto-scaling-group-name",
                "ip-tracker-asg",
                "--region",
                "us-east-1",
            ],
        );
        status = r["InstanceRefreshes"][0]["Status"]
            .as_str()
            .unwrap()
            .to_owned();
        if status == "Successful" {
            break;
        }
        polls += 1;
        if http(&lb, "GET", page, None).0 == 200 {
            answered += 1;
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
    assert_eq!(status, "Successful", "the refresh finished");
    let after: Vec<String> = up
        .in_service()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    // The page polled during the refresh can set off the seed's own scale-out alarm
    // (more than 15 requests per target in a minute): there may be more than two now.
    assert!(
        after.iter().all(|i| !before.contains(i)) && after.len() >= 2,
        "every instance was replaced: {before:?} -> {after:?}"
    );
    // MinHealthyPercentage 0 replaces every instance at once, as on AWS: the page is
    // away only while the replacements start, and answers through their warmup.
    eprintln!("the page answered 200 {answered} of {polls} times during the refresh");
    assert!(
        answered * 2 >= polls,
        "the page answered {answered} of {polls} times during the refresh"
    );

    // Check Instance Health.
    let tg = aws_ok(
        &env,
        &[
            "elbv2",
            "describe-target-groups",
            "--names",
            "tracker",
            "--query",
            "TargetGroups[0].TargetGroupArn",
            "--output",
            "text",
            "--region",
            "us-east-1",
        ],
    );
    up.wait_for("the replacements healthy", Duration::from_secs(30), |u| {
        u.healthy() >= after.len()
    });
    let health = aws_json(
        &env,
        &[
            "elbv2",
            "describe-target-health",
            "--target-group-arn",
            tg.trim(),
            "--region",
            "us-east-1",
        ],
    );
    let listed: Vec<&str> = health["TargetHealthDescriptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["TargetHealth"]["State"] == "healthy")
        .map(|d| d["Target"]["Id"].as_str().unwrap())
        .collect();
    for id in &after {
        assert!(
            listed.contains(&id.as_str()),
            "{id} is healthy in {health:#}"
        );
    }

    // Break Service (Scenario 2).
    let sg = aws_ok(
        &env,
        &[
            "elbv2",
            "describe-load-balancers",
            "--names",
            "ip-tracker-alb",
            "--query",
            "LoadBalancers[0].SecurityGroups[0]",
            "--output",
            "text",
            "--region",
            "us-east-1",
        ],
    );
    let sg = sg.trim();
    assert!(sg.starts_with("sg-") && sg.len() == 20, "{sg}");
    assert_eq!(http(&lb, "GET", page, None).0, 200);
    aws_ok(
        &env,
        &[
            "ec2",
            "revoke-security-group-ingress",
            "--group-id",
            sg,
            "--protocol",
            "tcp",
            "--port",
            "80",
            "--cidr",
            "0.0.0.0/0",
            "--region",
            "us-east-1",
        ],
    );
    let cut = std::panic::catch_unwind(|| http(&lb, "GET", page, None).0);
    assert!(
        !matches!(cut, Ok(200)),
        "the listener no longer answers once the rule is revoked"
    );

    // The change is in the audit trail as the AWS call it was, by the access key.
    let key = env
        .iter()
        .find(|(k, _)| k == "AWS_ACCESS_KEY_ID")
        .map(|(_, v)| v.clone())
        .unwrap();
    let audit = up.json(&["audit", "--limit", "200"]);
    let record = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "RevokeSecurityGroupIngress")
        .unwrap_or_else(|| panic!("no revoke in {audit:#}"));
    assert_eq!(record["source"], "aws", "{record:#}");
    assert_eq!(record["actor"], key.as_str(), "{record:#}");
    // An investigation finds the rule revoked through the AWS endpoint as it finds one
    // revoked with `bellows ingress revoke`, and names the access key that did it.
    let report = up.json(&["investigate", "--since", "5m"]);
    let revoked = report["hypotheses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["cause"] == "ingress_revoked")
        .unwrap_or_else(|| panic!("no ingress_revoked hypothesis in {report:#}"));
    assert!(
        revoked["title"].as_str().unwrap().contains(key.as_str()),
        "{revoked:#}"
    );
    assert!(
        revoked["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "audit"
                && e["text"]
                    .as_str()
                    .unwrap()
                    .contains("(aws) RevokeSecurityGroupIngress")),
        "{revoked:#}"
    );

    // Restore Service.
    aws_ok(
        &env,
        &[
            "ec2",
            "authorize-security-group-ingress",
            "--group-id",
            sg,
            "--protocol",
            "tcp",
            "--port",
            "80",
            "--cidr",
            "0.0.0.0/0",
            "--region",
            "us-east-1",
        ],
    );
    assert_eq!(
        http(&lb, "GET", page, None).0,
        200,
        "the listener answers again"
    );
}

/// boto3 on every implemented action of every service, CloudWatch in each of its
/// three protocols, the error cases with their codes, and every answer checked against
/// botocore's model of its output shape (tests/aws/check.py).
#[test]
fn boto3_checks_every_service_and_cloudwatch_protocol() {
    need_clients();
    let mut up = tracker();
    let env = aws_env(&up);
    let out = Command::new("python3")
        .arg(root().join("tests/aws/check.py"))
        .args([
            "--group",
            "ip-tracker-asg",
            "--target-group",
            "tracker",
            "--load-balancer",
            "ip-tracker-alb",
            "--alarm",
            "custom-orders",
        ])
        .env_remove("AWS_PROFILE")
        .env("HOME", std::env::temp_dir())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("every check passed"), "{stdout}");

    // What PutMetricAlarm and DeleteAlarms did is there again after a restart, and the
    // same objects have the same ARNs.
    let arns = |env: &[(String, String)]| {
        let groups = aws_json(env, &["autoscaling", "describe-auto-scaling-groups"]);
        let lbs = aws_json(env, &["elbv2", "describe-load-balancers"]);
        (
            groups["AutoScalingGroups"][0]["AutoScalingGroupARN"].clone(),
            lbs["LoadBalancers"][0]["LoadBalancerArn"].clone(),
        )
    };
    let before = arns(&env);
    up.signal("INT");
    assert!(
        up.wait_exit(Duration::from_secs(60)).is_some(),
        "bellows stops"
    );
    up.restart(&["--control", "127.0.0.1:0"]);
    let env = aws_env(&up);
    assert_eq!(arns(&env), before, "the same ARNs after a restart");
    assert!(
        before
            .0
            .as_str()
            .is_some_and(|a| a.ends_with(":autoScalingGroupName/ip-tracker-asg"))
    );
    let alarms = aws_json(&env, &["cloudwatch", "describe-alarms"]);
    let names: Vec<&str> = alarms["MetricAlarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["AlarmName"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"kept-by-aws"), "{names:?}");
    assert!(!names.contains(&"few-connections"), "{names:?}");
    let kept = alarms["MetricAlarms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["AlarmName"] == "kept-by-aws")
        .unwrap();
    assert_eq!(kept["Threshold"], 12345.0, "{kept:#}");
    let audit = up.json(&["audit", "--limit", "500"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "PutMetricAlarm"
                && r["target"] == "alarm/kept-by-aws"
                && r["source"] == "aws"),
        "{audit:#}"
    );
}

/// A wrong secret and an unknown key get AWS's 403 codes from the CLI too, and change
/// nothing.
#[test]
fn the_cli_with_a_bad_key_gets_403_and_changes_nothing() {
    need_clients();
    let up = tracker();
    let mut env = aws_env(&up);
    for (k, v) in env.iter_mut() {
        if k == "AWS_SECRET_ACCESS_KEY" {
            *v = "not-the-secret".to_owned();
        }
    }
    let out = aws(
        &env,
        &[
            "autoscaling",
            "set-desired-capacity",
            "--auto-scaling-group-name",
            "ip-tracker-asg",
            "--desired-capacity",
            "3",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("(SignatureDoesNotMatch)"),
        "{err}"
    );
    for (k, v) in env.iter_mut() {
        if k == "AWS_ACCESS_KEY_ID" {
            *v = "AKIAUNKNOWNKEY000000".to_owned();
        }
    }
    let out = aws(&env, &["sts", "get-caller-identity"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("(InvalidClientTokenId)"),
        "{err}"
    );
    assert_eq!(
        up.json(&["status"])["groups"][0]["desired"],
        2,
        "nothing changed"
    );
}

/// A stack's own region and key pair (`[stack] region`, `[aws]`): `aws-env` prints them,
/// the CLI signs with them, a request signed for another region is refused, and a
/// change is audited under its AWS name with the stack's access key id.
#[test]
fn a_stacks_own_region_and_key_pair() {
    need_clients();
    let stack = format!(
        "region = \"eu-west-3\"\n\n[aws]\naccess_key_id = \"AKIAWORKSHOP0000TEAM\"\nsecret_env = \"TEAM_AWS_SECRET\"\n{}",
        echo_stack(1, "")
    );
    let secret = [("TEAM_AWS_SECRET", "team-secret-0123456789")];
    let up = Up::start_with_env("team", &stack, &secret);
    up.wait_for("1 in service", Duration::from_secs(20), |u| {
        u.in_service().len() == 1
    });
    let out = Command::new(BIN)
        .arg("--state-dir")
        .arg(&up.state)
        .arg("aws-env")
        .env("TEAM_AWS_SECRET", secret[0].1)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("AWS_ACCESS_KEY_ID=AKIAWORKSHOP0000TEAM"),
        "{text}"
    );
    assert!(
        text.contains("AWS_SECRET_ACCESS_KEY=team-secret-0123456789"),
        "{text}"
    );
    assert!(text.contains("AWS_DEFAULT_REGION=eu-west-3"), "{text}");
    let env: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let arn = aws_ok(
        &env,
        &[
            "autoscaling",
            "describe-auto-scaling-groups",
            "--query",
            "AutoScalingGroups[0].AutoScalingGroupARN",
            "--output",
            "text",
        ],
    );
    assert!(
        arn.starts_with("arn:aws:autoscaling:eu-west-3:123456789012:autoScalingGroup:"),
        "{arn}"
    );
    // The derived key pair is not accepted once the stack brings its own.
    let derived = aws_env_without_secret(&up);
    let out = aws(&derived, &["sts", "get-caller-identity"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(InvalidClientTokenId)"),
        "{out:?}"
    );
    // Signed for us-east-1, as the seed's commands are: refused, and nothing changes.
    let out = aws(
        &env,
        &[
            "autoscaling",
            "set-desired-capacity",
            "--auto-scaling-group-name",
            "web",
            "--desired-capacity",
            "2",
            "--region",
            "us-east-1",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(SignatureDoesNotMatch)"),
        "{out:?}"
    );
    assert_eq!(up.json(&["status"])["groups"][0]["desired"], 1);
    aws_ok(
        &env,
        &[
            "autoscaling",
            "set-desired-capacity",
            "--auto-scaling-group-name",
            "web",
            "--desired-capacity",
            "2",
        ],
    );
    assert_eq!(up.json(&["status"])["groups"][0]["desired"], 2);
    let audit = up.json(&["audit", "--limit", "50"]);
    let record = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target"] == "group/web" && r["source"] == "aws")
        .unwrap_or_else(|| panic!("no aws record in {audit:#}"));
    assert_eq!(record["action"], "SetDesiredCapacity", "{record:#}");
    assert_eq!(record["actor"], "AKIAWORKSHOP0000TEAM", "{record:#}");
    assert!(
        !up.log().contains("team-secret-0123456789"),
        "the secret is never logged"
    );
    // Nor stored: no file of the state directory (the database and its journal, the
    // instances' logs) holds it, nor any instance's environment.
    let mut dirs = vec![up.state.clone()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                assert!(
                    !bytes.windows(22).any(|w| w == b"team-secret-0123456789"),
                    "the secret is stored in {}",
                    path.display()
                );
            }
        }
    }
    for inst in up.instances() {
        let pid = inst["pid"].as_u64().unwrap();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        assert!(
            !environ.windows(22).any(|w| w == b"team-secret-0123456789"),
            "instance {pid} was given the secret"
        );
    }
}

/// The key pair derived from the state directory's token, which the endpoint accepts
/// only when the stack brings none of its own.
fn aws_env_without_secret(up: &Up) -> Vec<(String, String)> {
    let token = std::fs::read_to_string(up.state.join("token")).unwrap();
    let c = bellows_node::aws::derived_credential(&token);
    let endpoint = std::fs::read_to_string(up.state.join("control")).unwrap();
    vec![
        (
            "AWS_ENDPOINT_URL".into(),
            format!("http://{}", endpoint.trim()),
        ),
        ("AWS_ACCESS_KEY_ID".into(), c.access_key_id),
        ("AWS_SECRET_ACCESS_KEY".into(), c.secret_access_key),
        ("AWS_DEFAULT_REGION".into(), "eu-west-3".into()),
    ]
}

/// boto3 on the EC2 records (tests/aws/ec2.py), then the aws CLI: a VPC with subnets, a security group
/// with rules, an internet gateway, a route table and a launch template with two
/// versions are created, read back the same after bellows restarts, and deleted; every
/// answer is checked against botocore's model, and each change is audited as `aws`.
#[test]
fn ec2_records_through_boto3_survive_a_restart() {
    need_clients();
    let mut up = Up::start("ec2-records", &echo_stack(0, ""));
    let ids = up.dir.join("ids.json");
    let run = |env: &[(String, String)], phase: &str| {
        let out = Command::new("python3")
            .arg(root().join("tests/aws/ec2.py"))
            .arg(phase)
            .arg(&ids)
            .env_remove("AWS_PROFILE")
            .env("HOME", std::env::temp_dir())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{phase}:\n{stdout}\n{stderr}");
        assert!(stdout.contains("every check passed"), "{phase}: {stdout}");
    };
    run(&aws_env(&up), "create");
    up.signal("INT");
    assert!(
        up.wait_exit(Duration::from_secs(60)).is_some(),
        "bellows stops"
    );
    up.restart(&[]);
    let env = aws_env(&up);
    run(&env, "delete");

    // The aws CLI too, with its own shorthand for filters and tags.
    let vpc = aws_json(
        &env,
        &[
            "ec2",
            "create-vpc",
            "--cidr-block",
            "10.8.0.0/16",
            "--tag-specifications",
            "ResourceType=vpc,Tags=[{Key=Name,Value=cli}]",
        ],
    );
    let id = vpc["Vpc"]["VpcId"].as_str().unwrap().to_owned();
    let found = aws_json(
        &env,
        &[
            "ec2",
            "describe-vpcs",
            "--filters",
            "Name=tag:Name,Values=cli",
        ],
    );
    assert_eq!(found["Vpcs"][0]["VpcId"], id.as_str(), "{found:#}");
    let subnet = aws_json(
        &env,
        &[
            "ec2",
            "create-subnet",
            "--vpc-id",
            &id,
            "--cidr-block",
            "10.8.1.0/24",
            "--availability-zone",
            "us-east-1c",
        ],
    );
    assert_eq!(subnet["Subnet"]["AvailabilityZone"], "us-east-1c");
    let out = aws(&env, &["ec2", "delete-vpc", "--vpc-id", &id]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DependencyViolation"),
        "{out:?}"
    );
    let subnet_id = subnet["Subnet"]["SubnetId"].as_str().unwrap();
    aws_ok(&env, &["ec2", "delete-subnet", "--subnet-id", subnet_id]);
    aws_ok(&env, &["ec2", "delete-vpc", "--vpc-id", &id]);
    let out = aws(&env, &["ec2", "describe-vpcs", "--vpc-ids", &id]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("InvalidVpcID.NotFound"),
        "{out:?}"
    );

    let audit = up.json(&["audit", "--limit", "1000"]);
    let records = audit.as_array().unwrap();
    assert!(
        records.iter().any(|r| r["action"] == "CreateVpc"
            && r["source"] == "aws"
            && r["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("aws/vpc/vpc-"))
            && r["result"] == "ok"),
        "{audit:#}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "DeleteLaunchTemplate" && r["source"] == "aws"),
        "{audit:#}"
    );
}

/// A one-time scheduled action (StartTime, no Recurrence) runs once at its time on a
/// group made through the endpoint; one in the past, or one with no time at all, is
/// refused with ValidationError, as AWS refuses it.
#[test]
fn a_one_time_scheduled_action_runs_at_its_time() {
    need_clients();
    let up = Up::start_empty("once");
    let env = aws_env(&up);
    // The built-in echo app as its image (`bellows-app-NAME`).
    aws_ok(
        &env,
        &[
            "ec2",
            "create-launch-template",
            "--launch-template-name",
            "echo",
            "--launch-template-data",
            "{\"ImageId\":\"bellows-app-echo\"}",
        ],
    );
    aws_ok(
        &env,
        &[
            "autoscaling",
            "create-auto-scaling-group",
            "--auto-scaling-group-name",
            "batch",
            "--launch-template",
            "LaunchTemplateName=echo",
            "--min-size",
            "0",
            "--max-size",
            "2",
            "--desired-capacity",
            "0",
            "--availability-zones",
            "us-east-1a",
        ],
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let put = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "autoscaling",
            "put-scheduled-update-group-action",
            "--auto-scaling-group-name",
            "batch",
            "--scheduled-action-name",
            name,
            "--desired-capacity",
            "1",
        ];
        args.extend_from_slice(extra);
        aws(&env, &args)
    };
    let past = (now - 60).to_string();
    for (name, extra) in [
        ("late", vec!["--start-time", past.as_str()]),
        ("never", vec![]),
    ] {
        let out = put(name, &extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("(ValidationError)"),
            "{name}: {err}"
        );
    }
    // Far enough ahead for the CLI's own start-up on a loaded machine.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let soon = (now + 8).to_string();
    let out = put("soon", &["--start-time", soon.as_str()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        up.json(&["status"])["groups"][0]["desired"],
        0,
        "not before its time"
    );
    let listed = aws_json(
        &env,
        &[
            "autoscaling",
            "describe-scheduled-actions",
            "--auto-scaling-group-name",
            "batch",
        ],
    );
    let actions = listed["ScheduledUpdateGroupActions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{listed:#}");
    assert!(actions[0]["StartTime"].is_string(), "{listed:#}");
    assert!(actions[0].get("Recurrence").is_none(), "{listed:#}");
    up.wait_for(
        "the action's instance in service",
        Duration::from_secs(30),
        |u| u.in_service().len() == 1,
    );
    let acts = up.activities();
    assert!(
        acts.iter().any(|a| a["cause"]
            .as_str()
            .is_some_and(|c| c.contains("scheduled action soon executed"))),
        "{acts:#?}"
    );
}
