//! The access log, one line per request in ALB's field order, written by a thread of
//! its own so the request path only formats a line and hands it over.
//!
//! The writer wakes on a clock of its own and takes every line that came meanwhile in
//! one write, instead of waiting on the channel: a receiver blocked in `recv` makes each
//! send wake it (a futex call and a context switch, then a `write` per line or two), and
//! that, not the formatting, was most of the log's cost per request under load.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// How often the writer takes the lines that came: at most this late in the file.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: mpsc::Sender<String>,
}

impl AccessLog {
    pub fn open(path: &Path) -> std::io::Result<AccessLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut out = BufWriter::with_capacity(256 * 1024, file);
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    let mut wrote = false;
                    loop {
                        match rx.try_recv() {
                            Ok(line) => {
                                let _ = out.write_all(line.as_bytes());
                                wrote = true;
                            }
                            Err(mpsc::TryRecvError::Empty) => break,
                            Err(mpsc::TryRecvError::Disconnected) => {
                                let _ = out.flush();
                                return;
                            }
                        }
                    }
                    if wrote {
                        let _ = out.flush();
                    }
                }
            })?;
        Ok(AccessLog { tx })
    }

    pub fn write(&self, line: String) {
        let _ = self.tx.send(line);
    }
}

/// What one request's log line says.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub time: String,
    pub elb: String,
    pub client: String,
    pub target: Option<String>,
    /// Seconds, or None when the request was not dispatched (-1 in the log).
    pub request_processing: Option<f64>,
    pub target_processing: Option<f64>,
    pub response_processing: Option<f64>,
    pub elb_status: u16,
    pub target_status: Option<u16>,
    pub received_bytes: u64,
    pub sent_bytes: u64,
    pub request: String,
    pub user_agent: String,
    pub target_group: Option<String>,
    pub trace_id: String,
    pub rule_priority: Option<u32>,
    pub actions: &'static str,
    pub error_reason: Option<&'static str>,
}

fn secs(out: &mut String, v: Option<f64>) {
    match v {
        Some(s) => {
            let _ = write!(out, "{s:.6}");
        }
        None => out.push_str("-1"),
    }
}

/// Quotes a field as ALB does, escaping quotes and control characters.
fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn or_dash(out: &mut String, v: Option<impl std::fmt::Display>) {
    match v {
        Some(v) => {
            let _ = write!(out, "{v}");
        }
        None => out.push('-'),
    }
}

impl Entry {
    /// type time elb client:port target:port request_processing_time
    /// target_processing_time response_processing_time elb_status_code
    /// target_status_code received_bytes sent_bytes "request" "user_agent" target_group
    /// "trace_id" matched_rule_priority "actions_executed" "error_reason"
    ///
    /// Written into one string sized for a usual line, without a string per field.
    pub fn line(&self) -> String {
        let mut out = String::with_capacity(
            200 + self.request.len() + self.user_agent.len() + self.trace_id.len(),
        );
        out.push_str("http ");
        for field in [&self.time, &self.elb, &self.client] {
            out.push_str(field);
            out.push(' ');
        }
        out.push_str(self.target.as_deref().unwrap_or("-"));
        for v in [
            self.request_processing,
            self.target_processing,
            self.response_processing,
        ] {
            out.push(' ');
            secs(&mut out, v);
        }
        let _ = write!(out, " {} ", self.elb_status);
        or_dash(&mut out, self.target_status);
        let _ = write!(out, " {} {} ", self.received_bytes, self.sent_bytes);
        quote(&mut out, &self.request);
        out.push(' ');
        quote(&mut out, &self.user_agent);
        out.push(' ');
        out.push_str(self.target_group.as_deref().unwrap_or("-"));
        out.push(' ');
        quote(&mut out, &self.trace_id);
        out.push(' ');
        or_dash(&mut out, self.rule_priority);
        out.push(' ');
        quote(&mut out, self.actions);
        out.push(' ');
        quote(&mut out, self.error_reason.unwrap_or("-"));
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_in_albs_order() {
        let e = Entry {
            time: "2026-11-22T23:15:02.120Z".into(),
            elb: "web".into(),
            client: "127.0.0.1:50000".into(),
            target: Some("127.1.0.1:5000".into()),
            request_processing: Some(0.0001),
            target_processing: Some(0.002),
            response_processing: Some(0.0),
            elb_status: 200,
            target_status: Some(200),
            received_bytes: 10,
            sent_bytes: 3,
            request: "GET http://x:8080/a?b HTTP/1.1".into(),
            user_agent: "curl \"8\"".into(),
            target_group: Some("seed".into()),
            trace_id: "r-1".into(),
            rule_priority: None,
            actions: "forward",
            error_reason: None,
        };
        assert_eq!(
            e.line(),
            "http 2026-11-22T23:15:02.120Z web 127.0.0.1:50000 127.1.0.1:5000 0.000100 0.002000 0.000000 200 200 10 3 \"GET http://x:8080/a?b HTTP/1.1\" \"curl \\\"8\\\"\" seed \"r-1\" - \"forward\" \"-\"\n"
        );
    }
}
