//! Scale from zero: a request that arrives for a target group with no instance wakes
//! the groups behind it that scale from zero. The node calls this when the load
//! balancer reports a cold start; the decision is made only here.

use std::collections::BTreeMap;

use crate::Time;
use crate::event::Capacity;
use crate::group::Group;
use crate::stack::GroupSpec;

/// A group that a waiting request woke: its capacity before and after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Woken {
    pub group: String,
    pub before: Capacity,
    pub after: Capacity,
}

/// Every group that wakes from zero for `target_group` (`GroupSpec::wakes_from_zero_for`)
/// and has a desired capacity of 0 (and a maximum of at least 1) goes to a desired
/// capacity of 1.
pub fn scale_from_zero(
    specs: &[GroupSpec],
    groups: &mut BTreeMap<String, Group>,
    target_group: &str,
    now: Time,
    actor: &str,
) -> Vec<Woken> {
    let mut woken = Vec::new();
    for spec in specs {
        if !spec.wakes_from_zero_for(target_group) {
            continue;
        }
        let Some(g) = groups.get_mut(&spec.name) else {
            continue;
        };
        let cap = g.capacity();
        if cap.desired == 0
            && cap.max >= 1
            && let Ok(after) = g.set_capacity(None, None, Some(1), now, actor)
        {
            woken.push(Woken {
                group: spec.name.clone(),
                before: cap,
                after,
            });
        }
    }
    woken
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::parse;

    const STACK: &str = r#"
[target_groups.tg]
[target_groups.other]

[groups.wakes]
min = 0
max = 3
desired = 0
target_groups = ["tg"]
[groups.wakes.launch]
command = ["x"]

[groups.stays_asleep]
min = 0
max = 3
desired = 0
scale_from_zero = false
target_groups = ["tg"]
[groups.stays_asleep.launch]
command = ["x"]

[groups.elsewhere]
min = 0
max = 3
desired = 0
target_groups = ["other"]
[groups.elsewhere.launch]
command = ["x"]

[groups.awake]
min = 0
max = 3
desired = 2
target_groups = ["tg"]
[groups.awake.launch]
command = ["x"]

[groups.floor]
min = 1
max = 3
desired = 1
target_groups = ["tg"]
[groups.floor.launch]
command = ["x"]
"#;

    #[test]
    fn a_request_wakes_only_the_sleeping_groups_behind_its_target_group_that_scale_from_zero() {
        let stack = parse(STACK).unwrap();
        let mut groups: BTreeMap<String, Group> = stack
            .groups
            .iter()
            .map(|g| (g.name.clone(), Group::new(g)))
            .collect();
        // A group whose file keeps one instance does not wake from zero, even with its
        // desired capacity set to 0 at run time: the load balancer does not hold its
        // requests either (the same rule, `GroupSpec::wakes_from_zero_for`).
        let floor = stack.group("floor").unwrap();
        assert!(!floor.wakes_from_zero_for("tg"));
        groups
            .get_mut("floor")
            .unwrap()
            .set_capacity(Some(0), None, Some(0), Time::from_millis(0), "test")
            .unwrap();
        let now = Time::from_millis(1_000);
        let woken = scale_from_zero(&stack.groups, &mut groups, "tg", now, "test");
        assert_eq!(
            woken,
            vec![Woken {
                group: "wakes".to_owned(),
                before: Capacity {
                    min: 0,
                    max: 3,
                    desired: 0
                },
                after: Capacity {
                    min: 0,
                    max: 3,
                    desired: 1
                },
            }]
        );
        assert_eq!(groups["stays_asleep"].capacity().desired, 0);
        assert_eq!(groups["elsewhere"].capacity().desired, 0);
        assert_eq!(groups["awake"].capacity().desired, 2);
        assert_eq!(groups["floor"].capacity().desired, 0);
        // Once awake, a second request wakes nothing more.
        assert!(scale_from_zero(&stack.groups, &mut groups, "tg", now, "test").is_empty());
    }
}
