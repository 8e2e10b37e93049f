//! End to end with the real `terraform` binary and the `hashicorp/aws` provider from the
//! machine's filesystem mirror: `examples/terraform/ip-tracker` (written for AWS) is
//! applied against a node, serves through its load balancer's DNS name on port 80,
//! changes in place, plans empty after each apply, and is destroyed with no instance
//! process left. Terraform's own debug log is kept (its path printed) when a test fails.

// Tests time real processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::terraform::*;
use common::topology::*;
use common::*;

/// A GET through the load balancer, retried a bounded number of times.
fn get_through(addr: &str, path: &str) -> (u16, String) {
    let mut last = (0, String::new());
    for _ in 0..50 {
        last = http(addr, "GET", path, None);
        if last.0 == 200 {
            return last;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    last
}

/// The pids of the instances that run now.
fn instance_pids(up: &Up) -> Vec<u32> {
    up.instances()
        .iter()
        .filter(|i| i["lifecycle"] != "Terminated")
        .filter_map(|i| i["pid"].as_u64().map(|p| p as u32))
        .collect()
}

/// A GET of the metadata endpoint from inside an instance: in its network namespace (it
/// has one when bellows runs as root), to the endpoint its environment names.
fn metadata_from_inside(pid: u32, path: &str) -> (u16, String) {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let endpoint = environ
        .split(|b| *b == 0)
        .filter_map(|v| std::str::from_utf8(v).ok())
        .find_map(|v| v.strip_prefix("AWS_EC2_METADATA_SERVICE_ENDPOINT="))
        .expect("the instance's environment names its metadata endpoint")
        .to_owned();
    let script = "import sys, urllib.request\n\
        try:\n    r = urllib.request.urlopen(sys.argv[1], timeout=10); print(r.status); print(r.read().decode())\n\
        except urllib.error.HTTPError as e:\n    print(e.code); print(e.read().decode())\n";
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "python3", "-c", script])
        .arg(format!("{endpoint}{path}"))
        .output()
        .expect("nsenter runs");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let (status, body) = text.split_once('\n').unwrap_or((&text, ""));
    (
        status.trim().parse().unwrap_or(0),
        body.trim_end().to_owned(),
    )
}

/// Stops `up` (an `up --empty --name NAME` node) and starts it again on the same state
/// directory, as an operator restarting bellows would.
fn restart_empty(up: &mut Up, name: &str) {
    up.signal("TERM");
    assert!(
        up.wait_exit(Duration::from_secs(30)).is_some(),
        "bellows stops on SIGTERM"
    );
    let _ = std::fs::remove_file(up.state.join("control"));
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(up.dir.join("up.log"))
        .unwrap();
    let network = format!("127.250.{}.0/24", std::process::id() % 250);
    up.child = Command::new(BIN)
        .args(["--control", "127.0.0.1:0", "up", "--empty", "--name", name])
        .args(["--instance-network", &network])
        .arg("--state-dir")
        .arg(&up.state)
        .env("RUST_LOG", "info")
        .stdout(log)
        .spawn()
        .expect("bellows starts again");
    up.wait_for("the control API again", Duration::from_secs(15), |u| {
        u.state.join("control").exists()
    });
}

#[test]
fn the_ip_tracker_example_applies_serves_restarts_changes_and_destroys() {
    // A name of this run's own: the load balancer's address derives from it, and another
    // run of this test (another checkout) may be listening on its own at the same time.
    let name = format!("tf-ip-tracker-{}", std::process::id());
    let name = name.as_str();
    let mut up = Up::start_empty(name);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/terraform/ip-tracker");
    let mut tf = Tf::new(&example, "ip-tracker", aws_env(&up));
    tf.ok(&["init"]);

    // Apply: instances from the launch template serve through the load balancer on 80.
    tf.ok(&["apply", "-auto-approve"]);
    tf.plan_is_empty("right after apply", &[]);
    let dns = tf.ok(&["output", "-raw", "dns"]).trim().to_owned();
    let ip: std::net::Ipv4Addr = dns
        .parse()
        .unwrap_or_else(|_| panic!("the DNS name {dns:?} is an address on this machine"));
    assert!(ip.is_loopback(), "{dns} is a loopback address");
    let (status, body) = get_through(&format!("{dns}:80"), "/app-x7k9m2n8/");
    assert_eq!(status, 200, "GET http://{dns}/app-x7k9m2n8/: {body}");
    assert_eq!(up.in_service().len(), 1, "{:?}", up.instances());
    // The listener's rule forwards the app's path; the rest gets its fixed response.
    let (status, body) = http(&format!("{dns}:80"), "GET", "/", None);
    assert_eq!(
        (status, body.as_str()),
        (404, "The IP tracker lives at /app-x7k9m2n8/")
    );

    // A restart runs the same stack from the records, and the plan stays empty.
    restart_empty(&mut up, name);
    tf.env = aws_env(&up);
    up.wait_for("the instance relaunched", Duration::from_secs(60), |u| {
        u.in_service().len() == 1
    });
    tf.plan_is_empty("after a restart", &[]);
    let (status, _) = get_through(&format!("{dns}:80"), "/app-x7k9m2n8/");
    assert_eq!(status, 200, "after the restart");

    // Changes in place under traffic, none of which needs a failed request: two
    // instances and a higher alarm threshold (the load would otherwise trip the seed's
    // 15 requests per target in a minute), then another health check page.
    let app = format!("{dns}:80");
    let load = GetLoad::start_at(app.clone(), "/app-x7k9m2n8/", Duration::from_millis(20));
    let v1 = [
        "-var",
        "desired_capacity=2",
        "-var",
        "requests_per_target_alarm=100000",
    ];
    let mut args = vec!["apply", "-auto-approve"];
    args.extend_from_slice(&v1);
    tf.ok(&args);
    up.wait_for("two instances in service", Duration::from_secs(60), |u| {
        u.in_service().len() == 2
    });
    tf.plan_is_empty("after desired 2 and a new threshold", &v1);
    assert_eq!(instance_pids(&up).len(), 2, "{:?}", up.instances());
    // Each instance is in the group's subnet of its zone, in that subnet's VPC.
    let json = |args: &[&str]| -> serde_json::Value {
        serde_json::from_slice(&aws(&tf.env, args).stdout).unwrap()
    };
    let asg = json(&["autoscaling", "describe-auto-scaling-groups"]);
    let subnets: Vec<String> = asg["AutoScalingGroups"][0]["VPCZoneIdentifier"]
        .as_str()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    let described = json(
        &["ec2", "describe-subnets", "--subnet-ids"]
            .iter()
            .copied()
            .chain(subnets.iter().map(String::as_str))
            .collect::<Vec<_>>(),
    );
    let ec2 = json(&["ec2", "describe-instances"]);
    let placed: Vec<&serde_json::Value> = ec2["Reservations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Instances"].as_array().unwrap())
        .collect();
    assert_eq!(placed.len(), 2, "{ec2:#}");
    for i in placed {
        let subnet = described["Subnets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["SubnetId"] == i["SubnetId"])
            .unwrap_or_else(|| panic!("{} is in none of {subnets:?}", i["SubnetId"]));
        assert_eq!(
            subnet["AvailabilityZone"], i["Placement"]["AvailabilityZone"],
            "{i:#}"
        );
        assert_eq!(subnet["VpcId"], i["VpcId"], "{i:#}");
    }
    let alarms = aws(
        &tf.env,
        &[
            "cloudwatch",
            "describe-alarms",
            "--alarm-names",
            "ip-tracker-high-requests",
        ],
    );
    let alarms: serde_json::Value = serde_json::from_slice(&alarms.stdout).unwrap();
    assert_eq!(alarms["MetricAlarms"][0]["Threshold"], 100000.0, "{alarms}");
    // The app's index as the health check page: both targets stay healthy on it.
    let v2 = [v1.as_slice(), &["-var", "health_check_page="]].concat();
    let mut args = vec!["apply", "-auto-approve"];
    args.extend_from_slice(&v2);
    tf.ok(&args);
    tf.plan_is_empty("after a new health check page", &v2);
    let groups = aws(
        &tf.env,
        &[
            "elbv2",
            "describe-target-groups",
            "--names",
            "ip-tracker-tg",
        ],
    );
    let groups: serde_json::Value = serde_json::from_slice(&groups.stdout).unwrap();
    assert_eq!(
        groups["TargetGroups"][0]["HealthCheckPath"], "/app-x7k9m2n8/",
        "{groups}"
    );
    // Three checks' worth (10 s apart) on the new page.
    std::thread::sleep(Duration::from_secs(31));
    assert_eq!(up.healthy(), 2, "{:?}", up.targets());
    let (ok, failed) = load.finish();
    assert!(
        failed.is_empty() && ok > 100,
        "{ok} GETs answered 200 while the changes applied; these were not: {failed:?}"
    );

    // A new launch template version: the group's instance refresh replaces both, one at
    // a time (50% stay healthy), each drained before it stops: no GET fails either.
    let before: Vec<String> = up
        .in_service()
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect();
    let load = GetLoad::start_at(app.clone(), "/app-x7k9m2n8/", Duration::from_millis(20));
    let v3 = [v2.as_slice(), &["-var", "max_users_per_instance=30"]].concat();
    let mut args = vec!["apply", "-auto-approve"];
    args.extend_from_slice(&v3);
    tf.ok(&args);
    up.wait_for(
        "the refresh to replace both instances",
        Duration::from_secs(120),
        |u| {
            let now = u.in_service();
            now.len() == 2
                && now
                    .iter()
                    .all(|i| !before.iter().any(|b| i["id"] == b.as_str()))
        },
    );
    let (ok, failed) = load.finish();
    assert!(
        failed.is_empty() && ok > 100,
        "{ok} GETs answered 200 during the refresh; these were not: {failed:?}"
    );
    tf.plan_is_empty("after the refresh", &v3);
    let pids = instance_pids(&up);

    // Every change is audited as the AWS caller's.
    let audit = up.json(&["audit", "--limit", "1000"]);
    let entries = audit.as_array().cloned().unwrap_or_default();
    for kind in [
        "auto_scaling_group",
        "load_balancer",
        "listener",
        "target_group",
        "policy",
    ] {
        assert!(
            entries.iter().any(|e| e["source"] == "aws"
                && e["target"]
                    .as_str()
                    .is_some_and(|t| t.starts_with(&format!("aws/{kind}/")))),
            "the {kind}'s creation is audited with source aws: {audit}"
        );
    }
    assert!(
        entries
            .iter()
            .filter(|e| e["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("aws/") || t.starts_with("alarm/")))
            .all(|e| e["source"] == "aws"),
        "{audit}"
    );

    // Destroy: nothing left running.
    let mut args = vec!["destroy", "-auto-approve"];
    args.extend_from_slice(&v3);
    tf.ok(&args);
    up.wait_for("no instance left", Duration::from_secs(30), |u| {
        instance_pids(u).is_empty() && pids.iter().all(|p| !alive(*p))
    });
    let status = up.json(&["status"]);
    assert!(
        status["groups"].as_array().is_some_and(Vec::is_empty),
        "{status}"
    );
    let gone = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::new(ip.into(), 80),
        Duration::from_secs(2),
    );
    assert!(gone.is_err(), "the listener on {dns}:80 is gone");
}

/// Seed 004's stack (examples/terraform/flask-dynamodb): the table, the IAM role with its
/// managed policy and the instance profile are Terraform's; the Flask app in the
/// instances finds the profile's credentials behind its metadata endpoint and writes the
/// table through the load balancer; the role allows what its policy allows and nothing
/// else; the plan is empty after apply, after a restart and after a third instance is
/// applied in place; destroy leaves no instance process. The same directory imported
/// then runs what terraform apply made, role included.
#[test]
fn the_flask_dynamodb_example_applies_serves_from_its_table_and_destroys() {
    need_terraform();
    need_clients();
    let flask = Command::new("python3")
        .args(["-c", "import flask, boto3"])
        .output();
    assert!(
        flask.is_ok_and(|o| o.status.success()),
        "Flask or boto3 is missing: run scripts/test, or `python3 -m pip install flask boto3`"
    );
    // A name of this run's own, as in the test above (the load balancer's address).
    let name = format!("tf-flask-dynamodb-{}", std::process::id());
    let name = name.as_str();
    let mut up = Up::start_empty(name);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap();
    let env = aws_env(&up);
    let mut tf = Tf::new(
        &root.join("examples/terraform/flask-dynamodb"),
        "flask-dynamodb",
        env.clone(),
    );
    let app_dir = format!(
        "app_dir={}",
        root.join("examples/apps/candidates-dynamodb").display()
    );
    let vars = ["-var", app_dir.as_str()];
    tf.ok(&["init"]);
    let mut apply = vec!["apply", "-auto-approve"];
    apply.extend_from_slice(&vars);
    tf.ok(&apply);
    tf.plan_is_empty("right after apply", &vars);
    assert_eq!(up.in_service().len(), 2, "{:?}", up.instances());
    let want = topology(&running_stack(&up));

    // The seed's validate.sh through the load balancer's DNS name on port 80.
    let dns = tf.ok(&["output", "-raw", "dns"]).trim().to_owned();
    let lb = format!("{dns}:80");
    let (status, body) = get_through(&lb, "/gtg?details=true");
    assert_eq!(status, 200, "GET http://{lb}/gtg?details=true: {body}");
    assert!(body.contains("\"connected\":\"true\""), "{body}");
    for n in 0..4 {
        let (status, body) = http(&lb, "POST", &format!("/candidate/tf-{n}"), None);
        assert_eq!(
            status, 200,
            "POST /candidate/tf-{n} (every instance writes): {body}"
        );
        assert!(
            body.contains(&format!("\"CandidateName\":\"tf-{n}\"")),
            "{body}"
        );
    }
    let (status, body) = http(&lb, "GET", "/candidate/tf-0", None);
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(&lb, "GET", "/candidates", None);
    assert_eq!(status, 200, "{body}");
    assert!((0..4).all(|n| body.contains(&format!("tf-{n}"))), "{body}");
    // In the table Terraform created, as the operator reads it.
    let out = aws(
        &env,
        &[
            "dynamodb",
            "scan",
            "--table-name",
            "Candidates",
            "--output",
            "json",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let scan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(scan["Count"], 4, "{scan}");

    // The instance's credentials are the profile's role, scoped by its policy, as the
    // instance itself reads them from its metadata endpoint.
    let instance = up.in_service()[0].clone();
    let pid = instance["pid"].as_u64().unwrap() as u32;
    let (status, role) = metadata_from_inside(pid, "latest/meta-data/iam/security-credentials/");
    assert_eq!((status, role.trim()), (200, "flask-ec2-role"));
    let (status, creds) = metadata_from_inside(
        pid,
        "latest/meta-data/iam/security-credentials/flask-ec2-role",
    );
    assert_eq!(status, 200, "{creds}");
    let creds: serde_json::Value = serde_json::from_str(&creds).unwrap();
    let mut role_env: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k == "AWS_ENDPOINT_URL" || k == "AWS_DEFAULT_REGION")
        .cloned()
        .collect();
    for (k, m) in [
        ("AWS_ACCESS_KEY_ID", "AccessKeyId"),
        ("AWS_SECRET_ACCESS_KEY", "SecretAccessKey"),
        ("AWS_SESSION_TOKEN", "Token"),
    ] {
        role_env.push((k.to_owned(), creds[m].as_str().unwrap().to_owned()));
    }
    let allowed = aws(
        &role_env,
        &["dynamodb", "describe-table", "--table-name", "Candidates"],
    );
    assert!(
        allowed.status.success(),
        "the policy allows DescribeTable: {allowed:?}"
    );
    for denied in [
        vec!["dynamodb", "delete-table", "--table-name", "Candidates"],
        vec![
            "autoscaling",
            "set-desired-capacity",
            "--auto-scaling-group-name",
            "flask-asg",
            "--desired-capacity",
            "4",
        ],
    ] {
        let out = aws(&role_env, &denied);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("AccessDenied"),
            "{denied:?} is outside the role's policy: {err}"
        );
    }

    // A restart runs the same stack and role from the records: the plan stays empty, the
    // relaunched instances write with the profile's credentials, the items are there.
    restart_empty(&mut up, name);
    let env = aws_env(&up);
    tf.env = env.clone();
    up.wait_for("two instances relaunched", Duration::from_secs(90), |u| {
        u.in_service().len() == 2
    });
    tf.plan_is_empty("after a restart", &vars);
    let (status, body) = get_through(&lb, "/candidate/tf-0");
    assert_eq!(status, 200, "after the restart: {body}");
    for n in 4..6 {
        let (status, body) = http(&lb, "POST", &format!("/candidate/tf-{n}"), None);
        assert_eq!(
            status, 200,
            "POST /candidate/tf-{n} after the restart: {body}"
        );
    }

    // A change applied in place: a third instance, which serves from the same table; the
    // plan is empty again.
    let vars = [vars.as_slice(), &["-var", "asg_instances=3"]].concat();
    let mut apply = vec!["apply", "-auto-approve"];
    apply.extend_from_slice(&vars);
    tf.ok(&apply);
    up.wait_for("three instances healthy", Duration::from_secs(90), |u| {
        u.in_service().len() == 3 && u.healthy() == 3
    });
    tf.plan_is_empty("after asg_instances = 3", &vars);
    for n in 0..3 {
        let (status, body) = get_through(&lb, &format!("/candidate/tf-{n}"));
        assert_eq!(status, 200, "with three instances: {body}");
    }

    // Destroy: nothing left running, the table gone.
    let pids = instance_pids(&up);
    assert_eq!(pids.len(), 3, "{:?}", up.instances());
    let mut destroy = vec!["destroy", "-auto-approve"];
    destroy.extend_from_slice(&vars);
    tf.ok(&destroy);
    up.wait_for("no instance left", Duration::from_secs(30), |u| {
        instance_pids(u).is_empty() && pids.iter().all(|p| !alive(*p))
    });
    let out = aws(&env, &["dynamodb", "list-tables", "--output", "json"]);
    assert!(out.status.success(), "{out:?}");
    let tables: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tables["TableNames"], serde_json::json!([]), "{tables}");
    let out = aws(&env, &["iam", "get-role", "--role-name", "flask-ec2-role"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("NoSuchEntity"),
        "the role is gone: {err}"
    );
    drop(up);

    // The same directory imported runs what `terraform apply` made, the role included,
    // and the imported stack's app writes its table through the load balancer.
    let (dir, network) = scratch();
    let imported = dir.join("imported.toml");
    let o = Command::new(BIN)
        .args(["import", "terraform"])
        .arg(root.join("examples/terraform/flask-dynamodb"))
        .arg("-o")
        .arg(&imported)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let port = free_port();
    let text = std::fs::read_to_string(&imported).unwrap().replace(
        "/opt/candidates-dynamodb",
        &root
            .join("examples/apps/candidates-dynamodb")
            .display()
            .to_string(),
    );
    let text = run_here(&text, port, &network);
    std::fs::write(&imported, &text).unwrap();
    let local = Up::start_file(&imported, &dir);
    let out = aws(
        &aws_env(&local),
        &[
            "dynamodb",
            "create-table",
            "--table-name",
            "Candidates",
            "--attribute-definitions",
            "AttributeName=CandidateName,AttributeType=S",
            "--key-schema",
            "AttributeName=CandidateName,KeyType=HASH",
            "--billing-mode",
            "PAY_PER_REQUEST",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    serving(&local, 2);
    same_topology(
        &want,
        &topology(&running_stack(&local)),
        &format!("import, then bellows up:\n{text}"),
    );
    let (status, body) = http(
        &format!("127.0.0.1:{port}"),
        "POST",
        "/candidate/imported",
        None,
    );
    assert_eq!(status, 200, "{body}\n{text}");
}
