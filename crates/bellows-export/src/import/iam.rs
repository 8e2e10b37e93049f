//! Instance roles: a launch template's `iam_instance_profile` names an
//! `aws_iam_instance_profile`, whose `role` is an `aws_iam_role`. The `Allow` actions of
//! that role's policies (its `inline_policy` blocks, `aws_iam_role_policy` resources,
//! and the `aws_iam_policy` resources attached to it) become the group's
//! `[groups.NAME.role]`; what a role of bellows cannot say is a warning.

use bellows_core::stack::{ROLE_SERVICES, RoleSpec};
use hcl_edit::Span;

use super::*;

/// A role as the stack file writes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Role {
    pub name: String,
    pub allow: Vec<String>,
}

/// The roles of the instance profiles that launch templates name, by the profile's
/// resource label, and the IAM resources read for them (so that they are not reported
/// as having no counterpart).
pub(super) fn instance_roles(
    cx: &mut Cx<'_>,
    rs: &[Resource<'_>],
) -> (BTreeMap<String, Role>, Vec<(String, String)>) {
    let mut roles = BTreeMap::new();
    let mut used = Vec::new();
    let find = |kind: &str, label: &str| rs.iter().find(|r| r.kind == kind && r.name == label);
    for profile in profiles_named(cx, rs) {
        let Some(p) = find("aws_iam_instance_profile", &profile) else {
            continue;
        };
        used.push((p.kind.clone(), p.name.clone()));
        let mut a = Args::new(
            p.file,
            format!("aws_iam_instance_profile.{}", p.name),
            &p.block.body,
        );
        let role_ref = a.get(cx, "role").and_then(|v| v.target());
        a.finish(cx, &["name", "name_prefix", "path", "tags"]);
        let Some(("aws_iam_role", label)) = role_ref.as_ref().map(|(k, l)| (k.as_str(), l)) else {
            cx.warn(
                p.file,
                p.block.span(),
                format!("aws_iam_instance_profile.{}: its role is not an aws_iam_role of these files; the group keeps the default role", p.name),
            );
            continue;
        };
        let Some(r) = find("aws_iam_role", label) else {
            continue;
        };
        used.push((r.kind.clone(), r.name.clone()));
        let mut role = Role::default();
        let mut a = Args::new(r.file, format!("aws_iam_role.{}", r.name), &r.block.body);
        role.name = a
            .get(cx, "name")
            .and_then(|v| v.str())
            .unwrap_or_else(|| r.name.clone());
        for b in a.blocks("inline_policy") {
            let mut ia = Args::new(
                r.file,
                format!("aws_iam_role.{}.inline_policy", r.name),
                &b.body,
            );
            let what = format!("aws_iam_role.{}.inline_policy", r.name);
            read_policy(cx, &mut ia, &what, &mut role.allow);
            ia.finish(cx, &["name"]);
        }
        a.finish(
            cx,
            &[
                "assume_role_policy",
                "description",
                "path",
                "tags",
                "max_session_duration",
                "name_prefix",
            ],
        );
        let names_role = |cx: &mut Cx<'_>, x: &Resource<'_>| {
            x.block
                .body
                .get_attribute("role")
                .and_then(|at| eval(cx, x.file, &at.value).ok())
                .and_then(|v| v.target())
                == Some(("aws_iam_role".to_owned(), r.name.clone()))
        };
        for x in rs.iter().filter(|x| x.kind == "aws_iam_role_policy") {
            if !names_role(cx, x) {
                continue;
            }
            used.push((x.kind.clone(), x.name.clone()));
            let what = format!("aws_iam_role_policy.{}", x.name);
            let mut pa = Args::new(x.file, what.clone(), &x.block.body);
            pa.get(cx, "role");
            read_policy(cx, &mut pa, &what, &mut role.allow);
            pa.finish(cx, &["name", "name_prefix"]);
        }
        for x in rs
            .iter()
            .filter(|x| x.kind == "aws_iam_role_policy_attachment")
        {
            if !names_role(cx, x) {
                continue;
            }
            used.push((x.kind.clone(), x.name.clone()));
            let mut pa = Args::new(
                x.file,
                format!("aws_iam_role_policy_attachment.{}", x.name),
                &x.block.body,
            );
            pa.get(cx, "role");
            let arn = pa.get(cx, "policy_arn");
            pa.finish(cx, &[]);
            let policy = match &arn {
                Some(v) => match v.target() {
                    Some((k, l)) if k == "aws_iam_policy" => find("aws_iam_policy", &l),
                    _ => None,
                },
                None => None,
            };
            let Some(policy) = policy else {
                let shown = arn
                    .as_ref()
                    .and_then(V::str)
                    .unwrap_or_else(|| "a policy of another configuration".into());
                cx.warn(
                    x.file,
                    x.block.span(),
                    format!("aws_iam_role_policy_attachment.{}: {shown} is not imported: its actions are not in these files; list them in [groups.NAME.role] allow", x.name),
                );
                continue;
            };
            if !used.contains(&(policy.kind.clone(), policy.name.clone())) {
                used.push((policy.kind.clone(), policy.name.clone()));
            }
            let what = format!("aws_iam_policy.{}", policy.name);
            let mut pa = Args::new(policy.file, what.clone(), &policy.block.body);
            read_policy(cx, &mut pa, &what, &mut role.allow);
            pa.finish(cx, &["name", "name_prefix", "description", "path", "tags"]);
        }
        roles.insert(profile, role);
    }
    (roles, used)
}

/// The labels of the `aws_iam_instance_profile` resources that launch templates name
/// (by `name` or `arn`).
fn profiles_named(cx: &mut Cx<'_>, rs: &[Resource<'_>]) -> Vec<String> {
    let mut out = Vec::new();
    for r in rs.iter().filter(|r| r.kind == "aws_launch_template") {
        if let Some(label) = profile_of(cx, r.file, &r.block.body)
            && !out.contains(&label)
        {
            out.push(label);
        }
    }
    out
}

/// The `aws_iam_instance_profile` a launch template's body names, by its label.
pub(super) fn profile_of(cx: &mut Cx<'_>, file: usize, body: &Body) -> Option<String> {
    let b = body
        .blocks()
        .find(|b| b.ident.value().as_str() == "iam_instance_profile")?;
    ["name", "arn"].iter().find_map(|k| {
        let at = b.body.get_attribute(k)?;
        match eval(cx, file, &at.value).ok()?.target()? {
            (kind, label) if kind == "aws_iam_instance_profile" => Some(label),
            _ => None,
        }
    })
}

/// The `Allow` actions of the policy document in `policy` (`jsonencode({...})` or a
/// JSON string), added to `allow` once each; the rest is warned about.
fn read_policy(cx: &mut Cx<'_>, a: &mut Args<'_>, what: &str, allow: &mut Vec<String>) {
    let span = a
        .body
        .get_attribute("policy")
        .and_then(|at| at.value.span());
    let file = a.file;
    let doc = match a.get(cx, "policy") {
        Some(V::Str(s)) => match serde_json::from_str::<serde_json::Value>(&s) {
            Ok(j) => from_json(&j),
            Err(e) => {
                cx.warn(
                    file,
                    span.clone(),
                    format!("{what}: its policy is not JSON ({e}); it is not imported"),
                );
                return;
            }
        },
        Some(v) => v,
        None => return,
    };
    let statements = match field(&doc, "Statement") {
        Some(V::List(l)) => l.clone(),
        Some(m @ V::Map(_)) => vec![m.clone()],
        _ => {
            cx.warn(
                file,
                span.clone(),
                format!("{what}: its policy has no Statement; it is not imported"),
            );
            return;
        }
    };
    for s in &statements {
        let effect = field(s, "Effect").and_then(V::str).unwrap_or_default();
        if effect != "Allow" {
            cx.warn(file, span.clone(), format!("{what}: a statement with Effect {effect:?} is not imported (a bellows role lists what it allows)"));
            continue;
        }
        if field(s, "NotAction").is_some() {
            cx.warn(
                file,
                span.clone(),
                format!("{what}: NotAction is not imported"),
            );
        }
        let actions = match field(s, "Action") {
            Some(V::List(l)) => l.iter().filter_map(V::str).collect(),
            Some(v) => v.str().into_iter().collect(),
            None => Vec::new(),
        };
        for action in actions {
            if !RoleSpec::allows_pattern(&action) {
                cx.warn(
                    file,
                    span.clone(),
                    format!("{what}: the action {action} is not imported: bellows' roles allow actions of {} only", ROLE_SERVICES.join(", ")),
                );
            } else if !allow.contains(&action) {
                allow.push(action);
            }
        }
    }
}

fn field<'v>(v: &'v V, key: &str) -> Option<&'v V> {
    match v {
        V::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, x)| x),
        _ => None,
    }
}

fn from_json(j: &serde_json::Value) -> V {
    match j {
        serde_json::Value::Null => V::Null,
        serde_json::Value::Bool(b) => V::Bool(*b),
        serde_json::Value::Number(n) => V::Num(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => V::Str(s.clone()),
        serde_json::Value::Array(a) => V::List(a.iter().map(from_json).collect()),
        serde_json::Value::Object(o) => {
            V::Map(o.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
        }
    }
}
