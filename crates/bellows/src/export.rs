//! `bellows export kubernetes|terraform`: the shell around `bellows-export`. It reads
//! the stack file, prints every warning as `file:line:column: warning: ...` and every
//! renamed object as a note, and writes the files into a directory or to stdout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use bellows_export::Export;

use crate::stack_file;

/// Where the files go and whether a warning fails the export.
#[derive(Debug)]
pub struct Target {
    pub file: PathBuf,
    pub output: Option<PathBuf>,
    pub strict: bool,
}

/// Reads the stack and its text (the warnings point into it).
fn read(file: &Path) -> Result<(bellows_core::stack::Stack, String), ExitCode> {
    let stack = stack_file::load(file)?;
    // Read again for the places: `load` has already reported a file it cannot read.
    let src = std::fs::read_to_string(file).map_err(|_| ExitCode::from(2))?;
    Ok((stack, src))
}

pub fn kubernetes(t: Target, opts: bellows_export::kubernetes::Options) -> Result<ExitCode> {
    let (stack, src) = match read(&t.file) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let export = bellows_export::kubernetes::export(&stack, &src, &opts);
    finish(&t, export, "---\n")
}

pub fn terraform(t: Target, opts: bellows_export::terraform::Options) -> Result<ExitCode> {
    let (stack, src) = match read(&t.file) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let export = bellows_export::terraform::export(&stack, &src, &opts);
    finish(&t, export, "\n")
}

fn finish(t: &Target, export: Export, separator: &str) -> Result<ExitCode> {
    let name = t.file.display().to_string();
    for n in &export.notes {
        eprintln!("{name}: note: {n}");
    }
    for w in &export.warnings {
        eprintln!("{}", w.render(&name));
    }
    if t.strict && !export.warnings.is_empty() {
        eprintln!(
            "{name}: {} warning{} with --strict: nothing written",
            export.warnings.len(),
            if export.warnings.len() == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::FAILURE);
    }
    match &t.output {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (file, text) in &export.files {
                let path = dir.join(file);
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            eprintln!(
                "{name}: wrote {} file{} to {}",
                export.files.len(),
                if export.files.len() == 1 { "" } else { "s" },
                dir.display()
            );
        }
        None => {
            let all: Vec<&str> = export.files.iter().map(|(_, text)| text.as_str()).collect();
            out!("{}", all.join(separator).trim_end_matches('\n'));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `bellows import terraform DIR [-o STACK]`: every `.tf` of DIR, in name order.
pub fn import_terraform(dir: &Path, output: Option<&Path>) -> Result<ExitCode> {
    let mut sources = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tf"))
        .collect();
    entries.sort();
    if entries.is_empty() {
        eprintln!("{}: no .tf file", dir.display());
        return Ok(ExitCode::from(2));
    }
    for p in entries {
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        sources.push(bellows_export::import::Source {
            name: p.display().to_string(),
            text,
        });
    }
    let stack_name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "imported".to_owned());
    let imported = match bellows_export::import::import(&sources, &stack_name) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    for w in &imported.warnings {
        eprintln!("{w}");
    }
    let name = output.map_or_else(
        || "(imported stack)".to_owned(),
        |p| p.display().to_string(),
    );
    // What is written must be a stack `bellows up` accepts.
    if stack_file::parse(&name, &imported.stack).is_err() {
        eprintln!("{name}: the imported stack is not valid (above); it is printed as it is:");
        out!("{}", imported.stack.trim_end());
        return Ok(ExitCode::from(2));
    }
    match output {
        Some(p) => {
            std::fs::write(p, &imported.stack)
                .with_context(|| format!("writing {}", p.display()))?;
            eprintln!("{}: wrote {name}", dir.display());
        }
        None => out!("{}", imported.stack.trim_end()),
    }
    Ok(ExitCode::SUCCESS)
}
