//! Which claims leave sockgate: never a credential.
//!
//! Apps put their backend's token in the claims they sign: Next-Auth's
//! `jwt` callback stores it as `accessToken` in the session, and many
//! backends carry a refresh token or an upstream provider's token the same
//! way. Whatever a client can read (`auth:whoami`) or a backend is sent (a
//! webhook, a hook) is the claims *without* those: a claim whose name says
//! it is a credential, or whose value is a signed or encrypted JOSE object,
//! is left out, at every depth.

use serde_json::{Map, Value};

use crate::identity::Claims;

/// Parts of a claim name that mark a credential, compared in lowercase:
/// `accessToken`, `refresh_token`, `clientSecret`, `password`, `apiKey`.
const CREDENTIAL_NAMES: [&str; 6] = ["token", "secret", "password", "passwd", "key", "credential"];

/// Whether a claim named `name` holds a credential by its name.
pub fn is_credential_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    CREDENTIAL_NAMES.iter().any(|part| name.contains(part))
}

/// Whether `s` is a compact JWS (three segments) or JWE (five): base64url
/// segments whose first one is a JSON object's encoding (`eyJ` is `{"`).
/// Dotted names such as `first.middle.last` do not start that way.
pub fn is_jose(s: &str) -> bool {
    let segments = s.split('.').count();
    (segments == 3 || segments == 5)
        && s.starts_with("eyJ")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `value` without any credential inside it; `None` when it is one.
fn scrub(value: Value) -> Option<Value> {
    match value {
        Value::String(s) if is_jose(&s) => None,
        Value::Object(map) => Some(Value::Object(scrub_map(map))),
        Value::Array(items) => Some(Value::Array(items.into_iter().filter_map(scrub).collect())),
        other => Some(other),
    }
}

fn scrub_map(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter()
        .filter(|(name, _)| !is_credential_name(name))
        .filter_map(|(name, value)| Some((name, scrub(value)?)))
        .collect()
}

/// What clients see of a connection's claims: `SOCKGATE_EXPOSED_CLAIMS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exposure {
    /// `None`: every claim but credentials; `Some`: only these, and still
    /// no credential among them.
    only: Option<Vec<String>>,
}

impl Exposure {
    /// Every claim but credentials (the default).
    pub fn all() -> Self {
        Self::default()
    }

    /// Only the claims named in `names`.
    pub fn only(names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            only: Some(names.into_iter().map(Into::into).collect()),
        }
    }

    /// The claims a client may read.
    pub fn apply(&self, claims: &Claims) -> Map<String, Value> {
        let mut public = claims.without_credentials();
        if let Some(only) = &self.only {
            public.retain(|name, _| only.iter().any(|o| o == name));
        }
        public
    }
}

impl Claims {
    /// Every claim but credentials: what a backend may be sent.
    pub fn without_credentials(&self) -> Map<String, Value> {
        scrub_map(self.to_map())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use serde_json::json;

    const JWS: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl";
    const JWE: &str = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..aXY.Y2lwaGVy.dGFn";

    fn claims(value: Value) -> Claims {
        Identity::from_claims(value.as_object().unwrap().clone(), "sub")
            .unwrap()
            .claims
    }

    /// The seeds' Next-Auth `jwt` callback: the backend token as
    /// `accessToken`, beside the profile.
    #[test]
    fn credentials_never_leave_by_name_or_by_value() {
        let c = claims(json!({
            "sub": "42", "name": "Ada", "role": "admin", "email": "ada@example.com",
            "accessToken": JWS, "refresh_token": "opaque", "clientSecret": "s",
            "Password": "p", "apiKey": "k", "upstream": JWE, "nick": "first.middle.last",
            "provider": { "name": "github", "access_token": "gho_x", "id_token": JWS, "scopes": ["a", JWS] },
        }));
        let public = Exposure::all().apply(&c);
        assert_eq!(
            Value::Object(public),
            json!({
                "sub": "42", "name": "Ada", "role": "admin", "email": "ada@example.com",
                "nick": "first.middle.last",
                "provider": { "name": "github", "scopes": ["a"] },
            })
        );
    }

    #[test]
    fn exposed_claims_narrow_and_still_drop_credentials() {
        let c = claims(json!({ "sub": "42", "role": "admin", "team": "red", "accessToken": JWS }));
        let public = Exposure::only(["role", "accessToken"]).apply(&c);
        assert_eq!(Value::Object(public), json!({ "role": "admin" }));
    }

    #[test]
    fn jose_shapes() {
        assert!(is_jose(JWS) && is_jose(JWE));
        for not in ["a.b.c", "eyJ.only-two", "eyJa.b.c d", "user:42", ""] {
            assert!(!is_jose(not), "{not}");
        }
    }
}
