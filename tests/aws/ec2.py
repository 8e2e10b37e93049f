#!/usr/bin/env python3
"""boto3 on bellows' EC2 records: a VPC with its default security group, main route
table and default network ACL, two subnets, a security group with rules, an internet
gateway, a route table, tags and a launch template with two versions; every answer's
elements checked against botocore's model (the hook of check.py).

    python3 tests/aws/ec2.py create IDS.json   # creates and checks, writes the ids
    python3 tests/aws/ec2.py verify IDS.json   # (after a restart) reads the same back
    python3 tests/aws/ec2.py delete IDS.json   # deletes, checks errors and that all is gone

Run with the variables `bellows aws-env` prints. Exits 0 when every check passed.
"""

import base64
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check  # noqa: E402
from check import CHECKED, FAILURES, client, code_of, ok  # noqa: E402

USER_DATA_1 = "#!/bin/sh\nexec bellows app echo\n"
USER_DATA_2 = "#cloud-config\nruncmd:\n  - [bellows, app, ip-tracker]\n"


def f(name, *values):
    return {"Name": name, "Values": list(values)}


def create(c):
    ids = {}
    vpc = c.create_vpc(
        CidrBlock="10.0.0.0/16",
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "main"}]}],
    )["Vpc"]
    ids["vpc"] = v = vpc["VpcId"]
    ok(vpc["State"] == "available" and vpc["CidrBlock"] == "10.0.0.0/16", "CreateVpc")
    ok(vpc["Tags"] == [{"Key": "Name", "Value": "main"}], "CreateVpc's tags")
    c.modify_vpc_attribute(VpcId=v, EnableDnsHostnames={"Value": True})
    a = c.describe_vpc_attribute(VpcId=v, Attribute="enableDnsHostnames")
    ok(a["EnableDnsHostnames"]["Value"] is True, "ModifyVpcAttribute enableDnsHostnames")
    a = c.describe_vpc_attribute(VpcId=v, Attribute="enableDnsSupport")
    ok(a["EnableDnsSupport"]["Value"] is True, "enableDnsSupport is on by default")

    sgs = c.describe_security_groups(Filters=[f("vpc-id", v), f("group-name", "default")])["SecurityGroups"]
    ok(len(sgs) == 1, "the VPC's default security group")
    ids["default_sg"] = sgs[0]["GroupId"]
    rts = c.describe_route_tables(Filters=[f("vpc-id", v), f("association.main", "true")])["RouteTables"]
    ok(len(rts) == 1 and rts[0]["Routes"][0]["GatewayId"] == "local", "the VPC's main route table")
    acls = c.describe_network_acls(Filters=[f("vpc-id", v), f("default", "true")])["NetworkAcls"]
    ok(len(acls) == 1 and len(acls[0]["Entries"]) == 4, "the VPC's default network ACL")

    zones = [z["ZoneName"] for z in c.describe_availability_zones(Filters=[f("state", "available")])["AvailabilityZones"]]
    ok(zones[:2] == ["us-east-1a", "us-east-1b"], f"the region's zones as AWS names them: {zones}")
    subnets = []
    for i, zone in enumerate(zones[:2]):
        s = c.create_subnet(VpcId=v, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=zone)["Subnet"]
        ok(s["AvailabilityZone"] == zone and s["AvailableIpAddressCount"] == 251, f"CreateSubnet in {zone}")
        subnets.append(s["SubnetId"])
    ids["subnets"] = subnets
    e = code_of(c.create_subnet, VpcId=v, CidrBlock="10.0.0.128/25", AvailabilityZone=zones[0])
    ok(e == ("InvalidSubnet.Conflict", 400), "an overlapping subnet: InvalidSubnet.Conflict")
    e = code_of(c.create_subnet, VpcId=v, CidrBlock="10.9.0.0/24")
    ok(e == ("InvalidSubnet.Range", 400), "a subnet outside the VPC: InvalidSubnet.Range")
    c.modify_subnet_attribute(SubnetId=subnets[0], MapPublicIpOnLaunch={"Value": True})
    s = c.describe_subnets(SubnetIds=[subnets[0]])["Subnets"][0]
    ok(s["MapPublicIpOnLaunch"] is True, "ModifySubnetAttribute MapPublicIpOnLaunch")
    got = c.describe_subnets(Filters=[f("vpc-id", v), f("availability-zone", zones[1])])["Subnets"]
    ok([x["SubnetId"] for x in got] == [subnets[1]], "DescribeSubnets by vpc-id and availability-zone")

    sg = c.create_security_group(GroupName="web", Description="web servers", VpcId=v)["GroupId"]
    ids["sg"] = sg
    e = code_of(c.create_security_group, GroupName="web", Description="again", VpcId=v)
    ok(e == ("InvalidGroup.Duplicate", 400), "a second group of the same name: InvalidGroup.Duplicate")
    g = c.describe_security_groups(GroupIds=[sg])["SecurityGroups"][0]
    ok(g["IpPermissionsEgress"][0]["IpProtocol"] == "-1", "a new group lets everything out")
    c.revoke_security_group_egress(GroupId=sg, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    added = c.authorize_security_group_ingress(
        GroupId=sg,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
             "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "web"}, {"CidrIp": "10.1.0.0/16"}]},
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "UserIdGroupPairs": [{"GroupId": ids["default_sg"]}]},
        ],
    )["SecurityGroupRules"]
    ok(len(added) == 3 and all(r["SecurityGroupRuleId"].startswith("sgr-") for r in added),
       "AuthorizeSecurityGroupIngress answers its rules")
    c.authorize_security_group_egress(
        GroupId=sg, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    e = code_of(c.authorize_security_group_ingress, GroupId=sg, IpProtocol="tcp", FromPort=80, ToPort=80, CidrIp="10.1.0.0/16")
    ok(e == ("InvalidPermission.Duplicate", 400), "a rule that is there: InvalidPermission.Duplicate")
    c.revoke_security_group_ingress(GroupId=sg, IpProtocol="tcp", FromPort=80, ToPort=80, CidrIp="10.1.0.0/16")
    e = code_of(c.revoke_security_group_ingress, GroupId=sg, IpProtocol="tcp", FromPort=80, ToPort=80, CidrIp="10.1.0.0/16")
    ok(e == ("InvalidPermission.NotFound", 400), "revoking it again: InvalidPermission.NotFound")
    port80 = [r for r in added if r["FromPort"] == 80 and r.get("CidrIpv4") == "0.0.0.0/0"][0]
    c.modify_security_group_rules(GroupId=sg, SecurityGroupRules=[{
        "SecurityGroupRuleId": port80["SecurityGroupRuleId"],
        "SecurityGroupRule": {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIpv4": "0.0.0.0/0",
                              "Description": "the web"},
    }])
    c.update_security_group_rule_descriptions_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "web"}]}
    ])
    got = c.describe_security_group_rules(SecurityGroupRuleIds=[port80["SecurityGroupRuleId"]])["SecurityGroupRules"]
    ok(got[0]["Description"] == "web", "ModifySecurityGroupRules, UpdateSecurityGroupRuleDescriptionsIngress")
    rules = c.describe_security_group_rules(Filters=[f("group-id", sg)])["SecurityGroupRules"]
    ok(sorted((r["IsEgress"], r["FromPort"]) for r in rules) == [(False, 22), (False, 80), (True, 443)],
       "DescribeSecurityGroupRules")

    igw = c.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ids["igw"] = igw
    c.attach_internet_gateway(InternetGatewayId=igw, VpcId=v)
    rt = c.create_route_table(VpcId=v)["RouteTable"]["RouteTableId"]
    ids["rt"] = rt
    c.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    e = code_of(c.create_route, RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ok(e == ("RouteAlreadyExists", 400), "a route that is there: RouteAlreadyExists")
    ids["assoc"] = c.associate_route_table(RouteTableId=rt, SubnetId=subnets[0])["AssociationId"]
    c.create_tags(Resources=[v, sg, subnets[0]], Tags=[{"Key": "env", "Value": "test"}])

    lt = c.create_launch_template(
        LaunchTemplateName="web",
        VersionDescription="first",
        LaunchTemplateData={
            "ImageId": "bellows-app-echo",
            "InstanceType": "t3.micro",
            "UserData": base64.b64encode(USER_DATA_1.encode()).decode(),
            "SecurityGroupIds": [sg],
        },
    )["LaunchTemplate"]
    ids["lt"] = lt["LaunchTemplateId"]
    ok(lt["LatestVersionNumber"] == 1 and lt["DefaultVersionNumber"] == 1, "CreateLaunchTemplate")
    v2 = c.create_launch_template_version(
        LaunchTemplateId=lt["LaunchTemplateId"],
        LaunchTemplateData={
            "ImageId": "bellows-app-ip-tracker",
            "InstanceType": "t3.small",
            "UserData": base64.b64encode(USER_DATA_2.encode()).decode(),
            "NetworkInterfaces": [{"DeviceIndex": 0, "Groups": [sg], "AssociatePublicIpAddress": True}],
        },
    )["LaunchTemplateVersion"]
    ok(v2["VersionNumber"] == 2 and v2["DefaultVersion"] is False, "CreateLaunchTemplateVersion")
    e = code_of(c.create_launch_template, LaunchTemplateName="web", LaunchTemplateData={"ImageId": "x"})
    ok(e == ("InvalidLaunchTemplateName.AlreadyExistsException", 400), "a template name in use")
    verify(c, ids)
    return ids


def verify(c, ids):
    v, sg = ids["vpc"], ids["sg"]
    vpcs = c.describe_vpcs(VpcIds=[v])["Vpcs"]
    ok(len(vpcs) == 1 and {"Key": "env", "Value": "test"} in vpcs[0]["Tags"], "DescribeVpcs with its tags")
    ok([x["VpcId"] for x in c.describe_vpcs(Filters=[f("tag:Name", "main")])["Vpcs"]] == [v], "DescribeVpcs by tag")
    a = c.describe_vpc_attribute(VpcId=v, Attribute="enableDnsHostnames")
    ok(a["EnableDnsHostnames"]["Value"] is True, "enableDnsHostnames kept")
    got = [s["SubnetId"] for s in c.describe_subnets(Filters=[f("vpc-id", v)])["Subnets"]]
    ok(got == ids["subnets"], "the subnets, in creation order")
    g = c.describe_security_groups(GroupIds=[sg])["SecurityGroups"][0]
    perms = {p["FromPort"]: p for p in g["IpPermissions"]}
    ok(set(perms) == {22, 80}, f"the group's ingress permissions: {sorted(perms)}")
    ok(perms[80]["IpRanges"] == [{"CidrIp": "0.0.0.0/0", "Description": "web"}], "the port 80 rule with its description")
    ok(perms[22]["UserIdGroupPairs"][0]["GroupId"] == ids["default_sg"], "the rule naming a group")
    ok([p["FromPort"] for p in g["IpPermissionsEgress"]] == [443], "the egress rule")
    ok(g["VpcId"] == v and g["GroupName"] == "web" and g["Description"] == "web servers", "the group's own attributes")
    igws = c.describe_internet_gateways(Filters=[f("attachment.vpc-id", v)])["InternetGateways"]
    ok([x["InternetGatewayId"] for x in igws] == [ids["igw"]] and igws[0]["Attachments"][0]["State"] == "available",
       "the attached internet gateway")
    rt = c.describe_route_tables(Filters=[f("association.route-table-association-id", ids["assoc"])])["RouteTables"]
    ok(len(rt) == 1 and rt[0]["RouteTableId"] == ids["rt"], "DescribeRouteTables by association id")
    ok(any(r.get("GatewayId") == ids["igw"] and r["DestinationCidrBlock"] == "0.0.0.0/0" for r in rt[0]["Routes"]),
       "the route to the internet gateway")
    tags = c.describe_tags(Filters=[f("key", "env")])["Tags"]
    ok(sorted(t["ResourceId"] for t in tags) == sorted([v, sg, ids["subnets"][0]]), "DescribeTags")
    lts = c.describe_launch_templates(LaunchTemplateNames=["web"])["LaunchTemplates"]
    ok(len(lts) == 1 and lts[0]["LatestVersionNumber"] == 2, "DescribeLaunchTemplates by name")
    for version, number, image in [("$Latest", 2, "bellows-app-ip-tracker"), ("$Default", 1, "bellows-app-echo"), ("2", 2, None)]:
        got = c.describe_launch_template_versions(LaunchTemplateId=ids["lt"], Versions=[version])["LaunchTemplateVersions"]
        ok(len(got) == 1 and got[0]["VersionNumber"] == number, f"version {version} is {number}")
        if image:
            ok(got[0]["LaunchTemplateData"]["ImageId"] == image, f"version {version}'s image")
    both = c.describe_launch_template_versions(LaunchTemplateName="web")["LaunchTemplateVersions"]
    data = {x["VersionNumber"]: x["LaunchTemplateData"] for x in both}
    ok(base64.b64decode(data[1]["UserData"]).decode() == USER_DATA_1, "version 1's user data")
    ok(data[1]["SecurityGroupIds"] == [sg], "version 1's security groups")
    ok(data[2]["NetworkInterfaces"][0]["Groups"] == [sg], "version 2's network interface groups")
    ok(data[2]["InstanceType"] == "t3.small", "version 2's instance type")


def delete(c, ids):
    v = ids["vpc"]
    e = code_of(c.delete_vpc, VpcId=v)
    ok(e == ("DependencyViolation", 400), "deleting a VPC with subnets: DependencyViolation")
    c.modify_launch_template(LaunchTemplateId=ids["lt"], DefaultVersion="2")
    lt = c.describe_launch_templates(LaunchTemplateIds=[ids["lt"]])["LaunchTemplates"][0]
    ok(lt["DefaultVersionNumber"] == 2, "ModifyLaunchTemplate's default version")
    c.delete_launch_template(LaunchTemplateId=ids["lt"])
    e = code_of(c.describe_launch_templates, LaunchTemplateNames=["web"])
    ok(e == ("InvalidLaunchTemplateName.NotFoundException", 400), "a deleted template by name")
    e = code_of(c.describe_launch_templates, LaunchTemplateIds=[ids["lt"]])
    ok(e == ("InvalidLaunchTemplateId.NotFound", 400), "a deleted template by id")
    c.delete_tags(Resources=[v], Tags=[{"Key": "env"}])
    ok({"Key": "env", "Value": "test"} not in c.describe_vpcs(VpcIds=[v])["Vpcs"][0]["Tags"], "DeleteTags")
    c.disassociate_route_table(AssociationId=ids["assoc"])
    c.delete_route(RouteTableId=ids["rt"], DestinationCidrBlock="0.0.0.0/0")
    c.delete_route_table(RouteTableId=ids["rt"])
    e = code_of(c.delete_internet_gateway, InternetGatewayId=ids["igw"])
    ok(e == ("DependencyViolation", 400), "deleting an attached gateway: DependencyViolation")
    c.detach_internet_gateway(InternetGatewayId=ids["igw"], VpcId=v)
    c.delete_internet_gateway(InternetGatewayId=ids["igw"])
    c.delete_security_group(GroupId=ids["sg"])
    e = code_of(c.delete_security_group, GroupId=ids["default_sg"])
    ok(e == ("CannotDelete", 400), "the default group: CannotDelete")
    for s in ids["subnets"]:
        c.delete_subnet(SubnetId=s)
    c.delete_vpc(VpcId=v)
    for call, kwargs, code in [
        (c.describe_vpcs, {"VpcIds": [v]}, "InvalidVpcID.NotFound"),
        (c.describe_subnets, {"SubnetIds": ids["subnets"][:1]}, "InvalidSubnetID.NotFound"),
        (c.describe_security_groups, {"GroupIds": [ids["sg"]]}, "InvalidGroup.NotFound"),
        (c.describe_security_groups, {"GroupIds": [ids["default_sg"]]}, "InvalidGroup.NotFound"),
        (c.describe_internet_gateways, {"InternetGatewayIds": [ids["igw"]]}, "InvalidInternetGatewayID.NotFound"),
        (c.describe_route_tables, {"RouteTableIds": [ids["rt"]]}, "InvalidRouteTableID.NotFound"),
        # An id not of its kind's form is malformed, not missing.
        (c.describe_vpcs, {"VpcIds": ["not-a-vpc"]}, "InvalidVpcID.Malformed"),
        (c.describe_subnets, {"SubnetIds": ["subnet-xyz"]}, "InvalidSubnetID.Malformed"),
        (c.describe_security_groups, {"GroupIds": ["sg-123"]}, "InvalidGroupId.Malformed"),
        (c.describe_internet_gateways, {"InternetGatewayIds": ["gateway"]}, "InvalidInternetGatewayId.Malformed"),
        (c.describe_route_tables, {"RouteTableIds": ["rtb-"]}, "InvalidRouteTableId.Malformed"),
        (c.describe_instances, {"InstanceIds": ["instance-1"]}, "InvalidInstanceID.Malformed"),
    ]:
        e = code_of(call, **kwargs)
        ok(e == (code, 400), f"{call.__name__} after the deletes: {code} ({e})")
    ok(c.describe_route_tables(Filters=[f("vpc-id", v)])["RouteTables"] == [], "the main route table went with the VPC")
    ok(c.describe_network_acls(Filters=[f("vpc-id", v)])["NetworkAcls"] == [], "the default ACL went with the VPC")
    ok(c.describe_security_group_rules(Filters=[f("group-id", ids["sg"])])["SecurityGroupRules"] == [],
       "the group's rules went with it")
    e = code_of(c.describe_vpcs, Filters=[f("no-such-filter", "x")])
    ok(e == ("InvalidParameterValue", 400), "an unknown filter: InvalidParameterValue")
    e = code_of(c.describe_key_pairs)
    ok(e == ("InvalidAction", 400), "an action not implemented: InvalidAction")


def main():
    phase, path = sys.argv[1], sys.argv[2]
    c = client("ec2")
    if phase == "create":
        ids = create(c)
        with open(path, "w") as out:
            json.dump(ids, out)
    else:
        with open(path) as inp:
            ids = json.load(inp)
        verify(c, ids)
        if phase == "delete":
            delete(c, ids)
    print(f"{CHECKED['answers']} answers and {CHECKED['elements']} elements checked against botocore's model")
    if FAILURES:
        print(f"\n{len(FAILURES)} checks failed:")
        for x in FAILURES:
            print(f"  {x}")
        sys.exit(1)
    print("every check passed")


if __name__ == "__main__":
    main()
