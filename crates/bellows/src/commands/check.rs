//! `bellows check`: the stack file's smoke checks through the running load balancer.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::context::Context;

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
    let http = bellows_node::client::Http::new();
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
        let result = http
            .exchange(
                &method,
                &format!("http://{addr}{path}"),
                &[
                    ("content-type", "application/json"),
                    ("user-agent", "bellows-check/1.0"),
                ],
                body,
                std::time::Duration::from_secs(30),
            )
            .await
            .map(|a| (a.status, a.text()));
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
