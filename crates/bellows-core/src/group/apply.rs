//! A running group takes a new spec from `bellows apply`: zones, termination policy,
//! health check settings at once, capacity when the file's numbers changed, and a new
//! launch template version for instances launched from now on.

use super::{Group, GroupError};
use crate::Time;
use crate::stack::GroupSpec;

impl Group {
    /// Takes `new` in place of `old` (the spec the group runs now). Capacity follows the
    /// file only where the file changed it, so a size set at run time (by an operator
    /// or a policy) is kept otherwise. Returns the new launch template version when the
    /// launch template changed.
    pub fn reconfigure(
        &mut self,
        old: &GroupSpec,
        new: &GroupSpec,
        now: Time,
        actor: &str,
    ) -> Result<Option<u32>, GroupError> {
        let pick = |o: u32, n: u32| (o != n).then_some(n);
        let (min, max, desired) = (
            pick(old.min, new.min),
            pick(old.max, new.max),
            pick(old.desired, new.desired),
        );
        if min.is_some() || max.is_some() || desired.is_some() {
            self.set_capacity(min, max, desired, now, actor)?;
        }
        self.zones = new.zones.clone();
        self.policy = new.termination_policy;
        self.health_check_type = new.health_check_type;
        self.grace = new.health_check_grace_period;
        Ok((old.launch != new.launch).then(|| self.bump_template_version()))
    }
}
