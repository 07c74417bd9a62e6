//! The rules every publish passes, wherever it comes from (the admin
//! API's `POST /api/publish`, the replies of the app's backend, the
//! consumers): [`crate::Node::publish`] applies them before it delivers.

use crate::limits::check_payload;
use crate::rooms::{self, UserRoom};
use sockgate_auth::{AuthError, ErrorCode};
use sockgate_protocol::events::{RESERVED_PREFIXES, SOCKET_IO_EVENTS};
pub use sockgate_protocol::publish::{MAX_IDEMPOTENCY_KEY, Publish, Published, Target};
use sockgate_protocol::rooms::{MAIN_NAMESPACE, RoomKey};

/// Most rooms one publish may name.
pub const MAX_PUBLISH_ROOMS: usize = 1000;

/// The rooms `publish` goes to, once its event, target, data and key pass
/// the rules: `INVALID_REQUEST` or `ROOM_INVALID` for a wrong shape,
/// `PAYLOAD_TOO_LARGE` for data over the publish limit. A `user` target
/// is that user's own room.
pub fn check(
    publish: &Publish,
    user_room: &UserRoom,
    max_payload: usize,
) -> Result<Vec<String>, AuthError> {
    check_event(&publish.event)?;
    check_key(publish.idempotency_key.as_deref())?;
    let rooms = targets(&publish.target, user_room)?;
    check_payload(publish.data.as_deref(), max_payload)?;
    match publish.namespace.as_deref() {
        None | Some(MAIN_NAMESPACE) => Ok(rooms),
        Some(ns) => {
            check_namespace(ns)?;
            Ok(rooms
                .iter()
                .map(|room| RoomKey::new(ns, room).key())
                .collect())
        }
    }
}

/// `INVALID_REQUEST` for a name that cannot be a namespace's.
pub(crate) fn check_namespace(ns: &str) -> Result<(), AuthError> {
    sockgate_protocol::rooms::check_namespace(ns).map_err(invalid)
}

/// The rooms a target names, checked.
fn targets(target: &Target, user_room: &UserRoom) -> Result<Vec<String>, AuthError> {
    let rooms = match target {
        Target::Room(room) => vec![room.clone()],
        Target::User(user) => {
            if !sockgate_auth::identity::is_valid_user_id(user) {
                return Err(invalid(
                    "user must be 1 to 256 bytes, without whitespace or control characters",
                ));
            }
            // Any id a token may carry can be reached, though the longest
            // are past the room-name limit.
            return Ok(vec![user_room.name(user)]);
        }
        Target::Rooms(rooms) if !rooms.is_empty() && rooms.len() <= MAX_PUBLISH_ROOMS => {
            rooms.clone()
        }
        Target::Rooms(_) => {
            return Err(invalid(format!(
                "rooms must hold 1 to {MAX_PUBLISH_ROOMS} rooms"
            )));
        }
    };
    for room in &rooms {
        rooms::validate(room)?;
    }
    Ok(rooms)
}

/// An idempotency key: 1 to [`MAX_IDEMPOTENCY_KEY`] bytes of printable
/// text.
fn check_key(key: Option<&str>) -> Result<(), AuthError> {
    match key {
        Some(k)
            if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY || k.chars().any(char::is_control) =>
        {
            Err(invalid(format!(
                "idempotencyKey must be 1 to {MAX_IDEMPOTENCY_KEY} bytes of printable text"
            )))
        }
        _ => Ok(()),
    }
}

/// An event name a backend may send: 1 to 100 printable characters, and
/// none of Socket.IO's own names or sockgate's events, which a backend must
/// not be able to forge.
pub(crate) fn check_event(event: &str) -> Result<(), AuthError> {
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
