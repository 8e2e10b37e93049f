//! The access log, one line per request in ALB's field order, written by a thread of
//! its own so the request path only formats a line and hands it over.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

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
                let mut out = BufWriter::with_capacity(64 * 1024, file);
                loop {
                    match rx.recv_timeout(Duration::from_millis(500)) {
                        Ok(line) => {
                            let _ = out.write_all(line.as_bytes());
                            while let Ok(more) = rx.try_recv() {
                                let _ = out.write_all(more.as_bytes());
                            }
                            let _ = out.flush();
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            let _ = out.flush();
                            return;
                        }
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

fn secs(v: Option<f64>) -> String {
    v.map_or("-1".to_owned(), |s| format!("{s:.6}"))
}

/// Quotes a field as ALB does, escaping quotes and control characters.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Entry {
    /// type time elb client:port target:port request_processing_time
    /// target_processing_time response_processing_time elb_status_code
    /// target_status_code received_bytes sent_bytes "request" "user_agent" target_group
    /// "trace_id" matched_rule_priority "actions_executed" "error_reason"
    pub fn line(&self) -> String {
        format!(
            "http {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {}\n",
            self.time,
            self.elb,
            self.client,
            self.target.as_deref().unwrap_or("-"),
            secs(self.request_processing),
            secs(self.target_processing),
            secs(self.response_processing),
            self.elb_status,
            self.target_status.map_or("-".to_owned(), |s| s.to_string()),
            self.received_bytes,
            self.sent_bytes,
            quote(&self.request),
            quote(&self.user_agent),
            self.target_group.as_deref().unwrap_or("-"),
            quote(&self.trace_id),
            self.rule_priority.map_or("-".to_owned(), |p| p.to_string()),
            quote(self.actions),
            quote(self.error_reason.unwrap_or("-")),
        )
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
