//! The EC2 record handlers on a state database of their own, with forms as botocore
//! sends them.

use bellows_aws::form::{Dialect, parse};
use bellows_aws::{Input, Value};

use super::shared::{self, Env};
use super::{groups, network, templates};
use crate::resources::Resources;

fn input(form: &str) -> Input {
    Input::new(
        parse(form.as_bytes(), Dialect::Ec2).unwrap(),
        "InvalidParameterValue",
        "MissingParameter",
    )
}

fn env() -> Env {
    Env {
        region: "us-east-1".to_owned(),
        zones: network::region_zones("us-east-1"),
        now: "2026-12-02T06:40:00.000Z".to_owned(),
    }
}

fn records(name: &str) -> Resources {
    let dir = std::env::temp_dir().join(format!("bellows-ec2-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Resources::open(&dir.join("state.db"), "web").unwrap()
}

fn id(v: &Value, path: &[&str]) -> String {
    let mut at = v;
    for p in path {
        at = at.get(p).unwrap_or_else(|| panic!("{p} in {v:?}"));
    }
    at.as_str().unwrap()
}

#[test]
fn a_vpc_brings_its_defaults_and_goes_only_without_dependents() {
    let mut r = records("vpc");
    let e = env();
    let vpc = network::create_vpc(&mut r, &input("CidrBlock=10.0.0.0%2F16"), &e).unwrap();
    let vpc = id(&vpc, &["vpc", "vpcId"]);
    assert_eq!(r.of(shared::SECURITY_GROUP).count(), 1);
    assert_eq!(r.of(shared::ROUTE_TABLE).count(), 1);
    assert_eq!(r.of(shared::ACL).count(), 1);
    let subnet = network::create_subnet(
        &mut r,
        &input(&format!(
            "VpcId={vpc}&CidrBlock=10.0.1.0%2F24&AvailabilityZone=us-east-1b"
        )),
        &e,
    )
    .unwrap();
    let subnet = id(&subnet, &["subnet", "subnetId"]);
    assert_eq!(r.subnet_zone(&subnet).as_deref(), Some("us-east-1b"));
    let bad_zone = network::create_subnet(
        &mut r,
        &input(&format!(
            "VpcId={vpc}&CidrBlock=10.0.2.0%2F24&AvailabilityZone=mars-1a"
        )),
        &e,
    );
    assert_eq!(bad_zone.unwrap_err().code, "InvalidParameterValue");
    let err = network::delete_vpc(&mut r, &input(&format!("VpcId={vpc}"))).unwrap_err();
    assert_eq!(err.code, "DependencyViolation");
    network::delete_subnet(&mut r, &input(&format!("SubnetId={subnet}"))).unwrap();
    network::delete_vpc(&mut r, &input(&format!("VpcId={vpc}"))).unwrap();
    assert!(r.all().is_empty(), "{:?}", r.all());
    let err = network::describe_vpcs(&r, &input(&format!("VpcId.1={vpc}"))).unwrap_err();
    assert_eq!(err.code, "InvalidVpcID.NotFound");
}

#[test]
fn ingress_rules_admit_their_cidrs_on_their_ports() {
    let mut r = records("ingress");
    let e = env();
    let vpc = network::create_vpc(&mut r, &input("CidrBlock=10.0.0.0%2F16"), &e).unwrap();
    let vpc = id(&vpc, &["vpc", "vpcId"]);
    let sg = groups::create(
        &mut r,
        &input(&format!("GroupName=lb&GroupDescription=lb&VpcId={vpc}")),
        &e,
    )
    .unwrap();
    let sg = id(&sg, &["groupId"]);
    groups::authorize(
        &mut r,
        &input(&format!(
            "GroupId={sg}&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=80&IpPermissions.1.ToPort=80\
             &IpPermissions.1.IpRanges.1.CidrIp=0.0.0.0%2F0&IpPermissions.1.IpRanges.2.CidrIp=10.1.0.0%2F16\
             &IpPermissions.2.IpProtocol=tcp&IpPermissions.2.FromPort=8000&IpPermissions.2.ToPort=8100\
             &IpPermissions.2.Ipv6Ranges.1.CidrIpv6=%3A%3A%2F0"
        )),
        false,
        &e,
    )
    .unwrap();
    let groups = [sg.clone()];
    assert_eq!(r.ingress_cidrs(&groups, 80), ["0.0.0.0/0", "10.1.0.0/16"]);
    assert_eq!(r.ingress_cidrs(&groups, 8080), ["::/0"]);
    assert!(r.ingress_cidrs(&groups, 443).is_empty());
    // The egress rule every new group has admits nothing in.
    assert!(r.ingress_cidrs(&groups, 0).is_empty());
    let described = groups::describe(&r, &groups, &[], &[]).unwrap();
    let perms = described[0].get("ipPermissions").unwrap().items();
    assert_eq!(perms.len(), 2);
    assert_eq!(perms[0].get("ipRanges").unwrap().items().len(), 2);
    // By filter, and a filter of no such name is refused.
    let f = |name: &str, value: &str| vec![(name.to_owned(), vec![value.to_owned()])];
    assert_eq!(
        groups::describe(&r, &[], &[], &f("group-name", "lb"))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        groups::describe(&r, &[], &[], &f("vpc-id", &vpc))
            .unwrap()
            .len(),
        2
    );
    assert!(groups::describe(&r, &[], &[], &f("group-nam", "lb")).is_err());
}

#[test]
fn launch_versions_resolve_latest_default_and_numbers() {
    let mut r = records("templates");
    let e = env();
    // `#!/bin/sh\necho one\n` and `echo two`, base64.
    templates::create(
        &mut r,
        &input(
            "LaunchTemplateName=web&LaunchTemplateData.ImageId=bellows-app-echo\
             &LaunchTemplateData.InstanceType=t3.micro&LaunchTemplateData.UserData=IyEvYmluL3NoCmVjaG8gb25lCg%3D%3D\
             &LaunchTemplateData.SecurityGroupId.1=sg-1",
        ),
        &e,
    )
    .unwrap();
    templates::create_version(
        &mut r,
        &input(
            "LaunchTemplateName=web&LaunchTemplateData.InstanceType=t3.small\
             &LaunchTemplateData.UserData=ZWNobyB0d28%3D\
             &LaunchTemplateData.NetworkInterface.1.DeviceIndex=0&LaunchTemplateData.NetworkInterface.1.SecurityGroupId.1=sg-2",
        ),
        &e,
    )
    .unwrap();
    let one = r.launch_version("web", "$Default").unwrap();
    assert_eq!(one.version, 1);
    assert_eq!(one.user_data.as_deref(), Some("#!/bin/sh\necho one\n"));
    assert_eq!(one.image_id.as_deref(), Some("bellows-app-echo"));
    assert_eq!(one.instance_type.as_deref(), Some("t3.micro"));
    assert_eq!(one.security_groups, ["sg-1"]);
    let two = r.launch_version(&one.template_id, "$Latest").unwrap();
    assert_eq!(
        (
            two.version,
            two.user_data.as_deref(),
            two.image_id.as_deref()
        ),
        (2, Some("echo two"), None)
    );
    assert_eq!(two.security_groups, ["sg-2"]);
    assert_eq!(r.launch_version("web", "2").unwrap(), two);
    templates::modify(&mut r, &input("LaunchTemplateName=web&SetDefaultVersion=2")).unwrap();
    assert_eq!(r.launch_version("web", "$Default").unwrap().version, 2);
    assert_eq!(
        r.launch_version("web", "3").unwrap_err().code,
        "InvalidLaunchTemplateId.VersionNotFound"
    );
    assert_eq!(
        r.launch_version("nope", "1").unwrap_err().code,
        "InvalidLaunchTemplateName.NotFoundException"
    );
    assert_eq!(
        r.launch_version("lt-00000000000000000", "1")
            .unwrap_err()
            .code,
        "InvalidLaunchTemplateId.NotFound"
    );
}

#[test]
fn an_id_not_of_its_kinds_form_is_malformed_not_missing() {
    for (kind, id, code) in [
        (shared::VPC, "vpc-0a1b2c3d", "InvalidVpcID.NotFound"),
        (
            shared::VPC,
            "vpc-0123456789abcdef0",
            "InvalidVpcID.NotFound",
        ),
        (shared::VPC, "vpc-xyz", "InvalidVpcID.Malformed"),
        (shared::VPC, "subnet-0a1b2c3d", "InvalidVpcID.Malformed"),
        (
            shared::SUBNET,
            "subnet-0A1B2C3D",
            "InvalidSubnetID.Malformed",
        ),
        (shared::SECURITY_GROUP, "sg-123", "InvalidGroupId.Malformed"),
        (
            shared::GATEWAY,
            "igw-",
            "InvalidInternetGatewayId.Malformed",
        ),
        (
            shared::ROUTE_TABLE,
            "rtb-0a1b2c3d",
            "InvalidRouteTableID.NotFound",
        ),
    ] {
        assert_eq!(shared::not_found(kind, id).code, code, "{id}");
    }
}
