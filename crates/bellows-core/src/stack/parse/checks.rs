//! `[[checks]]`: the requests `bellows check` sends to a listener, with the answer each
//! expects.

use toml::Spanned;

use super::values::t_int;
use crate::stack::reader::{Cx, Table};
use crate::stack::{CheckSpec, ListenerSpec};

pub(super) fn read_all(
    cx: &mut Cx<'_>,
    root: &mut Table<'_, '_>,
    listeners: &[ListenerSpec],
) -> Vec<CheckSpec> {
    let mut checks = Vec::new();
    for mut c in root.table_array(cx, "checks") {
        let path = c.path.clone();
        let name = c.require::<String>(cx, "name");
        let listener = c.get::<Spanned<String>>(cx, "listener");
        if let Some(l) = &listener
            && !listeners.iter().any(|x| &x.name == l.get_ref())
        {
            cx.error(
                l.span(),
                format!(
                    "`{path}.listener`: listener `{}` does not exist",
                    l.get_ref()
                ),
            );
        }
        let method = c
            .get::<String>(cx, "method")
            .unwrap_or_else(|| "GET".to_owned());
        let target = c.require::<Spanned<String>>(cx, "path");
        if let Some(p) = &target
            && !p.get_ref().starts_with('/')
        {
            cx.error(p.span(), format!("`{path}.path` must start with `/`"));
        }
        let body = c.get::<String>(cx, "body");
        let status = t_int(cx, &mut c, "expect_status", 100, 599, false).unwrap_or(200) as u16;
        let expect_body = c.get::<String>(cx, "expect_body");
        c.finish(cx);
        if !method.bytes().all(|b| b.is_ascii_uppercase()) || method.is_empty() {
            cx.error(
                0..0,
                format!("`{path}.method` must be an upper-case method like GET"),
            );
        }
        if let (Some(name), Some(target)) = (name, target) {
            checks.push(CheckSpec {
                name,
                listener: listener.map(Spanned::into_inner),
                method,
                path: target.into_inner(),
                body,
                expect_status: status,
                expect_body,
            });
        }
    }
    if !checks.is_empty() && listeners.is_empty() {
        cx.error(
            0..0,
            "the stack has [[checks]] but no listener to send them to",
        );
    }
    checks
}
