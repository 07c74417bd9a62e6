//! A publish, the one shape every way in takes: the admin API's
//! `POST /api/publish`, the `publish` side effects of the app's replies,
//! and (with sockgate's own event) a socket's `room:publish`.
//!
//! On the wire it is `{ room | user | rooms, event, data, idempotencyKey }`
//! ([`PublishRequest`]); inside, a [`Publish`] with one [`Target`]. The
//! core checks it (reserved events, room names, sizes) and delivers it in
//! one place, `Node::publish`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// Where a publish goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One room.
    Room(String),
    /// Several rooms; a socket in more than one gets the event once.
    Rooms(Vec<String>),
    /// Every socket of a user (its own room).
    User(String),
}

/// A publish, before the core's checks.
#[derive(Debug, Clone)]
pub struct Publish {
    /// Where it goes.
    pub target: Target,
    /// The event name.
    pub event: String,
    /// Its data, forwarded as it came.
    pub data: Option<Box<RawValue>>,
    /// A producer's key: a second publish with the same key inside the
    /// idempotency window is a duplicate, delivered to nobody.
    pub idempotency_key: Option<String>,
    /// A session that does not get it (the publisher's own, for
    /// `room:publish`), on the node that holds it.
    pub except_session: Option<String>,
    /// The namespace whose rooms it goes to (`/` when not given).
    pub namespace: Option<String>,
}

impl Publish {
    /// `event` with `data` to `target`, with no key and no exception.
    pub fn new(target: Target, event: impl Into<String>, data: Option<Box<RawValue>>) -> Self {
        Self {
            target,
            event: event.into(),
            data,
            idempotency_key: None,
            except_session: None,
            namespace: None,
        }
    }
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Published {
    /// The sockets it reached on the node that took it.
    pub delivered: usize,
    /// True when its idempotency key was seen inside the window: it went
    /// to nobody.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// `{ room | user | rooms, event, data, idempotencyKey, exceptSession,
/// namespace }`,
/// as sent. `exceptSession` is for the app's replies (the sender of the
/// event, as Socket.IO's `socket.to(room)` leaves it out); the admin API
/// refuses it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PublishRequest {
    room: Option<String>,
    user: Option<String>,
    rooms: Option<Vec<String>>,
    event: String,
    data: Option<Box<RawValue>>,
    idempotency_key: Option<String>,
    except_session: Option<String>,
    namespace: Option<String>,
}

impl PublishRequest {
    /// The publish, if exactly one of `room`, `user` or `rooms` is given.
    pub fn into_publish(self) -> Result<Publish, &'static str> {
        let target = match (self.room, self.user, self.rooms) {
            (Some(room), None, None) => Target::Room(room),
            (None, Some(user), None) => Target::User(user),
            (None, None, Some(rooms)) => Target::Rooms(rooms),
            _ => return Err("give exactly one of room, user or rooms"),
        };
        Ok(Publish {
            target,
            event: self.event,
            data: self.data,
            idempotency_key: self.idempotency_key,
            except_session: self.except_session,
            namespace: self.namespace,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Publish, String> {
        let request: PublishRequest = serde_json::from_str(json).map_err(|e| e.to_string())?;
        request.into_publish().map_err(str::to_owned)
    }

    #[test]
    fn takes_one_target_and_the_key() {
        let p = parse(r#"{"user":"7","event":"e","data":[1],"idempotencyKey":"k1"}"#).unwrap();
        assert_eq!(p.target, Target::User("7".into()));
        assert_eq!(p.idempotency_key.as_deref(), Some("k1"));
        assert_eq!(p.data.unwrap().get(), "[1]");
        let p = parse(r#"{"rooms":["a","b"],"event":"e","exceptSession":"s1"}"#).unwrap();
        assert_eq!(p.except_session.as_deref(), Some("s1"));
        assert_eq!(p.target, Target::Rooms(vec!["a".into(), "b".into()]));
        assert!(p.idempotency_key.is_none());
    }

    #[test]
    fn refuses_two_targets_none_and_unknown_fields() {
        assert!(parse(r#"{"room":"a","user":"b","event":"e"}"#).is_err());
        assert!(parse(r#"{"event":"e"}"#).is_err());
        assert!(parse(r#"{"room":"a","event":"e","idempotency_key":"k"}"#).is_err());
    }

    #[test]
    fn a_duplicate_says_so_and_a_delivery_does_not() {
        let once = Published {
            delivered: 3,
            duplicate: false,
        };
        assert_eq!(serde_json::to_string(&once).unwrap(), r#"{"delivered":3}"#);
        let again = Published {
            delivered: 0,
            duplicate: true,
        };
        assert_eq!(
            serde_json::to_string(&again).unwrap(),
            r#"{"delivered":0,"duplicate":true}"#
        );
    }
}
