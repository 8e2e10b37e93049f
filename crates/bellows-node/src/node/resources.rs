//! The AWS resource records in the loop: an AWS handler's operation runs on them, and
//! what it changed is applied (the records describe part of the running stack) and
//! audited, or rolled back when it cannot be.

use std::any::Any;

use bellows_aws::AwsError;
use bellows_core::Time;

use super::Node;
use crate::api::{Actor, ApiError};
use crate::resources::ResourceOp;

impl Node {
    /// Runs one operation on the records. A read (no actor) must change nothing. A
    /// change that failed, or that the running stack cannot take, leaves the records as
    /// they were; one that stands is audited record by record, as `aws/KIND/ID`.
    pub(super) fn on_resources(
        &mut self,
        actor: Option<Actor>,
        op: ResourceOp,
        now: Time,
    ) -> Result<Box<dyn Any + Send>, AwsError> {
        let answer = (op.0)(&mut self.resources);
        let changes = self.resources.changes();
        if changes.is_empty() {
            self.resources.commit();
            return answer;
        }
        let undo = |node: &mut Node| {
            if let Err(e) = node.resources.rollback() {
                tracing::error!(error = %e, "AWS resource records could not be rolled back");
            }
        };
        let Some(actor) = actor else {
            undo(self);
            return Err(AwsError::new(
                500,
                "InternalFailure",
                "a read of the AWS resources tried to change them",
            ));
        };
        if answer.is_err() {
            undo(self);
            return answer;
        }
        let applied = self.apply_resources(&actor, now);
        for (kind, id, before, after) in &changes {
            let target = format!("aws/{kind}/{id}");
            let action = if before.is_none() {
                "CreateResource"
            } else if after.is_none() {
                "DeleteResource"
            } else {
                "ModifyResource"
            };
            let before = before.clone().unwrap_or_default();
            let after = after.clone().unwrap_or_default();
            self.audit(
                &actor,
                action,
                target,
                before,
                after,
                applied.as_ref().map(|_| ()),
            );
        }
        match applied {
            Ok(()) => {
                self.resources.commit();
                answer
            }
            Err(e) => {
                undo(self);
                Err(crate::aws::from_api(
                    e,
                    "InvalidParameterValue",
                    "InvalidParameterValue",
                ))
            }
        }
    }

    /// Makes the running stack what the base stack and the records now describe.
    /// Records of EC2 networking alone (VPCs, subnets, security groups, launch
    /// templates) change nothing that runs until a load balancer or group uses them;
    /// the derivation of listeners, target groups and groups from the records hooks
    /// in here.
    fn apply_resources(&mut self, actor: &Actor, now: Time) -> Result<(), ApiError> {
        self.apply_records(actor, now)
    }
}
