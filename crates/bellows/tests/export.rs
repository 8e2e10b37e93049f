//! `bellows export`: what it writes for every example stack is accepted by the real
//! validators, Kubernetes' schemas (kubernetes-validate --strict for the core kinds, the
//! CRDs' schemas through tests/kubernetes/validate.mjs for Gateway API, KEDA and
//! Knative) and Terraform with the hashicorp/aws provider (`terraform validate`).
//! A missing tool fails the test: scripts/test installs them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{BIN, scratch};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every example stack of the repository.
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
            .args(["export", "kubernetes", "--image", "registry.example/bellows:1", "-o"])
            .arg(&out)
            .arg(&stack));
        assert!(o.status.success(), "{}: {}", stack.display(), text(&o));
        // Twice the same: the output can be committed and diffed.
        let again = run(Command::new(BIN)
            .args(["export", "kubernetes", "--image", "registry.example/bellows:1"])
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
    }
    let o = run(Command::new("kubernetes-validate").arg("--strict").args(&all));
    let report = text(&o);
    assert!(o.status.success(), "kubernetes-validate --strict:\n{report}");
    for kind in ["deployment", "service", "poddisruptionbudget", "horizontalpodautoscaler"] {
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
    for kind in ["Gateway", "HTTPRoute", "ScaledObject", "serving.knative.dev/v1 Service"] {
        assert!(report.contains(&format!("{kind} ")), "no {kind} was validated:\n{report}");
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
    assert!(t.contains("ip-tracker.toml:23:1: warning: listener `http` default action: a fixed response (404)"), "{t}");
    assert!(t.contains("with --strict: nothing written"), "{t}");
    assert!(!out.exists());
    // A stack whose every setting carries over exports under --strict.
    let o = run(Command::new(BIN)
        .args(["export", "kubernetes", "--strict", "--image", "x:1"])
        .arg(repo().join("examples/sim/hpa.toml")));
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("kind: \"HorizontalPodAutoscaler\""));
}
