//! `auth:refresh { token }` → `{ ok: true, expiresAt }`.

use serde::Serialize;
use serde_json::Value;

use super::Refusal;
use crate::codes::ErrorCode;

/// `auth:refresh { token }`: the shape rules of the handshake's `auth`.
#[derive(Debug, Clone, PartialEq)]
pub struct Refresh {
    /// The new token.
    pub token: String,
}

impl Refresh {
    pub(super) fn parse(payload: Option<Value>) -> Result<Self, Refusal> {
        let missing = Refusal::new(ErrorCode::AuthRequired, "no token in the payload");
        let fields = match payload {
            None => {
                return Err(Refusal::new(
                    ErrorCode::TokenInvalid,
                    "payload must be { token }",
                ));
            }
            Some(Value::Null) => return Err(missing),
            Some(Value::Object(fields)) => fields,
            Some(_) => {
                return Err(Refusal::new(
                    ErrorCode::TokenInvalid,
                    "the auth payload must be a JSON object",
                ));
            }
        };
        match fields.get("token") {
            Some(Value::String(token)) if !token.is_empty() => Ok(Self {
                token: token.clone(),
            }),
            None | Some(Value::Null) | Some(Value::String(_)) => Err(missing),
            Some(_) => Err(Refusal::new(
                ErrorCode::TokenInvalid,
                "auth.token must be a string",
            )),
        }
    }
}

/// `{ ok: true, expiresAt }`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RefreshAck {
    /// Always `true`.
    pub ok: bool,
    /// The new token's `exp`, Unix seconds.
    pub expires_at: Option<u64>,
}
