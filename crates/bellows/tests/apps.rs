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
    let pid = up
        .instances()
        .iter()
        .find(|i| i["id"] == writer.as_str())
        .unwrap()["pid"]
        .as_u64()
        .unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
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
