//! What the EC2 record handlers share: record bodies onto the wire, filters, tags,
//! not-found errors, and the facts of the region a handler hands into the loop.

use bellows_aws::arn::ACCOUNT;
use bellows_aws::{AwsError, Input, Value};
use serde_json::{Value as J, json};

use crate::resources::Resources;

/// The record kinds of EC2.
pub const VPC: &str = "vpc";
pub const SUBNET: &str = "subnet";
pub const SECURITY_GROUP: &str = "security_group";
pub const RULE: &str = "security_group_rule";
pub const GATEWAY: &str = "internet_gateway";
pub const ROUTE_TABLE: &str = "route_table";
pub const ACL: &str = "network_acl";
pub const TEMPLATE: &str = "launch_template";
pub const VERSION: &str = "launch_template_version";

/// What a handler running in the loop knows of where it runs.
#[derive(Debug, Clone)]
pub struct Env {
    pub region: String,
    /// The zones subnets may be placed in.
    pub zones: Vec<String>,
    /// Now, as an EC2 timestamp.
    pub now: String,
}

impl Env {
    pub fn arn(&self, kind: &str, id: &str) -> String {
        format!("arn:aws:ec2:{}:{ACCOUNT}:{kind}/{id}", self.region)
    }
}

/// A record's body as the wire gives it: members whose names start with `_` are the
/// record's own (attributes EC2 answers through other actions) and stay out.
pub fn wire(v: &J) -> Value {
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or_default()),
        },
        J::String(s) => Value::Str(s.clone()),
        J::Array(items) => Value::List(items.iter().map(wire).collect()),
        J::Object(members) => {
            let mut out = Value::object();
            for (k, v) in members {
                if k.starts_with('_') {
                    continue;
                }
                // A launch template's network interface lists its groups as
                // `<groupId>` items, the one list of EC2's data that is not `<item>`.
                if k == "groupSet"
                    && let J::Array(ids) = v
                {
                    let items = ids
                        .iter()
                        .map(|i| ("groupId".to_owned(), wire(i)))
                        .collect();
                    out.set(k, Value::Struct(items));
                    continue;
                }
                out.set(k, wire(v));
            }
            out
        }
    }
}

/// An input tree as JSON (leaves are the form's strings), for record data kept as
/// given (a launch template's data).
pub fn json_of(v: &Value) -> J {
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => json!(i),
        Value::Float(f) => json!(f),
        Value::Str(s) => J::String(s.clone()),
        Value::Blob(_) => J::Null,
        Value::Time(t) => J::String(iso(*t)),
        Value::List(items) => J::Array(items.iter().map(json_of).collect()),
        Value::Struct(m) | Value::Map(m) => {
            J::Object(m.iter().map(|(k, v)| (k.clone(), json_of(v))).collect())
        }
    }
}

/// A timestamp as EC2's XML writes it: `2026-12-02T06:40:00.000Z`.
pub fn iso(epoch_seconds: f64) -> String {
    jiff::Timestamp::from_millisecond((epoch_seconds * 1000.0).round() as i64)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
}

pub fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "InvalidParameterValue", message)
}

pub fn missing(name: &str) -> AwsError {
    AwsError::new(
        400,
        "MissingParameter",
        format!("The request must contain the parameter {name}"),
    )
}

/// Whether `id` has the form of an EC2 id with `prefix`: `prefix-` and 8 or 17
/// lowercase hex digits (`vpc-0a1b2c3d`, `sg-0123456789abcdef0`).
pub fn well_formed(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| {
            matches!(hex.len(), 8 | 17)
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// EC2's error for an id of `kind` that names nothing: `.Malformed` when it does not
/// have the kind's form, as EC2 answers before looking, else `.NotFound`.
pub fn not_found(kind: &str, id: &str) -> AwsError {
    let malformed = match kind {
        VPC => Some(("InvalidVpcID.Malformed", "vpc")),
        SUBNET => Some(("InvalidSubnetID.Malformed", "subnet")),
        SECURITY_GROUP => Some(("InvalidGroupId.Malformed", "sg")),
        RULE => Some(("InvalidSecurityGroupRuleId.Malformed", "sgr")),
        GATEWAY => Some(("InvalidInternetGatewayId.Malformed", "igw")),
        ROUTE_TABLE => Some(("InvalidRouteTableId.Malformed", "rtb")),
        _ => None,
    };
    if let Some((code, prefix)) = malformed
        && !well_formed(id, prefix)
    {
        return AwsError::new(
            400,
            code,
            format!("Invalid id: \"{id}\" (expecting \"{prefix}-...\")"),
        );
    }
    let (code, what) = match kind {
        VPC => ("InvalidVpcID.NotFound", "vpc ID"),
        SUBNET => ("InvalidSubnetID.NotFound", "subnet ID"),
        SECURITY_GROUP => ("InvalidGroup.NotFound", "security group"),
        RULE => (
            "InvalidSecurityGroupRuleId.NotFound",
            "security group rule ID",
        ),
        GATEWAY => ("InvalidInternetGatewayID.NotFound", "internetGateway ID"),
        ROUTE_TABLE => ("InvalidRouteTableID.NotFound", "routeTable ID"),
        ACL => ("InvalidNetworkAclID.NotFound", "networkAcl ID"),
        TEMPLATE => ("InvalidLaunchTemplateId.NotFound", "launch template ID"),
        _ => ("InvalidID", "ID"),
    };
    AwsError::new(400, code, format!("The {what} '{id}' does not exist"))
}

/// The kind of record an EC2 id names, by its prefix.
pub fn kind_of(id: &str) -> Option<&'static str> {
    let (prefix, _) = id.split_once('-')?;
    Some(match prefix {
        "vpc" => VPC,
        "subnet" => SUBNET,
        "sg" => SECURITY_GROUP,
        "sgr" => RULE,
        "igw" => GATEWAY,
        "rtb" => ROUTE_TABLE,
        "acl" => ACL,
        "lt" => TEMPLATE,
        _ => return None,
    })
}

/// The resource type DescribeTags names a record kind by.
pub fn resource_type(kind: &str) -> &'static str {
    match kind {
        VPC => "vpc",
        SUBNET => "subnet",
        SECURITY_GROUP => "security-group",
        RULE => "security-group-rule",
        GATEWAY => "internet-gateway",
        ROUTE_TABLE => "route-table",
        ACL => "network-acl",
        TEMPLATE => "launch-template",
        _ => "",
    }
}

/// The record a call names, or its not-found error.
pub fn need<'a>(r: &'a Resources, kind: &str, id: &str) -> Result<&'a J, AwsError> {
    r.get(kind, id).ok_or_else(|| not_found(kind, id))
}

/// Filters as EC2 takes them: (`Name`, [values]).
pub fn filters(input: &Input) -> Result<Vec<(String, Vec<String>)>, AwsError> {
    input
        .list("Filter")
        .iter()
        .map(|f| Ok((f.str("Name")?, f.strings("Value")?)))
        .collect()
}

/// EC2's filter values match with `*` (any run) and `?` (any one character).
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether a record passes every filter: `values` gives the record's values for a
/// filter name (`None`: a name this kind has no filter of, which is refused, as AWS
/// does); `tag:KEY` and `tag-key` are every kind's.
pub fn passes(
    filters: &[(String, Vec<String>)],
    body: &J,
    values: impl Fn(&str) -> Option<Vec<String>>,
) -> Result<bool, AwsError> {
    for (name, wanted) in filters {
        let have = if let Some(key) = name.strip_prefix("tag:") {
            tags(body)
                .into_iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v)
                .collect()
        } else if name == "tag-key" {
            tags(body).into_iter().map(|(k, _)| k).collect()
        } else if name == "tag-value" {
            tags(body).into_iter().map(|(_, v)| v).collect()
        } else {
            values(name).ok_or_else(|| invalid(format!("The filter '{name}' is invalid")))?
        };
        if !wanted.iter().any(|w| have.iter().any(|h| glob(w, h))) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A string member of a body, as a filter's one value.
pub fn one(body: &J, name: &str) -> Vec<String> {
    match &body[name] {
        J::String(s) => vec![s.clone()],
        J::Bool(b) => vec![b.to_string()],
        J::Number(n) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

/// A record's tags as (key, value).
pub fn tags(body: &J) -> Vec<(String, String)> {
    body["tagSet"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| {
                    (
                        t["key"].as_str().unwrap_or_default().to_owned(),
                        t["value"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn tag_list(input: &Input, name: &str) -> Result<Vec<(String, String)>, AwsError> {
    input
        .list(name)
        .iter()
        .map(|t| Ok((t.str("Key")?, t.opt_str("Value")?.unwrap_or_default())))
        .collect()
}

/// The tags a Create call's `TagSpecification`s give a resource of `resource_type`.
pub fn tags_in(input: &Input, resource_type: &str) -> Result<J, AwsError> {
    let mut out = Vec::new();
    for spec in input.list("TagSpecification") {
        let t = spec.opt_str("ResourceType")?;
        if t.as_deref().is_some_and(|t| t != resource_type) {
            continue;
        }
        for (k, v) in tag_list(&spec, "Tag")? {
            out.push(json!({ "key": k, "value": v }));
        }
    }
    Ok(J::Array(out))
}

/// CreateTags: each resource gets the tags, replacing the values of keys it has.
pub fn create_tags(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let ids = input.strings("ResourceId")?;
    let new = tag_list(input, "Tag")?;
    let kinds = resolve(r, &ids)?;
    for (kind, id) in kinds {
        r.update(kind, &id, |b| {
            let mut t = tags(b);
            for (k, v) in &new {
                match t.iter_mut().find(|(tk, _)| tk == k) {
                    Some(slot) => slot.1 = v.clone(),
                    None => t.push((k.clone(), v.clone())),
                }
            }
            b["tagSet"] = tag_json(&t);
        })?;
    }
    Ok(Value::object().with("return", true))
}

/// DeleteTags: a tag named with a value goes only if it has that value.
pub fn delete_tags(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let ids = input.strings("ResourceId")?;
    let gone: Vec<(String, Option<String>)> = input
        .list("Tag")
        .iter()
        .map(|t| Ok((t.str("Key")?, t.opt_str("Value")?)))
        .collect::<Result<_, AwsError>>()?;
    let kinds = resolve(r, &ids)?;
    for (kind, id) in kinds {
        r.update(kind, &id, |b| {
            let t: Vec<(String, String)> = tags(b)
                .into_iter()
                .filter(|(k, v)| {
                    gone.is_empty()
                        || !gone
                            .iter()
                            .any(|(gk, gv)| gk == k && gv.as_ref().is_none_or(|gv| gv == v))
                })
                .collect();
            b["tagSet"] = tag_json(&t);
        })?;
    }
    Ok(Value::object().with("return", true))
}

pub fn tag_json(t: &[(String, String)]) -> J {
    J::Array(
        t.iter()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect(),
    )
}

/// The kind of each id, all of which must be records.
fn resolve(r: &Resources, ids: &[String]) -> Result<Vec<(&'static str, String)>, AwsError> {
    if ids.is_empty() {
        return Err(missing("resourceIdSet"));
    }
    ids.iter()
        .map(|id| {
            let kind = kind_of(id).ok_or_else(|| {
                AwsError::new(400, "InvalidID", format!("The ID '{id}' is not valid"))
            })?;
            need(r, kind, id)?;
            Ok((kind, id.clone()))
        })
        .collect()
}

/// DescribeTags over every record with tags.
pub fn describe_tags(r: &Resources, input: &Input) -> Result<Value, AwsError> {
    let filters = filters(input)?;
    let mut out = Vec::new();
    for rec in r.all() {
        let rtype = resource_type(&rec.kind);
        if rtype.is_empty() {
            continue;
        }
        for (k, v) in tags(&rec.body) {
            let ok = filters.iter().all(|(name, wanted)| {
                let have = match name.as_str() {
                    "resource-id" => rec.id.clone(),
                    "resource-type" => rtype.to_owned(),
                    "key" => k.clone(),
                    "value" => v.clone(),
                    _ => return false,
                };
                wanted.iter().any(|w| glob(w, &have))
            });
            if ok {
                out.push(
                    Value::object()
                        .with("resourceId", rec.id.as_str())
                        .with("resourceType", rtype)
                        .with("key", k)
                        .with("value", v),
                );
            }
        }
    }
    Ok(Value::object().with("tagSet", Value::List(out)))
}

/// The records of `kind` an id list and filters select, as the wire gives them, in
/// creation order; an id that is not a record is the kind's not-found error.
pub fn select(
    r: &Resources,
    kind: &str,
    ids: &[String],
    filters: &[(String, Vec<String>)],
    values: impl Fn(&J, &str) -> Option<Vec<String>>,
) -> Result<Vec<J>, AwsError> {
    for id in ids {
        need(r, kind, id)?;
    }
    // A filter this kind has not is refused, whether or not there is a record to try.
    for (name, _) in filters {
        let tag = name.starts_with("tag:") || name == "tag-key" || name == "tag-value";
        if !tag && values(&J::Null, name).is_none() {
            return Err(invalid(format!("The filter '{name}' is invalid")));
        }
    }
    let mut out = Vec::new();
    for rec in r.of(kind) {
        if !ids.is_empty() && !ids.contains(&rec.id) {
            continue;
        }
        if passes(filters, &rec.body, |n| values(&rec.body, n))? {
            out.push(rec.body.clone());
        }
    }
    Ok(out)
}

/// An IPv4 CIDR block as (network, prefix length).
pub fn cidr4(s: &str) -> Result<(u32, u32), AwsError> {
    let bad = || {
        invalid(format!(
            "Value ({s}) for parameter cidrBlock is invalid. This is not a valid CIDR block."
        ))
    };
    let (a, p) = s.split_once('/').ok_or_else(bad)?;
    let a: std::net::Ipv4Addr = a.parse().map_err(|_| bad())?;
    let p: u32 = p.parse().map_err(|_| bad())?;
    if p > 32 {
        return Err(bad());
    }
    let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
    if u32::from(a) & !mask != 0 {
        return Err(bad());
    }
    Ok((u32::from(a), p))
}

pub fn within(inner: (u32, u32), outer: (u32, u32)) -> bool {
    let mask = if outer.1 == 0 {
        0
    } else {
        u32::MAX << (32 - outer.1)
    };
    inner.1 >= outer.1 && inner.0 & mask == outer.0
}

pub fn overlap(a: (u32, u32), b: (u32, u32)) -> bool {
    within(a, b) || within(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_cidrs() {
        assert!(glob("us-east-1*", "us-east-1a"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "abbc"));
        assert!(glob("*", ""));
        assert!(within(
            cidr4("10.0.1.0/24").unwrap(),
            cidr4("10.0.0.0/16").unwrap()
        ));
        assert!(!within(
            cidr4("10.1.1.0/24").unwrap(),
            cidr4("10.0.0.0/16").unwrap()
        ));
        assert!(overlap(
            cidr4("10.0.0.0/16").unwrap(),
            cidr4("10.0.3.0/24").unwrap()
        ));
        assert!(cidr4("10.0.0.1/16").is_err());
    }

    #[test]
    fn filters_match_values_and_tags_and_refuse_unknown_names() {
        let body = json!({ "vpcId": "vpc-1", "tagSet": [{ "key": "Name", "value": "main" }] });
        let values = |n: &str| (n == "vpc-id").then(|| one(&body, "vpcId"));
        let f = |n: &str, v: &str| vec![(n.to_owned(), vec![v.to_owned()])];
        assert!(passes(&f("vpc-id", "vpc-1"), &body, values).unwrap());
        assert!(!passes(&f("vpc-id", "vpc-2"), &body, values).unwrap());
        assert!(passes(&f("tag:Name", "ma*"), &body, values).unwrap());
        assert!(passes(&f("tag-key", "Name"), &body, values).unwrap());
        assert!(!passes(&f("tag:Other", "main"), &body, values).unwrap());
        assert_eq!(
            passes(&f("nonsense", "x"), &body, values).unwrap_err().code,
            "InvalidParameterValue"
        );
        // Members named with `_` stay off the wire.
        let w = wire(&json!({ "a": 1, "_b": 2, "c": [true] }));
        assert_eq!(w.get("a"), Some(&Value::Int(1)));
        assert_eq!(w.get("_b"), None);
    }
}
