//! Rooms on a node: joining, leaving, publishing and members, with the
//! policy and the limits applied, and the backend's view of other nodes.

use serde::Serialize;
use serde_json::value::RawValue;
use sockgate_auth::{AuthError, ErrorCode};
use sockgate_protocol::events::server;
use sockgate_protocol::payloads::RoomRevoked;

use super::{Node, json};
use crate::backend::{Control, Delivery, Once, Outgoing};
use crate::connection::Connection;
use crate::policy::Action;
use crate::publish::{Publish, Published};
use crate::recovery::Keep;
use crate::rooms::validate;
use crate::session::{Session, SessionId, SessionInfo};
use crate::telemetry;
use sockgate_protocol::rooms::{RoomKey, Sockets};

/// What a room's members receive as `room:message`; `data` is forwarded
/// as it came, never re-parsed.
#[derive(Debug, Serialize)]
pub struct RoomMessage<'a> {
    /// A random id for the message.
    pub id: String,
    /// The room.
    pub room: &'a str,
    /// The publishing user.
    pub from: &'a str,
    /// The payload.
    pub data: Option<&'a RawValue>,
    /// Unix milliseconds.
    pub ts: u64,
}

impl Node {
    /// `room:join`: puts the session in `room` of its namespace when the
    /// policy allows it (its own user room always; another user's never).
    /// Returns how many users are in the room.
    pub async fn join(
        &self,
        conn: &dyn Connection,
        session: &Session,
        room: &str,
    ) -> Result<usize, AuthError> {
        validate(room)?;
        let key = session.room_key(room);
        if self.user_room.is_user_room(room) {
            if self.user_room.owner(room) != Some(session.user_id.as_str()) {
                return Err(AuthError::new(
                    ErrorCode::Forbidden,
                    "user rooms are reserved to their user",
                ));
            }
        } else {
            let max = self.limits.max_rooms_per_socket;
            // The own user room does not count towards the limit.
            if !session.in_room(&key) && session.room_count() > max {
                return Err(AuthError::new(
                    ErrorCode::RoomLimit,
                    format!("a socket may be in at most {max} rooms"),
                ));
            }
            let verdict = self
                .policy_of(session)
                .authorize(&session.identity(), room, Action::Join, false)
                .await;
            telemetry::room_join(verdict.is_ok());
            verdict?;
            self.enter(conn, session, &key);
            self.broker.listening(std::slice::from_ref(&key)).await;
        }
        Ok(self.room_member_count(&key).await)
    }

    /// `room:leave`: takes the session out of `room`; never out of its own
    /// user room.
    pub fn leave(
        &self,
        conn: &dyn Connection,
        session: &Session,
        room: &str,
    ) -> Result<(), AuthError> {
        validate(room)?;
        let key = session.room_key(room);
        if key == session.user_room() {
            return Err(AuthError::new(
                ErrorCode::Forbidden,
                "a socket always stays in its own user room",
            ));
        }
        self.exit(conn, session, &key);
        Ok(())
    }

    /// `room:publish`: publishes `data` to `room` for the session, if it
    /// is in the room and the policy lets it publish there. The room's
    /// other connections get `room:message { id, room, from, data, ts }`.
    /// Returns the message's id.
    pub async fn publish_from(
        &self,
        conn: &dyn Connection,
        session: &Session,
        room: &str,
        data: Option<&RawValue>,
    ) -> Result<String, AuthError> {
        validate(room)?;
        self.check_payload(data)?;
        let key = session.room_key(room);
        if !session.in_room(&key) {
            return Err(AuthError::new(
                ErrorCode::Forbidden,
                "join the room before publishing to it",
            ));
        }
        self.options_of(&key).check_client_publish()?;
        self.policy_of(session)
            .authorize(&session.identity(), room, Action::Publish, false)
            .await?;
        telemetry::message_out("room", 1);
        let message = RoomMessage {
            id: format!("{:016x}", rand::random::<u64>()),
            room,
            from: &session.user_id,
            data,
            ts: self.clock.now_ms(),
        };
        let body = serde_json::value::to_raw_value(&message).expect("payloads serialize");
        let out = Outgoing {
            rooms: vec![key],
            event: server::ROOM_MESSAGE,
            data: Some(&body),
            except: Some(conn.transport_id()),
            once: None,
            logged: true,
            keep: Default::default(),
        };
        self.deliver(out).await?;
        Ok(message.id)
    }

    /// `PAYLOAD_TOO_LARGE` for data over the publish limit.
    pub(crate) fn check_payload(&self, data: Option<&RawValue>) -> Result<(), AuthError> {
        crate::limits::check_payload(data, self.limits.max_payload)
    }

    /// `room:members`: the users in `room`, for a session with the
    /// presence right (always in its own user room).
    pub async fn members_for(
        &self,
        session: &Session,
        room: &str,
    ) -> Result<Vec<String>, AuthError> {
        validate(room)?;
        let key = session.room_key(room);
        if key != session.user_room() {
            self.options_of(&key).check_presence()?;
            self.policy_of(session)
                .authorize(&session.identity(), room, Action::Presence, false)
                .await?;
        }
        Ok(self.room_members(&key).await)
    }

    /// After a refresh: rights are recomputed for every room the session is
    /// in; a room it may no longer join is left, with `room:revoked { room }`.
    /// A room whose answer is unavailable (webhook down) is kept.
    pub(crate) async fn recheck_rooms(&self, session: &Session) {
        let Some((_, conn)) = self.sessions.get(session.id) else {
            return;
        };
        let identity = session.identity();
        let own = session.user_room();
        for key in session.rooms().into_iter().filter(|r| *r != own) {
            let room = RoomKey::parse(&key).name;
            let verdict = self
                .policy_of(session)
                .authorize(&identity, room, Action::Join, true)
                .await;
            if matches!(&verdict, Err(e) if e.code == ErrorCode::Forbidden) {
                self.exit(conn.as_ref(), session, &key);
                let revoked = RoomRevoked { room };
                conn.emit_value(server::ROOM_REVOKED, &json(&revoked));
            }
        }
    }

    /// The sockets `who` names, on every node, join (`join`) or leave
    /// `room`: the admin API's and the consumers' server-side joins
    /// (Socket.IO's `socketsJoin` / `socketsLeave`). The operator decides,
    /// so the room policy is not asked; the room-name rules, users' own
    /// rooms (never joined or left this way) and the room limit (a socket
    /// at it is skipped) still apply. Returns the sockets moved on this
    /// node.
    pub async fn move_sockets(
        &self,
        who: Sockets,
        room: &str,
        join: bool,
    ) -> Result<usize, AuthError> {
        let name = RoomKey::parse(room).name;
        validate(name)?;
        match &who {
            Sockets::Room(from) => validate(RoomKey::parse(from).name)?,
            Sockets::User(user) if !sockgate_auth::identity::is_valid_user_id(user) => {
                return Err(AuthError::new(
                    ErrorCode::InvalidRequest,
                    "user must be 1 to 256 bytes, without whitespace or control characters",
                ));
            }
            Sockets::SessionId(id) if SessionId::parse(id).is_none() => {
                return Err(AuthError::new(
                    ErrorCode::InvalidRequest,
                    "sessionId is not a session id",
                ));
            }
            _ => {}
        }
        if self.user_room.is_user_room(name) {
            return Err(AuthError::new(
                ErrorCode::Forbidden,
                "users' own rooms are not joined or left: every socket is in its own",
            ));
        }
        let moved = self.move_here(&who, room, join);
        let msg = Control::MoveSockets {
            who,
            to: room.to_owned(),
            join,
        };
        self.control.announce(&msg).await;
        Ok(moved)
    }

    /// [`Node::move_sockets`] on this node's sockets: those of the room's
    /// namespace.
    pub(crate) fn move_here(&self, who: &Sockets, room: &str, join: bool) -> usize {
        let max = self.limits.max_rooms_per_socket;
        let ns = RoomKey::parse(room).ns;
        let targets = match who {
            Sockets::Room(from) => self.sessions.matching(|s| s.in_room(from)),
            Sockets::User(user) => self.sessions.of_user(user),
            Sockets::SessionId(id) => SessionId::parse(id)
                .and_then(|id| self.sessions.get(id))
                .into_iter()
                .collect(),
        };
        let mut moved = 0;
        for (session, conn) in targets {
            if session.namespace() != ns {
                continue;
            }
            if join {
                // The own user room does not count towards the limit.
                if session.room_count() > max {
                    continue;
                }
                self.enter(conn.as_ref(), &session, room);
            } else {
                self.exit(conn.as_ref(), &session, room);
            }
            moved += 1;
        }
        moved
    }

    /// Publishes to every connection of the target, on every node: the
    /// one door of the admin API, the app's replies and the consumers. It
    /// checks the publish (`publish::check`) and, with an
    /// idempotency key, delivers it only if the key was not seen inside
    /// the window. `BACKEND_UNAVAILABLE` (retryable) when the key cannot be
    /// checked.
    pub async fn publish(&self, publish: Publish) -> Result<Published, AuthError> {
        let rooms = crate::publish::check(&publish, &self.user_room, self.limits.max_payload)?;
        if let Some(ns) = publish.namespace.as_deref()
            && self.namespaces.find(ns).is_none()
        {
            return Err(AuthError::new(
                ErrorCode::InvalidRequest,
                format!("namespace {ns:?} is not served"),
            ));
        }
        let except = publish
            .except_session
            .as_deref()
            .and_then(SessionId::parse)
            .and_then(|id| self.sessions.get(id))
            .map(|(_, conn)| conn.transport_id());
        let out = Outgoing {
            rooms,
            event: &publish.event,
            data: publish.data.as_deref(),
            except,
            once: publish.idempotency_key.as_deref().map(|key| Once {
                key,
                window_ms: self.idempotency_window.as_millis() as u64,
            }),
            logged: true,
            keep: Default::default(),
        };
        self.deliver(out).await
    }

    /// Hands `out` to the broker: the only call to it.
    pub(super) async fn deliver(&self, mut out: Outgoing<'_>) -> Result<Published, AuthError> {
        out.logged = self.keeps(&out.rooms);
        out.keep = self.bounds_of(&out.rooms);
        match self.broker.publish(out).await {
            Ok(Delivery::Reached(delivered)) => Ok(Published {
                delivered,
                duplicate: false,
            }),
            Ok(Delivery::Duplicate) => {
                telemetry::duplicate_publish();
                Ok(Published {
                    delivered: 0,
                    duplicate: true,
                })
            }
            Err(e) => Err(AuthError::new(
                ErrorCode::BackendUnavailable,
                format!("the publish's idempotency key cannot be checked now ({e}); retry"),
            )),
        }
    }

    /// Whether a broadcast to `rooms` (keys) is kept for recovery: when
    /// any of them keeps its messages.
    fn keeps(&self, rooms: &[String]) -> bool {
        !self.any_room_options() || rooms.iter().any(|room| self.options_of(room).recover)
    }

    /// Whether any room has options (most nodes have none: every publish
    /// then skips looking them up).
    fn any_room_options(&self) -> bool {
        let spaces = self.namespaces.all().iter();
        !self.room_options.is_empty()
            || spaces
                .filter_map(|ns| ns.room_options.as_ref())
                .any(|o| !o.is_empty())
    }

    /// The history's bounds of a broadcast to `rooms` (keys): the most
    /// generous of theirs.
    fn bounds_of(&self, rooms: &[String]) -> Keep {
        if !self.any_room_options() {
            return Keep::default();
        }
        let mut keeps = rooms.iter().map(|room| self.options_of(room).keep);
        let first = keeps.next().unwrap_or_default();
        keeps.fold(first, Keep::widest)
    }

    /// The users in `room` on every node; this node's when the presence
    /// backend cannot answer (it logs why).
    pub async fn room_members(&self, room: &str) -> Vec<String> {
        match self.presence.members(room).await {
            Ok(members) => members,
            Err(_) => self.rooms.members(room),
        }
    }

    /// How many users are in `room` on every node; on this node when the
    /// presence backend cannot answer.
    pub async fn room_member_count(&self, room: &str) -> usize {
        match self.presence.count(room).await {
            Ok(n) => n,
            Err(_) => self.rooms.count(room),
        }
    }

    /// The `n` rooms with the most members on this node (users' own rooms
    /// left out), most first.
    pub fn top_rooms(&self, n: usize) -> Vec<(String, usize)> {
        self.rooms.top(n)
    }

    /// Every `(room, user)` pair present on this node.
    pub fn presence_here(&self) -> Vec<(String, String)> {
        self.rooms.pairs()
    }

    /// The sessions, optionally of one user, on every node; this node's
    /// when the directory cannot answer (it logs why).
    pub async fn list_sessions(&self, user: Option<&str>) -> Vec<SessionInfo> {
        match self.directory.list(user).await {
            Ok(sessions) => sessions,
            Err(_) => self
                .sessions_here()
                .into_iter()
                .filter(|s| user.is_none_or(|u| s.user_id == u))
                .collect(),
        }
    }

    /// The sessions of this node.
    pub fn sessions_here(&self) -> Vec<SessionInfo> {
        let all = self.sessions.matching(|_| true);
        all.iter().map(|(s, _)| s.info()).collect()
    }

    /// Puts the connection in `room` and tells presence when its user arrives.
    pub(crate) fn enter(&self, conn: &dyn Connection, session: &Session, room: &str) {
        if self.rooms.enter(conn, session, room) == Some(true) {
            self.presence.arrived(room, &session.user_id);
            self.tell_arrived(room, session);
        }
    }

    /// Takes the connection out of `room` and tells presence when its user leaves.
    pub(crate) fn exit(&self, conn: &dyn Connection, session: &Session, room: &str) {
        if self.rooms.exit(conn, session, room) == Some(true) {
            self.presence.left(room, &session.user_id);
            self.tell_left(room, session);
        }
    }
}
