//! A small YAML writer over JSON values: block style, keys in the order given, and every
//! string double-quoted, so that `yes`, `on`, `1.0` or `0755` stay strings for any
//! YAML 1.1 or 1.2 reader. Its output is deterministic, to be committed and diffed.

use serde_json::Value;

/// One YAML document of `v`, ending with a newline.
pub fn document(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => seq(&mut out, a, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

/// Several documents separated by `---`.
pub fn stream(docs: &[Value]) -> String {
    docs.iter().map(document).collect::<Vec<_>>().join("---\n")
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        // JSON's string escapes are valid in YAML's double-quoted style.
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(_) => "[]".to_owned(),
        Value::Object(_) => "{}".to_owned(),
    }
}

/// A key plain when it cannot be read as anything but that string, quoted otherwise.
fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.starts_with(|c: char| c.is_ascii_alphabetic())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain {
        k.to_owned()
    } else {
        Value::String(k.to_owned()).to_string()
    }
}

fn is_block(v: &Value) -> bool {
    matches!(v, Value::Object(m) if !m.is_empty()) || matches!(v, Value::Array(a) if !a.is_empty())
}

fn map(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    let pad = " ".repeat(indent);
    for (i, (k, v)) in m.iter().enumerate() {
        // The first key of a map in a sequence item follows the `- ` on its line.
        if i > 0 || !out.ends_with("- ") {
            out.push_str(&pad);
        }
        out.push_str(&key(k));
        out.push(':');
        entry(out, v, indent);
    }
}

fn seq(out: &mut String, a: &[Value], indent: usize) {
    let pad = " ".repeat(indent);
    for v in a {
        out.push_str(&pad);
        out.push_str("- ");
        match v {
            Value::Object(m) if !m.is_empty() => map(out, m, indent + 2),
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                seq(out, inner, indent + 2);
            }
            other => {
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn entry(out: &mut String, v: &Value, indent: usize) {
    if is_block(v) {
        out.push('\n');
        match v {
            Value::Object(m) => map(out, m, indent + 2),
            Value::Array(a) => seq(out, a, indent),
            _ => unreachable!("is_block"),
        }
    } else {
        out.push(' ');
        out.push_str(&scalar(v));
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_are_always_quoted_and_nesting_is_block_style() {
        let v = json!({
            "apiVersion": "v1",
            "yes": "on",
            "n": 3,
            "list": [{"name": "a", "ports": [80, 443]}, "no", []],
            "empty": {},
            "labels": {"app.kubernetes.io/name": "web"},
            "nested": {"deep": {"x": true}},
            "text": "line\nbreak \"q\""
        });
        // serde_json's map keeps keys sorted: the order is fixed, whatever built it.
        let want = r#"apiVersion: "v1"
empty: {}
labels:
  app.kubernetes.io/name: "web"
list:
- name: "a"
  ports:
  - 80
  - 443
- "no"
- []
"n": 3
nested:
  deep:
    x: true
text: "line\nbreak \"q\""
"yes": "on"
"#;
        assert_eq!(document(&v), want);
    }
}
