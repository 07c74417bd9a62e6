//! A Socket.IO socket as the core's [`Connection`], and the Socket.IO
//! server as the gateway's [`Broadcast`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::{SocketIo, TransportType};
use sockgate_auth::ErrorCode;
use sockgate_core::{BoxFuture, Connection, Transport};
use sockgate_protocol::events::server;
use sockgate_protocol::payloads::SessionEnd;

use crate::gateway::Broadcast;
use crate::transports::Transports;

/// How long an ending socket's `session:end` gets to be written before the
/// close.
const FLUSH_BEFORE_CLOSE: Duration = Duration::from_millis(50);

/// A Socket.IO socket as a [`Connection`].
pub struct SocketConn<A: Adapter> {
    socket: SocketRef<A>,
    transports: Arc<Transports>,
}

impl<A: Adapter> SocketConn<A> {
    /// `socket`, closed through `transports` when it must reconnect.
    pub fn new(socket: SocketRef<A>, transports: Arc<Transports>) -> Self {
        Self { socket, transports }
    }
}

impl<A: Adapter> Connection for SocketConn<A> {
    fn connected(&self) -> bool {
        let socket: &socketioxide::socket::Socket<A> = &self.socket;
        socket.connected()
    }

    fn emit_value(&self, event: &str, data: &serde_json::Value) {
        let _ = self.socket.emit(event, data);
    }

    fn join(&self, room: &str) {
        self.socket.join(room.to_owned());
    }

    fn leave(&self, room: &str) {
        self.socket.leave(room.to_owned());
    }

    fn end(&self, code: ErrorCode, message: &str) {
        let s = &self.socket;
        let reconnect = code.is_retryable();
        // Nothing more reaches it through its rooms.
        s.leave_all();
        if reconnect {
            self.transports.prepare_end(s);
        }
        let end = SessionEnd::new(code, message);
        if let Err(e) = s.emit(server::SESSION_END, &end) {
            tracing::warn!(error = %e, "session:end could not be sent");
        }
        // The close comes a moment later. Once socketioxide has removed a
        // socket, the next packet the client sends for it closes the whole
        // transport, and what was not yet written (this `session:end`) is
        // lost: a client still emitting would be cut off without a reason.
        // Meanwhile its events are dropped (see `Session::is_ending`).
        let socket = s.clone();
        let transports = self.transports.clone();
        tokio::spawn(async move {
            tokio::time::sleep(FLUSH_BEFORE_CLOSE).await;
            if reconnect {
                transports.close(&socket);
            } else {
                let _ = socket.disconnect();
            }
        });
    }
}

/// The core's name for a Socket.IO transport.
pub fn transport_of(t: TransportType) -> Transport {
    match t {
        TransportType::Websocket => Transport::WebSocket,
        TransportType::Polling => Transport::Polling,
    }
}

impl<A: Adapter> Broadcast for SocketIo<A> {
    fn broadcast<'a>(
        &'a self,
        rooms: Vec<String>,
        event: &'a str,
        data: Option<&'a RawValue>,
    ) -> BoxFuture<'a, usize> {
        Box::pin(async move {
            let delivered = self.local().to(rooms.clone()).sockets().len();
            if let Err(e) = self.to(rooms).emit(event, &data).await {
                tracing::warn!(error = %e, "publish to other nodes failed");
            }
            delivered
        })
    }
}
