//! HCL as `terraform fmt` writes it: two-space indents, the `=` of consecutive
//! single-line attributes aligned, a multi-line value set apart by blank lines, blocks
//! separated by one blank line. Checked by `terraform fmt -check` in tests/export.rs.

use std::fmt::Write as _;

/// An expression: literals are written with HCL's escapes; `Raw` as it is (references
/// and function calls, built by the exporter, never from user text).
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Str(String),
    Num(f64),
    Bool(bool),
    Raw(String),
    List(Vec<Expr>),
    /// An object, written over several lines.
    Map(Vec<(String, Expr)>),
}

/// One item of a body.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Attr(String, Expr),
    Block(Block),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub kind: String,
    pub labels: Vec<String>,
    pub body: Vec<Item>,
}

impl Block {
    pub fn new(kind: &str, labels: &[&str]) -> Block {
        Block {
            kind: kind.to_owned(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            body: Vec::new(),
        }
    }

    /// Adds an attribute (builder style).
    pub fn attr(mut self, key: &str, value: impl Into<Expr>) -> Block {
        self.body.push(Item::Attr(key.to_owned(), value.into()));
        self
    }

    /// Adds an attribute when there is a value.
    pub fn opt(self, key: &str, value: Option<impl Into<Expr>>) -> Block {
        match value {
            Some(v) => self.attr(key, v),
            None => self,
        }
    }

    pub fn block(mut self, b: Block) -> Block {
        self.body.push(Item::Block(b));
        self
    }

    pub fn push(&mut self, item: Item) {
        self.body.push(item);
    }
}

impl From<&str> for Expr {
    fn from(s: &str) -> Expr {
        Expr::Str(s.to_owned())
    }
}

impl From<String> for Expr {
    fn from(s: String) -> Expr {
        Expr::Str(s)
    }
}

impl From<bool> for Expr {
    fn from(b: bool) -> Expr {
        Expr::Bool(b)
    }
}

impl From<u64> for Expr {
    fn from(n: u64) -> Expr {
        Expr::Num(n as f64)
    }
}

impl From<u32> for Expr {
    fn from(n: u32) -> Expr {
        Expr::Num(f64::from(n))
    }
}

impl From<i64> for Expr {
    fn from(n: i64) -> Expr {
        Expr::Num(n as f64)
    }
}

impl From<f64> for Expr {
    fn from(n: f64) -> Expr {
        Expr::Num(n)
    }
}

/// A reference or call, like `aws_lb.main.arn`.
pub fn raw(s: impl Into<String>) -> Expr {
    Expr::Raw(s.into())
}

/// A quoted HCL string: escapes, and `${` / `%{` doubled so they stay literal text.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_multiline(e: &Expr) -> bool {
    matches!(e, Expr::Map(m) if !m.is_empty())
}

fn expr(out: &mut String, e: &Expr, indent: usize) {
    match e {
        Expr::Str(s) => out.push_str(&quote(s)),
        Expr::Num(n) => out.push_str(&crate::number(*n)),
        Expr::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Expr::Raw(r) => out.push_str(r),
        Expr::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                expr(out, item, indent);
            }
            out.push(']');
        }
        Expr::Map(m) if m.is_empty() => out.push_str("{}"),
        Expr::Map(m) => {
            out.push_str("{\n");
            let items: Vec<Item> = m
                .iter()
                .map(|(k, v)| Item::Attr(key(k), v.clone()))
                .collect();
            body(out, &items, indent + 1);
            out.push_str(&"  ".repeat(indent));
            out.push('}');
        }
    }
}

/// An object key: bare when it is an identifier, quoted otherwise.
fn key(k: &str) -> String {
    let ident = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ident { k.to_owned() } else { quote(k) }
}

fn body(out: &mut String, items: &[Item], indent: usize) {
    let pad = "  ".repeat(indent);
    // Runs of single-line attributes align their `=`; anything else ends a run.
    let mut i = 0;
    let mut first = true;
    while i < items.len() {
        match &items[i] {
            Item::Attr(_, v) if !is_multiline(v) => {
                let start = i;
                while i < items.len() && matches!(&items[i], Item::Attr(_, v) if !is_multiline(v)) {
                    i += 1;
                }
                if !first {
                    out.push('\n');
                }
                let width = items[start..i]
                    .iter()
                    .map(|it| match it {
                        Item::Attr(k, _) => k.chars().count(),
                        Item::Block(_) => 0,
                    })
                    .max()
                    .unwrap_or(0);
                for it in &items[start..i] {
                    if let Item::Attr(k, v) = it {
                        let _ = write!(out, "{pad}{k:<width$} = ");
                        expr(out, v, indent);
                        out.push('\n');
                    }
                }
            }
            Item::Attr(k, v) => {
                if !first {
                    out.push('\n');
                }
                let _ = write!(out, "{pad}{k} = ");
                expr(out, v, indent);
                out.push('\n');
                i += 1;
            }
            Item::Block(b) => {
                if !first {
                    out.push('\n');
                }
                block(out, b, indent);
                i += 1;
            }
        }
        first = false;
    }
}

fn block(out: &mut String, b: &Block, indent: usize) {
    let pad = "  ".repeat(indent);
    out.push_str(&pad);
    out.push_str(&b.kind);
    for l in &b.labels {
        out.push(' ');
        out.push_str(&quote(l));
    }
    if b.body.is_empty() {
        out.push_str(" {}\n");
        return;
    }
    out.push_str(" {\n");
    body(out, &b.body, indent + 1);
    out.push_str(&pad);
    out.push_str("}\n");
}

/// A whole file of top-level blocks.
pub fn file(blocks: &[Block]) -> String {
    let items: Vec<Item> = blocks.iter().cloned().map(Item::Block).collect();
    let mut out = String::new();
    body(&mut out, &items, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_align_and_blocks_nest_as_terraform_fmt_writes_them() {
        let b = Block::new("resource", &["aws_lb", "main"])
            .attr("name", "web")
            .attr("internal", false)
            .attr("subnets", raw("var.subnet_ids"))
            .attr(
                "tags",
                Expr::Map(vec![
                    ("Name".into(), "x".into()),
                    ("a b".into(), 1u64.into()),
                ]),
            )
            .attr("idle_timeout", 60u64)
            .block(
                Block::new("lifecycle", &[])
                    .attr("ignore_changes", Expr::List(vec![raw("desired_capacity")])),
            );
        let want = r#"resource "aws_lb" "main" {
  name     = "web"
  internal = false
  subnets  = var.subnet_ids

  tags = {
    Name  = "x"
    "a b" = 1
  }

  idle_timeout = 60

  lifecycle {
    ignore_changes = [desired_capacity]
  }
}
"#;
        assert_eq!(file(&[b]), want);
        assert_eq!(quote("a\"b\n${x} %{y} $5"), r#""a\"b\n$${x} %%{y} $5""#);
    }
}
