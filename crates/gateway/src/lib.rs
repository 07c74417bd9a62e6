//! # sockgate
//!
//! An authenticated Socket.IO gateway: the official `socket.io-client`
//! connects with the JWT its backend issued (`io(url, { auth: { token } })`)
//! and sockgate verifies it on the handshake, binds the connection to that
//! user, and refuses everyone else with a stable error code.
//!
//! Read top-down:
//! - [`config`]: settings from file, environment and flags.
//! - [`server`]: the axum + socketioxide application and its lifecycle.
//! - [`admission`]: the client address and the limits at a transport's opening.
//! - [`origins`]: which browser origins may connect.
//! - [`transports`]: closing one client's transport, so that it reconnects.
//! - [`gateway`]: the core: authenticate, admit, refresh, expire, revoke, kick.
//! - `handshake`: the connect middleware that authenticates.
//! - `events`: the client events every socket answers.
//! - [`cookie_refresh`]: renewing a session a Next-Auth cookie opened.
//! - [`sessions`]: sessions, the registry, and how a server ends one.
//! - [`deadlines`]: the one task that runs every connection's expiry clock.
//! - [`revocation`]: revoked tokens and users, in memory and on disk.
//! - [`rooms`]: room names, membership, presence and the room events.
//! - [`policy`]: who may join, publish to and see the members of a room.
//! - [`api`]: the admin HTTP API.
//! - [`stats`]: the figures of `/api/stats` and the dashboard.
//! - [`dashboard`]: the live dashboard page, its login and its event stream.
//! - [`token`]: minting development tokens.
//!
//! Token verification itself lives in the `sockgate-auth` crate.

pub mod abuse;
pub mod admission;
pub mod api;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod cookie_refresh;
pub mod dashboard;
pub mod deadlines;
mod events;
pub mod gateway;
mod handshake;
pub mod jwks_http;
pub mod logging;
pub mod origins;
pub mod policy;
pub mod proxies;
pub mod revocation;
pub mod rooms;
pub mod server;
pub mod sessions;
pub mod stats;
pub mod telemetry;
pub mod token;
pub mod transports;

pub use config::{Config, Settings};
pub use gateway::{Gateway, Lifecycle, Limits};
pub use server::{app, run, serve_until};
