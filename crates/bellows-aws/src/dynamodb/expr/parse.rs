//! The lexer and the recursive-descent parser of DynamoDB's expression grammar.

use super::*;

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
