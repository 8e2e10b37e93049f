use super::*;

fn opts() -> Options {
    Options {
        image: "registry.example/bellows:1".to_owned(),
        gateway_class: "example".to_owned(),
        eks: false,
    }
}

fn run(src: &str) -> (Export, String) {
    let stack = bellows_core::stack::parse(src).expect("a valid stack");
    let e = export(&stack, src, &opts());
    let all = e
        .files
        .iter()
        .map(|(_, d)| d.as_str())
        .collect::<Vec<_>>()
        .join("---\n");
    (e, all)
}

fn warnings(e: &Export) -> Vec<String> {
    e.warnings.iter().map(|w| w.render("s.toml")).collect()
}

const HPA_FILE: &str = include_str!("../../../../examples/sim/hpa.toml");

/// The simulator's HPA example (its target group and launch both on port 8000).
fn hpa() -> String {
    HPA_FILE.to_owned()
}
const KPA: &str = include_str!("../../../../examples/sim/kpa.toml");
const PREDICTIVE: &str = include_str!("../../../../examples/sim/predictive.toml");
const TRACKER: &str = include_str!("../../../../examples/ip-tracker.toml");
const FLASK: &str = include_str!("../../../../examples/flask-asg.toml");

#[test]
fn an_hpa_policy_becomes_an_hpa_and_the_deployment_leaves_replicas_to_it() {
    let (e, all) = run(&hpa());
    assert!(all.contains("kind: \"HorizontalPodAutoscaler\""), "{all}");
    assert!(all.contains("averageUtilization: 50"), "{all}");
    assert!(!all.contains("replicas:"), "{all}");
    assert!(all.contains("stabilizationWindowSeconds: 300"), "{all}");
    assert_eq!(e.files[0].0, "group-web.yaml");
    // Requests and limits from t2.micro (1 vCPU, 1 GiB).
    assert!(
        all.contains("cpu: \"1\"") && all.contains("memory: \"1024Mi\""),
        "{all}"
    );
    // The one setting that does not carry over: the group's warmup.
    let w = warnings(&e);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("default_instance_warmup does not carry over"),
        "{w:?}"
    );
}

#[test]
fn without_an_autoscaler_the_deployment_keeps_its_replicas() {
    let (_, all) = run(include_str!("../../../../examples/mp2-load-balancing.toml"));
    assert!(all.contains("replicas: 2"), "{all}");
    assert!(!all.contains("HorizontalPodAutoscaler"), "{all}");
    // Health check interval 5 s, thresholds 2 and 2; EC2 health: no liveness probe.
    assert!(all.contains("readinessProbe:\n"), "{all}");
    assert!(!all.contains("livenessProbe"), "{all}");
    assert!(
        all.contains("topologyKey: \"topology.kubernetes.io/zone\""),
        "{all}"
    );
    assert!(all.contains("maxUnavailable: 1"), "{all}");
}

#[test]
fn kpa_becomes_a_knative_service_and_routes_go_to_it() {
    let (e, all) = run(KPA);
    assert!(
        all.contains("apiVersion: \"serving.knative.dev/v1\""),
        "{all}"
    );
    assert!(
        all.contains("autoscaling.knative.dev/target: \"70\""),
        "{all}"
    );
    assert!(!all.contains("kind: \"Deployment\""), "{all}");
    assert!(e.files.iter().all(|(n, _)| !n.starts_with("target-group-")));
    assert!(all.contains("- name: \"web\"\n      port: 80\n"), "{all}");
}

#[test]
fn unsupported_settings_are_warned_at_their_place_in_the_file() {
    let (e, _) = run(PREDICTIVE);
    let w = warnings(&e);
    let line = PREDICTIVE
        .lines()
        .position(|l| l.starts_with("type = \"predictive\""))
        .unwrap()
        + 1;
    assert!(
        w.iter().any(|x| x.starts_with(&format!(
            "s.toml:{line}:1: warning: policy `predictive`: the predictive policy"
        ))),
        "{w:?}"
    );

    let (e, all) = run(TRACKER);
    let w = warnings(&e).join("\n");
    for needle in [
        "fixed response (404) has no Gateway API equivalent",
        "cookie stickiness becomes the Service's ClientIP affinity",
        "algorithm LeastOutstandingRequests does not carry over",
        "simple scaling does not carry over",
        "simple scaling in on another alarm does not carry over",
        "becomes a KEDA Prometheus trigger at 0.25 per second (15 per 60s)",
    ] {
        assert!(w.contains(needle), "{needle} in\n{w}");
    }
    // Every warning points into the file.
    assert!(e.warnings.iter().all(|x| x.line > 1), "{w}");
    // ALB's per-minute count is a per-second threshold for KEDA.
    assert!(
        all.contains("kind: \"ScaledObject\"") && all.contains("threshold: \"0.25\""),
        "{all}"
    );
    assert!(
        all.contains("type: \"PathPrefix\"\n        value: \"/app-x7k9m2n8\""),
        "{all}"
    );
    assert!(all.contains("preStop:\n"), "{all}");
    assert!(all.contains("terminationGracePeriodSeconds: 40"), "{all}");
}

#[test]
fn cpu_alarms_of_simple_policies_become_an_hpa_with_a_liveness_probe_for_elb_health() {
    let (e, all) = run(FLASK);
    assert!(all.contains("kind: \"HorizontalPodAutoscaler\""), "{all}");
    assert!(all.contains("averageUtilization: 60"), "{all}");
    assert!(all.contains("livenessProbe:"), "{all}");
    assert!(all.contains("startupProbe:"), "{all}");
    assert!(warnings(&e).iter().any(|w| w.contains("policy `scale-in`")));
}

#[test]
fn names_are_made_valid_and_reported() {
    let src = hpa()
        .replace("[groups.web]", "[groups.Web_1]")
        .replace("[groups.web.launch]", "[groups.Web_1.launch]")
        .replace("group = \"web\"", "group = \"Web_1\"");
    // Upper case is refused by the stack file itself; underscores are not.
    assert!(bellows_core::stack::parse(&src).is_err());
    let src = src.replace("Web_1", "web_1");
    let (e, all) = run(&src);
    assert_eq!(e.notes, ["group `web_1` is named `web-1`"]);
    assert!(all.contains("name: \"web-1\""));
}

#[test]
fn rules_become_matches_with_weights_and_host_routes() {
    let src = format!(
        "{}\n{}",
        hpa().replace(
            "[listeners.http]\naddress = \"127.0.0.1:8080\"\ndefault = {{ forward = \"web\" }}",
            ""
        ),
        r#"
[target_groups.canary]
port = 8001

[[listeners.http.rules]]
priority = 5
path = ["/api/*", "/v?"]
method = ["GET", "POST"]
header = { x-env = ["beta"] }
forward = [{ target_group = "web", weight = 9 }, { target_group = "canary", weight = 1 }]

[[listeners.http.rules]]
priority = 7
host = "admin.example.com"
source_ip = "10.0.0.0/8"
redirect = { status = 301, protocol = "https", port = "443" }
"#
    );
    let (e, all) = run(&src);
    assert!(
        all.contains("weight: 9") && all.contains("weight: 1"),
        "{all}"
    );
    assert!(
        all.contains("type: \"RegularExpression\"\n        value: \"^/v.$\""),
        "{all}"
    );
    assert!(
        all.contains("hostnames:\n  - \"admin.example.com\""),
        "{all}"
    );
    assert!(all.contains("statusCode: 301"), "{all}");
    assert_eq!(all.matches("method: \"GET\"").count(), 2, "{all}");
    let w = warnings(&e).join("\n");
    assert!(
        w.contains("source_ip condition has no Gateway API match"),
        "{w}"
    );
    assert!(w.contains("rule priorities do not carry over"), "{w}");
}

#[test]
fn output_is_deterministic() {
    for src in [&hpa() as &str, KPA, PREDICTIVE, TRACKER, FLASK] {
        assert_eq!(run(src).1, run(src).1);
    }
}

#[test]
fn the_eks_ingress_keeps_albs_behaviour() {
    let stack = bellows_core::stack::parse(TRACKER).unwrap();
    let e = export(
        &stack,
        TRACKER,
        &Options {
            eks: true,
            ..opts()
        },
    );
    let all = e
        .files
        .iter()
        .map(|(_, d)| d.as_str())
        .collect::<Vec<_>>()
        .join("---\n");
    let w = warnings(&e).join("\n");
    for needle in [
        "kind: \"Ingress\"",
        "alb.ingress.kubernetes.io/target-group-attributes: \"deregistration_delay.timeout_seconds=30,load_balancing.algorithm.type=least_outstanding_requests,stickiness.enabled=true,stickiness.type=lb_cookie,stickiness.lb_cookie.duration_seconds=86400\"",
        "alb.ingress.kubernetes.io/healthcheck-path: \"/app-x7k9m2n8/health\"",
        "path: \"/app-x7k9m2n8/*\"",
        "alb.ingress.kubernetes.io/actions.default-action: \"{\\\"fixedResponseConfig\\\"",
        "name: \"use-annotation\"",
    ] {
        assert!(all.contains(needle), "{needle} in\n{all}");
    }
    assert!(!all.contains("Gateway"), "{all}");
    // What the controller carries is no longer warned about.
    for gone in ["fixed response", "stickiness", "algorithm"] {
        assert!(!w.contains(gone), "{gone} in\n{w}");
    }
}

#[test]
fn hpa_windows_and_tolerance_carry_over_and_cluster_wide_settings_are_warned() {
    let src = hpa().replace(
        "target = 50",
        "target = 50\ntolerance = 0.05\nsync_period = \"30s\"\nscale_down_window = \"2m\"",
    );
    let (e, all) = run(&src);
    assert!(all.contains("tolerance: \"0.05\""), "{all}");
    assert!(all.contains("stabilizationWindowSeconds: 120"), "{all}");
    let w = warnings(&e).join("\n");
    let line = |k: &str| src.lines().position(|l| l.starts_with(k)).unwrap() + 1;
    assert!(
        w.contains(&format!(
            "s.toml:{}:1: warning: policy `hpa`: sync_period 30s",
            line("sync_period")
        )),
        "{w}"
    );
    assert!(
        w.contains(&format!(
            "s.toml:{}:1: warning: policy `hpa`: a tolerance",
            line("tolerance")
        )),
        "{w}"
    );
}

#[test]
fn scheduled_actions_become_a_keda_cron_window() {
    let src = format!(
        "{}{}",
        hpa(),
        r#"
[[groups.web.scheduled]]
name = "morning"
cron = "0 8 * * 1-5"
time_zone = "Europe/Paris"
min = 4
max = 30

[[groups.web.scheduled]]
name = "evening"
cron = "0 20 * * 1-5"
time_zone = "Europe/Paris"
min = 1
"#
    );
    let (e, all) = run(&src);
    assert!(all.contains("kind: \"ScaledObject\""), "{all}");
    assert!(all.contains("start: \"0 8 * * 1-5\""), "{all}");
    assert!(all.contains("end: \"0 20 * * 1-5\""), "{all}");
    assert!(all.contains("desiredReplicas: \"4\""), "{all}");
    assert!(all.contains("timezone: \"Europe/Paris\""), "{all}");
    // The HPA's CPU target rides along as a KEDA cpu trigger.
    assert!(all.contains("type: \"cpu\""), "{all}");
    let w = warnings(&e).join("\n");
    let line = src.lines().position(|l| l == "max = 30").unwrap() + 1;
    assert!(
        w.contains(&format!(
            "s.toml:{line}:1: warning: scheduled action `morning`: a scheduled max"
        )),
        "{w}"
    );
    assert!(w.contains("become a KEDA cron window"), "{w}");
}
