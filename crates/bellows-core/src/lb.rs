//! Load balancer logic without I/O: rule matching, target selection, target health.
//! The proxy (bellows-proxy) does the sockets and calls in here for every decision.

pub mod anomaly;
pub mod cidr;
pub mod health;
pub mod pattern;
pub mod rules;
pub mod select;
