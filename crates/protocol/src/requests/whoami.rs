//! `auth:whoami` → `{ userId, sessionId, expiresAt, claims }`.

use serde::Serialize;
use serde_json::{Map, Value};

/// `auth:whoami`: no payload.
#[derive(Debug, Clone, PartialEq)]
pub struct WhoAmI;

/// The verified identity: `claims` without credentials (the gateway's
/// exposure rules), `expiresAt` the token's `exp` or `null`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmIAck<'a> {
    /// The user.
    pub user_id: &'a str,
    /// The session's public id.
    pub session_id: &'a str,
    /// The token's `exp`, Unix seconds.
    pub expires_at: Option<u64>,
    /// The claims clients may read.
    pub claims: Map<String, Value>,
}
