//! DynamoDB's expressions: condition and filter expressions, key conditions, update
//! expressions and projections, parsed with `ExpressionAttributeNames` and
//! `ExpressionAttributeValues` substituted (`expr/parse.rs`), and evaluated against an
//! item (`expr/eval.rs`). This file holds what both share: the parsed forms and the
//! scope of names and values.

mod eval;
mod parse;

pub use eval::{apply, eval, lookup, project, touched};
pub use parse::{parse_condition, parse_projection, parse_update};

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::attr::{Attr, Item, set_difference, set_union};
use super::number::Decimal;

/// One step of a document path: a map key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A document path (`a.b[2].c`), names substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(pub Vec<Step>);

impl Path {
    /// The top-level attribute the path starts at.
    pub fn head(&self) -> &str {
        match self.0.first() {
            Some(Step::Key(k)) => k,
            _ => "",
        }
    }

    fn show(&self) -> String {
        let mut s = String::new();
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(k) if i == 0 => s.push_str(k),
                Step::Key(k) => {
                    s.push('.');
                    s.push_str(k);
                }
                Step::Index(n) => s.push_str(&format!("[{n}]")),
            }
        }
        s
    }

    /// Whether one path is the other or inside it.
    fn overlaps(&self, other: &Path) -> bool {
        let n = self.0.len().min(other.0.len());
        self.0[..n] == other.0[..n]
    }
}

/// A value in an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Path(Path),
    Value(Attr),
    Size(Path),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A condition (`ConditionExpression`, `FilterExpression`, `KeyConditionExpression`).
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Cmp(Operand, Cmp, Operand),
    Between(Operand, Operand, Operand),
    In(Operand, Vec<Operand>),
    Exists(Path),
    NotExists(Path),
    Type(Path, Operand),
    BeginsWith(Operand, Operand),
    Contains(Operand, Operand),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
}

/// The right-hand side of `SET`.
#[derive(Debug, Clone, PartialEq)]
pub enum SetValue {
    Operand(Operand),
    IfNotExists(Path, Box<SetValue>),
    ListAppend(Box<SetValue>, Box<SetValue>),
    Plus(Box<SetValue>, Box<SetValue>),
    Minus(Box<SetValue>, Box<SetValue>),
}

/// One action of an update expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Set(Path, SetValue),
    Remove(Path),
    Add(Path, Attr),
    Delete(Path, Attr),
}

/// What an expression may refer to, and what it did refer to (DynamoDB refuses names
/// and values given but never used).
#[derive(Debug)]
pub struct Scope<'a> {
    names: &'a BTreeMap<String, String>,
    values: &'a Item,
    used_names: BTreeSet<String>,
    used_values: BTreeSet<String>,
}

impl<'a> Scope<'a> {
    pub fn new(names: &'a BTreeMap<String, String>, values: &'a Item) -> Scope<'a> {
        Scope {
            names,
            values,
            used_names: BTreeSet::new(),
            used_values: BTreeSet::new(),
        }
    }

    /// After every expression of a request is parsed: names or values given and not used.
    pub fn check_all_used(&self) -> Result<(), String> {
        let unused: Vec<&str> = self
            .names
            .keys()
            .filter(|k| !self.used_names.contains(*k))
            .map(String::as_str)
            .collect();
        if !unused.is_empty() {
            return Err(format!(
                "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{}}}",
                unused.join(", ")
            ));
        }
        let unused: Vec<&str> = self
            .values
            .keys()
            .filter(|k| !self.used_values.contains(*k))
            .map(String::as_str)
            .collect();
        if !unused.is_empty() {
            return Err(format!(
                "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{}}}",
                unused.join(", ")
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
