//! `bellows load URL`: the command-line face of `bellows-load`.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use bellows_load::http::Url;
use bellows_load::schedule::{self, Plan};
use bellows_load::ws::WsConfig;
use bellows_load::{Config, Load};

/// How often the progress line is printed when standard error is not a terminal.
const PLAIN_PROGRESS_SECS: u64 = 2;

/// The flags of `bellows load`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("shape").args(["rate", "ramp", "steps", "trace", "concurrency", "ws"])))]
pub struct LoadArgs {
    /// The target, http://HOST[:PORT]/PATH.
    pub url: String,
    /// Open loop at a fixed rate (requests per second).
    #[arg(long, value_name = "PER_SECOND")]
    pub rate: Option<f64>,
    /// Open loop rising (or falling) linearly: FROM:TO:DURATION, like 0:2000:60s.
    #[arg(long, value_name = "FROM:TO:DURATION")]
    pub ramp: Option<String>,
    /// Open loop in steps: RATE:DURATION,..., like 100:10s,500:20s,100:10s.
    #[arg(long, value_name = "STEPS")]
    pub steps: Option<String>,
    /// Open loop from a trace file: one count per line, line N = second N (gzipped is
    /// fine), like traces/ in the repository.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Multiply the trace's counts by this.
    #[arg(long, default_value_t = 1.0, requires = "trace")]
    pub scale: f64,
    /// Play the trace this many times faster (a trace second lasts 1/SPEED s).
    #[arg(long, default_value_t = 1.0, requires = "trace")]
    pub speed: f64,
    /// Start this many seconds into the trace.
    #[arg(long, default_value_t = 0, requires = "trace", value_name = "SECONDS")]
    pub trace_start: usize,
    /// Closed loop: N connections, each sending its next request when answered
    /// (the default, with 10).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// WebSocket mode: N clients that open the page and its socket and send heartbeats,
    /// like browser tabs of the IP tracker.
    #[arg(long, value_name = "N")]
    pub ws: Option<usize>,
    /// WebSocket mode: the socket's path (default: the page's path + "ws").
    #[arg(long, value_name = "PATH", requires = "ws")]
    pub ws_path: Option<String>,
    /// WebSocket mode: heartbeat interval.
    #[arg(long, default_value = "30s", requires = "ws")]
    pub heartbeat: String,
    /// WebSocket mode: pause before a client turned away (503) tries again.
    #[arg(long, default_value = "5s", requires = "ws")]
    pub retry: String,
    /// WebSocket mode: start the clients evenly over this long.
    #[arg(long, default_value = "1s", requires = "ws")]
    pub spread: String,
    /// The request method.
    #[arg(long, short = 'X', default_value = "GET")]
    pub method: String,
    /// A request header, "Name: value" (repeatable). An empty value ("User-Agent:")
    /// sends no such header, the default ones (Host, User-Agent) included.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// The request body.
    #[arg(long, conflicts_with = "body_file")]
    pub body: Option<String>,
    /// The request body, from a file.
    #[arg(long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,
    /// How long to run, like 30s or 2m (default 10s, or a ramp's, steps' or trace's own
    /// length).
    #[arg(long, short = 'd')]
    pub duration: Option<String>,
    /// Stop after this many requests (exact; not with --ws, which runs for --duration).
    #[arg(long, short = 'n')]
    pub requests: Option<u64>,
    /// A new connection for every request (Connection: close).
    #[arg(long)]
    pub no_keepalive: bool,
    /// One request's time limit, connecting included.
    #[arg(long, default_value = "10s")]
    pub timeout: String,
    /// Open loop: the most connections at once (later requests wait, and the wait
    /// counts in their latency).
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_connections: usize,
    /// Threads (1 is like wrk -t1): an event loop runs on each, with its share of the
    /// connections (closed loop) or of the requests (open loop).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: u16,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write one row per second as CSV.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Draw an SVG chart: the per-second rows, and the run's latency by percentile.
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<PathBuf>,
    /// No progress line (a live one on a terminal, else one every 2 s).
    #[arg(long, short)]
    pub quiet: bool,
}

fn seconds(flag: &str, s: &str) -> anyhow::Result<Duration> {
    let v = schedule::parse_duration(s).with_context(|| format!("--{flag}"))?;
    Ok(Duration::from_secs_f64(v))
}

fn read_trace(path: &std::path::Path, start: usize, limit: usize) -> anyhow::Result<Vec<f64>> {
    let counts = crate::trace::counts(path, start, limit)?;
    if counts.is_empty() {
        anyhow::bail!(
            "the trace {} has no counts past second {start}",
            path.display()
        );
    }
    Ok(counts)
}

/// Turns the flags into a run's configuration; every bad flag is an error, not a panic.
pub fn config(a: &LoadArgs) -> anyhow::Result<Config> {
    let url = Url::parse(&a.url)?;
    let duration = a
        .duration
        .as_deref()
        .map(|d| seconds("duration", d))
        .transpose()?;
    if duration.is_some_and(|d| d.is_zero()) {
        anyhow::bail!("--duration must be more than zero");
    }
    if a.requests == Some(0) {
        anyhow::bail!("--requests must be at least 1");
    }
    let positive = |flag: &str, v: f64| -> anyhow::Result<f64> {
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            anyhow::bail!("--{flag} must be a number above zero, not {v}")
        }
    };
    let default_secs = duration.map_or(10.0, |d| d.as_secs_f64());
    let load = if let Some(rate) = a.rate {
        let rate = positive("rate", rate)?;
        // With only a request count, run as long as that takes at the rate.
        let secs = match (duration, a.requests) {
            (None, Some(n)) => n as f64 / rate,
            _ => default_secs,
        };
        Load::Open {
            plan: Plan::fixed(rate, secs),
            what: format!("fixed {rate}/s"),
        }
    } else if let Some(r) = &a.ramp {
        Load::Open {
            plan: schedule::parse_ramp(r)?,
            what: format!("ramp {r}"),
        }
    } else if let Some(s) = &a.steps {
        Load::Open {
            plan: schedule::parse_steps(s)?,
            what: format!("steps {s}"),
        }
    } else if let Some(path) = &a.trace {
        let speed = positive("speed", a.speed)?;
        let scale = positive("scale", a.scale)?;
        let limit = duration.map_or(usize::MAX, |d| (d.as_secs_f64() * speed).ceil() as usize);
        let counts = read_trace(path, a.trace_start, limit)?;
        Load::Open {
            plan: Plan::trace(&counts, scale, speed),
            what: format!(
                "trace {} x{scale} at {speed}x speed",
                path.file_name().map_or_else(
                    || path.display().to_string(),
                    |f| f.to_string_lossy().into_owned()
                )
            ),
        }
    } else if let Some(n) = a.ws {
        if n == 0 {
            anyhow::bail!("--ws must be at least 1");
        }
        Load::WebSocket(WsConfig {
            clients: n,
            socket_path: a
                .ws_path
                .clone()
                .unwrap_or_else(|| WsConfig::socket_for(&url.path)),
            heartbeat: seconds("heartbeat", &a.heartbeat)?.max(Duration::from_millis(10)),
            retry: seconds("retry", &a.retry)?,
            spread: seconds("spread", &a.spread)?,
        })
    } else {
        let connections = a.concurrency.unwrap_or(10);
        if connections == 0 {
            anyhow::bail!("--concurrency must be at least 1");
        }
        Load::Closed { connections }
    };
    let mut headers = Vec::new();
    for h in &a.headers {
        let Some((k, v)) = h.split_once(':') else {
            anyhow::bail!("--header `{h}`: expected \"Name: value\"");
        };
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let body = match (&a.body, &a.body_file) {
        (Some(b), _) => b.clone().into_bytes(),
        (None, Some(f)) => {
            std::fs::read(f).with_context(|| format!("cannot read the body {}", f.display()))?
        }
        (None, None) => Vec::new(),
    };
    let duration = match (&load, duration, a.requests) {
        // A WebSocket run with no end runs 10 s; a closed loop too, unless counted.
        (Load::WebSocket(_), None, _) => Some(Duration::from_secs(10)),
        (Load::Closed { .. }, None, None) => Some(Duration::from_secs(10)),
        (_, d, _) => d,
    };
    Ok(Config {
        url,
        method: a.method.clone(),
        headers,
        body,
        keep_alive: !a.no_keepalive,
        load,
        duration,
        requests: a.requests,
        timeout: seconds("timeout", &a.timeout)?,
        max_connections: a.max_connections,
    })
}

pub async fn load(a: LoadArgs) -> anyhow::Result<ExitCode> {
    let cfg = config(&a)?;
    let running = bellows_load::start(cfg).await?;
    // On a terminal, one line rewritten every second; otherwise (a log, a pipe) a plain
    // line every few seconds, which reads well in a CI log.
    let tty = std::io::stderr().is_terminal();
    let progress = (!a.quiet).then(|| {
        let rec = running.recorder().clone();
        let started = crate::clock::now();
        let every = Duration::from_secs(if tty { 1 } else { PLAIN_PROGRESS_SECS });
        tokio::spawn(async move {
            let mut tick = crate::clock::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let line = bellows_load::progress_line(
                    &mut rec.lock().expect("lock"),
                    crate::clock::since(started),
                );
                if tty {
                    eprint!("\r\x1b[2K{line}");
                } else {
                    eprintln!("{line}");
                }
            }
        })
    });
    // Ctrl-C stops the run and still prints what was measured.
    let stopper = running.stopper();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stopper.stop();
        }
    });
    let report = running.finish().await;
    ctrl_c.abort();
    if let Some(p) = progress {
        p.abort();
        if tty {
            eprint!("\r\x1b[2K");
        }
    }
    if a.json {
        out!("{}", serde_json::to_string_pretty(&report.summary)?);
    } else {
        for line in report.summary.text() {
            out!("{line}");
        }
    }
    if let Some(path) = &a.csv {
        std::fs::write(path, bellows_load::record::csv(&report.seconds))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &a.chart {
        let title = format!(
            "bellows load {} ({})",
            report.summary.url, report.summary.mode
        );
        std::fs::write(path, bellows_load::chart::load_chart(&title, &report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
