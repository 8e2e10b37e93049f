//! Attribute values (`{"S": "x"}`, `{"N": "1"}`, ...) to and from the wire, their
//! comparison, sizes, and the byte keys items are stored under.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::number::Decimal;
use crate::value::Value;

/// An item: attribute names to values.
pub type Item = BTreeMap<String, Attr>;

/// One attribute value. Sets are kept sorted, so that equal sets are equal structurally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    S(String),
    N(Decimal),
    B(Vec<u8>),
    Bool(bool),
    Null,
    L(Vec<Attr>),
    M(Item),
    Ss(Vec<String>),
    Ns(Vec<Decimal>),
    Bs(Vec<Vec<u8>>),
}

/// The three types a key attribute may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    S,
    N,
    B,
}

impl Scalar {
    pub fn parse(s: &str) -> Option<Scalar> {
        match s {
            "S" => Some(Scalar::S),
            "N" => Some(Scalar::N),
            "B" => Some(Scalar::B),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scalar::S => "S",
            Scalar::N => "N",
            Scalar::B => "B",
        }
    }
}

/// Why a value on the wire is not an attribute value, in DynamoDB's words.
pub type AttrError = String;

impl Attr {
    /// The wire name of the value's type (`S`, `SS`, `BOOL`...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Attr::S(_) => "S",
            Attr::N(_) => "N",
            Attr::B(_) => "B",
            Attr::Bool(_) => "BOOL",
            Attr::Null => "NULL",
            Attr::L(_) => "L",
            Attr::M(_) => "M",
            Attr::Ss(_) => "SS",
            Attr::Ns(_) => "NS",
            Attr::Bs(_) => "BS",
        }
    }

    pub fn scalar(&self) -> Option<Scalar> {
        match self {
            Attr::S(_) => Some(Scalar::S),
            Attr::N(_) => Some(Scalar::N),
            Attr::B(_) => Some(Scalar::B),
            _ => None,
        }
    }

    /// Reads `{"TYPE": value}`.
    pub fn from_value(v: &Value) -> Result<Attr, AttrError> {
        let members = match v {
            Value::Struct(m) | Value::Map(m) => m,
            _ => {
                return Err(
                    "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"
                        .to_owned(),
                );
            }
        };
        let set: Vec<&(String, Value)> =
            members.iter().filter(|(_, v)| *v != Value::Null).collect();
        let (kind, inner) = match set[..] {
            [one] => (one.0.as_str(), &one.1),
            [] => {
                return Err(
                    "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"
                        .to_owned(),
                );
            }
            _ => {
                return Err(
                    "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes"
                        .to_owned(),
                );
            }
        };
        let text = |v: &Value| match v {
            Value::Str(s) => Ok(s.clone()),
            _ => Err(format!(
                "Start of structure or map found where not expected for {kind}"
            )),
        };
        let list = |v: &Value| match v {
            Value::List(items) => Ok(items.clone()),
            _ => Err(format!(
                "Unexpected value type for {kind}: a list is required"
            )),
        };
        Ok(match kind {
            "S" => Attr::S(text(inner)?),
            "N" => Attr::N(Decimal::parse(&text(inner)?)?),
            "B" => Attr::B(blob(&text(inner)?)?),
            "BOOL" => match inner {
                Value::Bool(b) => Attr::Bool(*b),
                _ => return Err("BOOL must be true or false".to_owned()),
            },
            "NULL" => match inner {
                Value::Bool(true) => Attr::Null,
                _ => {
                    return Err(
                        "One or more parameter values were invalid: Null attribute value types must have the value of true"
                            .to_owned(),
                    );
                }
            },
            "L" => Attr::L(
                list(inner)?
                    .iter()
                    .map(Attr::from_value)
                    .collect::<Result<_, _>>()?,
            ),
            "M" => Attr::M(item_from_value(inner)?),
            "SS" => {
                let items: Vec<String> = list(inner)?.iter().map(text).collect::<Result<_, _>>()?;
                Attr::Ss(sorted_set(items, "string", |a, b| a.cmp(b), |s| s.clone())?)
            }
            "NS" => {
                let items: Vec<Decimal> = list(inner)?
                    .iter()
                    .map(|v| text(v).and_then(|s| Decimal::parse(&s)))
                    .collect::<Result<_, _>>()?;
                Attr::Ns(sorted_set(items, "number", Ord::cmp, ToString::to_string)?)
            }
            "BS" => {
                let items: Vec<Vec<u8>> = list(inner)?
                    .iter()
                    .map(|v| text(v).and_then(|s| blob(&s)))
                    .collect::<Result<_, _>>()?;
                Attr::Bs(sorted_set(
                    items,
                    "binary",
                    |a, b| a.cmp(b),
                    |b| STANDARD.encode(b),
                )?)
            }
            other => {
                return Err(format!(
                    "Supplied AttributeValue has an unknown datatype {other}, must contain exactly one of the supported datatypes"
                ));
            }
        })
    }

    /// `{"TYPE": value}` for the wire.
    pub fn to_value(&self) -> Value {
        let one = |k: &str, v: Value| Value::Struct(vec![(k.to_owned(), v)]);
        match self {
            Attr::S(s) => one("S", Value::Str(s.clone())),
            Attr::N(n) => one("N", Value::Str(n.to_string())),
            Attr::B(b) => one("B", Value::Str(STANDARD.encode(b))),
            Attr::Bool(b) => one("BOOL", Value::Bool(*b)),
            Attr::Null => one("NULL", Value::Bool(true)),
            Attr::L(items) => one("L", Value::List(items.iter().map(Attr::to_value).collect())),
            Attr::M(m) => one("M", item_to_value(m)),
            Attr::Ss(s) => one(
                "SS",
                Value::List(s.iter().map(|s| Value::Str(s.clone())).collect()),
            ),
            Attr::Ns(s) => one(
                "NS",
                Value::List(s.iter().map(|n| Value::Str(n.to_string())).collect()),
            ),
            Attr::Bs(s) => one(
                "BS",
                Value::List(s.iter().map(|b| Value::Str(STANDARD.encode(b))).collect()),
            ),
        }
    }

    /// The value's size as DynamoDB counts it towards an item's 400 KB.
    pub fn size(&self) -> usize {
        match self {
            Attr::S(s) => s.len(),
            Attr::N(n) => n.significant_digits().div_ceil(2) + 1,
            Attr::B(b) => b.len(),
            Attr::Bool(_) | Attr::Null => 1,
            Attr::L(items) => 3 + items.iter().map(|a| a.size() + 1).sum::<usize>(),
            Attr::M(m) => 3 + m.iter().map(|(k, a)| k.len() + a.size() + 1).sum::<usize>(),
            Attr::Ss(s) => s.iter().map(String::len).sum(),
            Attr::Ns(s) => s
                .iter()
                .map(|n| n.significant_digits().div_ceil(2) + 1)
                .sum(),
            Attr::Bs(s) => s.iter().map(Vec::len).sum(),
        }
    }

    /// The order of `<`, `BETWEEN` and sort keys: only between two strings (by their
    /// UTF-8 bytes), two numbers, or two binaries (unsigned bytes).
    pub fn compare(&self, other: &Attr) -> Option<Ordering> {
        match (self, other) {
            (Attr::S(a), Attr::S(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (Attr::N(a), Attr::N(b)) => Some(a.cmp(b)),
            (Attr::B(a), Attr::B(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// The bytes a key value is stored under: its type and its canonical form, so that
    /// equal keys (`1` and `1.0`) meet.
    pub fn key_bytes(&self) -> Vec<u8> {
        let (tag, body): (u8, Vec<u8>) = match self {
            Attr::S(s) => (b'S', s.as_bytes().to_vec()),
            Attr::N(n) => (b'N', n.order_bytes()),
            Attr::B(b) => (b'B', b.clone()),
            // Only scalars are keys; anything else never meets a key.
            other => (b'?', other.type_name().as_bytes().to_vec()),
        };
        let mut out = Vec::with_capacity(body.len() + 1);
        out.push(tag);
        out.extend(body);
        out
    }
}

fn blob(s: &str) -> Result<Vec<u8>, AttrError> {
    STANDARD
        .decode(s.trim())
        .map_err(|_| format!("Invalid Base64 value for a binary attribute: {s}"))
}

fn sorted_set<T>(
    mut items: Vec<T>,
    kind: &str,
    cmp: impl Fn(&T, &T) -> Ordering,
    show: impl Fn(&T) -> String,
) -> Result<Vec<T>, AttrError> {
    if items.is_empty() {
        return Err(format!(
            "One or more parameter values were invalid: An {kind} set  may not be empty"
        ));
    }
    let listed: Vec<String> = items.iter().map(&show).collect();
    items.sort_by(&cmp);
    if items
        .windows(2)
        .any(|w| cmp(&w[0], &w[1]) == Ordering::Equal)
    {
        return Err(format!(
            "One or more parameter values were invalid: Input collection [{}] contains duplicates.",
            listed.join(", ")
        ));
    }
    Ok(items)
}

/// Reads a map of attribute values (an item, a key, `ExpressionAttributeValues`).
pub fn item_from_value(v: &Value) -> Result<Item, AttrError> {
    match v {
        Value::Struct(m) | Value::Map(m) => m
            .iter()
            .filter(|(_, v)| *v != Value::Null)
            .map(|(k, v)| Ok((k.clone(), Attr::from_value(v)?)))
            .collect(),
        Value::Null => Ok(Item::new()),
        _ => Err("A map of attribute values is required".to_owned()),
    }
}

pub fn item_to_value(item: &Item) -> Value {
    Value::Map(
        item.iter()
            .map(|(k, v)| (k.clone(), v.to_value()))
            .collect(),
    )
}

/// An item's size: each attribute's name and value.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + v.size()).sum()
}

/// Merges a new set into a sorted one (ADD), or takes elements out (DELETE).
pub(crate) fn set_union(a: &Attr, b: &Attr) -> Option<Attr> {
    fn union<T: Clone + Ord>(a: &[T], b: &[T]) -> Vec<T> {
        let mut out: Vec<T> = a.iter().chain(b).cloned().collect();
        out.sort();
        out.dedup();
        out
    }
    Some(match (a, b) {
        (Attr::Ss(a), Attr::Ss(b)) => Attr::Ss(union(a, b)),
        (Attr::Ns(a), Attr::Ns(b)) => Attr::Ns(union(a, b)),
        (Attr::Bs(a), Attr::Bs(b)) => Attr::Bs(union(a, b)),
        _ => return None,
    })
}

/// `a` without `b`'s elements; `None` when the types differ, `Some(None)` when the set
/// ends up empty (the attribute goes).
pub(crate) fn set_difference(a: &Attr, b: &Attr) -> Option<Option<Attr>> {
    fn diff<T: Clone + PartialEq>(a: &[T], b: &[T]) -> Vec<T> {
        a.iter().filter(|x| !b.contains(x)).cloned().collect()
    }
    let out = match (a, b) {
        (Attr::Ss(a), Attr::Ss(b)) => {
            let d = diff(a, b);
            (!d.is_empty()).then_some(Attr::Ss(d))
        }
        (Attr::Ns(a), Attr::Ns(b)) => {
            let d = diff(a, b);
            (!d.is_empty()).then_some(Attr::Ns(d))
        }
        (Attr::Bs(a), Attr::Bs(b)) => {
            let d = diff(a, b);
            (!d.is_empty()).then_some(Attr::Bs(d))
        }
        _ => return None,
    };
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    fn attr(j: &str) -> Result<Attr, String> {
        Attr::from_value(&json::decode(j.as_bytes()).unwrap())
    }

    #[test]
    fn every_type_round_trips() {
        for j in [
            r#"{"S":"hello"}"#,
            r#"{"N":"-12.5"}"#,
            r#"{"B":"AAEC/w=="}"#,
            r#"{"BOOL":false}"#,
            r#"{"NULL":true}"#,
            r#"{"L":[{"S":"a"},{"N":"1"}]}"#,
            r#"{"M":{"a":{"S":"x"},"b":{"L":[]}}}"#,
            r#"{"SS":["a","b"]}"#,
            r#"{"NS":["1","2.5"]}"#,
            r#"{"BS":["AA==","AQ=="]}"#,
        ] {
            let a = attr(j).unwrap();
            assert_eq!(String::from_utf8(json::encode(&a.to_value())).unwrap(), j);
        }
    }

    #[test]
    fn sets_are_sorted_and_refuse_duplicates_and_emptiness() {
        assert_eq!(
            attr(r#"{"NS":["10","9","1e0"]}"#).unwrap(),
            attr(r#"{"NS":["1","9","10"]}"#).unwrap()
        );
        let e = attr(r#"{"SS":["a","a"]}"#).unwrap_err();
        assert!(
            e.contains("Input collection [a, a] contains duplicates."),
            "{e}"
        );
        assert!(
            attr(r#"{"NS":["1","1.0"]}"#)
                .unwrap_err()
                .contains("duplicates")
        );
        assert!(
            attr(r#"{"SS":[]}"#)
                .unwrap_err()
                .contains("may not be empty")
        );
    }

    #[test]
    fn malformed_values_say_why() {
        assert!(attr("{}").unwrap_err().contains("empty"));
        assert!(
            attr(r#"{"S":"a","N":"1"}"#)
                .unwrap_err()
                .contains("more than one")
        );
        assert!(
            attr(r#"{"NULL":false}"#)
                .unwrap_err()
                .contains("value of true")
        );
        assert!(attr(r#"{"N":"x"}"#).unwrap_err().contains("numeric"));
        assert!(attr(r#"{"B":"!!"}"#).unwrap_err().contains("Base64"));
        assert!(
            attr(r#"{"Q":"x"}"#)
                .unwrap_err()
                .contains("unknown datatype")
        );
        assert!(attr(r#"{"S":1}"#).is_err());
    }

    #[test]
    fn keys_compare_by_type_and_meet_when_equal() {
        let n = |s: &str| Attr::N(Decimal::parse(s).unwrap());
        assert_eq!(n("1.0").key_bytes(), n("1").key_bytes());
        assert_ne!(Attr::S("1".into()).key_bytes(), n("1").key_bytes());
        assert_eq!(n("9").compare(&n("10")), Some(Ordering::Less));
        assert_eq!(
            Attr::S("9".into()).compare(&Attr::S("10".into())),
            Some(Ordering::Greater)
        );
        assert_eq!(
            Attr::B(vec![0x80]).compare(&Attr::B(vec![0x01])),
            Some(Ordering::Greater)
        );
        assert_eq!(n("1").compare(&Attr::S("1".into())), None);
    }

    #[test]
    fn number_keys_sort_as_the_numbers_do() {
        let n = |s: &str| Attr::N(Decimal::parse(s).unwrap());
        let mut values: Vec<&str> = vec![
            "-1e125",
            "-12345.678",
            "-100",
            "-99.5",
            "-10",
            "-9",
            "-1.55",
            "-1.5",
            "-1",
            "-0.5",
            "-1e-130",
            "0",
            "1e-130",
            "0.01",
            "0.5",
            "1",
            "1.5",
            "1.55",
            "9",
            "10",
            "99.5",
            "100",
            "12345.678",
            "99999999999999999999999999999999999999",
            "1e125",
        ];
        let want = values.clone();
        values.reverse();
        values.sort_by_key(|v| n(v).key_bytes());
        assert_eq!(values, want);
        for w in want.windows(2) {
            assert_eq!(n(w[0]).compare(&n(w[1])), Some(Ordering::Less), "{w:?}");
        }
    }
}
