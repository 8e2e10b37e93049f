//! Security groups and their rules as records: a group (`security_group`) and each of
//! its rules (`security_group_rule`, one peer each, as DescribeSecurityGroupRules gives
//! them); DescribeSecurityGroups folds the rules into `ipPermissions` by protocol and
//! ports.

use bellows_aws::arn::ACCOUNT;
use bellows_aws::{AwsError, Input, Value};
use serde_json::{Value as J, json};

use super::shared::*;
use crate::resources::Resources;

/// The default security group AWS makes with a VPC: every member of the group may
/// reach every other, and everything may go out.
pub fn create_default(r: &mut Resources, vpc: &str, env: &Env) -> Result<String, AwsError> {
    let id = r.new_id("sg")?;
    r.put(
        SECURITY_GROUP,
        &id,
        group_body(
            &id,
            "default",
            "default VPC security group",
            vpc,
            env,
            json!([]),
        ),
    )?;
    let self_ref = Peer::Group(id.clone());
    add_rule(r, &id, false, "-1", -1, -1, &self_ref, None, env)?;
    add_rule(
        r,
        &id,
        true,
        "-1",
        -1,
        -1,
        &Peer::V4("0.0.0.0/0".into()),
        None,
        env,
    )?;
    Ok(id)
}

fn group_body(id: &str, name: &str, description: &str, vpc: &str, env: &Env, tags: J) -> J {
    json!({
        "groupId": id,
        "groupName": name,
        "groupDescription": description,
        "vpcId": vpc,
        "ownerId": ACCOUNT,
        "securityGroupArn": env.arn("security-group", id),
        "tagSet": tags,
    })
}

/// What a rule admits from (ingress) or lets out to (egress).
#[derive(Debug, Clone, PartialEq)]
enum Peer {
    V4(String),
    V6(String),
    Group(String),
    PrefixList(String),
}

impl Peer {
    fn of(rule: &J) -> Option<Peer> {
        if let Some(c) = rule["cidrIpv4"].as_str() {
            return Some(Peer::V4(c.to_owned()));
        }
        if let Some(c) = rule["cidrIpv6"].as_str() {
            return Some(Peer::V6(c.to_owned()));
        }
        if let Some(g) = rule["referencedGroupInfo"]["groupId"].as_str() {
            return Some(Peer::Group(g.to_owned()));
        }
        rule["prefixListId"]
            .as_str()
            .map(|p| Peer::PrefixList(p.to_owned()))
    }
}

/// `tcp`, `udp`, `icmp`, `icmpv6` or `-1` (all), from a name or a number.
fn protocol(p: &str) -> Result<String, AwsError> {
    Ok(match p.to_ascii_lowercase().as_str() {
        "tcp" | "6" => "tcp".to_owned(),
        "udp" | "17" => "udp".to_owned(),
        "icmp" | "1" => "icmp".to_owned(),
        "icmpv6" | "58" => "icmpv6".to_owned(),
        "-1" | "all" => "-1".to_owned(),
        other if other.parse::<u8>().is_ok() => other.to_owned(),
        other => {
            return Err(invalid(format!(
                "Invalid value '{other}' for IP protocol. Unknown protocol."
            )));
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn add_rule(
    r: &mut Resources,
    group: &str,
    egress: bool,
    proto: &str,
    from: i64,
    to: i64,
    peer: &Peer,
    description: Option<&str>,
    env: &Env,
) -> Result<J, AwsError> {
    let id = r.new_id("sgr")?;
    let mut rule = json!({
        "securityGroupRuleId": id,
        "groupId": group,
        "groupOwnerId": ACCOUNT,
        "isEgress": egress,
        "ipProtocol": proto,
        "fromPort": from,
        "toPort": to,
        "securityGroupRuleArn": env.arn("security-group-rule", &id),
        "tagSet": [],
    });
    match peer {
        Peer::V4(c) => rule["cidrIpv4"] = json!(c),
        Peer::V6(c) => rule["cidrIpv6"] = json!(c),
        Peer::Group(g) => rule["referencedGroupInfo"] = json!({ "groupId": g, "userId": ACCOUNT }),
        Peer::PrefixList(p) => rule["prefixListId"] = json!(p),
    }
    if let Some(d) = description {
        rule["description"] = json!(d);
    }
    r.put(RULE, &id, rule.clone())?;
    Ok(rule)
}

/// One rule a change names: protocol, ports, peer, description.
#[derive(Debug)]
struct Wanted {
    proto: String,
    from: i64,
    to: i64,
    peer: Peer,
    description: Option<String>,
}

/// The rules a change names, given flat (`--protocol --port --cidr`) or as
/// `IpPermissions`.
fn wanted(r: &Resources, input: &Input, vpc: &str) -> Result<Vec<Wanted>, AwsError> {
    let ports = |proto: &str, from: Option<i64>, to: Option<i64>| -> Result<(i64, i64), AwsError> {
        if proto == "-1" {
            return Ok((-1, -1));
        }
        match (from, to) {
            (Some(f), Some(t)) if proto.starts_with("icmp") => Ok((f, t)),
            (Some(f), Some(t)) if (0..=65535).contains(&f) && (f..=65535).contains(&t) => {
                Ok((f, t))
            }
            (Some(f), None) => Ok((f, f)),
            (None, None) if proto.parse::<u8>().is_ok() => Ok((-1, -1)),
            _ => Err(invalid(format!(
                "Invalid port range {}-{} for protocol {proto}",
                from.unwrap_or(-1),
                to.unwrap_or(-1)
            ))),
        }
    };
    let by_name = |name: &str| -> Result<String, AwsError> {
        r.of(SECURITY_GROUP)
            .find(|g| g.body["groupName"] == name && g.body["vpcId"] == vpc)
            .map(|g| g.id.clone())
            .ok_or_else(|| not_found(SECURITY_GROUP, name))
    };
    let mut out = Vec::new();
    let flat_proto = input.opt_str("IpProtocol")?;
    let flat_cidr = input.opt_str("CidrIp")?;
    let flat_group = input.opt_str("SourceSecurityGroupName")?;
    if flat_cidr.is_some() || flat_group.is_some() {
        let proto = protocol(&flat_proto.unwrap_or_else(|| "-1".to_owned()))?;
        let (from, to) = ports(&proto, input.opt_i64("FromPort")?, input.opt_i64("ToPort")?)?;
        let peer = match (flat_cidr, flat_group) {
            (Some(c), _) => Peer::V4(c),
            (None, Some(g)) => Peer::Group(by_name(&g)?),
            (None, None) => unreachable!(),
        };
        out.push(Wanted {
            proto,
            from,
            to,
            peer,
            description: None,
        });
    }
    for p in input.list("IpPermissions") {
        let proto = protocol(
            &p.opt_str("IpProtocol")?
                .ok_or_else(|| missing("ipProtocol"))?,
        )?;
        let (from, to) = ports(&proto, p.opt_i64("FromPort")?, p.opt_i64("ToPort")?)?;
        let mut push = |peer: Peer, description: Option<String>| {
            out.push(Wanted {
                proto: proto.clone(),
                from,
                to,
                peer,
                description,
            });
        };
        for x in p.list("IpRanges") {
            push(Peer::V4(x.str("CidrIp")?), x.opt_str("Description")?);
        }
        for x in p.list("Ipv6Ranges") {
            push(Peer::V6(x.str("CidrIpv6")?), x.opt_str("Description")?);
        }
        for x in p.list("PrefixListIds") {
            push(
                Peer::PrefixList(x.str("PrefixListId")?),
                x.opt_str("Description")?,
            );
        }
        for x in p.list("Groups") {
            let g = match (x.opt_str("GroupId")?, x.opt_str("GroupName")?) {
                (Some(g), _) => {
                    need(r, SECURITY_GROUP, &g)?;
                    g
                }
                (None, Some(n)) => by_name(&n)?,
                (None, None) => return Err(missing("groupId")),
            };
            push(Peer::Group(g), x.opt_str("Description")?);
        }
    }
    for w in &out {
        match &w.peer {
            Peer::V4(c) => {
                cidr4(c).map_err(|_| invalid(format!("CIDR block {c} is malformed")))?;
            }
            Peer::V6(c) => {
                c.parse::<bellows_core::lb::cidr::Cidr>()
                    .map_err(|_| invalid(format!("CIDR block {c} is malformed")))?;
            }
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(missing("ipPermissions"));
    }
    Ok(out)
}

fn same(rule: &J, egress: bool, w: &Wanted) -> bool {
    rule["isEgress"] == egress
        && rule["ipProtocol"] == w.proto.as_str()
        && rule["fromPort"] == w.from
        && rule["toPort"] == w.to
        && Peer::of(rule).as_ref() == Some(&w.peer)
}

/// The group a rule change names, by id or (in its VPC) by name.
fn group_of(r: &Resources, input: &Input) -> Result<(String, J), AwsError> {
    let id = match (input.opt_str("GroupId")?, input.opt_str("GroupName")?) {
        (Some(id), _) => id,
        (None, Some(name)) => r
            .of(SECURITY_GROUP)
            .find(|g| g.body["groupName"] == name.as_str())
            .map(|g| g.id.clone())
            .ok_or_else(|| not_found(SECURITY_GROUP, &name))?,
        (None, None) => return Err(missing("groupId")),
    };
    let body = need(r, SECURITY_GROUP, &id)?.clone();
    Ok((id, body))
}

/// Whether a group id names a record (rather than a listener's own group).
pub fn is_record(r: &Resources, input: &Input) -> Result<bool, AwsError> {
    Ok(
        match (input.opt_str("GroupId")?, input.opt_str("GroupName")?) {
            (Some(id), _) => r.contains(SECURITY_GROUP, &id),
            (None, Some(name)) => r
                .of(SECURITY_GROUP)
                .any(|g| g.body["groupName"] == name.as_str()),
            (None, None) => false,
        },
    )
}

pub fn authorize(
    r: &mut Resources,
    input: &Input,
    egress: bool,
    env: &Env,
) -> Result<Value, AwsError> {
    let (id, group) = group_of(r, input)?;
    let vpc = group["vpcId"].as_str().unwrap_or_default().to_owned();
    let list = wanted(r, input, &vpc)?;
    let mut added = Vec::new();
    for w in &list {
        let dup = r
            .of(RULE)
            .any(|x| x.body["groupId"] == id.as_str() && same(&x.body, egress, w));
        if dup {
            return Err(AwsError::new(
                400,
                "InvalidPermission.Duplicate",
                format!(
                    "the specified rule \"peer: {:?}, {}, from port: {}, to port: {}, ALLOW\" already exists",
                    w.peer, w.proto, w.from, w.to
                ),
            ));
        }
        let rule = add_rule(
            r,
            &id,
            egress,
            &w.proto,
            w.from,
            w.to,
            &w.peer,
            w.description.as_deref(),
            env,
        )?;
        added.push(wire(&rule));
    }
    let tags = tags_in(input, "security-group-rule")?;
    if tags.as_array().is_some_and(|t| !t.is_empty()) {
        for a in &added {
            if let Some(rid) = a.get("securityGroupRuleId").and_then(Value::as_str) {
                r.update(RULE, &rid, |b| b["tagSet"] = tags.clone())?;
            }
        }
    }
    Ok(Value::object()
        .with("return", true)
        .with("securityGroupRuleSet", Value::List(added)))
}

pub fn revoke(r: &mut Resources, input: &Input, egress: bool) -> Result<Value, AwsError> {
    let (id, group) = group_of(r, input)?;
    let vpc = group["vpcId"].as_str().unwrap_or_default().to_owned();
    let by_id = input.strings("SecurityGroupRuleId")?;
    let mut gone = Vec::new();
    if by_id.is_empty() {
        for w in wanted(r, input, &vpc)? {
            let found = r
                .of(RULE)
                .find(|x| x.body["groupId"] == id.as_str() && same(&x.body, egress, &w))
                .map(|x| x.id.clone());
            let Some(rid) = found else {
                return Err(AwsError::new(
                    400,
                    "InvalidPermission.NotFound",
                    "The specified rule does not exist in this security group.",
                ));
            };
            gone.push(rid);
        }
    } else {
        for rid in by_id {
            let ok = r
                .get(RULE, &rid)
                .is_some_and(|x| x["groupId"] == id.as_str() && x["isEgress"] == egress);
            if !ok {
                return Err(not_found(RULE, &rid));
            }
            gone.push(rid);
        }
    }
    let mut revoked = Vec::new();
    for rid in gone {
        if let Some(b) = r.delete(RULE, &rid)? {
            // The revoked rule's own shape: a referenced group by its id alone.
            let mut out = Value::object();
            for m in [
                "securityGroupRuleId",
                "groupId",
                "isEgress",
                "ipProtocol",
                "fromPort",
                "toPort",
                "cidrIpv4",
                "cidrIpv6",
                "prefixListId",
                "description",
            ] {
                out.set(m, wire(&b[m]));
            }
            out.set(
                "referencedGroupId",
                wire(&b["referencedGroupInfo"]["groupId"]),
            );
            revoked.push(out);
        }
    }
    Ok(Value::object()
        .with("return", true)
        .with("revokedSecurityGroupRuleSet", Value::List(revoked)))
}

pub fn create(r: &mut Resources, input: &Input, env: &Env) -> Result<Value, AwsError> {
    let name = input.str("GroupName")?;
    let description = input.str("GroupDescription")?;
    let vpc = input
        .opt_str("VpcId")?
        .ok_or_else(|| AwsError::new(400, "VPCIdNotSpecified", "No default VPC for this user"))?;
    need(r, VPC, &vpc)?;
    if name == "default" {
        return Err(AwsError::new(
            400,
            "InvalidGroup.Reserved",
            "The security group 'default' is reserved",
        ));
    }
    if r.of(SECURITY_GROUP)
        .any(|g| g.body["groupName"] == name.as_str() && g.body["vpcId"] == vpc.as_str())
    {
        return Err(AwsError::new(
            400,
            "InvalidGroup.Duplicate",
            format!("The security group '{name}' already exists for VPC '{vpc}'"),
        ));
    }
    let id = r.new_id("sg")?;
    let tags = tags_in(input, "security-group")?;
    r.put(
        SECURITY_GROUP,
        &id,
        group_body(&id, &name, &description, &vpc, env, tags.clone()),
    )?;
    // As on AWS, a new group lets everything out until that rule is revoked.
    add_rule(
        r,
        &id,
        true,
        "-1",
        -1,
        -1,
        &Peer::V4("0.0.0.0/0".into()),
        None,
        env,
    )?;
    Ok(Value::object()
        .with("groupId", id.as_str())
        .with("securityGroupArn", env.arn("security-group", &id))
        .with("tagSet", wire(&tags)))
}

/// Deletes every rule of a group (the group is going).
pub fn delete_rules_of(r: &mut Resources, group: &str) -> Result<(), AwsError> {
    let rules: Vec<String> = r
        .of(RULE)
        .filter(|x| x.body["groupId"] == group)
        .map(|x| x.id.clone())
        .collect();
    for rid in rules {
        r.delete(RULE, &rid)?;
    }
    Ok(())
}

pub fn delete(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let (id, group) = group_of(r, input)?;
    if group["groupName"] == "default" {
        return Err(AwsError::new(
            400,
            "CannotDelete",
            format!("the specified group: \"{id}\" name: \"default\" cannot be deleted by a user"),
        ));
    }
    let referenced = r.of(RULE).any(|x| {
        x.body["groupId"] != id.as_str() && x.body["referencedGroupInfo"]["groupId"] == id.as_str()
    });
    if referenced {
        return Err(AwsError::new(
            400,
            "DependencyViolation",
            format!("resource {id} has a dependent object"),
        ));
    }
    delete_rules_of(r, &id)?;
    r.delete(SECURITY_GROUP, &id)?;
    Ok(Value::object().with("return", true).with("groupId", id))
}

/// A permission's protocol and ports.
type PermKey = (String, i64, i64);

/// A group as DescribeSecurityGroups gives it: its rules folded into permissions.
fn described(r: &Resources, group: &J) -> Value {
    let id = group["groupId"].as_str().unwrap_or_default();
    let mut out = wire(group);
    for (egress, member) in [(false, "ipPermissions"), (true, "ipPermissionsEgress")] {
        // (protocol, from, to) -> (ipRanges, ipv6Ranges, groups, prefixListIds)
        let mut perms: Vec<(PermKey, [Vec<Value>; 4])> = Vec::new();
        for rule in r
            .of(RULE)
            .filter(|x| x.body["groupId"] == id && x.body["isEgress"] == egress)
        {
            let b = &rule.body;
            let key = (
                b["ipProtocol"].as_str().unwrap_or_default().to_owned(),
                b["fromPort"].as_i64().unwrap_or(-1),
                b["toPort"].as_i64().unwrap_or(-1),
            );
            let at = match perms.iter().position(|(k, _)| *k == key) {
                Some(i) => i,
                None => {
                    perms.push((key, Default::default()));
                    perms.len() - 1
                }
            };
            let description = b["description"].as_str();
            let (slot, item) = match Peer::of(b) {
                Some(Peer::V4(c)) => (0, Value::object().with("cidrIp", c)),
                Some(Peer::V6(c)) => (1, Value::object().with("cidrIpv6", c)),
                Some(Peer::Group(g)) => (
                    2,
                    Value::object().with("groupId", g).with("userId", ACCOUNT),
                ),
                Some(Peer::PrefixList(p)) => (3, Value::object().with("prefixListId", p)),
                None => continue,
            };
            perms[at].1[slot].push(item.with("description", description));
        }
        let list: Vec<Value> = perms
            .into_iter()
            .map(|((proto, from, to), [v4, v6, groups, prefixes])| {
                let mut p = Value::object().with("ipProtocol", proto.as_str());
                if proto != "-1" {
                    p.set("fromPort", from);
                    p.set("toPort", to);
                }
                p.with("groups", Value::List(groups))
                    .with("ipRanges", Value::List(v4))
                    .with("ipv6Ranges", Value::List(v6))
                    .with("prefixListIds", Value::List(prefixes))
            })
            .collect();
        out.set(member, Value::List(list));
    }
    out
}

fn group_values(b: &J, name: &str) -> Option<Vec<String>> {
    Some(match name {
        "group-id" => one(b, "groupId"),
        "group-name" => one(b, "groupName"),
        "vpc-id" => one(b, "vpcId"),
        "description" => one(b, "groupDescription"),
        "owner-id" => one(b, "ownerId"),
        _ => return None,
    })
}

/// The record groups DescribeSecurityGroups selects: `ids` and `names` are those of
/// the call that are records (the caller answers for the rest).
pub fn describe(
    r: &Resources,
    ids: &[String],
    names: &[String],
    filters: &[(String, Vec<String>)],
) -> Result<Vec<Value>, AwsError> {
    let mut out = Vec::new();
    for g in select(r, SECURITY_GROUP, ids, filters, group_values)? {
        if names.is_empty() || names.iter().any(|n| g["groupName"] == n.as_str()) {
            out.push(described(r, &g));
        }
    }
    Ok(out)
}

fn rule_values(b: &J, name: &str) -> Option<Vec<String>> {
    Some(match name {
        "group-id" => one(b, "groupId"),
        "security-group-rule-id" => one(b, "securityGroupRuleId"),
        _ => return None,
    })
}

pub fn describe_rules(r: &Resources, input: &Input) -> Result<Vec<Value>, AwsError> {
    let list = select(
        r,
        RULE,
        &input.strings("SecurityGroupRuleId")?,
        &filters(input)?,
        rule_values,
    )?;
    Ok(list.iter().map(wire).collect())
}

/// ModifySecurityGroupRules: each rule named takes the protocol, ports, peer and
/// description given (the whole rule, as the request describes it).
pub fn modify_rules(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let group = input.str("GroupId")?;
    need(r, SECURITY_GROUP, &group)?;
    let mut changes = Vec::new();
    for item in input.list("SecurityGroupRule") {
        let rid = item.str("SecurityGroupRuleId")?;
        let old = r
            .get(RULE, &rid)
            .filter(|b| b["groupId"] == group.as_str())
            .ok_or_else(|| not_found(RULE, &rid))?
            .clone();
        let spec = item.nested("SecurityGroupRule");
        let proto = protocol(
            &spec
                .opt_str("IpProtocol")?
                .ok_or_else(|| missing("ipProtocol"))?,
        )?;
        let (from, to) = if proto == "-1" {
            (-1, -1)
        } else {
            (
                spec.opt_i64("FromPort")?.unwrap_or(-1),
                spec.opt_i64("ToPort")?.unwrap_or(-1),
            )
        };
        let peer = match (
            spec.opt_str("CidrIpv4")?,
            spec.opt_str("CidrIpv6")?,
            spec.opt_str("ReferencedGroupId")?,
            spec.opt_str("PrefixListId")?,
        ) {
            (Some(c), None, None, None) => {
                cidr4(&c)?;
                Peer::V4(c)
            }
            (None, Some(c), None, None) => Peer::V6(c),
            (None, None, Some(g), None) => {
                need(r, SECURITY_GROUP, &g)?;
                Peer::Group(g)
            }
            (None, None, None, Some(p)) => Peer::PrefixList(p),
            _ => return Err(invalid("A security group rule names exactly one peer")),
        };
        let mut rule = old;
        if let Some(m) = rule.as_object_mut() {
            for k in [
                "cidrIpv4",
                "cidrIpv6",
                "referencedGroupInfo",
                "prefixListId",
                "description",
            ] {
                m.remove(k);
            }
        }
        rule["ipProtocol"] = json!(proto);
        rule["fromPort"] = json!(from);
        rule["toPort"] = json!(to);
        match peer {
            Peer::V4(c) => rule["cidrIpv4"] = json!(c),
            Peer::V6(c) => rule["cidrIpv6"] = json!(c),
            Peer::Group(g) => {
                rule["referencedGroupInfo"] = json!({ "groupId": g, "userId": ACCOUNT })
            }
            Peer::PrefixList(p) => rule["prefixListId"] = json!(p),
        }
        if let Some(d) = spec.opt_str("Description")? {
            rule["description"] = json!(d);
        }
        changes.push((rid, rule));
    }
    if changes.is_empty() {
        return Err(missing("securityGroupRule"));
    }
    for (rid, rule) in changes {
        r.put(RULE, &rid, rule)?;
    }
    Ok(Value::object().with("return", true))
}

/// UpdateSecurityGroupRuleDescriptionsIngress/Egress: the rules named by their
/// permissions take the descriptions given (none given: the description goes).
pub fn update_descriptions(
    r: &mut Resources,
    input: &Input,
    egress: bool,
) -> Result<Value, AwsError> {
    let (id, group) = group_of(r, input)?;
    let vpc = group["vpcId"].as_str().unwrap_or_default().to_owned();
    let mut changes = Vec::new();
    for w in wanted(r, input, &vpc)? {
        let rid = r
            .of(RULE)
            .find(|x| x.body["groupId"] == id.as_str() && same(&x.body, egress, &w))
            .map(|x| x.id.clone())
            .ok_or_else(|| {
                AwsError::new(
                    400,
                    "InvalidPermission.NotFound",
                    "The specified rule does not exist in this security group.",
                )
            })?;
        changes.push((rid, w.description));
    }
    for (rid, d) in changes {
        r.update(RULE, &rid, |b| match d {
            Some(d) => b["description"] = json!(d),
            None => {
                if let Some(m) = b.as_object_mut() {
                    m.remove("description");
                }
            }
        })?;
    }
    Ok(Value::object().with("return", true))
}
