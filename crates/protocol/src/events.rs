//! Every event name on the wire. The TypeScript SDK's `CLIENT_EVENTS` and
//! `SERVER_EVENTS` (`clients/js/src/protocol.ts`) hold the same names; a
//! test checks them.

/// Events clients emit; each is answered with an ack.
pub mod client {
    /// `auth:whoami` → `{ userId, sessionId, expiresAt, claims }`.
    pub const WHOAMI: &str = "auth:whoami";
    /// `auth:refresh { token }` → `{ ok: true, expiresAt }` or `{ ok: false, code, message }`.
    pub const REFRESH: &str = "auth:refresh";
    /// `auth:ticket` → `{ ok: true, ticket, expiresIn }`, for `POST /auth/refresh`
    /// (sessions opened by a Next-Auth cookie).
    pub const TICKET: &str = "auth:ticket";
    /// `room:join { room }`.
    pub const ROOM_JOIN: &str = "room:join";
    /// `room:leave { room }`.
    pub const ROOM_LEAVE: &str = "room:leave";
    /// `room:publish { room, data }`.
    pub const ROOM_PUBLISH: &str = "room:publish";
    /// `room:members { room }`.
    pub const ROOM_MEMBERS: &str = "room:members";
    /// `room:history { room, since?, limit? }`: the room's kept messages.
    pub const ROOM_HISTORY: &str = "room:history";
    /// `echo`: the payload back, unchanged (tests and benchmarks).
    pub const ECHO: &str = "echo";

    /// Every client event.
    pub const ALL: [&str; 9] = [
        WHOAMI,
        REFRESH,
        TICKET,
        ROOM_JOIN,
        ROOM_LEAVE,
        ROOM_PUBLISH,
        ROOM_MEMBERS,
        ROOM_HISTORY,
        ECHO,
    ];
}

/// Events the server emits.
pub mod server {
    /// `auth:expiring { expiresAt, secondsLeft }`: time to refresh.
    pub const EXPIRING: &str = "auth:expiring";
    /// `room:message { id, room, from, data, ts }`.
    pub const ROOM_MESSAGE: &str = "room:message";
    /// `room:revoked { room }`: a refreshed token no longer allows the room.
    pub const ROOM_REVOKED: &str = "room:revoked";
    /// `session:end { code, message, reconnect }`: the server ends the session.
    pub const SESSION_END: &str = "session:end";
    /// `room:joined { room, userId }`: a user's first socket joined a room
    /// with presence events.
    pub const ROOM_JOINED: &str = "room:joined";
    /// `room:left { room, userId }`: a user's last socket left it, and did
    /// not come back within the delay.
    pub const ROOM_LEFT: &str = "room:left";

    /// Every server event.
    pub const ALL: [&str; 6] = [
        EXPIRING,
        ROOM_MESSAGE,
        ROOM_REVOKED,
        SESSION_END,
        ROOM_JOINED,
        ROOM_LEFT,
    ];
}

/// Prefixes the backend may not publish under (`/api/publish`): the
/// gateway's own events live there.
pub const RESERVED_PREFIXES: [&str; 4] = ["auth:", "session:", "room:", "sockgate:"];

/// Socket.IO's own event names, which no one may publish either.
pub const SOCKET_IO_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];
