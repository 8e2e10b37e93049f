//! STS: who the caller is.

use bellows_aws::arn::ACCOUNT;
use bellows_aws::{AwsError, Value};

use super::Ctx;

pub(super) async fn handle(ctx: &Ctx<'_>, action: &str) -> Option<Result<Value, AwsError>> {
    Some(match action {
        "GetCallerIdentity" => Ok(match &ctx.session {
            Some(s) => Value::object()
                .with(
                    "UserId",
                    format!(
                        "AROA{}:{}",
                        s.access_key_id.trim_start_matches("ASIA"),
                        s.instance
                    ),
                )
                .with("Account", ACCOUNT)
                .with("Arn", ctx.names().assumed_role_arn(&s.role, &s.instance)),
            None => Value::object()
                .with("UserId", ctx.names().user_id())
                .with("Account", ACCOUNT)
                .with("Arn", ctx.names().user_arn()),
        }),
        _ => return None,
    })
}
