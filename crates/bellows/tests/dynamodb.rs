//! End to end: DynamoDB on the AWS endpoint, through real boto3 and the `aws` CLI, signed
//! with the key pair `bellows aws-env` prints; and an acknowledged write surviving
//! `kill -9` of bellows.

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

fn python(env: &[(String, String)], args: &[&str]) -> Output {
    Command::new("python3")
        .args(args)
        .env_remove("AWS_PROFILE")
        .env("HOME", std::env::temp_dir())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("python3 runs")
}

fn stack() -> Up {
    let up = Up::start("ddb", &echo_stack(1, ""));
    up.wait_for("1 in service", Duration::from_secs(20), |u| {
        u.in_service().len() == 1
    });
    up
}

/// Every DynamoDB operation through boto3, against DynamoDB's documented answers
/// (tests/aws/dynamodb.py); table changes are in the audit trail as AWS calls.
#[test]
fn boto3_checks_every_dynamodb_operation() {
    need_clients();
    let up = stack();
    let env = aws_env(&up);
    let out = python(
        &env,
        &[root().join("tests/aws/dynamodb.py").to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("every check passed"), "{stdout}");
    let checks = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    eprintln!("{checks} DynamoDB checks passed");
    assert!(checks >= 90, "every check ran: {stdout}");
    let audit = up.json(&["audit", "--limit", "500"]);
    let records = audit.as_array().unwrap();
    for action in ["CreateTable", "UpdateTable", "DeleteTable"] {
        let r = records
            .iter()
            .find(|r| r["action"] == action && r["source"] == "aws")
            .unwrap_or_else(|| panic!("no {action} in {audit:#}"));
        assert!(r["target"].as_str().unwrap().starts_with("table/"), "{r:#}");
    }
    // A refused CreateTable is recorded with its error too.
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "CreateTable" && r["result"] != "ok"),
        "{audit:#}"
    );
}

/// The `aws` CLI speaks the same DynamoDB: a table made, an item put with a condition,
/// read back with its number exact, and the CLI's error for a failed condition. The
/// table shows in `bellows tables`, and its writes are `AWS/DynamoDB` metrics that an
/// alarm of the stack reads.
#[test]
fn the_aws_cli_drives_dynamodb() {
    need_clients();
    let alarm = "\n[alarms.cli-writes]\nnamespace = \"AWS/DynamoDB\"\nmetric = \"ConsumedWriteCapacityUnits\"\n\
                 dimensions = { TableName = \"cli\" }\nstatistic = \"Sum\"\nperiod = \"10s\"\n\
                 evaluation_periods = 1\ncomparison = \">\"\nthreshold = 0\ntreat_missing_data = \"notBreaching\"\n";
    let up = Up::start("ddb", &(echo_stack(1, "") + alarm));
    up.wait_for("1 in service", Duration::from_secs(20), |u| {
        u.in_service().len() == 1
    });
    let env = aws_env(&up);
    let aws = |args: &[&str]| aws(&env, args);
    let ok = |args: &[&str]| {
        let out = aws(args);
        assert!(out.status.success(), "aws {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    ok(&[
        "dynamodb",
        "create-table",
        "--table-name",
        "cli",
        "--attribute-definitions",
        "AttributeName=id,AttributeType=S",
        "--key-schema",
        "AttributeName=id,KeyType=HASH",
        "--billing-mode",
        "PAY_PER_REQUEST",
    ]);
    ok(&["dynamodb", "wait", "table-exists", "--table-name", "cli"]);
    let item = r#"{"id":{"S":"a"},"n":{"N":"0.30000000000000000000000000000000000001"}}"#;
    ok(&[
        "dynamodb",
        "put-item",
        "--table-name",
        "cli",
        "--item",
        item,
        "--condition-expression",
        "attribute_not_exists(id)",
    ]);
    let out = aws(&[
        "dynamodb",
        "put-item",
        "--table-name",
        "cli",
        "--item",
        item,
        "--condition-expression",
        "attribute_not_exists(id)",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("(ConditionalCheckFailedException)"),
        "{err}"
    );
    let got: serde_json::Value = serde_json::from_str(&ok(&[
        "dynamodb",
        "get-item",
        "--table-name",
        "cli",
        "--key",
        r#"{"id":{"S":"a"}}"#,
        "--output",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        got["Item"]["n"]["N"], "0.30000000000000000000000000000000000001",
        "{got}"
    );
    let tables = ok(&["dynamodb", "list-tables", "--output", "text"]);
    assert!(tables.contains("cli"), "{tables}");

    let listed = up.json(&["tables"]);
    let t = &listed[0];
    assert_eq!(t["name"], "cli", "{listed:#}");
    assert_eq!(t["items"], 1, "{listed:#}");
    assert_eq!(t["billing_mode"], "PAY_PER_REQUEST", "{listed:#}");
    assert_eq!(t["key"][0], "id (S)", "{listed:#}");
    let text = String::from_utf8(up.cli(&["tables"]).stdout).unwrap();
    assert!(text.contains("cli") && text.contains("on demand"), "{text}");
    up.wait_for("the write alarm", Duration::from_secs(30), |u| {
        u.json(&["alarms"])
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "cli-writes" && a["state"] == "ALARM")
    });
    let series = up.json(&["metrics", "--namespace", "AWS/DynamoDB"]);
    let text = series.to_string();
    for name in [
        "ConsumedWriteCapacityUnits",
        "ConsumedReadCapacityUnits",
        "SuccessfulRequestLatency",
    ] {
        assert!(text.contains(name), "{name} in {series:#}");
    }
}

/// A write DynamoDB acknowledged is on disk: bellows killed with SIGKILL right after
/// the answer, started again on the same state directory, serves the item.
#[test]
fn an_acknowledged_write_survives_kill_9() {
    need_clients();
    let mut up = stack();
    let env = aws_env(&up);
    let put = r#"
import boto3
c = boto3.client("dynamodb")
c.create_table(TableName="durable", AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
               KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
for i in range(50):
    c.put_item(TableName="durable", Item={"id": {"S": f"k{i}"}, "v": {"N": str(i)}})
c.update_item(TableName="durable", Key={"id": {"S": "k49"}}, UpdateExpression="ADD v :x",
              ExpressionAttributeValues={":x": {"N": "0.5"}})
print("acknowledged")
"#;
    let out = python(&env, &["-c", put]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("acknowledged"),
        "{out:?}"
    );
    // At once, with no chance to flush anything on the way out.
    up.signal("KILL");
    assert!(up.wait_exit(Duration::from_secs(10)).is_some());
    up.restart(&[]);
    up.wait_for("1 in service again", Duration::from_secs(30), |u| {
        u.in_service().len() == 1
    });
    let env = aws_env(&up);
    let get = r#"
import boto3
c = boto3.client("dynamodb")
n = c.scan(TableName="durable", Select="COUNT")["Count"]
v = c.get_item(TableName="durable", Key={"id": {"S": "k49"}}, ConsistentRead=True)["Item"]["v"]["N"]
print(f"{n} {v}")
"#;
    let out = python(&env, &["-c", get]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "50 49.5",
        "{out:?}"
    );
}

/// An instance finds its role's temporary credentials the EC2 way (boto3's default
/// chain, through the metadata endpoint, IMDSv2), and they are scoped: DynamoDB, custom
/// metrics and STS work, changes to the stack get `AccessDenied`. They are never logged,
/// and die with the instance.
#[test]
fn an_instance_role_is_found_by_boto3_and_scoped() {
    need_clients();
    let (dir, _) = scratch();
    let result = dir.join("result.json");
    let script = root().join("tests/aws/instance_role.py");
    let group = format!(
        r#"
[groups.worker]
min = 1
max = 3
desired = 1
zones = ["zone-a"]

[groups.worker.launch]
command = ["python3", "{}"]
stop_timeout = "1s"
env = {{ RESULT = "{}", HOME = "{}" }}
"#,
        script.display(),
        result.display(),
        dir.display()
    );
    let up = Up::start("roles", &group);
    up.wait_for("the instance's result", Duration::from_secs(60), |_| {
        result.exists()
    });
    let out: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    assert!(out.get("error").is_none(), "{out:#}");
    assert_eq!(out["method"], "iam-role", "{out:#}");
    let key = out["key"].as_str().unwrap();
    assert!(
        key.starts_with("ASIA") && out["has_token"] == true,
        "{out:#}"
    );
    assert_eq!(out["region"], "us-east-1", "{out:#}");
    assert!(
        out["endpoint"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{out:#}"
    );
    let instance = up.in_service()[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(out["item"], instance.as_str(), "{out:#}");
    assert_eq!(out["metrics"], "allowed", "{out:#}");
    assert_eq!(
        out["identity"],
        format!("arn:aws:sts::123456789012:assumed-role/worker-role/{instance}").as_str(),
        "{out:#}"
    );
    assert_eq!(out["set_desired_capacity"], "AccessDenied 403", "{out:#}");
    assert_eq!(out["revoke_ingress"], "AccessDenied 403", "{out:#}");
    assert_eq!(out["set_alarm_state"], "AccessDenied 403", "{out:#}");
    assert_eq!(up.json(&["status"])["groups"][0]["desired"], 1);

    // The metadata endpoint as the SDK sees it: IMDSv2, the role, its credentials.
    let ip = up.instances()[0]["private_ip"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_default();
    let imds = format!("{ip}:1338");
    let (status, headers, token) = request(
        &imds,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
        "",
    );
    assert_eq!(status, 200, "{headers:?}");
    let t = [("X-aws-ec2-metadata-token", token.as_str())];
    let (_, _, role) = request(
        &imds,
        "GET",
        "/latest/meta-data/iam/security-credentials/",
        &t,
        "",
    );
    assert_eq!(role, "worker-role");
    let (status, _, creds) = request(
        &imds,
        "GET",
        "/latest/meta-data/iam/security-credentials/worker-role",
        &t,
        "",
    );
    assert_eq!(status, 200);
    let creds: serde_json::Value = serde_json::from_str(&creds).unwrap();
    assert_eq!(creds["Code"], "Success");
    assert_eq!(
        creds["AccessKeyId"], key,
        "the same credentials until rotation"
    );
    // IMDSv1, no token: the same credentials.
    let (status, _, v1) = request(
        &imds,
        "GET",
        "/latest/meta-data/iam/security-credentials/worker-role",
        &[],
        "",
    );
    assert_eq!(status, 200);
    let v1: serde_json::Value = serde_json::from_str(&v1).unwrap();
    assert_eq!(v1["AccessKeyId"], key);
    // A wrong token is refused, as EC2 does.
    let (status, _, _) = request(
        &imds,
        "GET",
        "/latest/meta-data/iam/security-credentials/worker-role",
        &[("X-aws-ec2-metadata-token", "not-a-token")],
        "",
    );
    assert_eq!(status, 401);
    let secret = creds["SecretAccessKey"].as_str().unwrap().to_owned();
    let session = creds["Token"].as_str().unwrap().to_owned();
    assert!(creds["Expiration"].as_str().unwrap().ends_with('Z'));
    let log = up.log();
    assert!(
        !log.contains(&secret) && !log.contains(&session),
        "credentials are never logged"
    );
    // Without the session token the key is refused.
    let control = std::fs::read_to_string(up.state.join("control")).unwrap();
    let call = |token: &str| {
        let mut env = vec![
            (
                "AWS_ENDPOINT_URL".to_owned(),
                format!("http://{}", control.trim()),
            ),
            ("AWS_ACCESS_KEY_ID".to_owned(), key.to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), secret.clone()),
            ("AWS_DEFAULT_REGION".to_owned(), "us-east-1".to_owned()),
        ];
        if !token.is_empty() {
            env.push(("AWS_SESSION_TOKEN".to_owned(), token.to_owned()));
        }
        let out = python(
            &env,
            &[
                "-c",
                "import boto3\ntry:\n  boto3.client('dynamodb').list_tables(); print('allowed')\nexcept Exception as e:\n  print(e.response['Error']['Code'])",
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(call(&session), "allowed");
    assert_eq!(call(""), "UnrecognizedClientException");
    // The role allows more once the stack says so: the credentials the instance already
    // holds are allowed it at once, as IAM reads a role's policies at each request.
    let describe = |token: &str| {
        let env = vec![
            (
                "AWS_ENDPOINT_URL".to_owned(),
                format!("http://{}", control.trim()),
            ),
            ("AWS_ACCESS_KEY_ID".to_owned(), key.to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), secret.clone()),
            ("AWS_SESSION_TOKEN".to_owned(), token.to_owned()),
            ("AWS_DEFAULT_REGION".to_owned(), "us-east-1".to_owned()),
        ];
        let out = python(
            &env,
            &[
                "-c",
                "import boto3\ntry:\n  boto3.client('autoscaling').describe_auto_scaling_groups(); print('allowed')\nexcept Exception as e:\n  print(e.response['Error']['Code'])",
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(describe(&session), "AccessDenied");
    let stack = up.dir.join("stack.toml");
    let wider = std::fs::read_to_string(&stack).unwrap()
        + "\n[groups.worker.role]\nname = \"worker-role\"\nallow = [\"dynamodb:*\", \"cloudwatch:PutMetricData\", \"sts:GetCallerIdentity\", \"autoscaling:Describe*\"]\n";
    std::fs::write(&stack, wider).unwrap();
    let applied = up.cli(&["apply", stack.to_str().unwrap(), "--yes"]);
    assert!(applied.status.success(), "{applied:?}");
    assert_eq!(describe(&session), "allowed", "the running instance's key");
    assert_eq!(
        up.in_service()[0]["id"].as_str(),
        Some(instance.as_str()),
        "the same instance: a role's policy is no new launch"
    );
    // The instance goes: its credentials go with it.
    up.kill_instance(&instance);
    up.wait_for("the instance gone", Duration::from_secs(20), |u| {
        !u.instances()
            .iter()
            .any(|i| i["id"] == instance.as_str() && i["lifecycle"] == "InService")
    });
    assert_eq!(call(&session), "UnrecognizedClientException");
}

/// Seed 004's kind of app, a Flask service on boto3 and DynamoDB with no bellows in it
/// (examples/apps/candidates-dynamodb), as the group of examples/flask-dynamodb.toml:
/// the seed's validate.sh checks pass through the load balancer, and what one instance
/// wrote the other reads, also after `kill -9` of the writer.
#[test]
fn seed_004s_flask_app_runs_unchanged_on_dynamodb() {
    need_clients();
    let flask = Command::new("python3")
        .args(["-c", "import flask"])
        .output();
    assert!(
        flask.is_ok_and(|o| o.status.success()),
        "Flask is missing: run scripts/test, or `python3 -m pip install flask`"
    );
    let (dir, network) = scratch();
    let repo = root().canonicalize().unwrap();
    let text = std::fs::read_to_string(repo.join("examples/flask-dynamodb.toml"))
        .unwrap()
        .replace(":8080\"", ":0\"")
        .replace(
            "control = \"127.0.0.1:9900\"",
            &format!("control = \"127.0.0.1:9900\"\ninstance_network = \"{network}\""),
        )
        .replace(" examples/", &format!(" {}/examples/", repo.display()))
        .replace("\"examples/", &format!("\"{}/examples/", repo.display()));
    let file = write_file(&dir, "flask-dynamodb.toml", &text);
    let up = Up::start_file(&file, &dir);
    up.wait_for("2 healthy targets", Duration::from_secs(120), |u| {
        u.healthy() == 2
    });
    let lb = up.lb();
    assert_eq!(
        http(&lb, "GET", "/candidates", None),
        (404, "Not Found".into()),
        "an empty table"
    );
    let out = up.cli(&["check", file.to_str().unwrap()]);
    let checked = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{checked}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["good to go", "insert", "verification", "candidate list"] {
        assert!(checked.contains(&format!("✓ {name} passed")), "{checked}");
    }
    // Written through one instance, read through the other.
    let instances = up.in_service();
    let addr = |i: &serde_json::Value| format!("{}:5000", i["private_ip"].as_str().unwrap());
    let (a, b) = (addr(&instances[0]), addr(&instances[1]));
    assert_eq!(
        http(&a, "POST", "/candidate/grace", None),
        (200, "{\"CandidateName\":\"grace\"}\n".to_owned())
    );
    let (status, body) = http(&b, "GET", "/candidate/grace", None);
    assert_eq!(
        (status, body.trim()),
        (200, r#"{"CandidateName": "grace"}"#)
    );
    let (_, details) = http(&b, "GET", "/gtg?details=true", None);
    assert!(
        details.contains(instances[1]["id"].as_str().unwrap()),
        "{details}"
    );
    // The writer killed with SIGKILL right after the answer: the other still reads it.
    assert_eq!(
        http(&a, "POST", "/candidate/hopper", None).0,
        200,
        "acknowledged"
    );
    up.kill_instance(instances[0]["id"].as_str().unwrap());
    let (status, body) = http(&b, "GET", "/candidate/hopper", None);
    assert_eq!(
        (status, body.trim()),
        (200, r#"{"CandidateName": "hopper"}"#)
    );
    // The table is the stack's: listed through the operator's own key pair.
    let env = aws_env(&up);
    let out = python(
        &env,
        &[
            "-c",
            "import boto3; print(boto3.client('dynamodb').scan(TableName='Candidates', Select='COUNT')['Count'])",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3", "{out:?}");
}
