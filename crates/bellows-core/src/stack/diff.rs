//! The difference between the running stack and a new one, as `bellows apply` shows it
//! before it swaps the new one in: what is added, removed or modified, field by field,
//! and which of those changes a running stack cannot take.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::Stack;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Add,
    Remove,
    Modify,
}

/// One field that differs, as a dotted path (`health_check.interval`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldChange {
    pub path: String,
    pub before: Value,
    pub after: Value,
}

/// One named part of the stack that differs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// `stack`, `group`, `target_group`, `listener`, `alarm`, `policy`, `scheduled`,
    /// `webhook`, `check` or `incidents`.
    pub kind: &'static str,
    pub name: String,
    pub op: Op,
    /// For a modification, the fields that differ.
    pub fields: Vec<FieldChange>,
}

impl Change {
    /// Whether `path` (or a field under it) is among the changed fields.
    pub fn touches(&self, path: &str) -> bool {
        self.fields.iter().any(|f| {
            f.path == path
                || f.path
                    .strip_prefix(path)
                    .is_some_and(|rest| rest.starts_with('.'))
        })
    }
}

/// Every difference from `old` to `new`, in a stable order.
pub fn diff(old: &Stack, new: &Stack) -> Vec<Change> {
    let mut out = Vec::new();
    let settings = |s: &Stack| {
        serde_json::json!({
            "name": s.name,
            "control": s.control,
            "state_dir": s.state_dir,
            "instance_network": s.instance_network,
            "region": s.region,
            // Named apart from the stack only when `[stack]` says so.
            "load_balancer": (s.load_balancer != s.name).then_some(&s.load_balancer),
            "aws": s.aws,
        })
    };
    let fields = fields_of(&settings(old), &settings(new));
    if !fields.is_empty() {
        out.push(Change {
            kind: "stack",
            name: new.name.clone(),
            op: Op::Modify,
            fields,
        });
    }
    named(&mut out, "group", &old.groups, &new.groups, |g| &g.name);
    named(
        &mut out,
        "target_group",
        &old.target_groups,
        &new.target_groups,
        |t| &t.name,
    );
    named(&mut out, "listener", &old.listeners, &new.listeners, |l| {
        &l.name
    });
    named(&mut out, "alarm", &old.alarms, &new.alarms, |a| &a.name);
    named(&mut out, "policy", &old.policies, &new.policies, |p| {
        &p.name
    });
    named(&mut out, "scheduled", &old.scheduled, &new.scheduled, |a| {
        &a.name
    });
    named(&mut out, "webhook", &old.webhooks, &new.webhooks, |w| {
        &w.name
    });
    named(&mut out, "check", &old.checks, &new.checks, |c| &c.name);
    let fields = fields_of(&to_value(&old.incidents), &to_value(&new.incidents));
    if !fields.is_empty() {
        out.push(Change {
            kind: "incidents",
            name: "incidents".to_owned(),
            op: Op::Modify,
            fields,
        });
    }
    out
}

/// Why a running stack cannot take these changes (empty: it can). Listeners, target
/// groups and groups are added, changed and removed at run time (a listener's address
/// too: the load balancer binds the new one first); what names the stack's state or
/// how bellows was started does not change while it runs.
pub fn unsupported(changes: &[Change]) -> Vec<String> {
    let mut why = Vec::new();
    for c in changes {
        match (c.kind, c.op) {
            ("stack", _) => {
                for f in &c.fields {
                    why.push(format!(
                        "[stack] {} cannot change while the stack runs (restart bellows with the new file)",
                        f.path
                    ));
                }
            }
            ("group", Op::Modify) if c.touches("scale_from_zero") => why.push(format!(
                "group `{}`: scale_from_zero cannot change while it runs",
                c.name
            )),
            _ => {}
        }
    }
    why
}

/// What a running stack cannot take from `new`: the changes `unsupported` names. (A
/// target group that starts or stops receiving traffic is taken: its targets' health
/// checks start or stop.)
pub fn refused(_old: &Stack, _new: &Stack, changes: &[Change]) -> Vec<String> {
    unsupported(changes)
}

fn named<T: Serialize>(
    out: &mut Vec<Change>,
    kind: &'static str,
    old: &[T],
    new: &[T],
    name: impl Fn(&T) -> &String,
) {
    let old: BTreeMap<&String, &T> = old.iter().map(|t| (name(t), t)).collect();
    let new: BTreeMap<&String, &T> = new.iter().map(|t| (name(t), t)).collect();
    for (n, before) in &old {
        match new.get(n) {
            None => out.push(Change {
                kind,
                name: (*n).clone(),
                op: Op::Remove,
                fields: Vec::new(),
            }),
            Some(after) => {
                let fields = fields_of(&to_value(before), &to_value(after));
                if !fields.is_empty() {
                    out.push(Change {
                        kind,
                        name: (*n).clone(),
                        op: Op::Modify,
                        fields,
                    });
                }
            }
        }
    }
    for n in new.keys().filter(|n| !old.contains_key(*n)) {
        out.push(Change {
            kind,
            name: (*n).clone(),
            op: Op::Add,
            fields: Vec::new(),
        });
    }
}

fn to_value<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// The leaves that differ between two JSON values, by dotted path.
fn fields_of(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out
}

fn walk(path: &str, before: &Value, after: &Value, out: &mut Vec<FieldChange>) {
    if before == after {
        return;
    }
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(
                    &sub,
                    b.get(k).unwrap_or(&Value::Null),
                    a.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ => out.push(FieldChange {
            path: path.to_owned(),
            before: before.clone(),
            after: after.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::parse;

    const BASE: &str = r#"
[stack]
name = "shop"

[target_groups.web]
algorithm = "round_robin"

[target_groups.web.health_check]
path = "/health"
interval = "5s"

[listeners.http]
address = "127.0.0.1:8080"
default = { forward = "web" }

[groups.web]
min = 1
max = 4
desired = 2
target_groups = ["web"]

[groups.web.launch]
command = ["bellows", "app", "echo"]
"#;

    fn changed(from: &str, to: &str) -> String {
        let a = parse(BASE).unwrap();
        let b = parse(&BASE.replace(from, to)).unwrap();
        let changes = diff(&a, &b);
        let mut text = String::new();
        for c in &changes {
            text += &format!("{:?} {} {}:", c.op, c.kind, c.name);
            for f in &c.fields {
                text += &format!(" {}={}->{}", f.path, f.before, f.after);
            }
            text += "\n";
        }
        for why in unsupported(&changes) {
            text += &format!("refused: {why}\n");
        }
        text
    }

    #[test]
    fn the_same_stack_has_no_difference() {
        let a = parse(BASE).unwrap();
        assert!(diff(&a, &a.clone()).is_empty());
    }

    #[test]
    fn each_change_names_its_fields_and_what_a_running_stack_refuses() {
        expect_test::expect![[r#"
            Modify target_group web: algorithm="round_robin"->"least_outstanding_requests" health_check.interval="5s"->"1s" health_check.timeout="2s"->"1s"
        "#]]
        .assert_eq(&changed(
            "algorithm = \"round_robin\"\n\n[target_groups.web.health_check]\npath = \"/health\"\ninterval = \"5s\"",
            "algorithm = \"least_outstanding_requests\"\n\n[target_groups.web.health_check]\npath = \"/health\"\ninterval = \"1s\"",
        ));
        let text = changed("\"app\", \"echo\"]", "\"app\", \"seed\"]");
        assert!(
            text.starts_with("Modify group web: launch.command="),
            "{text}"
        );
        assert!(!text.contains("refused"), "{text}");
        expect_test::expect![[r#"
            Modify listener http: address="127.0.0.1:8080"->"127.0.0.1:8081"
        "#]]
        .assert_eq(&changed("127.0.0.1:8080", "127.0.0.1:8081"));
        expect_test::expect![[r#"
            Modify stack shop2: name="shop"->"shop2"
            refused: [stack] name cannot change while the stack runs (restart bellows with the new file)
        "#]]
        .assert_eq(&changed("name = \"shop\"", "name = \"shop2\""));
        let text = changed(
            "[groups.web]",
            "[groups.api]\nmin = 0\nmax = 1\n\n[groups.api.launch]\ncommand = [\"x\"]\n\n[groups.web]",
        );
        assert_eq!(text, "Add group api:\n", "{text}");
    }

    #[test]
    fn listeners_target_groups_and_groups_come_and_go_and_only_the_stacks_own_settings_are_refused()
    {
        let two = BASE.replace(
            "[listeners.http]",
            "[target_groups.canary]\n\n[listeners.http]",
        );
        let a = parse(&two).unwrap();
        let b = parse(&two.replace(
            "default = { forward = \"web\" }",
            "default = { forward = \"canary\" }",
        ))
        .unwrap();
        assert_eq!(refused(&a, &b, &diff(&a, &b)), Vec::<String>::new());
        // A second listener, target group and group, all at once.
        let more = BASE.to_owned()
            + r#"
[target_groups.api]

[listeners.api]
address = "127.0.0.1:8081"
default = { forward = "api" }

[groups.api]
min = 1
max = 1
target_groups = ["api", "web"]

[groups.api.launch]
command = ["bellows", "app", "echo"]
"#;
        let m = parse(&more).unwrap();
        let base = parse(BASE).unwrap();
        let there = diff(&base, &m);
        let ops: Vec<String> = there
            .iter()
            .map(|c| format!("{:?} {} {}", c.op, c.kind, c.name))
            .collect();
        assert_eq!(
            ops,
            ["Add group api", "Add target_group api", "Add listener api"]
        );
        assert!(unsupported(&there).is_empty());
        let back = diff(&m, &base);
        assert!(back.iter().all(|c| c.op == Op::Remove), "{back:?}");
        assert!(unsupported(&back).is_empty());
        // A group's target groups change; scale_from_zero still cannot.
        let text = changed("target_groups = [\"web\"]", "target_groups = []");
        assert!(
            text.starts_with("Modify group web: target_groups"),
            "{text}"
        );
        assert!(!text.contains("refused"), "{text}");
        let text = changed("desired = 2", "desired = 2\nscale_from_zero = false");
        assert!(
            text.contains("refused: group `web`: scale_from_zero cannot change while it runs"),
            "{text}"
        );
    }
}
