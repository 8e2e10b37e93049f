//! `bellows import terraform`: a stack file from a Terraform directory's `.tf` files.
//! Variables (their defaults), locals and simple expressions are evaluated; the
//! resources bellows knows (load balancer listeners and rules, target groups, launch
//! templates, auto scaling groups, policies, schedules, alarms, ingress rules, instance
//! roles) become
//! the stack's tables; every module, data source, other resource and skipped argument
//! is reported with its `file:line:column`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hcl_edit::Span;
use hcl_edit::expr::{Expression, ObjectKey, TraversalOperator};
use hcl_edit::structure::{Block, Body, Structure};
use hcl_edit::template::{Element, Template};

mod iam;
mod write;

use write::write_stack;

/// A value an expression evaluated to.
#[derive(Clone, Debug, PartialEq)]
enum V {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    List(Vec<V>),
    Map(Vec<(String, V)>),
    /// A reference that is not a value here, like `aws_lb_target_group.web.arn`.
    Ref(Vec<String>),
}

impl V {
    fn str(&self) -> Option<String> {
        match self {
            V::Str(s) => Some(s.clone()),
            V::Num(n) => Some(crate::number(*n)),
            V::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    fn num(&self) -> Option<f64> {
        match self {
            V::Num(n) => Some(*n),
            V::Str(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// The resource a reference names: `aws_lb_target_group.web.arn` -> ("aws_lb_target_group", "web").
    fn target(&self) -> Option<(String, String)> {
        match self {
            V::Ref(p) if p.len() >= 2 => Some((p[0].clone(), p[1].clone())),
            _ => None,
        }
    }
}

/// One `.tf` file: its name and text.
#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// A stack file's text and what was not imported.
#[derive(Debug)]
pub struct Import {
    pub stack: String,
    pub warnings: Vec<String>,
}

struct Resource<'a> {
    file: usize,
    kind: String,
    name: String,
    block: &'a Block,
}

struct Cx<'a> {
    sources: &'a [Source],
    warnings: Vec<(usize, usize, usize, String)>,
    variables: BTreeMap<String, V>,
    locals: BTreeMap<String, (usize, &'a Expression)>,
    depth: usize,
}

impl Cx<'_> {
    fn warn(&mut self, file: usize, span: Option<std::ops::Range<usize>>, message: String) {
        let text = &self.sources[file].text;
        let offset = span.map_or(0, |s| s.start).min(text.len());
        let before = &text[..text.floor_char_boundary(offset)];
        let line = before.matches('\n').count() + 1;
        let col = before[before.rfind('\n').map_or(0, |i| i + 1)..]
            .chars()
            .count()
            + 1;
        self.warnings.push((file, line, col, message));
    }
}

fn template(cx: &mut Cx<'_>, file: usize, t: &Template) -> Result<V, String> {
    let mut out = String::new();
    for e in t.iter() {
        match e {
            Element::Literal(s) => out.push_str(s.value()),
            Element::Interpolation(i) => match eval(cx, file, &i.expr)? {
                V::Ref(p) => {
                    let _ = write!(out, "${{{}}}", p.join("."));
                }
                v => out.push_str(&v.str().ok_or("an interpolation of a list or object")?),
            },
            Element::Directive(_) => return Err("a template directive".into()),
        }
    }
    Ok(V::Str(out))
}

fn eval(cx: &mut Cx<'_>, file: usize, e: &Expression) -> Result<V, String> {
    Ok(match e {
        Expression::Null(_) => V::Null,
        Expression::Bool(b) => V::Bool(*b.value()),
        Expression::Number(n) => V::Num(n.value().as_f64().ok_or("a number out of range")?),
        Expression::String(s) => V::Str(s.value().clone()),
        Expression::Array(a) => V::List(
            a.iter()
                .map(|x| eval(cx, file, x))
                .collect::<Result<_, _>>()?,
        ),
        Expression::Object(o) => {
            let mut m = Vec::new();
            for (k, v) in o.iter() {
                let key = match k {
                    ObjectKey::Ident(i) => i.value().to_string(),
                    ObjectKey::Expression(x) => eval(cx, file, x)?
                        .str()
                        .ok_or("an object key that is not a string")?,
                };
                m.push((key, eval(cx, file, v.expr())?));
            }
            V::Map(m)
        }
        Expression::StringTemplate(t) => template(cx, file, t)?,
        Expression::HeredocTemplate(h) => template(cx, file, &h.template)?,
        Expression::Parenthesis(p) => eval(cx, file, p.inner())?,
        Expression::Variable(v) => V::Ref(vec![v.value().to_string()]),
        Expression::Traversal(t) => {
            let mut path = match &t.expr {
                Expression::Variable(v) => vec![v.value().to_string()],
                _ => return Err("a traversal of an expression".into()),
            };
            for op in &t.operators {
                match op.value() {
                    TraversalOperator::GetAttr(a) => path.push(a.value().to_string()),
                    _ => return Err("an index or splat".into()),
                }
            }
            match path[0].as_str() {
                "var" if path.len() == 2 => cx
                    .variables
                    .get(&path[1])
                    .cloned()
                    .ok_or_else(|| format!("variable `{}` has no default", path[1]))?,
                "local" if path.len() == 2 => {
                    let (f, x) = *cx
                        .locals
                        .get(&path[1])
                        .ok_or_else(|| format!("local `{}` is not defined", path[1]))?;
                    if cx.depth > 32 {
                        return Err("locals that refer to each other in a cycle".into());
                    }
                    cx.depth += 1;
                    let v = eval(cx, f, x);
                    cx.depth -= 1;
                    v?
                }
                _ => V::Ref(path),
            }
        }
        Expression::FuncCall(f) => {
            let name = f.name.name.value().to_string();
            let args: Vec<V> = f
                .args
                .iter()
                .map(|x| eval(cx, file, x))
                .collect::<Result<_, _>>()?;
            match (name.as_str(), args.as_slice()) {
                // User data is base64 on the wire; here it is the script itself.
                ("base64encode" | "tostring" | "trimspace", [v]) if name != "trimspace" => {
                    v.clone()
                }
                ("trimspace", [V::Str(s)]) => V::Str(s.trim().to_owned()),
                // A policy document stays the structure it encodes.
                ("jsonencode", [v]) => v.clone(),
                ("lower", [V::Str(s)]) => V::Str(s.to_lowercase()),
                ("upper", [V::Str(s)]) => V::Str(s.to_uppercase()),
                ("tonumber", [v]) => V::Num(v.num().ok_or("tonumber of a non-number")?),
                _ => return Err(format!("the function {name}()")),
            }
        }
        _ => return Err("an operator or conditional expression".into()),
    })
}

/// Reads a resource's arguments, remembering which were used, to report the rest.
struct Args<'r> {
    file: usize,
    what: String,
    body: &'r Body,
    used: Vec<String>,
}

impl<'r> Args<'r> {
    fn new(file: usize, what: String, body: &'r Body) -> Args<'r> {
        Args {
            file,
            what,
            body,
            used: Vec::new(),
        }
    }

    fn get(&mut self, cx: &mut Cx<'_>, key: &str) -> Option<V> {
        self.used.push(key.to_owned());
        let a = self.body.get_attribute(key)?;
        match eval(cx, self.file, &a.value) {
            Ok(V::Null) => None,
            Ok(v) => Some(v),
            Err(e) => {
                cx.warn(
                    self.file,
                    a.value.span(),
                    format!(
                        "{}: `{key}` is not imported: {e} is not evaluated",
                        self.what
                    ),
                );
                None
            }
        }
    }

    fn blocks(&mut self, key: &str) -> Vec<&'r Block> {
        self.used.push(key.to_owned());
        self.body
            .blocks()
            .filter(|b| b.ident.value().as_str() == key)
            .collect()
    }

    /// Reports every argument not read, and ignores those in `quiet`.
    fn finish(self, cx: &mut Cx<'_>, quiet: &[&str]) {
        for s in self.body.iter() {
            let (key, span) = match s {
                Structure::Attribute(a) => (a.key.value().to_string(), a.span()),
                Structure::Block(b) => (b.ident.value().to_string(), b.span()),
            };
            if !self.used.contains(&key) && !quiet.contains(&key.as_str()) {
                cx.warn(
                    self.file,
                    span,
                    format!("{}: `{key}` is not imported", self.what),
                );
            }
        }
    }
}

fn toml_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn secs(v: &V) -> Option<String> {
    v.num().map(|n| format!("{}s", crate::number(n)))
}

/// An alarm's name as a stack file takes it: its case kept (CloudWatch's names are
/// often `HighCPUUtilization`).
fn alarm_name(s: &str) -> String {
    cleaned(s, 255)
}

/// Any other name as a stack file takes it: lower case letters, digits, `-` and `_`.
fn name(s: &str) -> String {
    cleaned(&s.to_lowercase(), 64)
}

/// `s` with anything but letters, digits, `-` and `_` made `-`, starting with a letter or
/// digit, at most `max` long (`x` when nothing is left).
fn cleaned(s: &str, max: usize) -> String {
    let n: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let n = n.trim_start_matches(['-', '_']).to_owned();
    if n.is_empty() {
        "x".to_owned()
    } else {
        n.chars().take(max).collect()
    }
}

/// Imports the `.tf` files; `Err` is a file that is not HCL (`file:line:column: ...`).
pub fn import(sources: &[Source], stack_name: &str) -> Result<Import, String> {
    let mut bodies = Vec::new();
    for s in sources {
        let body = hcl_edit::parser::parse_body(&s.text).map_err(|e| {
            let loc = e.location();
            format!(
                "{}:{}:{}: {}",
                s.name,
                loc.line(),
                loc.column(),
                e.message()
            )
        })?;
        bodies.push(body);
    }
    let mut cx = Cx {
        sources,
        warnings: Vec::new(),
        variables: BTreeMap::new(),
        locals: BTreeMap::new(),
        depth: 0,
    };
    let mut resources = Vec::new();
    for (file, body) in bodies.iter().enumerate() {
        for b in body.blocks() {
            let labels: Vec<&str> = b.labels.iter().map(|l| l.as_str()).collect();
            match (b.ident.value().as_str(), labels.as_slice()) {
                ("variable", [n]) => {
                    if let Some(d) = b.body.get_attribute("default") {
                        match eval(&mut cx, file, &d.value) {
                            Ok(v) => {
                                cx.variables.insert((*n).to_owned(), v);
                            }
                            Err(e) => cx.warn(
                                file,
                                d.value.span(),
                                format!("variable `{n}`: its default is not evaluated: {e}"),
                            ),
                        }
                    }
                }
                ("locals", []) => {
                    for a in b.body.attributes() {
                        cx.locals
                            .insert(a.key.value().to_string(), (file, &a.value));
                    }
                }
                ("resource", [kind, n]) => resources.push(Resource {
                    file,
                    kind: (*kind).to_owned(),
                    name: (*n).to_owned(),
                    block: b,
                }),
                ("module", [n]) => cx.warn(
                    file,
                    b.span(),
                    format!("module `{n}` is not imported (modules are not read)"),
                ),
                ("data", [kind, n]) => cx.warn(
                    file,
                    b.span(),
                    format!("data source {kind}.{n} is not imported"),
                ),
                ("terraform" | "provider" | "output", _) => {}
                (other, _) => cx.warn(file, b.span(), format!("block `{other}` is not imported")),
            }
        }
    }
    let out = write_stack(&mut cx, &resources, stack_name);
    let mut w = cx.warnings;
    w.sort();
    let warnings = w
        .into_iter()
        .map(|(f, l, c, m)| format!("{}:{l}:{c}: warning: {m}", sources[f].name))
        .collect();
    Ok(Import {
        stack: out,
        warnings,
    })
}

#[cfg(test)]
mod tests;
