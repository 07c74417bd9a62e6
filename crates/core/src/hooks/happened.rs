//! What happens to sessions, users and rooms on a node, told to a
//! [`Watcher`] as it happens: the gateway's lifecycle webhooks
//! (`outbound/lifecycle.rs`) batch, delay and deliver them.
//!
//! The node tells each one once for the cluster: a session that starts or
//! ends (where it happens), a user's first and last session on any node
//! (`user.online`, `user.offline`), a room's first and last member
//! (`room.occupied`, `room.vacated`) and a user's first and last socket in
//! a room (`member.joined`, `member.left`), as the
//! [`Census`](crate::backend::Census) counts them. Users' own rooms are
//! left out of the room events: every socket is in its own.
//!
//! A watcher must not block: it is called from the node's own paths.

use serde::{Deserialize, Serialize};

/// Something that happened, as the webhook's events name it (`type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum Happened {
    /// A session was admitted (`recovered`: it took back a dropped one's
    /// id, rooms and missed messages).
    #[serde(rename = "session.started")]
    SessionStarted {
        /// The user.
        user_id: String,
        /// The session's public id.
        session_id: String,
        /// `websocket` or `polling`.
        transport: String,
        /// The client's address.
        remote_addr: Option<String>,
        /// Whether it recovered a dropped session.
        recovered: bool,
    },
    /// A session ended: `code` is its `session:end` code, or how its
    /// connection closed (`CLIENT_CLOSED`, `TRANSPORT_LOST`).
    #[serde(rename = "session.ended")]
    SessionEnded {
        /// The user.
        user_id: String,
        /// The session's public id.
        session_id: String,
        /// Why.
        code: String,
        /// Whether the client reconnects by itself.
        reconnect: bool,
        /// How long it lasted.
        duration_ms: u64,
    },
    /// The user's first session, on any node.
    #[serde(rename = "user.online")]
    UserOnline {
        /// The user.
        user_id: String,
    },
    /// The user's last session, on any node, ended (and stayed gone for
    /// the offline delay).
    #[serde(rename = "user.offline")]
    UserOffline {
        /// The user.
        user_id: String,
    },
    /// The room's first member, on any node.
    #[serde(rename = "room.occupied")]
    RoomOccupied {
        /// The room.
        room: String,
    },
    /// The room's last member, on any node, left (and none came for the
    /// offline delay).
    #[serde(rename = "room.vacated")]
    RoomVacated {
        /// The room.
        room: String,
    },
    /// A user's first socket joined the room.
    #[serde(rename = "member.joined")]
    MemberJoined {
        /// The room.
        room: String,
        /// The user.
        user_id: String,
    },
    /// A user's last socket left the room.
    #[serde(rename = "member.left")]
    MemberLeft {
        /// The room.
        room: String,
        /// The user.
        user_id: String,
    },
}

impl Happened {
    /// The event's `type`, as `SOCKGATE_WEBHOOK_EVENTS` names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Happened::SessionStarted { .. } => "session.started",
            Happened::SessionEnded { .. } => "session.ended",
            Happened::UserOnline { .. } => "user.online",
            Happened::UserOffline { .. } => "user.offline",
            Happened::RoomOccupied { .. } => "room.occupied",
            Happened::RoomVacated { .. } => "room.vacated",
            Happened::MemberJoined { .. } => "member.joined",
            Happened::MemberLeft { .. } => "member.left",
        }
    }
}

/// Every event type, as `SOCKGATE_WEBHOOK_EVENTS` names them.
pub const KINDS: [&str; 8] = [
    "session.started",
    "session.ended",
    "user.online",
    "user.offline",
    "room.occupied",
    "room.vacated",
    "member.joined",
    "member.left",
];

/// Hears what happens on a node.
pub trait Watcher: Send + Sync + 'static {
    /// `event` happened; must not block.
    fn happened(&self, event: Happened);
}

/// Nobody listens.
pub struct NoWatcher;

impl Watcher for NoWatcher {
    fn happened(&self, _event: Happened) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_written_as_the_webhook_names_them() {
        let ended = Happened::SessionEnded {
            user_id: "u".into(),
            session_id: "s".into(),
            code: "CLIENT_CLOSED".into(),
            reconnect: false,
            duration_ms: 12,
        };
        assert_eq!(
            serde_json::to_value(&ended).unwrap(),
            serde_json::json!({ "type": "session.ended", "userId": "u", "sessionId": "s",
                "code": "CLIENT_CLOSED", "reconnect": false, "durationMs": 12 })
        );
        let joined = Happened::MemberJoined {
            room: "r".into(),
            user_id: "u".into(),
        };
        assert_eq!(joined.kind(), "member.joined");
        assert!(KINDS.contains(&joined.kind()));
        assert_eq!(
            serde_json::to_value(&joined).unwrap(),
            serde_json::json!({ "type": "member.joined", "room": "r", "userId": "u" })
        );
    }
}
