//! ELB health replacement: with health check type ELB, an instance whose target fails
//! the load balancer's health checks is marked unhealthy once its grace period is over,
//! and the group replaces it. The node reports both the proxy's transitions and its
//! periodic look at the targets here; the rule is `set_health`'s, in one place.

use super::{Group, Health, HealthSource};
use crate::Time;
use crate::ids::InstanceId;

impl Group {
    /// The load balancer found the instance's target unhealthy (`why` says which target
    /// group and why). Returns whether the instance became unhealthy now: false with
    /// EC2 health checks, within the grace period, for an instance already unhealthy or
    /// no longer live, and for an instance not in this group.
    pub fn on_target_unhealthy(&mut self, instance: &InstanceId, why: String, now: Time) -> bool {
        matches!(
            self.set_health(instance, Health::Unhealthy, HealthSource::Elb, why, now),
            Ok(true)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::Command;
    use crate::ids::IdGen;
    use crate::stack::parse;

    /// A group of one instance in service since time 0, with a 60 s grace period.
    fn one_in_service(health_check_type: &str) -> (Group, InstanceId) {
        let src = format!(
            "[target_groups.tg]\n[groups.web]\nmin = 1\nmax = 1\ndesired = 1\nhealth_check_type = \"{health_check_type}\"\nhealth_check_grace_period = \"60s\"\ntarget_groups = [\"tg\"]\n[groups.web.launch]\ncommand = [\"x\"]\n"
        );
        let stack = parse(&src).unwrap();
        let mut g = Group::new(&stack.groups[0]);
        let t0 = Time::from_millis(0);
        let id = g
            .plan(t0, &mut IdGen::new(1))
            .into_iter()
            .find_map(|c| match c {
                Command::Launch { instance, .. } => Some(instance),
                Command::Terminate { .. } => None,
            })
            .unwrap();
        g.on_running(&id, t0);
        (g, id)
    }

    #[test]
    fn with_elb_checks_a_failing_target_makes_its_instance_unhealthy_after_the_grace_period() {
        let (mut g, id) = one_in_service("ELB");
        assert!(!g.on_target_unhealthy(&id, "in grace".into(), Time::from_millis(30_000)));
        assert_eq!(g.instance(&id).unwrap().health, Health::Healthy);
        assert!(g.on_target_unhealthy(&id, "503".into(), Time::from_millis(61_000)));
        assert_eq!(g.instance(&id).unwrap().health, Health::Unhealthy);
        // Already unhealthy: nothing more to do.
        assert!(!g.on_target_unhealthy(&id, "503".into(), Time::from_millis(62_000)));
    }

    #[test]
    fn with_ec2_checks_a_failing_target_changes_nothing() {
        let (mut g, id) = one_in_service("EC2");
        assert!(!g.on_target_unhealthy(&id, "503".into(), Time::from_millis(61_000)));
        assert_eq!(g.instance(&id).unwrap().health, Health::Healthy);
    }
}
