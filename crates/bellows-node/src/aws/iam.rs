//! IAM (2010-05-08, a global service): roles with inline and attached managed policies,
//! managed policies with their versions, and instance profiles, as AWS resource records.
//! A launch template's instance profile makes its role the group's instance role (see
//! [`Resources::profile_allow`]): what its policies `Allow` is what the instances'
//! metadata credentials may call.
//!
//! Policy documents are kept exactly as given and answered URL-encoded, as IAM does.

use bellows_aws::arn::ACCOUNT;
use bellows_aws::{AwsError, Input, Value};
use serde_json::{Value as J, json};

use super::Ctx;
use crate::resources::Resources;

pub const ROLE: &str = "iam_role";
pub const INLINE: &str = "iam_role_policy";
pub const POLICY: &str = "iam_policy";
pub const ATTACHMENT: &str = "iam_attachment";
pub const PROFILE: &str = "iam_instance_profile";

pub(super) async fn handle(ctx: &Ctx<'_>, action: &str) -> Option<Result<Value, AwsError>> {
    let input = ctx.input().clone();
    let now = crate::clock::now().as_millis() as f64 / 1000.0;
    let id = |prefix: &str| -> Result<String, AwsError> {
        let hex = crate::token::random_hex::<9>()
            .map_err(|e| AwsError::new(500, "ServiceFailure", e.to_string()))?;
        Ok(format!("{prefix}{}", hex[..17].to_ascii_uppercase()))
    };
    Some(match action {
        "CreateRole" => match id("AROA") {
            Ok(rid) => ctx.change(move |r| create_role(r, &input, rid, now)).await,
            Err(e) => Err(e),
        },
        "GetRole" => ctx.read(move |r| get_role(r, &input)).await,
        "DeleteRole" => ctx.change(move |r| delete_role(r, &input)).await,
        "UpdateRole" => ctx.change(move |r| update_role(r, &input, false)).await,
        "UpdateRoleDescription" => ctx.change(move |r| update_role(r, &input, true)).await,
        "UpdateAssumeRolePolicy" => {
            ctx.change(move |r| update_assume_role_policy(r, &input))
                .await
        }
        "TagRole" => ctx.change(move |r| tag(r, ROLE, "RoleName", &input)).await,
        "UntagRole" => {
            ctx.change(move |r| untag(r, ROLE, "RoleName", &input))
                .await
        }
        "ListRoleTags" => {
            ctx.read(move |r| list_tags(r, ROLE, "RoleName", &input))
                .await
        }
        "ListRolePolicies" => ctx.read(move |r| list_role_policies(r, &input)).await,
        "PutRolePolicy" => ctx.change(move |r| put_role_policy(r, &input)).await,
        "GetRolePolicy" => ctx.read(move |r| get_role_policy(r, &input)).await,
        "DeleteRolePolicy" => ctx.change(move |r| delete_role_policy(r, &input)).await,
        "CreatePolicy" => match id("ANPA") {
            Ok(pid) => {
                ctx.change(move |r| create_policy(r, &input, pid, now))
                    .await
            }
            Err(e) => Err(e),
        },
        "GetPolicy" => ctx.read(move |r| get_policy(r, &input)).await,
        "GetPolicyVersion" => ctx.read(move |r| get_policy_version(r, &input)).await,
        "ListPolicyVersions" => ctx.read(move |r| list_policy_versions(r, &input)).await,
        "DeletePolicy" => ctx.change(move |r| delete_policy(r, &input)).await,
        "CreatePolicyVersion" => {
            ctx.change(move |r| create_policy_version(r, &input, now))
                .await
        }
        "DeletePolicyVersion" => ctx.change(move |r| delete_policy_version(r, &input)).await,
        "SetDefaultPolicyVersion" => ctx.change(move |r| set_default_version(r, &input)).await,
        "TagPolicy" => {
            ctx.change(move |r| tag(r, POLICY, "PolicyArn", &input))
                .await
        }
        "UntagPolicy" => {
            ctx.change(move |r| untag(r, POLICY, "PolicyArn", &input))
                .await
        }
        "ListPolicyTags" => {
            ctx.read(move |r| list_tags(r, POLICY, "PolicyArn", &input))
                .await
        }
        "AttachRolePolicy" => ctx.change(move |r| attach(r, &input)).await,
        "DetachRolePolicy" => ctx.change(move |r| detach(r, &input)).await,
        "ListAttachedRolePolicies" => ctx.read(move |r| list_attached(r, &input)).await,
        "CreateInstanceProfile" => match id("AIPA") {
            Ok(pid) => {
                ctx.change(move |r| create_profile(r, &input, pid, now))
                    .await
            }
            Err(e) => Err(e),
        },
        "GetInstanceProfile" => ctx.read(move |r| get_profile(r, &input)).await,
        "DeleteInstanceProfile" => ctx.change(move |r| delete_profile(r, &input)).await,
        "AddRoleToInstanceProfile" => ctx.change(move |r| add_role(r, &input)).await,
        "RemoveRoleFromInstanceProfile" => ctx.change(move |r| remove_role(r, &input)).await,
        "ListInstanceProfilesForRole" => ctx.read(move |r| profiles_for_role(r, &input)).await,
        "TagInstanceProfile" => {
            ctx.change(move |r| tag(r, PROFILE, "InstanceProfileName", &input))
                .await
        }
        "UntagInstanceProfile" => {
            ctx.change(move |r| untag(r, PROFILE, "InstanceProfileName", &input))
                .await
        }
        "ListInstanceProfileTags" => {
            ctx.read(move |r| list_tags(r, PROFILE, "InstanceProfileName", &input))
                .await
        }
        _ => return None,
    })
}

fn no_such(what: &str, name: &str) -> AwsError {
    AwsError::new(
        404,
        "NoSuchEntity",
        format!("The {what} with name {name} cannot be found."),
    )
}

fn exists(what: &str, name: &str) -> AwsError {
    AwsError::new(
        409,
        "EntityAlreadyExists",
        format!("{what} with name {name} already exists."),
    )
}

fn conflict(message: String) -> AwsError {
    AwsError::new(409, "DeleteConflict", message)
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ValidationError", message)
}

/// A policy document as given, refused unless it is a JSON object.
fn document(input: &Input, member: &str) -> Result<String, AwsError> {
    let doc = input.str(member)?;
    match serde_json::from_str::<J>(&doc) {
        Ok(J::Object(_)) => Ok(doc),
        Ok(_) => Err(AwsError::new(
            400,
            "MalformedPolicyDocument",
            "The policy document must be a JSON object.",
        )),
        Err(e) => Err(AwsError::new(
            400,
            "MalformedPolicyDocument",
            format!("The policy document is not JSON: {e}"),
        )),
    }
}

/// A document as IAM answers it: URL-encoded (RFC 3986's unreserved characters kept).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn name_ok(name: &str, max: usize) -> Result<(), AwsError> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "The name '{name}' is not valid: 1 to {max} letters, digits and +=,.@_-"
        )))
    }
}

fn path_of(input: &Input) -> Result<String, AwsError> {
    let path = input.opt_str("Path")?.unwrap_or_else(|| "/".to_owned());
    if !path.starts_with('/') || !path.ends_with('/') {
        return Err(invalid(format!(
            "The path '{path}' is not valid: it begins and ends with /"
        )));
    }
    Ok(path)
}

fn tags_in(input: &Input) -> Result<Vec<J>, AwsError> {
    let mut out = Vec::new();
    for t in input.list("Tags") {
        out.push(json!({ "Key": t.str("Key")?, "Value": t.opt_str("Value")?.unwrap_or_default() }));
    }
    Ok(out)
}

fn tag_list(body: &J) -> Value {
    Value::List(
        body["Tags"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                Value::object()
                    .with("Key", t["Key"].as_str().unwrap_or_default())
                    .with("Value", t["Value"].as_str().unwrap_or_default())
            })
            .collect(),
    )
}

fn text(b: &J, k: &str) -> String {
    b[k].as_str().unwrap_or_default().to_owned()
}

fn date(b: &J, k: &str) -> Value {
    Value::Time(b[k].as_f64().unwrap_or(0.0))
}

/// A role record as the `Role` shape.
fn role_shape(b: &J) -> Value {
    let mut v = Value::object()
        .with("Path", text(b, "Path"))
        .with("RoleName", text(b, "RoleName"))
        .with("RoleId", text(b, "RoleId"))
        .with("Arn", text(b, "Arn"))
        .with("CreateDate", date(b, "CreateDate"))
        .with(
            "AssumeRolePolicyDocument",
            url_encode(&text(b, "AssumeRolePolicyDocument")),
        )
        .with(
            "MaxSessionDuration",
            b["MaxSessionDuration"].as_i64().unwrap_or(3600),
        )
        .with("RoleLastUsed", Value::object());
    if let Some(d) = b["Description"].as_str() {
        v.set("Description", d);
    }
    if b["Tags"].as_array().is_some_and(|t| !t.is_empty()) {
        v.set("Tags", tag_list(b));
    }
    v
}

fn role_name_of(input: &Input) -> Result<String, AwsError> {
    input.str("RoleName")
}

fn role<'a>(r: &'a Resources, name: &str) -> Result<&'a J, AwsError> {
    r.get(ROLE, name).ok_or_else(|| no_such("role", name))
}

fn create_role(r: &mut Resources, input: &Input, id: String, now: f64) -> Result<Value, AwsError> {
    let name = role_name_of(input)?;
    name_ok(&name, 64)?;
    let path = path_of(input)?;
    let doc = document(input, "AssumeRolePolicyDocument")?;
    if r.contains(ROLE, &name) {
        return Err(exists("Role", &name));
    }
    let max = input.opt_i64("MaxSessionDuration")?.unwrap_or(3600);
    if !(3600..=43200).contains(&max) {
        return Err(invalid(format!(
            "MaxSessionDuration {max} is not valid: 3600 to 43200 seconds"
        )));
    }
    let mut body = json!({
        "Path": path,
        "RoleName": name,
        "RoleId": id,
        "Arn": format!("arn:aws:iam::{ACCOUNT}:role{path}{name}"),
        "CreateDate": now.floor(),
        "AssumeRolePolicyDocument": doc,
        "MaxSessionDuration": max,
        "Tags": tags_in(input)?,
    });
    if let Some(d) = input.opt_str("Description")? {
        body["Description"] = J::String(d);
    }
    r.put(ROLE, &name, body.clone())?;
    Ok(Value::object().with("Role", role_shape(&body)))
}

fn get_role(r: &Resources, input: &Input) -> Result<Value, AwsError> {
    let name = role_name_of(input)?;
    Ok(Value::object().with("Role", role_shape(role(r, &name)?)))
}

fn update_role(r: &mut Resources, input: &Input, answer_role: bool) -> Result<Value, AwsError> {
    let name = role_name_of(input)?;
    let mut body = role(r, &name)?.clone();
    if let Some(d) = input.opt_str("Description")? {
        body["Description"] = J::String(d);
    }
    if let Some(m) = input.opt_i64("MaxSessionDuration")? {
        body["MaxSessionDuration"] = json!(m);
    }
    r.put(ROLE, &name, body.clone())?;
    if answer_role {
        return Ok(Value::object().with("Role", role_shape(&body)));
    }
    Ok(Value::object())
}

fn update_assume_role_policy(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let name = role_name_of(input)?;
    let doc = document(input, "PolicyDocument")?;
    role(r, &name)?;
    r.update(ROLE, &name, |b| {
        b["AssumeRolePolicyDocument"] = J::String(doc)
    })?;
    Ok(Value::Null)
}

fn delete_role(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let name = role_name_of(input)?;
    role(r, &name)?;
    if r.of(ATTACHMENT)
        .any(|a| a.body["RoleName"] == name.as_str())
    {
        return Err(conflict(format!(
            "Cannot delete entity, must detach all policies first. (role {name})"
        )));
    }
    if r.of(INLINE).any(|a| a.body["RoleName"] == name.as_str()) {
        return Err(conflict(format!(
            "Cannot delete entity, must delete policies first. (role {name})"
        )));
    }
    if r.of(PROFILE).any(|p| has_role(&p.body, &name)) {
        return Err(conflict(format!(
            "Cannot delete entity, must remove roles from instance profile first. (role {name})"
        )));
    }
    r.delete(ROLE, &name)?;
    Ok(Value::Null)
}

/// The record a tag call names: its kind's key member, a role or profile name or a
/// policy ARN.
fn tagged<'a>(r: &'a Resources, kind: &str, id: &str) -> Result<&'a J, AwsError> {
    r.get(kind, id).ok_or_else(|| match kind {
        ROLE => no_such("role", id),
        POLICY => no_such("policy", id),
        _ => no_such("instance profile", id),
    })
}

fn tag(r: &mut Resources, kind: &str, key: &str, input: &Input) -> Result<Value, AwsError> {
    let id = input.str(key)?;
    let mut body = tagged(r, kind, &id)?.clone();
    let mut tags = body["Tags"].as_array().cloned().unwrap_or_default();
    for t in tags_in(input)? {
        match tags.iter_mut().find(|x| x["Key"] == t["Key"]) {
            Some(x) => *x = t,
            None => tags.push(t),
        }
    }
    body["Tags"] = J::Array(tags);
    r.put(kind, &id, body)?;
    Ok(Value::Null)
}

fn untag(r: &mut Resources, kind: &str, key: &str, input: &Input) -> Result<Value, AwsError> {
    let id = input.str(key)?;
    let keys = input.strings("TagKeys")?;
    let mut body = tagged(r, kind, &id)?.clone();
    let tags: Vec<J> = body["Tags"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|t| !keys.iter().any(|k| t["Key"] == k.as_str()))
        .collect();
    body["Tags"] = J::Array(tags);
    r.put(kind, &id, body)?;
    Ok(Value::Null)
}

fn list_tags(r: &Resources, kind: &str, key: &str, input: &Input) -> Result<Value, AwsError> {
    let id = input.str(key)?;
    let body = tagged(r, kind, &id)?;
    Ok(Value::object()
        .with("Tags", tag_list(body))
        .with("IsTruncated", false))
}

fn inline_id(role: &str, policy: &str) -> String {
    format!("{role}/{policy}")
}

fn list_role_policies(r: &Resources, input: &Input) -> Result<Value, AwsError> {
    let name = role_name_of(input)?;
    role(r, &name)?;
    let names: Vec<Value> = r
        .of(INLINE)
        .filter(|p| p.body["RoleName"] == name.as_str())
        .map(|p| Value::from(text(&p.body, "PolicyName")))
        .collect();
    Ok(Value::object()
        .with("PolicyNames", Value::List(names))
        .with("IsTruncated", false))
}

fn put_role_policy(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let name = role_name_of(input)?;
    let policy = input.str("PolicyName")?;
    name_ok(&policy, 128)?;
    let doc = document(input, "PolicyDocument")?;
    role(r, &name)?;
    r.put(
        INLINE,
        &inline_id(&name, &policy),
        json!({ "RoleName": name, "PolicyName": policy, "PolicyDocument": doc }),
    )?;
    Ok(Value::Null)
}

fn get_role_policy(r: &Resources, input: &Input) -> Result<Value, AwsError> {
    let name = role_name_of(input)?;
    let policy = input.str("PolicyName")?;
    role(r, &name)?;
    let b = r
        .get(INLINE, &inline_id(&name, &policy))
        .ok_or_else(|| no_such("role policy", &policy))?;
    Ok(Value::object()
        .with("RoleName", name)
        .with("PolicyName", policy)
        .with("PolicyDocument", url_encode(&text(b, "PolicyDocument"))))
}

fn delete_role_policy(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let name = role_name_of(input)?;
    let policy = input.str("PolicyName")?;
    role(r, &name)?;
    if r.delete(INLINE, &inline_id(&name, &policy))?.is_none() {
        return Err(no_such("role policy", &policy));
    }
    Ok(Value::Null)
}

fn policy_shape(r: &Resources, b: &J) -> Value {
    let arn = text(b, "Arn");
    let attached = r
        .of(ATTACHMENT)
        .filter(|a| a.body["PolicyArn"] == arn.as_str())
        .count();
    let mut v = Value::object()
        .with("PolicyName", text(b, "PolicyName"))
        .with("PolicyId", text(b, "PolicyId"))
        .with("Arn", arn)
        .with("Path", text(b, "Path"))
        .with("DefaultVersionId", text(b, "DefaultVersionId"))
        .with("AttachmentCount", attached as i64)
        .with("PermissionsBoundaryUsageCount", 0i64)
        .with("IsAttachable", true)
        .with("CreateDate", date(b, "CreateDate"))
        .with("UpdateDate", date(b, "UpdateDate"));
    if let Some(d) = b["Description"].as_str() {
        v.set("Description", d);
    }
    if b["Tags"].as_array().is_some_and(|t| !t.is_empty()) {
        v.set("Tags", tag_list(b));
    }
    v
}

fn policy<'a>(r: &'a Resources, arn: &str) -> Result<&'a J, AwsError> {
    r.get(POLICY, arn).ok_or_else(|| {
        AwsError::new(
            404,
            "NoSuchEntity",
            format!("Policy {arn} does not exist or is not attachable."),
        )
    })
}

fn create_policy(
    r: &mut Resources,
    input: &Input,
    id: String,
    now: f64,
) -> Result<Value, AwsError> {
    let name = input.str("PolicyName")?;
    name_ok(&name, 128)?;
    let path = path_of(input)?;
    let doc = document(input, "PolicyDocument")?;
    let arn = format!("arn:aws:iam::{ACCOUNT}:policy{path}{name}");
    if r.contains(POLICY, &arn) {
        return Err(exists("A policy called", &name));
    }
    let now = now.floor();
    let mut body = json!({
        "PolicyName": name,
        "PolicyId": id,
        "Arn": arn,
        "Path": path,
        "DefaultVersionId": "v1",
        "CreateDate": now,
        "UpdateDate": now,
        "Tags": tags_in(input)?,
        "Versions": [{ "VersionId": "v1", "Document": doc, "IsDefaultVersion": true, "CreateDate": now }],
    });
    if let Some(d) = input.opt_str("Description")? {
        body["Description"] = J::String(d);
    }
    r.put(POLICY, &arn, body.clone())?;
    Ok(Value::object().with("Policy", policy_shape(r, &body)))
}

fn get_policy(r: &Resources, input: &Input) -> Result<Value, AwsError> {
    let arn = input.str("PolicyArn")?;
    Ok(Value::object().with("Policy", policy_shape(r, policy(r, &arn)?)))
}

fn version_shape(v: &J, with_document: bool) -> Value {
    let mut out = Value::object();
    if with_document {
        out.set("Document", url_encode(&text(v, "Document")));
    }
    out.with("VersionId", text(v, "VersionId"))
        .with(
            "IsDefaultVersion",
            v["IsDefaultVersion"].as_bool().unwrap_or(false),
        )
        .with("CreateDate", date(v, "CreateDate"))
}

fn get_policy_version(r: &Resources, input: &Input) -> Result<Value, AwsError> {
    let arn = input.str("PolicyArn")?;
    let version = input.str("VersionId")?;
    let b = policy(r, &arn)?;
    let v = b["Versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["VersionId"] == version.as_str())
        .ok_or_else(|| {
            AwsError::new(
                404,
                "NoSuchEntity",
                format!("Policy {arn} version {version} does not exist or is not attachable."),
            )
        })?;
    Ok(Value::object().with("PolicyVersion", version_shape(v, true)))
}

fn list_policy_versions(r: &Resources, input: &Input) -> Result<Value, AwsError> {
    let arn = input.str("PolicyArn")?;
    let b = policy(r, &arn)?;
    let versions = b["Versions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| version_shape(v, false))
        .collect();
    Ok(Value::object()
        .with("Versions", Value::List(versions))
        .with("IsTruncated", false))
}

/// A new version of a managed policy (at most five, as IAM keeps), the default one if
/// `SetAsDefault`.
fn create_policy_version(r: &mut Resources, input: &Input, now: f64) -> Result<Value, AwsError> {
    let arn = input.str("PolicyArn")?;
    let doc = document(input, "PolicyDocument")?;
    let default = input.opt_bool("SetAsDefault")?.unwrap_or(false);
    let mut b = policy(r, &arn)?.clone();
    let mut versions = b["Versions"].as_array().cloned().unwrap_or_default();
    if versions.len() >= 5 {
        return Err(AwsError::new(
            409,
            "LimitExceeded",
            format!(
                "A managed policy can have up to 5 versions. Before you create a new version, you must delete an existing version. (policy {arn})"
            ),
        ));
    }
    let n = versions
        .iter()
        .filter_map(|v| {
            v["VersionId"]
                .as_str()?
                .strip_prefix('v')?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0)
        + 1;
    let id = format!("v{n}");
    if default {
        for v in &mut versions {
            v["IsDefaultVersion"] = J::Bool(false);
        }
        b["DefaultVersionId"] = J::String(id.clone());
    }
    let now = now.floor();
    let v =
        json!({ "VersionId": id, "Document": doc, "IsDefaultVersion": default, "CreateDate": now });
    versions.push(v.clone());
    b["Versions"] = J::Array(versions);
    b["UpdateDate"] = json!(now);
    r.put(POLICY, &arn, b)?;
    Ok(Value::object().with("PolicyVersion", version_shape(&v, false)))
}

fn delete_policy_version(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let arn = input.str("PolicyArn")?;
    let id = input.str("VersionId")?;
    let mut b = policy(r, &arn)?.clone();
    if b["DefaultVersionId"] == id.as_str() {
        return Err(conflict(format!(
            "Cannot delete the default version of a policy. (policy {arn} version {id})"
        )));
    }
    let mut versions = b["Versions"].as_array().cloned().unwrap_or_default();
    let before = versions.len();
    versions.retain(|v| v["VersionId"] != id.as_str());
    if versions.len() == before {
        return Err(AwsError::new(
            404,
            "NoSuchEntity",
            format!("Policy {arn} version {id} does not exist."),
        ));
    }
    b["Versions"] = J::Array(versions);
    r.put(POLICY, &arn, b)?;
    Ok(Value::Null)
}

fn set_default_version(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let arn = input.str("PolicyArn")?;
    let id = input.str("VersionId")?;
    let mut b = policy(r, &arn)?.clone();
    let mut versions = b["Versions"].as_array().cloned().unwrap_or_default();
    if !versions.iter().any(|v| v["VersionId"] == id.as_str()) {
        return Err(AwsError::new(
            404,
            "NoSuchEntity",
            format!("Policy {arn} version {id} does not exist."),
        ));
    }
    for v in &mut versions {
        v["IsDefaultVersion"] = J::Bool(v["VersionId"] == id.as_str());
    }
    b["Versions"] = J::Array(versions);
    b["DefaultVersionId"] = J::String(id);
    r.put(POLICY, &arn, b)?;
    Ok(Value::Null)
}

fn delete_policy(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let arn = input.str("PolicyArn")?;
    policy(r, &arn)?;
    if r.of(ATTACHMENT)
        .any(|a| a.body["PolicyArn"] == arn.as_str())
    {
        return Err(conflict(format!(
            "Cannot delete a policy attached to entities. (policy {arn})"
        )));
    }
    r.delete(POLICY, &arn)?;
    Ok(Value::Null)
}

fn attachment_id(role: &str, arn: &str) -> String {
    format!("{role}|{arn}")
}

fn attach(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let name = role_name_of(input)?;
    let arn = input.str("PolicyArn")?;
    role(r, &name)?;
    policy(r, &arn)?;
    let id = attachment_id(&name, &arn);
    if !r.contains(ATTACHMENT, &id) {
        r.put(
            ATTACHMENT,
            &id,
            json!({ "RoleName": name, "PolicyArn": arn }),
        )?;
    }
    Ok(Value::Null)
}

fn detach(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let name = role_name_of(input)?;
    let arn = input.str("PolicyArn")?;
    role(r, &name)?;
    if r.delete(ATTACHMENT, &attachment_id(&name, &arn))?.is_none() {
        return Err(AwsError::new(
            404,
            "NoSuchEntity",
            format!("Policy {arn} was not found."),
        ));
    }
    Ok(Value::Null)
}

fn list_attached(r: &Resources, input: &Input) -> Result<Value, AwsError> {
    let name = role_name_of(input)?;
    role(r, &name)?;
    let list = r
        .of(ATTACHMENT)
        .filter(|a| a.body["RoleName"] == name.as_str())
        .map(|a| {
            let arn = text(&a.body, "PolicyArn");
            let pname = r
                .get(POLICY, &arn)
                .map(|p| text(p, "PolicyName"))
                .unwrap_or_else(|| arn.rsplit('/').next().unwrap_or_default().to_owned());
            Value::object()
                .with("PolicyName", pname)
                .with("PolicyArn", arn)
        })
        .collect();
    Ok(Value::object()
        .with("AttachedPolicies", Value::List(list))
        .with("IsTruncated", false))
}

fn has_role(profile: &J, role: &str) -> bool {
    profile["Roles"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == role))
}

fn profile_shape(r: &Resources, b: &J) -> Value {
    let roles = b["Roles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| r.get(ROLE, n.as_str()?))
        .map(role_shape)
        .collect();
    let mut v = Value::object()
        .with("Path", text(b, "Path"))
        .with("InstanceProfileName", text(b, "InstanceProfileName"))
        .with("InstanceProfileId", text(b, "InstanceProfileId"))
        .with("Arn", text(b, "Arn"))
        .with("CreateDate", date(b, "CreateDate"))
        .with("Roles", Value::List(roles));
    if b["Tags"].as_array().is_some_and(|t| !t.is_empty()) {
        v.set("Tags", tag_list(b));
    }
    v
}

fn profile<'a>(r: &'a Resources, name: &str) -> Result<&'a J, AwsError> {
    r.get(PROFILE, name)
        .ok_or_else(|| no_such("instance profile", name))
}

fn create_profile(
    r: &mut Resources,
    input: &Input,
    id: String,
    now: f64,
) -> Result<Value, AwsError> {
    let name = input.str("InstanceProfileName")?;
    name_ok(&name, 128)?;
    let path = path_of(input)?;
    if r.contains(PROFILE, &name) {
        return Err(exists("Instance Profile", &name));
    }
    let body = json!({
        "Path": path,
        "InstanceProfileName": name,
        "InstanceProfileId": id,
        "Arn": format!("arn:aws:iam::{ACCOUNT}:instance-profile{path}{name}"),
        "CreateDate": now.floor(),
        "Roles": [],
        "Tags": tags_in(input)?,
    });
    r.put(PROFILE, &name, body.clone())?;
    Ok(Value::object().with("InstanceProfile", profile_shape(r, &body)))
}

fn get_profile(r: &Resources, input: &Input) -> Result<Value, AwsError> {
    let name = input.str("InstanceProfileName")?;
    Ok(Value::object().with("InstanceProfile", profile_shape(r, profile(r, &name)?)))
}

fn delete_profile(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let name = input.str("InstanceProfileName")?;
    let b = profile(r, &name)?;
    if b["Roles"].as_array().is_some_and(|a| !a.is_empty()) {
        return Err(conflict(format!(
            "Cannot delete entity, must remove roles from instance profile first. (instance profile {name})"
        )));
    }
    r.delete(PROFILE, &name)?;
    Ok(Value::Null)
}

fn add_role(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let name = input.str("InstanceProfileName")?;
    let role_name = role_name_of(input)?;
    let mut b = profile(r, &name)?.clone();
    role(r, &role_name)?;
    if b["Roles"].as_array().is_some_and(|a| !a.is_empty()) {
        return Err(AwsError::new(
            409,
            "LimitExceeded",
            format!(
                "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1 (instance profile {name})"
            ),
        ));
    }
    b["Roles"] = json!([role_name]);
    r.put(PROFILE, &name, b)?;
    Ok(Value::Null)
}

fn remove_role(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let name = input.str("InstanceProfileName")?;
    let role_name = role_name_of(input)?;
    let mut b = profile(r, &name)?.clone();
    if !has_role(&b, &role_name) {
        return Err(no_such("role", &role_name));
    }
    b["Roles"] = json!([]);
    r.put(PROFILE, &name, b)?;
    Ok(Value::Null)
}

fn profiles_for_role(r: &Resources, input: &Input) -> Result<Value, AwsError> {
    let name = role_name_of(input)?;
    role(r, &name)?;
    let list = r
        .of(PROFILE)
        .filter(|p| has_role(&p.body, &name))
        .map(|p| profile_shape(r, &p.body))
        .collect();
    Ok(Value::object()
        .with("InstanceProfiles", Value::List(list))
        .with("IsTruncated", false))
}

/// The `Allow` actions of one policy document (`Action` a string or a list); statements
/// with `NotAction` or `Deny` add nothing.
pub fn allowed_actions(doc: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<J>(doc) else {
        return Vec::new();
    };
    let statements = match &v["Statement"] {
        J::Array(a) => a.clone(),
        s @ J::Object(_) => vec![s.clone()],
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for s in statements {
        if s["Effect"] != "Allow" {
            continue;
        }
        let actions = match &s["Action"] {
            J::String(a) => vec![a.clone()],
            J::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        for a in actions {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

impl Resources {
    /// An instance profile (by name, or by ARN) as the role its instances get: the role's
    /// name and the `Allow` actions of its inline and attached managed policies (each
    /// managed policy's default version). `None` when there is no such profile; a
    /// profile without a role is one that allows nothing.
    pub fn profile_role(&self, name_or_arn: &str) -> Option<(String, Vec<String>)> {
        let profile = self
            .of(PROFILE)
            .find(|p| p.id == name_or_arn || p.body["Arn"] == name_or_arn)?;
        let Some(role) = profile.body["Roles"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|r| r.as_str())
            .map(str::to_owned)
        else {
            return Some((profile.id.clone(), Vec::new()));
        };
        let mut allow: Vec<String> = Vec::new();
        let mut add = |doc: &str| {
            for a in allowed_actions(doc) {
                if !allow.contains(&a) {
                    allow.push(a);
                }
            }
        };
        for p in self
            .of(INLINE)
            .filter(|p| p.body["RoleName"] == role.as_str())
        {
            add(p.body["PolicyDocument"].as_str().unwrap_or_default());
        }
        for a in self
            .of(ATTACHMENT)
            .filter(|a| a.body["RoleName"] == role.as_str())
        {
            let Some(p) = self.get(POLICY, a.body["PolicyArn"].as_str().unwrap_or_default()) else {
                continue;
            };
            let default = p["DefaultVersionId"].clone();
            if let Some(v) = p["Versions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["VersionId"] == default)
            {
                add(v["Document"].as_str().unwrap_or_default());
            }
        }
        Some((role, allow))
    }
}

#[cfg(test)]
mod tests;
