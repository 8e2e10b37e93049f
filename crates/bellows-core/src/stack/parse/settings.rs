//! `[stack]`: the stack's name, the control API's address, the state directory and the
//! instances' network.

use core::net::{Ipv4Addr, SocketAddr};

use toml::Spanned;

use super::values::check_name;
use super::{DEFAULT_CONTROL, DEFAULT_INSTANCE_NETWORK};
use crate::stack::Ipv4Net;
use crate::stack::reader::{Cx, Table};

/// What `[stack]` says, with its defaults; `None` where a value was refused.
pub(super) struct Settings {
    pub name: String,
    pub control: Option<SocketAddr>,
    pub state_dir: Option<String>,
    pub instance_network: Option<Ipv4Net>,
}

pub(super) fn read(cx: &mut Cx<'_>, root: &mut Table<'_, '_>) -> Settings {
    let mut settings = match root.raw("stack") {
        Some(v) => Table::from_value(cx, v, "stack".into()),
        None => None,
    };
    let (name, control, state_dir, network) = match settings.as_mut() {
        Some(t) => {
            let name = t.get::<Spanned<String>>(cx, "name");
            let control = t.get::<Spanned<String>>(cx, "control");
            let state_dir = t.get::<String>(cx, "state_dir");
            let network = t.get::<Spanned<String>>(cx, "instance_network");
            (name, control, state_dir, network)
        }
        None => (None, None, None, None),
    };
    if let Some(t) = settings {
        t.finish(cx);
    }
    let name = match name {
        Some(n) => {
            check_name(cx, &n, "stack.name");
            n.into_inner()
        }
        None => "bellows".to_owned(),
    };
    let control = match control {
        Some(c) => parse_control(cx, &c),
        None => DEFAULT_CONTROL.parse().ok(),
    };
    let instance_network = match network {
        Some(n) => parse_network(cx, &n),
        None => parse_network(cx, &Spanned::new(0..0, DEFAULT_INSTANCE_NETWORK.to_owned())),
    };
    Settings {
        name,
        control,
        state_dir,
        instance_network,
    }
}

fn parse_control(cx: &mut Cx<'_>, v: &Spanned<String>) -> Option<SocketAddr> {
    match v.get_ref().parse::<SocketAddr>() {
        Ok(addr) if addr.ip().is_loopback() => Some(addr),
        Ok(addr) => {
            cx.error(
                v.span(),
                format!("`stack.control` is {addr}, but the control API only listens on loopback (127.0.0.0/8 or ::1)"),
            );
            None
        }
        Err(_) => {
            cx.error(v.span(), format!("`stack.control` must be an address and port like \"127.0.0.1:9900\", found \"{}\"", v.get_ref()));
            None
        }
    }
}

fn parse_network(cx: &mut Cx<'_>, v: &Spanned<String>) -> Option<Ipv4Net> {
    let text = v.get_ref();
    let parsed = text.split_once('/').and_then(|(a, p)| {
        Some(Ipv4Net {
            addr: a.parse::<Ipv4Addr>().ok()?,
            prefix: p.parse::<u8>().ok().filter(|p| *p <= 32)?,
        })
    });
    match parsed {
        Some(net) if net.addr.octets()[0] == 127 && (8..=30).contains(&net.prefix) => Some(net),
        Some(_) => {
            cx.error(v.span(), format!("`stack.instance_network` {text} must lie inside 127.0.0.0/8 with a prefix from /8 to /30"));
            None
        }
        None => {
            cx.error(v.span(), format!("`stack.instance_network` must be a network like \"127.1.0.0/16\", found \"{text}\""));
            None
        }
    }
}
