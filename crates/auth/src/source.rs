//! Where a token comes from on the handshake.
//!
//! Places are tried in a fixed order and the first one holding a credential
//! wins: the Socket.IO `auth.token` field, an `Authorization: Bearer` header,
//! the configured token cookie, a Next-Auth / Auth.js session cookie, then
//! (only when enabled) the `token` query parameter. Explicit tokens come
//! first, so one gateway serves browsers by cookie and native apps by token.
//! This module only finds the credential; it never checks it.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{AuthError, ErrorCode};
use crate::session_cookie::{SessionCookie, SessionCookies};

/// Which optional places may carry a token.
#[derive(Debug, Clone, Default)]
pub struct SourcePolicy {
    /// Name of the cookie that may carry the token; `None` turns cookie auth off.
    pub cookie: Option<String>,
    /// Next-Auth / Auth.js session cookies; `None` turns them off.
    pub session_cookies: Option<Arc<SessionCookies>>,
    /// Accept `?token=` on the handshake URL.
    pub query: bool,
}

/// What a handshake presents: a JWT, or Next-Auth session cookies to open
/// (in the order to try them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential<'a> {
    /// A JWT to verify.
    Token(Cow<'a, str>),
    /// Next-Auth / Auth.js session cookies to open, in the order to try them.
    SessionCookies(Vec<SessionCookie>),
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
    /// The Socket.IO handshake payload, `auth.token`.
    Auth,
    /// An `Authorization: Bearer` header.
    Header,
    /// The cookie named by `SourcePolicy::cookie`.
    Cookie,
    /// A Next-Auth / Auth.js session cookie.
    SessionCookie,
    /// The `token` query parameter.
    Query,
    /// The app's connect hook said who it is.
    ConnectHook,
    /// None: a public namespace's socket without a credential.
    Anonymous,
}

impl TokenSource {
    /// The name logged with every decision.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenSource::Auth => "auth",
            TokenSource::Header => "header",
            TokenSource::Cookie => "cookie",
            TokenSource::SessionCookie => "session-cookie",
            TokenSource::Query => "query",
            TokenSource::ConnectHook => "connect-hook",
            TokenSource::Anonymous => "anonymous",
        }
    }

    /// Whether a browser attaches this credential by itself, so that a
    /// cross-site page could use it (the Origin check applies).
    pub const fn is_cookie(self) -> bool {
        matches!(self, TokenSource::Cookie | TokenSource::SessionCookie)
    }
}

impl SourcePolicy {
    /// Finds the token of a handshake.
    ///
    /// Empty strings and a `null` token count as absent, so a logged-out
    /// client that sends `{ token: null }` gets `AUTH_REQUIRED`. A payload or
    /// `token` of the wrong JSON type is `TOKEN_INVALID`.
    pub fn find<'a>(&self, hs: &Handshake<'a>) -> Result<(Credential<'a>, TokenSource), AuthError> {
        let token = |t: Cow<'a, str>, source| Ok((Credential::Token(t), source));
        if let Some(t) = from_auth(hs.auth)? {
            return token(Cow::Borrowed(t), TokenSource::Auth);
        }
        if let Some(t) = hs.authorization.and_then(bearer) {
            return token(Cow::Borrowed(t), TokenSource::Header);
        }
        if let (Some(name), Some(header)) = (&self.cookie, hs.cookie)
            && let Some(t) = from_cookie(header, name)
        {
            return token(Cow::Owned(t), TokenSource::Cookie);
        }
        if let (Some(jar), Some(header)) = (&self.session_cookies, hs.cookie) {
            let found = jar.find(header);
            if !found.is_empty() {
                return Ok((
                    Credential::SessionCookies(found),
                    TokenSource::SessionCookie,
                ));
            }
        }
        if self.query
            && let Some(t) = hs.query.and_then(from_query)
        {
            return token(Cow::Owned(t), TokenSource::Query);
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

    fn tok(t: &str) -> Credential<'_> {
        Credential::Token(t.into())
    }

    fn all_on() -> SourcePolicy {
        SourcePolicy {
            cookie: Some("sg".into()),
            session_cookies: Some(Arc::new(SessionCookies::new(&["s"], None))),
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
            (tok("from-auth"), TokenSource::Auth)
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
        assert_eq!(p.find(&hs).unwrap(), (tok("h"), TokenSource::Header));
        let hs = Handshake {
            authorization: Some("Basic abc"),
            ..hs
        };
        assert_eq!(p.find(&hs).unwrap(), (tok("c"), TokenSource::Cookie));
        let hs = Handshake {
            cookie: Some("authjs.session-token=jwe"),
            ..hs
        };
        let (found, source) = p.find(&hs).unwrap();
        assert_eq!(source, TokenSource::SessionCookie);
        assert!(matches!(found, Credential::SessionCookies(c) if c[0].value == "jwe"));
        let hs = Handshake {
            cookie: Some("other=1"),
            ..hs
        };
        assert_eq!(p.find(&hs).unwrap(), (tok("q+q"), TokenSource::Query));
    }

    #[test]
    fn disabled_places_are_ignored() {
        let hs = Handshake {
            cookie: Some("sg=c; next-auth.session-token=x"),
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
