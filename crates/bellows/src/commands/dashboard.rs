//! `bellows dashboard`: the dashboard's link, with the token for changes.

use std::process::ExitCode;

use crate::context::Context;

pub async fn dashboard(ctx: &Context) -> anyhow::Result<ExitCode> {
    let client = ctx.client();
    // A link to an address where no stack answers would only fail in the browser: ask
    // first, so that the command says it cannot reach the stack (and how it looked).
    let _: serde_json::Value = client.get("/api/v1/status").await?;
    match client.token() {
        Some(t) => out!("http://{}/#token={t}", client.addr()),
        None => {
            out!("http://{}/", client.addr());
            eprintln!(
                "bellows: this link is read only (the page asks for the token before a change): {}",
                ctx.diagnosis().unwrap_or_else(|| format!(
                    "the token in {} cannot be read",
                    ctx.state_dir().join("token").display()
                ))
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
