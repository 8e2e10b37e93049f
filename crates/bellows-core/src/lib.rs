//! The sans-I/O core of bellows.
//!
//! Everything here is plain data and decisions: the stack model and its validation,
//! the auto scaling group's state machine, identifiers, durations and the event enum that
//! every view reads. Nothing in this crate reads the clock, touches a file, a socket or a
//! process: callers pass `now` and the inputs, and get back commands and events. That is
//! what lets the live node and the simulator share one brain.

#![forbid(unsafe_code)]

pub mod alarm;
pub mod duration;
pub mod event;
pub mod group;
pub mod ids;
pub mod investigate;
pub mod lb;
pub mod metrics;
pub mod policy;
pub mod records;
pub mod scaling;
pub mod schedule;
pub mod sim;
pub mod stack;
pub mod time;

pub use duration::Duration;
pub use time::Time;
