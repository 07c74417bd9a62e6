//! A Socket.IO socket of the engine as the core's [`Connection`].

use std::sync::Arc;

use sockgate_auth::ErrorCode;
use sockgate_core::{Connection, Transport};
use sockgate_engine::engine::Transport as EngineTransport;
use sockgate_engine::io::SioSocket;
use sockgate_engine::sio::Value;
use sockgate_protocol::events::server;
use sockgate_protocol::payloads::SessionEnd;

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

    /// `session:end` goes out first; the close follows it in the same
    /// outbox, so the client reads the reason before its transport closes
    /// (retryable: it reconnects) or its socket is disconnected (terminal:
    /// it does not).
    fn end(&self, code: ErrorCode, message: &str) {
        let socket = &self.socket;
        // Nothing more reaches it through its rooms.
        socket.leave_all();
        let end = serde_json::to_value(SessionEnd::new(code, message)).expect("payloads serialize");
        socket.emit(server::SESSION_END, vec![Value::from(end)]);
        if code.is_retryable() {
            socket.close_transport();
        } else {
            // The engine tells no one of a disconnect it was asked for.
            let transport = transport_of(socket.engine().transport());
            telemetry::connection(transport.as_str(), -1.0);
            socket.disconnect();
        }
    }
}

/// The core's name for an engine transport.
pub fn transport_of(t: EngineTransport) -> Transport {
    match t {
        EngineTransport::WebSocket => Transport::WebSocket,
        EngineTransport::Polling => Transport::Polling,
    }
}
