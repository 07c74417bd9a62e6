//! [`Authed`]: what every event handler gets.

use std::sync::Arc;

use serde::Serialize;
use sockgate_core::Session;
use sockgate_engine::io::{Ack, SioSocket};
use sockgate_engine::sio::Value;

use super::conn::SocketConn;
use crate::Gateway;

/// What the handshake attaches to an admitted socket: its session, and the
/// transport's place among the openings, whose long-polling binding (the
/// address that opened it) must last as long as the socket.
pub struct Attached {
    /// The session.
    pub session: Arc<Session>,
    /// The transport's place (see `crate::transports::openings`).
    pub ticket: Option<Arc<crate::transports::openings::Ticket>>,
}

/// The session of the socket an event came on. Built only for a socket
/// with a session the server is not ending (an ending socket has its
/// `session:end`; its events are dropped).
pub struct Authed {
    /// The session.
    pub session: Arc<Session>,
    /// The socket.
    pub socket: Arc<SioSocket>,
}

impl Authed {
    /// The session of `socket`, unless it has none or is ending.
    pub fn of(socket: &Arc<SioSocket>) -> Option<Self> {
        let session = socket.data::<Attached>()?.session.clone();
        if session.is_ending() {
            return None;
        }
        Some(Self {
            session,
            socket: socket.clone(),
        })
    }

    /// Spends one event of the session's budget. When over it, `ack` is
    /// answered `RATE_LIMITED` here and `None` comes back.
    pub fn spend(&self, gw: &Gateway, ack: Option<Ack>) -> Option<Option<Ack>> {
        match gw.node.allow_event(&self.session) {
            Ok(()) => Some(ack),
            Err(e) => {
                reply(ack, &e.to_ack());
                None
            }
        }
    }

    /// The socket as the core's connection.
    pub fn conn(&self) -> SocketConn {
        SocketConn::new(self.socket.clone())
    }
}

/// Answers `ack`, if the client asked for one, with `value`.
pub fn reply(ack: Option<Ack>, value: &impl Serialize) {
    if let Some(ack) = ack {
        let value = serde_json::to_value(value).expect("answers serialize");
        ack.send(vec![Value::from(value)]);
    }
}
