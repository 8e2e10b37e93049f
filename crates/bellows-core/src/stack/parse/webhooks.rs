//! `[webhooks.NAME]`: receivers that alarms notify (`webhook:NAME` in their actions).

use toml::Spanned;

use super::values::{check_name, check_url};
use crate::stack::WebhookSpec;
use crate::stack::reader::{Cx, Table};

pub(super) fn read_all(cx: &mut Cx<'_>, root: &mut Table<'_, '_>) -> Vec<WebhookSpec> {
    let mut webhooks = Vec::new();
    for (name, mut t) in root.named_tables(cx, "webhooks") {
        check_name(cx, &name, "webhook name");
        let url = t.require::<Spanned<String>>(cx, "url");
        if let Some(u) = &url {
            check_url(cx, u, &format!("webhooks.{}.url", name.get_ref()));
        }
        t.finish(cx);
        if let Some(u) = url {
            webhooks.push(WebhookSpec {
                name: name.into_inner(),
                url: u.into_inner(),
            });
        }
    }
    webhooks
}
