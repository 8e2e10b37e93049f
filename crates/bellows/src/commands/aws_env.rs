//! `bellows aws-env`: `export` lines that point the `aws` CLI and SDKs at the running
//! stack's AWS endpoint.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::context::Context;

/// `export` lines for the `aws` CLI and the SDKs: the control address as the one
/// endpoint of every service, its region, and the key pair it accepts (the stack's
/// `[aws]` one, one given through `BELLOWS_AWS_*`, or the one derived from the state
/// directory's token).
pub async fn aws_env(ctx: &Context) -> anyhow::Result<ExitCode> {
    let client = ctx.client();
    // The running stack says its region and whether it has a key pair of its own
    // ([aws]: its id, and the variable that holds its secret, read here too).
    let stack: serde_json::Value = client.get("/api/v1/stack").await?;
    let region = stack["region"]
        .as_str()
        .unwrap_or(bellows_node::aws::DEFAULT_REGION)
        .to_owned();
    let given = if let Some(id) = stack["aws"]["access_key_id"].as_str() {
        let var = stack["aws"]["secret_env"].as_str().unwrap_or_default();
        let secret = std::env::var(var).with_context(|| {
            format!("the stack's [aws] key pair takes its secret from {var}, which is not set here")
        })?;
        Some((id.to_owned(), secret))
    } else {
        match (
            std::env::var(bellows_node::aws::ACCESS_KEY_ENV),
            std::env::var(bellows_node::aws::SECRET_KEY_ENV),
        ) {
            (Ok(id), Ok(secret)) => Some((id, secret)),
            _ => None,
        }
    };
    let token = client.token().unwrap_or_default().to_owned();
    if token.is_empty() && given.is_none() {
        anyhow::bail!(
            "no token readable in {}: the AWS key pair is derived from it",
            ctx.state_dir().display()
        );
    }
    let credential = bellows_node::aws::credentials(&token, given)
        .into_iter()
        .next()
        .context("no AWS key pair")?;
    out!("export AWS_ENDPOINT_URL=http://{}", client.addr());
    out!("export AWS_ACCESS_KEY_ID={}", credential.access_key_id);
    out!(
        "export AWS_SECRET_ACCESS_KEY={}",
        credential.secret_access_key
    );
    out!("export AWS_DEFAULT_REGION={region}");
    Ok(ExitCode::SUCCESS)
}
