//! A Socket.IO socket of the engine as the core's [`Connection`].

use std::sync::Arc;

use sockgate_auth::ErrorCode;
use sockgate_core::recovery::{Entry, Offset};
use sockgate_core::{Connection, Transport};
use sockgate_engine::engine::Transport as EngineTransport;
use sockgate_engine::io::{Missed, SioSocket};
use sockgate_engine::sio::Value;
use sockgate_protocol::events::server;
use sockgate_protocol::payloads::SessionEnd;

use crate::gateway::engine_offset;
use crate::telemetry;

/// An engine socket as a [`Connection`].
pub struct SocketConn {
    socket: Arc<SioSocket>,
}

impl SocketConn {
    /// The connection of `socket`.
    pub fn new(socket: Arc<SioSocket>) -> Self {
        Self { socket }
    }
}

impl Connection for SocketConn {
    fn connected(&self) -> bool {
        self.socket.connected()
    }

    fn emit_value(&self, event: &str, data: &serde_json::Value) {
        self.socket.emit(event, vec![Value::from(data.clone())]);
    }

    fn join(&self, room: &str) {
        self.socket.join(room);
    }

    fn leave(&self, room: &str) {
        self.socket.leave(room);
    }

    fn transport_id(&self) -> String {
        self.socket.id().to_owned()
    }

    fn leave_all(&self) {
        self.socket.leave_all();
    }

    fn carrier(&self) -> Option<&str> {
        Some(self.socket.engine().sid_str())
    }

    fn shares_carrier(&self) -> bool {
        self.socket.shares_transport()
    }

    fn recover(&self, old_id: &str, missed: Vec<Entry>, through: Offset) -> bool {
        let missed = missed.into_iter().map(|e| Missed {
            offset: engine_offset(e.offset),
            event: e.message.event,
            args: vec![
                serde_json::from_str::<serde_json::Value>(e.message.data.get())
                    .unwrap_or_default()
                    .into(),
            ],
        });
        self.socket
            .recover(old_id, missed.collect(), engine_offset(through))
    }

    /// `session:end` goes out first; the close follows it a moment later:
    /// the transport's (retryable: the client reconnects) or the socket's
    /// (terminal: it does not). The moment lets the answers of the
    /// socket's events still in flight (a refresh racing the revocation
    /// that ends the session, say) reach the client before it is
    /// disconnected; meanwhile its new events are dropped (see
    /// `Session::is_ending`).
    fn end(&self, code: ErrorCode, message: &str) {
        let socket = self.socket.clone();
        // Nothing more reaches it through its rooms.
        socket.leave_all();
        let end = serde_json::to_value(SessionEnd::new(code, message)).expect("payloads serialize");
        socket.emit(server::SESSION_END, vec![Value::from(end)]);
        tokio::spawn(async move {
            tokio::time::sleep(FLUSH_BEFORE_CLOSE).await;
            if code.is_retryable() {
                socket.close_transport();
            } else {
                // The engine tells no one of a disconnect it was asked for.
                let transport = transport_of(socket.engine().transport());
                telemetry::connection(transport.as_str(), -1.0);
                socket.disconnect();
            }
        });
    }
}

/// How long the answers in flight get before an ending socket is closed.
const FLUSH_BEFORE_CLOSE: std::time::Duration = std::time::Duration::from_millis(50);

/// The core's name for an engine transport.
pub fn transport_of(t: EngineTransport) -> Transport {
    match t {
        EngineTransport::WebSocket => Transport::WebSocket,
        EngineTransport::Polling => Transport::Polling,
    }
}
