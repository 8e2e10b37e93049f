//! `bellows sim`: the shell around the core's simulator. It reads the stack files and
//! the trace (plain or gzipped, one count a line), runs each stack on the same window,
//! shows a progress bar on long runs, prints the summary side by side, and writes the
//! per-second timeline CSV and an SVG chart of demand, capacity, desired and in-service.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use bellows_core::Duration;
use bellows_core::sim::{self, Options, Second, Summary};
use bellows_core::stack::Stack;
use bellows_load::chart::{self, Panel, Series, XAxis};

use crate::table::Table;

/// What `bellows sim` was asked.
#[derive(Debug)]
pub struct Args {
    pub files: Vec<PathBuf>,
    pub trace: PathBuf,
    pub scale: f64,
    pub start: Option<String>,
    pub duration: Option<String>,
    pub seed: Option<u64>,
    pub csv: Option<PathBuf>,
    pub chart: Option<PathBuf>,
    pub json: bool,
    pub bench: bool,
}

/// Points across the chart.
const CHART_POINTS: usize = 1000;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !(args.scale > 0.0 && args.scale.is_finite()) {
        bail!("--scale must be a positive number, not {}", args.scale);
    }
    let mut stacks = Vec::new();
    for f in &args.files {
        match crate::stack_file::load_or_default(Some(f)) {
            Ok(s) => stacks.push((label(f, &args.files), s)),
            Err(code) => return Ok(code),
        }
    }
    let trace = read_trace(&args.trace)?;
    let start = seconds_arg("--start", args.start.as_deref())?.unwrap_or(0);
    let len = trace.len() as u64;
    if start >= len {
        bail!(
            "--start {start}s is past the end of the trace ({len} seconds in {})",
            args.trace.display()
        );
    }
    let end = match seconds_arg("--duration", args.duration.as_deref())? {
        Some(0) => bail!("--duration must be above zero"),
        Some(d) => (start + d).min(len),
        None => len,
    };
    let window = &trace[start as usize..end as usize];
    // The virtual clock runs from the epoch at the trace's second 0; named zones'
    // offsets over the window come from the system's database, as live.
    let zones = bellows_node::zones::table(
        stacks.iter().map(|(_, s)| s),
        bellows_core::Time::from_millis(start * 1000),
        bellows_core::Time::from_millis(end * 1000),
    );
    let opts = Options {
        scale: args.scale,
        seed: args.seed,
        start,
        zones,
    };

    if args.bench {
        return bench(&stacks, window, &opts);
    }

    let mut csv = match &args.csv {
        Some(p) => {
            let f = std::fs::File::create(p)
                .with_context(|| format!("cannot create {}", p.display()))?;
            let mut w = BufWriter::new(f);
            writeln!(
                w,
                "stack,t,requests,served,rejected,p99_ms,cpu,demand,desired,in_service,pending,billed,capacity,over_slo"
            )?;
            Some(w)
        }
        None => None,
    };
    let per_point = window.len().div_ceil(CHART_POINTS).max(1);
    let progress = window.len() > 200_000 && std::io::stderr().is_terminal() && !args.json;
    let mut results: Vec<(String, Summary, Chart)> = Vec::new();
    for (name, stack) in &stacks {
        let mut chart = Chart::new(per_point);
        let mut failed: Option<std::io::Error> = None;
        let total = window.len() as u64;
        let summary = sim::run(stack, window, &opts, &mut |row: &Second| {
            chart.add(row);
            if let Some(w) = csv.as_mut()
                && failed.is_none()
                && let Err(e) = csv_row(w, name, row)
            {
                failed = Some(e);
            }
            let done = row.t - start;
            if progress && done.is_multiple_of(1 << 16) {
                bar(name, done, total);
            }
        })?;
        if progress {
            bar(name, total, total);
            eprintln!();
        }
        if let Some(e) = failed {
            bail!("cannot write the timeline CSV: {e}");
        }
        results.push((name.clone(), summary, chart));
    }
    if let Some(mut w) = csv {
        w.flush().context("cannot write the timeline CSV")?;
    }
    if let Some(p) = &args.chart {
        let svg = svg(&results, per_point, &args, start);
        std::fs::write(p, svg).with_context(|| format!("cannot write {}", p.display()))?;
    }
    if args.json {
        let out: Vec<serde_json::Value> = results
            .iter()
            .map(|(name, s, _)| serde_json::json!({ "stack": name, "summary": s }))
            .collect();
        out!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_summary(&results, &stacks, &args, start, end);
    }
    Ok(ExitCode::SUCCESS)
}

/// A stack's name in tables: its file's stem, or its path when stems clash.
fn label(f: &Path, all: &[PathBuf]) -> String {
    let stem = |p: &Path| {
        p.file_stem().map_or_else(
            || p.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        )
    };
    let mine = stem(f);
    if all.iter().filter(|o| stem(o) == mine).count() > 1 {
        f.display().to_string()
    } else {
        mine
    }
}

/// `--start` and `--duration`: a number of seconds or a duration like `2d` or `90m`.
fn seconds_arg(flag: &str, v: Option<&str>) -> anyhow::Result<Option<u64>> {
    let Some(v) = v else { return Ok(None) };
    if let Ok(n) = v.parse::<u64>() {
        return Ok(Some(n));
    }
    match v.parse::<Duration>() {
        Ok(d) => Ok(Some(d.as_millis() / 1000)),
        Err(e) => bail!("{flag}: {e}"),
    }
}

/// Reads a trace (`trace::counts`): requests a second, rounded to whole requests.
pub fn read_trace(path: &Path) -> anyhow::Result<Vec<u32>> {
    let counts = crate::trace::counts(path, 0, usize::MAX)?;
    if counts.is_empty() {
        bail!("{}: the trace has no seconds", path.display());
    }
    Ok(counts
        .iter()
        .map(|c| c.round().min(f64::from(u32::MAX)) as u32)
        .collect())
}

fn csv_row(w: &mut impl Write, stack: &str, r: &Second) -> std::io::Result<()> {
    let p99 = if r.p99.is_finite() {
        format!("{:.1}", r.p99 * 1000.0)
    } else {
        "inf".to_owned()
    };
    writeln!(
        w,
        "{stack},{},{:.2},{:.2},{:.2},{p99},{:.1},{},{},{},{},{},{:.1},{}",
        r.t,
        r.requests,
        r.served,
        r.rejected,
        r.cpu,
        r.demand,
        r.desired,
        r.in_service,
        r.pending,
        r.billed,
        r.capacity,
        u8::from(r.over_slo)
    )
}

fn bar(name: &str, done: u64, total: u64) {
    let width = 40;
    let filled = (done * width / total.max(1)) as usize;
    eprint!(
        "\r{name}: [{}{}] {:>3}%",
        "#".repeat(filled),
        " ".repeat(width as usize - filled),
        done * 100 / total.max(1)
    );
}

/// Runs the engine alone (no CSV, no chart) and reports simulated seconds per wall
/// second.
fn bench(stacks: &[(String, Stack)], window: &[u32], opts: &Options) -> anyhow::Result<ExitCode> {
    for (name, stack) in stacks {
        let started = crate::clock::now();
        let summary = sim::run(stack, window, opts, &mut |_| {})?;
        let wall = crate::clock::since(started).as_secs_f64();
        out!(
            "{name}: {} simulated seconds in {:.3} s wall: {:.0} simulated s per wall s ({} actions)",
            summary.seconds,
            wall,
            summary.seconds as f64 / wall.max(1e-9),
            summary.actions.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(
    results: &[(String, Summary, Chart)],
    stacks: &[(String, Stack)],
    args: &Args,
    start: u64,
    end: u64,
) {
    out!(
        "trace {} seconds {start}..{end} ({}) x{}",
        args.trace.display(),
        Duration::from_secs(end - start),
        args.scale
    );
    for (name, stack) in stacks {
        let s = &stack.simulation;
        out!(
            "{name}: capacity {} req/s per instance, service time {}, SLO p99 {}, ${}/instance-hour",
            s.capacity,
            s.service_time,
            s.slo,
            s.price_per_hour
        );
    }
    let mut header = vec![""];
    header.extend(results.iter().map(|(n, ..)| n.as_str()));
    let mut t = Table::new(&header);
    let rows: [Row; 15] = [
        ("requests", |s| format!("{:.0}", s.requests)),
        ("served", |s| format!("{:.0}", s.served)),
        ("rejected", |s| {
            format!("{:.0} ({:.3}%)", s.rejected, pct(s.rejected, s.requests))
        }),
        ("seconds over SLO", |s| {
            format!(
                "{} ({:.2}%)",
                s.seconds_over_slo,
                pct(s.seconds_over_slo as f64, s.seconds as f64)
            )
        }),
        ("p99 latency", |s| format!("{:.0} ms", s.p99 * 1000.0)),
        ("instance-hours", |s| format!("{:.1}", s.instance_hours)),
        ("cost", |s| format!("${:.2}", s.cost)),
        ("max in service", |s| s.max_in_service.to_string()),
        ("scaling actions", |s| s.actions.len().to_string()),
        ("launches", |s| s.launches.to_string()),
        ("under-provisioning accuracy", |s| {
            format!("{:.3}", s.elasticity.under_accuracy)
        }),
        ("over-provisioning accuracy", |s| {
            format!("{:.3}", s.elasticity.over_accuracy)
        }),
        ("under-provisioning timeshare", |s| {
            format!("{:.1}%", s.elasticity.under_timeshare * 100.0)
        }),
        ("over-provisioning timeshare", |s| {
            format!("{:.1}%", s.elasticity.over_timeshare * 100.0)
        }),
        ("jitter (per minute)", |s| {
            format!("{:.3}", s.elasticity.jitter)
        }),
    ];
    for (label, f) in rows {
        let mut cells = vec![label.to_owned()];
        cells.extend(results.iter().map(|(_, s, _)| f(s)));
        t.row(cells);
    }
    t.print();
}

/// A line of the summary: its label and how to show a run's figure.
type Row = (&'static str, fn(&Summary) -> String);

fn pct(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        part / whole * 100.0
    } else {
        0.0
    }
}

/// Per-point means of what the chart draws.
#[derive(Debug)]
struct Chart {
    per_point: usize,
    n: usize,
    acc: [f64; 5],
    /// requests, capacity, demand, desired, in service.
    points: Vec<[f64; 5]>,
}

impl Chart {
    fn new(per_point: usize) -> Chart {
        Chart {
            per_point,
            n: 0,
            acc: [0.0; 5],
            points: Vec::with_capacity(CHART_POINTS + 1),
        }
    }

    fn add(&mut self, r: &Second) {
        let v = [
            r.requests,
            r.capacity,
            f64::from(r.demand),
            f64::from(r.desired),
            f64::from(r.in_service),
        ];
        for (a, x) in self.acc.iter_mut().zip(v) {
            *a += x;
        }
        self.n += 1;
        if self.n == self.per_point {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.n > 0 {
            let n = self.n as f64;
            self.points.push(self.acc.map(|a| a / n));
            self.acc = [0.0; 5];
            self.n = 0;
        }
    }
}

const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
];

/// Two panels on the same time axis (minutes, hours or days): requests/s with each
/// stack's capacity, then instances (demand, and each stack's desired and in-service),
/// stacks overlaid; drawn by the load generator's chart module, bellows' one.
fn svg(results: &[(String, Summary, Chart)], per_point: usize, args: &Args, start: u64) -> String {
    let results: Vec<(&String, Vec<[f64; 5]>)> = results
        .iter()
        .map(|(n, _, c)| {
            let mut points = c.points.clone();
            if c.n > 0 {
                let n = c.n as f64;
                points.push(c.acc.map(|a| a / n));
            }
            (n, points)
        })
        .filter(|(_, p)| !p.is_empty())
        .collect();
    let title = format!(
        "bellows sim: {} x{} from {start}s",
        args.trace
            .file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
        args.scale
    );
    let len = results.first().map_or(0, |(_, p)| p.len());
    let seconds = (len * per_point) as f64;
    // Time ticks in minutes, hours or days, at most about ten.
    let (unit, name) = if seconds > 4.0 * 86400.0 {
        (86400.0, "d")
    } else if seconds > 4.0 * 3600.0 {
        (3600.0, "h")
    } else {
        (60.0, "min")
    };
    let count = (seconds / unit).floor().max(1.0);
    let step = (count / 10.0).ceil().max(1.0);
    let ticks: Vec<(f64, String)> = (0..)
        .map(|k| f64::from(k) * step)
        .take_while(|k| *k <= count)
        .map(|k| (k * unit, format!("{k}{name}")))
        .collect();
    let axis = XAxis {
        label: "time".into(),
        max: seconds.max(1.0),
        ticks,
    };
    let series = |name: String, color: &'static str, pts: &[[f64; 5]], idx: usize, dashed| Series {
        name,
        color,
        points: pts
            .iter()
            .enumerate()
            .map(|(i, v)| ((i * per_point) as f64, v[idx]))
            .collect(),
        step: false,
        dashed,
    };
    let mut requests = Vec::new();
    let mut instances = Vec::new();
    if let Some((_, first)) = results.first() {
        requests.push(series("demand".into(), "#444", first, 0, false));
        instances.push(series("demand".into(), "#444", first, 2, false));
    }
    for (i, (name, pts)) in results.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        requests.push(series(format!("{name}: capacity"), c, pts, 1, false));
        instances.push(series(format!("{name}: in service"), c, pts, 4, false));
        instances.push(series(format!("{name}: desired"), c, pts, 3, true));
    }
    let panels = [
        Panel {
            title: "requests per second".into(),
            series: requests,
            x_axis: Some(axis.clone()),
        },
        Panel {
            title: "instances".into(),
            series: instances,
            x_axis: Some(axis),
        },
    ];
    chart::svg(&title, "time", &panels)
}
