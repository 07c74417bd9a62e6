//! The error type every refusal carries: a stable code (defined in
//! `sockgate-protocol`, re-exported here) and a sentence for humans.

use std::borrow::Cow;
use std::fmt;

pub use sockgate_protocol::{Class, ErrorCode};

/// A refusal: a stable [`ErrorCode`] plus a short sentence for humans.
///
/// `Display` renders `CODE: sentence`, the form clients see in
/// `connect_error`. The sentence never contains the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    /// The stable code clients act on.
    pub code: ErrorCode,
    /// A sentence for humans; it never holds the token.
    pub message: Cow<'static, str>,
}

impl AuthError {
    /// A refusal with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The `{ ok: false, code, message }` form of event acks.
    pub fn to_ack(&self) -> serde_json::Value {
        serde_json::json!({ "ok": false, "code": self.code, "message": self.message })
    }

    pub(crate) fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::TokenInvalid, message)
    }

    pub(crate) fn claims(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::ClaimsInvalid, message)
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for AuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_starts_with_the_code() {
        let e = AuthError::new(ErrorCode::TokenExpired, "token expired 3 s ago");
        assert_eq!(e.to_string(), "TOKEN_EXPIRED: token expired 3 s ago");
    }
}
