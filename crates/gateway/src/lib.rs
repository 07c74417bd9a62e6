//! # sockgate
//!
//! An authenticated Socket.IO gateway: the official `socket.io-client`
//! connects with the JWT its backend issued (`io(url, { auth: { token } })`)
//! and sockgate verifies it on the handshake, binds the connection to that
//! user, and refuses everyone else with a stable error code.
//!
//! This crate is the product: it wires the pieces together. The rules live
//! in `sockgate-core` (the [`Node`]), token
//! verification in `sockgate-auth`, the wire contract in
//! `sockgate-protocol`. Read top-down (the map is `docs/architecture.md`):
//! - [`server`]: [`app`], [`run`] and [`serve_until`]: the one place that
//!   names the concrete backends;
//! - [`assemble`]: the one step from a [`Config`] (data) to the live parts
//!   of a gateway (the verifier, the app's backend, policy, namespaces);
//! - [`gateway`]: the [`Gateway`], a node with the transport-side state;
//! - [`sio`]: the Socket.IO layer, on `sockgate-engine`: the handshake,
//!   the connection adapter, `Authed`, one handler file per event family;
//! - [`http`]: the admin API, the dashboard, `/auth/refresh`, the door;
//! - [`transports`]: the transports not yet authenticated;
//! - [`cluster`]: Redis as the node's presence, directory and control bus,
//!   and the channel of room messages between nodes;
//! - [`store`]: SQLite as the revocation store and a single node's
//!   recovery history;
//! - [`outbound`]: JWKS, the authorization webhook and the app's backend;
//! - [`consume`]: the app's queues (Redis Streams, NATS JetStream,
//!   RabbitMQ, a PostgreSQL outbox) as one more way in to publishing;
//! - [`telemetry`]: the metrics exporter and the logs;
//! - [`config`]: settings from file, environment and flags, as data;
//! - [`cli`]: the `sockgate` command line.
//!
//! `sio` and `http` never import each other.

#![warn(missing_docs)]

pub mod assemble;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod consume;
pub mod gateway;
pub mod http;
pub mod outbound;
pub mod server;
pub mod sio;
pub mod store;
pub mod telemetry;
pub mod transports;

pub use config::{Config, Settings};
pub use gateway::Gateway;
pub use server::{app, run, serve_until};
pub use sockgate_core::limits::Limits;
pub use sockgate_core::{Lifecycle, Node};
