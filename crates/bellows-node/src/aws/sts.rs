//! STS: who the caller is.

use bellows_aws::arn::ACCOUNT;
use bellows_aws::{AwsError, Value};

use super::Ctx;

pub(super) async fn handle(ctx: &Ctx<'_>, action: &str) -> Option<Result<Value, AwsError>> {
    Some(match action {
        "GetCallerIdentity" => Ok(Value::object()
            .with("UserId", ctx.names().user_id())
            .with("Account", ACCOUNT)
            .with("Arn", ctx.names().user_arn())),
        _ => return None,
    })
}
