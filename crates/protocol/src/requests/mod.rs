//! sockgate's own client events as typed requests and their acks, one event
//! a file. [`Request::parse`] reads an event's name and first argument:
//! `None` for an event sockgate does not handle (it goes to the app's
//! backend), else the request or the refusal of its payload.
//!
//! Every refusal is acked `{ ok: false, code, message }`; the codes are
//! the contract, the sentences may change.

mod echo;
mod refresh;
mod room_history;
mod room_join;
mod room_leave;
mod room_members;
mod room_publish;
mod ticket;
mod whoami;

pub use echo::Echo;
pub use refresh::{Refresh, RefreshAck};
pub use room_history::{History, HistoryAck, HistoryMessage, MAX_HISTORY_LIMIT};
pub use room_join::{Join, JoinAck};
pub use room_leave::{Leave, LeaveAck};
pub use room_members::{Members, MembersAck};
pub use room_publish::{Publish, PublishAck};
pub use ticket::{Ticket, TicketAck};
pub use whoami::{WhoAmI, WhoAmIAck};

use serde_json::{Map, Value};

use crate::codes::ErrorCode;
use crate::events::client;

/// A payload that is not what its event takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The code of the ack.
    pub code: ErrorCode,
    /// Its sentence.
    pub message: &'static str,
}

impl Refusal {
    const fn new(code: ErrorCode, message: &'static str) -> Self {
        Self { code, message }
    }
}

/// One of sockgate's own client events, read.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `auth:whoami`.
    WhoAmI(WhoAmI),
    /// `auth:refresh { token }`.
    Refresh(Refresh),
    /// `auth:ticket`.
    Ticket(Ticket),
    /// `echo <payload>`.
    Echo(Echo),
    /// `room:join { room }`.
    Join(Join),
    /// `room:leave { room }`.
    Leave(Leave),
    /// `room:publish { room, data }`.
    Publish(Publish),
    /// `room:members { room }`.
    Members(Members),
    /// `room:history { room, since?, limit? }`.
    History(History),
}

impl Request {
    /// Reads `event` with its first argument; `None` when sockgate does not
    /// handle `event`.
    pub fn parse(event: &str, payload: Option<Value>) -> Option<Result<Request, Refusal>> {
        let request = match event {
            client::WHOAMI => Ok(Request::WhoAmI(WhoAmI)),
            client::REFRESH => Refresh::parse(payload).map(Request::Refresh),
            client::TICKET => Ok(Request::Ticket(Ticket)),
            client::ECHO => Ok(Request::Echo(Echo::parse(payload))),
            client::ROOM_JOIN => Join::parse(payload).map(Request::Join),
            client::ROOM_LEAVE => Leave::parse(payload).map(Request::Leave),
            client::ROOM_PUBLISH => Publish::parse(payload).map(Request::Publish),
            client::ROOM_MEMBERS => Members::parse(payload).map(Request::Members),
            client::ROOM_HISTORY => History::parse(payload).map(Request::History),
            _ => return None,
        };
        Some(request)
    }
}

/// The object a room event takes, or `INVALID_REQUEST` naming its shape.
fn object(payload: Option<Value>, shape: &'static str) -> Result<Map<String, Value>, Refusal> {
    match payload {
        Some(Value::Object(fields)) => Ok(fields),
        _ => Err(Refusal::new(ErrorCode::InvalidRequest, shape)),
    }
}

/// The `room` field, a string, or `ROOM_INVALID`. Its name rules are the
/// core's (`rooms::check_name`), checked with the action.
fn room(fields: &mut Map<String, Value>) -> Result<String, Refusal> {
    match fields.remove("room") {
        Some(Value::String(room)) => Ok(room),
        _ => Err(Refusal::new(
            ErrorCode::RoomInvalid,
            "room must be a string",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(event: &str, payload: Value) -> ErrorCode {
        Request::parse(event, Some(payload))
            .unwrap()
            .unwrap_err()
            .code
    }

    #[test]
    fn known_events_are_read_unknown_ones_are_not() {
        assert_eq!(Request::parse("chat:send", None), None);
        assert_eq!(
            Request::parse(client::ROOM_JOIN, Some(json!({ "room": "a" }))),
            Some(Ok(Request::Join(Join { room: "a".into() })))
        );
        assert_eq!(
            Request::parse(client::ECHO, None),
            Some(Ok(Request::Echo(Echo(Value::Null))))
        );
    }

    #[test]
    fn payloads_of_the_wrong_shape_get_their_codes() {
        assert_eq!(
            code(client::ROOM_JOIN, json!("a")),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            code(client::ROOM_JOIN, json!({ "room": 1 })),
            ErrorCode::RoomInvalid
        );
        assert_eq!(
            code(client::ROOM_PUBLISH, json!([])),
            ErrorCode::InvalidRequest
        );
        assert_eq!(code(client::REFRESH, json!({})), ErrorCode::AuthRequired);
        assert_eq!(
            code(client::REFRESH, json!({ "token": 1 })),
            ErrorCode::TokenInvalid
        );
        assert_eq!(code(client::REFRESH, json!(1)), ErrorCode::TokenInvalid);
    }
}
