//! `bellows apply`: validate a stack file, show the plan, swap it in.

use std::process::ExitCode;

use anyhow::Context as _;
use bellows_node::api::ApplyRequest;

use super::print_json;
use crate::context::Context;

pub async fn apply(
    ctx: &Context,
    file: &std::path::Path,
    dry_run: bool,
    yes: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let name = file.display().to_string();
    let source = std::fs::read_to_string(file).with_context(|| format!("{name}: cannot read"))?;
    // The same checks as `validate`, with positions, before anything is sent.
    if let Err(code) = crate::stack_file::parse(&name, &source) {
        return Ok(code);
    }
    let client = ctx.client();
    let ask = |dry_run: bool| ApplyRequest {
        file: name.clone(),
        source: source.clone(),
        dry_run,
    };
    let plan: serde_json::Value = client.post("/api/v1/stack", &ask(true)).await?;
    let changes = plan["changes"].as_array().cloned().unwrap_or_default();
    if !json {
        print_plan(&changes);
    }
    if changes.is_empty() || dry_run {
        if json {
            print_json(&plan)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!("add --yes to apply without a question");
        }
        eprint!("Apply {} change(s)? [y/N] ", changes.len());
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("nothing applied");
            return Ok(ExitCode::from(1));
        }
    }
    let done: serde_json::Value = client
        .post("/api/v1/stack", &ask(false))
        .await
        .with_context(|| format!("cannot apply {name}"))?;
    if json {
        print_json(&done)?;
    } else {
        out!("applied {} change(s)", changes.len());
        if let Some(v) = done["template_versions"].as_object() {
            for (group, version) in v {
                out!(
                    "  group {group}: launch template version {version}: new instances use it; `bellows refresh {group}` replaces the others"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A plan like `terraform plan`'s: + added, - removed, ~ modified with each field.
fn print_plan(changes: &[serde_json::Value]) {
    if changes.is_empty() {
        out!("no changes: the running stack already is this file");
        return;
    }
    for c in changes {
        let (sign, what) = match c["op"].as_str() {
            Some("add") => ("+", "added"),
            Some("remove") => ("-", "removed"),
            _ => ("~", "modified"),
        };
        out!(
            "{sign} {} {} ({what})",
            c["kind"].as_str().unwrap_or("?").replace('_', " "),
            c["name"].as_str().unwrap_or("?")
        );
        for f in c["fields"].as_array().into_iter().flatten() {
            out!(
                "    {}: {} -> {}",
                f["path"].as_str().unwrap_or("?"),
                f["before"],
                f["after"]
            );
        }
    }
}
