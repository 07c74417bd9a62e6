//! A publish request, `{ room | user | rooms, event, data }`, checked the
//! same way wherever it comes from: the admin API's `POST /api/publish` and
//! the replies of the app's backend to client events.

use crate::limits::check_payload;
use crate::rooms::{self, UserRoom};
use serde::Deserialize;
use serde_json::value::RawValue;
use sockgate_auth::{AuthError, ErrorCode};
use sockgate_protocol::events::{RESERVED_PREFIXES, SOCKET_IO_EVENTS};

/// A checked publish: the rooms it goes to (a user's room for `user`),
/// its event and data.
#[derive(Debug, Clone)]
pub struct Publish {
    /// The rooms it goes to.
    pub rooms: Vec<String>,
    /// The event name.
    pub event: String,
    /// Its data.
    pub data: Option<Box<RawValue>>,
}

/// Most rooms one publish may name.
pub const MAX_PUBLISH_ROOMS: usize = 1000;

/// `{ room | user | rooms, event, data }`, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    room: Option<String>,
    user: Option<String>,
    rooms: Option<Vec<String>>,
    event: String,
    data: Option<Box<RawValue>>,
}

impl PublishRequest {
    /// The publish, once its event, rooms and data pass the rules:
    /// `INVALID_REQUEST` or `ROOM_INVALID` for a wrong shape,
    /// `PAYLOAD_TOO_LARGE` for data over the publish limit.
    pub fn check(self, user_room: &UserRoom, max_payload: usize) -> Result<Publish, AuthError> {
        check_event(&self.event)?;
        let rooms = self.targets(user_room)?;
        check_payload(self.data.as_deref(), max_payload)?;
        Ok(Publish {
            rooms,
            event: self.event,
            data: self.data,
        })
    }

    /// The rooms the publish goes to, checked.
    fn targets(&self, user_room: &UserRoom) -> Result<Vec<String>, AuthError> {
        let rooms = match (&self.room, &self.user, &self.rooms) {
            (Some(room), None, None) => vec![room.clone()],
            (None, Some(user), None) => {
                if !sockgate_auth::identity::is_valid_user_id(user) {
                    return Err(invalid(
                        "user must be 1 to 256 bytes, without whitespace or control characters",
                    ));
                }
                // Any id a token may carry can be reached, though the longest
                // are past the room-name limit.
                return Ok(vec![user_room.name(user)]);
            }
            (None, None, Some(rooms)) if !rooms.is_empty() && rooms.len() <= MAX_PUBLISH_ROOMS => {
                rooms.clone()
            }
            (None, None, Some(_)) => {
                return Err(invalid(format!(
                    "rooms must hold 1 to {MAX_PUBLISH_ROOMS} rooms"
                )));
            }
            _ => return Err(invalid("give exactly one of room, user or rooms")),
        };
        for room in &rooms {
            rooms::validate(room)?;
        }
        Ok(rooms)
    }
}

/// An event name a backend may send: 1 to 100 printable characters, and
/// none of Socket.IO's own names or sockgate's events, which a backend must
/// not be able to forge.
pub fn check_event(event: &str) -> Result<(), AuthError> {
    let chars = event.chars().count();
    if chars == 0 || chars > 100 || event.chars().any(char::is_control) {
        return Err(invalid("event must be 1 to 100 printable characters"));
    }
    if SOCKET_IO_EVENTS.contains(&event) || RESERVED_PREFIXES.iter().any(|p| event.starts_with(p)) {
        return Err(invalid(format!(
            "event `{event}` is reserved (auth:*, session:*, room:*, sockgate:* and Socket.IO's own names)"
        )));
    }
    Ok(())
}

fn invalid(message: impl Into<String>) -> AuthError {
    AuthError::new(ErrorCode::InvalidRequest, message.into())
}
