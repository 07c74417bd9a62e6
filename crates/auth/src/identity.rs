//! Who a verified token says the user is.

use serde_json::{Map, Value};

use crate::error::AuthError;

/// The verified identity of a connection: the user, the token's expiry and
/// every claim, exactly as signed.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub user_id: String,
    /// `exp` in Unix seconds; `None` when the token has none.
    pub expires_at: Option<u64>,
    pub claims: Map<String, Value>,
}

impl Identity {
    /// Builds the identity of verified claims; `user_claim` names the user.
    pub fn from_claims(claims: Map<String, Value>, user_claim: &str) -> Result<Self, AuthError> {
        let user_id = user_id(&claims, user_claim)?;
        let expires_at = claims.get("exp").and_then(unix_seconds);
        Ok(Self {
            user_id,
            expires_at,
            claims,
        })
    }

    /// `iat` in Unix seconds, when present.
    pub fn issued_at(&self) -> Option<u64> {
        self.claims.get("iat").and_then(unix_seconds)
    }

    /// The token id (`jti`), when present.
    pub fn token_id(&self) -> Option<&str> {
        self.claims.get("jti").and_then(Value::as_str)
    }
}

/// The user claim as a string: strings as they are, integers in decimal.
fn user_id(claims: &Map<String, Value>, name: &str) -> Result<String, AuthError> {
    match claims.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        Some(Value::String(_)) => Err(AuthError::claims(format!("the `{name}` claim is empty"))),
        Some(_) => Err(AuthError::claims(format!(
            "the `{name}` claim must be a string or an integer"
        ))),
        None => Err(AuthError::claims(format!("the `{name}` claim is missing"))),
    }
}

/// NumericDate per RFC 7519: seconds, possibly fractional.
pub(crate) fn unix_seconds(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}
