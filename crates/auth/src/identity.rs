//! Who a verified token says the user is.

use serde_json::{Map, Value};

use crate::error::AuthError;

/// Longest user id accepted, in bytes: the admin API's limit for the ids it
/// revokes and publishes to, so every user who can connect can be reached.
pub const MAX_USER_ID_BYTES: usize = 256;

/// Whether `id` is a user id sockgate accepts: 1 to [`MAX_USER_ID_BYTES`]
/// bytes, without whitespace or control characters. A user id ends up in
/// room names (`user:{id}`), room templates, admin API paths and log lines;
/// none of them can hold a space or a line break.
pub fn is_valid_user_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_USER_ID_BYTES
        && !id.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The verified identity of a connection: the user, the token's expiry and
/// every claim, exactly as signed.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The user, from the configured user claim.
    pub user_id: String,
    /// `exp` in Unix seconds; `None` when the token has none.
    pub expires_at: Option<u64>,
    issued_at: Option<u64>,
    token_id: Option<Box<str>>,
    /// Every claim of the token, as signed.
    pub claims: Claims,
}

impl Identity {
    /// Builds the identity of verified claims; `user_claim` names the user.
    pub fn from_claims(claims: Map<String, Value>, user_claim: &str) -> Result<Self, AuthError> {
        let user_id = user_id(&claims, user_claim)?;
        Ok(Self {
            user_id,
            expires_at: claims.get("exp").and_then(unix_seconds),
            issued_at: claims.get("iat").and_then(unix_seconds),
            token_id: claims.get("jti").and_then(Value::as_str).map(Box::from),
            claims: Claims::new(&claims),
        })
    }

    /// `iat` in Unix seconds, when present.
    pub fn issued_at(&self) -> Option<u64> {
        self.issued_at
    }

    /// The token id (`jti`), when present.
    pub fn token_id(&self) -> Option<&str> {
        self.token_id.as_deref()
    }
}

/// A token's claims, kept as their JSON text and read when asked.
///
/// A connection holds its claims for as long as it lives, and they are read
/// rarely (a room permission, `auth:whoami`, a webhook). As a map of JSON
/// values they cost about 700 bytes of every idle connection, by heap
/// profile (a B-tree node and a string per claim); as text, their length.
#[derive(Clone, PartialEq, Eq)]
pub struct Claims(Box<str>);

impl Claims {
    fn new(claims: &Map<String, Value>) -> Self {
        Self(
            serde_json::to_string(claims)
                .expect("JSON values serialize")
                .into_boxed_str(),
        )
    }

    /// Every claim.
    pub fn to_map(&self) -> Map<String, Value> {
        serde_json::from_str(&self.0).expect("claims are kept as a JSON object")
    }

    /// The claim `name`, if present.
    pub fn get(&self, name: &str) -> Option<Value> {
        self.to_map().remove(name)
    }

    /// The claims as JSON text (an object).
    pub fn as_json(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Claims(..)")
    }
}

impl serde::Serialize for Claims {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(serializer)
    }
}

/// The user claim as a string: strings as they are, integers in decimal.
/// The value is never echoed in the refusal: it may be anything.
fn user_id(claims: &Map<String, Value>, name: &str) -> Result<String, AuthError> {
    match claims.get(name) {
        Some(Value::String(s)) if is_valid_user_id(s) => Ok(s.clone()),
        Some(Value::String(s)) if !s.is_empty() => Err(AuthError::claims(format!(
            "the `{name}` claim must be at most {MAX_USER_ID_BYTES} bytes, without whitespace \
             or control characters"
        ))),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        Some(Value::String(_)) => Err(AuthError::claims(format!("the `{name}` claim is empty"))),
        Some(_) => Err(AuthError::claims(format!(
            "the `{name}` claim must be a string or an integer"
        ))),
        None => Err(AuthError::claims(format!(
            "the `{name}` claim is missing (the token has {}): set SOCKGATE_USER_CLAIM to the \
             claim that names the user",
            claim_names(claims)
        ))),
    }
}

/// The names of `claims`, for a refusal: never a value, at most a dozen
/// names of at most 32 printable characters each (the names, too, are the
/// token's: anyone can sign a token).
fn claim_names(claims: &Map<String, Value>) -> String {
    const MAX_NAMES: usize = 12;
    const MAX_CHARS: usize = 32;
    let mut names: Vec<String> = claims
        .keys()
        .take(MAX_NAMES)
        .map(|name| {
            name.chars()
                .filter(|c| !c.is_control() && !c.is_whitespace())
                .take(MAX_CHARS)
                .collect()
        })
        .collect();
    if claims.len() > MAX_NAMES {
        names.push("…".into());
    }
    if names.is_empty() {
        return "no claims".into();
    }
    names.join(", ")
}

/// NumericDate per RFC 7519: seconds, possibly fractional.
pub(crate) fn unix_seconds(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::json;

    fn user_of(sub: Value) -> Result<String, AuthError> {
        let claims = json!({ "sub": sub });
        Identity::from_claims(claims.as_object().unwrap().clone(), "sub").map(|id| id.user_id)
    }

    /// A backend that names the user in `id` gets told which setting to
    /// change, and which claims its token has: names, never values.
    #[test]
    fn a_missing_user_claim_names_the_setting_and_the_claims() {
        let claims = json!({ "id": 42, "name": "Ada Lovelace", "exp": 1, "bad\nname": "x" });
        let err = Identity::from_claims(claims.as_object().unwrap().clone(), "sub").unwrap_err();
        assert_eq!(err.code, ErrorCode::ClaimsInvalid);
        assert!(
            err.message.contains("SOCKGATE_USER_CLAIM"),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains("(the token has badname, exp, id, name)"),
            "{}",
            err.message
        );
        assert!(
            !err.message.contains("Ada") && !err.message.contains('\n'),
            "{}",
            err.message
        );
    }

    /// Every user who connects can be revoked and published to by the admin
    /// API, which takes ids of 1 to 256 bytes without whitespace.
    #[test]
    fn user_ids_follow_the_admin_api_rules() {
        let longest = "u".repeat(MAX_USER_ID_BYTES);
        for ok in [json!("alice"), json!("a:b@c.d"), json!(42), json!(longest)] {
            assert!(user_of(ok.clone()).is_ok(), "{ok}");
        }
        let too_long = "u".repeat(MAX_USER_ID_BYTES + 1);
        // 128 two-byte characters plus one: 258 bytes, 129 characters.
        let too_long_utf8 = format!("{}x", "é".repeat(128));
        for bad in [
            json!(too_long),
            json!(too_long_utf8),
            json!("bob smith"),
            json!("bob\tsmith"),
            json!("mallory\n2026-01-01T00:00:00Z INFO forged"),
            json!("carriage\rreturn"),
            json!("nul\u{0}"),
            json!("esc\u{1b}[31m"),
            json!("line\u{2028}separator"),
            json!("nbsp\u{a0}"),
            json!(""),
        ] {
            let err = user_of(bad.clone()).unwrap_err();
            assert_eq!(err.code, ErrorCode::ClaimsInvalid, "{bad}");
            let shown = bad.as_str().unwrap_or_default();
            assert!(
                shown.is_empty() || !err.message.contains(shown),
                "the refusal must not echo the value: {}",
                err.message
            );
        }
    }
}
