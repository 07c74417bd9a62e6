//! Where a token comes from on the handshake.
//!
//! Places are tried in a fixed order and the first one holding a token wins:
//! the Socket.IO `auth.token` field, an `Authorization: Bearer` header, the
//! configured cookie, then (only when enabled) the `token` query parameter.
//! This module only finds the token; it never checks it.

use std::borrow::Cow;

use serde_json::Value;

use crate::error::{AuthError, ErrorCode};

/// Which optional places may carry a token.
#[derive(Debug, Clone, Default)]
pub struct SourcePolicy {
    /// Name of the cookie that may carry the token; `None` turns cookie auth off.
    pub cookie: Option<String>,
    /// Accept `?token=` on the handshake URL.
    pub query: bool,
}

/// The parts of a handshake that can carry a token, as raw as they arrive.
#[derive(Debug, Clone, Copy, Default)]
pub struct Handshake<'a> {
    /// The Socket.IO CONNECT payload (`auth` on the client); `None` when absent.
    pub auth: Option<&'a Value>,
    /// The `Authorization` header value.
    pub authorization: Option<&'a str>,
    /// The `Cookie` header value.
    pub cookie: Option<&'a str>,
    /// The raw query string of the handshake URL.
    pub query: Option<&'a str>,
}

/// Which place a token came from; logged with every decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Auth,
    Header,
    Cookie,
    Query,
}

impl TokenSource {
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenSource::Auth => "auth",
            TokenSource::Header => "header",
            TokenSource::Cookie => "cookie",
            TokenSource::Query => "query",
        }
    }
}

impl SourcePolicy {
    /// Finds the token of a handshake.
    ///
    /// Empty strings and a `null` token count as absent, so a logged-out
    /// client that sends `{ token: null }` gets `AUTH_REQUIRED`. A payload or
    /// `token` of the wrong JSON type is `TOKEN_INVALID`.
    pub fn find<'a>(&self, hs: &Handshake<'a>) -> Result<(Cow<'a, str>, TokenSource), AuthError> {
        if let Some(token) = from_auth(hs.auth)? {
            return Ok((Cow::Borrowed(token), TokenSource::Auth));
        }
        if let Some(token) = hs.authorization.and_then(bearer) {
            return Ok((Cow::Borrowed(token), TokenSource::Header));
        }
        if let (Some(name), Some(header)) = (&self.cookie, hs.cookie)
            && let Some(token) = from_cookie(header, name)
        {
            return Ok((Cow::Owned(token), TokenSource::Cookie));
        }
        if self.query
            && let Some(token) = hs.query.and_then(from_query)
        {
            return Ok((Cow::Owned(token), TokenSource::Query));
        }
        Err(AuthError::new(
            ErrorCode::AuthRequired,
            "no token in auth.token, Authorization header, cookie or query",
        ))
    }
}

/// The token of an event payload such as `auth:refresh`'s `{ token }`:
/// the same shape rules as the handshake's `auth` payload.
pub fn token_from_payload(payload: &Value) -> Result<&str, AuthError> {
    from_auth(Some(payload))?
        .ok_or_else(|| AuthError::new(ErrorCode::AuthRequired, "no token in the payload"))
}

fn from_auth(auth: Option<&Value>) -> Result<Option<&str>, AuthError> {
    let obj = match auth {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(obj)) => obj,
        Some(_) => {
            return Err(AuthError::invalid("the auth payload must be a JSON object"));
        }
    };
    match obj.get("token") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(AuthError::invalid("auth.token must be a string")),
    }
}

fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn from_cookie(header: &str, name: &str) -> Option<String> {
    cookie::Cookie::split_parse(header)
        .filter_map(Result::ok)
        .find(|c| c.name() == name && !c.value().is_empty())
        .map(|c| c.value().to_owned())
}

fn from_query(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, v)| k == "token" && !v.is_empty())
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn all_on() -> SourcePolicy {
        SourcePolicy {
            cookie: Some("sg".into()),
            query: true,
        }
    }

    #[test]
    fn auth_payload_wins_over_everything() {
        let auth = json!({ "token": "from-auth" });
        let hs = Handshake {
            auth: Some(&auth),
            authorization: Some("Bearer from-header"),
            cookie: Some("sg=from-cookie"),
            query: Some("token=from-query"),
        };
        assert_eq!(
            all_on().find(&hs).unwrap(),
            ("from-auth".into(), TokenSource::Auth)
        );
    }

    #[test]
    fn falls_through_in_order() {
        let p = all_on();
        let hs = Handshake {
            authorization: Some("bearer  h "),
            cookie: Some("a=1; sg=c"),
            query: Some("x=1&token=q%2Bq"),
            ..Default::default()
        };
        assert_eq!(p.find(&hs).unwrap(), ("h".into(), TokenSource::Header));
        let hs = Handshake {
            authorization: Some("Basic abc"),
            ..hs
        };
        assert_eq!(p.find(&hs).unwrap(), ("c".into(), TokenSource::Cookie));
        let hs = Handshake {
            cookie: Some("other=1"),
            ..hs
        };
        assert_eq!(p.find(&hs).unwrap(), ("q+q".into(), TokenSource::Query));
    }

    #[test]
    fn disabled_places_are_ignored() {
        let hs = Handshake {
            cookie: Some("sg=c"),
            query: Some("token=q"),
            ..Default::default()
        };
        let err = SourcePolicy::default().find(&hs).unwrap_err();
        assert_eq!(err.code, ErrorCode::AuthRequired);
    }

    #[test]
    fn empty_and_null_tokens_count_as_absent() {
        for auth in [
            json!(null),
            json!({}),
            json!({ "token": "" }),
            json!({ "token": null }),
        ] {
            let hs = Handshake {
                auth: Some(&auth),
                ..Default::default()
            };
            assert_eq!(
                all_on().find(&hs).unwrap_err().code,
                ErrorCode::AuthRequired,
                "{auth}"
            );
        }
    }

    #[test]
    fn wrong_types_are_token_invalid() {
        for auth in [
            json!(42),
            json!("token"),
            json!([1, 2]),
            json!({ "token": 5 }),
            json!({ "token": ["a"] }),
            json!({ "token": { "nested": { "deep": [] } } }),
        ] {
            let hs = Handshake {
                auth: Some(&auth),
                ..Default::default()
            };
            assert_eq!(
                all_on().find(&hs).unwrap_err().code,
                ErrorCode::TokenInvalid,
                "{auth}"
            );
        }
    }
}
