//! End to end: the seed and stress apps as instances of a real group.

// End-to-end tests measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::*;

#[test]
fn seed_value_is_the_same_whichever_instance_answers() {
    let up = Up::start(
        "seed",
        "[groups.seed]\nmin = 2\nmax = 2\n[groups.seed.launch]\ncommand = [\"bellows\", \"app\", \"seed\"]\n",
    );
    up.wait_for("2 instances", Duration::from_secs(15), |u| {
        u.in_service().len() == 2
    });
    let list = up.in_service();
    let (a, b) = (address(&list[0]), address(&list[1]));
    assert_ne!(a, b);
    assert_eq!(http(&a, "GET", "/", None), (200, "0".into()));
    assert_eq!(
        http(&a, "POST", "/", Some(r#"{"num": 100}"#)),
        (200, "100".into())
    );
    assert_eq!(http(&b, "GET", "/", None), (200, "100".into()));
    assert_eq!(
        http(&b, "POST", "/", Some(r#"{"num": -7}"#)),
        (200, "-7".into())
    );
    assert_eq!(http(&a, "GET", "/", None), (200, "-7".into()));

    let (code, body) = http(&a, "POST", "/", Some("{not json"));
    assert_eq!(code, 400);
    assert!(body.contains("must be JSON"), "{body}");
    let (code, body) = http(&a, "POST", "/", Some(r#"{"num": 1.5}"#));
    assert_eq!(
        (code, body.trim()),
        (400, "\"num\" must be an integer, found 1.5")
    );
    let (code, body) = http(&a, "POST", "/", Some(r#"{"seed": 1}"#));
    assert_eq!(code, 400);
    assert!(body.contains("field \"num\""));
    assert_eq!(http(&b, "GET", "/", None), (200, "-7".into()));
}

#[test]
fn stress_burns_an_instances_cpu_and_answers_its_ip() {
    let up = Up::start(
        "stress",
        "[groups.stress]\nmin = 0\nmax = 3\ndesired = 1\n[groups.stress.launch]\ncommand = [\"bellows\", \"app\", \"stress\"]\ninstance_type = { vcpu = 0.5, memory = \"256MiB\" }\n",
    );
    up.wait_for("1 instance", Duration::from_secs(15), |u| {
        u.in_service().len() == 1
    });
    let inst = up.in_service()[0].clone();
    let addr = address(&inst);
    assert_eq!(
        http(&addr, "GET", "/", None),
        (200, inst["private_ip"].as_str().unwrap().to_owned())
    );
    assert_eq!(http(&addr, "GET", "/health", None).0, 200);
    assert_eq!(http(&addr, "POST", "/", Some(r#"{"seconds": 0}"#)).0, 400);
    assert_eq!(
        http(&addr, "POST", "/", Some(r#"{"workers": "many"}"#)).0,
        400
    );
    let (code, body) = http(&addr, "POST", "/", Some(r#"{"seconds": 8, "workers": 1}"#));
    assert_eq!(code, 202, "{body}");
    // One busy worker on half a vCPU: the instance is at its limit (or, without
    // cgroups, well past it), measured from /proc over the whole process tree.
    up.wait_for("CPU above 50%", Duration::from_secs(6), |u| {
        u.in_service()[0]["cpu_percent"].as_f64().unwrap_or(0.0) > 50.0
    });
    up.wait_for("CPU back down", Duration::from_secs(15), |u| {
        u.in_service()[0]["cpu_percent"].as_f64().unwrap_or(100.0) < 10.0
    });
}

#[test]
fn candidates_pass_the_seeds_checks_and_a_write_survives_kill_9() {
    let (dir, _) = scratch();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/flask-asg.toml");
    let stack = std::fs::read_to_string(example)
        .unwrap()
        .replace(":8080\"", ":0\"");
    let file = write_file(&dir, "flask-asg.toml", &stack);
    let up = Up::start_file(&file, &dir);
    up.wait_for("2 healthy targets", Duration::from_secs(20), |u| {
        u.healthy() == 2
    });
    let lb = up.lb();
    // Empty store: 404 "Not Found", as the seed's API answers.
    assert_eq!(
        http(&lb, "GET", "/candidates", None),
        (404, "Not Found".into())
    );
    assert_eq!(
        http(&lb, "GET", "/candidate/nobody", None),
        (404, "Not Found".into())
    );
    assert_eq!(http(&lb, "GET", "/gtg", None), (200, String::new()));
    let out = up.cli(&["check", file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["good to go", "insert", "verification", "candidate list"] {
        assert!(text.contains(&format!("✓ {name} passed")), "{text}");
    }
    // A write acknowledged by one instance survives kill -9 of that instance.
    let (status, headers, body) = request(&lb, "POST", "/candidate/durable", &[], "");
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"CandidateName":"durable"}"#)
    );
    let writer = header(&headers, "x-bellows-instance").unwrap().to_owned();
    up.kill_instance(&writer);
    for _ in 0..4 {
        let (status, _, body) = request(&lb, "GET", "/candidate/durable", &[], "");
        assert_eq!(
            (status, body.as_str()),
            (200, r#"{"CandidateName":"durable"}"#)
        );
    }
    let (_, _, list) = request(&lb, "GET", "/candidates", &[], "");
    assert!(
        list.contains("durable") && list.contains("bellows"),
        "{list}"
    );
    // And kill -9 of bellows itself: a new instance on the same data finds it.
    let mut up = up;
    up.signal("KILL");
    up.wait_exit(Duration::from_secs(5));
    let data = up.state.join("data");
    let (mut app, addr) = spawn_app("candidates", &[("BELLOWS_DATA_DIR", data.as_os_str())]);
    let found = http(&addr, "GET", "/candidate/durable", None);
    let _ = app.kill();
    let _ = app.wait();
    assert_eq!(found, (200, r#"{"CandidateName":"durable"}"#.to_owned()));
}

#[test]
fn each_instance_reads_its_own_metadata_v1_and_v2() {
    let up = Up::start(
        "imds",
        "[groups.web]\nmin = 2\nmax = 2\nzones = [\"east\", \"west\"]\n[groups.web.launch]\ncommand = [\"bellows\", \"app\", \"echo\"]\ninstance_type = \"t3.small\"\n",
    );
    up.wait_for("2 instances", Duration::from_secs(15), |u| {
        u.in_service().len() == 2
    });
    for inst in up.in_service() {
        let ip = inst["private_ip"].as_str().unwrap();
        let imds = format!("{ip}:1338");
        // The instance's environment points its AWS SDK at its own endpoint.
        let pid = inst["pid"].as_u64().unwrap();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let environ = String::from_utf8_lossy(&environ);
        assert!(
            environ.contains(&format!("AWS_EC2_METADATA_SERVICE_ENDPOINT=http://{imds}/")),
            "{environ}"
        );
        // IMDSv1.
        assert_eq!(
            http(&imds, "GET", "/latest/meta-data/instance-id", None),
            (200, inst["id"].as_str().unwrap().to_owned())
        );
        assert_eq!(
            http(&imds, "GET", "/latest/meta-data/local-ipv4", None),
            (200, ip.to_owned())
        );
        assert_eq!(
            http(
                &imds,
                "GET",
                "/latest/meta-data/placement/availability-zone",
                None
            ),
            (200, inst["zone"].as_str().unwrap().to_owned())
        );
        assert_eq!(
            http(&imds, "GET", "/latest/meta-data/instance-type", None),
            (200, "t3.small".to_owned())
        );
        assert_eq!(http(&imds, "GET", "/latest/meta-data/nope", None).0, 404);
        // IMDSv2: a session token, then requests with it; a wrong one is refused.
        let (status, headers, token) = request(
            &imds,
            "PUT",
            "/latest/api/token",
            &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
            "",
        );
        assert_eq!(status, 200);
        assert_eq!(
            header(&headers, "x-aws-ec2-metadata-token-ttl-seconds"),
            Some("60")
        );
        let (status, _, id) = request(
            &imds,
            "GET",
            "/latest/meta-data/instance-id",
            &[("X-aws-ec2-metadata-token", &token)],
            "",
        );
        assert_eq!((status, id.as_str()), (200, inst["id"].as_str().unwrap()));
        let (status, _, _) = request(
            &imds,
            "GET",
            "/latest/meta-data/instance-id",
            &[("X-aws-ec2-metadata-token", "forged")],
            "",
        );
        assert_eq!(status, 401);
        assert_eq!(request(&imds, "PUT", "/latest/api/token", &[], "").0, 400);
        let (status, _, _) = request(
            &imds,
            "PUT",
            "/latest/api/token",
            &[
                ("X-aws-ec2-metadata-token-ttl-seconds", "60"),
                ("X-Forwarded-For", "1.2.3.4"),
            ],
            "",
        );
        assert_eq!(status, 403);
    }
}

/// Opens the tracker page on `addr` as a new user and returns its session cookie.
fn tracker_user(addr: &str, ua: &str) -> String {
    let (status, headers, body) = request(
        addr,
        "GET",
        "/app-x7k9m2n8/",
        &[("User-Agent", ua), ("X-Forwarded-For", "203.0.113.7")],
        "",
    );
    assert_eq!(status, 200, "{body:.300}");
    assert!(
        body.contains("\"ip\":\"203.0.113.7\""),
        "the visitor's IP from X-Forwarded-For"
    );
    header(&headers, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn tracker_socket(
    addr: &str,
    cookie: &str,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}/app-x7k9m2n8/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

fn tracker_stack(max_users: u32) -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/ip-tracker.toml"
    ))
    .unwrap()
    .replace(":8080\"", ":0\"")
    .replace(
        "MAX_USERS_PER_INSTANCE = \"25\"",
        &format!("MAX_USERS_PER_INSTANCE = \"{max_users}\""),
    )
}

/// A real redis-server on an ephemeral port, stopped when dropped.
struct Redis {
    child: std::process::Child,
    url: String,
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/test installs it)");
        let addr = format!("127.0.0.1:{port}");
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(&addr).is_err()
            && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        Redis {
            child,
            url: format!("redis://{addr}/"),
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tracker stack with its sessions in Redis.
fn with_redis(stack: &str, redis: &Redis) -> String {
    stack.replace(
        "env = { BASE_PATH",
        &format!("env = {{ REDIS_URL = \"{}\", BASE_PATH", redis.url),
    )
}

#[test]
fn tracker_users_on_two_instances_see_each_other_live() {
    users_see_each_other(&tracker_stack(25));
}

#[test]
fn tracker_users_on_two_instances_see_each_other_live_through_redis() {
    let redis = Redis::start();
    users_see_each_other(&with_redis(&tracker_stack(25), &redis));
    // The sessions really went through Redis.
    let out = std::process::Command::new("redis-cli")
        .args(["-u", &redis.url, "ZCARD", "tracker:sessions"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2");
}

fn users_see_each_other(stack: &str) {
    use futures_util::StreamExt;
    let (dir, _) = scratch();
    let file = write_file(&dir, "ip-tracker.toml", stack);
    let up = Up::start_file(&file, &dir);
    up.wait_for("2 healthy", Duration::from_secs(20), |u| u.healthy() == 2);
    let list = up.in_service();
    let (a, b) = (address(&list[0]), address(&list[1]));
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
    let alice = tracker_user(&a, firefox);
    let bob = tracker_user(&b, chrome);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut ws_a = tracker_socket(&a, &alice).await.unwrap();
        let _ws_b = tracker_socket(&b, &bob).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let msg = tokio::time::timeout_at(deadline, ws_a.next())
                .await
                .expect("both users within 2 s")
                .unwrap()
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
            let users = v["users"].as_array().unwrap();
            let instances: std::collections::HashSet<&str> = users
                .iter()
                .map(|u| u["instance"].as_str().unwrap())
                .collect();
            if users.len() == 2 && instances.len() == 2 {
                let browsers: Vec<&str> = users
                    .iter()
                    .map(|u| u["browser"].as_str().unwrap())
                    .collect();
                assert!(
                    browsers.iter().any(|b| b.starts_with("Firefox"))
                        && browsers.iter().any(|b| b.starts_with("Chrome")),
                    "{browsers:?}"
                );
                break;
            }
        }
    });
    // The page offers a QR code of itself.
    let (status, headers, svg) = request(&a, "GET", "/app-x7k9m2n8/qr.svg", &[], "");
    assert_eq!(
        (status, header(&headers, "content-type")),
        (200, Some("image/svg+xml"))
    );
    assert!(svg.contains("<svg"));
}

#[test]
fn the_user_past_an_instances_limit_gets_the_scaling_out_page() {
    past_the_limit(&tracker_stack(25));
}

#[test]
fn the_user_past_an_instances_limit_gets_the_scaling_out_page_with_redis() {
    let redis = Redis::start();
    past_the_limit(&with_redis(&tracker_stack(25), &redis));
}

fn past_the_limit(stack: &str) {
    let (dir, _) = scratch();
    let file = write_file(
        &dir,
        "ip-tracker.toml",
        &stack.replace("desired = 2", "desired = 1"),
    );
    let up = Up::start_file(&file, &dir);
    up.wait_for("1 healthy", Duration::from_secs(20), |u| u.healthy() == 1);
    let addr = address(&up.in_service()[0]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut sockets = Vec::new();
    for i in 0..25 {
        let cookie = tracker_user(&addr, &format!("user-{i}"));
        sockets.push(rt.block_on(tracker_socket(&addr, &cookie)).unwrap());
    }
    let (status, headers, body) = request(&addr, "GET", "/app-x7k9m2n8/", &[], "");
    assert_eq!(status, 503, "the 26th user");
    assert_eq!(header(&headers, "retry-after"), Some("5"));
    assert!(
        body.contains("scaling out") && body.contains("location.reload"),
        "{body}"
    );
    // The app tells bellows, for alarms to use.
    up.wait_for("RejectedConnections", Duration::from_secs(10), |u| {
        let q = u.json(&[
            "metrics",
            "--namespace",
            "IPTracker",
            "--name",
            "RejectedConnections",
            "--dimension",
            "AutoScalingGroupName=ip-tracker-asg",
            "--stat",
            "Sum",
            "--since",
            "1m",
        ]);
        q["series"][0]["points"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p[1].as_f64() >= Some(1.0)))
    });
    drop(sockets);
}

#[test]
fn candidates_keep_their_documents_in_redis_when_told_to() {
    let redis = Redis::start();
    let run = || {
        spawn_app(
            "candidates",
            &[("REDIS_URL", std::ffi::OsStr::new(&redis.url))],
        )
    };
    let (mut first, a) = run();
    assert_eq!(
        http(&a, "GET", "/candidates", None),
        (404, "Not Found".into())
    );
    assert_eq!(
        http(&a, "POST", "/candidate/ada", None),
        (200, r#"{"CandidateName":"ada"}"#.into())
    );
    let _ = first.kill();
    let _ = first.wait();
    // Another process on the same Redis finds it.
    let (mut second, b) = run();
    let got = (
        http(&b, "GET", "/candidate/ada", None),
        http(&b, "GET", "/candidates", None),
    );
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(got.0, (200, r#"{"CandidateName":"ada"}"#.into()));
    assert_eq!(got.1, (200, r#"[{"CandidateName":"ada"}]"#.into()));
    let out = std::process::Command::new("redis-cli")
        .args(["-u", &redis.url, "HLEN", "candidates"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
}
