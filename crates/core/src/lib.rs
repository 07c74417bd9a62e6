//! # sockgate-core
//!
//! The rules of sockgate, with no sockets, no HTTP, no Redis and no SQL:
//! a [`Node`] holds the sessions of one gateway process and everything
//! that happens to them (admission, limits, refresh, expiry, revocation,
//! eviction, kicks, rooms), over backend traits whose in-memory
//! implementations are the defaults.
//!
//! Read top-down:
//! - [`node`]: the [`Node`] and its operations, the only way in;
//! - [`session`]: a session, its id and what the admin API shows of it;
//! - `registry`: this node's sessions, by id and by user;
//! - [`connection`]: what the core needs of a live connection;
//! - `deadlines`: one task runs every session's expiry clock;
//! - [`clock`]: the time the core reads, injectable for tests;
//! - [`namespace`]: the namespaces one connection multiplexes, each with
//!   its own credentials, claims, room rules and room options;
//! - [`rooms`]: room names and this node's room index;
//! - [`room_options`]: what a room does (`[[room_options]]`): client
//!   publishes, its member list, its presence events, recovery;
//! - [`hooks`]: the app's backend, which answers the client events
//!   sockgate does not handle itself;
//! - `publish`: a publish request, checked the same for the admin API
//!   and the app's answers;
//! - `ordering`: one socket's calls to the app in order, and a user's
//!   calls in flight;
//! - [`policy`]: who may join, publish to and see the members of a room;
//! - [`limits`]: size limits and abuse limits;
//! - [`origins`]: which browser origins may connect;
//! - [`revocation`]: the revocation index over its store;
//! - [`tickets`]: renewing a cookie session over HTTP;
//! - [`recovery`]: parking a dropped session and giving it back, with the
//!   room messages it missed;
//! - [`backend`]: broker, presence, directory, control and history, with
//!   their in-memory implementations;
//! - [`stats`] and [`telemetry`]: figures for the dashboard and metrics.
//!
//! The gateway crate puts a transport in front (Socket.IO), an HTTP API
//! beside it, and Redis and SQLite behind the traits.

#![warn(missing_docs)]

pub mod backend;
pub mod clock;
pub mod connection;
pub(crate) mod deadlines;
pub mod hooks;
pub mod idempotency;
pub mod limits;
pub mod namespace;
pub mod node;
pub(crate) mod ordering;
pub mod origins;
pub mod policy;
pub(crate) mod publish;
pub mod recovery;
pub(crate) mod registry;
pub mod revocation;
pub mod room_options;
pub mod rooms;
pub mod session;
pub mod stats;
pub mod telemetry;
pub mod tickets;

pub use backend::BoxFuture;
pub use clock::{Clock, SharedClock, SystemClock, TokioClock};
pub use connection::{Conn, Connection};
pub use node::{
    Accepted, Denied, Gone, Handshake, Lifecycle, Node, Restored, Resumed, Revoked, RoomMessage,
};
pub use revocation::{RevocationStore, Revocations, StoreError};
pub use session::{Origin, Session, SessionId, SessionInfo, Transport};
