//! Zones: which ones a launch may use, how evenly the group is spread over them, the
//! rebalancing that evens it out, and which instance a scale-in takes (the termination
//! policy, zone first, as EC2 Auto Scaling does).

use super::*;

impl Group {
    /// Where the rebalancing under way has got to: its launch is dropped if the
    /// instance did not make it, and once it is in service one instance is due to go.
    pub(super) fn rebalance_progress(&mut self) {
        if let Some(Rebalance::Launching(id)) = &self.rebalancing {
            self.rebalancing = match self.instances.get(id).map(|i| i.lifecycle) {
                Some(Lifecycle::Pending) => return,
                Some(Lifecycle::InService) => Some(Rebalance::Due),
                _ => None,
            };
        }
        // Instances lost meanwhile (a zone's outage, say) took the extra one's place.
        if self.rebalancing == Some(Rebalance::Due) && self.live() as u32 <= self.cap.desired {
            self.rebalancing = None;
        }
    }

    /// The zones to rebalance between, fullest and emptiest, when the group is uneven:
    /// an instance lives in a zone that is out or no longer the group's, or two
    /// available zones differ by more than one instance.
    pub(super) fn imbalance(&self) -> Option<(String, String)> {
        let to = self.emptiest_zone()?;
        let counts = self.zone_counts();
        // Only a zone with an instance that may be terminated can give one up. A zone in
        // an outage is not rebalanced from: its instances are killed with it (the node
        // cuts their power when the outage starts), and their replacements follow their
        // exits as a difference between desired and actual capacity. A rebalancing launch
        // would promise to terminate an instance that is already dead.
        let from = counts
            .keys()
            .copied()
            .filter(|z| !self.unavailable.contains(*z))
            .filter(|z| {
                self.instances
                    .values()
                    .any(|i| is_live(i) && !i.protected && i.zone == *z)
            })
            .max_by_key(|z| self.crowding(z, &counts))?;
        let misplaced = !self.zone_usable(from);
        let spread = counts[from] > counts.get(to.as_str()).copied().unwrap_or(0) + 1;
        (misplaced || spread).then(|| (from.to_owned(), to))
    }

    /// Whether new instances may go to `zone`.
    pub(super) fn zone_usable(&self, zone: &str) -> bool {
        self.zones.iter().any(|z| z == zone) && !self.unavailable.contains(zone)
    }

    /// How much `zone` should give up an instance, as an ordering: a zone that is out or
    /// no longer the group's first, then the one with the most instances, then the first
    /// listed.
    pub(super) fn crowding(
        &self,
        zone: &str,
        counts: &BTreeMap<&str, usize>,
    ) -> (bool, usize, std::cmp::Reverse<usize>) {
        (
            !self.zone_usable(zone),
            counts.get(zone).copied().unwrap_or(0),
            std::cmp::Reverse(self.zone_rank(zone)),
        )
    }

    pub(super) fn zone_counts(&self) -> BTreeMap<&str, usize> {
        let mut counts: BTreeMap<&str, usize> =
            self.zones.iter().map(|z| (z.as_str(), 0)).collect();
        for inst in self.instances.values().filter(|i| is_live(i)) {
            *counts.entry(inst.zone.as_str()).or_default() += 1;
        }
        counts
    }

    /// The available zone with the fewest live instances, the first listed on a tie;
    /// `None` when every zone is out.
    pub(super) fn emptiest_zone(&self) -> Option<String> {
        let counts = self.zone_counts();
        self.zones
            .iter()
            .filter(|z| !self.unavailable.contains(*z))
            .min_by_key(|z| counts.get(z.as_str()).copied().unwrap_or(0))
            .cloned()
    }

    /// Chooses whom to terminate on scale-in: first a zone that is out or no longer the
    /// group's, then the zone with the most instances that has an unprotected one (all policies keep zones balanced, as AWS does), then the
    /// termination policy within it. Ties end on the lowest instance id where AWS picks
    /// at random, so that a run can be replayed.
    pub(super) fn pick_victim(&self, now: Time) -> Option<InstanceId> {
        let candidates: Vec<&Instance> = self
            .instances
            .values()
            .filter(|i| is_live(i) && !i.protected)
            .collect();
        let counts = self.zone_counts();
        let zone = candidates
            .iter()
            .map(|i| i.zone.as_str())
            .max_by_key(|z| self.crowding(z, &counts))?;
        let in_zone = candidates.into_iter().filter(|i| i.zone == zone);
        let victim = match self.policy {
            TerminationPolicy::Default => in_zone.min_by_key(|i| {
                let age = now.since(i.launched_at).as_millis();
                let to_next_hour = BILLING_PERIOD_MS - age % BILLING_PERIOD_MS;
                (i.template_version, to_next_hour, i.id.clone())
            }),
            TerminationPolicy::OldestInstance => {
                in_zone.min_by_key(|i| (i.launched_at, i.id.clone()))
            }
            TerminationPolicy::NewestInstance => {
                in_zone.max_by_key(|i| (i.launched_at, std::cmp::Reverse(i.id.clone())))
            }
        };
        victim.map(|i| i.id.clone())
    }

    pub(super) fn zone_rank(&self, zone: &str) -> usize {
        self.zones
            .iter()
            .position(|z| z == zone)
            .unwrap_or(usize::MAX)
    }
}
