//! The stable error codes, and whether a client comes back after each.
//!
//! The code is the contract with clients: `connect_error` messages, refresh
//! acks, `session:end` events and admin API errors all carry it. The human
//! sentence after it may change between releases; the code never does.
//! Every code is documented in `docs/errors.md`, and the TypeScript SDK
//! carries the same list (`clients/js/src/protocol.ts`); tests check both.

use std::fmt;

/// A stable, machine-readable reason for refusing a token or a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No token was found in any accepted place.
    AuthRequired,
    /// Malformed, bad signature, wrong algorithm, unknown `kid`, oversized,
    /// a `crit` header, or a handshake payload of the wrong shape.
    TokenInvalid,
    /// The token's `exp` is in the past (beyond the configured leeway).
    TokenExpired,
    /// The token's `nbf` or `iat` is in the future (beyond the configured leeway).
    TokenNotYetValid,
    /// Issuer, audience, a required claim or the user claim is wrong or
    /// missing, or the user id is over 256 bytes or holds whitespace or
    /// control characters.
    ClaimsInvalid,
    /// The keys needed to check the token could not be obtained.
    AuthUnavailable,
    /// The token (by `jti`) or every token of its user issued before a time
    /// was revoked.
    TokenRevoked,
    /// A refreshed token names another user than the connection's.
    SubjectMismatch,
    /// A refreshed token does not expire later than the one in force.
    TokenNotNewer,
    /// The user already has the maximum number of sessions (policy `reject`).
    SessionLimit,
    /// `session:end`: the token expired on an open connection.
    SessionExpired,
    /// `session:end`: a newer session of the same user took this one's place
    /// (policy `evict-oldest`).
    SessionEvicted,
    /// `session:end`: an operator ended the session through the admin API.
    Kicked,
    /// Admin API: missing or wrong API key.
    Unauthorized,
    /// Admin API: malformed JSON, wrong field types or values.
    InvalidRequest,
    /// A body or payload over the configured size limit.
    PayloadTooLarge,
    /// Admin API: no such session.
    NotFound,
    /// Something failed inside sockgate (for example the revocation store).
    Internal,
    /// The room action is not allowed for this user.
    Forbidden,
    /// A room name that is empty, too long, or has whitespace or control characters.
    RoomInvalid,
    /// The socket is already in the maximum number of rooms.
    RoomLimit,
    /// Too many handshakes from one address, events from one socket, or room
    /// authorization webhook calls from one user.
    RateLimited,
    /// The gateway holds its maximum number of connections.
    ConnectionLimit,
    /// The handshake's `Origin` is not in `SOCKGATE_ALLOWED_ORIGINS`.
    OriginForbidden,
    /// `session:end`: the server is shutting down; reconnect (elsewhere).
    ServerShutdown,
    /// No one handles the client event: sockgate does not, and no route of
    /// the event proxy matches it.
    UnknownEvent,
    /// The app's backend did not answer the event in time.
    BackendTimeout,
    /// The app's backend could not be reached, answered a 5xx, or failed so
    /// often that calls are held back for a while.
    BackendUnavailable,
    /// The app's backend answered something that is not a reply.
    BackendError,
    /// `session:end`: the app's backend ended the session.
    EndedByApp,
    /// The token is valid but its claims do not open this namespace (its
    /// `claims` in `[[namespaces]]`).
    NamespaceForbidden,
}

impl ErrorCode {
    /// Every code, in documentation order.
    pub const ALL: [ErrorCode; 31] = [
        ErrorCode::AuthRequired,
        ErrorCode::TokenInvalid,
        ErrorCode::TokenExpired,
        ErrorCode::TokenNotYetValid,
        ErrorCode::ClaimsInvalid,
        ErrorCode::AuthUnavailable,
        ErrorCode::TokenRevoked,
        ErrorCode::SubjectMismatch,
        ErrorCode::TokenNotNewer,
        ErrorCode::SessionLimit,
        ErrorCode::SessionExpired,
        ErrorCode::SessionEvicted,
        ErrorCode::Kicked,
        ErrorCode::Unauthorized,
        ErrorCode::InvalidRequest,
        ErrorCode::PayloadTooLarge,
        ErrorCode::NotFound,
        ErrorCode::Internal,
        ErrorCode::Forbidden,
        ErrorCode::RoomInvalid,
        ErrorCode::RoomLimit,
        ErrorCode::RateLimited,
        ErrorCode::ConnectionLimit,
        ErrorCode::OriginForbidden,
        ErrorCode::ServerShutdown,
        ErrorCode::UnknownEvent,
        ErrorCode::BackendTimeout,
        ErrorCode::BackendUnavailable,
        ErrorCode::BackendError,
        ErrorCode::EndedByApp,
        ErrorCode::NamespaceForbidden,
    ];

    /// Whether a client refused or ended with this code should come back by
    /// itself. The one place this is decided: `session:end` carries it as
    /// `reconnect`, the server turns a retryable refusal into one the
    /// official client retries (an HTTP 429/503 or a closed transport), and a
    /// retryable end into a closed transport rather than a Socket.IO
    /// disconnect. Shown in `docs/errors.md` (checked by a test).
    pub const fn class(self) -> Class {
        match self {
            // The same client succeeds later without changing anything.
            ErrorCode::AuthUnavailable
            | ErrorCode::RateLimited
            | ErrorCode::ConnectionLimit
            | ErrorCode::ServerShutdown
            | ErrorCode::Internal
            | ErrorCode::BackendTimeout
            | ErrorCode::BackendUnavailable
            // The connection outlived its token. Reconnecting presents
            // whatever the client's `auth` callback gives now: a fresh token
            // gets back in, the old one is refused with `TOKEN_EXPIRED`,
            // which is terminal, so nothing loops.
            | ErrorCode::SessionExpired => Class::Retryable,
            // `TOKEN_EXPIRED` at the handshake is terminal: the same token
            // never succeeds, and a client with a token source asks it once
            // more before counting a failure.
            _ => Class::Terminal,
        }
    }

    /// `self.class() == Class::Retryable`.
    pub const fn is_retryable(self) -> bool {
        matches!(self.class(), Class::Retryable)
    }

    /// The wire form, e.g. `TOKEN_EXPIRED`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AuthRequired => "AUTH_REQUIRED",
            ErrorCode::TokenInvalid => "TOKEN_INVALID",
            ErrorCode::TokenExpired => "TOKEN_EXPIRED",
            ErrorCode::TokenNotYetValid => "TOKEN_NOT_YET_VALID",
            ErrorCode::ClaimsInvalid => "CLAIMS_INVALID",
            ErrorCode::AuthUnavailable => "AUTH_UNAVAILABLE",
            ErrorCode::TokenRevoked => "TOKEN_REVOKED",
            ErrorCode::SubjectMismatch => "SUBJECT_MISMATCH",
            ErrorCode::TokenNotNewer => "TOKEN_NOT_NEWER",
            ErrorCode::SessionLimit => "SESSION_LIMIT",
            ErrorCode::SessionExpired => "SESSION_EXPIRED",
            ErrorCode::SessionEvicted => "SESSION_EVICTED",
            ErrorCode::Kicked => "KICKED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::RoomInvalid => "ROOM_INVALID",
            ErrorCode::RoomLimit => "ROOM_LIMIT",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::ConnectionLimit => "CONNECTION_LIMIT",
            ErrorCode::OriginForbidden => "ORIGIN_FORBIDDEN",
            ErrorCode::ServerShutdown => "SERVER_SHUTDOWN",
            ErrorCode::UnknownEvent => "UNKNOWN_EVENT",
            ErrorCode::BackendTimeout => "BACKEND_TIMEOUT",
            ErrorCode::BackendUnavailable => "BACKEND_UNAVAILABLE",
            ErrorCode::BackendError => "BACKEND_ERROR",
            ErrorCode::EndedByApp => "ENDED_BY_APP",
            ErrorCode::NamespaceForbidden => "NAMESPACE_FORBIDDEN",
        }
    }
}

/// What a client should do after a refusal or an end: see [`ErrorCode::class`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Come back by itself, with backoff: the official client does.
    Retryable,
    /// Do not come back without a change (a new token, a login, an operator).
    Terminal,
}

impl Class {
    /// The form `docs/errors.md` shows.
    pub const fn as_str(self) -> &'static str {
        match self {
            Class::Retryable => "retryable",
            Class::Terminal => "terminal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_screaming_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{s}");
        }
    }
}
