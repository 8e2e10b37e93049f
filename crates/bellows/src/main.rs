//! bellows: an elastic, load-balanced web service on one machine.
//!
//! This binary wires the crates together behind one CLI: `up` runs a stack, the other
//! commands talk to a running `up` through its control API, `app` runs the sample apps.

#![forbid(unsafe_code)]

/// `println!` that ends the program quietly when stdout is closed (`bellows metrics |
/// head`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::emit(format_args!($($arg)*))
    };
}

mod clock;
mod commands;
mod context;
mod export;
mod load;
mod scenario;
mod sim;
mod stack_file;
mod table;
mod trace;
mod up;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The request path allocates small, short-lived buffers by the million; mimalloc does
/// that markedly faster than the system allocator (see scripts/bench-proxy).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An elastic, load-balanced web service on one machine: an auto scaling group of real
/// instance processes, kept at size and healed, driven from one stack file.
#[derive(Debug, Parser)]
#[command(name = "bellows", version, about, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    conn: context::Conn,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a stack in the foreground until Ctrl-C or SIGTERM; with no FILE, the default
    /// stack: the IP tracker (examples/ip-tracker.toml) at http://127.0.0.1:8080/app-x7k9m2n8/.
    Up {
        #[command(flatten)]
        conn: context::Conn,
        /// The stack file.
        file: Option<PathBuf>,
        /// Start with no listener, target group or group: the stack takes everything
        /// later through `bellows apply` or the AWS endpoint.
        #[arg(long, conflicts_with = "file")]
        empty: bool,
        /// With --empty: the stack's name (a stack file applied later names the same).
        #[arg(
            long,
            requires = "empty",
            value_name = "NAME",
            default_value = "bellows"
        )]
        name: String,
        /// With --empty: the loopback network instances get their addresses from
        /// (default 127.1.0.0/16, as in a stack file).
        #[arg(long, requires = "empty", value_name = "CIDR")]
        instance_network: Option<String>,
        /// Do not turn instance types into cgroup limits, even where the host allows.
        #[arg(long)]
        no_cgroups: bool,
        /// Threads serving the load balancer and control API (default: one per core).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
        worker_threads: Option<u16>,
    },
    /// Check stack files; prints every problem as file:line:column: message, exit 2.
    Validate {
        /// Stack files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The running stack and its groups.
    Status {
        #[command(flatten)]
        conn: context::Conn,
        /// Print JSON instead of text (every field, unabridged).
        #[arg(long)]
        json: bool,
    },
    /// The instances of every group: state, health, address, CPU, memory.
    Instances {
        #[command(flatten)]
        conn: context::Conn,
        /// Only this group's instances.
        #[arg(long)]
        group: Option<String>,
        /// Print JSON instead of text (every field, unabridged).
        #[arg(long)]
        json: bool,
        /// Print only the process ids of the instances that run, one a line (for `kill`).
        #[arg(long, conflicts_with = "json")]
        pids: bool,
    },
    /// Scaling activities, newest first: every launch and termination with its cause.
    Activities {
        #[command(flatten)]
        conn: context::Conn,
        /// Only this group's.
        #[arg(long)]
        group: Option<String>,
        /// At most this many, newest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON instead of text (every field, unabridged).
        #[arg(long)]
        json: bool,
    },
    /// Set a group's desired capacity (and min or max); refused outside [min, max].
    Scale {
        #[command(flatten)]
        conn: context::Conn,
        /// The group, as named in the stack file (see `bellows status`).
        group: String,
        /// The new desired capacity.
        #[arg(long)]
        desired: Option<u32>,
        /// The new minimum size.
        #[arg(long)]
        min: Option<u32>,
        /// The new maximum size.
        #[arg(long)]
        max: Option<u32>,
        /// Print JSON instead of text (every field, unabridged).
        #[arg(long)]
        json: bool,
    },
    /// Replace every instance of a group in batches, like `aws autoscaling
    /// start-instance-refresh`; or show (`--status`) or cancel (`--cancel`) one.
    Refresh {
        #[command(flatten)]
        conn: context::Conn,
        /// The group whose instances are replaced.
        group: String,
        /// The share of desired capacity kept healthy and in service, 0 to 100.
        #[arg(long, default_value_t = 90)]
        min_healthy_percentage: u32,
        /// How long a replacement serves before the next batch (default: the group's
        /// instance warmup).
        #[arg(long)]
        warmup: Option<String>,
        /// Follow the refresh until it ends, with its progress.
        #[arg(long)]
        wait: bool,
        /// Show the refresh under way (or the last one) instead of starting one.
        #[arg(long, conflicts_with = "cancel")]
        status: bool,
        /// Cancel the refresh under way: no new batch starts.
        #[arg(long)]
        cancel: bool,
        /// Print JSON instead of text (every field, unabridged).
        #[arg(long)]
        json: bool,
    },
    /// List metric series, or query one metric's statistic over time (with a sparkline).
    Metrics {
        #[command(flatten)]
        conn: context::Conn,
        /// The namespace, like AWS/EC2, AWS/ApplicationELB, AWS/AutoScaling or yours.
        #[arg(long)]
        namespace: Option<String>,
        /// The metric name, like CPUUtilization; without it, series are listed.
        #[arg(long)]
        name: Option<String>,
        /// Only series with this dimension (repeatable), like AutoScalingGroupName=web.
        #[arg(long = "dimension", value_name = "KEY=VALUE")]
        dimensions: Vec<String>,
        /// SampleCount, Average, Sum, Minimum, Maximum or a percentile like p99.
        #[arg(long, default_value = "Average")]
        stat: String,
        /// The statistic's period, like 1s, 10s or 1m.
        #[arg(long, default_value = "1s")]
        period: String,
        /// How far back, like 5m or 1h.
        #[arg(long, default_value = "5m")]
        since: String,
        /// Print JSON instead of text (every field, unabridged).
        #[arg(long)]
        json: bool,
    },
    /// Alarms with their state, reason and recent history.
    Alarms {
        #[command(flatten)]
        conn: context::Conn,
        /// Print JSON instead of text (every field, unabridged).
        #[arg(long)]
        json: bool,
    },
    /// Change the running stack: validate FILE, show what differs, then swap it in
    /// without dropping a connection.
    Apply {
        #[command(flatten)]
        conn: context::Conn,
        /// The stack file to swap in.
        file: PathBuf,
        /// Only validate and show the difference.
        #[arg(long)]
        dry_run: bool,
        /// Apply without asking.
        #[arg(long, short)]
        yes: bool,
        /// Print JSON instead of text (every field, unabridged).
        #[arg(long)]
        json: bool,
    },
    /// Look for the cause of a problem: ranked hypotheses with evidence and the command
    /// that fixes each. With --id, a stored investigation (one an alarm started).
    Investigate {
        #[command(flatten)]
        conn: context::Conn,
        /// How far back the symptom window starts.
        #[arg(long, default_value = "15m")]
        since: String,
        /// The alarm that shows the symptom.
        #[arg(long)]
        alarm: Option<String>,
        /// Show the stored investigation with this id (see `bellows incidents`).
        #[arg(long, conflicts_with_all = ["since", "alarm"])]
        id: Option<i64>,
        /// Print JSON instead of text (every field, unabridged).
        #[arg(long)]
        json: bool,
    },
    /// Incidents (alarms that went to ALARM, with their investigation) and where their
    /// notifications and issues stand.
    Incidents {
        #[command(flatten)]
        conn: context::Conn,
        /// Print JSON instead of text (every field, unabridged).
        #[arg(long)]
        json: bool,
    },
    /// Print the dashboard's address, with the control token in the link's fragment so
    /// that the page can make changes (the fragment never leaves the browser).
    Dashboard {
        #[command(flatten)]
        conn: context::Conn,
    },
    /// Print `export` lines that point the `aws` CLI and SDKs at this stack's AWS
    /// endpoint: `eval "$(bellows aws-env)"`.
    AwsEnv {
        #[command(flatten)]
        conn: context::Conn,
    },
    /// The audit trail: every change, by whom, before and after (newest first).
    Audit {
        #[command(flatten)]
        conn: context::Conn,
        /// Only changes this recent, e.g. `15m`, `2h`.
        #[arg(long)]
        since: Option<String>,
        /// Only one resource (`group/web`) or a kind of them (`instance/`).
        #[arg(long)]
        target: Option<String>,
        /// At most this many, newest first.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of text (every field, unabridged).
        #[arg(long)]
        json: bool,
    },
    /// Webhook deliveries from the persistent outbox, with their status.
    Deliveries {
        #[command(flatten)]
        conn: context::Conn,
        /// Print JSON instead of text (every field, unabridged).
        #[arg(long)]
        json: bool,
    },
    /// Target health in every target group, like `aws elbv2 describe-target-health`:
    /// state and reason, requests in flight, and under anomaly mitigation whether each
    /// target is anomalous and the share of traffic it gets.
    Targets {
        #[command(flatten)]
        conn: context::Conn,
        /// Only this target group.
        #[arg(long)]
        target_group: Option<String>,
        /// Print JSON instead of text (every field, unabridged).
        #[arg(long)]
        json: bool,
    },
    /// DynamoDB's tables (made through the AWS endpoint): key, billing, items and size.
    Tables {
        #[command(flatten)]
        conn: context::Conn,
        /// Print JSON instead of text (every field, unabridged).
        #[arg(long)]
        json: bool,
    },
    /// Every zone of the stack's groups: available or in an outage, and what runs there.
    Zones {
        #[command(flatten)]
        conn: context::Conn,
        /// Print JSON instead of text (every field, unabridged).
        #[arg(long)]
        json: bool,
    },
    /// Start or end a zone's outage: `fail` kills every instance in the zone at once (as a
    /// power cut would) and keeps launches out of it; `restore` lets them back, and the
    /// groups move instances back into the zone one at a time, launching first.
    Zone {
        #[command(subcommand)]
        change: ZoneChange,
    },
    /// Change a listener's ingress allow-list (its security group) at run time.
    Ingress {
        #[command(subcommand)]
        change: IngressChange,
    },
    /// Run the stack file's smoke checks ([[checks]]) through the running load balancer.
    Check {
        #[command(flatten)]
        conn: context::Conn,
        /// The stack file the running `up` was started with (default: the default stack).
        file: Option<PathBuf>,
    },
    /// Terminate one instance; its group launches a replacement unless
    /// --decrement-desired lowers desired by one (never below min).
    Terminate {
        #[command(flatten)]
        conn: context::Conn,
        /// The instance id, like i-0123456789abcdef0 (see `bellows instances`).
        instance: String,
        /// Lower desired by one instead of launching a replacement.
        #[arg(long)]
        decrement_desired: bool,
    },
    /// Mark an instance healthy or unhealthy (unhealthy gets it replaced), like
    /// set-instance-health.
    SetHealth {
        #[command(flatten)]
        conn: context::Conn,
        /// The instance id (see `bellows instances`).
        instance: String,
        /// The new health: unhealthy gets the instance replaced.
        #[arg(value_parser = ["healthy", "unhealthy"])]
        health: String,
    },
    /// Protect an instance from scale-in, or with --off remove the protection.
    Protect {
        #[command(flatten)]
        conn: context::Conn,
        /// The instance id (see `bellows instances`).
        instance: String,
        /// Remove the protection instead.
        #[arg(long)]
        off: bool,
    },
    /// An instance's standard output and error.
    Logs {
        #[command(flatten)]
        conn: context::Conn,
        /// The instance id (see `bellows instances`).
        instance: String,
        /// Keep printing what the instance writes until it stops.
        #[arg(long, short)]
        follow: bool,
        /// Start this many bytes before the end.
        #[arg(long, value_name = "BYTES")]
        tail: Option<u64>,
        /// Print `{"instance", "log"}` instead of the raw log.
        #[arg(long)]
        json: bool,
    },
    /// Replay a trace of requests per second through the stack's scaling policies on a
    /// virtual clock: SLO, cost and SPEC elasticity metrics in seconds. Several stacks
    /// run on the same trace side by side.
    Sim {
        /// Stack files (their [simulation] section models the service).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Requests per second, one integer a line; gzipped or plain.
        #[arg(long, value_name = "FILE")]
        trace: PathBuf,
        /// Multiply every count by this.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Where the window starts in the trace: seconds, or a duration like 2d.
        #[arg(long, value_name = "AT")]
        start: Option<String>,
        /// How long the window is (default: to the end of the trace).
        #[arg(long, value_name = "LENGTH")]
        duration: Option<String>,
        /// Seed of start-up spread and crashes (instead of [simulation] seed).
        #[arg(long)]
        seed: Option<u64>,
        /// Write the per-second timeline here.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// Write an SVG chart of demand, capacity, desired and in-service here.
        #[arg(long, value_name = "FILE")]
        chart: Option<PathBuf>,
        /// Compare the stacks side by side (implied by several files).
        #[arg(long)]
        compare: bool,
        /// Print JSON instead of text (every field, unabridged).
        #[arg(long)]
        json: bool,
        /// Time the engine alone and print simulated seconds per wall second.
        #[arg(long)]
        bench: bool,
    },
    /// Generate load: open loop (--rate, --ramp, --steps, --trace), closed loop
    /// (--concurrency, the default) or browser tabs over WebSockets (--ws); prints
    /// counts by status and error and latency percentiles from an HDR histogram.
    Load(Box<load::LoadArgs>),
    /// Run a workshop scenario of the seeds (capacity, cpu, ingress, zone-failure) on
    /// a stack of its own or a running `up` (--attach): a narrated timeline and a
    /// verdict; exit 0 on pass, 1 on fail.
    Scenario(scenario::ScenarioArgs),
    /// Write the stack for the engines that run fleets: Kubernetes manifests or AWS
    /// Terraform. Every setting that does not carry over is a warning with the stack
    /// file's file:line:column.
    Export {
        #[command(subcommand)]
        target: ExportTarget,
    },
    /// Write a stack file from what another tool describes: a Terraform directory.
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
    /// Run one of the sample applications (what instances run).
    App {
        #[command(subcommand)]
        app: App,
    },
}

impl Command {
    /// The flags that say where the running stack is, for the commands that talk to one.
    fn conn(&self) -> Option<context::Conn> {
        match self {
            Command::Up { conn, .. }
            | Command::Status { conn, .. }
            | Command::Instances { conn, .. }
            | Command::Activities { conn, .. }
            | Command::Scale { conn, .. }
            | Command::Refresh { conn, .. }
            | Command::Metrics { conn, .. }
            | Command::Alarms { conn, .. }
            | Command::Apply { conn, .. }
            | Command::Investigate { conn, .. }
            | Command::Incidents { conn, .. }
            | Command::Dashboard { conn }
            | Command::AwsEnv { conn }
            | Command::Audit { conn, .. }
            | Command::Deliveries { conn, .. }
            | Command::Targets { conn, .. }
            | Command::Zones { conn, .. }
            | Command::Tables { conn, .. }
            | Command::Check { conn, .. }
            | Command::Terminate { conn, .. }
            | Command::SetHealth { conn, .. }
            | Command::Protect { conn, .. }
            | Command::Logs { conn, .. }
            | Command::Zone {
                change: ZoneChange::Fail { conn, .. } | ZoneChange::Restore { conn, .. },
            }
            | Command::Ingress {
                change: IngressChange::Revoke { conn, .. } | IngressChange::Authorize { conn, .. },
            } => Some(conn.clone()),
            Command::Scenario(args) => Some(args.conn.clone()),
            Command::Validate { .. }
            | Command::Export { .. }
            | Command::Import { .. }
            | Command::Sim { .. }
            | Command::Load(_)
            | Command::App { .. } => None,
        }
    }
}

#[derive(Debug, Subcommand)]
enum ImportSource {
    /// Every .tf file of DIR: variables' defaults, locals and simple expressions are
    /// evaluated; the load balancer, target groups, listeners and rules, launch
    /// templates, auto scaling groups, policies, schedules and alarms become the stack;
    /// every module, data source, resource or argument left out is a warning with its
    /// file:line:column.
    Terraform {
        /// The Terraform directory.
        dir: PathBuf,
        /// Write the stack file here (stdout without it).
        #[arg(short = 'o', long, value_name = "STACK")]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum IngressKind {
    Gateway,
    Eks,
}

#[derive(Debug, Subcommand)]
enum ExportTarget {
    /// Per group a Deployment, PodDisruptionBudget and autoscaler (HPA, KEDA
    /// ScaledObject or Knative Service); per target group a Service; per listener a
    /// Gateway API Gateway and HTTPRoutes. One YAML file each in DIR, or all to stdout.
    Kubernetes {
        /// The stack file.
        file: PathBuf,
        /// The container image every group runs (it must hold the launch command).
        #[arg(long)]
        image: String,
        /// Write one file per group, target group and listener here.
        #[arg(short = 'o', long, value_name = "DIR")]
        output: Option<PathBuf>,
        /// The Gateways' gatewayClassName.
        #[arg(long, default_value = "default", value_name = "NAME")]
        gateway_class: String,
        /// `gateway` (Gateway API), or `eks`: an Ingress per listener with the AWS Load
        /// Balancer Controller's annotations, which keep ALB's behaviour.
        #[arg(long, value_enum, default_value = "gateway")]
        ingress: IngressKind,
        /// Fail (exit 1, nothing written) when any setting does not carry over.
        #[arg(long)]
        strict: bool,
    },
    /// Terraform for AWS (hashicorp/aws): load balancer, listeners and rules, target
    /// groups, security groups, launch template, auto scaling group, policies,
    /// scheduled actions and alarms; VPC, subnets and image id are variables unless
    /// --create-network.
    Terraform {
        /// The stack file.
        file: PathBuf,
        /// Write main.tf here (stdout without it).
        #[arg(short = 'o', long, value_name = "DIR")]
        output: Option<PathBuf>,
        /// Create the network too: a VPC, an internet gateway, one public subnet per
        /// zone (`zone-a` becomes the region's `a` zone) and their route table, instead
        /// of the `vpc_id` and `subnet_ids` variables.
        #[arg(long)]
        create_network: bool,
        /// Fail (exit 1, nothing written) when any value is clamped or dropped.
        #[arg(long)]
        strict: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ZoneChange {
    /// The zone fails: its instances are killed and nothing is launched there.
    Fail {
        /// A zone some group lists (see `bellows zones`).
        zone: String,
        #[command(flatten)]
        conn: context::Conn,
    },
    /// The zone is back: the groups move instances into it one at a time, launching
    /// each before terminating one elsewhere.
    Restore {
        /// A zone in an outage.
        zone: String,
        #[command(flatten)]
        conn: context::Conn,
    },
}

#[derive(Subcommand, Debug)]
enum IngressChange {
    /// Stop accepting connections from CIDR (connections are dropped, never answered).
    Revoke {
        /// The listener, as named in the stack file (see `bellows status`).
        listener: String,
        /// The allow-list entry to remove, like 0.0.0.0/0 or 127.0.0.0/8.
        cidr: String,
        #[command(flatten)]
        conn: context::Conn,
    },
    /// Accept connections from CIDR again.
    Authorize {
        /// The listener, as named in the stack file (see `bellows status`).
        listener: String,
        /// The allow-list entry to add, like 0.0.0.0/0 or 127.0.0.0/8.
        cidr: String,
        #[command(flatten)]
        conn: context::Conn,
    },
}

#[derive(Debug, Subcommand)]
enum App {
    /// GET / returns the seed; POST / {"num": 100} sets it (seeds/002).
    Seed {
        /// Listen here instead of $PRIVATE_IP:$PORT.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// GET / returns the private IP; POST / {"seconds": 60, "workers": 1} burns CPU.
    Stress {
        /// Listen here instead of $PRIVATE_IP:$PORT (what an instance is given).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// The IP tracker of seeds/000-001: who you are, who serves you, everyone connected,
    /// live over a WebSocket (MAX_USERS_PER_INSTANCE, BASE_PATH, HEARTBEAT_SECONDS,
    /// SESSION_TIMEOUT_SECONDS from the environment).
    IpTracker {
        /// Listen here instead of $PRIVATE_IP:$PORT (what an instance is given).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// The candidates API of seeds/004: /gtg, GET/POST /candidate/NAME, /candidates.
    Candidates {
        /// Listen here instead of $PRIVATE_IP:$PORT (what an instance is given).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Answers with what it received (?sleep=MS to wait, /status/CODE, /ws echoes).
    Echo {
        /// Listen here instead of $PRIVATE_IP:$PORT (what an instance is given).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
}

fn main() -> ExitCode {
    // The instance shim is internal and parses its own arguments.
    let mut args = std::env::args_os();
    if args
        .nth(1)
        .is_some_and(|a| a == bellows_node::shim::SUBCOMMAND)
    {
        return ExitCode::from(bellows_node::shim::main(args.collect()) as u8);
    }
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Up {
            worker_threads: Some(n),
            ..
        } => usize::from(*n),
        Command::Up { .. } => std::thread::available_parallelism().map_or(2, |n| n.get()),
        Command::Load(a) => usize::from(a.threads),
        _ => 2,
    };
    // One thread: tokio's single-threaded scheduler, which skips work stealing.
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bellows: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let conn = cli.command.conn().unwrap_or_default().or(cli.conn);
    let owned = context::Context::new(conn.state_dir, conn.control);
    let ctx = &owned;
    let result = rt.block_on(async move {
        match cli.command {
            Command::Up {
                file,
                empty,
                name,
                instance_network,
                no_cgroups,
                ..
            } => {
                let empty = empty.then_some((name, instance_network));
                up::up(ctx, file, empty, !no_cgroups).await
            }
            Command::Validate { files, .. } => Ok(up::validate(&files)),
            Command::Status { json, .. } => commands::status(ctx, json).await,
            Command::Instances {
                group, json, pids, ..
            } => commands::instances(ctx, group, json, pids).await,
            Command::Activities {
                group, limit, json, ..
            } => commands::activities(ctx, group, limit, json).await,
            Command::Scale {
                group,
                desired,
                min,
                max,
                json,
                ..
            } => commands::scale(ctx, &group, min, max, desired, json).await,
            Command::Metrics {
                namespace,
                name,
                dimensions,
                stat,
                period,
                since,
                json,
                ..
            } => {
                commands::metrics(
                    ctx, namespace, name, dimensions, &stat, &period, &since, json,
                )
                .await
            }
            Command::Terminate {
                instance,
                decrement_desired,
                ..
            } => commands::terminate(ctx, &instance, decrement_desired).await,
            Command::SetHealth {
                instance, health, ..
            } => commands::set_health(ctx, &instance, &health).await,
            Command::Check { file, .. } => commands::check(ctx, file).await,
            Command::Alarms { json, .. } => commands::alarms(ctx, json).await,
            Command::Deliveries { json, .. } => commands::deliveries(ctx, json).await,
            Command::Refresh {
                group,
                min_healthy_percentage,
                warmup,
                wait,
                status,
                cancel,
                json,
                ..
            } => {
                let what = if cancel {
                    commands::RefreshAction::Cancel
                } else if status {
                    commands::RefreshAction::Status
                } else {
                    commands::RefreshAction::Start {
                        min_healthy_percentage,
                        warmup,
                    }
                };
                commands::refresh(ctx, &group, what, wait, json).await
            }
            Command::Dashboard { .. } => commands::dashboard(ctx).await,
            Command::AwsEnv { .. } => commands::aws_env(ctx).await,
            Command::Investigate {
                since,
                alarm,
                id,
                json,
                ..
            } => commands::investigate(ctx, &since, alarm, id, json).await,
            Command::Incidents { json, .. } => commands::incidents(ctx, json).await,
            Command::Apply {
                file,
                dry_run,
                yes,
                json,
                ..
            } => commands::apply(ctx, &file, dry_run, yes, json).await,
            Command::Audit {
                since,
                target,
                limit,
                json,
                ..
            } => commands::audit(ctx, since, target, limit, json).await,
            Command::Targets {
                target_group, json, ..
            } => commands::targets(ctx, target_group, json).await,
            Command::Zones { json, .. } => commands::zones(ctx, json).await,
            Command::Tables { json, .. } => commands::tables(ctx, json).await,
            Command::Zone { change, .. } => match change {
                ZoneChange::Fail { zone, .. } => commands::zone(ctx, &zone, false).await,
                ZoneChange::Restore { zone, .. } => commands::zone(ctx, &zone, true).await,
            },
            Command::Ingress { change, .. } => match change {
                IngressChange::Revoke { listener, cidr, .. } => {
                    commands::ingress(ctx, &listener, &cidr, false).await
                }
                IngressChange::Authorize { listener, cidr, .. } => {
                    commands::ingress(ctx, &listener, &cidr, true).await
                }
            },
            Command::Protect { instance, off, .. } => commands::protect(ctx, &instance, !off).await,
            Command::Logs {
                instance,
                follow,
                tail,
                json,
                ..
            } => commands::logs(ctx, &instance, follow, tail, json).await,
            Command::Load(args) => load::load(*args).await,
            Command::Scenario(args) => scenario::run(ctx, args).await,
            Command::App { app, .. } => run_app(app).await,
            Command::Import {
                source: ImportSource::Terraform { dir, output },
            } => export::import_terraform(&dir, output.as_deref()),
            Command::Export { target } => match target {
                ExportTarget::Kubernetes {
                    file,
                    image,
                    output,
                    gateway_class,
                    ingress,
                    strict,
                } => export::kubernetes(
                    export::Target {
                        file,
                        output,
                        strict,
                    },
                    bellows_export::kubernetes::Options {
                        image,
                        gateway_class,
                        eks: matches!(ingress, IngressKind::Eks),
                    },
                ),
                ExportTarget::Terraform {
                    file,
                    output,
                    create_network,
                    strict,
                } => export::terraform(
                    export::Target {
                        file,
                        output,
                        strict,
                    },
                    bellows_export::terraform::Options { create_network },
                ),
            },
            Command::Sim {
                files,
                trace,
                scale,
                start,
                duration,
                seed,
                csv,
                chart,
                compare: _,
                json,
                bench,
                ..
            } => sim::run(sim::Args {
                files,
                trace,
                scale,
                start,
                duration,
                seed,
                csv,
                chart,
                json,
                bench,
            }),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bellows: {e:#}");
            // Unreachable, or refused for want of the token: say how the stack was looked
            // for, which is what goes wrong when a command runs in another directory.
            let lost = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<bellows_node::client::ClientError>(),
                    Some(bellows_node::client::ClientError::Unreachable { .. })
                ) || matches!(
                    c.downcast_ref::<bellows_node::client::ClientError>(),
                    Some(bellows_node::client::ClientError::Api(a)) if a.status == 401
                )
            });
            if lost && let Some(why) = owned.diagnosis() {
                eprintln!("bellows: {why}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run_app(app: App) -> anyhow::Result<ExitCode> {
    match app {
        App::Seed { listen } => {
            let router = bellows_apps::seed::app(&bellows_apps::seed::store_path())?;
            bellows_apps::serve(bellows_apps::listen_addr(listen), router).await?;
        }
        App::IpTracker { listen } => {
            let settings = bellows_apps::ip_tracker::Settings::from_env();
            let redis = std::env::var("REDIS_URL").ok();
            let path = bellows_apps::ip_tracker::store_path();
            let router = bellows_apps::ip_tracker::app(&path, redis.as_deref(), settings).await?;
            bellows_apps::serve(bellows_apps::listen_addr(listen), router).await?;
        }
        App::Candidates { listen } => {
            let redis = std::env::var("REDIS_URL").ok();
            let router = bellows_apps::candidates::app(
                &bellows_apps::candidates::store_path(),
                redis.as_deref(),
            )
            .await?;
            bellows_apps::serve(bellows_apps::listen_addr(listen), router).await?;
        }
        App::Echo { listen } => {
            bellows_apps::serve(bellows_apps::listen_addr(listen), bellows_apps::echo::app())
                .await?;
        }
        App::Stress { listen } => {
            bellows_apps::serve(
                bellows_apps::listen_addr(listen),
                bellows_apps::stress::app(),
            )
            .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes one line to stdout; a closed pipe ends the program with success.
pub fn emit(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("bellows: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests;
