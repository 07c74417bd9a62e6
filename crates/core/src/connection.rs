//! What the core needs of a live connection, whatever carries it.
//!
//! The transport layer (Socket.IO today) implements [`Connection`] for its
//! sockets; the core never sees more than this. Tests implement it with a
//! recorder.

use std::sync::Arc;

use sockgate_protocol::codes::ErrorCode;

use crate::recovery::{Entry, Offset};

/// A live connection.
pub trait Connection: Send + Sync + 'static {
    /// Whether the transport still carries the connection.
    fn connected(&self) -> bool;
    /// Emits a server event to this connection.
    fn emit_value(&self, event: &str, data: &serde_json::Value);
    /// Puts the connection in a room of the transport layer, where room
    /// broadcasts reach it.
    fn join(&self, room: &str);
    /// Takes the connection out of a room of the transport layer.
    fn leave(&self, room: &str);
    /// Sends `session:end { code, message, reconnect }`, then closes the
    /// transport (retryable code: the client reconnects by itself) or
    /// disconnects (terminal code: it does not). Called once per session,
    /// by [`crate::Node`].
    fn end(&self, code: ErrorCode, message: &str);
    /// The id the transport layer gave the connection, kept when it is
    /// parked for recovery and given back to it then.
    fn transport_id(&self) -> String {
        String::new()
    }
    /// The transport connection it rides on, which several namespace
    /// sockets may share; `None` when it is its own.
    fn carrier(&self) -> Option<&str> {
        None
    }
    /// Whether another connection rides on its carrier: without one, it
    /// rides on nothing, and no session of its user needs a look.
    fn shares_carrier(&self) -> bool {
        self.carrier().is_some()
    }
    /// Takes the connection out of every room of the transport layer (a
    /// handshake that failed after it was admitted).
    fn leave_all(&self) {}
    /// Recovers a dropped connection's transport id (`old_id`) on this new
    /// one, before its client is told it is connected; `missed` goes out
    /// first, and live room messages at or before `through` are dropped.
    /// False when the transport cannot (the id is taken, or malformed).
    fn recover(&self, old_id: &str, missed: Vec<Entry>, through: Offset) -> bool {
        let _ = (old_id, missed, through);
        false
    }
}

/// A shared handle on a live connection.
pub type Conn = Arc<dyn Connection>;
