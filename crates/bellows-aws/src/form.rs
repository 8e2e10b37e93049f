//! Query-protocol forms into a [`Value`] tree.
//!
//! Query flattens a request into dotted names: a list is `Name.member.N`, a map
//! `Name.entry.N.key` / `.value`, a nested structure `Outer.Inner`. EC2's dialect writes
//! lists as `Name.N`. Indices start at 1 and may have gaps; items are kept in index
//! order.

use std::collections::BTreeMap;

use crate::value::Value;

/// How lists are written in the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `Name.member.N`, `Name.entry.N.key`.
    Query,
    /// `Name.N`.
    Ec2,
}

/// The most parameters one form may carry (a PutMetricData of 1000 data with
/// dimensions stays well below).
pub const MAX_PARAMETERS: usize = 20_000;

#[derive(Debug, Default)]
enum Node {
    #[default]
    Empty,
    Leaf(String),
    Struct(BTreeMap<String, Node>),
    List(BTreeMap<u32, Node>),
    Entries(BTreeMap<u32, Node>),
}

/// Why a form cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormError(pub String);

/// Every parameter, `Action` and `Version` included, as a structure.
pub fn parse(body: &[u8], dialect: Dialect) -> Result<Value, FormError> {
    let mut root = Node::Struct(BTreeMap::new());
    for (i, (key, value)) in form_urlencoded::parse(body).enumerate() {
        if i >= MAX_PARAMETERS {
            return Err(FormError(format!("more than {MAX_PARAMETERS} parameters")));
        }
        insert(&mut root, &key, value.into_owned(), dialect)?;
    }
    Ok(finish(root))
}

fn insert(root: &mut Node, key: &str, value: String, dialect: Dialect) -> Result<(), FormError> {
    let bad = || FormError(format!("the parameter name `{key}` is not well formed"));
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) || parts.len() > 32 {
        return Err(bad());
    }
    let mut node = root;
    let mut i = 0;
    while i < parts.len() {
        let part = parts[i];
        let index = |s: &str| s.parse::<u32>().ok().filter(|n| *n >= 1);
        node = match (dialect, part) {
            (Dialect::Query, "member") => {
                let n = parts.get(i + 1).and_then(|s| index(s)).ok_or_else(bad)?;
                i += 1;
                into_list(node, n, false).ok_or_else(bad)?
            }
            (Dialect::Query, "entry") => {
                let n = parts.get(i + 1).and_then(|s| index(s)).ok_or_else(bad)?;
                i += 1;
                into_list(node, n, true).ok_or_else(bad)?
            }
            (Dialect::Ec2, p) if index(p).is_some() => {
                into_list(node, index(p).unwrap_or(1), false).ok_or_else(bad)?
            }
            (_, p) => {
                if matches!(node, Node::Empty) {
                    *node = Node::Struct(BTreeMap::new());
                }
                match node {
                    Node::Struct(members) => members.entry(p.to_owned()).or_default(),
                    _ => return Err(bad()),
                }
            }
        };
        i += 1;
    }
    match node {
        Node::Empty => {
            *node = Node::Leaf(value);
            Ok(())
        }
        _ => Err(FormError(format!(
            "the parameter `{key}` is given twice or also has members"
        ))),
    }
}

fn into_list(node: &mut Node, n: u32, entries: bool) -> Option<&mut Node> {
    if matches!(node, Node::Empty) {
        *node = if entries {
            Node::Entries(BTreeMap::new())
        } else {
            Node::List(BTreeMap::new())
        };
    }
    match node {
        Node::List(items) if !entries => Some(items.entry(n).or_default()),
        Node::Entries(items) if entries => Some(items.entry(n).or_default()),
        _ => None,
    }
}

fn finish(node: Node) -> Value {
    match node {
        Node::Empty => Value::Null,
        Node::Leaf(s) => Value::Str(s),
        Node::Struct(members) => {
            Value::Struct(members.into_iter().map(|(k, v)| (k, finish(v))).collect())
        }
        Node::List(items) => Value::List(items.into_values().map(finish).collect()),
        Node::Entries(items) => Value::Map(
            items
                .into_values()
                .filter_map(|entry| {
                    let entry = finish(entry);
                    let key = entry.get("key")?.as_str()?;
                    Some((key, entry.get("value").cloned().unwrap_or(Value::Null)))
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_lists_maps_and_structures() {
        let body = b"Action=StartInstanceRefresh&Version=2011-01-01&AutoScalingGroupName=ip-tracker-asg\
            &Preferences.MinHealthyPercentage=0&Preferences.InstanceWarmup=60\
            &Names.member.2=b&Names.member.1=a\
            &MetricData.member.1.Dimensions.member.1.Name=Instance&MetricData.member.1.Dimensions.member.1.Value=i-1\
            &Attrs.entry.1.key=k&Attrs.entry.1.value=v&Empty=";
        let v = parse(body, Dialect::Query).unwrap();
        assert_eq!(
            v.get("Action").unwrap().as_str().unwrap(),
            "StartInstanceRefresh"
        );
        let prefs = v.get("Preferences").unwrap();
        assert_eq!(prefs.get("InstanceWarmup").unwrap().as_i64(), Some(60));
        let names: Vec<_> = v
            .get("Names")
            .unwrap()
            .items()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b"]);
        let dim = &v.get("MetricData").unwrap().items()[0]
            .get("Dimensions")
            .unwrap()
            .items()[0]
            .get("Value")
            .unwrap()
            .as_str();
        assert_eq!(dim.as_deref(), Some("i-1"));
        assert_eq!(
            v.get("Attrs"),
            Some(&Value::Map(vec![("k".into(), "v".into())]))
        );
        assert!(v.get("Empty").unwrap().items().is_empty());
    }

    #[test]
    fn ec2_lists_are_numbered_without_member() {
        let body = b"Action=RevokeSecurityGroupIngress&GroupId.1=sg-1&IpPermissions.1.IpRanges.1.CidrIp=0.0.0.0%2F0\
            &IpPermissions.1.FromPort=80&Filter.1.Name=group-name&Filter.1.Value.1=web";
        let v = parse(body, Dialect::Ec2).unwrap();
        assert_eq!(
            v.get("GroupId").unwrap().items()[0].as_str().as_deref(),
            Some("sg-1")
        );
        let perm = &v.get("IpPermissions").unwrap().items()[0].clone();
        assert_eq!(
            perm.get("IpRanges").unwrap().items()[0]
                .get("CidrIp")
                .unwrap()
                .as_str()
                .as_deref(),
            Some("0.0.0.0/0")
        );
        let filter = &v.get("Filter").unwrap().items()[0].clone();
        assert_eq!(
            filter.get("Value").unwrap().items()[0].as_str().as_deref(),
            Some("web")
        );
    }

    #[test]
    fn malformed_names_are_refused() {
        for body in [
            &b"A..B=1"[..],
            b"Names.member.0=a",
            b"Names.member=a",
            b"Names.member.x=a",
            b"A=1&A=2",
            b"A=1&A.B=2",
            b"A.member.1=x&A.entry.1.key=y",
        ] {
            assert!(
                parse(body, Dialect::Query).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
