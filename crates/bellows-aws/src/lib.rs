//! The AWS face of bellows, without I/O: requests signed with SigV4 in AWS's own wire
//! protocols (Query for Auto Scaling, ELBv2 and STS, EC2's dialect, and CloudWatch's
//! AWS JSON 1.0, Query and Smithy RPC v2 CBOR) are verified and decoded into a
//! [`Call`], and a handler's [`Value`] or [`AwsError`] is encoded back in the caller's
//! protocol. The node does the socket and the state; this crate reads no clock (`now`
//! is passed in) and touches no file.

#![forbid(unsafe_code)]

pub mod arn;
pub mod cbor;
pub mod dynamodb;
mod error;
pub mod form;
mod json;
pub mod math;
pub mod protocol;
pub mod sigv4;
mod time;
pub mod value;
mod xml;

pub use error::AwsError;
pub use protocol::{Call, Endpoint, Protocol, Reply, Service, SessionSecret};
pub use sigv4::{Credential, Request};
pub use time::{format as format_time, parse as parse_time};
pub use value::{Input, Value};
