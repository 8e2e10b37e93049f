//! The XML the Query and EC2 protocols answer with: a small writer, no parser (requests
//! are forms).

use crate::time;
use crate::value::Value;

/// How lists are written: Query's `<member>` or EC2's `<item>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lists {
    Member,
    Item,
}

/// Appends `<name>value</name>`; `Null` writes nothing.
pub fn element(out: &mut String, name: &str, value: &Value, lists: Lists) {
    if *value == Value::Null {
        return;
    }
    out.push('<');
    out.push_str(name);
    out.push('>');
    content(out, value, lists);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// Appends what goes between a value's tags.
pub fn content(out: &mut String, value: &Value, lists: Lists) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&float(*f)),
        Value::Str(s) => escape_into(out, s),
        Value::Blob(b) => escape_into(out, &String::from_utf8_lossy(b)),
        Value::Time(t) => out.push_str(&time::format(*t)),
        Value::List(items) => {
            let tag = match lists {
                Lists::Member => "member",
                Lists::Item => "item",
            };
            for item in items {
                element(out, tag, item, lists);
            }
        }
        Value::Struct(members) => {
            for (name, v) in members {
                element(out, name, v, lists);
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                out.push_str("<entry>");
                element(out, "key", &Value::Str(k.clone()), lists);
                element(out, "value", v, lists);
                out.push_str("</entry>");
            }
        }
    }
}

/// A number as botocore's `float()` reads it; AWS writes whole numbers as `1.0`.
pub fn float(f: f64) -> String {
    if !f.is_finite() {
        return "0.0".to_owned();
    }
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.1}")
    } else {
        f.to_string()
    }
}

/// Text with XML's five specials escaped, and characters XML 1.0 cannot carry replaced.
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structures_lists_and_maps() {
        let v = Value::object()
            .with("Name", "a<b & \"c\"")
            .with("Names", Value::List(vec!["x".into(), "y".into()]))
            .with("Count", 2i64)
            .with("Value", 3.0)
            .with("At", Value::Time(0.0))
            .with("Tags", Value::Map(vec![("k".to_owned(), "v".into())]));
        let mut out = String::new();
        content(&mut out, &v, Lists::Member);
        assert_eq!(
            out,
            "<Name>a&lt;b &amp; &quot;c&quot;</Name><Names><member>x</member><member>y</member></Names>\
             <Count>2</Count><Value>3.0</Value><At>1970-01-01T00:00:00.000Z</At>\
             <Tags><entry><key>k</key><value>v</value></entry></Tags>"
        );
        let mut out = String::new();
        content(
            &mut out,
            &Value::object().with("groupSet", vec!["sg-1"]),
            Lists::Item,
        );
        assert_eq!(out, "<groupSet><item>sg-1</item></groupSet>");
    }

    #[test]
    fn control_characters_do_not_break_the_document() {
        let mut out = String::new();
        escape_into(&mut out, "a\u{1}b");
        assert_eq!(out, "a\u{FFFD}b");
    }
}
