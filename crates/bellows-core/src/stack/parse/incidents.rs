//! `[incidents]`: which alarms open an investigation and where incidents are sent (a
//! webhook, GitHub issues).

use toml::Spanned;

use super::values::check_url;
use crate::alarm::AlarmSpec;
use crate::stack::reader::{Cx, Table};
use crate::stack::{GithubSpec, IncidentsSpec};

/// `[incidents]`; absent: every alarm investigates, nothing is sent anywhere.
pub(super) fn read(
    cx: &mut Cx<'_>,
    root: &mut Table<'_, '_>,
    alarms: &[AlarmSpec],
) -> IncidentsSpec {
    let Some(v) = root.raw("incidents") else {
        return IncidentsSpec::default();
    };
    let Some(mut t) = Table::from_value(cx, v, "incidents".into()) else {
        return IncidentsSpec::default();
    };
    let only = t.raw("alarms").is_some().then(|| t.strings(cx, "alarms"));
    if let Some(list) = &only {
        for a in list {
            if !alarms.iter().any(|x| &x.name == a.get_ref()) {
                cx.error(
                    a.span(),
                    format!("`incidents.alarms`: no alarm named `{}`", a.get_ref()),
                );
            }
        }
    }
    let webhook = t.get::<Spanned<String>>(cx, "webhook");
    if let Some(u) = &webhook {
        check_url(cx, u, "incidents.webhook");
    }
    let github = match t.raw("github") {
        None => None,
        Some(v) => Table::from_value(cx, v, "incidents.github".into()).and_then(|mut g| {
            let url = g.require::<Spanned<String>>(cx, "url");
            if let Some(u) = &url {
                check_url(cx, u, "incidents.github.url");
            }
            let repository = g.require::<Spanned<String>>(cx, "repository");
            if let Some(r) = &repository {
                let parts: Vec<&str> = r.get_ref().split('/').collect();
                if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                    cx.error(
                        r.span(),
                        "`incidents.github.repository` must be `owner/name`",
                    );
                }
            }
            let token_env = g
                .get::<String>(cx, "token_env")
                .unwrap_or_else(|| "GITHUB_TOKEN".to_owned());
            let labels = g
                .strings(cx, "labels")
                .into_iter()
                .map(Spanned::into_inner)
                .collect::<Vec<_>>();
            g.finish(cx);
            Some(GithubSpec {
                url: url?.into_inner().trim_end_matches('/').to_owned(),
                repository: repository?.into_inner(),
                token_env,
                labels: if labels.is_empty() {
                    vec!["incident".to_owned(), "bellows".to_owned()]
                } else {
                    labels
                },
            })
        }),
    };
    t.finish(cx);
    IncidentsSpec {
        alarms: only.map(|l| l.into_iter().map(Spanned::into_inner).collect()),
        webhook: webhook.map(Spanned::into_inner),
        github,
    }
}
