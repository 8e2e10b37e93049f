//! Names and ARNs as AWS writes them, stable for a stack.
//!
//! Every identifier is derived from the stack's seed and the object's kind and name
//! (SHA-256, hex), so the same object of the same stack has the same ARN after a
//! restart, and nothing needs storing.

use ring::digest;

use crate::sigv4::hex;

/// The one account every ARN names: AWS's documentation example, plainly not real.
pub const ACCOUNT: &str = "123456789012";

/// The ARNs and ids of one stack's objects.
#[derive(Debug, Clone)]
pub struct Names {
    pub region: String,
    seed: String,
}

impl Names {
    /// `seed` is something stable for the stack: its name.
    pub fn new(region: impl Into<String>, seed: impl Into<String>) -> Names {
        Names {
            region: region.into(),
            seed: seed.into(),
        }
    }

    /// `n` hex digits derived from the seed, the kind of object and its name.
    pub fn hex_id(&self, kind: &str, name: &str, n: usize) -> String {
        let d = digest::digest(
            &digest::SHA256,
            format!("{}\u{0}{kind}\u{0}{name}", self.seed).as_bytes(),
        );
        let mut h = hex(d.as_ref());
        h.truncate(n.min(64));
        h
    }

    fn uuid(&self, kind: &str, name: &str) -> String {
        let h = self.hex_id(kind, name, 32);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }

    fn arn(&self, service: &str, resource: &str) -> String {
        format!("arn:aws:{service}:{}:{ACCOUNT}:{resource}", self.region)
    }

    pub fn group_arn(&self, group: &str) -> String {
        self.arn(
            "autoscaling",
            &format!(
                "autoScalingGroup:{}:autoScalingGroupName/{group}",
                self.uuid("group", group)
            ),
        )
    }

    pub fn policy_arn(&self, group: &str, policy: &str) -> String {
        self.arn(
            "autoscaling",
            &format!(
                "scalingPolicy:{}:autoScalingGroupName/{group}:policyName/{policy}",
                self.uuid("policy", &format!("{group}/{policy}"))
            ),
        )
    }

    pub fn scheduled_action_arn(&self, group: &str, action: &str) -> String {
        self.arn(
            "autoscaling",
            &format!(
                "scheduledUpdateGroupAction:{}:autoScalingGroupName/{group}:scheduledActionName/{action}",
                self.uuid("scheduled", &format!("{group}/{action}"))
            ),
        )
    }

    pub fn refresh_id(&self, group: &str, n: u64) -> String {
        self.uuid("refresh", &format!("{group}/{n}"))
    }

    pub fn load_balancer_arn(&self, lb: &str) -> String {
        self.arn(
            "elasticloadbalancing",
            &format!("loadbalancer/app/{lb}/{}", self.hex_id("lb", lb, 16)),
        )
    }

    pub fn listener_arn(&self, lb: &str, listener: &str) -> String {
        self.arn(
            "elasticloadbalancing",
            &format!(
                "listener/app/{lb}/{}/{}",
                self.hex_id("lb", lb, 16),
                self.hex_id("listener", listener, 16)
            ),
        )
    }

    pub fn rule_arn(&self, lb: &str, listener: &str, rule: &str) -> String {
        self.arn(
            "elasticloadbalancing",
            &format!(
                "listener-rule/app/{lb}/{}/{}/{}",
                self.hex_id("lb", lb, 16),
                self.hex_id("listener", listener, 16),
                self.hex_id("rule", &format!("{listener}/{rule}"), 16)
            ),
        )
    }

    pub fn target_group_arn(&self, tg: &str) -> String {
        self.arn(
            "elasticloadbalancing",
            &format!("targetgroup/{tg}/{}", self.hex_id("tg", tg, 16)),
        )
    }

    pub fn alarm_arn(&self, alarm: &str) -> String {
        self.arn("cloudwatch", &format!("alarm:{alarm}"))
    }

    /// A listener's ingress allow-list, as a security group: `sg-` and 17 hex digits.
    pub fn security_group_id(&self, listener: &str) -> String {
        format!("sg-{}", self.hex_id("sg", listener, 17))
    }

    pub fn vpc_id(&self) -> String {
        format!("vpc-{}", self.hex_id("vpc", "", 17))
    }

    pub fn subnet_id(&self, zone: &str) -> String {
        format!("subnet-{}", self.hex_id("subnet", zone, 17))
    }

    /// The caller `GetCallerIdentity` names.
    pub fn user_arn(&self) -> String {
        format!("arn:aws:iam::{ACCOUNT}:user/bellows")
    }

    /// An instance's role session, as STS names it.
    pub fn assumed_role_arn(&self, role: &str, instance: &str) -> String {
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{instance}")
    }

    /// An instance profile's ARN.
    pub fn instance_profile_arn(&self, role: &str) -> String {
        format!("arn:aws:iam::{ACCOUNT}:instance-profile/{role}")
    }

    pub fn user_id(&self) -> String {
        format!("AIDA{}", self.hex_id("user", "bellows", 17).to_uppercase())
    }
}

/// The name in an ELBv2 ARN (`.../targetgroup/NAME/ID`, `.../loadbalancer/app/NAME/ID`),
/// or the value itself when it is no ARN.
pub fn name_in_arn<'a>(arn_or_name: &'a str, kind: &str) -> Option<&'a str> {
    if !arn_or_name.starts_with("arn:") {
        return None;
    }
    let resource = arn_or_name.splitn(6, ':').nth(5)?;
    let rest = resource.strip_prefix(kind)?.strip_prefix('/')?;
    let rest = rest.strip_prefix("app/").unwrap_or(rest);
    rest.split('/').next().filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_have_awss_shapes_and_are_stable() {
        let a = Names::new("us-east-1", "ip-tracker");
        let b = Names::new("us-east-1", "ip-tracker");
        let g = a.group_arn("ip-tracker-asg");
        assert_eq!(g, b.group_arn("ip-tracker-asg"));
        let parts: Vec<&str> = g.split(':').collect();
        assert_eq!(
            &parts[..6],
            [
                "arn",
                "aws",
                "autoscaling",
                "us-east-1",
                ACCOUNT,
                "autoScalingGroup"
            ]
        );
        assert_eq!(parts[6].len(), 36);
        assert_eq!(parts[7], "autoScalingGroupName/ip-tracker-asg");
        let tg = a.target_group_arn("web");
        assert!(
            tg.starts_with("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/")
        );
        assert_eq!(tg.rsplit('/').next().unwrap().len(), 16);
        assert_eq!(name_in_arn(&tg, "targetgroup"), Some("web"));
        assert_eq!(
            name_in_arn(&a.load_balancer_arn("alb"), "loadbalancer"),
            Some("alb")
        );
        assert_eq!(name_in_arn("web", "targetgroup"), None);
        let sg = a.security_group_id("http");
        assert_eq!(sg.len(), 20);
        assert!(sg[3..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(
            sg,
            Names::new("us-east-1", "other").security_group_id("http")
        );
    }
}
