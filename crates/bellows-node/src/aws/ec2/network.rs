//! VPCs with what AWS makes with each (a default security group, a main route table, a
//! default network ACL), subnets, internet gateways, route tables, network ACLs, the
//! region's zones and the account's attributes, as records.

use bellows_aws::arn::ACCOUNT;
use bellows_aws::{AwsError, Input, Value};
use serde_json::{Value as J, json};

use super::groups;
use super::shared::*;
use crate::resources::Resources;

/// The DHCP options every VPC here has (AWS's default set of a region).
const DHCP_OPTIONS: &str = "dopt-0bellows0000000001";

fn attribute(input: &Input, name: &str) -> Result<Option<bool>, AwsError> {
    input.nested(name).opt_bool("Value")
}

pub fn create_vpc(r: &mut Resources, input: &Input, env: &Env) -> Result<Value, AwsError> {
    let cidr = input
        .opt_str("CidrBlock")?
        .ok_or_else(|| missing("cidrBlock"))?;
    let (_, prefix) = cidr4(&cidr)?;
    if !(16..=28).contains(&prefix) {
        return Err(AwsError::new(
            400,
            "InvalidVpc.Range",
            format!("The CIDR '{cidr}' is invalid."),
        ));
    }
    if input.opt_bool("AmazonProvidedIpv6CidrBlock")? == Some(true) {
        return Err(invalid("bellows VPCs have no IPv6 CIDR blocks"));
    }
    let tenancy = input
        .opt_str("InstanceTenancy")?
        .unwrap_or_else(|| "default".to_owned());
    let id = r.new_id("vpc")?;
    let assoc = r.new_id("vpc-cidr-assoc")?;
    let vpc = json!({
        "vpcId": id,
        "ownerId": ACCOUNT,
        "state": "available",
        "cidrBlock": cidr,
        "dhcpOptionsId": DHCP_OPTIONS,
        "instanceTenancy": tenancy,
        "isDefault": false,
        "cidrBlockAssociationSet": [{
            "associationId": assoc,
            "cidrBlock": cidr,
            "cidrBlockState": { "state": "associated" },
        }],
        "ipv6CidrBlockAssociationSet": [],
        "tagSet": tags_in(input, "vpc")?,
        "_enableDnsSupport": true,
        "_enableDnsHostnames": false,
        "_enableNetworkAddressUsageMetrics": false,
    });
    r.put(VPC, &id, vpc.clone())?;
    // What AWS makes with every VPC.
    groups::create_default(r, &id, env)?;
    let rtb = r.new_id("rtb")?;
    let rtbassoc = r.new_id("rtbassoc")?;
    r.put(
        ROUTE_TABLE,
        &rtb,
        json!({
            "routeTableId": rtb,
            "vpcId": id,
            "ownerId": ACCOUNT,
            "routeSet": [local_route(&cidr)],
            "associationSet": [{
                "main": true,
                "routeTableAssociationId": rtbassoc,
                "routeTableId": rtb,
                "associationState": { "state": "associated" },
            }],
            "propagatingVgwSet": [],
            "tagSet": [],
        }),
    )?;
    let acl = r.new_id("acl")?;
    let entry = |n: i64, egress: bool, action: &str| {
        json!({
            "ruleNumber": n, "protocol": "-1", "ruleAction": action,
            "egress": egress, "cidrBlock": "0.0.0.0/0",
        })
    };
    r.put(
        ACL,
        &acl,
        json!({
            "networkAclId": acl,
            "vpcId": id,
            "ownerId": ACCOUNT,
            "default": true,
            "entrySet": [
                entry(100, true, "allow"), entry(32767, true, "deny"),
                entry(100, false, "allow"), entry(32767, false, "deny"),
            ],
            "associationSet": [],
            "tagSet": [],
        }),
    )?;
    Ok(Value::object().with("vpc", wire(&vpc)))
}

fn local_route(cidr: &str) -> J {
    json!({
        "destinationCidrBlock": cidr,
        "gatewayId": "local",
        "origin": "CreateRouteTable",
        "state": "active",
    })
}

fn vpc_values(b: &J, name: &str) -> Option<Vec<String>> {
    Some(match name {
        "vpc-id" => one(b, "vpcId"),
        "cidr" | "cidr-block-association.cidr-block" => one(b, "cidrBlock"),
        "state" => one(b, "state"),
        "is-default" | "isDefault" => one(b, "isDefault"),
        "owner-id" => one(b, "ownerId"),
        "dhcp-options-id" => one(b, "dhcpOptionsId"),
        "instance-tenancy" => one(b, "instanceTenancy"),
        _ => return None,
    })
}

pub fn describe_vpcs(r: &Resources, input: &Input) -> Result<Value, AwsError> {
    let list = select(
        r,
        VPC,
        &input.strings("VpcId")?,
        &filters(input)?,
        vpc_values,
    )?;
    Ok(Value::object().with("vpcSet", Value::List(list.iter().map(wire).collect())))
}

pub fn delete_vpc(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let id = input.str("VpcId")?;
    need(r, VPC, &id)?;
    let in_vpc = |b: &J| b["vpcId"] == id.as_str();
    let main = |b: &J| {
        b["associationSet"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["main"] == true))
    };
    let attached = |b: &J| {
        b["attachmentSet"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["vpcId"] == id.as_str()))
    };
    let blocking = r.of(SUBNET).any(|s| in_vpc(&s.body))
        || r.of(SECURITY_GROUP)
            .any(|s| in_vpc(&s.body) && s.body["groupName"] != "default")
        || r.of(ROUTE_TABLE).any(|t| in_vpc(&t.body) && !main(&t.body))
        || r.of(GATEWAY).any(|g| attached(&g.body));
    if blocking {
        return Err(AwsError::new(
            400,
            "DependencyViolation",
            format!("The vpc '{id}' has dependencies and cannot be deleted."),
        ));
    }
    let own: Vec<(String, String)> = r
        .all()
        .iter()
        .filter(|rec| matches!(rec.kind.as_str(), SECURITY_GROUP | ROUTE_TABLE | ACL))
        .filter(|rec| in_vpc(&rec.body))
        .map(|rec| (rec.kind.clone(), rec.id.clone()))
        .collect();
    for (kind, rid) in own {
        if kind == SECURITY_GROUP {
            groups::delete_rules_of(r, &rid)?;
        }
        r.delete(&kind, &rid)?;
    }
    r.delete(VPC, &id)?;
    Ok(Value::object().with("return", true))
}

const VPC_ATTRIBUTES: [&str; 3] = [
    "enableDnsSupport",
    "enableDnsHostnames",
    "enableNetworkAddressUsageMetrics",
];

pub fn modify_vpc_attribute(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let id = input.str("VpcId")?;
    need(r, VPC, &id)?;
    let mut set = Vec::new();
    for a in VPC_ATTRIBUTES {
        let name = format!("{}{}", a[..1].to_uppercase(), &a[1..]);
        if let Some(v) = attribute(input, &name)? {
            set.push((a, v));
        }
    }
    if set.len() != 1 {
        return Err(invalid(
            "ModifyVpcAttribute changes exactly one attribute per call",
        ));
    }
    r.update(VPC, &id, |b| {
        for (a, v) in set {
            b[format!("_{a}")] = J::Bool(v);
        }
    })?;
    Ok(Value::object().with("return", true))
}

pub fn describe_vpc_attribute(r: &Resources, input: &Input) -> Result<Value, AwsError> {
    let id = input.str("VpcId")?;
    let vpc = need(r, VPC, &id)?;
    let a = input.str("Attribute")?;
    if !VPC_ATTRIBUTES.contains(&a.as_str()) {
        return Err(invalid(format!(
            "Value ({a}) for parameter attribute is invalid."
        )));
    }
    let v = vpc[format!("_{a}")].as_bool().unwrap_or(false);
    Ok(Value::object()
        .with("vpcId", id)
        .with(&a, Value::object().with("value", v)))
}

/// AWS's zone id of a zone: `use1-az1` for `us-east-1a`.
pub fn zone_id(region: &str, zone: &str) -> String {
    let Some(letter) = zone.strip_prefix(region).filter(|l| l.len() == 1) else {
        return format!("bellows-{zone}");
    };
    let parts: Vec<&str> = region.split('-').collect();
    let short = match parts.as_slice() {
        [a, b, c] => format!("{a}{}{c}", &b[..1]),
        _ => region.replace('-', ""),
    };
    let n = letter.as_bytes()[0].saturating_sub(b'a') + 1;
    format!("{short}-az{n}")
}

/// The zones of a region, as AWS names them (us-east-1 has six).
pub fn region_zones(region: &str) -> Vec<String> {
    let letters = if region == "us-east-1" {
        "abcdef"
    } else {
        "abc"
    };
    letters.chars().map(|c| format!("{region}{c}")).collect()
}

pub fn create_subnet(r: &mut Resources, input: &Input, env: &Env) -> Result<Value, AwsError> {
    let vpc_id = input.str("VpcId")?;
    let vpc = need(r, VPC, &vpc_id)?.clone();
    let cidr = input
        .opt_str("CidrBlock")?
        .ok_or_else(|| missing("cidrBlock"))?;
    let block = cidr4(&cidr)?;
    let vpc_block = cidr4(vpc["cidrBlock"].as_str().unwrap_or_default())?;
    if !within(block, vpc_block) || block.1 > 28 {
        return Err(AwsError::new(
            400,
            "InvalidSubnet.Range",
            format!("The CIDR '{cidr}' is invalid."),
        ));
    }
    for s in r.of(SUBNET).filter(|s| s.body["vpcId"] == vpc_id.as_str()) {
        if overlap(
            block,
            cidr4(s.body["cidrBlock"].as_str().unwrap_or_default())?,
        ) {
            return Err(AwsError::new(
                400,
                "InvalidSubnet.Conflict",
                format!("The CIDR '{cidr}' conflicts with another subnet"),
            ));
        }
    }
    let zone = match (
        input.opt_str("AvailabilityZone")?,
        input.opt_str("AvailabilityZoneId")?,
    ) {
        (Some(z), _) => z,
        (None, Some(id)) => env
            .zones
            .iter()
            .find(|z| zone_id(&env.region, z) == id)
            .cloned()
            .ok_or_else(|| invalid(format!("Value ({id}) for parameter availabilityZoneId is invalid. Subnets can currently only be created in the following availability zones: {}.", env.zones.join(", "))))?,
        (None, None) => env.zones.first().cloned().unwrap_or_default(),
    };
    if !env.zones.contains(&zone) {
        return Err(invalid(format!(
            "Value ({zone}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: {}.",
            env.zones.join(", ")
        )));
    }
    let id = r.new_id("subnet")?;
    let subnet = json!({
        "subnetId": id,
        "subnetArn": env.arn("subnet", &id),
        "vpcId": vpc_id,
        "ownerId": ACCOUNT,
        "state": "available",
        "cidrBlock": cidr,
        "availabilityZone": zone,
        "availabilityZoneId": zone_id(&env.region, &zone),
        "availableIpAddressCount": (1u64 << (32 - block.1)) - 5,
        "defaultForAz": false,
        "mapPublicIpOnLaunch": false,
        "mapCustomerOwnedIpOnLaunch": false,
        "assignIpv6AddressOnCreation": false,
        "ipv6CidrBlockAssociationSet": [],
        "enableDns64": false,
        "ipv6Native": false,
        "privateDnsNameOptionsOnLaunch": {
            "hostnameType": "ip-name",
            "enableResourceNameDnsARecord": false,
            "enableResourceNameDnsAAAARecord": false,
        },
        "tagSet": tags_in(input, "subnet")?,
    });
    r.put(SUBNET, &id, subnet.clone())?;
    Ok(Value::object().with("subnet", wire(&subnet)))
}

fn subnet_values(b: &J, name: &str) -> Option<Vec<String>> {
    Some(match name {
        "subnet-id" => one(b, "subnetId"),
        "vpc-id" => one(b, "vpcId"),
        "cidr-block" | "cidr" | "cidrBlock" => one(b, "cidrBlock"),
        "availability-zone" | "availabilityZone" => one(b, "availabilityZone"),
        "availability-zone-id" | "availabilityZoneId" => one(b, "availabilityZoneId"),
        "state" => one(b, "state"),
        "default-for-az" | "defaultForAz" => one(b, "defaultForAz"),
        "map-public-ip-on-launch" => one(b, "mapPublicIpOnLaunch"),
        "owner-id" => one(b, "ownerId"),
        "subnet-arn" => one(b, "subnetArn"),
        _ => return None,
    })
}

pub fn describe_subnets(r: &Resources, input: &Input) -> Result<Value, AwsError> {
    let list = select(
        r,
        SUBNET,
        &input.strings("SubnetId")?,
        &filters(input)?,
        subnet_values,
    )?;
    Ok(Value::object().with("subnetSet", Value::List(list.iter().map(wire).collect())))
}

pub fn delete_subnet(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let id = input.str("SubnetId")?;
    need(r, SUBNET, &id)?;
    // Its route table association goes with it, as on AWS.
    let tables: Vec<String> = r.of(ROUTE_TABLE).map(|t| t.id.clone()).collect();
    for t in tables {
        r.update(ROUTE_TABLE, &t, |b| {
            if let Some(a) = b["associationSet"].as_array_mut() {
                a.retain(|a| a["subnetId"] != id.as_str());
            }
        })?;
    }
    r.delete(SUBNET, &id)?;
    Ok(Value::object().with("return", true))
}

pub fn modify_subnet_attribute(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let id = input.str("SubnetId")?;
    need(r, SUBNET, &id)?;
    let mut set: Vec<(&str, Option<&str>, J)> = Vec::new();
    for (name, member) in [
        ("MapPublicIpOnLaunch", "mapPublicIpOnLaunch"),
        ("AssignIpv6AddressOnCreation", "assignIpv6AddressOnCreation"),
        ("MapCustomerOwnedIpOnLaunch", "mapCustomerOwnedIpOnLaunch"),
        ("EnableDns64", "enableDns64"),
    ] {
        if let Some(v) = attribute(input, name)? {
            set.push((member, None, J::Bool(v)));
        }
    }
    for (name, member) in [
        (
            "EnableResourceNameDnsARecordOnLaunch",
            "enableResourceNameDnsARecord",
        ),
        (
            "EnableResourceNameDnsAAAARecordOnLaunch",
            "enableResourceNameDnsAAAARecord",
        ),
    ] {
        if let Some(v) = attribute(input, name)? {
            set.push(("privateDnsNameOptionsOnLaunch", Some(member), J::Bool(v)));
        }
    }
    if let Some(t) = input.opt_str("PrivateDnsHostnameTypeOnLaunch")? {
        if t != "ip-name" && t != "resource-name" {
            return Err(invalid(format!(
                "Value ({t}) for parameter privateDnsHostnameTypeOnLaunch is invalid."
            )));
        }
        set.push((
            "privateDnsNameOptionsOnLaunch",
            Some("hostnameType"),
            J::String(t),
        ));
    }
    if set.is_empty() {
        return Err(invalid(
            "ModifySubnetAttribute names no attribute bellows knows",
        ));
    }
    r.update(SUBNET, &id, |b| {
        for (member, inner, v) in set {
            match inner {
                Some(i) => b[member][i] = v,
                None => b[member] = v,
            }
        }
    })?;
    Ok(Value::object().with("return", true))
}

pub fn create_internet_gateway(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let id = r.new_id("igw")?;
    let igw = json!({
        "internetGatewayId": id,
        "ownerId": ACCOUNT,
        "attachmentSet": [],
        "tagSet": tags_in(input, "internet-gateway")?,
    });
    r.put(GATEWAY, &id, igw.clone())?;
    Ok(Value::object().with("internetGateway", wire(&igw)))
}

pub fn attach_internet_gateway(
    r: &mut Resources,
    input: &Input,
    attach: bool,
) -> Result<Value, AwsError> {
    let id = input.str("InternetGatewayId")?;
    let vpc = input.str("VpcId")?;
    let igw = need(r, GATEWAY, &id)?.clone();
    need(r, VPC, &vpc)?;
    let attached: Vec<String> = igw["attachmentSet"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|a| a["vpcId"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if attach {
        if !attached.is_empty() {
            return Err(AwsError::new(
                400,
                "Resource.AlreadyAssociated",
                format!(
                    "resource {id} is already attached to network {}",
                    attached[0]
                ),
            ));
        }
        let taken = r.of(GATEWAY).any(|g| {
            g.body["attachmentSet"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["vpcId"] == vpc.as_str()))
        });
        if taken {
            return Err(AwsError::new(
                400,
                "Resource.AlreadyAssociated",
                format!("network {vpc} already has an internet gateway attached"),
            ));
        }
    } else if !attached.contains(&vpc) {
        return Err(AwsError::new(
            400,
            "Gateway.NotAttached",
            format!("resource {id} is not attached to network {vpc}"),
        ));
    }
    r.update(GATEWAY, &id, |b| {
        b["attachmentSet"] = if attach {
            json!([{ "vpcId": vpc, "state": "available" }])
        } else {
            json!([])
        };
    })?;
    Ok(Value::object().with("return", true))
}

pub fn delete_internet_gateway(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let id = input.str("InternetGatewayId")?;
    let igw = need(r, GATEWAY, &id)?;
    if igw["attachmentSet"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        return Err(AwsError::new(
            400,
            "DependencyViolation",
            format!("The internetGateway '{id}' has dependencies and cannot be deleted."),
        ));
    }
    r.delete(GATEWAY, &id)?;
    Ok(Value::object().with("return", true))
}

fn gateway_values(b: &J, name: &str) -> Option<Vec<String>> {
    let attachments = |m: &str| -> Vec<String> {
        b["attachmentSet"]
            .as_array()
            .map(|a| a.iter().flat_map(|a| one(a, m)).collect())
            .unwrap_or_default()
    };
    Some(match name {
        "internet-gateway-id" => one(b, "internetGatewayId"),
        "owner-id" => one(b, "ownerId"),
        "attachment.vpc-id" => attachments("vpcId"),
        "attachment.state" => attachments("state"),
        _ => return None,
    })
}

pub fn describe_internet_gateways(r: &Resources, input: &Input) -> Result<Value, AwsError> {
    let list = select(
        r,
        GATEWAY,
        &input.strings("InternetGatewayId")?,
        &filters(input)?,
        gateway_values,
    )?;
    Ok(Value::object().with(
        "internetGatewaySet",
        Value::List(list.iter().map(wire).collect()),
    ))
}

pub fn create_route_table(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let vpc_id = input.str("VpcId")?;
    let vpc = need(r, VPC, &vpc_id)?;
    let cidr = vpc["cidrBlock"].as_str().unwrap_or_default().to_owned();
    let id = r.new_id("rtb")?;
    let rtb = json!({
        "routeTableId": id,
        "vpcId": vpc_id,
        "ownerId": ACCOUNT,
        "routeSet": [local_route(&cidr)],
        "associationSet": [],
        "propagatingVgwSet": [],
        "tagSet": tags_in(input, "route-table")?,
    });
    r.put(ROUTE_TABLE, &id, rtb.clone())?;
    Ok(Value::object().with("routeTable", wire(&rtb)))
}

/// The route's destination as a call names it: (member, value).
fn destination(input: &Input) -> Result<(&'static str, String), AwsError> {
    for (name, member) in [
        ("DestinationCidrBlock", "destinationCidrBlock"),
        ("DestinationIpv6CidrBlock", "destinationIpv6CidrBlock"),
        ("DestinationPrefixListId", "destinationPrefixListId"),
    ] {
        if let Some(v) = input.opt_str(name)? {
            return Ok((member, v));
        }
    }
    Err(missing("destinationCidrBlock"))
}

pub fn create_route(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let id = input.str("RouteTableId")?;
    let table = need(r, ROUTE_TABLE, &id)?.clone();
    let (member, dest) = destination(input)?;
    let mut route = json!({ member: dest, "origin": "CreateRoute", "state": "active" });
    let mut targets = 0;
    for (name, out) in [
        ("GatewayId", "gatewayId"),
        ("NatGatewayId", "natGatewayId"),
        ("EgressOnlyInternetGatewayId", "egressOnlyInternetGatewayId"),
        ("TransitGatewayId", "transitGatewayId"),
        ("VpcPeeringConnectionId", "vpcPeeringConnectionId"),
        ("NetworkInterfaceId", "networkInterfaceId"),
        ("InstanceId", "instanceId"),
        ("LocalGatewayId", "localGatewayId"),
        ("CarrierGatewayId", "carrierGatewayId"),
    ] {
        if let Some(v) = input.opt_str(name)? {
            if name == "GatewayId" && v.starts_with("igw-") {
                need(r, GATEWAY, &v)?;
            }
            route[out] = J::String(v);
            targets += 1;
        }
    }
    if targets != 1 {
        return Err(invalid("A route names exactly one target"));
    }
    let exists = table["routeSet"]
        .as_array()
        .is_some_and(|rs| rs.iter().any(|x| x[member] == dest.as_str()));
    if exists {
        return Err(AwsError::new(
            400,
            "RouteAlreadyExists",
            format!("The route identified by {dest} already exists."),
        ));
    }
    r.update(ROUTE_TABLE, &id, |b| {
        if let Some(rs) = b["routeSet"].as_array_mut() {
            rs.push(route);
        }
    })?;
    Ok(Value::object().with("return", true))
}

pub fn delete_route(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let id = input.str("RouteTableId")?;
    let table = need(r, ROUTE_TABLE, &id)?;
    let (member, dest) = destination(input)?;
    let found = table["routeSet"].as_array().is_some_and(|rs| {
        rs.iter()
            .any(|x| x[member] == dest.as_str() && x["gatewayId"] != "local")
    });
    if !found {
        return Err(AwsError::new(
            400,
            "InvalidRoute.NotFound",
            format!("no route with destination-cidr-block {dest} in route table {id}"),
        ));
    }
    r.update(ROUTE_TABLE, &id, |b| {
        if let Some(rs) = b["routeSet"].as_array_mut() {
            rs.retain(|x| x[member] != dest.as_str());
        }
    })?;
    Ok(Value::object().with("return", true))
}

pub fn associate_route_table(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let id = input.str("RouteTableId")?;
    let table = need(r, ROUTE_TABLE, &id)?.clone();
    let (member, target) = match (input.opt_str("SubnetId")?, input.opt_str("GatewayId")?) {
        (Some(s), None) => {
            let subnet = need(r, SUBNET, &s)?;
            if subnet["vpcId"] != table["vpcId"] {
                return Err(invalid(format!(
                    "Route table {id} and subnet {s} belong to different networks"
                )));
            }
            ("subnetId", s)
        }
        (None, Some(g)) => {
            need(r, GATEWAY, &g)?;
            ("gatewayId", g)
        }
        _ => return Err(missing("subnetId")),
    };
    let taken = r.of(ROUTE_TABLE).find_map(|t| {
        t.body["associationSet"].as_array().and_then(|a| {
            a.iter()
                .find(|a| a[member] == target.as_str())
                .and(Some(t.id.clone()))
        })
    });
    if let Some(other) = taken {
        return Err(AwsError::new(
            400,
            "Resource.AlreadyAssociated",
            format!(
                "the specified association for route table {other} conflicts with an existing association"
            ),
        ));
    }
    let assoc = r.new_id("rtbassoc")?;
    r.update(ROUTE_TABLE, &id, |b| {
        if let Some(a) = b["associationSet"].as_array_mut() {
            a.push(json!({
                "main": false,
                "routeTableAssociationId": assoc,
                "routeTableId": id,
                member: target,
                "associationState": { "state": "associated" },
            }));
        }
    })?;
    Ok(Value::object().with("associationId", assoc).with(
        "associationState",
        Value::object().with("state", "associated"),
    ))
}

pub fn disassociate_route_table(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let assoc = input.str("AssociationId")?;
    let owner = r.of(ROUTE_TABLE).find_map(|t| {
        t.body["associationSet"].as_array().and_then(|a| {
            a.iter()
                .find(|a| a["routeTableAssociationId"] == assoc.as_str())
                .map(|a| (t.id.clone(), a["main"] == true))
        })
    });
    let Some((table, main)) = owner else {
        return Err(AwsError::new(
            400,
            "InvalidAssociationID.NotFound",
            format!("The association ID '{assoc}' does not exist"),
        ));
    };
    if main {
        return Err(invalid(format!(
            "cannot disassociate the main route table association {assoc}"
        )));
    }
    r.update(ROUTE_TABLE, &table, |b| {
        if let Some(a) = b["associationSet"].as_array_mut() {
            a.retain(|a| a["routeTableAssociationId"] != assoc.as_str());
        }
    })?;
    Ok(Value::object().with("return", true))
}

pub fn delete_route_table(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let id = input.str("RouteTableId")?;
    let table = need(r, ROUTE_TABLE, &id)?;
    if table["associationSet"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        return Err(AwsError::new(
            400,
            "DependencyViolation",
            format!("The routeTable '{id}' has dependencies and cannot be deleted."),
        ));
    }
    r.delete(ROUTE_TABLE, &id)?;
    Ok(Value::object().with("return", true))
}

fn route_table_values(b: &J, name: &str) -> Option<Vec<String>> {
    let each = |list: &str, m: &str| -> Vec<String> {
        b[list]
            .as_array()
            .map(|a| a.iter().flat_map(|a| one(a, m)).collect())
            .unwrap_or_default()
    };
    Some(match name {
        "route-table-id" => one(b, "routeTableId"),
        "vpc-id" => one(b, "vpcId"),
        "owner-id" => one(b, "ownerId"),
        "association.main" => {
            let main = each("associationSet", "main").contains(&"true".to_owned());
            vec![main.to_string()]
        }
        "association.route-table-association-id" => {
            each("associationSet", "routeTableAssociationId")
        }
        "association.route-table-id" => each("associationSet", "routeTableId"),
        "association.subnet-id" => each("associationSet", "subnetId"),
        "association.gateway-id" => each("associationSet", "gatewayId"),
        "route.destination-cidr-block" => each("routeSet", "destinationCidrBlock"),
        "route.gateway-id" => each("routeSet", "gatewayId"),
        "route.state" => each("routeSet", "state"),
        "route.origin" => each("routeSet", "origin"),
        _ => return None,
    })
}

pub fn describe_route_tables(r: &Resources, input: &Input) -> Result<Value, AwsError> {
    let list = select(
        r,
        ROUTE_TABLE,
        &input.strings("RouteTableId")?,
        &filters(input)?,
        route_table_values,
    )?;
    Ok(Value::object().with(
        "routeTableSet",
        Value::List(list.iter().map(wire).collect()),
    ))
}

fn acl_values(b: &J, name: &str) -> Option<Vec<String>> {
    Some(match name {
        "network-acl-id" => one(b, "networkAclId"),
        "vpc-id" => one(b, "vpcId"),
        "default" => one(b, "default"),
        "owner-id" => one(b, "ownerId"),
        "association.subnet-id" => b["associationSet"]
            .as_array()
            .map(|a| a.iter().flat_map(|a| one(a, "subnetId")).collect())
            .unwrap_or_default(),
        _ => return None,
    })
}

pub fn describe_network_acls(r: &Resources, input: &Input) -> Result<Value, AwsError> {
    let list = select(
        r,
        ACL,
        &input.strings("NetworkAclId")?,
        &filters(input)?,
        acl_values,
    )?;
    Ok(Value::object().with(
        "networkAclSet",
        Value::List(list.iter().map(wire).collect()),
    ))
}

pub fn describe_account_attributes(input: &Input) -> Result<Value, AwsError> {
    let all: [(&str, &[&str]); 6] = [
        ("supported-platforms", &["VPC"]),
        ("default-vpc", &["none"]),
        ("max-instances", &["20"]),
        ("vpc-max-security-groups-per-interface", &["5"]),
        ("max-elastic-ips", &["5"]),
        ("vpc-max-elastic-ips", &["5"]),
    ];
    let wanted = input.strings("AttributeName")?;
    let list: Vec<Value> = all
        .iter()
        .filter(|(n, _)| wanted.is_empty() || wanted.iter().any(|w| w == n))
        .map(|(n, vs)| {
            Value::object().with("attributeName", *n).with(
                "attributeValueSet",
                Value::List(
                    vs.iter()
                        .map(|v| Value::object().with("attributeValue", *v))
                        .collect(),
                ),
            )
        })
        .collect();
    Ok(Value::object().with("accountAttributeSet", Value::List(list)))
}
