//! AWS JSON 1.0 bodies to and from [`Value`]: timestamps are epoch seconds, numbers.

use crate::value::Value;

/// A request body: one JSON object (an empty body is an empty one).
pub fn decode(body: &[u8]) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::object());
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    if !v.is_object() {
        return Err("the body must be a JSON object".to_owned());
    }
    Ok(from_json(v))
}

fn from_json(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::Str(s),
        serde_json::Value::Array(items) => Value::List(items.into_iter().map(from_json).collect()),
        serde_json::Value::Object(members) => Value::Struct(
            members
                .into_iter()
                .map(|(k, v)| (k, from_json(v)))
                .collect(),
        ),
    }
}

fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) | Value::Time(f) => serde_json::Number::from_f64(*f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::Str(s) => s.as_str().into(),
        Value::Blob(b) => String::from_utf8_lossy(b).into_owned().into(),
        Value::List(items) => items.iter().map(to_json).collect(),
        Value::Struct(members) | Value::Map(members) => members
            .iter()
            .filter(|(_, v)| *v != Value::Null)
            .map(|(k, v)| (k.clone(), to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

/// An answer body; `Null` is `{}`.
pub fn encode(v: &Value) -> Vec<u8> {
    let j = match v {
        Value::Null => serde_json::Value::Object(serde_json::Map::new()),
        v => to_json(v),
    };
    serde_json::to_vec(&j).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_timestamps() {
        let v = decode(br#"{"StartTime": 1796193600, "Value": 1.5, "Names": ["a"]}"#).unwrap();
        assert_eq!(v.get("StartTime"), Some(&Value::Int(1_796_193_600)));
        assert_eq!(v.get("Value"), Some(&Value::Float(1.5)));
        assert_eq!(
            String::from_utf8(encode(&Value::object().with("At", Value::Time(1.5)))).unwrap(),
            r#"{"At":1.5}"#
        );
        assert!(decode(b"[1]").is_err());
        assert!(decode(b"{").is_err());
        assert_eq!(decode(b"").unwrap(), Value::object());
    }
}
