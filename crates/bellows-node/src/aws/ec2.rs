//! EC2 (2016-11-15): the VPCs, subnets, security groups, internet gateways, route
//! tables and launch templates made through it, as records (`ec2/network.rs`,
//! `ec2/groups.rs`, `ec2/templates.rs`, what they share in `ec2/shared.rs`); besides
//! them each listener's ingress allow-list of a stack file as a security group of its
//! own, the groups' instances, and the region's zones. Member names are EC2's wire
//! names (`groupId`, `ipPermissions`, lists as `<item>`).

use bellows_aws::arn::ACCOUNT;
use bellows_aws::{AwsError, Input, Value};
use bellows_core::group::Lifecycle;
use bellows_core::lb::cidr::Cidr;
use bellows_proxy::ListenerView;

use super::{Ctx, Paging, from_api, page, time};
use crate::api::Call;
use crate::resources::Resources;

pub(crate) mod derived;
mod groups;
mod network;
pub(crate) mod shared;
pub(crate) mod templates;
#[cfg(test)]
mod tests;

use shared::Env;

/// A handler of records that reads.
type Read = fn(&Resources, &Input) -> Result<Value, AwsError>;
/// A handler of records that changes them.
type Change = fn(&mut Resources, &Input, &Env) -> Result<Value, AwsError>;

pub(super) async fn handle(ctx: &Ctx<'_>, action: &str) -> Option<Result<Value, AwsError>> {
    let read: Option<Read> = match action {
        "DescribeVpcs" => Some(network::describe_vpcs),
        "DescribeVpcAttribute" => Some(network::describe_vpc_attribute),
        "DescribeSubnets" => Some(network::describe_subnets),
        "DescribeInternetGateways" => Some(network::describe_internet_gateways),
        "DescribeRouteTables" => Some(network::describe_route_tables),
        "DescribeNetworkAcls" => Some(network::describe_network_acls),
        "DescribeTags" => Some(shared::describe_tags),
        _ => None,
    };
    if let Some(f) = read {
        let input = ctx.input().clone();
        return Some(ctx.read(move |r| f(r, &input)).await);
    }
    let change: Option<Change> = match action {
        "CreateVpc" => Some(network::create_vpc),
        "DeleteVpc" => Some(|r, i, _| network::delete_vpc(r, i)),
        "ModifyVpcAttribute" => Some(|r, i, _| network::modify_vpc_attribute(r, i)),
        "CreateSubnet" => Some(network::create_subnet),
        "DeleteSubnet" => Some(|r, i, _| network::delete_subnet(r, i)),
        "ModifySubnetAttribute" => Some(|r, i, _| network::modify_subnet_attribute(r, i)),
        "CreateInternetGateway" => Some(|r, i, _| network::create_internet_gateway(r, i)),
        "AttachInternetGateway" => Some(|r, i, _| network::attach_internet_gateway(r, i, true)),
        "DetachInternetGateway" => Some(|r, i, _| network::attach_internet_gateway(r, i, false)),
        "DeleteInternetGateway" => Some(|r, i, _| network::delete_internet_gateway(r, i)),
        "CreateRouteTable" => Some(|r, i, _| network::create_route_table(r, i)),
        "DeleteRouteTable" => Some(|r, i, _| network::delete_route_table(r, i)),
        "CreateRoute" => Some(|r, i, _| network::create_route(r, i)),
        "DeleteRoute" => Some(|r, i, _| network::delete_route(r, i)),
        "AssociateRouteTable" => Some(|r, i, _| network::associate_route_table(r, i)),
        "DisassociateRouteTable" => Some(|r, i, _| network::disassociate_route_table(r, i)),
        "CreateSecurityGroup" => Some(groups::create),
        "DeleteSecurityGroup" => Some(|r, i, _| groups::delete(r, i)),
        "AuthorizeSecurityGroupEgress" => Some(|r, i, e| groups::authorize(r, i, true, e)),
        "RevokeSecurityGroupEgress" => Some(|r, i, _| groups::revoke(r, i, true)),
        "ModifySecurityGroupRules" => Some(|r, i, _| groups::modify_rules(r, i)),
        "UpdateSecurityGroupRuleDescriptionsIngress" => {
            Some(|r, i, _| groups::update_descriptions(r, i, false))
        }
        "UpdateSecurityGroupRuleDescriptionsEgress" => {
            Some(|r, i, _| groups::update_descriptions(r, i, true))
        }
        "CreateTags" => Some(|r, i, _| shared::create_tags(r, i)),
        "DeleteTags" => Some(|r, i, _| shared::delete_tags(r, i)),
        "CreateLaunchTemplate" => Some(templates::create),
        "CreateLaunchTemplateVersion" => Some(templates::create_version),
        "ModifyLaunchTemplate" => Some(|r, i, _| templates::modify(r, i)),
        "DeleteLaunchTemplate" => Some(|r, i, _| templates::delete(r, i)),
        _ => None,
    };
    if let Some(f) = change {
        return Some(change_records(ctx, f).await);
    }
    Some(match action {
        "DescribeSecurityGroups" => describe_security_groups(ctx).await,
        "AuthorizeSecurityGroupIngress" => ingress(ctx, true).await,
        "RevokeSecurityGroupIngress" => ingress(ctx, false).await,
        "DescribeSecurityGroupRules" => {
            let input = ctx.input().clone();
            match ctx.read(move |r| groups::describe_rules(r, &input)).await {
                Ok(list) => paged(ctx, list, "securityGroupRuleSet"),
                Err(e) => Err(e),
            }
        }
        "DescribeLaunchTemplates" => {
            let input = ctx.input().clone();
            match ctx.read(move |r| templates::describe(r, &input)).await {
                Ok(list) => paged(ctx, list, "launchTemplates"),
                Err(e) => Err(e),
            }
        }
        "DescribeLaunchTemplateVersions" => {
            let input = ctx.input().clone();
            match ctx
                .read(move |r| templates::describe_versions(r, &input))
                .await
            {
                Ok(list) => paged(ctx, list, "launchTemplateVersionSet"),
                Err(e) => Err(e),
            }
        }
        "DescribeAccountAttributes" => network::describe_account_attributes(ctx.input()),
        // Instances here have no network interfaces of their own to list (Terraform
        // looks for ones left behind before it deletes a subnet or a security group).
        "DescribeNetworkInterfaces" => shared::filters(ctx.input())
            .map(|_| Value::object().with("networkInterfaceSet", Value::List(Vec::new()))),
        "DescribeInstances" => describe_instances(ctx).await,
        "DescribeAvailabilityZones" => describe_zones(ctx).await,
        _ => return None,
    })
}

/// One page of a record listing, as EC2's `MaxResults`/`NextToken` take it.
fn paged(ctx: &Ctx<'_>, list: Vec<Value>, member: &str) -> Result<Value, AwsError> {
    let paging = Paging {
        size: "MaxResults",
        default: 1000,
        max: 1000,
        token_in: "NextToken",
        token_out: "nextToken",
        bad_token: "InvalidParameterValue",
    };
    let mut out = Value::object();
    page(ctx, &paging, list, &mut out, member)?;
    Ok(out)
}

/// What the handlers in the loop are told: the region, its zones, the time.
async fn env(ctx: &Ctx<'_>) -> Result<Env, AwsError> {
    let region = ctx.names().region.clone();
    let zones = zones(ctx).await?.into_iter().map(|(z, _)| z).collect();
    Ok(Env {
        region,
        zones,
        now: shared::iso(crate::clock::now().as_millis() as f64 / 1000.0),
    })
}

async fn change_records(ctx: &Ctx<'_>, f: Change) -> Result<Value, AwsError> {
    let input = ctx.input().clone();
    let env = env(ctx).await?;
    ctx.change(move |r| f(r, &input, &env)).await
}

fn group_not_found(id: &str) -> AwsError {
    AwsError::new(
        400,
        "InvalidGroup.NotFound",
        format!("The security group '{id}' does not exist"),
    )
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "InvalidParameterValue", message)
}

fn permission(l: &ListenerView) -> Value {
    let port = i64::from(l.port);
    let (v4, v6): (Vec<&Cidr>, Vec<&Cidr>) =
        l.ingress.iter().partition(|c| !c.to_string().contains(':'));
    Value::object()
        .with("ipProtocol", "tcp")
        .with("fromPort", port)
        .with("toPort", port)
        .with("groups", Value::List(Vec::new()))
        .with(
            "ipRanges",
            Value::List(
                v4.iter()
                    .map(|c| Value::object().with("cidrIp", c.to_string()))
                    .collect(),
            ),
        )
        .with(
            "ipv6Ranges",
            Value::List(
                v6.iter()
                    .map(|c| Value::object().with("cidrIpv6", c.to_string()))
                    .collect(),
            ),
        )
        .with("prefixListIds", Value::List(Vec::new()))
}

fn security_group(ctx: &Ctx<'_>, l: &ListenerView) -> Value {
    let names = ctx.names();
    let id = names.security_group_id(&l.name);
    let egress = Value::object()
        .with("ipProtocol", "-1")
        .with("groups", Value::List(Vec::new()))
        .with(
            "ipRanges",
            Value::List(vec![Value::object().with("cidrIp", "0.0.0.0/0")]),
        )
        .with("ipv6Ranges", Value::List(Vec::new()))
        .with("prefixListIds", Value::List(Vec::new()));
    Value::object()
        .with("ownerId", ACCOUNT)
        .with("groupName", l.name.as_str())
        .with("groupId", id.as_str())
        .with(
            "groupDescription",
            format!("Ingress allow-list of listener {} ({})", l.name, l.address),
        )
        .with("ipPermissions", Value::List(vec![permission(l)]))
        .with("ipPermissionsEgress", Value::List(vec![egress]))
        .with("vpcId", names.vpc_id())
        .with(
            "securityGroupArn",
            format!("arn:aws:ec2:{}:{ACCOUNT}:security-group/{id}", names.region),
        )
        .with("tagSet", Value::List(Vec::new()))
}

async fn describe_security_groups(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let ids = input.strings("GroupId")?;
    let group_names = input.strings("GroupName")?;
    let filters = shared::filters(input)?;
    let listeners = ctx.ask(Call::Listeners).await?;
    let names = ctx.names();
    // A listener's own group (a stack file's allow-list) or a record.
    let listener_ids: Vec<String> = listeners
        .iter()
        .map(|l| names.security_group_id(&l.name))
        .collect();
    let (own_ids, record_ids): (Vec<String>, Vec<String>) = ids
        .iter()
        .cloned()
        .partition(|id| listener_ids.contains(id));
    let (own_names, record_names): (Vec<String>, Vec<String>) = group_names
        .iter()
        .cloned()
        .partition(|n| listeners.iter().any(|l| l.name == *n));
    let by_name = (!record_names.is_empty()).then(|| record_names.clone());
    let (ri, rn, rf) = (record_ids.clone(), record_names.clone(), filters.clone());
    let records = if (ids.is_empty() && group_names.is_empty())
        || !record_ids.is_empty()
        || by_name.is_some()
    {
        ctx.read(move |r| {
            for n in &rn {
                if !r
                    .of(shared::SECURITY_GROUP)
                    .any(|g| g.body["groupName"] == n.as_str())
                {
                    return Err(AwsError::new(
                        400,
                        "InvalidGroup.NotFound",
                        format!("The security group '{n}' does not exist in default VPC"),
                    ));
                }
            }
            groups::describe(r, &ri, &rn, &rf)
        })
        .await?
    } else {
        Vec::new()
    };
    let own_wanted =
        (ids.is_empty() && group_names.is_empty()) || !own_ids.is_empty() || !own_names.is_empty();
    let mut list: Vec<Value> = if own_wanted {
        listeners
            .iter()
            .filter(|l| ids.is_empty() || own_ids.contains(&names.security_group_id(&l.name)))
            .filter(|l| group_names.is_empty() || own_names.contains(&l.name))
            .filter(|l| {
                filters.iter().all(|(name, values)| match name.as_str() {
                    "group-name" => values.contains(&l.name),
                    "group-id" => values.contains(&names.security_group_id(&l.name)),
                    "vpc-id" => values.contains(&names.vpc_id()),
                    // A filter a listener's group has no value for matches none of them.
                    _ => false,
                })
            })
            .map(|l| security_group(ctx, l))
            .collect()
    } else {
        Vec::new()
    };
    list.extend(records);
    Ok(Value::object().with("securityGroupInfo", Value::List(list)))
}

/// One permission of a rule change: protocol, ports, CIDRs.
type Permission = (Option<String>, Option<i64>, Option<i64>, Vec<String>);

/// The CIDRs a rule change names, whether given flat (`--protocol --port --cidr`) or as
/// `IpPermissions`, checked against the listener's port.
fn requested_cidrs(input: &Input, port: i64) -> Result<Vec<String>, AwsError> {
    let mut perms: Vec<Permission> = Vec::new();
    if let Some(cidr) = input.opt_str("CidrIp")? {
        perms.push((
            input.opt_str("IpProtocol")?,
            input.opt_i64("FromPort")?,
            input.opt_i64("ToPort")?,
            vec![cidr],
        ));
    }
    for p in input.list("IpPermissions") {
        let mut cidrs = Vec::new();
        for r in p.list("IpRanges") {
            cidrs.push(r.str("CidrIp")?);
        }
        for r in p.list("Ipv6Ranges") {
            cidrs.push(r.str("CidrIpv6")?);
        }
        if !p.list("Groups").is_empty() || !p.list("PrefixListIds").is_empty() {
            return Err(invalid(
                "bellows security groups hold CIDR rules only, not group or prefix-list references",
            ));
        }
        perms.push((
            p.opt_str("IpProtocol")?,
            p.opt_i64("FromPort")?,
            p.opt_i64("ToPort")?,
            cidrs,
        ));
    }
    if perms.is_empty() {
        return Err(AwsError::new(
            400,
            "MissingParameter",
            "The request must contain the parameter ipPermissions or cidrIp",
        ));
    }
    let mut out = Vec::new();
    for (protocol, from, to, cidrs) in perms {
        match protocol.as_deref() {
            Some("tcp" | "6") => {}
            Some(p) => {
                return Err(invalid(format!(
                    "A listener's security group holds tcp rules only, not {p}"
                )));
            }
            None => {
                return Err(AwsError::new(
                    400,
                    "MissingParameter",
                    "The request must contain the parameter ipProtocol",
                ));
            }
        }
        let (from, to) = (from.unwrap_or(port), to.or(from).unwrap_or(port));
        if !(from..=to).contains(&port) {
            return Err(invalid(format!(
                "The listener behind this security group listens on port {port}; the rule names {from}-{to}"
            )));
        }
        out.extend(cidrs);
    }
    Ok(out)
}

async fn ingress(ctx: &Ctx<'_>, authorize: bool) -> Result<Value, AwsError> {
    let input = ctx.input();
    let probe = input.clone();
    if ctx.read(move |r| groups::is_record(r, &probe)).await? {
        return if authorize {
            change_records(ctx, |r, i, e| groups::authorize(r, i, false, e)).await
        } else {
            change_records(ctx, |r, i, _| groups::revoke(r, i, false)).await
        };
    }
    let id = match (input.opt_str("GroupId")?, input.opt_str("GroupName")?) {
        (Some(id), _) => id,
        (None, Some(name)) => ctx.names().security_group_id(&name),
        (None, None) => {
            return Err(AwsError::new(
                400,
                "MissingParameter",
                "The request must contain the parameter groupId",
            ));
        }
    };
    let listeners = ctx.ask(Call::Listeners).await?;
    let names = ctx.names();
    let Some(listener) = listeners
        .iter()
        .find(|l| names.security_group_id(&l.name) == id)
    else {
        return Err(group_not_found(&id));
    };
    let raw = requested_cidrs(input, i64::from(listener.port))?;
    let mut cidrs = Vec::new();
    for r in &raw {
        let cidr: Cidr = r
            .parse()
            .map_err(|e| invalid(format!("CIDR block {r} is malformed: {e}")))?;
        let present = listener.ingress.contains(&cidr);
        if authorize && present {
            return Err(AwsError::new(
                400,
                "InvalidPermission.Duplicate",
                format!(
                    "the specified rule \"peer: {r}, TCP, from port: {p}, to port: {p}, ALLOW\" already exists",
                    p = i64::from(listener.port)
                ),
            ));
        }
        if !authorize && !present {
            return Err(AwsError::new(
                400,
                "InvalidPermission.NotFound",
                "The specified rule does not exist in this security group.",
            ));
        }
        cidrs.push(cidr);
    }
    let mut rules = Vec::new();
    for cidr in cidrs {
        let actor = ctx.actor();
        let name = listener.name.clone();
        ctx.ask(|reply| Call::Ingress {
            listener: name,
            cidr,
            authorize,
            actor,
            reply,
        })
        .await?
        .map_err(|e| from_api(e, "InvalidGroup.NotFound", "InvalidParameterValue"))?;
        let v6 = cidr.to_string().contains(':');
        let port = i64::from(listener.port);
        // A revoked rule's shape has no owner.
        let owner = authorize.then_some(ACCOUNT);
        rules.push(
            Value::object()
                .with(
                    "securityGroupRuleId",
                    format!(
                        "sgr-{}",
                        names.hex_id("sgr", &format!("{}/{cidr}", listener.name), 17)
                    ),
                )
                .with("groupId", id.as_str())
                .with("groupOwnerId", owner)
                .with("isEgress", false)
                .with("ipProtocol", "tcp")
                .with("fromPort", port)
                .with("toPort", port)
                .with(if v6 { "cidrIpv6" } else { "cidrIpv4" }, cidr.to_string()),
        );
    }
    let set = if authorize {
        "securityGroupRuleSet"
    } else {
        "revokedSecurityGroupRuleSet"
    };
    Ok(Value::object()
        .with("return", true)
        .with(set, Value::List(rules)))
}

async fn describe_instances(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let ids = input.strings("InstanceId")?;
    let filters = shared::filters(input)?;
    let instances = ctx.ask(Call::Instances).await?;
    for id in &ids {
        if !shared::well_formed(id, "i") {
            return Err(AwsError::new(
                400,
                "InvalidInstanceID.Malformed",
                format!("Invalid id: \"{id}\" (expecting \"i-...\")"),
            ));
        }
        if !instances.iter().any(|i| i.id.to_string() == *id) {
            return Err(AwsError::new(
                400,
                "InvalidInstanceID.NotFound",
                format!("The instance ID '{id}' does not exist"),
            ));
        }
    }
    // An instance of a group made through the endpoint is in that group's subnet of its
    // zone, in the subnet's VPC; the stack file's instances in the stack's own.
    let placed: Vec<(String, String, String, String)> = ctx
        .read(|r| {
            let mut out = Vec::new();
            for g in r.of("auto_scaling_group") {
                for subnet in g.body["VPCZoneIdentifier"]
                    .as_str()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                {
                    if let Some(b) = r.get(shared::SUBNET, subnet) {
                        out.push((
                            g.id.clone(),
                            b["availabilityZone"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                            subnet.to_owned(),
                            b["vpcId"].as_str().unwrap_or_default().to_owned(),
                        ));
                    }
                }
            }
            Ok(out)
        })
        .await?;
    let names = ctx.names();
    let place = |group: &str, zone: &str| {
        placed
            .iter()
            .find(|(g, z, _, _)| g == group && z == zone)
            .map(|(_, _, subnet, vpc)| (subnet.clone(), vpc.clone()))
            .unwrap_or_else(|| (names.subnet_id(zone), names.vpc_id()))
    };
    let list: Vec<Value> = instances
        .iter()
        .filter(|i| ids.is_empty() || ids.contains(&i.id.to_string()))
        .filter(|i| {
            filters.iter().all(|(name, values)| match name.as_str() {
                "instance-state-name" => values.iter().any(|v| *v == state(i.lifecycle).1),
                "availability-zone" => values.contains(&i.zone),
                "instance-id" => values.contains(&i.id.to_string()),
                "tag:aws:autoscaling:groupName" => values.contains(&i.group),
                _ => false,
            })
        })
        .map(|i| {
            let (code, name) = state(i.lifecycle);
            let ip = i.private_ip.clone().unwrap_or_default();
            let (subnet, vpc) = place(&i.group, &i.zone);
            Value::object()
                .with("instanceId", i.id.to_string())
                .with("imageId", "ami-bellows")
                .with(
                    "instanceState",
                    Value::object().with("code", code).with("name", name),
                )
                .with("privateDnsName", ip.clone())
                .with("dnsName", "")
                .with("instanceType", i.instance_type.as_str())
                .with("launchTime", time(i.launched_at))
                .with(
                    "placement",
                    Value::object()
                        .with("availabilityZone", i.zone.as_str())
                        .with("tenancy", "default"),
                )
                .with("subnetId", subnet)
                .with("vpcId", vpc)
                .with("privateIpAddress", ip)
                .with("architecture", "x86_64")
                .with(
                    "tagSet",
                    Value::List(vec![
                        Value::object()
                            .with("key", "aws:autoscaling:groupName")
                            .with("value", i.group.as_str()),
                    ]),
                )
        })
        .collect();
    // One reservation per instance, as Auto Scaling launches them.
    let reservations: Vec<Value> = list
        .into_iter()
        .map(|inst| {
            let id = inst
                .get("instanceId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Value::object()
                .with(
                    "reservationId",
                    format!("r-{}", names.hex_id("reservation", &id, 17)),
                )
                .with("ownerId", ACCOUNT)
                .with("groupSet", Value::List(Vec::new()))
                .with("instancesSet", Value::List(vec![inst]))
        })
        .collect();
    let mut out = Value::object();
    let paging = Paging {
        size: "MaxResults",
        default: 1000,
        max: 1000,
        token_in: "NextToken",
        token_out: "nextToken",
        bad_token: "InvalidParameterValue",
    };
    page(ctx, &paging, reservations, &mut out, "reservationSet")?;
    Ok(out)
}

/// EC2's state code and name for an instance's lifecycle.
fn state(l: Lifecycle) -> (i64, &'static str) {
    match l {
        Lifecycle::Pending => (0, "pending"),
        Lifecycle::InService => (16, "running"),
        Lifecycle::Terminating => (32, "shutting-down"),
        Lifecycle::Terminated => (48, "terminated"),
    }
}

/// The zones subnets may be placed in, with whether each is available: the region's
/// as AWS names them, then the stack's own (`zone-a`) that are not among them.
async fn zones(ctx: &Ctx<'_>) -> Result<Vec<(String, bool)>, AwsError> {
    let stack = ctx.ask(Call::Zones).await?;
    let region = ctx.names().region.clone();
    let mut out: Vec<(String, bool)> = network::region_zones(&region)
        .into_iter()
        .map(|z| {
            let up = stack
                .iter()
                .find(|v| v.zone == z)
                .is_none_or(|v| v.available);
            (z, up)
        })
        .collect();
    for v in stack {
        if !out.iter().any(|(z, _)| *z == v.zone) {
            out.push((v.zone, v.available));
        }
    }
    Ok(out)
}

async fn describe_zones(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let wanted = input.strings("ZoneName")?;
    let wanted_ids = input.strings("ZoneId")?;
    let filters = shared::filters(input)?;
    let zones = zones(ctx).await?;
    let region = ctx.names().region.clone();
    for z in &wanted {
        if !zones.iter().any(|(v, _)| v == z) {
            return Err(invalid(format!("Invalid availability zone: [{z}]")));
        }
    }
    let mut list = Vec::new();
    for (z, up) in &zones {
        let id = network::zone_id(&region, z);
        if !wanted.is_empty() && !wanted.contains(z) {
            continue;
        }
        if !wanted_ids.is_empty() && !wanted_ids.contains(&id) {
            continue;
        }
        let state = if *up { "available" } else { "impaired" };
        let body = serde_json::json!({
            "optInStatus": "opt-in-not-required",
            "messageSet": [],
            "regionName": region,
            "zoneName": z,
            "zoneId": id,
            "groupName": region,
            "networkBorderGroup": region,
            "zoneType": "availability-zone",
            "zoneState": state,
        });
        let keep = shared::passes(&filters, &body, |name| {
            let member = match name {
                "zone-name" => "zoneName",
                "zone-id" => "zoneId",
                "state" => "zoneState",
                "region-name" => "regionName",
                "group-name" => "groupName",
                "zone-type" => "zoneType",
                "opt-in-status" => "optInStatus",
                "network-border-group" => "networkBorderGroup",
                _ => return None,
            };
            Some(shared::one(&body, member))
        })?;
        if keep {
            list.push(shared::wire(&body));
        }
    }
    Ok(Value::object().with("availabilityZoneInfo", Value::List(list)))
}
