//! `bellows check`: the stack file's smoke checks through the running load balancer.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::context::Context;

/// One request with `Connection: close`: (status, body).
fn exchange(addr: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\nUser-Agent: bellows-check/1.0\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    Ok(bellows_node::client::split_response(&raw))
}

pub async fn check(ctx: &Context, file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let stack = match crate::stack_file::load_or_default(file.as_deref()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    if stack.checks.is_empty() {
        out!("the stack defines no [[checks]]");
        return Ok(ExitCode::SUCCESS);
    }
    let listeners: Vec<bellows_proxy::ListenerView> = ctx.client().get("/api/v1/listeners").await?;
    let mut failed = 0;
    for c in &stack.checks {
        let listener = match &c.listener {
            Some(name) => listeners.iter().find(|l| &l.name == name),
            None => listeners.first(),
        };
        let Some(listener) = listener else {
            anyhow::bail!("the running stack has no listener for check `{}`", c.name);
        };
        let (addr, method, path, body) = (
            listener.address.clone(),
            c.method.clone(),
            c.path.clone(),
            c.body.clone().unwrap_or_default(),
        );
        let result =
            tokio::task::spawn_blocking(move || exchange(&addr, &method, &path, &body)).await?;
        let verdict = match result {
            Err(e) => Err(format!("no answer: {e}")),
            Ok((status, _)) if status != c.expect_status => {
                Err(format!("expected status {}, got {status}", c.expect_status))
            }
            Ok((_, body))
                if c.expect_body
                    .as_ref()
                    .is_some_and(|want| !body.contains(want.as_str())) =>
            {
                Err(format!(
                    "the body lacks {:?}: {:.200}",
                    c.expect_body.as_deref().unwrap_or(""),
                    body
                ))
            }
            Ok(_) => Ok(()),
        };
        match verdict {
            Ok(()) => out!("✓ {} passed", c.name),
            Err(why) => {
                failed += 1;
                out!("✗ {} failed: {why}", c.name);
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
