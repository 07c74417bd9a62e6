//! What the node tells its [`Watcher`](crate::hooks::happened::Watcher):
//! sessions that start and end, a user's first and last session here, a
//! room's first and last member here, a user's first and last socket in a
//! room. Each is told once, where it happens.

use crate::hooks::happened::Happened;

/// How a connection went, when the server did not end it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// The client closed it (a closed tab, `socket.disconnect()`).
    ClientClosed,
    /// The network failed (a transport error, a missed heartbeat): the
    /// client reconnects by itself.
    TransportLost,
    /// The handshake failed after the session was admitted (its rooms or
    /// its recovery could not be set up).
    HandshakeFailed,
}

impl Gone {
    /// The `code` of its `session.ended`.
    pub const fn code(self) -> &'static str {
        match self {
            Gone::ClientClosed => "CLIENT_CLOSED",
            Gone::TransportLost => "TRANSPORT_LOST",
            Gone::HandshakeFailed => "HANDSHAKE_FAILED",
        }
    }
}
use crate::session::Session;

use super::Node;

impl Node {
    /// `session` was admitted: `session.started`, and `user.online` for
    /// the user's first session here.
    pub(crate) fn tell_started(&self, session: &Session) {
        if !self.watching {
            return;
        }
        self.watcher.happened(Happened::SessionStarted {
            user_id: session.user_id.clone(),
            session_id: session.id.to_string(),
            transport: session.transport.as_str().to_owned(),
            remote_addr: session.remote_addr.map(|a| a.to_string()),
            recovered: session.resumed,
        });
        if self.sessions.of_user(&session.user_id).len() == 1 {
            self.watcher.happened(Happened::UserOnline {
                user_id: session.user_id.clone(),
            });
        }
    }

    /// `session` left the registry with `code`: `session.ended`, and
    /// `user.offline` when it was the user's last here.
    pub(crate) fn tell_ended(&self, session: &Session, code: &str, reconnect: bool) {
        if !self.watching {
            return;
        }
        let connected_ms = session.connected_at.saturating_mul(1000);
        self.watcher.happened(Happened::SessionEnded {
            user_id: session.user_id.clone(),
            session_id: session.id.to_string(),
            code: code.to_owned(),
            reconnect,
            duration_ms: self.clock.now_ms().saturating_sub(connected_ms),
        });
        if self.sessions.of_user(&session.user_id).is_empty() {
            self.watcher.happened(Happened::UserOffline {
                user_id: session.user_id.clone(),
            });
        }
    }

    /// `session`'s user's first socket here entered `room`.
    pub(crate) fn tell_arrived(&self, room: &str, session: &Session) {
        if self.user_room.is_user_room(room) {
            return;
        }
        self.note_presence(room, session, true);
        if !self.watching {
            return;
        }
        let user = session.user_id.as_str();
        if self.rooms.count(room) == 1 {
            self.watcher.happened(Happened::RoomOccupied {
                room: room.to_owned(),
            });
        }
        self.watcher.happened(Happened::MemberJoined {
            room: room.to_owned(),
            user_id: user.to_owned(),
        });
    }

    /// `session`'s user's last socket here left `room`.
    pub(crate) fn tell_left(&self, room: &str, session: &Session) {
        if self.user_room.is_user_room(room) {
            return;
        }
        self.note_presence(room, session, false);
        if !self.watching {
            return;
        }
        let user = session.user_id.as_str();
        self.watcher.happened(Happened::MemberLeft {
            room: room.to_owned(),
            user_id: user.to_owned(),
        });
        if self.rooms.count(room) == 0 {
            self.watcher.happened(Happened::RoomVacated {
                room: room.to_owned(),
            });
        }
    }
}
