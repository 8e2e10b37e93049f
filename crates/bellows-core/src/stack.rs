//! The stack file: one TOML document that describes the whole system.
//!
//! `parse` turns the text into a [`Stack`] or into every problem it has, each with a
//! line and column, so that `bellows validate` can report them all at once.

pub mod diff;
mod parse;
mod reader;

use core::net::{Ipv4Addr, SocketAddr};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Duration;
use crate::alarm::AlarmSpec;
use crate::lb::cidr::Cidr;
use crate::lb::rules::{Action, Rule};
use crate::lb::select::Algorithm;
use crate::policy::{PolicyKind, PolicySpec, ScheduledAction};

pub use parse::{
    DEFAULT_CONTROL, DEFAULT_INSTANCE_NETWORK, DEFAULT_NAMESPACE_NETWORK, DEFAULT_REGION,
    MAX_GROUP_SIZE, default_health_check, parse,
};

/// A problem found in a stack file, at a 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Diagnostic {
    /// The diagnostic as compilers print it: `file:line:column: message`.
    pub fn render(&self, file: &str) -> String {
        format!("{file}:{}:{}: {}", self.line, self.column, self.message)
    }
}

/// The whole system: its settings, groups and target groups.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stack {
    pub name: String,
    /// Where the control API listens; always a loopback address.
    pub control: SocketAddr,
    /// The state directory, relative to where bellows runs; `.bellows` by default.
    pub state_dir: Option<String>,
    /// The loopback network instances get their private addresses from.
    pub instance_network: Ipv4Net,
    /// The private network whose /30s instances in network namespaces get: the host's
    /// end of the veth pair takes the first address, the instance the second.
    pub namespace_network: Ipv4Net,
    /// The AWS region the AWS endpoint serves and its ARNs name (`us-east-1`).
    pub region: String,
    /// The name the AWS endpoint gives the stack's application load balancer: the
    /// stack's name unless `[stack] load_balancer` names it (seed 001's `ip-tracker-alb`).
    pub load_balancer: String,
    /// A key pair of the stack's own for the AWS endpoint (`[aws]`).
    pub aws: Option<AwsKeySpec>,
    pub groups: Vec<GroupSpec>,
    pub target_groups: Vec<TargetGroupSpec>,
    pub listeners: Vec<ListenerSpec>,
    pub alarms: Vec<AlarmSpec>,
    pub policies: Vec<PolicySpec>,
    pub scheduled: Vec<ScheduledAction>,
    pub webhooks: Vec<WebhookSpec>,
    /// Smoke checks that `bellows check` runs through the load balancer.
    pub checks: Vec<CheckSpec>,
    /// The model of the service that `bellows sim` replays a trace against.
    pub simulation: SimulationSpec,
    /// Investigations started by alarms, and where incidents go.
    pub incidents: IncidentsSpec,
}

impl Stack {
    /// This stack on another instance network (`127.X.Y.0/N`, 8 <= N <= 30, as a stack
    /// file's `instance_network`), or as it is for `None`.
    pub fn with_instance_network(mut self, network: Option<&str>) -> Result<Stack, String> {
        let Some(text) = network else {
            return Ok(self);
        };
        let net = text
            .split_once('/')
            .and_then(|(a, p)| {
                Some(Ipv4Net {
                    addr: a.parse::<Ipv4Addr>().ok()?,
                    prefix: p.parse::<u8>().ok()?,
                })
            })
            .filter(|n| n.addr.octets()[0] == 127 && (8..=30).contains(&n.prefix))
            .ok_or_else(|| {
                format!(
                    "instance network `{text}`: use a loopback network like 127.1.0.0/16 (prefix 8 to 30)"
                )
            })?;
        self.instance_network = net;
        Ok(self)
    }

    /// A stack with a name and nothing else: no listener, target group or group (what
    /// `bellows up --empty` runs, to take everything later through `bellows apply` or
    /// the AWS endpoint). Every setting has the stack file's default; the load
    /// balancer is named after the stack. A stack *file* still needs a group. Refuses a
    /// name a stack file would refuse.
    pub fn empty(name: &str) -> Result<Stack, String> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && name.as_bytes()[0].is_ascii_alphanumeric();
        if !ok {
            return Err(format!(
                "`{name}` is not a valid stack name: use 1 to 64 lowercase letters, digits, `-` or `_`, starting with a letter or digit"
            ));
        }
        let net = |text: &str, fallback: Ipv4Net| -> Ipv4Net {
            text.split_once('/')
                .and_then(|(a, p)| {
                    Some(Ipv4Net {
                        addr: a.parse().ok()?,
                        prefix: p.parse().ok()?,
                    })
                })
                .unwrap_or(fallback)
        };
        Ok(Stack {
            name: name.to_owned(),
            control: DEFAULT_CONTROL
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9900))),
            state_dir: None,
            instance_network: net(
                DEFAULT_INSTANCE_NETWORK,
                Ipv4Net {
                    addr: Ipv4Addr::new(127, 1, 0, 0),
                    prefix: 16,
                },
            ),
            namespace_network: net(
                DEFAULT_NAMESPACE_NETWORK,
                Ipv4Net {
                    addr: Ipv4Addr::new(10, 213, 0, 0),
                    prefix: 16,
                },
            ),
            region: DEFAULT_REGION.to_owned(),
            load_balancer: name.to_owned(),
            aws: None,
            groups: Vec::new(),
            target_groups: Vec::new(),
            listeners: Vec::new(),
            alarms: Vec::new(),
            policies: Vec::new(),
            scheduled: Vec::new(),
            webhooks: Vec::new(),
            checks: Vec::new(),
            simulation: SimulationSpec::default(),
            incidents: IncidentsSpec::default(),
        })
    }
}

/// The `[aws]` table: the access key id AWS callers sign with, and the environment
/// variable that holds its secret (read when bellows starts; never in the file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AwsKeySpec {
    pub access_key_id: String,
    pub secret_env: String,
}

/// The `[simulation]` section: a model of one group's instances for the simulator.
/// Every key has a default, so a stack without the section can be simulated too.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimulationSpec {
    /// The group the trace's requests go to; the first group when absent.
    pub group: Option<String>,
    /// Requests per second one instance serves at 100% CPU.
    pub capacity: f64,
    /// Mean time to serve one request on an idle instance.
    pub service_time: Duration,
    /// The latency target: a second whose estimated p99 is above it is over the SLO.
    pub slo: Duration,
    /// From launch to taking traffic (boot, setup, health checks); when absent, the
    /// launch template's boot delay plus the target group's health checks.
    pub startup: Option<Duration>,
    /// Start-up times spread uniformly by up to this either side.
    pub startup_spread: Duration,
    /// What one instance costs per hour (billed per second from launch to exit).
    pub price_per_hour: f64,
    /// Crashes per instance-hour in service (0: none).
    pub crash_rate: f64,
    /// Requests one instance can hold waiting (`MAX_USERS_PER_INSTANCE`, or HAProxy's
    /// maxconn plus its queue); past it requests get a 503. When absent: the target
    /// group's `max_connections` plus `queue_size`, else what the instance serves in
    /// the listener's idle timeout (requests waiting longer would get a 504).
    pub max_in_flight: Option<u32>,
    /// The seed of start-up spread and crashes; the same seed gives the same run.
    pub seed: u64,
}

impl Default for SimulationSpec {
    fn default() -> SimulationSpec {
        SimulationSpec {
            group: None,
            capacity: 100.0,
            service_time: Duration::from_millis(50),
            slo: Duration::from_secs(1),
            startup: None,
            startup_spread: Duration::ZERO,
            price_per_hour: 0.0116,
            crash_rate: 0.0,
            max_in_flight: None,
            seed: 1,
        }
    }
}

/// `[incidents]`: which alarms start an investigation when they go to ALARM, and where
/// the resulting incident is sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentsSpec {
    /// Alarms that start one: None means every alarm but target tracking's own.
    pub alarms: Option<Vec<String>>,
    /// A generic JSON receiver.
    pub webhook: Option<String>,
    /// A GitHub-compatible issues API.
    pub github: Option<GithubSpec>,
}

impl IncidentsSpec {
    /// Whether `alarm` going to ALARM starts an investigation: the listed alarms, or
    /// by default every alarm but those target tracking policies own (their ALARM is
    /// the policy at work, not an incident).
    pub fn investigates(&self, alarm: &str) -> bool {
        match &self.alarms {
            Some(list) => list.iter().any(|a| a == alarm),
            None => !alarm.starts_with("TargetTracking-"),
        }
    }
}

/// `[incidents.github]`: where issues are opened, updated and closed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GithubSpec {
    /// The API's base URL, like `https://api.github.com` (http only for now).
    pub url: String,
    /// `owner/name`.
    pub repository: String,
    /// The environment variable holding the token (read at delivery, never stored).
    pub token_env: String,
    pub labels: Vec<String>,
}

/// One smoke check: a request through a listener and what its answer must be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSpec {
    pub name: String,
    /// The listener to send it to; the first one when absent.
    pub listener: Option<String>,
    pub method: String,
    /// Path and query, like `/gtg?details=true`.
    pub path: String,
    pub body: Option<String>,
    pub expect_status: u16,
    /// A piece of text the body must contain.
    pub expect_body: Option<String>,
}

/// Where alarm notifications are POSTed (through the persistent outbox).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSpec {
    pub name: String,
    pub url: String,
}

impl Stack {
    /// How long each group leaves a new instance out of its aggregate metrics: its default
    /// instance warmup, else the longest warmup of its policies, else (with step or target
    /// tracking policies) its default cooldown, else none.
    pub fn instance_warmups(&self) -> BTreeMap<String, Duration> {
        self.groups
            .iter()
            .map(|g| {
                let mine = || self.policies.iter().filter(|p| p.group == g.name);
                let from_policies = mine()
                    .filter_map(|p| match &p.kind {
                        PolicyKind::Step { warmup, .. }
                        | PolicyKind::TargetTracking { warmup, .. } => *warmup,
                        _ => None,
                    })
                    .max();
                // As AWS: without a warmup anywhere, step and target tracking policies use
                // the group's default cooldown as their instance warmup.
                let dynamic = mine().any(|p| {
                    matches!(
                        p.kind,
                        PolicyKind::Step { .. } | PolicyKind::TargetTracking { .. }
                    )
                });
                let fallback = if dynamic {
                    g.default_cooldown
                } else {
                    Duration::ZERO
                };
                let w = g
                    .default_instance_warmup
                    .or(from_policies)
                    .unwrap_or(fallback);
                (g.name.clone(), w)
            })
            .collect()
    }

    pub fn group(&self, name: &str) -> Option<&GroupSpec> {
        self.groups.iter().find(|g| g.name == name)
    }

    pub fn target_group(&self, name: &str) -> Option<&TargetGroupSpec> {
        self.target_groups.iter().find(|g| g.name == name)
    }

    /// The target groups some listener forwards to. The load balancer health-checks
    /// their targets; those of any other target group are `unused`, as ALB shows a
    /// target group no load balancer uses, and are not checked.
    pub fn used_target_groups(&self) -> BTreeSet<&str> {
        self.listeners
            .iter()
            .flat_map(|l| l.target_groups())
            .collect()
    }

    /// Whether the load balancer health-checks a group's instances: it registers them
    /// with a target group that a listener forwards to.
    pub fn load_balanced(&self, group: &GroupSpec) -> bool {
        let used = self.used_target_groups();
        group
            .target_groups
            .iter()
            .any(|t| used.contains(t.as_str()))
    }
}

/// An IPv4 network inside 127.0.0.0/8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    /// The usable host addresses, without the network and broadcast addresses.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> + use<> {
        let base = u32::from(self.addr) & self.mask();
        let size = 1u64 << (32 - u32::from(self.prefix));
        (1..size.saturating_sub(1)).map(move |i| Ipv4Addr::from(base + i as u32))
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An auto scaling group: how to launch an instance and how many to keep.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupSpec {
    pub name: String,
    pub launch: LaunchTemplate,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    pub zones: Vec<String>,
    pub health_check_type: HealthCheckType,
    pub health_check_grace_period: Duration,
    pub default_cooldown: Duration,
    pub default_instance_warmup: Option<Duration>,
    pub termination_policy: TerminationPolicy,
    pub target_groups: Vec<String>,
    /// A request to a target group of this group while it has no instance launches one
    /// and is held until it is ready (Knative's activator; ALB cannot).
    pub scale_from_zero: bool,
    /// The instance profile's role: what the temporary credentials an instance finds
    /// behind its metadata endpoint may call (`[groups.NAME.role]`).
    pub role: RoleSpec,
}

impl GroupSpec {
    /// Whether a request for `target_group` that finds no instance is held while this
    /// group launches one: it scales from zero (`scale_from_zero`, with `min = 0`) and
    /// registers into that target group. The load balancer holds requests by this rule,
    /// `scaling::scale_from_zero` wakes groups by it, and an export warns by it.
    pub fn wakes_from_zero_for(&self, target_group: &str) -> bool {
        self.scale_from_zero
            && self.min == 0
            && self.target_groups.iter().any(|t| t == target_group)
    }

    /// Whether it wakes from zero for any of its target groups.
    pub fn wakes_from_zero(&self) -> bool {
        self.target_groups
            .iter()
            .any(|t| self.wakes_from_zero_for(t))
    }
}

/// A group's instance role: its name and the `service:Action` patterns it allows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RoleSpec {
    pub name: String,
    pub allow: Vec<String>,
}

/// What a role allows when the stack says nothing: the stack's DynamoDB tables, custom
/// metrics, and who am I; nothing that changes the stack.
pub const DEFAULT_ROLE_ALLOW: [&str; 3] = [
    "dynamodb:*",
    "cloudwatch:PutMetricData",
    "sts:GetCallerIdentity",
];

/// The services whose actions a role may allow: the ones the AWS endpoint answers.
pub const ROLE_SERVICES: [&str; 6] = [
    "autoscaling",
    "cloudwatch",
    "dynamodb",
    "ec2",
    "elasticloadbalancing",
    "sts",
];

impl RoleSpec {
    /// Whether `rule` is an `allow` entry: `*`, or `SERVICE:Action` with SERVICE one
    /// of `ROLE_SERVICES` and the action letters and digits, a trailing `*` allowed.
    pub fn allows_pattern(rule: &str) -> bool {
        rule == "*"
            || rule.split_once(':').is_some_and(|(svc, action)| {
                ROLE_SERVICES.contains(&svc)
                    && !action.is_empty()
                    && action
                        .trim_end_matches('*')
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric())
                    && action.find('*').is_none_or(|i| i == action.len() - 1)
            })
    }

    /// The role a group gets by default: `GROUP-role` with `DEFAULT_ROLE_ALLOW`.
    pub fn default_for(group: &str) -> RoleSpec {
        RoleSpec {
            name: format!("{group}-role"),
            allow: DEFAULT_ROLE_ALLOW.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// What EC2 calls a launch template and its user data.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LaunchTemplate {
    /// The program and its arguments. A first element `bellows` means this very binary.
    /// Empty when `user_data` is the program.
    pub command: Vec<String>,
    /// EC2's user data, decoded: when set, it is the instance's program (a script, or a
    /// `#cloud-config` document), run as cloud-init runs it.
    pub user_data: Option<String>,
    /// The image id a launch template names, recorded as given.
    pub image_id: Option<String>,
    pub env: BTreeMap<String, String>,
    /// A shell script run before the command, like EC2 user data.
    pub setup: Option<String>,
    pub instance_type: InstanceType,
    /// A pause before the setup script, to imitate a virtual machine's boot.
    pub boot_delay: Duration,
    /// The port every instance listens on, on its own private address.
    pub port: u16,
    /// How long a terminating instance has between SIGTERM and SIGKILL.
    pub stop_timeout: Duration,
    /// Whether each instance gets a network namespace of its own (`network`).
    pub network: NetworkMode,
}

/// An instance's network: `[groups.NAME.launch] network`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// A namespace for instances whose program is user data, when bellows runs as
    /// root; the host's network (a loopback address of its own) otherwise.
    #[default]
    Auto,
    /// A network namespace of its own with a veth pair, on an address from
    /// `[stack] namespace_network` (bellows must run as root; else as `host`).
    Namespace,
    /// The host's network, on a loopback address of its own from `instance_network`.
    Host,
}

/// The environment variables bellows sets for every instance itself.
pub const RESERVED_ENV: [&str; 9] = [
    "BELLOWS_API",
    "BELLOWS_METRICS_TOKEN",
    "INSTANCE_ID",
    "PRIVATE_IP",
    "PORT",
    "ZONE",
    "GROUP",
    "BELLOWS_DATA_DIR",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
];

/// An instance type: a share of CPU and a memory limit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InstanceType {
    pub name: String,
    pub vcpu: f64,
    pub memory_mib: u64,
}

/// EC2 instance types bellows knows by name, as (name, vCPU, memory in MiB).
pub const INSTANCE_TYPES: [(&str, f64, u64); 12] = [
    ("t2.nano", 1.0, 512),
    ("t2.micro", 1.0, 1024),
    ("t2.small", 1.0, 2048),
    ("t2.medium", 2.0, 4096),
    ("t3.nano", 2.0, 512),
    ("t3.micro", 2.0, 1024),
    ("t3.small", 2.0, 2048),
    ("t3.medium", 2.0, 4096),
    ("t3.large", 2.0, 8192),
    ("m5.large", 2.0, 8192),
    ("c5.large", 2.0, 4096),
    ("c5.xlarge", 4.0, 8192),
];

impl InstanceType {
    pub fn named(name: &str) -> Option<InstanceType> {
        INSTANCE_TYPES
            .iter()
            .find(|(n, ..)| *n == name)
            .map(|&(n, vcpu, memory_mib)| InstanceType {
                name: n.to_owned(),
                vcpu,
                memory_mib,
            })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthCheckType {
    /// The instance is healthy while its process runs.
    #[serde(rename = "EC2")]
    Ec2,
    /// Also unhealthy when its target group's health check says so, after the grace period.
    #[serde(rename = "ELB")]
    Elb,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TerminationPolicy {
    /// Balance zones, then the oldest launch template, then closest to the next
    /// instance-hour, then by id.
    Default,
    OldestInstance,
    NewestInstance,
}

/// A target group: where a load balancer sends traffic and how it checks health.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TargetGroupSpec {
    pub name: String,
    pub port: u16,
    pub health_check: HealthCheckSpec,
    pub algorithm: Algorithm,
    /// With `weighted_random`: shift traffic away from a target whose errors are out of
    /// line with its peers' (see `lb::anomaly`).
    pub anomaly_mitigation: bool,
    pub stickiness: Option<Stickiness>,
    /// A new target's share ramps up linearly over this; zero is off.
    pub slow_start: Duration,
    /// How long a deregistered target may finish its requests (it leaves early when idle).
    pub deregistration_delay: Duration,
    /// HAProxy's `maxconn`: concurrent requests per target, then a queue.
    pub max_connections: Option<u32>,
    pub queue_size: u32,
    pub queue_timeout: Duration,
}

/// Sticky sessions: which cookie pins a client to a target, and for how long.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stickiness {
    /// `None`: bellows' own cookie (`lb_cookie`); `Some(name)`: follow the application's
    /// cookie of that name (`app_cookie`).
    pub app_cookie: Option<String>,
    pub duration: Duration,
}

/// A listener: an address the load balancer accepts connections on, who may connect,
/// and its rules.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ListenerSpec {
    pub name: String,
    pub address: SocketAddr,
    /// The ingress allow-list (a security group): connections from elsewhere are dropped.
    pub ingress: Vec<Cidr>,
    /// Sorted by priority, lowest first.
    pub rules: Vec<Rule>,
    pub default_action: Action,
    /// A connection with nothing to do for this long is closed; a target that does not
    /// answer within it gets a 504.
    pub idle_timeout: Duration,
    /// The whole request head must arrive within this (slowloris).
    pub header_timeout: Duration,
    /// Request bodies larger than this get a 413; none by default.
    pub max_body: Option<u64>,
    pub access_log: bool,
    /// The port the AWS endpoint says the listener listens on, and that security group
    /// rules name: the address's own port unless `aws_port` says otherwise (an ALB
    /// listens on 80, which an unprivileged bellows cannot bind).
    pub aws_port: Option<u16>,
}

impl ListenerSpec {
    /// The port AWS callers know this listener by.
    pub fn public_port(&self) -> u16 {
        self.aws_port.unwrap_or(self.address.port())
    }

    /// Every target group its rules and default action can forward to.
    pub fn target_groups(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .map(|r| &r.action)
            .chain(std::iter::once(&self.default_action))
            .flat_map(|a| match a {
                Action::Forward(groups) => groups
                    .iter()
                    .map(|g| g.target_group.as_str())
                    .collect::<Vec<_>>(),
                _ => Vec::new(),
            })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthCheckSpec {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// Inclusive ranges of status codes that count as healthy.
    pub matcher: Vec<(u16, u16)>,
}

#[cfg(test)]
mod tests;
