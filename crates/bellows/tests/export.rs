//! `bellows export`: what it writes for every example stack is accepted by the real
//! validators, Kubernetes' schemas (kubernetes-validate --strict for the core kinds, the
//! CRDs' schemas through tests/kubernetes/validate.mjs for Gateway API, KEDA and
//! Knative) and Terraform with the hashicorp/aws provider (`terraform validate`).
//! A missing tool fails the test: scripts/test installs them.

// The shared helpers (tests/common) measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::terraform::need_terraform;
use common::{BIN, free_port, scratch};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every example stack of the repository, and tests/export/everything.toml.
fn examples() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["examples", "examples/sim"] {
        for e in std::fs::read_dir(repo().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(out.len() >= 8, "examples: {out:?}");
    // And one stack with every setting the exporters map or warn about.
    out.push(repo().join("crates/bellows/tests/export/everything.toml"));
    out
}

fn run(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e} (scripts/test installs it)"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn kubernetes_export_of_every_example_passes_the_schemas() {
    let (dir, _) = scratch();
    let node_modules = repo().join("tests/kubernetes/node_modules/@kubernetes-models");
    assert!(
        node_modules.is_dir(),
        "{} is missing: run `npm ci` in tests/kubernetes (scripts/test does)",
        node_modules.display()
    );
    let mut all = Vec::new();
    for stack in examples() {
        let out = dir.join(stack.file_stem().unwrap());
        let o = run(Command::new(BIN)
            .args([
                "export",
                "kubernetes",
                "--image",
                "registry.example/bellows:1",
                "-o",
            ])
            .arg(&out)
            .arg(&stack));
        assert!(o.status.success(), "{}: {}", stack.display(), text(&o));
        // Twice the same: the output can be committed and diffed.
        let again = run(Command::new(BIN)
            .args([
                "export",
                "kubernetes",
                "--image",
                "registry.example/bellows:1",
            ])
            .arg(&stack));
        let joined: Vec<String> = files_in(&out)
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        let docs = |s: &str| {
            let mut d: Vec<String> = s.split("---\n").map(str::to_owned).collect();
            d.sort();
            d
        };
        assert_eq!(
            docs(&joined.join("---\n")),
            docs(&String::from_utf8_lossy(&again.stdout)),
            "{}: stdout and the files differ",
            stack.display()
        );
        all.extend(files_in(&out));
        // The EKS flavour: an Ingress for the AWS Load Balancer Controller.
        let eks = dir.join(format!(
            "{}-eks",
            stack.file_stem().unwrap().to_string_lossy()
        ));
        let o = run(Command::new(BIN)
            .args([
                "export",
                "kubernetes",
                "--ingress",
                "eks",
                "--image",
                "registry.example/bellows:1",
                "-o",
            ])
            .arg(&eks)
            .arg(&stack));
        assert!(
            o.status.success(),
            "{} --ingress eks: {}",
            stack.display(),
            text(&o)
        );
        all.extend(files_in(&eks));
    }
    let o = run(Command::new("kubernetes-validate")
        .arg("--strict")
        .args(&all));
    let report = text(&o);
    assert!(
        o.status.success(),
        "kubernetes-validate --strict:\n{report}"
    );
    for kind in [
        "deployment",
        "service",
        "poddisruptionbudget",
        "horizontalpodautoscaler",
    ] {
        assert!(
            report.contains(&format!("passed for resource {kind}/")),
            "no {kind} was validated:\n{report}"
        );
    }
    assert!(!report.contains("ERROR"), "{report}");
    let o = run(Command::new("node")
        .arg(repo().join("tests/kubernetes/validate.mjs"))
        .args(&all));
    let report = text(&o);
    assert!(o.status.success(), "CRD schemas:\n{report}");
    for kind in [
        "Gateway",
        "HTTPRoute",
        "ScaledObject",
        "serving.knative.dev/v1 Service",
    ] {
        assert!(
            report.contains(&format!("{kind} ")),
            "no {kind} was validated:\n{report}"
        );
    }
}

#[test]
fn strict_export_fails_on_a_warning_and_names_its_place() {
    let (dir, _) = scratch();
    let stack = repo().join("examples/ip-tracker.toml");
    let out = dir.join("k8s");
    let o = run(Command::new(BIN)
        .args(["export", "kubernetes", "--strict", "--image", "x:1", "-o"])
        .arg(&out)
        .arg(&stack));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains(
            "ip-tracker.toml:26:1: warning: listener `http` default action: a fixed response (404)"
        ),
        "{t}"
    );
    assert!(t.contains("with --strict: nothing written"), "{t}");
    assert!(!out.exists());
    // A stack whose every setting carries over exports under --strict (the simulator's
    // example, but for its default_instance_warmup: the controller's flag in Kubernetes).
    let clean = dir.join("hpa.toml");
    let src = std::fs::read_to_string(repo().join("examples/sim/hpa.toml")).unwrap();
    let src = src.replace("default_instance_warmup = \"60s\"\n", "");
    std::fs::write(&clean, src).unwrap();
    let o = run(Command::new(BIN)
        .args(["export", "kubernetes", "--strict", "--image", "x:1"])
        .arg(&clean));
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("kind: \"HorizontalPodAutoscaler\""));
}

fn terraform(dir: &Path, args: &[&str], config: &Path) -> Output {
    run(Command::new("terraform")
        .args(args)
        .current_dir(dir)
        .env("TF_CLI_CONFIG_FILE", config)
        .env("TF_IN_AUTOMATION", "1")
        .env("CHECKPOINT_DISABLE", "1"))
}

#[test]
fn terraform_export_of_every_example_validates_offline_and_is_formatted() {
    let (dir, _) = scratch();
    need_terraform();
    let mirror = common::terraform::mirror();
    // A configuration of our own: nothing but the mirror, so nothing is downloaded.
    let config = dir.join("terraformrc");
    std::fs::write(
        &config,
        format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"registry.terraform.io/hashicorp/aws\"]\n  }}\n  direct {{\n    exclude = [\"registry.terraform.io/*/*\"]\n  }}\n}}\n",
            mirror.display()
        ),
    )
    .unwrap();
    for stack in examples() {
        let out = dir.join(stack.file_stem().unwrap());
        let o = run(Command::new(BIN)
            .args(["export", "terraform", "-o"])
            .arg(&out)
            .arg(&stack));
        assert!(o.status.success(), "{}: {}", stack.display(), text(&o));
        let main = std::fs::read_to_string(out.join("main.tf")).unwrap();
        assert!(
            main.contains("resource \"aws_autoscaling_group\""),
            "{main}"
        );
        let o = terraform(
            &out,
            &["init", "-backend=false", "-input=false", "-no-color"],
            &config,
        );
        assert!(
            o.status.success(),
            "{}: terraform init:\n{}",
            stack.display(),
            text(&o)
        );
        let o = terraform(&out, &["validate", "-no-color"], &config);
        assert!(
            o.status.success() && text(&o).contains("The configuration is valid"),
            "{}: terraform validate:\n{}\n{main}",
            stack.display(),
            text(&o)
        );
        let o = terraform(&out, &["fmt", "-check", "-diff", "-no-color"], &config);
        assert!(
            o.status.success(),
            "{}: terraform fmt -check:\n{}",
            stack.display(),
            text(&o)
        );
    }
}

#[test]
fn strict_terraform_export_fails_on_a_clamped_value() {
    let (dir, _) = scratch();
    let src = std::fs::read_to_string(repo().join("examples/mp2-load-balancing.toml")).unwrap();
    let stack = dir.join("fast.toml");
    let fast = src
        .replace("interval = \"5s\"", "interval = \"1s\"")
        .replace("timeout = \"2s\"", "timeout = \"500ms\"");
    std::fs::write(&stack, fast).unwrap();
    let line = src
        .lines()
        .position(|l| l.starts_with("interval = "))
        .unwrap()
        + 1;
    let o = run(Command::new(BIN)
        .args(["export", "terraform", "--strict"])
        .arg(&stack));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "fast.toml:{line}:1: warning: target group `seed`: health check interval 1s becomes 5s"
        )),
        "{t}"
    );
    let o = run(Command::new(BIN)
        .args(["export", "terraform", "--strict"])
        .arg(repo().join("examples/mp2-load-balancing.toml")));
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("resource \"aws_lb\" \"main\""));
}

#[test]
fn import_terraform_of_every_exported_example_gives_a_valid_stack() {
    let (dir, _) = scratch();
    for stack in examples() {
        let stem = stack.file_stem().unwrap().to_string_lossy().into_owned();
        let tf = dir.join(&stem);
        let o = run(Command::new(BIN)
            .args(["export", "terraform", "-o"])
            .arg(&tf)
            .arg(&stack));
        assert!(o.status.success(), "{}", text(&o));
        let back = dir.join(format!("{stem}.toml"));
        let o = run(Command::new(BIN)
            .args(["import", "terraform"])
            .arg(&tf)
            .arg("-o")
            .arg(&back));
        let t = text(&o);
        assert!(o.status.success(), "{}: {t}", stack.display());
        // Left out, each with its place: the network (security groups, subnets).
        assert!(
            t.contains("main.tf:")
                && t.contains(": warning: resource aws_security_group.instances"),
            "{t}"
        );
        let o = run(Command::new(BIN).arg("validate").arg(&back));
        assert!(o.status.success(), "{}: {}", back.display(), text(&o));
        let groups = std::fs::read_to_string(&back)
            .unwrap()
            .matches("\n[groups.")
            .count();
        assert!(groups >= 1, "{}", back.display());
    }
    // Not HCL: an error with its place, exit 2.
    let bad = dir.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("main.tf"),
        "resource \"aws_lb\" \"x\" {\n  name = \n",
    )
    .unwrap();
    let o = run(Command::new(BIN).args(["import", "terraform"]).arg(&bad));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("main.tf:"), "{}", text(&o));
}

#[test]
fn a_stack_imported_from_exported_terraform_runs_and_serves() {
    use std::io::{Read, Write};
    let (dir, network) = scratch();
    let port = free_port();
    let src = std::fs::read_to_string(repo().join("examples/mp2-load-balancing.toml")).unwrap();
    let original = dir.join("original.toml");
    std::fs::write(
        &original,
        src.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}")),
    )
    .unwrap();
    let tf = dir.join("tf");
    let o = run(Command::new(BIN)
        .args(["export", "terraform", "-o"])
        .arg(&tf)
        .arg(&original));
    assert!(o.status.success(), "{}", text(&o));
    let o = run(Command::new(BIN).args(["import", "terraform"]).arg(&tf));
    assert!(o.status.success(), "{}", text(&o));
    // What only bellows has (its control address, its loopback network) is not in
    // Terraform: this machine's are added.
    let imported = String::from_utf8(o.stdout).unwrap().replace(
        "[stack]\n",
        &format!("[stack]\ninstance_network = \"{network}\"\n"),
    );
    let stack = dir.join("imported.toml");
    std::fs::write(&stack, imported).unwrap();
    let up = common::Up::start_file(&stack, &dir);
    up.wait_for(
        "both instances in service",
        std::time::Duration::from_secs(30),
        |u| u.in_service().len() == 2,
    );
    // Through the load balancer, once the targets pass their health checks.
    let get = || {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer
    };
    let start = std::time::Instant::now();
    let mut answer = get();
    while !answer.starts_with("HTTP/1.1 200")
        && start.elapsed() < std::time::Duration::from_secs(30)
    {
        std::thread::sleep(std::time::Duration::from_millis(250));
        answer = get();
    }
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}\n{}", up.log());
}
