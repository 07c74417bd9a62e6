//! `room:history { room, since?, limit? }` → `{ ok: true, room, messages,
//! offset, epoch, complete }`: the newest messages the history keeps of a
//! room (at most `limit`, after `since` when given), oldest first. The
//! admin API's `GET /api/rooms/{room}/history` answers the same, without
//! `ok`.

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{Refusal, object, room};
use crate::codes::ErrorCode;

/// Most messages one answer holds; also the default.
pub const MAX_HISTORY_LIMIT: usize = 100;

/// `room:history { room, since?, limit? }`.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// The room.
    pub room: String,
    /// Only messages after this offset (`{ms}-{seq}`, as broadcasts carry
    /// them last and answers give it as `offset`).
    pub since: Option<String>,
    /// At most this many, the newest (1 to [`MAX_HISTORY_LIMIT`]).
    pub limit: usize,
}

impl History {
    pub(super) fn parse(payload: Option<Value>) -> Result<Self, Refusal> {
        let mut fields = object(
            payload,
            "payload must be an object { room, since?, limit? }",
        )?;
        let room = room(&mut fields)?;
        let since = match fields.remove("since") {
            None | Some(Value::Null) => None,
            Some(Value::String(since)) => Some(since),
            Some(_) => return Err(invalid("since must be an offset string")),
        };
        let limit = match fields.remove("limit") {
            None | Some(Value::Null) => MAX_HISTORY_LIMIT,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(n @ 1..) if n as usize <= MAX_HISTORY_LIMIT => n as usize,
                _ => return Err(invalid("limit must be an integer from 1 to 100")),
            },
            Some(_) => return Err(invalid("limit must be an integer from 1 to 100")),
        };
        Ok(Self { room, since, limit })
    }
}

fn invalid(message: &'static str) -> Refusal {
    Refusal::new(ErrorCode::InvalidRequest, message)
}

/// One kept message.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryMessage {
    /// Its offset.
    pub offset: String,
    /// Its event.
    pub event: String,
    /// Its data, as it was published.
    pub data: Box<RawValue>,
}

/// The answer: `{ ok: true, room, messages, offset, epoch, complete }`.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryAck<'a> {
    /// Always `true` (left out of the admin API's answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    /// The room.
    pub room: &'a str,
    /// The newest messages asked for, oldest first.
    pub messages: Vec<HistoryMessage>,
    /// The history's newest offset: the `since` of the next ask (`null`
    /// while it is empty).
    pub offset: Option<String>,
    /// The history's identity: offsets of another epoch (a single node's
    /// restart) mean nothing here.
    pub epoch: String,
    /// Whether every message of the room after `since` is still kept (a
    /// bound or the window may have dropped older ones).
    pub complete: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_limit_defaults_to_the_most_and_is_bounded() {
        let h = History::parse(Some(json!({ "room": "a" }))).unwrap();
        assert_eq!((h.since, h.limit), (None, MAX_HISTORY_LIMIT));
        let h = History::parse(Some(json!({ "room": "a", "since": "1-0", "limit": 5 }))).unwrap();
        assert_eq!((h.since.as_deref(), h.limit), (Some("1-0"), 5));
        for bad in [
            json!({ "room": "a", "limit": 0 }),
            json!({ "room": "a", "limit": 101 }),
            json!({ "room": "a", "limit": "5" }),
            json!({ "room": "a", "since": 5 }),
        ] {
            assert_eq!(
                History::parse(Some(bad)).unwrap_err().code,
                ErrorCode::InvalidRequest
            );
        }
    }
}
