//! The app's reply to an event, read and checked before anything of it is
//! applied: a reply is the backend's word, but a broken or hostile backend
//! must not be able to do more through it than the admin API allows.
//!
//! ```json
//! { "ack": …, "error": { "code", "message" },
//!   "join": ["room"], "leave": ["room"],
//!   "emit": [{ "event", "data" }],
//!   "publish": [{ "room" | "rooms" | "user", "event", "data", "idempotencyKey" }],
//!   "disconnect": { "message" } }
//! ```

use super::{Emit, Reply, is_app_code};
use crate::publish::{self, check_event};
use crate::rooms::UserRoom;
use serde::Deserialize;
use serde_json::Value;
use sockgate_auth::{AuthError, ErrorCode};
use sockgate_protocol::publish::{Publish, PublishRequest};

/// Most `emit` and most `publish` entries in one reply.
pub const MAX_EFFECTS: usize = 100;
/// Longest `error.message` passed to the client, in characters.
const MAX_MESSAGE_CHARS: usize = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    ack: Value,
    error: Option<RawError>,
    #[serde(default)]
    join: Vec<String>,
    #[serde(default)]
    leave: Vec<String>,
    #[serde(default)]
    emit: Vec<RawEmit>,
    #[serde(default)]
    publish: Vec<PublishRequest>,
    disconnect: Option<RawDisconnect>,
}

#[derive(Deserialize)]
struct RawError {
    code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmit {
    event: String,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisconnect {
    message: Option<String>,
    /// Accepted for the documented shape; `ENDED_BY_APP` is terminal.
    #[serde(default)]
    #[allow(dead_code)]
    reconnect: bool,
}

/// What a reply's publishes are checked against: the admin API's rules.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Users' own rooms (`{ "user": id }` publishes).
    pub user_room: UserRoom,
    /// The largest `data` of a publish (`SOCKGATE_MAX_PAYLOAD`).
    pub max_payload: usize,
}

/// Reads a reply body: `BACKEND_ERROR` for anything that is not a reply,
/// `INVALID_REQUEST` or a room code for an effect that breaks a rule.
pub fn parse(body: &[u8], rules: &Rules) -> Result<Reply, AuthError> {
    let raw: Raw = serde_json::from_slice(body)
        .map_err(|e| backend_error(format!("the reply is not a reply: {}", describe(&e))))?;
    if raw.emit.len() > MAX_EFFECTS || raw.publish.len() > MAX_EFFECTS {
        return Err(backend_error(format!(
            "a reply may emit and publish at most {MAX_EFFECTS} events each"
        )));
    }
    let mut emit = Vec::with_capacity(raw.emit.len());
    for e in raw.emit {
        check_event(&e.event)?;
        emit.push(Emit {
            event: e.event,
            data: e.data,
        });
    }
    let publish = raw
        .publish
        .into_iter()
        .map(|p| checked(p, rules))
        .collect::<Result<_, _>>()?;
    Ok(Reply {
        ack: match raw.error {
            Some(error) => app_error(error),
            None => raw.ack,
        },
        join: raw.join,
        leave: raw.leave,
        emit,
        publish,
        disconnect: raw.disconnect.map(|d| {
            d.message
                .map_or_else(|| "ended by the app".to_owned(), clip)
        }),
    })
}

/// A reply's publish, under the admin API's rules.
fn checked(request: PublishRequest, rules: &Rules) -> Result<Publish, AuthError> {
    let publish = request
        .into_publish()
        .map_err(|m| AuthError::new(ErrorCode::InvalidRequest, m))?;
    publish::check(&publish, &rules.user_room, rules.max_payload)?;
    Ok(publish)
}

/// `{ ok: false, code, message }` from the app's error: its code as it is
/// when it looks like one (`[A-Z][A-Z0-9_]{0,63}`), else `BACKEND_ERROR`.
fn app_error(error: RawError) -> Value {
    let code = error
        .code
        .filter(|c| is_app_code(c))
        .unwrap_or_else(|| ErrorCode::BackendError.as_str().to_owned());
    let message = error.message.map_or_else(|| code.clone(), clip);
    serde_json::json!({ "ok": false, "code": code, "message": message })
}

/// A message for a client: control characters out, at most 500 characters.
pub fn clip(message: String) -> String {
    message
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_MESSAGE_CHARS)
        .collect()
}

/// Where serde stopped, never what it read: the reply may hold anything.
fn describe(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Data => {
            // serde's data errors name fields and types, not values.
            let text = e.to_string();
            text.chars().take(200).collect()
        }
        category => format!(
            "{category:?} JSON at line {} column {}",
            e.line(),
            e.column()
        ),
    }
}

fn backend_error(message: String) -> AuthError {
    AuthError::new(ErrorCode::BackendError, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> Rules {
        Rules {
            user_room: UserRoom::default(),
            max_payload: 64 * 1024,
        }
    }

    fn read(v: Value) -> Result<Reply, AuthError> {
        parse(&serde_json::to_vec(&v).unwrap(), &rules())
    }

    #[test]
    fn an_ack_and_every_effect() {
        let r = read(json!({
            "ack": { "id": 7 }, "join": ["chat:1"], "leave": ["chat:0"],
            "emit": [{ "event": "hello", "data": [1] }],
            "publish": [{ "room": "chat:1", "event": "said", "data": "hi" }, { "user": "bob", "event": "ping" }],
            "disconnect": { "message": "bye", "reconnect": false },
        }))
        .unwrap();
        assert_eq!(r.ack, json!({ "id": 7 }));
        assert_eq!(
            (r.join, r.leave),
            (vec!["chat:1".to_owned()], vec!["chat:0".to_owned()])
        );
        assert_eq!(r.emit[0].event, "hello");
        assert_eq!(
            r.publish[1].target,
            sockgate_protocol::publish::Target::User("bob".to_owned())
        );
        assert_eq!(r.disconnect.as_deref(), Some("bye"));
        assert_eq!(read(json!({})).unwrap().ack, Value::Null);
    }

    #[test]
    fn app_errors_keep_codes_that_look_like_codes() {
        let ack = |e: Value| read(json!({ "error": e })).unwrap().ack;
        assert_eq!(
            ack(json!({ "code": "CHAT_FORBIDDEN", "message": "no" })),
            json!({ "ok": false, "code": "CHAT_FORBIDDEN", "message": "no" })
        );
        for bad in ["chat", "1X", "X Y", "", &"A".repeat(65)] {
            assert_eq!(
                ack(json!({ "code": bad }))["code"],
                "BACKEND_ERROR",
                "{bad}"
            );
        }
        assert_eq!(
            ack(json!({ "message": "line\nbreak" }))["message"],
            "linebreak"
        );
    }

    #[test]
    fn what_is_not_a_reply_is_a_backend_error() {
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        for body in [
            b"not json".to_vec(),
            b"\xff\xfe".to_vec(),
            b"[1,2]".to_vec(),
            br#"{"joins":["typo"]}"#.to_vec(),
            br#"{"join":"not-a-list"}"#.to_vec(),
            format!(r#"{{"ack":{deep}}}"#).into_bytes(),
        ] {
            let err = parse(&body, &rules()).unwrap_err();
            assert_eq!(
                err.code,
                ErrorCode::BackendError,
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn effects_obey_the_admin_api_rules() {
        let code = |v: Value| read(v).unwrap_err().code;
        assert_eq!(
            code(json!({ "emit": [{ "event": sockgate_protocol::events::server::SESSION_END }] })),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            code(json!({ "emit": [{ "event": "connect" }] })),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            code(json!({ "publish": [{ "room": "a b", "event": "x" }] })),
            ErrorCode::RoomInvalid
        );
        assert_eq!(
            code(json!({ "publish": [{ "event": "x" }] })),
            ErrorCode::InvalidRequest
        );
        let many: Vec<Value> = (0..=MAX_EFFECTS).map(|_| json!({ "event": "x" })).collect();
        assert_eq!(code(json!({ "emit": many })), ErrorCode::BackendError);
    }
}
