//! The schema of the stack file: defaults, ranges and cross references.

mod alarms;
mod checks;
mod groups;
mod incidents;
mod listeners;
mod policies;
mod settings;
mod simulation;
mod target_groups;
mod values;
mod webhooks;

use toml::de::DeTable;

use super::reader::{Cx, Table};
use super::{Diagnostic, Stack};

pub use target_groups::default_health_check;

/// The control API's address when the stack file names none.
pub const DEFAULT_CONTROL: &str = "127.0.0.1:9900";
/// Instances' private addresses come from here unless the stack file says otherwise.
pub const DEFAULT_INSTANCE_NETWORK: &str = "127.1.0.0/16";
/// The private network instances in network namespaces get their /30s from.
pub const DEFAULT_NAMESPACE_NETWORK: &str = "10.213.0.0/16";
/// A group may not grow past this: every instance is a process on one machine.
pub const MAX_GROUP_SIZE: i64 = 256;
/// The region when `[stack]` names none.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Parses and validates a stack file, returning every problem it has.
pub fn parse(src: &str) -> Result<Stack, Vec<Diagnostic>> {
    let mut cx = Cx::new(src);
    let doc = match DeTable::parse(src) {
        Ok(doc) => doc,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            cx.error(span, format!("TOML syntax: {}", e.message()));
            return Err(cx.errors);
        }
    };
    let mut root = Table::new(doc.get_ref(), doc.span(), String::new());
    let stack = read_stack(&mut cx, &mut root);
    root.finish(&mut cx);
    match stack {
        Some(stack) if cx.errors.is_empty() => Ok(stack),
        _ => {
            cx.errors.sort_by_key(|d| (d.line, d.column));
            Err(cx.errors)
        }
    }
}

/// Reads the sections in an order where each one's references (a listener's target
/// groups, a policy's group, an alarm's policies) are already known.
fn read_stack(cx: &mut Cx<'_>, root: &mut Table<'_, '_>) -> Option<Stack> {
    let settings = settings::read(cx, root);
    let target_groups = target_groups::read_all(cx, root);
    let listeners = listeners::read_all(cx, root, settings.control, &target_groups);
    let groups = groups::read_all(cx, root, &target_groups);
    let scheduled = groups::read_all_scheduled(cx, root);
    let webhooks = webhooks::read_all(cx, root);
    let policies = policies::read_all(cx, root, &groups, &target_groups);
    let alarms = alarms::read_all(cx, root, &policies, &webhooks);
    let checks = checks::read_all(cx, root, &listeners);
    let simulation = simulation::read(cx, root, &groups);
    let incidents = incidents::read(cx, root, &alarms);
    Some(Stack {
        simulation,
        incidents,
        checks,
        alarms,
        policies,
        scheduled,
        webhooks,
        name: settings.name,
        control: settings.control?,
        state_dir: settings.state_dir,
        instance_network: settings.instance_network?,
        namespace_network: settings.namespace_network?,
        region: settings.region,
        load_balancer: settings.load_balancer,
        aws: settings.aws,
        groups,
        target_groups,
        listeners,
    })
}
