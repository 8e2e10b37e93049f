use expect_test::{Expect, expect};

use super::*;
use crate::scaling::PolicyKind;

/// Parses `src` and renders either the stack's key facts or every diagnostic.
fn check(src: &str, expect: Expect) {
    let actual = match parse(src) {
        Ok(stack) => {
            let mut out = format!(
                "ok: stack {} control {} network {}\n",
                stack.name, stack.control, stack.instance_network
            );
            for g in &stack.groups {
                out += &format!(
                    "group {} min {} max {} desired {} zones {:?} type {} {}vcpu {}MiB grace {} cooldown {} policy {:?} tgs {:?}\n",
                    g.name,
                    g.min,
                    g.max,
                    g.desired,
                    g.zones,
                    g.launch.instance_type.name,
                    g.launch.instance_type.vcpu,
                    g.launch.instance_type.memory_mib,
                    g.health_check_grace_period,
                    g.default_cooldown,
                    g.termination_policy,
                    g.target_groups
                );
            }
            out
        }
        Err(diags) => diags
            .iter()
            .map(|d| d.render("stack.toml") + "\n")
            .collect(),
    };
    expect.assert_eq(&actual);
}

const MINIMAL: &str = r#"
[groups.web]
min = 1
max = 3
[groups.web.launch]
command = ["bellows", "app", "seed"]
"#;

#[test]
fn minimal_stack_gets_defaults() {
    check(
        MINIMAL,
        expect![[r#"
            ok: stack bellows control 127.0.0.1:9900 network 127.1.0.0/16
            group web min 1 max 3 desired 1 zones ["zone-a", "zone-b"] type t2.micro 1vcpu 1024MiB grace 30s cooldown 5m policy Default tgs []
        "#]],
    );
}

#[test]
fn examples_are_valid() {
    for (name, src) in [
        (
            "mp2-load-balancing",
            include_str!("../../../../examples/mp2-load-balancing.toml"),
        ),
        (
            "mp2-stress",
            include_str!("../../../../examples/mp2-stress.toml"),
        ),
    ] {
        let stack = parse(src).unwrap_or_else(|d| panic!("{name}: {d:?}"));
        assert_eq!(stack.name, name);
    }
}

#[test]
fn syntax_error_points_at_the_spot() {
    check(
        "[stack]\nname = \"x\nmin = 1\n",
        expect![[r#"
            stack.toml:2:10: TOML syntax: invalid basic string, expected `"`
        "#]],
    );
}

#[test]
fn every_error_is_reported_not_only_the_first() {
    check(
        r#"
[stack]
name = "Bad Name"
control = "0.0.0.0:9900"
colour = "blue"

[target_groups.tg]
port = 70000
[target_groups.tg.health_check]
interval = "2s"
timeout = "3s"
healthy_threshold = 1
matcher = "600"

[groups.web]
min = 3
max = 2
desired = "two"
zones = ["zone-a", "zone-a"]
health_check_type = "K8S"
health_check_grace_period = 30
target_groups = ["tg", "missing"]
[groups.web.launch]
command = []
env = { PORT = "1", "2X" = "y", OK = 3 }
instance_type = "t9.huge"
boot_delay = "forever"
"#,
        expect![[r#"
            stack.toml:3:8: `Bad Name` is not a valid stack.name: use 1 to 64 lowercase letters, digits, `-` or `_`, starting with a letter or digit
            stack.toml:4:11: `stack.control` is 0.0.0.0:9900, but the control API only listens on loopback (127.0.0.0/8 or ::1)
            stack.toml:5:1: unknown key `colour` in [stack]; expected one of: control, instance_network, load_balancer, name, namespace_network, region, state_dir
            stack.toml:8:8: `target_groups.tg.port` is 70000, must be from 1 to 65535
            stack.toml:11:11: `target_groups.tg.health_check.timeout` (3s) must be shorter than the interval (2s)
            stack.toml:12:21: `target_groups.tg.health_check.healthy_threshold` is 1, must be from 2 to 10
            stack.toml:13:11: `target_groups.tg.health_check.matcher` "600" must be codes or ranges from 200 to 499, like "200", "200,302" or "200-299"
            stack.toml:17:7: `groups.web.max` (2) is below `min` (3)
            stack.toml:18:11: `groups.web.desired` must be an integer, found string
            stack.toml:19:20: zone `zone-a` is listed twice
            stack.toml:20:21: `groups.web.health_check_type` is "K8S", must be one of "EC2", "ELB"
            stack.toml:21:29: `groups.web.health_check_grace_period` must be a duration string like "30s", found integer
            stack.toml:22:24: group `web` registers into target group `missing`, which does not exist (defined: tg)
            stack.toml:23:1: `groups.web.launch.command` must name a program, like ["bellows", "app", "seed"]
            stack.toml:25:9: `PORT` is set by bellows for every instance and cannot be set in `env`
            stack.toml:25:21: `2X` is not a valid environment variable name
            stack.toml:25:38: `groups.web.launch.env.OK` must be a string, found integer
            stack.toml:26:17: unknown instance type "t9.huge"; known: t2.nano, t2.micro, t2.small, t2.medium, t3.nano, t3.micro, t3.small, t3.medium, t3.large, m5.large, c5.large, c5.xlarge, or a table { vcpu = 0.5, memory = "256MiB" }
            stack.toml:27:14: `groups.web.launch.boot_delay`: `forever` is not a duration; write a number and a unit, like `500ms`, `30s`, `5m`, `1h30m`
        "#]],
    );
}

#[test]
fn desired_outside_min_max() {
    check(
        "[groups.web]\nmin = 1\nmax = 3\ndesired = 4\n[groups.web.launch]\ncommand = [\"x\"]\n",
        expect![[r#"
            stack.toml:4:11: `groups.web.desired` (4) must lie within min and max [1, 3]
        "#]],
    );
}

#[test]
fn missing_pieces() {
    check(
        "[groups.web]\nmax = 3\n",
        expect![[r#"
            stack.toml:1:1: missing table [groups.web.launch]: a group needs a launch template with a `command`
            stack.toml:1:1: missing key `min` in [groups.web]
        "#]],
    );
    check(
        "[stack]\nname = \"empty\"\n",
        expect![[r#"
            stack.toml:1:1: the stack has no group; add one as [groups.NAME] with a [groups.NAME.launch] table
        "#]],
    );
}

#[test]
fn elb_health_needs_a_target_group_and_custom_types_are_checked() {
    check(
        r#"[groups.web]
min = 0
max = 1
health_check_type = "ELB"
[groups.web.launch]
command = ["x"]
instance_type = { vcpu = 0, memory = "lots", disk = 1 }
"#,
        expect![[r#"
            stack.toml:1:1: group `web` uses health_check_type "ELB" but registers into no target group
            stack.toml:7:26: `groups.web.launch.instance_type.vcpu` is 0, must be from 0.05 to 64
            stack.toml:7:38: `groups.web.launch.instance_type.memory` must be a size from 16MiB to 1024GiB, like "512MiB" or "2GiB", found "lots"
            stack.toml:7:46: unknown key `disk` in [groups.web.launch.instance_type]; expected one of: memory, vcpu
        "#]],
    );
}

#[test]
fn a_group_is_load_balanced_when_a_listener_forwards_to_one_of_its_target_groups() {
    let src = |forward: &str| {
        format!(
            "[target_groups.a]\n[target_groups.b]\n[listeners.web]\naddress = \"127.0.0.1:0\"\ndefault = {forward}\n\
             [groups.one]\nmin = 0\nmax = 1\ntarget_groups = [\"a\"]\n[groups.one.launch]\ncommand = [\"x\"]\n\
             [groups.none]\nmin = 0\nmax = 1\n[groups.none.launch]\ncommand = [\"x\"]\n"
        )
    };
    let uses_a = parse(&src("{ forward = \"a\" }")).unwrap();
    assert_eq!(uses_a.used_target_groups(), BTreeSet::from(["a"]));
    assert!(uses_a.load_balanced(uses_a.group("one").unwrap()));
    assert!(!uses_a.load_balanced(uses_a.group("none").unwrap()));
    let uses_b = parse(&src("{ forward = \"b\" }")).unwrap();
    assert!(!uses_b.load_balanced(uses_b.group("one").unwrap()));
}

#[test]
fn custom_instance_type_and_network() {
    check(
        r#"[stack]
name = "custom"
instance_network = "127.9.0.0/24"
control = "127.0.0.1:0"
[groups.web]
min = 0
max = 4
desired = 2
zones = ["east"]
termination_policy = "NewestInstance"
[groups.web.launch]
command = ["x"]
instance_type = { vcpu = 0.5, memory = "256MiB" }
"#,
        expect![[r#"
            ok: stack custom control 127.0.0.1:0 network 127.9.0.0/24
            group web min 0 max 4 desired 2 zones ["east"] type custom 0.5vcpu 256MiB grace 30s cooldown 5m policy NewestInstance tgs []
        "#]],
    );
}

#[test]
fn network_hosts_skip_network_and_broadcast() {
    let net = Ipv4Net {
        addr: "127.9.0.0".parse().unwrap(),
        prefix: 30,
    };
    let hosts: Vec<_> = net.hosts().map(|a| a.to_string()).collect();
    assert_eq!(hosts, ["127.9.0.1", "127.9.0.2"]);
}

#[test]
fn namespace_network_and_launch_network() {
    let ok = parse(
        "[stack]\nnamespace_network = \"10.9.0.0/24\"\n[groups.w]\nmin = 1\nmax = 1\n[groups.w.launch]\nuser_data = \"#!/bin/sh\\nexit 0\\n\"\nnetwork = \"namespace\"\n",
    )
    .unwrap();
    assert_eq!(ok.namespace_network.to_string(), "10.9.0.0/24");
    assert_eq!(ok.groups[0].launch.network, NetworkMode::Namespace);
    let default =
        parse("[groups.w]\nmin = 1\nmax = 1\n[groups.w.launch]\ncommand = [\"x\"]\n").unwrap();
    assert_eq!(default.namespace_network.to_string(), "10.213.0.0/16");
    assert_eq!(default.groups[0].launch.network, NetworkMode::Auto);
    check(
        "[stack]\nnamespace_network = \"8.8.8.0/24\"\n[groups.w]\nmin = 1\nmax = 1\n[groups.w.launch]\ncommand = [\"x\"]\nnetwork = \"bridge\"\n",
        expect![[r#"
            stack.toml:2:21: `stack.namespace_network` 8.8.8.0/24 must be a private network (inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16) with a prefix from /8 to /30
            stack.toml:8:11: `groups.w.launch.network` must be "auto", "namespace" or "host", found "bridge"
        "#]],
    );
}

const WEB: &str = r#"
[target_groups.web]
port = 8000
[groups.web]
min = 1
max = 10
target_groups = ["web"]
[groups.web.launch]
command = ["x"]
"#;

#[test]
fn autoscaler_policies_and_the_simulation_model() {
    let ok = format!(
        r#"{WEB}
[policies.h]
group = "web"
type = "hpa"
target = 60
scale_down_window = "1m"
[policies.k]
group = "web"
type = "kpa"
target_group = "web"
target = 100
panic_threshold = 3
[policies.p]
group = "web"
type = "predictive"
target_group = "web"
target = 50
lead = "10m"
history_days = 3
burst = 2.5
burst_target = 120
[simulation]
cpu_per_request = "20ms"
slo = "300ms"
startup = "90s"
max_in_flight = 25
seed = 42
"#
    );
    let stack = parse(&ok).unwrap();
    let kinds: Vec<String> = stack
        .policies
        .iter()
        .map(|p| match &p.kind {
            PolicyKind::Hpa(h) => format!(
                "hpa {} every {} down window {}",
                h.target, h.sync_period, h.scale_down_window
            ),
            PolicyKind::Kpa(k) => format!(
                "kpa {} x {} panic {} x{}",
                k.target, k.utilization, k.panic_window, k.panic_threshold
            ),
            PolicyKind::Predictive(p) => {
                format!(
                    "predictive {} lead {} {} days, {} sd at {}",
                    p.target, p.lead, p.history_days, p.burst, p.burst_target
                )
            }
            other => format!("{other:?}"),
        })
        .collect();
    expect![[r#"
        [
            "hpa 60 every 15s down window 1m",
            "kpa 100 x 0.7 panic 6s x3",
            "predictive 50 lead 10m 3 days, 2.5 sd at 120",
        ]
    "#]]
    .assert_debug_eq(&kinds);
    let s = &stack.simulation;
    assert_eq!(s.capacity, 50.0, "1 vCPU at 20 ms a request");
    assert_eq!(
        (s.slo, s.startup, s.max_in_flight, s.seed),
        (
            Duration::from_millis(300),
            Some(Duration::from_secs(90)),
            Some(25),
            42
        )
    );
    assert_eq!(parse(WEB).unwrap().simulation, SimulationSpec::default());

    check(
        &format!(
            r#"{WEB}
[policies.h]
group = "web"
type = "hpa"
target = 0
tolerance = 1.5
[policies.k]
group = "web"
type = "kpa"
target_group = "nope"
target = 10
panic_window = "2m"
[policies.p]
group = "web"
type = "predictive"
target = 50
[policies.q]
group = "web"
type = "magic"
[simulation]
group = "db"
capacity = 10
cpu_per_request = "5ms"
price_per_hour = -1
colour = "red"
"#
        ),
        expect![[r#"
            stack.toml:14:10: `policies.h.target` must be above 0
            stack.toml:15:13: `policies.h.tolerance` must be from 0 to below 1
            stack.toml:16:1: `policies.k.panic_window` must not be longer than `stable_window`
            stack.toml:19:16: `policies.k.target_group`: target group `nope` does not exist
            stack.toml:22:1: missing key `target_group` in [policies.p]
            stack.toml:28:8: `policies.q.type` "magic" must be "simple", "step", "target_tracking", "hpa", "kpa" or "predictive"
            stack.toml:30:9: `simulation.group`: group `db` does not exist
            stack.toml:31:12: `simulation`: set either `capacity` or `cpu_per_request`, not both
            stack.toml:33:18: `simulation.price_per_hour` must not be negative
            stack.toml:34:1: unknown key `colour` in [simulation]; expected one of: capacity, cpu_per_request, crash_rate, group, max_in_flight, price_per_hour, seed, service_time, slo, startup, startup_spread
        "#]],
    );
}

#[test]
fn incidents_name_existing_alarms_and_http_receivers() {
    let base = format!(
        "{MINIMAL}\n[alarms.cpu]\nmetric = \"CPUUtilization\"\ncomparison = \">\"\nthreshold = 50\nevaluation_periods = 1\n"
    );
    let ok = parse(&format!(
        "{base}\n[incidents]\nalarms = [\"cpu\"]\nwebhook = \"http://127.0.0.1:9/x\"\n[incidents.github]\nurl = \"http://127.0.0.1:9/api/\"\nrepository = \"acme/shop\"\n"
    ))
    .unwrap();
    assert!(ok.incidents.investigates("cpu"));
    assert!(!ok.incidents.investigates("other"));
    let gh = ok.incidents.github.unwrap();
    assert_eq!(gh.url, "http://127.0.0.1:9/api");
    assert_eq!(gh.token_env, "GITHUB_TOKEN");
    assert_eq!(gh.labels, ["incident", "bellows"]);
    assert!(parse(&base).unwrap().incidents.investigates("cpu"));
    assert!(
        !parse(&base)
            .unwrap()
            .incidents
            .investigates("TargetTracking-cpu70-AlarmLow")
    );
    check(
        &format!(
            "{base}\n[incidents]\nalarms = [\"nope\"]\nwebhook = \"ftp://x\"\nextra = 1\n[incidents.github]\nurl = \"http://h\"\nrepository = \"noslash\"\n"
        ),
        expect![[r#"
            stack.toml:15:11: `incidents.alarms`: no alarm named `nope`
            stack.toml:16:11: `incidents.webhook` must be an http:// or https:// URL with a host
            stack.toml:17:1: unknown key `extra` in [incidents]; expected one of: alarms, github, webhook
            stack.toml:20:14: `incidents.github.repository` must be `owner/name`
        "#]],
    );
}

#[test]
fn anomaly_mitigation_needs_weighted_random() {
    check(
        r#"
[target_groups.tg]
algorithm = "round_robin"
anomaly_mitigation = true

[target_groups.ok]
algorithm = "weighted_random"
anomaly_mitigation = true

[target_groups.typo]
anomaly_mitigation = "yes"
"#,
        expect![[r#"
            stack.toml:1:1: the stack has no group; add one as [groups.NAME] with a [groups.NAME.launch] table
            stack.toml:4:22: `target_groups.tg.anomaly_mitigation` needs `algorithm = "weighted_random"` (as on ALB)
            stack.toml:11:22: `target_groups.typo.anomaly_mitigation` must be true or false, found string
        "#]],
    );
}

#[test]
fn region_and_aws_key_pair() {
    let src = format!(
        "[stack]\nregion = \"eu-west-3\"\n[aws]\naccess_key_id = \"AKIAWORKSHOP0000TEAM\"\nsecret_env = \"TEAM_AWS_SECRET\"\n{MINIMAL}"
    );
    let stack = parse(&src).unwrap();
    assert_eq!(stack.region, "eu-west-3");
    let aws = stack.aws.unwrap();
    assert_eq!(
        (aws.access_key_id.as_str(), aws.secret_env.as_str()),
        ("AKIAWORKSHOP0000TEAM", "TEAM_AWS_SECRET")
    );
    assert_eq!(parse(MINIMAL).unwrap().region, "us-east-1");
    check(
        &format!(
            "[stack]\nregion = \"Mars\"\n[aws]\naccess_key_id = \"short\"\nsecret_env = \"not a name\"\n{MINIMAL}"
        ),
        expect![[r#"
            stack.toml:2:10: `stack.region`: `Mars` is not a region name like us-east-1
            stack.toml:4:17: `aws.access_key_id`: 16 to 128 letters and digits, like AKIAIOSFODNN7EXAMPLE
            stack.toml:5:14: `aws.secret_env`: the name of the environment variable that holds the secret (the secret itself never goes in the file)
        "#]],
    );
    check(
        &format!("[aws]\naccess_key_id = \"AKIAWORKSHOP0000TEAM\"\nsecret = \"x\"\n{MINIMAL}"),
        expect![[r#"
            stack.toml:1:1: missing key `secret_env` in [aws]
            stack.toml:3:1: unknown key `secret` in [aws]; expected one of: access_key_id, secret_env
        "#]],
    );
}

#[test]
fn the_aws_face_can_carry_the_seeds_names_and_ports() {
    let listener = "[target_groups.tg]\n[listeners.http]\naddress = \"127.0.0.1:8080\"\ndefault = { forward = \"tg\" }\n";
    let src = format!(
        "[stack]\nname = \"ip-tracker\"\nload_balancer = \"ip-tracker-alb\"\n{listener}aws_port = 80\n{MINIMAL}"
    );
    let stack = parse(&src).unwrap();
    assert_eq!(stack.load_balancer, "ip-tracker-alb");
    assert_eq!(stack.listeners[0].public_port(), 80);
    let plain = parse(&format!("[stack]\nname = \"shop\"\n{listener}{MINIMAL}")).unwrap();
    assert_eq!(plain.load_balancer, "shop", "the stack's name by default");
    assert_eq!(
        plain.listeners[0].public_port(),
        8080,
        "the bound port by default"
    );
    check(
        &format!(
            "[stack]\nload_balancer = \"-ip_tracker-\"\n{listener}aws_port = 70000\n{MINIMAL}"
        ),
        expect![[r#"
            stack.toml:2:17: `stack.load_balancer`: `-ip_tracker-` is not a load balancer name: 1 to 32 letters, digits and `-`, not starting or ending with `-`
            stack.toml:7:12: `listeners.http.aws_port` is 70000, must be from 1 to 65535
        "#]],
    );
}

#[test]
fn a_groups_role_names_what_its_instances_may_call() {
    let base = "[groups.web]\nmin = 1\nmax = 3\n[groups.web.launch]\ncommand = [\"x\"]\n";
    let stack = parse(base).unwrap();
    assert_eq!(stack.groups[0].role, RoleSpec::default_for("web"));
    assert_eq!(stack.groups[0].role.name, "web-role");
    let stack = parse(&format!(
        "{base}[groups.web.role]\nname = \"app\"\nallow = [\"dynamodb:*\", \"ec2:Describe*\", \"*\"]\n"
    ))
    .unwrap();
    assert_eq!(stack.groups[0].role.name, "app");
    assert_eq!(
        stack.groups[0].role.allow,
        ["dynamodb:*", "ec2:Describe*", "*"]
    );
    check(
        &format!(
            "{base}[groups.web.role]\nname = \"no spaces\"\nallow = [\"s3:GetObject\", \"dynamodb\", \"ec2:*Describe\"]\nextra = 1\n"
        ),
        expect![[r#"
            stack.toml:7:8: `groups.web.role.name` must be 1 to 64 of letters, digits and +=,.@_- (an IAM role name)
            stack.toml:8:10: `groups.web.role.allow`: "s3:GetObject" is not SERVICE:Action (a trailing * allowed), with SERVICE one of autoscaling, cloudwatch, dynamodb, ec2, elasticloadbalancing, sts
            stack.toml:8:26: `groups.web.role.allow`: "dynamodb" is not SERVICE:Action (a trailing * allowed), with SERVICE one of autoscaling, cloudwatch, dynamodb, ec2, elasticloadbalancing, sts
            stack.toml:8:38: `groups.web.role.allow`: "ec2:*Describe" is not SERVICE:Action (a trailing * allowed), with SERVICE one of autoscaling, cloudwatch, dynamodb, ec2, elasticloadbalancing, sts
            stack.toml:9:1: unknown key `extra` in [groups.web.role]; expected one of: allow, name
        "#]],
    );
}

#[test]
fn an_empty_stack_has_a_name_and_the_files_defaults_and_nothing_else() {
    let e = Stack::empty("shop").unwrap();
    let from_file = parse(
        "[stack]\nname = \"shop\"\n[groups.web]\nmin = 0\nmax = 1\n[groups.web.launch]\ncommand = [\"x\"]\n",
    )
    .unwrap();
    let mut without_groups = from_file.clone();
    without_groups.groups.clear();
    without_groups.simulation = e.simulation.clone();
    assert_eq!(e, without_groups);
    assert!(e.groups.is_empty() && e.listeners.is_empty() && e.target_groups.is_empty());
    assert!(
        Stack::empty("Shop!")
            .unwrap_err()
            .contains("not a valid stack name")
    );
}

#[test]
fn alarm_names_keep_cloudwatchs_case_and_other_names_stay_lowercase() {
    let alarm = |name: &str| {
        format!(
            "{MINIMAL}[alarms.{name}]\nmetric = \"CPUUtilization\"\ndimensions = {{ AutoScalingGroupName = \"web\" }}\nstatistic = \"Average\"\nperiod = \"60s\"\nevaluation_periods = 1\ncomparison = \">\"\nthreshold = 60\n"
        )
    };
    let s = parse(&alarm("HighCPUUtilization")).unwrap();
    assert_eq!(s.alarms[0].name, "HighCPUUtilization");
    let e = parse(&alarm("\"high cpu\"")).unwrap_err();
    assert!(
        e[0].render("stack.toml")
            .contains("is not a valid alarm name"),
        "{e:?}"
    );
    let e = parse(&MINIMAL.replace("groups.web", "groups.Web")).unwrap_err();
    assert!(
        e[0].render("stack.toml")
            .contains("is not a valid group name"),
        "{e:?}"
    );
}
