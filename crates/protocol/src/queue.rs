//! What a consumer takes from a queue: the JSON body of `POST /api/publish`
//! (its `idempotencyKey` included), or a server-side join or leave:
//!
//! ```json
//! { "room": "chat:1", "event": "message", "data": { "text": "hi" }, "idempotencyKey": "m-41" }
//! { "join": "team:1", "user": "alice" }
//! { "leave": "team:1", "sessionId": "7f3c…" }
//! { "join": "team:all", "room": "team:red" }
//! ```

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::publish::{Publish, PublishRequest};
use crate::rooms::{MAIN_NAMESPACE, RoomKey, Sockets, SocketsRequest, check_namespace};

/// One message from a queue.
#[derive(Debug, Clone)]
pub enum QueueMessage {
    /// A publish.
    Publish(Publish),
    /// The sockets named join `room` (`join: true`) or leave it.
    Move {
        /// The room joined or left.
        room: String,
        /// Whose sockets.
        sockets: Sockets,
        /// Join or leave.
        join: bool,
    },
}

/// Tells a publish from a join or leave, before the strict parse.
#[derive(Deserialize)]
struct Probe {
    join: Option<IgnoredAny>,
    leave: Option<IgnoredAny>,
}

/// `{ join | leave, user | sessionId | room }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MoveRequest {
    join: Option<String>,
    leave: Option<String>,
    user: Option<String>,
    session_id: Option<String>,
    room: Option<String>,
    namespace: Option<String>,
}

impl QueueMessage {
    /// Reads a message: the reason when it is not one (bad JSON, unknown
    /// fields, a wrong shape). The rules of publishing (reserved events,
    /// room names, sizes) are the node's to check.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let probe: Probe =
            serde_json::from_slice(body).map_err(|e| format!("not JSON of a message: {e}"))?;
        if probe.join.is_none() && probe.leave.is_none() {
            let request: PublishRequest =
                serde_json::from_slice(body).map_err(|e| format!("not a publish: {e}"))?;
            return request
                .into_publish()
                .map(QueueMessage::Publish)
                .map_err(str::to_owned);
        }
        let m: MoveRequest =
            serde_json::from_slice(body).map_err(|e| format!("not a join or leave: {e}"))?;
        let (room, join) = match (m.join, m.leave) {
            (Some(room), None) => (room, true),
            (None, Some(room)) => (room, false),
            _ => return Err("give one of join or leave".into()),
        };
        let sockets = SocketsRequest::new(m.user, m.session_id, m.room).into_sockets()?;
        // The rooms of another namespace go by their keys.
        let ns = m.namespace.as_deref().unwrap_or(MAIN_NAMESPACE);
        check_namespace(ns)?;
        let sockets = match sockets {
            Sockets::Room(from) => Sockets::Room(RoomKey::new(ns, &from).key()),
            other => other,
        };
        let room = RoomKey::new(ns, &room).key();
        Ok(QueueMessage::Move {
            room,
            sockets,
            join,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::Target;

    #[test]
    fn a_publish_and_its_key() {
        let m =
            QueueMessage::parse(br#"{"room":"a","event":"e","data":{"x":1},"idempotencyKey":"k"}"#)
                .unwrap();
        let QueueMessage::Publish(p) = m else {
            panic!("a publish")
        };
        assert_eq!(p.target, Target::Room("a".into()));
        assert_eq!(p.idempotency_key.as_deref(), Some("k"));
    }

    #[test]
    fn joins_and_leaves() {
        let m = QueueMessage::parse(br#"{"join":"team:1","user":"alice"}"#).unwrap();
        assert!(
            matches!(m, QueueMessage::Move { ref room, sockets: Sockets::User(ref u), join: true } if room == "team:1" && u == "alice")
        );
        let m = QueueMessage::parse(br#"{"leave":"t","room":"r"}"#).unwrap();
        assert!(matches!(
            m,
            QueueMessage::Move {
                sockets: Sockets::Room(_),
                join: false,
                ..
            }
        ));
    }

    #[test]
    fn moves_in_a_namespace_name_its_rooms_by_key() {
        let m =
            QueueMessage::parse(br#"{"join":"ops","room":"team","namespace":"/admin"}"#).unwrap();
        assert!(matches!(
            m,
            QueueMessage::Move { room, sockets: Sockets::Room(from), join: true }
                if room == "/admin ops" && from == "/admin team"
        ));
        assert!(QueueMessage::parse(br#"{"join":"ops","user":"a","namespace":"admin"}"#).is_err());
        let p = QueueMessage::parse(br#"{"room":"ops","event":"e","namespace":"/admin"}"#).unwrap();
        assert!(matches!(p, QueueMessage::Publish(p) if p.namespace.as_deref() == Some("/admin")));
    }

    #[test]
    fn what_is_not_a_message() {
        for bad in [
            &b"not json"[..],
            br#"[1,2]"#,
            br#"{"room":"a"}"#,
            br#"{"room":"a","event":"e","extra":1}"#,
            br#"{"join":"a","leave":"b","user":"u"}"#,
            br#"{"join":"a"}"#,
            br#"{"join":"a","user":"u","event":"e"}"#,
            br#"{"join":7,"user":"u"}"#,
        ] {
            assert!(
                QueueMessage::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
