//! Rooms: names, membership, presence, and the client room events.
//!
//! - `room:join { room }` → `{ ok: true, room, members }` (`members`: how many
//!   users are in the room, counted without needing the presence right).
//! - `room:leave { room }` → `{ ok: true }`.
//! - `room:publish { room, data }` → `{ ok: true, id }`; the room's other
//!   sockets get `room:message { id, room, from, data, ts }`.
//! - `room:members { room }` → `{ ok: true, room, members: [userId] }`.
//!
//! Errors are `{ ok: false, code, message }`. A socket is always in its own
//! `user:{userId}` room and can never join another user's. Membership is
//! kept in an index next to socketioxide's rooms, so member counts and
//! presence never scan sockets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef, State, TryData};
use sockgate_auth::{AuthError, ErrorCode};
use sockgate_protocol::events::{client, server};
use sockgate_protocol::rooms::check_name;

use crate::Gateway;
use crate::cluster::{Cluster, Write};
use crate::events::admit_event;
use crate::policy::Action;
use crate::sessions::{Connection, Session, unix_now_ms};
use crate::telemetry;

pub use sockgate_protocol::rooms::USER_ROOM_PREFIX;

/// Checks a room name: 1 to 200 printable characters, no whitespace.
pub fn validate(room: &str) -> Result<(), AuthError> {
    check_name(room).map_err(|why| AuthError::new(ErrorCode::RoomInvalid, why))
}

/// Which users are in which room on this node, with a socket count each.
#[derive(Default)]
pub struct Rooms {
    members: Mutex<HashMap<String, HashMap<String, u32>>>,
    /// In cluster mode, told when a user arrives in or leaves a room here.
    cluster: OnceLock<Arc<Cluster>>,
}

/// What can be taken out of a room of the Socket.IO layer: the socket in
/// its own handlers, the registry's connection elsewhere.
pub trait Leave {
    fn leave_room(&self, room: &str);
}

impl<A: Adapter> Leave for SocketRef<A> {
    fn leave_room(&self, room: &str) {
        self.leave(room.to_owned());
    }
}

impl Leave for dyn Connection {
    fn leave_room(&self, room: &str) {
        self.leave(room);
    }
}

impl Rooms {
    pub(crate) fn set_cluster(&self, cluster: Arc<Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// Puts the socket in `room`. Returns false when it already was.
    pub fn enter<A: Adapter>(&self, socket: &SocketRef<A>, session: &Session, room: &str) -> bool {
        if !session.add_room(room) {
            return false;
        }
        socket.join(room.to_owned());
        let mut members = self.members.lock().expect("rooms lock");
        let count = members
            .entry(room.to_owned())
            .or_default()
            .entry(session.user_id.clone())
            .or_default();
        *count += 1;
        if *count == 1
            && let Some(cluster) = self.cluster.get()
        {
            cluster.write(Write::PresenceUp {
                room: room.to_owned(),
                user_id: session.user_id.clone(),
            });
        }
        true
    }

    /// Takes the socket out of `room`. Returns false when it was not in it.
    pub fn exit<L: Leave + ?Sized>(&self, socket: &L, session: &Session, room: &str) -> bool {
        if !session.remove_room(room) {
            return false;
        }
        socket.leave_room(room);
        self.uncount(room, &session.user_id);
        true
    }

    /// The `n` rooms with the most members on this node (users' own rooms
    /// left out), most first.
    pub fn top(&self, n: usize) -> Vec<(String, usize)> {
        let members = self.members.lock().expect("rooms lock");
        let mut rooms: Vec<(String, usize)> = members
            .iter()
            .filter(|(room, _)| !room.starts_with(USER_ROOM_PREFIX))
            .map(|(room, users)| (room.clone(), users.len()))
            .collect();
        rooms.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rooms.truncate(n);
        rooms
    }

    /// Drops a disconnected session from every room it was in (socketioxide
    /// removes the socket itself).
    pub fn forget(&self, session: &Session) {
        for room in session.take_rooms() {
            self.uncount(&room, &session.user_id);
        }
    }

    fn uncount(&self, room: &str, user: &str) {
        let mut members = self.members.lock().expect("rooms lock");
        if let Some(users) = members.get_mut(room) {
            if let Some(n) = users.get_mut(user) {
                *n -= 1;
                if *n == 0 {
                    users.remove(user);
                    if let Some(cluster) = self.cluster.get() {
                        cluster.write(Write::PresenceDown {
                            room: room.to_owned(),
                            user_id: user.to_owned(),
                        });
                    }
                }
            }
            if users.is_empty() {
                members.remove(room);
            }
        }
    }

    /// The users present in `room`, sorted.
    pub fn members(&self, room: &str) -> Vec<String> {
        let members = self.members.lock().expect("rooms lock");
        let mut users: Vec<String> = members
            .get(room)
            .map(|u| u.keys().cloned().collect())
            .unwrap_or_default();
        users.sort();
        users
    }

    /// Every `(room, user)` pair present on this node.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let members = self.members.lock().expect("rooms lock");
        members
            .iter()
            .flat_map(|(room, users)| users.keys().map(move |u| (room.clone(), u.clone())))
            .collect()
    }

    /// How many users are present in `room`.
    pub fn count(&self, room: &str) -> usize {
        self.members
            .lock()
            .expect("rooms lock")
            .get(room)
            .map_or(0, HashMap::len)
    }
}

/// Registers the room events on a connected socket.
pub(crate) fn register<A: Adapter>(s: &SocketRef<A>) {
    s.on(client::ROOM_JOIN, join);
    s.on(client::ROOM_LEAVE, leave);
    s.on(client::ROOM_PUBLISH, publish);
    s.on(client::ROOM_MEMBERS, members);
}

/// The `room` field of a payload, checked.
fn room_of(payload: &Result<Value, socketioxide::ParserError>) -> Result<String, AuthError> {
    let Ok(Value::Object(obj)) = payload else {
        return Err(AuthError::new(
            ErrorCode::InvalidRequest,
            "payload must be an object { room }",
        ));
    };
    match obj.get("room") {
        Some(Value::String(room)) => validate(room).map(|()| room.clone()),
        _ => Err(AuthError::new(
            ErrorCode::RoomInvalid,
            "room must be a string",
        )),
    }
}

fn reply<A: Adapter, T: Serialize>(ack: AckSender<A>, result: Result<T, AuthError>) {
    let _ = match result {
        Ok(v) => ack.send(&v),
        Err(e) => ack.send(&e.to_ack()),
    };
}

async fn join<A: Adapter>(
    s: SocketRef<A>,
    TryData(p): TryData<Value>,
    ack: AckSender<A>,
    State(gw): State<Arc<Gateway>>,
) {
    let Some((session, ack)) = admit_event(&s, &gw, ack) else {
        return;
    };
    let result = async {
        let room = room_of(&p)?;
        if let Some(owner) = room.strip_prefix(USER_ROOM_PREFIX) {
            if owner != session.user_id {
                return Err(AuthError::new(
                    ErrorCode::Forbidden,
                    "user rooms are reserved to their user",
                ));
            }
        } else {
            // The own user room does not count towards the limit.
            if !session.in_room(&room) && session.room_count() > gw.limits.max_rooms_per_socket {
                return Err(AuthError::new(
                    ErrorCode::RoomLimit,
                    format!(
                        "a socket may be in at most {} rooms",
                        gw.limits.max_rooms_per_socket
                    ),
                ));
            }
            let verdict = gw
                .policy
                .authorize(&session.identity(), &room, Action::Join, false)
                .await;
            telemetry::room_join(verdict.is_ok());
            verdict?;
            gw.rooms.enter(&s, &session, &room);
        }
        let members = gw.room_member_count(&room).await;
        Ok(serde_json::json!({ "ok": true, "room": room, "members": members }))
    }
    .await;
    reply(ack, result);
}

async fn leave<A: Adapter>(
    s: SocketRef<A>,
    TryData(p): TryData<Value>,
    ack: AckSender<A>,
    State(gw): State<Arc<Gateway>>,
) {
    let Some((session, ack)) = admit_event(&s, &gw, ack) else {
        return;
    };
    let result = room_of(&p).and_then(|room| {
        if room == session.user_room() {
            return Err(AuthError::new(
                ErrorCode::Forbidden,
                "a socket always stays in its own user room",
            ));
        }
        gw.rooms.exit(&s, &session, &room);
        Ok(serde_json::json!({ "ok": true }))
    });
    reply(ack, result);
}

#[derive(Deserialize)]
struct PublishArgs {
    room: Value,
    data: Option<Box<RawValue>>,
}

/// What members receive; `data` is forwarded as it came, never re-parsed.
#[derive(Serialize)]
struct RoomMessage<'a> {
    id: &'a str,
    room: &'a str,
    from: &'a str,
    data: Option<&'a RawValue>,
    ts: u64,
}

async fn publish<A: Adapter>(
    s: SocketRef<A>,
    TryData(p): TryData<PublishArgs>,
    ack: AckSender<A>,
    State(gw): State<Arc<Gateway>>,
) {
    let Some((session, ack)) = admit_event(&s, &gw, ack) else {
        return;
    };
    let result = async {
        let args = p.map_err(|_| {
            AuthError::new(
                ErrorCode::InvalidRequest,
                "payload must be an object { room, data }",
            )
        })?;
        let room = match args.room {
            Value::String(room) => validate(&room).map(|()| room)?,
            _ => {
                return Err(AuthError::new(
                    ErrorCode::RoomInvalid,
                    "room must be a string",
                ));
            }
        };
        let size = args.data.as_ref().map_or(0, |d| d.get().len());
        if size > gw.limits.max_payload {
            return Err(AuthError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "data is {size} bytes; the limit is {}",
                    gw.limits.max_payload
                ),
            ));
        }
        if !session.in_room(&room) {
            return Err(AuthError::new(
                ErrorCode::Forbidden,
                "join the room before publishing to it",
            ));
        }
        gw.policy
            .authorize(&session.identity(), &room, Action::Publish, false)
            .await?;
        let id = format!("{:016x}", rand::random::<u64>());
        let message = RoomMessage {
            id: &id,
            room: &room,
            from: &session.user_id,
            data: args.data.as_deref(),
            ts: unix_now_ms(),
        };
        let _ = s
            .to(room.clone())
            .emit(server::ROOM_MESSAGE, &message)
            .await;
        telemetry::message_out("room", 1);
        Ok(serde_json::json!({ "ok": true, "id": id }))
    }
    .await;
    reply(ack, result);
}

async fn members<A: Adapter>(
    s: SocketRef<A>,
    TryData(p): TryData<Value>,
    ack: AckSender<A>,
    State(gw): State<Arc<Gateway>>,
) {
    let Some((session, ack)) = admit_event(&s, &gw, ack) else {
        return;
    };
    let result = async {
        let room = room_of(&p)?;
        if room != session.user_room() {
            gw.policy
                .authorize(&session.identity(), &room, Action::Presence, false)
                .await?;
        }
        Ok(serde_json::json!({ "ok": true, "room": room, "members": gw.room_members(&room).await }))
    }
    .await;
    reply(ack, result);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names() {
        for ok in ["a", "chat:lobby", "team:red:*x", &"é".repeat(200), "a/b#c"] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            " ",
            "a b",
            "tab\there",
            "new\nline",
            "bell\u{7}",
            &"x".repeat(201),
        ] {
            assert_eq!(
                validate(bad).unwrap_err().code,
                ErrorCode::RoomInvalid,
                "{bad:?}"
            );
        }
    }
}
