//! The `room:*` events.
//!
//! - `room:join { room }` → `{ ok: true, room, members }` (`members`: how many
//!   users are in the room, counted without needing the presence right).
//! - `room:leave { room }` → `{ ok: true }`.
//! - `room:publish { room, data }` → `{ ok: true, id }`; the room's other
//!   sockets get `room:message { id, room, from, data, ts }`.
//! - `room:members { room }` → `{ ok: true, room, members: [userId] }`.
//!
//! Errors are `{ ok: false, code, message }`. The rules are the node's
//! ([`sockgate_core::Node::join`] and the rest); this file reads payloads
//! and answers.

use serde::Serialize;
use serde_json::Value;
use sockgate_auth::{AuthError, ErrorCode};
use sockgate_engine::io::Ack;
use sockgate_protocol::events::server;

use super::extract::{Authed, reply};
use crate::Gateway;

/// The `room` field of a payload, as a string.
fn room_of(payload: &Option<Value>) -> Result<&str, AuthError> {
    let Some(Value::Object(obj)) = payload else {
        return Err(AuthError::new(
            ErrorCode::InvalidRequest,
            "payload must be an object { room }",
        ));
    };
    match obj.get("room") {
        Some(Value::String(room)) => Ok(room),
        _ => Err(not_a_string()),
    }
}

fn not_a_string() -> AuthError {
    AuthError::new(ErrorCode::RoomInvalid, "room must be a string")
}

fn answer<T: Serialize>(ack: Option<Ack>, result: Result<T, AuthError>) {
    match result {
        Ok(v) => reply(ack, &v),
        Err(e) => reply(ack, &e.to_ack()),
    }
}

pub(super) async fn join(gw: &Gateway, authed: Authed, p: Option<Value>, ack: Option<Ack>) {
    let result = async {
        let room = room_of(&p)?;
        let members = gw.node.join(&authed.conn(), &authed.session, room).await?;
        Ok(serde_json::json!({ "ok": true, "room": room, "members": members }))
    }
    .await;
    answer(ack, result);
}

pub(super) async fn leave(gw: &Gateway, authed: Authed, p: Option<Value>, ack: Option<Ack>) {
    let result = room_of(&p).and_then(|room| {
        gw.node.leave(&authed.conn(), &authed.session, room)?;
        Ok(serde_json::json!({ "ok": true }))
    });
    answer(ack, result);
}

pub(super) async fn publish(gw: &Gateway, authed: Authed, p: Option<Value>, ack: Option<Ack>) {
    let result = async {
        let Some(Value::Object(args)) = p else {
            return Err(AuthError::new(
                ErrorCode::InvalidRequest,
                "payload must be an object { room, data }",
            ));
        };
        let Some(Value::String(room)) = args.get("room") else {
            return Err(not_a_string());
        };
        // `data` is forwarded as it came; its size is its JSON text's.
        let data = args
            .get("data")
            .map(|data| serde_json::value::to_raw_value(data).expect("JSON serializes"));
        let message = gw
            .node
            .check_publish(&authed.session, room, data.as_deref())
            .await?;
        let id = message.id.clone();
        let message = serde_json::to_value(&message).expect("payloads serialize");
        let rooms = [room.clone()];
        gw.emitter
            .emit(&rooms, Some(&authed.socket), server::ROOM_MESSAGE, message)
            .await;
        Ok(serde_json::json!({ "ok": true, "id": id }))
    }
    .await;
    answer(ack, result);
}

pub(super) async fn members(gw: &Gateway, authed: Authed, p: Option<Value>, ack: Option<Ack>) {
    let result = async {
        let room = room_of(&p)?;
        let members = gw.node.members_for(&authed.session, room).await?;
        Ok(serde_json::json!({ "ok": true, "room": room, "members": members }))
    }
    .await;
    answer(ack, result);
}
