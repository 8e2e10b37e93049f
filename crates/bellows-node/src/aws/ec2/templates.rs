//! Launch templates and their versions as records: a template (`launch_template`) with
//! its default and latest version numbers, and each version (`launch_template_version`,
//! id `lt-.../N`) with its data as EC2 answers it.

use bellows_aws::arn::ACCOUNT;
use bellows_aws::{AwsError, Input, Value};
use serde_json::{Value as J, json};

use super::shared::*;
use crate::resources::Resources;

/// The output name of a member of a template's data as the form names it: lists get
/// EC2's `...Set` names, the rest only lose their capital.
fn output_name(name: &str, depth: usize) -> String {
    let renamed = match (depth, name) {
        (0, "SecurityGroupId") => "securityGroupIdSet",
        (0, "SecurityGroup") => "securityGroupSet",
        (0, "NetworkInterface") => "networkInterfaceSet",
        (0, "TagSpecification") => "tagSpecificationSet",
        (0, "BlockDeviceMapping") => "blockDeviceMappingSet",
        (0, "LicenseSpecification") => "licenseSet",
        (0, "ElasticGpuSpecification") => "elasticGpuSpecificationSet",
        (0, "ElasticInferenceAccelerator") => "elasticInferenceAcceleratorSet",
        (_, "SecurityGroupId") => "groupSet",
        (_, "Ipv6Addresses") => "ipv6AddressesSet",
        (_, "PrivateIpAddresses") => "privateIpAddressesSet",
        (_, "Ipv4Prefix") => "ipv4PrefixSet",
        (_, "Ipv6Prefix") => "ipv6PrefixSet",
        (_, "Tag") => "tagSet",
        _ => {
            let mut c = name.chars();
            return match c.next() {
                Some(f) => f.to_lowercase().chain(c).collect(),
                None => String::new(),
            };
        }
    };
    renamed.to_owned()
}

fn data_of(v: &Value, depth: usize) -> J {
    match v {
        Value::Struct(m) | Value::Map(m) => J::Object(
            m.iter()
                .map(|(k, v)| (output_name(k, depth), data_of(v, depth + 1)))
                .collect(),
        ),
        Value::List(items) => J::Array(items.iter().map(|i| data_of(i, depth)).collect()),
        other => json_of(other),
    }
}

/// A template's data from the form, as EC2 answers it.
fn template_data(input: &Input) -> J {
    match input.get("LaunchTemplateData") {
        Some(v) => data_of(v, 0),
        None => json!({}),
    }
}

fn name_not_found() -> AwsError {
    AwsError::new(
        400,
        "InvalidLaunchTemplateName.NotFoundException",
        "At least one of the launch templates specified in the request does not exist.",
    )
}

/// The template a call names by id or name: (id, body).
fn template_of(r: &Resources, input: &Input) -> Result<(String, J), AwsError> {
    match (
        input.opt_str("LaunchTemplateId")?,
        input.opt_str("LaunchTemplateName")?,
    ) {
        (Some(id), _) => find(r, &id),
        (None, Some(name)) => find(r, &name),
        (None, None) => Err(missing("launchTemplateId or launchTemplateName")),
    }
}

/// A template by id (`lt-...`) or name.
pub fn find(r: &Resources, id_or_name: &str) -> Result<(String, J), AwsError> {
    if id_or_name.starts_with("lt-") {
        if let Some(b) = r.get(TEMPLATE, id_or_name) {
            return Ok((id_or_name.to_owned(), b.clone()));
        }
        return Err(AwsError::new(
            400,
            "InvalidLaunchTemplateId.NotFound",
            format!(
                "The specified launch template, with template ID {id_or_name}, does not exist."
            ),
        ));
    }
    r.of(TEMPLATE)
        .find(|t| t.body["launchTemplateName"] == id_or_name)
        .map(|t| (t.id.clone(), t.body.clone()))
        .ok_or_else(name_not_found)
}

/// A version string (`$Latest`, `$Default`, a number) of a template as its number.
pub fn resolve(template: &J, version: &str) -> Result<i64, AwsError> {
    let n = match version {
        "$Latest" => template["latestVersionNumber"].as_i64(),
        "$Default" => template["defaultVersionNumber"].as_i64(),
        n => n.parse::<i64>().ok(),
    };
    let latest = template["latestVersionNumber"].as_i64().unwrap_or(0);
    match n {
        Some(n) if n >= 1 && n <= latest => Ok(n),
        _ => Err(AwsError::new(
            400,
            "InvalidLaunchTemplateId.VersionNotFound",
            format!(
                "Could not find launch template version {version} of {}",
                template["launchTemplateId"].as_str().unwrap_or_default()
            ),
        )),
    }
}

fn version_id(template: &str, n: i64) -> String {
    format!("{template}/{n}")
}

fn add_version(
    r: &mut Resources,
    template: &J,
    n: i64,
    input: &Input,
    data: J,
    env: &Env,
) -> Result<J, AwsError> {
    let id = template["launchTemplateId"].as_str().unwrap_or_default();
    let mut v = json!({
        "launchTemplateId": id,
        "launchTemplateName": template["launchTemplateName"],
        "versionNumber": n,
        "createTime": env.now,
        "createdBy": format!("arn:aws:iam::{ACCOUNT}:root"),
        "launchTemplateData": data,
    });
    if let Some(d) = input.opt_str("VersionDescription")? {
        v["versionDescription"] = json!(d);
    }
    r.put(VERSION, &version_id(id, n), v.clone())?;
    Ok(v)
}

fn check_name(name: &str) -> Result<(), AwsError> {
    let ok = (3..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "()./_-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(AwsError::new(
            400,
            "InvalidLaunchTemplateName.MalformedException",
            format!(
                "The launch template name {name} is malformed: 3 to 128 letters, digits and ( ) . / _ -"
            ),
        ))
    }
}

pub fn create(r: &mut Resources, input: &Input, env: &Env) -> Result<Value, AwsError> {
    let name = input.str("LaunchTemplateName")?;
    check_name(&name)?;
    if r.of(TEMPLATE)
        .any(|t| t.body["launchTemplateName"] == name.as_str())
    {
        return Err(AwsError::new(
            400,
            "InvalidLaunchTemplateName.AlreadyExistsException",
            format!("Launch template name already in use: {name}"),
        ));
    }
    let id = r.new_id("lt")?;
    let template = json!({
        "launchTemplateId": id,
        "launchTemplateName": name,
        "createTime": env.now,
        "createdBy": format!("arn:aws:iam::{ACCOUNT}:root"),
        "defaultVersionNumber": 1,
        "latestVersionNumber": 1,
        "tagSet": tags_in(input, "launch-template")?,
    });
    r.put(TEMPLATE, &id, template.clone())?;
    add_version(r, &template, 1, input, template_data(input), env)?;
    Ok(Value::object().with("launchTemplate", wire(&template)))
}

pub fn create_version(r: &mut Resources, input: &Input, env: &Env) -> Result<Value, AwsError> {
    let (id, template) = template_of(r, input)?;
    let mut data = template_data(input);
    if let Some(source) = input.opt_str("SourceVersion")? {
        let n = resolve(&template, &source)?;
        let base = r
            .get(VERSION, &version_id(&id, n))
            .map(|v| v["launchTemplateData"].clone())
            .unwrap_or_else(|| json!({}));
        let mut merged = base;
        if let (Some(m), Some(new)) = (merged.as_object_mut(), data.as_object()) {
            for (k, v) in new {
                m.insert(k.clone(), v.clone());
            }
        }
        data = merged;
    }
    let n = template["latestVersionNumber"].as_i64().unwrap_or(0) + 1;
    r.update(TEMPLATE, &id, |b| b["latestVersionNumber"] = json!(n))?;
    let template = r.get(TEMPLATE, &id).cloned().unwrap_or_default();
    let v = add_version(r, &template, n, input, data, env)?;
    Ok(Value::object().with("launchTemplateVersion", version_out(&template, &v)))
}

fn version_out(template: &J, v: &J) -> Value {
    wire(v).with(
        "defaultVersion",
        template["defaultVersionNumber"] == v["versionNumber"],
    )
}

pub fn modify(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let (id, template) = template_of(r, input)?;
    if let Some(v) = input.opt_str("SetDefaultVersion")? {
        let n = resolve(&template, &v)?;
        r.update(TEMPLATE, &id, |b| b["defaultVersionNumber"] = json!(n))?;
    }
    let template = r.get(TEMPLATE, &id).cloned().unwrap_or_default();
    Ok(Value::object().with("launchTemplate", wire(&template)))
}

pub fn delete(r: &mut Resources, input: &Input) -> Result<Value, AwsError> {
    let (id, template) = template_of(r, input)?;
    let versions: Vec<String> = r
        .of(VERSION)
        .filter(|v| v.body["launchTemplateId"] == id.as_str())
        .map(|v| v.id.clone())
        .collect();
    for v in versions {
        r.delete(VERSION, &v)?;
    }
    r.delete(TEMPLATE, &id)?;
    Ok(Value::object().with("launchTemplate", wire(&template)))
}

fn template_values(b: &J, name: &str) -> Option<Vec<String>> {
    Some(match name {
        "launch-template-name" => one(b, "launchTemplateName"),
        "launch-template-id" => one(b, "launchTemplateId"),
        "create-time" => one(b, "createTime"),
        _ => return None,
    })
}

pub fn describe(r: &Resources, input: &Input) -> Result<Vec<Value>, AwsError> {
    let ids = input.strings("LaunchTemplateId")?;
    let names = input.strings("LaunchTemplateName")?;
    for id in &ids {
        find(r, id)?;
    }
    for n in &names {
        find(r, n)?;
    }
    let filters = filters(input)?;
    let mut out = Vec::new();
    for t in r.of(TEMPLATE) {
        let named = (ids.is_empty() && names.is_empty())
            || ids.contains(&t.id)
            || names
                .iter()
                .any(|n| t.body["launchTemplateName"] == n.as_str());
        if named && passes(&filters, &t.body, |n| template_values(&t.body, n))? {
            out.push(wire(&t.body));
        }
    }
    Ok(out)
}

fn version_values(template: &J, v: &J, name: &str) -> Option<Vec<String>> {
    let data = &v["launchTemplateData"];
    Some(match name {
        "image-id" => one(data, "imageId"),
        "instance-type" => one(data, "instanceType"),
        "is-default-version" => {
            vec![(template["defaultVersionNumber"] == v["versionNumber"]).to_string()]
        }
        "create-time" => one(v, "createTime"),
        "kernel-id" => one(data, "kernelId"),
        "ram-disk-id" => one(data, "ramDiskId"),
        _ => return None,
    })
}

pub fn describe_versions(r: &Resources, input: &Input) -> Result<Vec<Value>, AwsError> {
    let named = input.opt_str("LaunchTemplateId")?.is_some()
        || input.opt_str("LaunchTemplateName")?.is_some();
    let templates: Vec<(String, J)> = if named {
        vec![template_of(r, input)?]
    } else {
        r.of(TEMPLATE)
            .map(|t| (t.id.clone(), t.body.clone()))
            .collect()
    };
    let wanted = input.strings("LaunchTemplateVersion")?;
    let min = input
        .opt_str("MinVersion")?
        .map(|v| v.parse::<i64>().unwrap_or(0));
    let max = input
        .opt_str("MaxVersion")?
        .map(|v| v.parse::<i64>().unwrap_or(i64::MAX));
    let filters = filters(input)?;
    let mut out = Vec::new();
    for (id, template) in templates {
        let numbers: Vec<i64> = wanted
            .iter()
            .map(|w| resolve(&template, w))
            .collect::<Result<_, _>>()?;
        for v in r
            .of(VERSION)
            .filter(|v| v.body["launchTemplateId"] == id.as_str())
        {
            let n = v.body["versionNumber"].as_i64().unwrap_or(0);
            if !numbers.is_empty() && !numbers.contains(&n) {
                continue;
            }
            if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                continue;
            }
            if passes(&filters, &v.body, |f| version_values(&template, &v.body, f))? {
                out.push(version_out(&template, &v.body));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_names_become_ec2_output_names() {
        assert_eq!(output_name("SecurityGroupId", 0), "securityGroupIdSet");
        assert_eq!(output_name("SecurityGroupId", 1), "groupSet");
        assert_eq!(output_name("ImageId", 0), "imageId");
        assert_eq!(output_name("Tag", 1), "tagSet");
        let t = json!({ "launchTemplateId": "lt-1", "defaultVersionNumber": 1, "latestVersionNumber": 3 });
        assert_eq!(resolve(&t, "$Latest").unwrap(), 3);
        assert_eq!(resolve(&t, "$Default").unwrap(), 1);
        assert_eq!(resolve(&t, "2").unwrap(), 2);
        assert_eq!(
            resolve(&t, "4").unwrap_err().code,
            "InvalidLaunchTemplateId.VersionNotFound"
        );
    }
}
