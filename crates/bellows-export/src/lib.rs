//! Taking a stack elsewhere: `bellows export kubernetes` and `bellows export terraform`.
//!
//! Both exporters are pure: they take the parsed [`Stack`] and the stack file's text
//! (for the `file:line:column` of every warning) and return the files to write and
//! what did not carry over. The binary writes the files and prints the warnings.

#![forbid(unsafe_code)]

pub mod hcl;
pub mod import;
pub mod kubernetes;
mod locate;
pub mod names;
pub mod terraform;
pub mod yaml;

pub use locate::Locator;

/// Something of the stack that did not carry over as it is, at the place in the stack
/// file that set it (or, for a default, the table it would be set in).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Warning {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Warning {
    /// `file:line:column: warning: message`, as compilers print it.
    pub fn render(&self, file: &str) -> String {
        format!(
            "{file}:{}:{}: warning: {}",
            self.line, self.column, self.message
        )
    }
}

/// What an export produced: files (relative name, content) in a fixed order, the
/// warnings sorted by their place in the stack file, and notes (renamed objects).
#[derive(Clone, Debug, Default)]
pub struct Export {
    pub files: Vec<(String, String)>,
    pub warnings: Vec<Warning>,
    pub notes: Vec<String>,
}

/// Collects warnings while an exporter walks the stack.
#[derive(Debug)]
pub(crate) struct Warnings<'s> {
    pub(crate) at: Locator<'s>,
    list: Vec<Warning>,
}

impl<'s> Warnings<'s> {
    pub(crate) fn new(src: &'s str) -> Warnings<'s> {
        Warnings {
            at: Locator::new(src),
            list: Vec::new(),
        }
    }

    /// A warning at the dotted `path` of the stack file (see [`Locator::find`]).
    pub(crate) fn warn(&mut self, path: &[locate::Seg<'_>], message: impl Into<String>) {
        let (line, column) = self.at.find(path);
        self.list.push(Warning {
            line,
            column,
            message: message.into(),
        });
    }

    pub(crate) fn finish(mut self) -> Vec<Warning> {
        self.list.sort();
        self.list.dedup();
        self.list
    }
}

/// Warns where a target group's port is not the launch port of a group registered
/// into it: bellows, ALB and the export send traffic to the target group's port.
pub(crate) fn check_ports(w: &mut Warnings<'_>, stack: &bellows_core::stack::Stack) {
    for tg in &stack.target_groups {
        for g in stack
            .groups
            .iter()
            .filter(|g| g.target_groups.contains(&tg.name))
        {
            if g.launch.port != tg.port {
                w.warn(
                    &[locate::Seg::Key("target_groups"), locate::Seg::Key(&tg.name), locate::Seg::Key("port")],
                    format!("target group `{}` sends traffic to port {}, but group `{}` listens on {} (its launch port)", tg.name, tg.port, g.name, g.launch.port),
                );
            }
        }
    }
}

/// Formats a number as the shortest text that reads back the same, without a
/// trailing `.0` for whole numbers.
pub(crate) fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// Whole seconds of a duration, rounded up (a 500 ms timeout is not 0 s).
pub(crate) fn secs(d: bellows_core::Duration) -> u64 {
    d.as_millis().div_ceil(1000)
}
