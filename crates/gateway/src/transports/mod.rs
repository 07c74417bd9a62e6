//! The transports of the Socket.IO path that are not authenticated yet.
//!
//! Closing one client's transport, so that the official client reconnects
//! by itself, is the engine's own ([`sockgate_engine::io::SioSocket::close_transport`]).

pub mod openings;
