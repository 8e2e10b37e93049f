//! `[stack]`: the stack's name, the control API's address, the state directory, the
//! instances' network and the AWS region; and `[aws]`, the AWS endpoint's own key pair.

use core::net::{Ipv4Addr, SocketAddr};

use toml::Spanned;

use super::values::check_name;
use super::{DEFAULT_CONTROL, DEFAULT_INSTANCE_NETWORK, DEFAULT_NAMESPACE_NETWORK, DEFAULT_REGION};
use crate::stack::reader::{Cx, Table};
use crate::stack::{AwsKeySpec, Ipv4Net};

/// What `[stack]` says, with its defaults; `None` where a value was refused.
pub(super) struct Settings {
    pub name: String,
    pub control: Option<SocketAddr>,
    pub state_dir: Option<String>,
    pub instance_network: Option<Ipv4Net>,
    pub namespace_network: Option<Ipv4Net>,
    pub region: String,
    pub load_balancer: String,
    pub aws: Option<AwsKeySpec>,
}

pub(super) fn read(cx: &mut Cx<'_>, root: &mut Table<'_, '_>) -> Settings {
    let mut settings = match root.raw("stack") {
        Some(v) => Table::from_value(cx, v, "stack".into()),
        None => None,
    };
    let (name, control, state_dir, network, region, load_balancer, ns_network) =
        match settings.as_mut() {
            Some(t) => {
                let name = t.get::<Spanned<String>>(cx, "name");
                let control = t.get::<Spanned<String>>(cx, "control");
                let state_dir = t.get::<String>(cx, "state_dir");
                let network = t.get::<Spanned<String>>(cx, "instance_network");
                let region = t.get::<Spanned<String>>(cx, "region");
                let load_balancer = t.get::<Spanned<String>>(cx, "load_balancer");
                let ns_network = t.get::<Spanned<String>>(cx, "namespace_network");
                (
                    name,
                    control,
                    state_dir,
                    network,
                    region,
                    load_balancer,
                    ns_network,
                )
            }
            None => (None, None, None, None, None, None, None),
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
    let namespace_network = parse_namespace_network(
        cx,
        &ns_network.unwrap_or_else(|| Spanned::new(0..0, DEFAULT_NAMESPACE_NETWORK.to_owned())),
    );
    let region = match region {
        Some(r) => {
            if !is_region(r.get_ref()) {
                cx.error(
                    r.span(),
                    format!(
                        "`stack.region`: `{}` is not a region name like us-east-1",
                        r.get_ref()
                    ),
                );
            }
            r.into_inner()
        }
        None => DEFAULT_REGION.to_owned(),
    };
    let load_balancer = match load_balancer {
        Some(lb) => {
            if !is_load_balancer_name(lb.get_ref()) {
                cx.error(
                    lb.span(),
                    format!(
                        "`stack.load_balancer`: `{}` is not a load balancer name: 1 to 32 letters, digits and `-`, not starting or ending with `-`",
                        lb.get_ref()
                    ),
                );
            }
            lb.into_inner()
        }
        None => name.clone(),
    };
    let aws = match root.raw("aws") {
        Some(v) => Table::from_value(cx, v, "aws".into()).and_then(|t| read_aws(cx, t)),
        None => None,
    };
    Settings {
        name,
        control,
        state_dir,
        instance_network,
        namespace_network,
        region,
        load_balancer,
        aws,
    }
}

/// Whether `s` is a name ELBv2 takes for a load balancer.
fn is_load_balancer_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` looks like an AWS region name: lower-case words and a number joined by
/// dashes (`us-east-1`, `eu-central-2`, `us-gov-west-1`).
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && s.len() <= 32
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// `[aws]`: an access key id and the name of the variable that holds its secret.
fn read_aws(cx: &mut Cx<'_>, mut t: Table<'_, '_>) -> Option<AwsKeySpec> {
    let id = t.require::<Spanned<String>>(cx, "access_key_id");
    let env = t.require::<Spanned<String>>(cx, "secret_env");
    t.finish(cx);
    let (id, env) = (id?, env?);
    let id_ok = (16..=128).contains(&id.get_ref().len())
        && id.get_ref().bytes().all(|b| b.is_ascii_alphanumeric());
    if !id_ok {
        cx.error(
            id.span(),
            "`aws.access_key_id`: 16 to 128 letters and digits, like AKIAIOSFODNN7EXAMPLE",
        );
    }
    let env_ok = !env.get_ref().is_empty()
        && env
            .get_ref()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !env_ok {
        cx.error(
            env.span(),
            "`aws.secret_env`: the name of the environment variable that holds the secret (the secret itself never goes in the file)",
        );
    }
    Some(AwsKeySpec {
        access_key_id: id.into_inner(),
        secret_env: env.into_inner(),
    })
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

/// `stack.namespace_network`: a private range (10/8, 172.16/12, 192.168/16) with room
/// for at least one /30.
fn parse_namespace_network(cx: &mut Cx<'_>, v: &Spanned<String>) -> Option<Ipv4Net> {
    let text = v.get_ref();
    let parsed = text.split_once('/').and_then(|(a, p)| {
        Some(Ipv4Net {
            addr: a.parse::<Ipv4Addr>().ok()?,
            prefix: p.parse::<u8>().ok().filter(|p| *p <= 32)?,
        })
    });
    match parsed {
        Some(net) if net.addr.is_private() && (8..=30).contains(&net.prefix) => Some(net),
        Some(_) => {
            cx.error(v.span(), format!("`stack.namespace_network` {text} must be a private network (inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16) with a prefix from /8 to /30"));
            None
        }
        None => {
            cx.error(v.span(), format!("`stack.namespace_network` must be a network like \"10.213.0.0/16\", found \"{text}\""));
            None
        }
    }
}
