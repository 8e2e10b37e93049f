//! DynamoDB's expressions: condition and filter expressions, key conditions, update
//! expressions and projections, parsed with `ExpressionAttributeNames` and
//! `ExpressionAttributeValues` substituted, and evaluated against an item.

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

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Name(String),
    Value(String),
    Int(usize),
    Sym(&'static str),
}

fn lex(kind: &str, s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let two = s.get(i..i + 2);
        if let Some(sym) = ["<>", "<=", ">="].into_iter().find(|t| Some(*t) == two) {
            out.push(Tok::Sym(sym));
            i += 2;
            continue;
        }
        if let Some(sym) = ["(", ")", "[", "]", ",", ".", "=", "<", ">", "+", "-"]
            .into_iter()
            .find(|t| t.as_bytes()[0] == c)
        {
            out.push(Tok::Sym(sym));
            i += 1;
            continue;
        }
        if c == b'#' || c == b':' {
            let start = i;
            i += 1;
            while i < b.len() && word(b[i]) {
                i += 1;
            }
            if i == start + 1 {
                return Err(syntax(kind, &s[start..start + 1], s));
            }
            let t = s[start..i].to_owned();
            out.push(if c == b'#' {
                Tok::Name(t)
            } else {
                Tok::Value(t)
            });
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let n = s[start..i]
                .parse()
                .map_err(|_| syntax(kind, &s[start..i], s))?;
            out.push(Tok::Int(n));
            continue;
        }
        if word(c) {
            let start = i;
            while i < b.len() && word(b[i]) {
                i += 1;
            }
            out.push(Tok::Word(s[start..i].to_owned()));
            continue;
        }
        let ch: String = s[i..].chars().next().into_iter().collect();
        return Err(format!(
            "Invalid {kind}: Syntax error; token: \"{ch}\", near: \"{}\"",
            near(s, i)
        ));
    }
    Ok(out)
}

fn near(s: &str, i: usize) -> String {
    let mut start = i.saturating_sub(8);
    while !s.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (i + 8).min(s.len());
    while !s.is_char_boundary(end) {
        end += 1;
    }
    s[start..end].to_owned()
}

fn syntax(kind: &str, token: &str, s: &str) -> String {
    format!("Invalid {kind}: Syntax error; token: \"{token}\", near: \"{s}\"")
}

struct Parser<'s, 'a> {
    kind: &'static str,
    text: &'s str,
    toks: Vec<Tok>,
    pos: usize,
    scope: &'s mut Scope<'a>,
    /// How deep in parentheses, `NOT`s and functions: bounded, so that no input can
    /// exhaust the stack.
    depth: usize,
}

/// DynamoDB's limit on an expression's length.
pub const MAX_EXPRESSION_BYTES: usize = 4096;

/// How deeply an expression may nest.
const MAX_DEPTH: usize = 64;

fn is_kw(t: Option<&Tok>, kw: &str) -> bool {
    matches!(t, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
}

impl Parser<'_, '_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn peek2(&self) -> Option<&Tok> {
        self.toks.get(self.pos + 1)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn error(&self) -> String {
        match self.peek() {
            None => format!(
                "Invalid {}: Syntax error; token: \"<EOF>\", near: \"{}\"",
                self.kind, self.text
            ),
            Some(t) => {
                let tok = match t {
                    Tok::Word(w) | Tok::Name(w) | Tok::Value(w) => w.clone(),
                    Tok::Int(n) => n.to_string(),
                    Tok::Sym(s) => (*s).to_owned(),
                };
                syntax(self.kind, &tok, self.text)
            }
        }
    }

    fn expect(&mut self, sym: &str) -> Result<(), String> {
        if self.peek() == Some(&Tok::Sym(leak(sym))) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn eat(&mut self, sym: &str) -> bool {
        if self.peek() == Some(&Tok::Sym(leak(sym))) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn name(&mut self, raw: &str) -> Result<String, String> {
        match self.scope.names.get(raw) {
            Some(n) => {
                self.scope.used_names.insert(raw.to_owned());
                Ok(n.clone())
            }
            None => Err(format!(
                "Invalid {}: An expression attribute name used in the document path is not defined; attribute name: {raw}",
                self.kind
            )),
        }
    }

    fn value(&mut self, raw: &str) -> Result<Attr, String> {
        match self.scope.values.get(raw) {
            Some(v) => {
                self.scope.used_values.insert(raw.to_owned());
                Ok(v.clone())
            }
            None => Err(format!(
                "Invalid {}: An expression attribute value used in expression is not defined; attribute value: {raw}",
                self.kind
            )),
        }
    }

    fn path(&mut self) -> Result<Path, String> {
        let first = match self.next() {
            Some(Tok::Word(w)) => w,
            Some(Tok::Name(n)) => self.name(&n)?,
            _ => {
                self.pos -= 1;
                return Err(self.error());
            }
        };
        let mut steps = vec![Step::Key(first)];
        loop {
            if self.eat(".") {
                match self.next() {
                    Some(Tok::Word(w)) => steps.push(Step::Key(w)),
                    Some(Tok::Name(n)) => {
                        let n = self.name(&n)?;
                        steps.push(Step::Key(n));
                    }
                    _ => {
                        self.pos -= 1;
                        return Err(self.error());
                    }
                }
            } else if self.eat("[") {
                match self.next() {
                    Some(Tok::Int(n)) => steps.push(Step::Index(n)),
                    _ => {
                        self.pos -= 1;
                        return Err(self.error());
                    }
                }
                self.expect("]")?;
            } else {
                return Ok(Path(steps));
            }
        }
    }

    fn operand(&mut self) -> Result<Operand, String> {
        match self.peek().cloned() {
            Some(Tok::Value(v)) => {
                self.pos += 1;
                Ok(Operand::Value(self.value(&v)?))
            }
            Some(Tok::Word(w))
                if w.eq_ignore_ascii_case("size") && self.peek2() == Some(&Tok::Sym("(")) =>
            {
                self.pos += 2;
                let p = self.path()?;
                self.expect(")")?;
                Ok(Operand::Size(p))
            }
            Some(Tok::Word(w)) if self.peek2() == Some(&Tok::Sym("(")) => Err(format!(
                "Invalid {}: Invalid function name; function: {w}",
                self.kind
            )),
            _ => Ok(Operand::Path(self.path()?)),
        }
    }

    fn condition(&mut self) -> Result<Cond, String> {
        let mut left = self.conjunction()?;
        while is_kw(self.peek(), "OR") {
            self.pos += 1;
            let right = self.conjunction()?;
            left = Cond::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn conjunction(&mut self) -> Result<Cond, String> {
        let mut left = self.negation()?;
        while is_kw(self.peek(), "AND") {
            self.pos += 1;
            let right = self.negation()?;
            left = Cond::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn deeper(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "Invalid {}: The expression nests more than {MAX_DEPTH} levels deep",
                self.kind
            ));
        }
        Ok(())
    }

    fn negation(&mut self) -> Result<Cond, String> {
        self.deeper()?;
        let out = if is_kw(self.peek(), "NOT") {
            self.pos += 1;
            self.negation().map(|c| Cond::Not(Box::new(c)))
        } else {
            self.primary()
        };
        self.depth -= 1;
        out
    }

    fn primary(&mut self) -> Result<Cond, String> {
        if self.eat("(") {
            let c = self.condition()?;
            self.expect(")")?;
            return Ok(c);
        }
        if let (Some(Tok::Word(w)), Some(Tok::Sym("("))) = (self.peek().cloned(), self.peek2()) {
            let f = w.to_ascii_lowercase();
            if f != "size" {
                self.pos += 2;
                let c = match f.as_str() {
                    "attribute_exists" => Cond::Exists(self.path()?),
                    "attribute_not_exists" => Cond::NotExists(self.path()?),
                    "attribute_type" => {
                        let p = self.path()?;
                        self.expect(",")?;
                        Cond::Type(p, self.operand()?)
                    }
                    "begins_with" => {
                        let a = self.operand()?;
                        self.expect(",")?;
                        Cond::BeginsWith(a, self.operand()?)
                    }
                    "contains" => {
                        let a = self.operand()?;
                        self.expect(",")?;
                        Cond::Contains(a, self.operand()?)
                    }
                    _ => {
                        return Err(format!(
                            "Invalid {}: Invalid function name; function: {w}",
                            self.kind
                        ));
                    }
                };
                self.expect(")")?;
                return Ok(c);
            }
        }
        let left = self.operand()?;
        if is_kw(self.peek(), "BETWEEN") {
            self.pos += 1;
            let lo = self.operand()?;
            if !is_kw(self.peek(), "AND") {
                return Err(self.error());
            }
            self.pos += 1;
            let hi = self.operand()?;
            return Ok(Cond::Between(left, lo, hi));
        }
        if is_kw(self.peek(), "IN") {
            self.pos += 1;
            self.expect("(")?;
            let mut list = vec![self.operand()?];
            while self.eat(",") {
                list.push(self.operand()?);
            }
            self.expect(")")?;
            return Ok(Cond::In(left, list));
        }
        let op = match self.next() {
            Some(Tok::Sym("=")) => Cmp::Eq,
            Some(Tok::Sym("<>")) => Cmp::Ne,
            Some(Tok::Sym("<")) => Cmp::Lt,
            Some(Tok::Sym("<=")) => Cmp::Le,
            Some(Tok::Sym(">")) => Cmp::Gt,
            Some(Tok::Sym(">=")) => Cmp::Ge,
            _ => {
                self.pos -= 1;
                return Err(self.error());
            }
        };
        Ok(Cond::Cmp(left, op, self.operand()?))
    }

    fn set_operand(&mut self) -> Result<SetValue, String> {
        self.deeper()?;
        let out = self.set_operand_inner();
        self.depth -= 1;
        out
    }

    fn set_operand_inner(&mut self) -> Result<SetValue, String> {
        if let (Some(Tok::Word(w)), Some(Tok::Sym("("))) = (self.peek().cloned(), self.peek2()) {
            let f = w.to_ascii_lowercase();
            self.pos += 2;
            let v = match f.as_str() {
                "if_not_exists" => {
                    let p = self.path()?;
                    self.expect(",")?;
                    SetValue::IfNotExists(p, Box::new(self.set_operand()?))
                }
                "list_append" => {
                    let a = self.set_operand()?;
                    self.expect(",")?;
                    SetValue::ListAppend(Box::new(a), Box::new(self.set_operand()?))
                }
                _ => {
                    return Err(format!(
                        "Invalid {}: Invalid function name; function: {w}",
                        self.kind
                    ));
                }
            };
            self.expect(")")?;
            return Ok(v);
        }
        match self.peek().cloned() {
            Some(Tok::Value(v)) => {
                self.pos += 1;
                Ok(SetValue::Operand(Operand::Value(self.value(&v)?)))
            }
            _ => Ok(SetValue::Operand(Operand::Path(self.path()?))),
        }
    }

    fn set_value(&mut self) -> Result<SetValue, String> {
        let left = self.set_operand()?;
        if self.eat("+") {
            return Ok(SetValue::Plus(
                Box::new(left),
                Box::new(self.set_operand()?),
            ));
        }
        if self.eat("-") {
            return Ok(SetValue::Minus(
                Box::new(left),
                Box::new(self.set_operand()?),
            ));
        }
        Ok(left)
    }

    fn literal(&mut self) -> Result<Attr, String> {
        match self.next() {
            Some(Tok::Value(v)) => self.value(&v),
            _ => {
                self.pos -= 1;
                Err(self.error())
            }
        }
    }

    fn update(&mut self) -> Result<Vec<Action>, String> {
        let mut actions = Vec::new();
        let mut seen = BTreeSet::new();
        if self.peek().is_none() {
            return Err(self.error());
        }
        while let Some(tok) = self.next() {
            let clause = match tok {
                Tok::Word(w) => w.to_ascii_uppercase(),
                _ => {
                    self.pos -= 1;
                    return Err(self.error());
                }
            };
            if !["SET", "REMOVE", "ADD", "DELETE"].contains(&clause.as_str()) {
                self.pos -= 1;
                return Err(self.error());
            }
            if !seen.insert(clause.clone()) {
                return Err(format!(
                    "Invalid UpdateExpression: The \"{clause}\" section can only be used once in an update expression;"
                ));
            }
            loop {
                let path = self.path()?;
                let action = match clause.as_str() {
                    "SET" => {
                        self.expect("=")?;
                        Action::Set(path, self.set_value()?)
                    }
                    "REMOVE" => Action::Remove(path),
                    "ADD" => Action::Add(path, self.literal()?),
                    _ => Action::Delete(path, self.literal()?),
                };
                actions.push(action);
                if !self.eat(",") {
                    break;
                }
            }
        }
        let paths: Vec<&Path> = actions
            .iter()
            .map(|a| match a {
                Action::Set(p, _)
                | Action::Remove(p)
                | Action::Add(p, _)
                | Action::Delete(p, _) => p,
            })
            .collect();
        for (i, a) in paths.iter().enumerate() {
            for b in &paths[i + 1..] {
                if a.overlaps(b) {
                    return Err(format!(
                        "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [{}], path two: [{}]",
                        a.show(),
                        b.show()
                    ));
                }
            }
        }
        Ok(actions)
    }
}

/// Symbols are compared as the lexer's `&'static str`s.
fn leak(sym: &str) -> &'static str {
    [
        "(", ")", "[", "]", ",", ".", "=", "<", ">", "+", "-", "<>", "<=", ">=",
    ]
    .into_iter()
    .find(|s| *s == sym)
    .unwrap_or("")
}

fn parse_with<'a, T>(
    kind: &'static str,
    text: &str,
    scope: &mut Scope<'a>,
    f: impl for<'s> FnOnce(&mut Parser<'s, 'a>) -> Result<T, String>,
) -> Result<T, String> {
    if text.trim().is_empty() {
        return Err(format!("Invalid {kind}: The expression can not be empty;"));
    }
    if text.len() > MAX_EXPRESSION_BYTES {
        return Err(format!(
            "Invalid {kind}: Expression size has exceeded the maximum allowed size; expression size: {}",
            text.len()
        ));
    }
    let toks = lex(kind, text)?;
    let mut p = Parser {
        kind,
        text,
        toks,
        pos: 0,
        scope,
        depth: 0,
    };
    let out = f(&mut p)?;
    if p.peek().is_some() {
        return Err(p.error());
    }
    Ok(out)
}

/// A `ConditionExpression`, `FilterExpression` or `KeyConditionExpression`; `kind` names
/// it in errors.
pub fn parse_condition(
    kind: &'static str,
    text: &str,
    scope: &mut Scope<'_>,
) -> Result<Cond, String> {
    parse_with(kind, text, scope, |p| p.condition())
}

pub fn parse_update(text: &str, scope: &mut Scope<'_>) -> Result<Vec<Action>, String> {
    parse_with("UpdateExpression", text, scope, |p| p.update())
}

pub fn parse_projection(text: &str, scope: &mut Scope<'_>) -> Result<Vec<Path>, String> {
    parse_with("ProjectionExpression", text, scope, |p| {
        let mut out = vec![p.path()?];
        while p.eat(",") {
            out.push(p.path()?);
        }
        Ok(out)
    })
}

/// The value at a path, if there is one.
pub fn lookup<'i>(item: &'i Item, path: &Path) -> Option<&'i Attr> {
    let mut steps = path.0.iter();
    let mut cur = match steps.next()? {
        Step::Key(k) => item.get(k)?,
        Step::Index(_) => return None,
    };
    for step in steps {
        cur = match (step, cur) {
            (Step::Key(k), Attr::M(m)) => m.get(k)?,
            (Step::Index(i), Attr::L(l)) => l.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn resolve(item: &Item, o: &Operand) -> Option<Attr> {
    match o {
        Operand::Value(v) => Some(v.clone()),
        Operand::Path(p) => lookup(item, p).cloned(),
        Operand::Size(p) => {
            let n = match lookup(item, p)? {
                Attr::S(s) => s.chars().count(),
                Attr::B(b) => b.len(),
                Attr::L(l) => l.len(),
                Attr::M(m) => m.len(),
                Attr::Ss(s) => s.len(),
                Attr::Ns(s) => s.len(),
                Attr::Bs(s) => s.len(),
                _ => return None,
            };
            Some(Attr::N(Decimal::from_i64(n as i64)))
        }
    }
}

/// Whether an item (an empty one when there is none) meets a condition. Order
/// comparisons of values of different types, or with a missing attribute, are false; a
/// missing attribute is not equal (`<>`) to anything, as in DynamoDB.
pub fn eval(cond: &Cond, item: &Item) -> Result<bool, String> {
    Ok(match cond {
        Cond::Cmp(a, op, b) => {
            let (Some(a), Some(b)) = (resolve(item, a), resolve(item, b)) else {
                return Ok(*op == Cmp::Ne);
            };
            match op {
                Cmp::Eq => a == b,
                Cmp::Ne => a != b,
                _ => match a.compare(&b) {
                    None => false,
                    Some(o) => match op {
                        Cmp::Lt => o == Ordering::Less,
                        Cmp::Le => o != Ordering::Greater,
                        Cmp::Gt => o == Ordering::Greater,
                        _ => o != Ordering::Less,
                    },
                },
            }
        }
        Cond::Between(a, lo, hi) => {
            let (Some(a), Some(lo), Some(hi)) =
                (resolve(item, a), resolve(item, lo), resolve(item, hi))
            else {
                return Ok(false);
            };
            if lo.compare(&hi) == Some(Ordering::Greater) {
                return Err(format!(
                    "Invalid ConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower bound operand: AttributeValue: {{{}}}, upper bound operand: AttributeValue: {{{}}}",
                    show(&lo),
                    show(&hi)
                ));
            }
            a.compare(&lo).is_some_and(|o| o != Ordering::Less)
                && a.compare(&hi).is_some_and(|o| o != Ordering::Greater)
        }
        Cond::In(a, list) => match resolve(item, a) {
            None => false,
            Some(a) => list.iter().any(|o| resolve(item, o).as_ref() == Some(&a)),
        },
        Cond::Exists(p) => lookup(item, p).is_some(),
        Cond::NotExists(p) => lookup(item, p).is_none(),
        Cond::Type(p, t) => {
            let want = match resolve(item, t) {
                Some(Attr::S(s)) => s,
                _ => return Err("Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: attribute_type".to_owned()),
            };
            const TYPES: [&str; 10] = ["S", "N", "B", "BOOL", "NULL", "L", "M", "SS", "NS", "BS"];
            if !TYPES.contains(&want.as_str()) {
                return Err(format!(
                    "Invalid ConditionExpression: Invalid attribute type name found; type: {want}, valid types: {{B,NULL,SS,BOOL,L,BS,N,NS,S,M}}"
                ));
            }
            lookup(item, p).is_some_and(|a| a.type_name() == want)
        }
        Cond::BeginsWith(a, prefix) => {
            let prefix = resolve(item, prefix);
            match (resolve(item, a), prefix) {
                (_, Some(p)) if !matches!(p, Attr::S(_) | Attr::B(_)) => {
                    return Err(format!(
                        "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: {}",
                        p.type_name()
                    ));
                }
                (Some(Attr::S(s)), Some(Attr::S(p))) => s.starts_with(&p),
                (Some(Attr::B(s)), Some(Attr::B(p))) => s.starts_with(&p),
                _ => false,
            }
        }
        Cond::Contains(a, b) => match (resolve(item, a), resolve(item, b)) {
            (Some(Attr::S(s)), Some(Attr::S(p))) => s.contains(&p),
            (Some(Attr::B(s)), Some(Attr::B(p))) => {
                p.is_empty() || s.windows(p.len()).any(|w| w == p.as_slice())
            }
            (Some(Attr::Ss(s)), Some(Attr::S(p))) => s.contains(&p),
            (Some(Attr::Ns(s)), Some(Attr::N(p))) => s.contains(&p),
            (Some(Attr::Bs(s)), Some(Attr::B(p))) => s.contains(&p),
            (Some(Attr::L(l)), Some(v)) => l.contains(&v),
            _ => false,
        },
        Cond::And(a, b) => eval(a, item)? && eval(b, item)?,
        Cond::Or(a, b) => eval(a, item)? || eval(b, item)?,
        Cond::Not(a) => !eval(a, item)?,
    })
}

fn show(a: &Attr) -> String {
    match a {
        Attr::S(s) => format!("S:{s}"),
        Attr::N(n) => format!("N:{n}"),
        other => other.type_name().to_owned(),
    }
}

fn operand_type_error(op: &str, a: &Attr) -> String {
    format!(
        "An operand in the update expression has an incorrect data type; operator or function: {op}, operand type: {}",
        a.type_name()
    )
}

fn set_value(item: &Item, v: &SetValue) -> Result<Attr, String> {
    match v {
        SetValue::Operand(o) => resolve(item, o).ok_or_else(|| {
            "The provided expression refers to an attribute that does not exist in the item"
                .to_owned()
        }),
        SetValue::IfNotExists(p, default) => match lookup(item, p) {
            Some(a) => Ok(a.clone()),
            None => set_value(item, default),
        },
        SetValue::ListAppend(a, b) => match (set_value(item, a)?, set_value(item, b)?) {
            (Attr::L(mut a), Attr::L(b)) => {
                a.extend(b);
                Ok(Attr::L(a))
            }
            (Attr::L(_), other) | (other, _) => Err(operand_type_error("list_append", &other)),
        },
        SetValue::Plus(a, b) | SetValue::Minus(a, b) => {
            let plus = matches!(v, SetValue::Plus(..));
            let op = if plus { "+" } else { "-" };
            match (set_value(item, a)?, set_value(item, b)?) {
                (Attr::N(a), Attr::N(b)) => Ok(Attr::N(if plus { a.add(&b)? } else { a.sub(&b)? })),
                (Attr::N(_), other) | (other, _) => Err(operand_type_error(op, &other)),
            }
        }
    }
}

/// Writes `value` at `path`, creating a top-level attribute or a map member; a list
/// index past the end appends.
fn put(item: &mut Item, path: &Path, value: Attr) -> Result<(), String> {
    let invalid =
        || "The document path provided in the update expression is invalid for update".to_owned();
    let (last, parents) = path.0.split_last().ok_or_else(invalid)?;
    if parents.is_empty() {
        let Step::Key(k) = last else {
            return Err(invalid());
        };
        item.insert(k.clone(), value);
        return Ok(());
    }
    let mut steps = parents.iter();
    let Some(Step::Key(first)) = steps.next() else {
        return Err(invalid());
    };
    let mut cur = item.get_mut(first).ok_or_else(invalid)?;
    for step in steps {
        cur = match (step, cur) {
            (Step::Key(k), Attr::M(m)) => m.get_mut(k).ok_or_else(invalid)?,
            (Step::Index(i), Attr::L(l)) => l.get_mut(*i).ok_or_else(invalid)?,
            _ => return Err(invalid()),
        };
    }
    match (last, cur) {
        (Step::Key(k), Attr::M(m)) => {
            m.insert(k.clone(), value);
        }
        (Step::Index(i), Attr::L(l)) => {
            if *i < l.len() {
                l[*i] = value;
            } else {
                l.push(value);
            }
        }
        _ => return Err(invalid()),
    }
    Ok(())
}

fn remove(item: &mut Item, path: &Path) {
    let Some((last, parents)) = path.0.split_last() else {
        return;
    };
    if parents.is_empty() {
        if let Step::Key(k) = last {
            item.remove(k);
        }
        return;
    }
    let mut steps = parents.iter();
    let Some(Step::Key(first)) = steps.next() else {
        return;
    };
    let Some(mut cur) = item.get_mut(first) else {
        return;
    };
    for step in steps {
        let next = match (step, cur) {
            (Step::Key(k), Attr::M(m)) => m.get_mut(k),
            (Step::Index(i), Attr::L(l)) => l.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match (last, cur) {
        (Step::Key(k), Attr::M(m)) => {
            m.remove(k);
        }
        (Step::Index(i), Attr::L(l)) if *i < l.len() => {
            l.remove(*i);
        }
        _ => {}
    }
}

/// Applies an update expression's actions to an item. Every right-hand side reads the
/// item as it was before the update, as in DynamoDB.
pub fn apply(actions: &[Action], item: &Item) -> Result<Item, String> {
    let mut out = item.clone();
    // List elements are removed from the highest index down, so that earlier removals
    // do not shift later ones.
    let mut removals: Vec<&Path> = Vec::new();
    for action in actions {
        match action {
            Action::Set(path, v) => {
                let value = set_value(item, v)?;
                put(&mut out, path, value)?;
            }
            Action::Remove(path) => removals.push(path),
            Action::Add(path, v) => {
                if !matches!(v, Attr::N(_) | Attr::Ss(_) | Attr::Ns(_) | Attr::Bs(_)) {
                    return Err(format!(
                        "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: ADD, operand type: {}",
                        type_word(v)
                    ));
                }
                let new = match (lookup(item, path), v) {
                    (None, _) => v.clone(),
                    (Some(Attr::N(a)), Attr::N(b)) => Attr::N(a.add(b)?),
                    (Some(a), b) => set_union(a, b).ok_or_else(|| operand_type_error("ADD", a))?,
                };
                put(&mut out, path, new)?;
            }
            Action::Delete(path, v) => {
                if !matches!(v, Attr::Ss(_) | Attr::Ns(_) | Attr::Bs(_)) {
                    return Err(format!(
                        "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: DELETE, operand type: {}",
                        type_word(v)
                    ));
                }
                match lookup(item, path) {
                    None => {}
                    Some(a) => match set_difference(a, v) {
                        None => return Err(operand_type_error("DELETE", a)),
                        Some(Some(rest)) => put(&mut out, path, rest)?,
                        Some(None) => remove(&mut out, path),
                    },
                }
            }
        }
    }
    removals.sort_by(|a, b| b.0.cmp_steps(&a.0));
    for path in removals {
        remove(&mut out, path);
    }
    Ok(out)
}

fn type_word(a: &Attr) -> &'static str {
    match a {
        Attr::S(_) => "STRING",
        Attr::N(_) => "NUMBER",
        Attr::B(_) => "BINARY",
        Attr::Bool(_) => "BOOLEAN",
        Attr::Null => "NULL",
        Attr::L(_) => "LIST",
        Attr::M(_) => "MAP",
        Attr::Ss(_) => "STRING SET",
        Attr::Ns(_) => "NUMBER SET",
        Attr::Bs(_) => "BINARY SET",
    }
}

trait StepOrder {
    fn cmp_steps(&self, other: &Self) -> Ordering;
}

impl StepOrder for Vec<Step> {
    fn cmp_steps(&self, other: &Vec<Step>) -> Ordering {
        for (a, b) in self.iter().zip(other) {
            let o = match (a, b) {
                (Step::Key(a), Step::Key(b)) => a.cmp(b),
                (Step::Index(a), Step::Index(b)) => a.cmp(b),
                (Step::Key(_), Step::Index(_)) => Ordering::Less,
                (Step::Index(_), Step::Key(_)) => Ordering::Greater,
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        self.len().cmp(&other.len())
    }
}

/// The top-level attributes an update's actions touch (for `UPDATED_OLD`/`UPDATED_NEW`).
pub fn touched(actions: &[Action]) -> BTreeSet<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::Set(p, _) | Action::Remove(p) | Action::Add(p, _) | Action::Delete(p, _) => {
                p.head().to_owned()
            }
        })
        .collect()
}

/// The item cut down to the projected paths (nested paths keep their structure).
pub fn project(item: &Item, paths: &[Path]) -> Item {
    let mut out = Item::new();
    for path in paths {
        let Some(value) = lookup(item, path) else {
            continue;
        };
        let mut steps = path.0.iter();
        let Some(Step::Key(first)) = steps.next() else {
            continue;
        };
        let rest: Vec<&Step> = steps.collect();
        if rest.is_empty() {
            out.insert(first.clone(), value.clone());
            continue;
        }
        let Some(source) = item.get(first) else {
            continue;
        };
        let slot = out
            .entry(first.clone())
            .or_insert_with(|| empty_like(source));
        graft(slot, source, &rest, value);
    }
    out
}

fn empty_like(a: &Attr) -> Attr {
    match a {
        Attr::M(_) => Attr::M(Item::new()),
        Attr::L(_) => Attr::L(Vec::new()),
        other => other.clone(),
    }
}

fn graft(slot: &mut Attr, source: &Attr, rest: &[&Step], value: &Attr) {
    let Some((step, more)) = rest.split_first() else {
        return;
    };
    match (step, slot, source) {
        (Step::Key(k), Attr::M(m), Attr::M(src)) => {
            let Some(inner) = src.get(k) else { return };
            if more.is_empty() {
                m.insert(k.clone(), value.clone());
            } else {
                let s = m.entry(k.clone()).or_insert_with(|| empty_like(inner));
                graft(s, inner, more, value);
            }
        }
        (Step::Index(i), Attr::L(l), Attr::L(src)) => {
            let Some(inner) = src.get(*i) else { return };
            // Projected list elements keep their order but not their positions.
            if more.is_empty() {
                l.push(value.clone());
            } else {
                let mut s = empty_like(inner);
                graft(&mut s, inner, more, value);
                l.push(s);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
