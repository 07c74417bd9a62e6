//! `room:members { room }` → `{ ok: true, room, members: [userId] }`.

use serde::Serialize;
use serde_json::Value;

use super::{Refusal, object, room};

/// `room:members { room }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Members {
    /// The room.
    pub room: String,
}

impl Members {
    pub(super) fn parse(payload: Option<Value>) -> Result<Self, Refusal> {
        let mut fields = object(payload, "payload must be an object { room }")?;
        Ok(Self {
            room: room(&mut fields)?,
        })
    }
}

/// `{ ok: true, room, members }`: the users present, sorted.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MembersAck<'a> {
    /// Always `true`.
    pub ok: bool,
    /// The room.
    pub room: &'a str,
    /// Its users.
    pub members: Vec<String>,
}
