//! One tree for every protocol's input and output.
//!
//! A Query form, a JSON document and a CBOR map all decode to a [`Value`], and a handler's
//! answer is one [`Value`] that each protocol encodes its own way. Form values arrive as
//! strings, so the accessors convert (`"0"` is the number 0, `"true"` the boolean); JSON
//! and CBOR carry real numbers, booleans and timestamps.

use crate::error::AwsError;
use crate::time;

/// A value on the wire, whatever the protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Absent: an output field left out.
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Blob(Vec<u8>),
    /// A timestamp, in seconds since the Unix epoch (ISO 8601 in XML, a number in JSON,
    /// tag 1 in CBOR).
    Time(f64),
    List(Vec<Value>),
    /// A structure: members in the order they are written.
    Struct(Vec<(String, Value)>),
    /// A map shape (Query: `entry`/`key`/`value`; JSON and CBOR: an object).
    Map(Vec<(String, Value)>),
}

impl Value {
    /// An empty structure to add members to.
    pub fn object() -> Value {
        Value::Struct(Vec::new())
    }

    /// Adds a member (a structure's); `Null` members are kept out.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Value {
        self.set(name, value);
        self
    }

    /// Sets a member of a structure or map, replacing one of the same name.
    pub fn set(&mut self, name: &str, value: impl Into<Value>) {
        let value = value.into();
        if let Value::Struct(members) | Value::Map(members) = self {
            members.retain(|(n, _)| n != name);
            if value != Value::Null {
                members.push((name.to_owned(), value));
            }
        }
    }

    /// A member of a structure or map.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(members) | Value::Map(members) => members
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v)
                .filter(|v| **v != Value::Null),
            _ => None,
        }
    }

    /// A list's items. An empty string stands for an empty list in a Query form
    /// (`Name=` is how botocore sends `[]`), and a single value for a list of one.
    pub fn items(&self) -> Vec<&Value> {
        match self {
            Value::List(items) => items.iter().collect(),
            Value::Str(s) if s.is_empty() => Vec::new(),
            Value::Null => Vec::new(),
            other => vec![other],
        }
    }

    /// A structure or map's members.
    pub fn members(&self) -> &[(String, Value)] {
        match self {
            Value::Struct(m) | Value::Map(m) => m,
            _ => &[],
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Blob(_) => "a blob",
            Value::Time(_) => "a timestamp",
            Value::List(_) => "a list",
            Value::Struct(_) | Value::Map(_) => "a structure",
        }
    }

    /// The value as text (numbers are written as they would be in a form).
    pub fn as_str(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(s) => s.trim().parse().ok().filter(|f: &f64| f.is_finite()),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9e15 => Some(*f as i64),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Str(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::Str(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }

    /// Seconds since the epoch: a timestamp, a number, or ISO 8601 text (as the Query
    /// protocol sends them).
    pub fn as_time(&self) -> Option<f64> {
        match self {
            Value::Time(t) => Some(*t),
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(s) => time::parse(s).or_else(|| s.parse().ok()),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<&String> for Value {
    fn from(s: &String) -> Value {
        Value::Str(s.clone())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<u32> for Value {
    fn from(i: u32) -> Value {
        Value::Int(i64::from(i))
    }
}

impl From<u16> for Value {
    fn from(i: u16) -> Value {
        Value::Int(i64::from(i))
    }
}

impl From<usize> for Value {
    fn from(i: usize) -> Value {
        Value::Int(i64::try_from(i).unwrap_or(i64::MAX))
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Value {
        o.map_or(Value::Null, Into::into)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Value {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}

/// A request's parameters, with accessors that answer in the service's own error codes.
#[derive(Debug, Clone)]
pub struct Input {
    root: Value,
    /// How the service calls a bad value (`ValidationError` or `InvalidParameterValue`).
    invalid_code: &'static str,
    /// How the service calls a missing one.
    missing_code: &'static str,
}

impl Input {
    pub fn new(root: Value, invalid_code: &'static str, missing_code: &'static str) -> Input {
        Input {
            root,
            invalid_code,
            missing_code,
        }
    }

    /// The whole tree.
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// A member, wherever it is: `get("Preferences")`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.root.get(name)
    }

    /// The error a bad value gets in this service.
    pub fn invalid(&self, message: impl Into<String>) -> AwsError {
        AwsError::new(400, self.invalid_code, message)
    }

    fn missing(&self, name: &str) -> AwsError {
        let message = if self.missing_code.starts_with("Validation") {
            format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                lower_first(name)
            )
        } else {
            format!("The request must contain the parameter {name}.")
        };
        AwsError::new(400, self.missing_code, message)
    }

    fn wrong(&self, name: &str, want: &str, got: &Value) -> AwsError {
        self.invalid(format!(
            "Value for parameter {name} must be {want}, not {}",
            got.kind()
        ))
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<String>, AwsError> {
        opt_str_of(&self.root, name).map_err(|got| self.wrong(name, "a string", got))
    }

    pub fn str(&self, name: &str) -> Result<String, AwsError> {
        self.opt_str(name)?.ok_or_else(|| self.missing(name))
    }

    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, AwsError> {
        match self.root.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.wrong(name, "an integer", v)),
        }
    }

    pub fn i64(&self, name: &str) -> Result<i64, AwsError> {
        self.opt_i64(name)?.ok_or_else(|| self.missing(name))
    }

    /// An integer that must fit in 0..=u32::MAX.
    pub fn opt_u32(&self, name: &str) -> Result<Option<u32>, AwsError> {
        match self.opt_i64(name)? {
            None => Ok(None),
            Some(i) => u32::try_from(i).map(Some).map_err(|_| {
                self.invalid(format!("Value {i} for parameter {name} is out of range"))
            }),
        }
    }

    pub fn u32(&self, name: &str) -> Result<u32, AwsError> {
        self.opt_u32(name)?.ok_or_else(|| self.missing(name))
    }

    pub fn opt_f64(&self, name: &str) -> Result<Option<f64>, AwsError> {
        match self.root.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.wrong(name, "a number", v)),
        }
    }

    pub fn f64(&self, name: &str) -> Result<f64, AwsError> {
        self.opt_f64(name)?.ok_or_else(|| self.missing(name))
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, AwsError> {
        match self.root.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong(name, "true or false", v)),
        }
    }

    pub fn opt_time(&self, name: &str) -> Result<Option<f64>, AwsError> {
        match self.root.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_time()
                .map(Some)
                .ok_or_else(|| self.wrong(name, "a timestamp", v)),
        }
    }

    pub fn time(&self, name: &str) -> Result<f64, AwsError> {
        self.opt_time(name)?.ok_or_else(|| self.missing(name))
    }

    /// A list of strings (empty when absent).
    pub fn strings(&self, name: &str) -> Result<Vec<String>, AwsError> {
        let Some(v) = self.root.get(name) else {
            return Ok(Vec::new());
        };
        v.items()
            .into_iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| self.wrong(name, "a list of strings", item))
            })
            .collect()
    }

    /// A list of structures, each as an [`Input`] of its own (empty when absent).
    pub fn list(&self, name: &str) -> Vec<Input> {
        self.root.get(name).map_or_else(Vec::new, |v| {
            v.items()
                .into_iter()
                .map(|item| self.child(item.clone()))
                .collect()
        })
    }

    /// A nested structure as an [`Input`] of its own (an empty one when absent).
    pub fn nested(&self, name: &str) -> Input {
        self.child(self.root.get(name).cloned().unwrap_or_else(Value::object))
    }

    fn child(&self, root: Value) -> Input {
        Input {
            root,
            invalid_code: self.invalid_code,
            missing_code: self.missing_code,
        }
    }
}

fn opt_str_of<'a>(root: &'a Value, name: &str) -> Result<Option<String>, &'a Value> {
    match root.get(name) {
        None => Ok(None),
        Some(v) => v.as_str().map(Some).ok_or(v),
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_strings_convert_to_what_the_accessor_asks_for() {
        let v = Value::object()
            .with("DesiredCapacity", "3")
            .with("HonorCooldown", "true")
            .with("Value", "1.5")
            .with("StartTime", "2026-12-02T06:40:00Z")
            .with("Names", Value::List(vec!["a".into(), "b".into()]))
            .with("Empty", "");
        let input = Input::new(v, "ValidationError", "ValidationError");
        assert_eq!(input.u32("DesiredCapacity").unwrap(), 3);
        assert_eq!(input.opt_bool("HonorCooldown").unwrap(), Some(true));
        assert_eq!(input.f64("Value").unwrap(), 1.5);
        assert_eq!(input.time("StartTime").unwrap(), 1_796_193_600.0);
        assert_eq!(input.strings("Names").unwrap(), ["a", "b"]);
        assert!(input.strings("Empty").unwrap().is_empty());
        assert!(input.strings("Absent").unwrap().is_empty());
    }

    #[test]
    fn a_missing_or_bad_parameter_gets_the_services_code() {
        let input = Input::new(
            Value::object().with("DesiredCapacity", "three"),
            "ValidationError",
            "ValidationError",
        );
        let e = input.u32("DesiredCapacity").unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (400, "ValidationError"));
        let e = input.str("AutoScalingGroupName").unwrap_err();
        assert!(
            e.message.contains("'autoScalingGroupName'"),
            "{}",
            e.message
        );
        let ec2 = Input::new(Value::object(), "InvalidParameterValue", "MissingParameter");
        let e = ec2.str("GroupId").unwrap_err();
        assert_eq!(e.code, "MissingParameter");
        let e = Input::new(
            Value::object().with("N", "-1"),
            "InvalidParameterValue",
            "MissingParameter",
        )
        .u32("N")
        .unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
    }

    #[test]
    fn null_members_are_left_out() {
        let v = Value::object()
            .with("A", Option::<String>::None)
            .with("B", 1i64);
        assert_eq!(v.members().len(), 1);
        assert_eq!(v.get("A"), None);
    }
}
