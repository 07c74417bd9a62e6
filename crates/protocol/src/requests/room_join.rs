//! `room:join { room }` → `{ ok: true, room, members }`.

use serde::Serialize;
use serde_json::Value;

use super::{Refusal, object, room};

/// `room:join { room }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    /// The room.
    pub room: String,
}

impl Join {
    pub(super) fn parse(payload: Option<Value>) -> Result<Self, Refusal> {
        let mut fields = object(payload, "payload must be an object { room }")?;
        Ok(Self {
            room: room(&mut fields)?,
        })
    }
}

/// `{ ok: true, room, members }`: `members`, how many users are in the
/// room (counted without needing the presence right).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JoinAck<'a> {
    /// Always `true`.
    pub ok: bool,
    /// The room.
    pub room: &'a str,
    /// Users in it.
    pub members: usize,
}
