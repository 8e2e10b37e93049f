//! `bellows import terraform`: a stack file from a Terraform directory's `.tf` files.
//! Variables (their defaults), locals and simple expressions are evaluated; the
//! resources bellows knows (load balancer listeners and rules, target groups, launch
//! templates, auto scaling groups, policies, schedules, alarms, ingress rules) become
//! the stack's tables; every module, data source, other resource and skipped argument
//! is reported with its `file:line:column`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hcl_edit::Span;
use hcl_edit::expr::{Expression, ObjectKey, TraversalOperator};
use hcl_edit::structure::{Block, Body, Structure};
use hcl_edit::template::{Element, Template};

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

/// A stack name: lower case letters, digits, `-` and `_`.
fn name(s: &str) -> String {
    let n: String = s
        .to_lowercase()
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
        n.chars().take(64).collect()
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

const KNOWN: [&str; 10] = [
    "aws_lb",
    "aws_lb_target_group",
    "aws_lb_listener",
    "aws_lb_listener_rule",
    "aws_launch_template",
    "aws_autoscaling_group",
    "aws_autoscaling_policy",
    "aws_autoscaling_schedule",
    "aws_cloudwatch_metric_alarm",
    "aws_vpc_security_group_ingress_rule",
];

/// A launch template's command, environment, setup and instance type.
type Launch = (
    Vec<String>,
    BTreeMap<String, String>,
    Option<String>,
    Option<String>,
);

fn write_stack(cx: &mut Cx<'_>, rs: &[Resource<'_>], stack_name: &str) -> String {
    let of = |kind: &'static str| rs.iter().filter(move |r| r.kind == kind);
    let mut out = String::new();
    // Names: a resource's `name` argument where it has one, else its label.
    let mut names: BTreeMap<(String, String), String> = BTreeMap::new();
    for r in rs {
        let n = r
            .block
            .body
            .get_attribute("name")
            .and_then(|a| eval(cx, r.file, &a.value).ok())
            .and_then(|v| v.str());
        names.insert(
            (r.kind.clone(), r.name.clone()),
            name(&n.unwrap_or_else(|| r.name.clone())),
        );
    }
    let named = |v: &V| v.target().and_then(|t| names.get(&t).cloned());
    for r in rs.iter().filter(|r| !KNOWN.contains(&r.kind.as_str())) {
        cx.warn(
            r.file,
            r.block.span(),
            format!(
                "resource {}.{} has no counterpart in a stack and is not imported",
                r.kind, r.name
            ),
        );
    }
    let lb_name = of("aws_lb")
        .next()
        .map(|r| names[&(r.kind.clone(), r.name.clone())].clone())
        .unwrap_or_else(|| name(stack_name));
    let _ = writeln!(
        out,
        "# Imported by `bellows import terraform`; see its warnings for what was left out.\n\n[stack]\nname = {}",
        toml_str(&lb_name)
    );
    for r in of("aws_lb") {
        let mut a = Args::new(r.file, format!("aws_lb.{}", r.name), &r.block.body);
        a.get(cx, "name");
        a.finish(
            cx,
            &[
                "internal",
                "load_balancer_type",
                "security_groups",
                "subnets",
                "idle_timeout",
                "tags",
            ],
        );
    }

    for r in of("aws_lb_target_group") {
        let mut a = Args::new(
            r.file,
            format!("aws_lb_target_group.{}", r.name),
            &r.block.body,
        );
        let n = &names[&(r.kind.clone(), r.name.clone())];
        a.get(cx, "name");
        let _ = writeln!(out, "\n[target_groups.{n}]");
        if let Some(p) = a.get(cx, "port").and_then(|v| v.num()) {
            let _ = writeln!(out, "port = {}", crate::number(p));
        }
        if let Some(v) = a
            .get(cx, "load_balancing_algorithm_type")
            .and_then(|v| v.str())
        {
            let _ = writeln!(out, "algorithm = {}", toml_str(&v));
        }
        if let Some(v) = a
            .get(cx, "load_balancing_anomaly_mitigation")
            .and_then(|v| v.str())
        {
            let _ = writeln!(out, "anomaly_mitigation = {}", v == "on");
        }
        for key in ["deregistration_delay", "slow_start"] {
            if let Some(s) = a.get(cx, key).as_ref().and_then(secs) {
                let _ = writeln!(out, "{key} = {}", toml_str(&s));
            }
        }
        for hc in a.blocks("health_check") {
            let mut h = Args::new(
                r.file,
                format!("aws_lb_target_group.{}.health_check", r.name),
                &hc.body,
            );
            let _ = writeln!(out, "[target_groups.{n}.health_check]");
            if let Some(p) = h.get(cx, "path").and_then(|v| v.str()) {
                let _ = writeln!(out, "path = {}", toml_str(&p));
            }
            for key in ["interval", "timeout"] {
                if let Some(s) = h.get(cx, key).as_ref().and_then(secs) {
                    let _ = writeln!(out, "{key} = {}", toml_str(&s));
                }
            }
            for key in ["healthy_threshold", "unhealthy_threshold"] {
                if let Some(x) = h.get(cx, key).and_then(|v| v.num()) {
                    let _ = writeln!(out, "{key} = {}", crate::number(x));
                }
            }
            if let Some(m) = h.get(cx, "matcher").and_then(|v| v.str()) {
                let _ = writeln!(out, "matcher = {}", toml_str(&m));
            }
            h.finish(cx, &["enabled", "protocol", "port"]);
        }
        for st in a.blocks("stickiness") {
            let mut s = Args::new(
                r.file,
                format!("aws_lb_target_group.{}.stickiness", r.name),
                &st.body,
            );
            if s.get(cx, "enabled") == Some(V::Bool(false)) {
                continue;
            }
            let _ = writeln!(out, "[target_groups.{n}.stickiness]");
            if let Some(t) = s.get(cx, "type").and_then(|v| v.str()) {
                let _ = writeln!(out, "type = {}", toml_str(&t));
            }
            if let Some(d) = s.get(cx, "cookie_duration").as_ref().and_then(secs) {
                let _ = writeln!(out, "duration = {}", toml_str(&d));
            }
            if let Some(c) = s.get(cx, "cookie_name").and_then(|v| v.str()) {
                let _ = writeln!(out, "cookie = {}", toml_str(&c));
            }
            s.finish(cx, &[]);
        }
        a.finish(cx, &["protocol", "vpc_id", "target_type", "tags"]);
    }

    // Listeners, with the ingress rules of the load balancer's security group on their port.
    let ingress: Vec<(f64, String)> = of("aws_vpc_security_group_ingress_rule")
        .filter_map(|r| {
            let mut a = Args::new(
                r.file,
                format!("aws_vpc_security_group_ingress_rule.{}", r.name),
                &r.block.body,
            );
            let port = a.get(cx, "from_port").and_then(|v| v.num());
            let cidr = a
                .get(cx, "cidr_ipv4")
                .or_else(|| a.get(cx, "cidr_ipv6"))
                .and_then(|v| v.str());
            a.get(cx, "to_port");
            a.finish(
                cx,
                &[
                    "security_group_id",
                    "description",
                    "ip_protocol",
                    "referenced_security_group_id",
                    "tags",
                ],
            );
            Some((port?, cidr?))
        })
        .collect();
    for (i, r) in of("aws_lb_listener").enumerate() {
        let mut a = Args::new(r.file, format!("aws_lb_listener.{}", r.name), &r.block.body);
        let port = a.get(cx, "port").and_then(|v| v.num()).unwrap_or(80.0);
        let local = if port >= 1024.0 {
            port
        } else {
            8080.0 + i as f64
        };
        if local != port {
            cx.warn(r.file, r.block.span(), format!("aws_lb_listener.{}: port {} listens on 127.0.0.1:{} (a port below 1024 needs root)", r.name, crate::number(port), crate::number(local)));
        }
        let _ = writeln!(
            out,
            "\n[listeners.{}]\naddress = \"127.0.0.1:{}\"",
            name(&r.name),
            crate::number(local)
        );
        let cidrs: Vec<String> = ingress
            .iter()
            .filter(|(p, _)| *p == port)
            .map(|(_, c)| toml_str(c))
            .collect();
        if !cidrs.is_empty() {
            let _ = writeln!(out, "ingress = [{}]", cidrs.join(", "));
        }
        if let Some(d) = a.blocks("default_action").first() {
            let act = action(
                cx,
                r.file,
                &format!("aws_lb_listener.{}.default_action", r.name),
                d,
                &named,
            );
            let _ = writeln!(out, "default = {act}");
        }
        a.finish(cx, &["load_balancer_arn", "protocol", "tags"]);
        let mut rules: Vec<(f64, String)> = Vec::new();
        for rr in of("aws_lb_listener_rule") {
            let mut b = Args::new(
                rr.file,
                format!("aws_lb_listener_rule.{}", rr.name),
                &rr.block.body,
            );
            if b.get(cx, "listener_arn").and_then(|v| v.target())
                != Some(("aws_lb_listener".to_owned(), r.name.clone()))
            {
                continue;
            }
            let priority = b.get(cx, "priority").and_then(|v| v.num()).unwrap_or(1.0);
            let mut text = format!(
                "\n[[listeners.{}.rules]]\npriority = {}\n",
                name(&r.name),
                crate::number(priority)
            );
            let mut headers = Vec::new();
            for c in b.blocks("condition") {
                for inner in c.body.blocks() {
                    let mut ca = Args::new(
                        rr.file,
                        format!(
                            "aws_lb_listener_rule.{}.condition.{}",
                            rr.name,
                            inner.ident.value()
                        ),
                        &inner.body,
                    );
                    let values = ca.get(cx, "values");
                    let list = match &values {
                        Some(V::List(l)) => l
                            .iter()
                            .filter_map(V::str)
                            .map(|s| toml_str(&s))
                            .collect::<Vec<_>>()
                            .join(", "),
                        _ => String::new(),
                    };
                    let key = match inner.ident.value().as_str() {
                        "path_pattern" => Some("path"),
                        "host_header" => Some("host"),
                        "http_request_method" => Some("method"),
                        "source_ip" => Some("source_ip"),
                        "http_header" => {
                            let h = ca
                                .get(cx, "http_header_name")
                                .and_then(|v| v.str())
                                .unwrap_or_default();
                            headers.push(format!("{} = [{list}]", toml_str(&h)));
                            None
                        }
                        _ => {
                            cx.warn(
                                rr.file,
                                inner.span(),
                                format!(
                                    "aws_lb_listener_rule.{}: condition {} is not imported",
                                    rr.name,
                                    inner.ident.value()
                                ),
                            );
                            None
                        }
                    };
                    if let Some(k) = key {
                        let _ = writeln!(text, "{k} = [{list}]");
                    }
                    ca.finish(cx, &[]);
                }
            }
            if !headers.is_empty() {
                let _ = writeln!(text, "header = {{ {} }}", headers.join(", "));
            }
            if let Some(act) = b.blocks("action").first() {
                let act = action(
                    cx,
                    rr.file,
                    &format!("aws_lb_listener_rule.{}.action", rr.name),
                    act,
                    &named,
                );
                // An inline table's keys become the rule's own.
                let inner = act
                    .strip_prefix("{ ")
                    .and_then(|a| a.strip_suffix(" }"))
                    .unwrap_or(&act);
                let _ = writeln!(text, "{inner}");
            }
            b.finish(cx, &["tags"]);
            rules.push((priority, text));
        }
        rules.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, t) in rules {
            out.push_str(&t);
        }
    }

    let mut templates: BTreeMap<String, Launch> = BTreeMap::new();
    for r in of("aws_launch_template") {
        let mut a = Args::new(
            r.file,
            format!("aws_launch_template.{}", r.name),
            &r.block.body,
        );
        let it = a.get(cx, "instance_type").and_then(|v| v.str());
        let ud = a
            .get(cx, "user_data")
            .and_then(|v| v.str())
            .unwrap_or_default();
        let (command, env, setup) = user_data(&ud);
        if command.is_empty() {
            cx.warn(r.file, r.block.span(), format!("aws_launch_template.{}: its user data ends with no `exec COMMAND`; the command is `bellows app echo` until you set it", r.name));
        }
        templates.insert(r.name.clone(), (command, env, setup, it));
        a.finish(
            cx,
            &[
                "name",
                "name_prefix",
                "image_id",
                "vpc_security_group_ids",
                "tags",
            ],
        );
    }
    let target_groups = |v: &Option<V>| -> Vec<String> {
        match v {
            Some(V::List(l)) => l.iter().filter_map(&named).collect(),
            _ => Vec::new(),
        }
    };
    for r in of("aws_autoscaling_group") {
        let mut a = Args::new(
            r.file,
            format!("aws_autoscaling_group.{}", r.name),
            &r.block.body,
        );
        let n = &names[&(r.kind.clone(), r.name.clone())];
        a.get(cx, "name");
        let _ = writeln!(out, "\n[groups.{n}]");
        for (key, to) in [
            ("min_size", "min"),
            ("max_size", "max"),
            ("desired_capacity", "desired"),
        ] {
            if let Some(x) = a.get(cx, key).and_then(|v| v.num()) {
                let _ = writeln!(out, "{to} = {}", crate::number(x));
            }
        }
        if let Some(t) = a.get(cx, "health_check_type").and_then(|v| v.str()) {
            let _ = writeln!(out, "health_check_type = {}", toml_str(&t));
        }
        for key in [
            "health_check_grace_period",
            "default_cooldown",
            "default_instance_warmup",
        ] {
            if let Some(s) = a.get(cx, key).as_ref().and_then(secs) {
                let _ = writeln!(out, "{key} = {}", toml_str(&s));
            }
        }
        if let Some(V::List(l)) = a.get(cx, "termination_policies")
            && let Some(p) = l.first().and_then(V::str)
        {
            let _ = writeln!(out, "termination_policy = {}", toml_str(&p));
        }
        let tgs = target_groups(&a.get(cx, "target_group_arns"));
        let list: Vec<String> = tgs.iter().map(|t| toml_str(t)).collect();
        let _ = writeln!(out, "target_groups = [{}]", list.join(", "));
        let lt = a.blocks("launch_template").first().and_then(|b| {
            let mut l = Args::new(
                r.file,
                format!("aws_autoscaling_group.{}.launch_template", r.name),
                &b.body,
            );
            let t = l.get(cx, "id").and_then(|v| v.target()).map(|t| t.1);
            l.get(cx, "version");
            l.finish(cx, &["name"]);
            t
        });
        let (command, env, setup, it) = lt
            .and_then(|t| templates.get(&t).cloned())
            .unwrap_or_default();
        let command = if command.is_empty() {
            vec!["bellows".into(), "app".into(), "echo".into()]
        } else {
            command
        };
        let _ = writeln!(out, "[groups.{n}.launch]");
        let cmd: Vec<String> = command.iter().map(|c| toml_str(c)).collect();
        let _ = writeln!(out, "command = [{}]", cmd.join(", "));
        let port = env.get("PORT").cloned();
        let env: Vec<String> = env
            .iter()
            .filter(|(k, _)| !bellows_core::stack::RESERVED_ENV.contains(&k.as_str()))
            .map(|(k, v)| format!("{k} = {}", toml_str(v)))
            .collect();
        if !env.is_empty() {
            let _ = writeln!(out, "env = {{ {} }}", env.join(", "));
        }
        if let Some(it) = it {
            let _ = writeln!(out, "instance_type = {}", toml_str(&it));
        }
        if let Some(p) = port {
            let _ = writeln!(out, "port = {p}");
        }
        if let Some(s) = setup {
            let _ = writeln!(out, "setup = {}", toml_str(&s));
        }
        for s in of("aws_autoscaling_schedule") {
            let mut b = Args::new(
                s.file,
                format!("aws_autoscaling_schedule.{}", s.name),
                &s.block.body,
            );
            if b.get(cx, "autoscaling_group_name").and_then(|v| v.target())
                != Some((r.kind.clone(), r.name.clone()))
            {
                continue;
            }
            let _ = writeln!(out, "[[groups.{n}.scheduled]]");
            let sn = b
                .get(cx, "scheduled_action_name")
                .and_then(|v| v.str())
                .unwrap_or_else(|| s.name.clone());
            let _ = writeln!(out, "name = {}", toml_str(&sn));
            if let Some(c) = b.get(cx, "recurrence").and_then(|v| v.str()) {
                let _ = writeln!(out, "cron = {}", toml_str(&c));
            }
            if let Some(z) = b.get(cx, "time_zone").and_then(|v| v.str()) {
                let z = if z == "Etc/UTC" { "UTC".to_owned() } else { z };
                let _ = writeln!(out, "time_zone = {}", toml_str(&z));
            }
            for (key, to) in [
                ("min_size", "min"),
                ("max_size", "max"),
                ("desired_capacity", "desired"),
            ] {
                if let Some(x) = b.get(cx, key).and_then(|v| v.num()) {
                    let _ = writeln!(out, "{to} = {}", crate::number(x));
                }
            }
            b.finish(cx, &[]);
        }
        a.finish(cx, &["lifecycle", "tag"]);
    }

    for r in of("aws_autoscaling_policy") {
        let mut a = Args::new(
            r.file,
            format!("aws_autoscaling_policy.{}", r.name),
            &r.block.body,
        );
        let n = &names[&(r.kind.clone(), r.name.clone())];
        a.get(cx, "name");
        let group = a
            .get(cx, "autoscaling_group_name")
            .as_ref()
            .and_then(named)
            .unwrap_or_default();
        let _ = writeln!(out, "\n[policies.{n}]\ngroup = {}", toml_str(&group));
        let kind = a
            .get(cx, "policy_type")
            .and_then(|v| v.str())
            .unwrap_or_else(|| "SimpleScaling".into());
        if let Some(t) = a.get(cx, "adjustment_type").and_then(|v| v.str()) {
            let _ = writeln!(out, "adjustment_type = {}", toml_str(&t));
        }
        if let Some(w) = a
            .get(cx, "estimated_instance_warmup")
            .as_ref()
            .and_then(secs)
        {
            let _ = writeln!(out, "warmup = {}", toml_str(&w));
        }
        if let Some(m) = a.get(cx, "min_adjustment_magnitude").and_then(|v| v.num()) {
            let _ = writeln!(out, "min_adjustment_magnitude = {}", crate::number(m));
        }
        match kind.as_str() {
            "SimpleScaling" => {
                let _ = writeln!(out, "type = \"simple\"");
                if let Some(x) = a.get(cx, "scaling_adjustment").and_then(|v| v.num()) {
                    let _ = writeln!(out, "adjustment = {}", crate::number(x));
                }
                if let Some(c) = a.get(cx, "cooldown").as_ref().and_then(secs) {
                    let _ = writeln!(out, "cooldown = {}", toml_str(&c));
                }
            }
            "StepScaling" => {
                let _ = writeln!(out, "type = \"step\"");
                a.get(cx, "metric_aggregation_type");
                for st in a.blocks("step_adjustment") {
                    let mut s = Args::new(
                        r.file,
                        format!("aws_autoscaling_policy.{}.step_adjustment", r.name),
                        &st.body,
                    );
                    let _ = writeln!(out, "[[policies.{n}.steps]]");
                    for (key, to) in [
                        ("metric_interval_lower_bound", "lower"),
                        ("metric_interval_upper_bound", "upper"),
                        ("scaling_adjustment", "adjustment"),
                    ] {
                        if let Some(x) = s.get(cx, key).and_then(|v| v.num()) {
                            let _ = writeln!(out, "{to} = {}", crate::number(x));
                        }
                    }
                    s.finish(cx, &[]);
                }
            }
            "TargetTrackingScaling" => {
                let _ = writeln!(out, "type = \"target_tracking\"");
                for tt in a.blocks("target_tracking_configuration") {
                    let mut t = Args::new(
                        r.file,
                        format!(
                            "aws_autoscaling_policy.{}.target_tracking_configuration",
                            r.name
                        ),
                        &tt.body,
                    );
                    if let Some(x) = t.get(cx, "target_value").and_then(|v| v.num()) {
                        let _ = writeln!(out, "target = {}", crate::number(x));
                    }
                    if t.get(cx, "disable_scale_in") == Some(V::Bool(true)) {
                        let _ = writeln!(out, "disable_scale_in = true");
                    }
                    for p in t.blocks("predefined_metric_specification") {
                        let mut pa = Args::new(
                            r.file,
                            format!(
                                "aws_autoscaling_policy.{}.predefined_metric_specification",
                                r.name
                            ),
                            &p.body,
                        );
                        let m = pa
                            .get(cx, "predefined_metric_type")
                            .and_then(|v| v.str())
                            .unwrap_or_default();
                        let _ = writeln!(out, "metric = {}", toml_str(&m));
                        if m == "ALBRequestCountPerTarget" {
                            // AWS counts per minute.
                            let label = pa
                                .get(cx, "resource_label")
                                .and_then(|v| v.str())
                                .unwrap_or_default();
                            let tg = label
                                .split("aws_lb_target_group.")
                                .nth(1)
                                .and_then(|s| s.split('.').next())
                                .map(|l| {
                                    names
                                        .get(&("aws_lb_target_group".to_owned(), l.to_owned()))
                                        .cloned()
                                        .unwrap_or_else(|| name(l))
                                })
                                .unwrap_or_default();
                            let _ =
                                writeln!(out, "target_group = {}\nperiod = \"60s\"", toml_str(&tg));
                        }
                        pa.finish(cx, &[]);
                    }
                    for c in t.blocks("customized_metric_specification") {
                        cx.warn(r.file, c.span(), format!("aws_autoscaling_policy.{}: a customized metric is not imported; the policy tracks CPU", r.name));
                    }
                    t.finish(cx, &[]);
                }
            }
            other => cx.warn(
                r.file,
                r.block.span(),
                format!(
                    "aws_autoscaling_policy.{}: policy_type {other} is not imported",
                    r.name
                ),
            ),
        }
        a.finish(cx, &[]);
    }

    for r in of("aws_cloudwatch_metric_alarm") {
        let mut a = Args::new(
            r.file,
            format!("aws_cloudwatch_metric_alarm.{}", r.name),
            &r.block.body,
        );
        let n = name(
            &a.get(cx, "alarm_name")
                .and_then(|v| v.str())
                .unwrap_or_else(|| r.name.clone()),
        );
        let _ = writeln!(out, "\n[alarms.{n}]");
        for (key, to) in [
            ("namespace", "namespace"),
            ("metric_name", "metric"),
            ("statistic", "statistic"),
            ("comparison_operator", "comparison"),
            ("treat_missing_data", "treat_missing_data"),
        ] {
            if let Some(s) = a.get(cx, key).and_then(|v| v.str()) {
                let _ = writeln!(out, "{to} = {}", toml_str(&s));
            }
        }
        if let Some(s) = a.get(cx, "extended_statistic").and_then(|v| v.str()) {
            let _ = writeln!(out, "statistic = {}", toml_str(&s));
        }
        if let Some(p) = a.get(cx, "period").as_ref().and_then(secs) {
            let _ = writeln!(out, "period = {}", toml_str(&p));
        }
        for key in ["evaluation_periods", "datapoints_to_alarm", "threshold"] {
            if let Some(x) = a.get(cx, key).and_then(|v| v.num()) {
                let _ = writeln!(out, "{key} = {}", crate::number(x));
            }
        }
        if let Some(V::Map(dims)) = a.get(cx, "dimensions") {
            let d: Vec<String> = dims
                .iter()
                .map(|(k, v)| {
                    let value = named(v).or_else(|| v.str()).unwrap_or_default();
                    // The stack names its load balancer after the stack.
                    let value = if k == "LoadBalancer" && v.target().is_some() {
                        lb_name.clone()
                    } else {
                        value
                    };
                    format!("{k} = {}", toml_str(&value))
                })
                .collect();
            let _ = writeln!(out, "dimensions = {{ {} }}", d.join(", "));
        }
        for key in ["alarm_actions", "ok_actions", "insufficient_data_actions"] {
            if let Some(V::List(l)) = a.get(cx, key) {
                let acts: Vec<String> = l.iter().filter_map(&named).map(|s| toml_str(&s)).collect();
                if !acts.is_empty() {
                    let _ = writeln!(out, "{key} = [{}]", acts.join(", "));
                }
            }
        }
        a.finish(cx, &["alarm_description", "actions_enabled", "tags"]);
    }
    out
}

fn action(
    cx: &mut Cx<'_>,
    file: usize,
    what: &str,
    b: &Block,
    named: &dyn Fn(&V) -> Option<String>,
) -> String {
    let mut a = Args::new(file, what.to_owned(), &b.body);
    let kind = a.get(cx, "type").and_then(|v| v.str()).unwrap_or_default();
    let text = match kind.as_str() {
        "forward" => {
            if let Some(t) = a.get(cx, "target_group_arn").as_ref().and_then(named) {
                format!("{{ forward = {} }}", toml_str(&t))
            } else {
                let mut groups = Vec::new();
                for f in a.blocks("forward") {
                    for tg in f.body.get_blocks("target_group") {
                        let mut g =
                            Args::new(file, format!("{what}.forward.target_group"), &tg.body);
                        let arn = g
                            .get(cx, "arn")
                            .as_ref()
                            .and_then(named)
                            .unwrap_or_default();
                        let w = g.get(cx, "weight").and_then(|v| v.num()).unwrap_or(1.0);
                        groups.push(format!(
                            "{{ target_group = {}, weight = {} }}",
                            toml_str(&arn),
                            crate::number(w)
                        ));
                        g.finish(cx, &[]);
                    }
                }
                format!("{{ forward = [{}] }}", groups.join(", "))
            }
        }
        "redirect" => {
            let mut parts = Vec::new();
            for r in a.blocks("redirect") {
                let mut ra = Args::new(file, format!("{what}.redirect"), &r.body);
                if let Some(s) = ra.get(cx, "status_code").and_then(|v| v.str()) {
                    parts.push(format!("status = {}", s.trim_start_matches("HTTP_")));
                }
                for key in ["protocol", "host", "port", "path", "query"] {
                    if let Some(v) = ra.get(cx, key).and_then(|v| v.str()) {
                        let v = if key == "protocol" && !v.starts_with("#{") {
                            v.to_lowercase()
                        } else {
                            v
                        };
                        parts.push(format!("{key} = {}", toml_str(&v)));
                    }
                }
                ra.finish(cx, &[]);
            }
            format!("{{ redirect = {{ {} }} }}", parts.join(", "))
        }
        "fixed-response" => {
            let mut parts = Vec::new();
            for f in a.blocks("fixed_response") {
                let mut fa = Args::new(file, format!("{what}.fixed_response"), &f.body);
                if let Some(s) = fa.get(cx, "status_code").and_then(|v| v.str()) {
                    parts.push(format!("status = {s}"));
                }
                if let Some(s) = fa.get(cx, "content_type").and_then(|v| v.str()) {
                    parts.push(format!("content_type = {}", toml_str(&s)));
                }
                if let Some(s) = fa.get(cx, "message_body").and_then(|v| v.str()) {
                    parts.push(format!("body = {}", toml_str(&s)));
                }
                fa.finish(cx, &[]);
            }
            format!("{{ fixed_response = {{ {} }} }}", parts.join(", "))
        }
        other => {
            cx.warn(
                file,
                b.span(),
                format!("{what}: action type `{other}` is not imported; the action answers 503"),
            );
            "{ fixed_response = { status = 503, content_type = \"text/plain\", body = \"not imported\" } }".to_owned()
        }
    };
    a.finish(cx, &["order"]);
    text
}

/// The command, environment and setup of user data that ends with `exec COMMAND`, as
/// `bellows export terraform` writes it (other scripts: the whole script is setup).
fn user_data(script: &str) -> (Vec<String>, BTreeMap<String, String>, Option<String>) {
    let mut env = BTreeMap::new();
    let mut setup = Vec::new();
    let mut command = Vec::new();
    for line in script.lines() {
        if line.starts_with("#!") || line == "set -e" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("exec ") {
            command = shell_words(rest);
        } else if let Some(rest) = line.strip_prefix("export ")
            && let Some((k, v)) = rest.split_once('=')
            && !v.contains("$(")
        {
            let v = shell_words(v).join(" ");
            env.insert(k.to_owned(), v);
        } else if line.starts_with("export ") || line.starts_with("mkdir -p \"$BELLOWS_DATA_DIR\"")
        {
            // bellows' own variables, set by bellows itself.
        } else {
            setup.push(line);
        }
    }
    let setup = (!setup.is_empty()).then(|| setup.join("\n"));
    (command, env, setup)
}

/// Splits `'a' 'b c' d` as the shell does for single quotes and bare words.
fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ' ' | '\t' => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests;
