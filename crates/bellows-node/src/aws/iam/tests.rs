use super::*;
use bellows_aws::form::{Dialect, parse};

fn input(form: &str) -> Input {
    Input::new(
        parse(form.as_bytes(), Dialect::Query).unwrap(),
        "ValidationError",
        "ValidationError",
    )
}

fn records(name: &str) -> Resources {
    let dir = std::env::temp_dir().join(format!("bellows-iam-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Resources::open(&dir.join("state.db"), "web").unwrap()
}

/// A form member's value, URL-encoded as botocore sends it.
fn enc(s: &str) -> String {
    url_encode(s)
}

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

fn text_of(v: &Value, path: &[&str]) -> String {
    let mut at = v;
    for p in path {
        at = at.get(p).unwrap_or_else(|| panic!("{p} in {v:?}"));
    }
    at.as_str().unwrap()
}

fn role(r: &mut Resources, name: &str) -> Value {
    create_role(
        r,
        &input(&format!(
            "RoleName={name}&AssumeRolePolicyDocument={}&Description=app",
            enc(TRUST)
        )),
        "AROAEXAMPLE".into(),
        1_700_000_000.5,
    )
    .unwrap()
}

#[test]
fn a_role_reads_back_as_created_with_its_document_url_encoded() {
    let mut r = records("role");
    let made = role(&mut r, "app-role");
    let got = get_role(&r, &input("RoleName=app-role")).unwrap();
    assert_eq!(made, got);
    assert_eq!(
        text_of(&got, &["Role", "Arn"]),
        "arn:aws:iam::123456789012:role/app-role"
    );
    assert_eq!(text_of(&got, &["Role", "Path"]), "/");
    assert_eq!(
        got.get("Role").unwrap().get("MaxSessionDuration"),
        Some(&Value::Int(3600))
    );
    // Exactly the bytes given, once decoded.
    let doc = text_of(&got, &["Role", "AssumeRolePolicyDocument"]);
    let mut decoded = Vec::new();
    let bytes = doc.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            decoded.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    assert_eq!(String::from_utf8(decoded).unwrap(), TRUST);
    assert!(!doc.contains('{') && !doc.contains('"'), "{doc}");

    let again = create_role(
        &mut r,
        &input(&format!(
            "RoleName=app-role&AssumeRolePolicyDocument={}",
            enc(TRUST)
        )),
        "AROAOTHER".into(),
        0.0,
    )
    .unwrap_err();
    assert_eq!(
        (again.status, again.code.as_str()),
        (409, "EntityAlreadyExists")
    );
    let missing = get_role(&r, &input("RoleName=nobody")).unwrap_err();
    assert_eq!(
        (missing.status, missing.code.as_str()),
        (404, "NoSuchEntity")
    );
    let bad = create_role(
        &mut r,
        &input("RoleName=x&AssumeRolePolicyDocument=not-json"),
        "AROAX".into(),
        0.0,
    )
    .unwrap_err();
    assert_eq!(bad.code, "MalformedPolicyDocument");
}

#[test]
fn a_role_with_policies_or_profiles_cannot_be_deleted() {
    let mut r = records("conflict");
    role(&mut r, "app-role");
    let policy_doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["dynamodb:GetItem","dynamodb:PutItem"],"Resource":"*"}]}"#;
    let made = create_policy(
        &mut r,
        &input(&format!(
            "PolicyName=table&PolicyDocument={}",
            enc(policy_doc)
        )),
        "ANPAEXAMPLE".into(),
        1_700_000_000.0,
    )
    .unwrap();
    let arn = text_of(&made, &["Policy", "Arn"]);
    assert_eq!(arn, "arn:aws:iam::123456789012:policy/table");
    attach(
        &mut r,
        &input(&format!("RoleName=app-role&PolicyArn={arn}")),
    )
    .unwrap();
    let got = get_policy(&r, &input(&format!("PolicyArn={arn}"))).unwrap();
    assert_eq!(
        got.get("Policy").unwrap().get("AttachmentCount"),
        Some(&Value::Int(1))
    );
    let v = get_policy_version(&r, &input(&format!("PolicyArn={arn}&VersionId=v1"))).unwrap();
    assert_eq!(
        text_of(&v, &["PolicyVersion", "Document"]),
        url_encode(policy_doc)
    );
    create_profile(
        &mut r,
        &input("InstanceProfileName=app-profile"),
        "AIPAEXAMPLE".into(),
        0.0,
    )
    .unwrap();
    add_role(
        &mut r,
        &input("InstanceProfileName=app-profile&RoleName=app-role"),
    )
    .unwrap();
    put_role_policy(
        &mut r,
        &input(&format!(
            "RoleName=app-role&PolicyName=metrics&PolicyDocument={}",
            enc(r#"{"Statement":{"Effect":"Allow","Action":"cloudwatch:PutMetricData"}}"#)
        )),
    )
    .unwrap();

    let delete = |r: &mut Resources| delete_role(r, &input("RoleName=app-role"));
    let e = delete(&mut r).unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (409, "DeleteConflict"));
    let e = delete_policy(&mut r, &input(&format!("PolicyArn={arn}"))).unwrap_err();
    assert_eq!(e.code, "DeleteConflict");
    detach(
        &mut r,
        &input(&format!("RoleName=app-role&PolicyArn={arn}")),
    )
    .unwrap();
    assert_eq!(delete(&mut r).unwrap_err().code, "DeleteConflict");
    delete_role_policy(&mut r, &input("RoleName=app-role&PolicyName=metrics")).unwrap();
    assert_eq!(delete(&mut r).unwrap_err().code, "DeleteConflict");
    let e = delete_profile(&mut r, &input("InstanceProfileName=app-profile")).unwrap_err();
    assert_eq!(e.code, "DeleteConflict");
    remove_role(
        &mut r,
        &input("InstanceProfileName=app-profile&RoleName=app-role"),
    )
    .unwrap();
    delete(&mut r).unwrap();
    delete_profile(&mut r, &input("InstanceProfileName=app-profile")).unwrap();
    delete_policy(&mut r, &input(&format!("PolicyArn={arn}"))).unwrap();
    assert!(r.all().is_empty(), "{:?}", r.all());
    let e = delete_role_policy(&mut r, &input("RoleName=app-role&PolicyName=metrics")).unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (404, "NoSuchEntity"));
}

#[test]
fn a_profile_gives_its_role_what_its_policies_allow() {
    let mut r = records("mapping");
    role(&mut r, "app-role");
    let managed = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["dynamodb:GetItem","dynamodb:Put*"],"Resource":"*"},{"Effect":"Deny","Action":"dynamodb:DeleteTable","Resource":"*"},{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}"#;
    let made = create_policy(
        &mut r,
        &input(&format!("PolicyName=table&PolicyDocument={}", enc(managed))),
        "ANPAEXAMPLE".into(),
        0.0,
    )
    .unwrap();
    let arn = text_of(&made, &["Policy", "Arn"]);
    attach(
        &mut r,
        &input(&format!("RoleName=app-role&PolicyArn={arn}")),
    )
    .unwrap();
    put_role_policy(
        &mut r,
        &input(&format!(
            "RoleName=app-role&PolicyName=metrics&PolicyDocument={}",
            enc(r#"{"Statement":{"Effect":"Allow","Action":"cloudwatch:PutMetricData"}}"#)
        )),
    )
    .unwrap();
    create_profile(
        &mut r,
        &input("InstanceProfileName=app-profile"),
        "AIPAEXAMPLE".into(),
        0.0,
    )
    .unwrap();
    assert_eq!(
        r.profile_role("app-profile"),
        Some(("app-profile".to_owned(), Vec::new())),
        "a profile without a role allows nothing"
    );
    add_role(
        &mut r,
        &input("InstanceProfileName=app-profile&RoleName=app-role"),
    )
    .unwrap();
    let allow = vec![
        "cloudwatch:PutMetricData".to_owned(),
        "dynamodb:GetItem".to_owned(),
        "dynamodb:Put*".to_owned(),
    ];
    let want = Some(("app-role".to_owned(), allow.clone()));
    assert_eq!(r.profile_role("app-profile"), want);
    assert_eq!(
        r.profile_role("arn:aws:iam::123456789012:instance-profile/app-profile"),
        want
    );
    assert_eq!(r.profile_role("nobody"), None);
    // A new default version of the managed policy is what the role allows now.
    create_policy_version(
        &mut r,
        &input(&format!(
            "PolicyArn={arn}&SetAsDefault=true&PolicyDocument={}",
            enc(r#"{"Statement":[{"Effect":"Allow","Action":"dynamodb:Scan"}]}"#)
        )),
        0.0,
    )
    .unwrap();
    assert_eq!(
        r.profile_role("app-profile").unwrap().1,
        ["cloudwatch:PutMetricData", "dynamodb:Scan"]
    );
    let e = delete_policy_version(&mut r, &input(&format!("PolicyArn={arn}&VersionId=v2")))
        .unwrap_err();
    assert_eq!(e.code, "DeleteConflict");
    set_default_version(&mut r, &input(&format!("PolicyArn={arn}&VersionId=v1"))).unwrap();
    delete_policy_version(&mut r, &input(&format!("PolicyArn={arn}&VersionId=v2"))).unwrap();
    assert_eq!(r.profile_role("app-profile").unwrap().1, allow);
    assert!(crate::sessions::allows(&allow, "dynamodb", "PutItem"));
    assert!(crate::sessions::allows(&allow, "dynamodb", "GetItem"));
    assert!(!crate::sessions::allows(&allow, "dynamodb", "DeleteTable"));
    assert!(!crate::sessions::allows(
        &allow,
        "autoscaling",
        "SetDesiredCapacity"
    ));
}
