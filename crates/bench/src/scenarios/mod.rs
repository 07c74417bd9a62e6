//! The scenarios. Each is an async function taking the [`Setup`] and its
//! config and returning a typed result; `result.report(..)` turns it into
//! a [`Report`] (table and JSON).
//!
//! | Scenario | Measures |
//! |---|---|
//! | [`connect`](mod@connect) | handshake-to-CONNECT latency, connections/s |
//! | [`hold`](mod@hold) | server memory per idle authenticated connection |
//! | [`reject`](mod@reject) | refusals/s of bad, expired and unsigned tokens; none may get in |
//! | [`echo`](mod@echo) | `echo` round trips with acks, pipelined: msgs/s and latency |
//! | [`fanout`](mod@fanout) | `POST /api/publish` to a room until every member has it |
//! | [`refresh`](mod@refresh) | in-band `auth:refresh`: refreshes/s and latency (sockgate only) |
//! | [`revoke`](mod@revoke) | `POST /api/revocations` until every affected socket got `session:end` (sockgate only) |
//! | [`queue`](mod@queue) | messages from a producer (the API, a queue sockgate consumes, the peer's redis-emitter) to every member: msgs/s and latency |
//! | [`reconnect`](mod@reconnect) | a server restart: how many clients come back, and how fast, with socket.io-client's backoff |

pub mod connect;
pub mod echo;
pub mod fanout;
pub mod hold;
pub mod queue;
pub mod reconnect;
pub mod refresh;
pub mod reject;
pub mod revoke;

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

#[allow(unused_imports)]
use crate::{Report, Setup};

pub use connect::{ConnectConfig, ConnectResult, connect};
pub use echo::{EchoConfig, EchoResult, echo};
pub use fanout::{FanoutConfig, FanoutResult, fanout};
pub use hold::{HoldConfig, HoldResult, hold};
pub use queue::{QueueConfig, QueueResult, queue};
pub use reconnect::{ReconnectConfig, ReconnectResult, reconnect};
pub use refresh::{RefreshConfig, RefreshResult, refresh};
pub use reject::{RejectConfig, RejectResult, reject};
pub use revoke::{RevokeConfig, RevokeResult, revoke};

/// Extra time, after the scenario's own deadline, for closing connections.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(10);

pub(crate) fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A rate per second; 0 when nothing was measured.
pub(crate) fn per_second(n: usize, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { n as f64 / s } else { 0.0 }
}
