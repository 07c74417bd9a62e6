//! `room:publish { room, data }` → `{ ok: true, id }`; the room's other
//! sockets get `room:message { id, room, from, data, ts }`.

use serde::Serialize;
use serde_json::Value;

use super::{Refusal, object, room};

/// `room:publish { room, data }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    /// The room.
    pub room: String,
    /// What is published, forwarded as it came (its size is its JSON
    /// text's).
    pub data: Option<Value>,
}

impl Publish {
    pub(super) fn parse(payload: Option<Value>) -> Result<Self, Refusal> {
        let mut fields = object(payload, "payload must be an object { room, data }")?;
        Ok(Self {
            room: room(&mut fields)?,
            data: fields.remove("data"),
        })
    }
}

/// `{ ok: true, id }`: the message's id, as the others get it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PublishAck<'a> {
    /// Always `true`.
    pub ok: bool,
    /// The message's id.
    pub id: &'a str,
}
