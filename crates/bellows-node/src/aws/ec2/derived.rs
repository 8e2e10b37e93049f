//! What the EC2 records mean to the rest of bellows: the launch template version a group
//! launches from, a subnet's zone, the CIDRs a security group admits. `derive.rs` reads
//! them to make a stack from the records; they live with EC2's handlers, beside the kinds
//! and shapes they read, so that `resources.rs` knows nothing of any service.

use bellows_aws::AwsError;

use super::{shared, templates};
use crate::resources::Resources;

/// A launch template version as a group launches from it.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchVersion {
    pub template_id: String,
    pub template_name: String,
    pub version: i64,
    /// The user data, base64-decoded (the instance's program).
    pub user_data: Option<String>,
    pub image_id: Option<String>,
    pub instance_type: Option<String>,
    /// `SecurityGroupIds` of the data and of its network interfaces.
    pub security_groups: Vec<String>,
    /// `IamInstanceProfile`: its ARN, else its name.
    pub instance_profile: Option<String>,
}

/// What a group, a load balancer or a listener derives from the EC2 records.
impl Resources {
    /// A launch template (by id `lt-...` or name) at a version (`$Latest`, `$Default` or
    /// a number), or EC2's error for it.
    pub fn launch_version(&self, template: &str, version: &str) -> Result<LaunchVersion, AwsError> {
        use base64::Engine as _;
        let (id, body) = templates::find(self, template)?;
        let n = templates::resolve(&body, version)?;
        let v = self
            .get(shared::VERSION, &format!("{id}/{n}"))
            .ok_or_else(|| templates::resolve(&body, "0").unwrap_err())?;
        let data = &v["launchTemplateData"];
        let text = |m: &str| data[m].as_str().map(str::to_owned);
        let user_data = match text("userData") {
            None => None,
            Some(b64) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| {
                        AwsError::new(
                            400,
                            "InvalidUserData.Malformed",
                            format!("the user data of {id} version {n} is not base64: {e}"),
                        )
                    })?;
                Some(String::from_utf8_lossy(&raw).into_owned())
            }
        };
        let mut security_groups: Vec<String> = data["securityGroupIdSet"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|g| g.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for ni in data["networkInterfaceSet"].as_array().into_iter().flatten() {
            for g in ni["groupSet"].as_array().into_iter().flatten() {
                if let Some(g) = g.as_str()
                    && !security_groups.iter().any(|x| x == g)
                {
                    security_groups.push(g.to_owned());
                }
            }
        }
        Ok(LaunchVersion {
            template_id: id,
            template_name: body["launchTemplateName"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            version: n,
            user_data,
            image_id: text("imageId"),
            instance_type: text("instanceType"),
            security_groups,
            instance_profile: data["iamInstanceProfile"]["arn"]
                .as_str()
                .or_else(|| data["iamInstanceProfile"]["name"].as_str())
                .map(str::to_owned),
        })
    }

    /// A subnet's availability zone.
    pub fn subnet_zone(&self, subnet: &str) -> Option<String> {
        self.get(shared::SUBNET, subnet)
            .and_then(|s| s["availabilityZone"].as_str())
            .map(str::to_owned)
    }

    /// The CIDRs the ingress rules of `groups` admit on tcp `port` (rules for every
    /// protocol included), each once, in the order the rules were made. Rules that
    /// name another group or a prefix list admit no CIDR.
    pub fn ingress_cidrs(&self, groups: &[String], port: u16) -> Vec<String> {
        let port = i64::from(port);
        let mut out: Vec<String> = Vec::new();
        for rule in self.of(shared::RULE) {
            let b = &rule.body;
            let ours = b["groupId"]
                .as_str()
                .is_some_and(|g| groups.iter().any(|x| x == g));
            if !ours || b["isEgress"] != false {
                continue;
            }
            let admits = match b["ipProtocol"].as_str() {
                Some("-1") => true,
                Some("tcp") => {
                    let from = b["fromPort"].as_i64().unwrap_or(-1);
                    let to = b["toPort"].as_i64().unwrap_or(-1);
                    from <= port && port <= to
                }
                _ => false,
            };
            if !admits {
                continue;
            }
            for m in ["cidrIpv4", "cidrIpv6"] {
                if let Some(c) = b[m].as_str()
                    && !out.iter().any(|x| x == c)
                {
                    out.push(c.to_owned());
                }
            }
        }
        out
    }
}
