//! The transports of the Socket.IO path that are not authenticated yet.
//!
//! Closing one client's transport, so that the official client reconnects
//! by itself, is the engine's own ([`sockgate_engine::io::SioSocket::close_transport`]).

pub mod openings;

/// What one connection may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportLimits {
    /// Most bytes waiting to be sent to it (`SOCKGATE_MAX_OUTBOX`).
    pub max_outbox: usize,
    /// Longest the fragments of one WebSocket message may take
    /// (`SOCKGATE_WS_FRAGMENT_TIMEOUT`).
    pub fragment_timeout: std::time::Duration,
    /// Longest a long-polling body may take (`SOCKGATE_BODY_TIMEOUT`, which
    /// the door applies to every request body too).
    pub body_timeout: std::time::Duration,
}

impl Default for TransportLimits {
    fn default() -> Self {
        Self {
            max_outbox: 4 << 20,
            fragment_timeout: std::time::Duration::from_secs(10),
            body_timeout: std::time::Duration::from_secs(30),
        }
    }
}
