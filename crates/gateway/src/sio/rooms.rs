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

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, State, TryData};
use sockgate_auth::{AuthError, ErrorCode};
use sockgate_protocol::events::server;

use super::extract::Authed;
use crate::Gateway;

/// The `room` field of a payload, as a string.
fn room_of(payload: &Result<Value, socketioxide::ParserError>) -> Result<&str, AuthError> {
    let Ok(Value::Object(obj)) = payload else {
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

fn reply<A: Adapter, T: Serialize>(ack: AckSender<A>, result: Result<T, AuthError>) {
    let _ = match result {
        Ok(v) => ack.send(&v),
        Err(e) => ack.send(&e.to_ack()),
    };
}

pub(super) async fn join<A: Adapter>(
    authed: Authed<A>,
    TryData(p): TryData<Value>,
    ack: AckSender<A>,
    State(gw): State<Arc<Gateway>>,
) {
    let Some(ack) = authed.spend(&gw, ack) else {
        return;
    };
    let result = async {
        let room = room_of(&p)?;
        let conn = authed.conn(&gw);
        let members = gw.node.join(&conn, &authed.session, room).await?;
        Ok(serde_json::json!({ "ok": true, "room": room, "members": members }))
    }
    .await;
    reply(ack, result);
}

pub(super) async fn leave<A: Adapter>(
    authed: Authed<A>,
    TryData(p): TryData<Value>,
    ack: AckSender<A>,
    State(gw): State<Arc<Gateway>>,
) {
    let Some(ack) = authed.spend(&gw, ack) else {
        return;
    };
    let result = room_of(&p).and_then(|room| {
        gw.node.leave(&authed.conn(&gw), &authed.session, room)?;
        Ok(serde_json::json!({ "ok": true }))
    });
    reply(ack, result);
}

#[derive(Deserialize)]
pub(super) struct PublishArgs {
    room: Value,
    data: Option<Box<RawValue>>,
}

pub(super) async fn publish<A: Adapter>(
    authed: Authed<A>,
    TryData(p): TryData<PublishArgs>,
    ack: AckSender<A>,
    State(gw): State<Arc<Gateway>>,
) {
    let Some(ack) = authed.spend(&gw, ack) else {
        return;
    };
    let result = async {
        let args = p.map_err(|_| {
            AuthError::new(
                ErrorCode::InvalidRequest,
                "payload must be an object { room, data }",
            )
        })?;
        let Value::String(room) = &args.room else {
            return Err(not_a_string());
        };
        let message = gw
            .node
            .check_publish(&authed.session, room, args.data.as_deref())
            .await?;
        let _ = authed
            .socket
            .to(room.clone())
            .emit(server::ROOM_MESSAGE, &message)
            .await;
        Ok(serde_json::json!({ "ok": true, "id": message.id }))
    }
    .await;
    reply(ack, result);
}

pub(super) async fn members<A: Adapter>(
    authed: Authed<A>,
    TryData(p): TryData<Value>,
    ack: AckSender<A>,
    State(gw): State<Arc<Gateway>>,
) {
    let Some(ack) = authed.spend(&gw, ack) else {
        return;
    };
    let result = async {
        let room = room_of(&p)?;
        let members = gw.node.members_for(&authed.session, room).await?;
        Ok(serde_json::json!({ "ok": true, "room": room, "members": members }))
    }
    .await;
    reply(ack, result);
}
