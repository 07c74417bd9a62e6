//! # sockgate-protocol
//!
//! The wire contract between sockgate and its clients, defined once: the
//! Socket.IO event names ([`events`]), the payloads of the server's own
//! events ([`payloads`]), sockgate's own client events as typed requests
//! and acks ([`requests`]), the publish every way in shares ([`publish`]),
//! the error codes with their retryable or terminal
//! class ([`codes`]) and the rules for room names ([`rooms`]). It depends on
//! serde and serde_json alone, so every other crate, and the TypeScript
//! SDK's checks, can take the contract from here.

#![warn(missing_docs)]

pub mod codes;
pub mod events;
pub mod payloads;
pub mod publish;
pub mod queue;
pub mod requests;
pub mod rooms;

pub use codes::{Class, ErrorCode};
