//! `room:leave { room }` → `{ ok: true }`.

use serde::Serialize;
use serde_json::Value;

use super::{Refusal, object, room};

/// `room:leave { room }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Leave {
    /// The room.
    pub room: String,
}

impl Leave {
    pub(super) fn parse(payload: Option<Value>) -> Result<Self, Refusal> {
        let mut fields = object(payload, "payload must be an object { room }")?;
        Ok(Self {
            room: room(&mut fields)?,
        })
    }
}

/// `{ ok: true }`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LeaveAck {
    /// Always `true`.
    pub ok: bool,
}
