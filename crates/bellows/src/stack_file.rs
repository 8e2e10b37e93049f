//! Reading a stack file (or the embedded default stack) with every problem printed as
//! `file:line:column: message`, for `up`, `validate`, `apply`, `check` and `sim`.

use std::path::Path;
use std::process::ExitCode;

use bellows_core::stack::{self, Stack};

/// The stack `bellows up` runs when given no file.
pub const DEFAULT_STACK: (&str, &str) = (
    "examples/ip-tracker.toml",
    include_str!("../../../examples/ip-tracker.toml"),
);

/// Reads and validates a stack file, printing every problem as `file:line:column: message`.
pub fn load(path: &Path) -> Result<Stack, ExitCode> {
    let name = path.display().to_string();
    let src = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: cannot read: {e}");
            return Err(ExitCode::from(2));
        }
    };
    parse(&name, &src)
}

pub fn parse(name: &str, src: &str) -> Result<Stack, ExitCode> {
    let report = |errors: Vec<String>| {
        for e in &errors {
            eprintln!("{e}");
        }
        eprintln!(
            "{name}: {} error{}",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" }
        );
        ExitCode::from(2)
    };
    let stack = stack::parse(src)
        .map_err(|diags| report(diags.iter().map(|d| d.render(name)).collect()))?;
    // Named time zones are looked up in the system's database, which the core cannot read.
    let zones = bellows_node::zones::unknown_zones(&stack);
    if !zones.is_empty() {
        return Err(report(
            zones.into_iter().map(|z| format!("{name}: {z}")).collect(),
        ));
    }
    Ok(stack)
}

/// The stack of `file`, or the default stack; problems are printed, with exit status 2.
pub fn load_or_default(file: Option<&Path>) -> Result<Stack, ExitCode> {
    match file {
        Some(f) => load(f),
        None => parse(DEFAULT_STACK.0, DEFAULT_STACK.1),
    }
}
