//! `bellows dashboard`: the dashboard's link, with the token for changes.

use std::process::ExitCode;

use crate::context::Context;

pub fn dashboard(ctx: &Context) -> anyhow::Result<ExitCode> {
    let client = ctx.client();
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
