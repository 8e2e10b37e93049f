//! `[simulation]`: the simulator's model of an instance (capacity, service time, startup,
//! price, crashes); the model's defaults fill what it leaves out.

use toml::Spanned;

use super::values::{duration_in, int_in};
use crate::Duration;
use crate::stack::reader::{Cx, Table};
use crate::stack::{GroupSpec, SimulationSpec};

pub(super) fn read(
    cx: &mut Cx<'_>,
    root: &mut Table<'_, '_>,
    groups: &[GroupSpec],
) -> SimulationSpec {
    match root.raw("simulation") {
        Some(v) => match Table::from_value(cx, v, "simulation".into()) {
            Some(mut t) => {
                let sim = read_simulation(cx, &mut t, groups);
                t.finish(cx);
                sim
            }
            None => SimulationSpec::default(),
        },
        None => SimulationSpec::default(),
    }
}

fn read_simulation(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, groups: &[GroupSpec]) -> SimulationSpec {
    let d = SimulationSpec::default();
    let path = t.path.clone();
    let group = t.get::<Spanned<String>>(cx, "group");
    if let Some(g) = &group
        && !groups.iter().any(|x| &x.name == g.get_ref())
    {
        cx.error(
            g.span(),
            format!("`{path}.group`: group `{}` does not exist", g.get_ref()),
        );
    }
    let capacity = t.get::<Spanned<f64>>(cx, "capacity");
    let cpu_per_request = duration_in(
        cx,
        t,
        "cpu_per_request",
        Duration::from_millis(1),
        Duration::from_secs(60),
    );
    let vcpu = group
        .as_ref()
        .and_then(|g| groups.iter().find(|x| &x.name == g.get_ref()))
        .or(groups.first())
        .map_or(1.0, |g| g.launch.instance_type.vcpu);
    let capacity = match (capacity, cpu_per_request) {
        (Some(c), Some(_)) => {
            cx.error(
                c.span(),
                format!("`{path}`: set either `capacity` or `cpu_per_request`, not both"),
            );
            d.capacity
        }
        (Some(c), None) if !(*c.get_ref() > 0.0 && *c.get_ref() <= 1e9) => {
            cx.error(
                c.span(),
                format!("`{path}.capacity` must be above 0 (requests per second at 100% CPU)"),
            );
            d.capacity
        }
        (Some(c), None) => c.into_inner(),
        (None, Some(cost)) => vcpu * 1000.0 / cost.as_millis() as f64,
        (None, None) => d.capacity,
    };
    let service_time = duration_in(
        cx,
        t,
        "service_time",
        Duration::from_millis(1),
        Duration::from_secs(600),
    )
    .unwrap_or(d.service_time);
    let slo = duration_in(
        cx,
        t,
        "slo",
        Duration::from_millis(1),
        Duration::from_secs(3600),
    )
    .unwrap_or(d.slo);
    let startup = duration_in(cx, t, "startup", Duration::ZERO, Duration::from_secs(3600));
    let startup_spread = duration_in(
        cx,
        t,
        "startup_spread",
        Duration::ZERO,
        Duration::from_secs(3600),
    )
    .unwrap_or(d.startup_spread);
    let mut number =
        |cx: &mut Cx<'_>, key: &'static str, default: f64| match t.get::<Spanned<f64>>(cx, key) {
            Some(v) if *v.get_ref() >= 0.0 => v.into_inner(),
            Some(v) => {
                cx.error(v.span(), format!("`{path}.{key}` must not be negative"));
                default
            }
            None => default,
        };
    let price_per_hour = number(cx, "price_per_hour", d.price_per_hour);
    let crash_rate = number(cx, "crash_rate", d.crash_rate);
    let max_in_flight = int_in(cx, t, "max_in_flight", 1, 1_000_000_000).map(|n| n as u32);
    let seed = int_in(cx, t, "seed", 0, i64::MAX).map_or(d.seed, |n| n as u64);
    SimulationSpec {
        group: group.map(Spanned::into_inner),
        capacity,
        service_time,
        slo,
        startup,
        startup_spread,
        price_per_hour,
        crash_rate,
        max_in_flight,
        seed,
    }
}
