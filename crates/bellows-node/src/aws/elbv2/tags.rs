//! ELBv2 tags of the record load balancers, target groups, listeners and rules, each
//! found by its ARN: AddTags, RemoveTags and what DescribeTags reads.

use bellows_aws::{AwsError, Input, Value};
use serde_json::{Value as J, json};

use super::{
    LB, LISTENER, RULE, TG, lb_not_found, listener_not_found, rule_not_found, tg_not_found,
};
use crate::aws::{Ctx, from_json};

pub(super) fn tags_in(input: &Input) -> Result<J, AwsError> {
    let mut out = Vec::new();
    for t in input.list("Tags") {
        out.push(json!({ "Key": t.str("Key")?, "Value": t.opt_str("Value")?.unwrap_or_default() }));
    }
    Ok(J::Array(out))
}

fn kind_of(arn: &str) -> &'static str {
    if arn.contains(":targetgroup/") {
        TG
    } else if arn.contains(":listener-rule/") {
        RULE
    } else if arn.contains(":listener/") {
        LISTENER
    } else {
        LB
    }
}

fn not_found_for(arn: &str) -> AwsError {
    match kind_of(arn) {
        TG => tg_not_found(),
        RULE => rule_not_found(),
        LISTENER => listener_not_found(),
        _ => lb_not_found(),
    }
}

pub(super) async fn add_tags(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let arns = input.strings("ResourceArns")?;
    let tags = tags_in(input)?;
    ctx.change(move |r| {
        for arn in &arns {
            let kind = kind_of(arn);
            let mut body = r
                .get(kind, arn)
                .cloned()
                .ok_or_else(|| not_found_for(arn))?;
            let mut list: Vec<J> = body["Tags"].as_array().cloned().unwrap_or_default();
            for t in tags.as_array().into_iter().flatten() {
                list.retain(|x| x["Key"] != t["Key"]);
                list.push(t.clone());
            }
            body["Tags"] = J::Array(list);
            r.put(kind, arn, body)?;
        }
        Ok(())
    })
    .await?;
    Ok(Value::object())
}

pub(super) async fn remove_tags(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let input = ctx.input();
    let arns = input.strings("ResourceArns")?;
    let keys = input.strings("TagKeys")?;
    ctx.change(move |r| {
        for arn in &arns {
            let kind = kind_of(arn);
            let mut body = r
                .get(kind, arn)
                .cloned()
                .ok_or_else(|| not_found_for(arn))?;
            let mut list: Vec<J> = body["Tags"].as_array().cloned().unwrap_or_default();
            list.retain(|x| !keys.iter().any(|k| x["Key"] == k.as_str()));
            body["Tags"] = J::Array(list);
            r.put(kind, arn, body)?;
        }
        Ok(())
    })
    .await?;
    Ok(Value::object())
}

/// The tags of each ARN that is a record's (None for the others).
pub(super) async fn tags_of(
    ctx: &Ctx<'_>,
    arns: Vec<String>,
) -> Result<Vec<Option<Value>>, AwsError> {
    let tags = ctx
        .read(move |r| {
            Ok(arns
                .iter()
                .map(|a| r.get(kind_of(a), a).map(|b| b["Tags"].clone()))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(tags.into_iter().map(|t| t.map(|t| from_json(&t))).collect())
}
