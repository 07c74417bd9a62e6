//! The connect hook: any login system. A handshake that carries no
//! credential sockgate verifies itself goes to the app's backend, which
//! says who it is:
//!
//! ```json
//! → { "auth": { … }, "headers": { "cookie": "…" }, "remoteAddr": "…", "transport": "websocket" }
//! ← { "userId": "alice", "expiresAt": 1765000000, "claims": { … }, "rooms": ["team:1"] }
//! ← { "error": { "code": "NOT_LOGGED_IN", "message": "…" } }
//! ```
//!
//! Before `expiresAt` the node asks again with `{ "renew": { userId,
//! sessionId, claims, expiresAt } }`, and the same answers apply.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sockgate_auth::{AuthError, ErrorCode};
use sockgate_core::hooks::{self, Admitted, AppRefusal, Refused, Renew, is_app_code};

use super::Endpoint;
use super::grpc::{ConnectRequest, Renew as GrpcRenew};
use sockgate_core::hooks::reply::clip;

/// The connect hook's endpoint and the request headers it is shown.
pub struct ConnectHook {
    endpoint: Endpoint,
    /// Lowercase names of the headers passed on (`SOCKGATE_CONNECT_HEADERS`).
    headers: Vec<String>,
}

/// A handshake, as the hook sees it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Connect<'a> {
    auth: &'a Value,
    headers: BTreeMap<&'a str, String>,
    remote_addr: Option<String>,
    transport: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RenewBody<'a> {
    renew: RenewPart<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RenewPart<'a> {
    user_id: &'a str,
    session_id: &'a str,
    claims: &'a Map<String, Value>,
    expires_at: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAnswer {
    user_id: Option<Value>,
    expires_at: Option<u64>,
    claims: Option<Map<String, Value>>,
    rooms: Option<Vec<String>>,
    error: Option<RawError>,
}

#[derive(Deserialize)]
struct RawError {
    code: Option<String>,
    message: Option<String>,
}

impl ConnectHook {
    /// A hook at `endpoint`, shown the request headers named in `headers`.
    pub fn new(endpoint: Endpoint, headers: Vec<String>) -> Self {
        Self {
            endpoint,
            headers: headers
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        }
    }

    /// Asks who the handshake is, showing it the headers it was told to.
    pub async fn admit(&self, handshake: hooks::Connect<'_>) -> Result<Admitted, Refused> {
        let headers = self
            .headers
            .iter()
            .filter_map(|name| Some((name.as_str(), (handshake.header)(name)?)))
            .collect();
        let body = Connect {
            auth: handshake.auth,
            headers,
            remote_addr: handshake.remote_addr,
            transport: handshake.transport,
        };
        let sent = match &self.endpoint {
            Endpoint::Http(e) => e.post(&body).await,
            Endpoint::Grpc(e) => {
                let request = ConnectRequest {
                    id: call_id(),
                    auth_json: body.auth.to_string(),
                    headers: body
                        .headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    remote_addr: body.remote_addr.unwrap_or_default(),
                    transport: body.transport.to_owned(),
                    renew: None,
                };
                e.connect(request).await
            }
        };
        answer(sent)
    }

    /// Asks again for a session it admitted.
    pub async fn renew(&self, renew: &Renew<'_>) -> Result<Admitted, Refused> {
        let body = RenewBody {
            renew: RenewPart {
                user_id: renew.user_id,
                session_id: renew.session_id,
                claims: &renew.claims,
                expires_at: renew.expires_at,
            },
        };
        let sent = match &self.endpoint {
            Endpoint::Http(e) => e.post(&body).await,
            Endpoint::Grpc(e) => {
                let request = ConnectRequest {
                    id: call_id(),
                    renew: Some(GrpcRenew {
                        user_id: renew.user_id.to_owned(),
                        session_id: renew.session_id.to_owned(),
                        claims_json: Value::Object(renew.claims.clone()).to_string(),
                        expires_at: renew.expires_at.unwrap_or_default(),
                    }),
                    ..Default::default()
                };
                e.connect(request).await
            }
        };
        answer(sent)
    }
}

/// A random id for a call (the gRPC form signs it).
fn call_id() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// Reads the hook's answer. No answer is `AUTH_UNAVAILABLE` (retryable:
/// the client comes back); an answer that is not one is `BACKEND_ERROR`.
fn answer(body: Result<Vec<u8>, AuthError>) -> Result<Admitted, Refused> {
    let body = body.map_err(|e| match e.code {
        ErrorCode::BackendError => Refused::Sockgate(e),
        _ => Refused::Sockgate(AuthError::new(
            ErrorCode::AuthUnavailable,
            "the app's connect hook did not answer",
        )),
    })?;
    let raw: RawAnswer = serde_json::from_slice(&body).map_err(|_| {
        Refused::Sockgate(AuthError::new(
            ErrorCode::BackendError,
            "the connect hook's answer is not { userId, expiresAt, claims, rooms } or { error }",
        ))
    })?;
    if let Some(error) = raw.error {
        let code = error
            .code
            .filter(|c| is_app_code(c))
            .unwrap_or_else(|| ErrorCode::AuthRequired.as_str().to_owned());
        let message = error.message.map_or_else(|| code.clone(), clip);
        return Err(Refused::App(AppRefusal { code, message }));
    }
    let user_id = match raw.user_id {
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        _ => {
            return Err(Refused::Sockgate(AuthError::new(
                ErrorCode::BackendError,
                "the connect hook's answer has no userId (a string or an integer)",
            )));
        }
    };
    if !sockgate_auth::identity::is_valid_user_id(&user_id) {
        return Err(Refused::Sockgate(AuthError::new(
            ErrorCode::BackendError,
            "the connect hook's userId must be 1 to 256 bytes without whitespace or control characters",
        )));
    }
    Ok(Admitted {
        user_id,
        expires_at: raw.expires_at,
        claims: raw.claims.unwrap_or_default(),
        rooms: raw.rooms.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Result<Admitted, Refused> {
        answer(Ok(serde_json::to_vec(&v).unwrap()))
    }

    #[test]
    fn answers() {
        let a = read(
            json!({ "userId": 42, "expiresAt": 5, "claims": { "role": "x" }, "rooms": ["t:1"] }),
        )
        .unwrap();
        assert_eq!(
            (a.user_id.as_str(), a.expires_at, a.rooms.len()),
            ("42", Some(5), 1)
        );
        let Err(Refused::App(r)) =
            read(json!({ "error": { "code": "NOT_LOGGED_IN", "message": "log in" } }))
        else {
            panic!("an app refusal");
        };
        assert_eq!(
            (r.code.as_str(), r.message.as_str()),
            ("NOT_LOGGED_IN", "log in")
        );
        let Err(Refused::App(r)) = read(json!({ "error": { "code": "lower" } })) else {
            panic!("an app refusal");
        };
        assert_eq!(r.code, "AUTH_REQUIRED");
        for bad in [
            json!({}),
            json!({ "userId": "a b" }),
            json!({ "userId": true }),
            json!({ "user": "x" }),
        ] {
            let Err(Refused::Sockgate(e)) = read(bad.clone()) else {
                panic!("{bad}");
            };
            assert_eq!(e.code, ErrorCode::BackendError, "{bad}");
        }
        let Err(Refused::Sockgate(e)) =
            answer(Err(AuthError::new(ErrorCode::BackendTimeout, "slow")))
        else {
            panic!("unavailable");
        };
        assert_eq!(e.code, ErrorCode::AuthUnavailable);
    }
}
