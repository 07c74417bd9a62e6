//! [`Authed`]: the extractor of every event handler.

use std::convert::Infallible;
use std::sync::Arc;

use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::handler::{FromMessageParts, Value};
use socketioxide::socket::Socket;
use sockgate_core::Session;

use super::conn::SocketConn;
use crate::Gateway;

/// The session of the socket an event came on. A handler taking it runs
/// only for a socket with a session the server is not ending (an ending
/// socket has its `session:end`; its events are dropped).
pub struct Authed<A: Adapter> {
    /// The session.
    pub session: Arc<Session>,
    /// The socket.
    pub socket: SocketRef<A>,
}

/// The socket has no live session.
#[derive(Debug, thiserror::Error)]
#[error("the socket has no live session")]
pub struct NoSession;

impl<A: Adapter> FromMessageParts<A> for Authed<A> {
    type Error = NoSession;

    fn from_message_parts(
        s: &Arc<Socket<A>>,
        v: &mut Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, NoSession> {
        let socket = SocketRef::<A>::from_message_parts(s, v, ack_id)
            .unwrap_or_else(|e: Infallible| match e {});
        let session = socket.extensions.get::<Arc<Session>>().ok_or(NoSession)?;
        if session.is_ending() {
            return Err(NoSession);
        }
        Ok(Self { session, socket })
    }
}

impl<A: Adapter> Authed<A> {
    /// Spends one event of the session's budget. When over it, `ack` is
    /// answered `RATE_LIMITED` here and `None` comes back.
    pub fn spend(&self, gw: &Gateway, ack: AckSender<A>) -> Option<AckSender<A>> {
        match gw.node.allow_event(&self.session) {
            Ok(()) => Some(ack),
            Err(e) => {
                let _ = ack.send(&e.to_ack());
                None
            }
        }
    }

    /// The socket as the core's connection.
    pub fn conn(&self, gw: &Gateway) -> SocketConn<A> {
        SocketConn::new(self.socket.clone(), gw.transports.clone())
    }
}
