//! The payloads of the server's own events, and the sentences that go with
//! the ends of sessions.

use serde::Serialize;

use crate::codes::ErrorCode;

/// `session:end { code, message, reconnect }`. `reconnect` is the code's
/// class: with `true` the transport closes next and socket.io-client comes
/// back by itself; with `false` a Socket.IO disconnect follows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SessionEnd<'a> {
    /// Why the session ends.
    pub code: ErrorCode,
    /// A sentence for humans; it may change between releases.
    pub message: &'a str,
    /// Whether the client should come back by itself.
    pub reconnect: bool,
}

impl<'a> SessionEnd<'a> {
    /// The end of a session with `code`, its class deciding `reconnect`.
    pub fn new(code: ErrorCode, message: &'a str) -> Self {
        Self {
            code,
            message,
            reconnect: code.is_retryable(),
        }
    }
}

/// The sentence of `session:end` for the ways the server ends a session.
pub fn end_reason(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Kicked => "session ended by an operator",
        ErrorCode::SessionEvicted => "a newer session of this user replaced this one",
        ErrorCode::TokenRevoked => "token revoked",
        ErrorCode::SessionExpired => "token expired",
        ErrorCode::ServerShutdown => "the server is shutting down; reconnect",
        ErrorCode::RateLimited => "too many events",
        _ => "session ended",
    }
}

/// `auth:expiring { expiresAt, secondsLeft }`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Expiring {
    /// The token's `exp`, Unix seconds.
    pub expires_at: u64,
    /// Seconds from now to `exp`.
    pub seconds_left: u64,
}

/// `room:joined { room, userId }` and `room:left { room, userId }`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoomPresence<'a> {
    /// The room.
    pub room: &'a str,
    /// The user who came or went.
    pub user_id: &'a str,
}

/// `room:revoked { room }`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RoomRevoked<'a> {
    /// The room the socket has left.
    pub room: &'a str,
}

pub use crate::requests::TicketAck;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_their_wire_names() {
        let end = SessionEnd::new(
            ErrorCode::ServerShutdown,
            end_reason(ErrorCode::ServerShutdown),
        );
        assert_eq!(
            serde_json::to_value(&end).unwrap(),
            serde_json::json!({ "code": "SERVER_SHUTDOWN", "message": "the server is shutting down; reconnect", "reconnect": true })
        );
        assert!(!SessionEnd::new(ErrorCode::Kicked, "x").reconnect);
        let expiring = Expiring {
            expires_at: 10,
            seconds_left: 3,
        };
        assert_eq!(
            serde_json::to_value(&expiring).unwrap(),
            serde_json::json!({ "expiresAt": 10, "secondsLeft": 3 })
        );
    }
}
