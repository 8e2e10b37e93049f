//! Line charts as hand-written SVG: panels side by side, each with its own y axis, one
//! x axis of seconds (or a panel's own). The one chart writer of bellows: used by
//! `bellows load --chart`, the scenarios and `bellows sim --chart`.

use std::fmt::Write as _;

/// One line on a panel.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub color: &'static str,
    /// (x, y) in order of x.
    pub points: Vec<(f64, f64)>,
    /// Draw as steps (a capacity), not straight segments (a rate).
    pub step: bool,
    /// Draw dashed, to tell a wanted value (desired) from what is (in service).
    pub dashed: bool,
}

#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
    /// An x axis of the panel's own; `None`: the chart's shared axis of seconds.
    pub x_axis: Option<XAxis>,
}

/// A panel's own x axis: from 0 to `max`, with labelled ticks.
#[derive(Debug, Clone)]
pub struct XAxis {
    pub label: String,
    pub max: f64,
    pub ticks: Vec<(f64, String)>,
}

const W: f64 = 460.0;
const H: f64 = 300.0;
const LEFT: f64 = 56.0;
const TOP: f64 = 56.0;
const PLOT_W: f64 = W - LEFT - 20.0;
const PLOT_H: f64 = H - TOP - 44.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round step for `top` divided in about five.
fn tick_step(top: f64) -> f64 {
    let raw = (top / 5.0).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

fn num(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

/// The chart: `title` over the panels, `xlabel` under each.
pub fn svg(title: &str, xlabel: &str, panels: &[Panel]) -> String {
    let width = W * panels.len().max(1) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="12" y="18" font-size="14">{}</text>"#,
        esc(title)
    );
    let x_max = panels
        .iter()
        .filter(|p| p.x_axis.is_none())
        .flat_map(|p| p.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)))
        .fold(1.0f64, f64::max);
    let x_step = tick_step(x_max);
    let seconds: Vec<(f64, String)> = (0..)
        .map(|k| f64::from(k) * x_step)
        .take_while(|x| *x <= x_max + 1e-9)
        .map(|x| (x, num(x)))
        .collect();
    for (i, p) in panels.iter().enumerate() {
        let ox = i as f64 * W + LEFT;
        let y_top = p
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0f64, f64::max);
        let y_step = tick_step(if y_top > 0.0 { y_top * 1.05 } else { 1.0 });
        let y_max = (y_top * 1.05 / y_step).ceil().max(1.0) * y_step;
        let (x_max, ticks, xlabel) = match &p.x_axis {
            Some(a) => (a.max.max(1e-9), &a.ticks, a.label.as_str()),
            None => (x_max, &seconds, xlabel),
        };
        let px = |x: f64| ox + x / x_max * PLOT_W;
        let py = |y: f64| TOP + PLOT_H - y / y_max * PLOT_H;
        let _ = writeln!(
            out,
            r#"<text x="{ox}" y="40" font-size="12">{}</text>"#,
            esc(&p.title)
        );
        // Grid and axes.
        let mut y = 0.0;
        while y <= y_max + 1e-9 {
            let _ = writeln!(
                out,
                r##"<line x1="{ox}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#e6e6e6"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                ox + PLOT_W,
                py(y),
                py(y),
                ox - 4.0,
                py(y) + 4.0,
                num(y)
            );
            y += y_step;
        }
        for (x, label) in ticks {
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                px(*x),
                TOP + PLOT_H + 14.0,
                esc(label)
            );
        }
        let _ = writeln!(
            out,
            r##"<rect x="{ox}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="none" stroke="#999"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            ox + PLOT_W / 2.0,
            TOP + PLOT_H + 30.0,
            esc(xlabel)
        );
        // Lines, and a legend along the top of the plot.
        let (mut lx, mut ly) = (ox + 6.0, TOP);
        for s in &p.series {
            let mut d = String::new();
            let mut prev: Option<(f64, f64)> = None;
            for &(x, y) in &s.points {
                match prev {
                    None => {
                        let _ = write!(d, "M{:.1},{:.1}", px(x), py(y));
                    }
                    Some((_, py0)) if s.step => {
                        let _ = write!(d, " L{:.1},{:.1} L{:.1},{:.1}", px(x), py0, px(x), py(y));
                    }
                    Some(_) => {
                        let _ = write!(d, " L{:.1},{:.1}", px(x), py(y));
                    }
                }
                prev = Some((x, py(y)));
            }
            let dash = if s.dashed {
                r#" stroke-dasharray="4 3""#
            } else {
                ""
            };
            if !d.is_empty() {
                let _ = writeln!(
                    out,
                    r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.6"{dash}/>"#,
                    s.color
                );
            }
            // The legend wraps to another row rather than run past the plot.
            let entry = 20.0 + 6.5 * s.name.chars().count() as f64;
            if lx > ox + 6.0 && lx + entry > ox + PLOT_W {
                lx = ox + 6.0;
                ly += 14.0;
            }
            let _ = writeln!(
                out,
                r#"<rect x="{lx:.1}" y="{:.1}" width="10" height="3" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                ly + 8.0,
                s.color,
                lx + 13.0,
                ly + 12.0,
                esc(&s.name)
            );
            lx += entry;
        }
    }
    out.push_str("</svg>\n");
    out
}

/// The load generator's chart: throughput by outcome and latency, second by second,
/// and the run's latency by percentile.
pub fn load_chart(title: &str, report: &crate::Report) -> String {
    let rows = &report.seconds;
    let pts = |f: &dyn Fn(&crate::record::Second) -> f64| -> Vec<(f64, f64)> {
        rows.iter().map(|r| (r.second as f64, f(r))).collect()
    };
    let mut throughput = vec![
        Series {
            name: "2xx/3xx per s".into(),
            color: "#2b8a3e",
            points: pts(&|r| r.ok as f64),
            step: false,
            dashed: false,
        },
        Series {
            name: "4xx/5xx per s".into(),
            color: "#d9480f",
            points: pts(&|r| (r.status_4xx + r.status_5xx) as f64),
            step: false,
            dashed: false,
        },
        Series {
            name: "errors per s".into(),
            color: "#862e9c",
            points: pts(&|r| r.errors as f64),
            step: false,
            dashed: false,
        },
    ];
    if rows.iter().any(|r| r.connected > 0) {
        throughput.push(Series {
            name: "ws connected".into(),
            color: "#1c7ed6",
            points: pts(&|r| r.connected as f64),
            step: true,
            dashed: false,
        });
    }
    let latency = vec![
        Series {
            name: "p50 ms".into(),
            color: "#74c0fc",
            points: pts(&|r| r.p50_ms),
            step: false,
            dashed: false,
        },
        Series {
            name: "p99 ms".into(),
            color: "#1864ab",
            points: pts(&|r| r.p99_ms),
            step: false,
            dashed: false,
        },
    ];
    let mut panels = vec![
        Panel {
            title: "responses per second".into(),
            series: throughput,
            x_axis: None,
        },
        Panel {
            title: "latency per second (ms)".into(),
            series: latency,
            x_axis: None,
        },
    ];
    panels.extend(percentile_panel(&report.summary));
    svg(title, "seconds", &panels)
}

/// Latency by percentile over the whole run, on an axis of nines (p90, p99, p99.9 at
/// even steps), as HdrHistogram plots it: where the tail starts, and how far it goes.
fn percentile_panel(summary: &crate::Summary) -> Option<Panel> {
    let nines = |p: f64| -(1.0 - p / 100.0).max(1e-12).log10();
    let points: Vec<(f64, f64)> = summary
        .latency_percentiles_ms
        .iter()
        .map(|[p, ms]| (nines(*p), *ms))
        .collect();
    if points.len() < 2 {
        return None;
    }
    let most = points.last()?.0.max(1.0);
    // The nines are computed in floating point: 2 comes out as 1.9999999999999996.
    let ticks = (0..=(most + 1e-6).floor() as u32)
        .map(|k| {
            let label = match k {
                0 => "p0".to_owned(),
                1 => "p90".to_owned(),
                k => format!(
                    "p99{}",
                    if k > 2 {
                        format!(".{}", "9".repeat(k as usize - 2))
                    } else {
                        String::new()
                    }
                ),
            };
            (f64::from(k), label)
        })
        .collect();
    Some(Panel {
        title: if summary.corrected_for_coordinated_omission {
            "latency by percentile, whole run (ms, corrected for coordinated omission)".into()
        } else {
            "latency by percentile, whole run (ms)".into()
        },
        series: vec![Series {
            name: "latency ms".into(),
            color: "#1864ab",
            points,
            step: false,
            dashed: false,
        }],
        x_axis: Some(XAxis {
            label: "percentile".into(),
            max: most,
            ticks,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_chart_has_latency_by_percentile_on_an_axis_of_nines() {
        let mut rec = crate::record::Recorder::new();
        for k in 1..=2_000u64 {
            let outcome = crate::record::Outcome::Status(200);
            rec.sent_and_record(
                std::time::Duration::from_millis(k),
                std::time::Duration::from_micros(k * 10),
                outcome,
            );
        }
        let summary = crate::Summary {
            url: "http://x/".into(),
            mode: "closed loop".into(),
            elapsed_s: 2.0,
            sent: 2_000,
            completed: 2_000,
            rate: 1_000.0,
            requested_rate: None,
            statuses: Default::default(),
            errors: Default::default(),
            latency_ms: crate::record::Latency::of(&rec),
            latency_percentiles_ms: crate::record::percentiles(&rec.latency),
            corrected_for_coordinated_omission: false,
            websocket: None,
        };
        let report = crate::Report {
            summary,
            seconds: rec.seconds.clone(),
        };
        let s = load_chart("run", &report);
        assert!(s.contains("latency by percentile, whole run (ms)"), "{s}");
        // 2,000 requests reach three nines, not four.
        for tick in [">p0<", ">p90<", ">p99<", ">p99.9<"] {
            assert!(s.contains(tick), "{tick} in {s}");
        }
        assert!(!s.contains(">p99.99<"));
        assert_eq!(s.matches("<path").count(), 3 + 2 + 1);
    }

    #[test]
    fn a_chart_has_a_path_per_series_and_escapes_text() {
        let s = svg(
            "a <b> & c",
            "seconds",
            &[Panel {
                title: "p".into(),
                series: vec![Series {
                    name: "desired".into(),
                    color: "#000",
                    points: vec![(0.0, 1.0), (1.0, 3.0), (2.0, 3.0)],
                    step: true,
                    dashed: false,
                }],
                x_axis: None,
            }],
        );
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("a &lt;b&gt; &amp; c"));
        assert_eq!(s.matches("<path").count(), 1);
        assert!(s.contains(">desired</text>"));
        assert_eq!(tick_step(47.0), 10.0);
        assert_eq!(tick_step(3.0), 1.0);
    }
}
