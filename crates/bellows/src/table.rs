//! Plain text tables for the terminal: columns padded to their widest cell.

use bellows_core::Duration;

pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        for line in self.lines(None, &[]) {
            out!("{line}");
        }
    }

    /// Prints the table within `width` columns (the terminal's, see `terminal_width`)
    /// by eliding the cells of the `elastic` columns, widest first, with `…`; whether
    /// anything was cut.
    pub fn print_fit(&self, width: Option<usize>, elastic: &[usize]) -> bool {
        let lines = self.lines(width, elastic);
        let cut = lines.iter().any(|l| l.contains('…'));
        for line in lines {
            out!("{line}");
        }
        cut
    }

    fn lines(&self, width: Option<usize>, elastic: &[usize]) -> Vec<String> {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        if let Some(limit) = width {
            // Narrow the widest elastic column a character at a time, down to a floor
            // that still shows the start of each value.
            const FLOOR: usize = 5;
            let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * w.len().saturating_sub(1);
            while total(&widths) > limit {
                let Some(&c) = elastic
                    .iter()
                    .filter(|c| widths.get(**c).is_some_and(|w| *w > FLOOR))
                    .max_by_key(|c| widths[**c])
                else {
                    break;
                };
                widths[c] -= 1;
            }
        }
        let mut out = Vec::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                let cell = elide(cell, widths[c]);
                if c + 1 == row.len() {
                    line += &cell;
                } else {
                    line += &format!("{cell:<w$}  ", w = widths[c]);
                }
            }
            out.push(line.trim_end().to_owned());
        }
        out
    }
}

/// `s` in at most `width` characters, its end replaced by `…` when it is longer.
fn elide(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The terminal's width for tables: `COLUMNS` when set, else the terminal's own size
/// when standard output is one (asked of `stty`, as the binary has no unsafe code for
/// the ioctl), else none (a pipe or a file gets every value whole).
pub fn terminal_width() -> Option<usize> {
    use std::io::IsTerminal;
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
    {
        return Some(n);
    }
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let tty = std::fs::File::open("/dev/tty").ok()?;
    let out = std::process::Command::new("stty")
        .arg("size")
        .stdin(tty)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A duration rounded to what a person reads: `42s`, `3m12s`, `2h5m`.
pub fn age(d: Duration) -> String {
    let s = d.as_millis() / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, s % 3600 / 60),
    }
}

pub fn bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1}GiB", n / (1024.0 * 1024.0 * 1024.0))
    } else {
        format!("{:.1}MiB", n / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_fits_its_width_by_eliding_the_elastic_columns() {
        let mut t = Table::new(&["TIME", "ACTION", "BEFORE", "AFTER", "RESULT"]);
        let long = "groups=web:desired=2 listeners=http:ingress=0.0.0.0/0,::/0 ".repeat(6);
        t.row(vec![
            "2026-12-02T07:00:00Z".into(),
            "ApplyStack".into(),
            long.clone(),
            long.clone(),
            "ok".into(),
        ]);
        let whole = t.lines(None, &[2, 3]);
        assert!(
            whole[1].chars().count() > 600,
            "unlimited: every value whole"
        );
        let fit = t.lines(Some(100), &[2, 3]);
        for line in &fit {
            assert!(
                line.chars().count() <= 100,
                "{} columns: {line}",
                line.chars().count()
            );
        }
        assert!(
            fit[1].contains("ApplyStack") && fit[1].ends_with("ok"),
            "{}",
            fit[1]
        );
        assert_eq!(fit[1].matches('…').count(), 2, "{}", fit[1]);
        // Short tables are left as they are.
        let mut small = Table::new(&["A", "B"]);
        small.row(vec!["x".into(), "y".into()]);
        assert_eq!(small.lines(Some(100), &[0, 1]), vec!["A  B", "x  y"]);
    }
}
