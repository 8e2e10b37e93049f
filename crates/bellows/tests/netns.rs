//! Instances from user data, as EC2 runs them: a `#!` script and a `#cloud-config`
//! runcmd, each instance in a network namespace of its own, binding 0.0.0.0:PORT.
//! Network namespaces need root, which CI has: these tests fail, loudly, without it.

#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::{Up, http};

fn need_root_and_ip() {
    let uid = Command::new("id").arg("-u").output().expect("id runs");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "per-instance network namespaces need root: run this test as root (CI does)"
    );
    assert!(
        Command::new("ip")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success()),
        "`ip` (iproute2) is missing: scripts/test installs it"
    );
}

/// A network of its own for each test (10.214-218) and test process (the pid).
fn network(second: u32) -> String {
    format!("10.{}.{}.0/24", 214 + second, std::process::id() % 250)
}

/// The host's links with an address in `net` (the host ends of the test's veths).
fn links_in(net: &str) -> BTreeSet<String> {
    let prefix = net.rsplit_once('.').unwrap().0.to_owned() + ".";
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .expect("ip runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("inet {prefix}")))
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect()
}

fn all_links() -> String {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const SERVER: &str = r#"#!/usr/bin/env python3
import http.server, os, urllib.request, urllib.error

IID = os.environ["INSTANCE_ID"]
MD = os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
AWS = os.environ["AWS_ENDPOINT_URL"]

def status(req):
    try:
        return str(urllib.request.urlopen(req, timeout=3).status)
    except urllib.error.HTTPError as e:
        return str(e.code)

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/meta":
            body = urllib.request.urlopen(MD + "latest/meta-data/local-ipv4", timeout=3).read().decode()
        elif self.path == "/aws":
            post = urllib.request.Request(AWS + "/", data=b"Action=DescribeAlarms&Version=2010-08-01", method="POST")
            body = status(post) + " " + status(AWS + "/api/v1/status")
        elif self.path.startswith("/peer-md/"):
            body = status("http://" + self.path[9:] + ":1338/latest/meta-data/instance-id")
        elif self.path == "/metric":
            put = urllib.request.Request(os.environ["BELLOWS_API"] + "/api/v1/metrics", method="POST",
                data=b'{"namespace": "App", "name": "Users", "value": 7}',
                headers={"Authorization": "Bearer " + os.environ["BELLOWS_METRICS_TOKEN"], "Content-Type": "application/json"})
            body = status(put)
        elif self.path == "/boto":
            import boto3
            body = boto3.client("sts").get_caller_identity()["Arn"]
        else:
            body = IID
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass

http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
"#;

fn stack(net: &str, user_data: &str) -> String {
    format!(
        r#"namespace_network = "{net}"

[target_groups.web.health_check]
path = "/health"
interval = "1s"

[listeners.http]
address = "127.0.0.1:0"
default = {{ forward = "web" }}

[groups.web]
min = 0
max = 4
desired = 2
zones = ["zone-a", "zone-b"]
target_groups = ["web"]

[groups.web.launch]
user_data = '''
{user_data}'''
stop_timeout = "2s"
"#
    )
}

#[test]
fn user_data_scripts_bind_all_addresses_in_namespaces_of_their_own() {
    need_root_and_ip();
    common::need_clients();
    let net = network(0);
    let mut up = Up::start("netns", &stack(&net, SERVER));
    up.wait_for("two healthy instances", Duration::from_secs(30), |u| {
        u.healthy() == 2
    });
    let instances = up.in_service();
    assert_eq!(instances.len(), 2);
    let prefix = net.rsplit_once('.').unwrap().0.to_owned() + ".";
    let mut ids = BTreeSet::new();
    let mut addrs = BTreeSet::new();
    let mut pids = Vec::new();
    for i in &instances {
        let ip = i["private_ip"].as_str().unwrap();
        assert!(ip.starts_with(&prefix), "{ip} is not in {net}");
        addrs.insert(ip.to_owned());
        ids.insert(i["id"].as_str().unwrap().to_owned());
        pids.push(i["pid"].as_u64().unwrap() as u32);
    }
    assert_eq!(addrs.len(), 2, "each instance has its own address");
    // Both answer behind the load balancer.
    let lb = up.lb();
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        let (code, body) = http(&lb, "GET", "/", None);
        assert_eq!(code, 200, "{body}");
        seen.insert(body);
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen, ids, "requests answered by both instances");
    // The metadata endpoint, reached from inside, knows the instance's own address.
    let (code, local) = http(&lb, "GET", "/meta", None);
    assert_eq!(code, 200);
    assert!(addrs.contains(&local), "{local} not one of {addrs:?}");
    // The AWS endpoint is reachable from inside (an unsigned call is refused as AWS
    // refuses it), the control API is not.
    let (code, aws) = http(&lb, "GET", "/aws", None);
    assert_eq!(code, 200);
    let (aws_call, control) = aws.split_once(' ').unwrap();
    assert!(
        aws_call.starts_with('4'),
        "the AWS endpoint answers an unsigned call with an AWS error: {aws}"
    );
    assert_eq!(
        control, "404",
        "the control API is not served into the namespace"
    );
    // Another instance's metadata endpoint, routable from here, does not answer.
    let ips: Vec<&String> = addrs.iter().collect();
    let other_host = {
        let ip: std::net::Ipv4Addr = ips[1].parse().unwrap();
        std::net::Ipv4Addr::from(u32::from(ip) - 1)
    };
    let (code, peer) = http(
        &format!("{}:5000", ips[0]),
        "GET",
        &format!("/peer-md/{other_host}"),
        None,
    );
    assert_eq!(
        (code, peer.as_str()),
        (200, "403"),
        "another instance's metadata"
    );
    // Its own metrics go through its face too.
    assert_eq!(http(&lb, "GET", "/metric", None), (200, "200".to_owned()));
    // boto3 in the instance finds the endpoint and its role's credentials.
    let (code, arn) = http(&lb, "GET", "/boto", None);
    assert_eq!(code, 200, "{arn}");
    assert!(arn.contains("web-role"), "{arn}");
    // Its log says where it is, and `bellows logs` shows it.
    let id = ids.iter().next().unwrap();
    let logs = up.cli(&["logs", id]);
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(
        text.contains("network namespace: eth0"),
        "bellows logs {id}: {text}"
    );
    let veths = links_in(&net);
    assert_eq!(veths.len(), 2, "a veth host end per instance: {veths:?}");
    // Stopped, nothing is left: no process, no veth.
    up.signal("TERM");
    assert!(
        up.wait_exit(Duration::from_secs(20)).is_some(),
        "bellows stops"
    );
    for pid in pids {
        assert!(!common::alive(pid), "instance process {pid} is left");
    }
    let links = all_links();
    for v in &veths {
        assert!(!links.contains(v.as_str()), "veth {v} is left: {links}");
    }
    assert!(links_in(&net).is_empty(), "addresses of {net} are left");
}

#[test]
fn cloud_config_runcmd_runs_in_order() {
    need_root_and_ip();
    let net = network(1);
    let config = r#"#cloud-config
package_update: true
runcmd:
  - echo first step
  - [ echo, "argv form" ]
  - exec python3 -m http.server --bind 0.0.0.0 "$PORT"
"#;
    let text = stack(&net, config).replace("path = \"/health\"", "path = \"/\"");
    let mut up = Up::start("cloudcfg", &text);
    up.wait_for("two healthy instances", Duration::from_secs(30), |u| {
        u.healthy() == 2
    });
    let lb = up.lb();
    let (code, _) = http(&lb, "GET", "/", None);
    assert_eq!(code, 200);
    let id = up.in_service()[0]["id"].as_str().unwrap().to_owned();
    let logs = up.cli(&["logs", &id]);
    let text = String::from_utf8_lossy(&logs.stdout).into_owned();
    let first = text.find("first step").expect("runcmd's first command ran");
    let second = text.find("argv form").expect("runcmd's argv command ran");
    assert!(first < second, "in order: {text}");
    let veths = links_in(&net);
    up.signal("TERM");
    assert!(
        up.wait_exit(Duration::from_secs(20)).is_some(),
        "bellows stops"
    );
    let links = all_links();
    for v in &veths {
        assert!(!links.contains(v.as_str()), "veth {v} is left: {links}");
    }
}

#[test]
fn kill_9_of_bellows_leaves_no_namespace_veth_or_process() {
    need_root_and_ip();
    let net = network(2);
    let up = Up::start("netns-kill", &stack(&net, SERVER));
    up.wait_for("two healthy instances", Duration::from_secs(30), |u| {
        u.healthy() == 2
    });
    let pids: Vec<u32> = up
        .in_service()
        .iter()
        .map(|i| i["pid"].as_u64().unwrap() as u32)
        .collect();
    let veths = links_in(&net);
    assert_eq!(veths.len(), 2, "{veths:?}");
    common::kill9(u64::from(up.child.id()));
    // Each shim sees its lifeline close and stops its instance; the namespace, and its
    // veth pair, go with the instance's last process.
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(15)
        && (pids.iter().any(|p| common::alive(*p)) || !links_in(&net).is_empty())
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in pids {
        assert!(!common::alive(pid), "instance process {pid} is left");
    }
    let links = all_links();
    for v in &veths {
        assert!(!links.contains(v.as_str()), "veth {v} is left: {links}");
    }
}

#[test]
fn user_data_bellows_does_not_run_is_refused_with_its_line() {
    let (dir, _) = common::scratch();
    let config = "#cloud-config\nruncmd:\n  - echo hi\npackages:\n  - nginx\n";
    let file = common::write_file(
        &dir,
        "stack.toml",
        &format!(
            "[groups.web]\nmin = 1\nmax = 1\n\n[groups.web.launch]\nuser_data = '''\n{config}'''\n"
        ),
    );
    let out = Command::new(common::BIN)
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("user_data`: #cloud-config line 4: bellows does not support `packages`"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failing_user_data_script_ends_the_instance_as_a_command_would() {
    need_root_and_ip();
    let net = network(3);
    let up = Up::start(
        "netns-fail",
        &stack(&net, "#!/bin/sh\necho broken-user-data >&2\nexit 3\n"),
    );
    up.wait_for(
        "an activity with the script's exit",
        Duration::from_secs(20),
        |u| {
            u.activities()
                .iter()
                .any(|a| a.to_string().contains("exit status 3"))
        },
    );
    let dead = up
        .activities()
        .into_iter()
        .find(|a| a.to_string().contains("exit status 3"))
        .unwrap();
    let id = dead.to_string();
    let id = id
        .split("i-")
        .nth(1)
        .map(|r| format!("i-{}", &r[..17]))
        .expect("the activity names its instance");
    let logs = up.cli(&["logs", &id]);
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(
        text.contains("broken-user-data"),
        "bellows logs {id}: {text}"
    );
}

/// `network = "host"` (and the fallback without root): user data on a loopback address
/// of its own, binding `$PRIVATE_IP`.
#[test]
fn user_data_on_the_hosts_network_binds_its_private_address() {
    let net = network(4);
    let script = "#!/bin/sh\nexec python3 -m http.server --bind \"$PRIVATE_IP\" \"$PORT\"\n";
    let text = stack(&net, script)
        .replace("path = \"/health\"", "path = \"/\"")
        .replace(
            "stop_timeout = \"2s\"",
            "stop_timeout = \"2s\"\nnetwork = \"host\"",
        );
    let up = Up::start("userdata-host", &text);
    up.wait_for("two healthy instances", Duration::from_secs(30), |u| {
        u.healthy() == 2
    });
    for i in up.in_service() {
        let ip = i["private_ip"].as_str().unwrap();
        assert!(ip.starts_with("127."), "{ip} is a loopback address");
    }
    assert!(links_in(&net).is_empty(), "no veth on the host's network");
    let (code, _) = http(&up.lb(), "GET", "/", None);
    assert_eq!(code, 200);
}
