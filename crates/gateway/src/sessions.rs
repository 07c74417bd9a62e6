//! Sessions: one per authenticated connection, and the registry of them all.
//!
//! The registry answers "which sockets does this user have" (session limits,
//! kicks, revocation) and "what is session X" (admin API, timers). It also
//! owns the one way a server ends a session: `session:end { code, message,
//! reconnect }` first, so the client knows why, then the close: of the
//! transport when the code is retryable (the client reconnects by itself),
//! a Socket.IO disconnect when it is terminal (it does not).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use socketioxide::TransportType;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;
use sockgate_auth::{AuthError, ErrorCode, Identity};

use sockgate_protocol::events::server;
use sockgate_protocol::payloads::SessionEnd;

use crate::abuse::EventBudget;
use crate::transports::Transports;

/// A session's public id: what `auth:whoami`, the admin API, the logs and
/// Redis call it. Random and unrelated to the Engine.IO session id, which is
/// a bearer credential of the transport (anyone who knows it can poll and
/// post as the client) and so is never shown.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// 20 random alphanumeric characters: 119 bits.
    pub fn random() -> Self {
        Self(random_alphanumeric(20))
    }

    /// The id a client or the admin API names.
    pub fn from_public(id: &str) -> Self {
        Self(id.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `len` random characters from `[A-Za-z0-9]` (5.95 bits each), for ids
/// and single-use secrets.
pub fn random_alphanumeric(len: usize) -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// What the gateway knows about one connection.
#[derive(Debug)]
pub struct Session {
    /// The public id.
    pub id: SessionId,
    /// The Engine.IO session id: a credential, for this process only.
    pub(crate) sid: Sid,
    pub user_id: String,
    /// Unix seconds.
    pub connected_at: u64,
    /// The client's address, behind trusted proxies.
    pub remote_addr: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// The transport of the handshake.
    pub transport: TransportType,
    /// Replaced on every successful `auth:refresh`; the user never changes.
    identity: RwLock<Arc<Identity>>,
    /// The socket's event budget (see [`crate::abuse`]).
    pub(crate) events: EventBudget,
    /// Rooms the socket is in, its own user room first.
    rooms: Mutex<Vec<String>>,
    /// When the handshake registered it; tells a stale reservation apart
    /// from a handshake still in flight.
    registered: Instant,
    /// Set once the server has begun ending it (see `Connection::end`).
    ending: AtomicBool,
}

impl Session {
    pub fn new(
        sid: Sid,
        identity: Identity,
        remote_addr: Option<IpAddr>,
        user_agent: Option<String>,
        transport: TransportType,
        events: EventBudget,
    ) -> Self {
        Self {
            id: SessionId::random(),
            sid,
            user_id: identity.user_id.clone(),
            connected_at: unix_now(),
            remote_addr,
            user_agent,
            transport,
            identity: RwLock::new(Arc::new(identity)),
            rooms: Mutex::new(Vec::new()),
            events,
            registered: Instant::now(),
            ending: AtomicBool::new(false),
        }
    }

    /// Marks the session as ending; true only for the first caller.
    pub(crate) fn begin_end(&self) -> bool {
        !self.ending.swap(true, Ordering::AcqRel)
    }

    /// True once the server has begun ending it: its events are ignored.
    pub(crate) fn is_ending(&self) -> bool {
        self.ending.load(Ordering::Acquire)
    }

    /// The identity of the token the connection currently runs on.
    pub fn identity(&self) -> Arc<Identity> {
        self.identity.read().expect("identity lock").clone()
    }

    pub(crate) fn replace_identity(&self, identity: Arc<Identity>) {
        *self.identity.write().expect("identity lock") = identity;
    }

    /// Records that the socket joined `room`; false if it already had.
    pub(crate) fn add_room(&self, room: &str) -> bool {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        if rooms.iter().any(|r| r == room) {
            return false;
        }
        rooms.push(room.to_owned());
        true
    }

    /// Records that the socket left `room`; false if it was not in it.
    pub(crate) fn remove_room(&self, room: &str) -> bool {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        let before = rooms.len();
        rooms.retain(|r| r != room);
        rooms.len() != before
    }

    pub(crate) fn take_rooms(&self) -> Vec<String> {
        std::mem::take(&mut *self.rooms.lock().expect("rooms lock"))
    }

    pub fn in_room(&self, room: &str) -> bool {
        self.rooms
            .lock()
            .expect("rooms lock")
            .iter()
            .any(|r| r == room)
    }

    /// How many rooms the socket is in, its own user room included.
    pub fn room_count(&self) -> usize {
        self.rooms.lock().expect("rooms lock").len()
    }

    /// The rooms the socket is in.
    pub fn rooms(&self) -> Vec<String> {
        self.rooms.lock().expect("rooms lock").clone()
    }

    /// The room every socket of a user is in.
    pub fn user_room(&self) -> String {
        user_room(&self.user_id)
    }

    /// The admin API's view of the session.
    pub fn info(&self) -> SessionInfo {
        SessionInfo {
            session_id: self.id.to_string(),
            user_id: self.user_id.clone(),
            connected_at: self.connected_at,
            expires_at: self.identity().expires_at,
            remote_addr: self.remote_addr.map(|a| a.to_string()),
            user_agent: self.user_agent.clone(),
            transport: transport_name(self.transport).to_owned(),
        }
    }
}

/// A session as the admin API lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub session_id: String,
    pub user_id: String,
    pub connected_at: u64,
    pub expires_at: Option<u64>,
    pub remote_addr: Option<String>,
    pub user_agent: Option<String>,
    pub transport: String,
}

/// What happens when a user already has the maximum number of sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LimitPolicy {
    /// The new handshake is refused with `SESSION_LIMIT`.
    Reject,
    /// The oldest session ends with `SESSION_EVICTED` and the new one is admitted.
    EvictOldest,
}

/// The per-user session limit.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimit {
    pub max: usize,
    pub policy: LimitPolicy,
}

/// A live connection, whatever adapter the server runs on (in-process or
/// Redis). The registry needs no more than this.
pub trait Connection: Send + Sync + 'static {
    fn connected(&self) -> bool;
    /// Emits a server event to this connection.
    fn emit_value(&self, event: &str, data: &serde_json::Value);
    /// Takes the connection out of a room of the Socket.IO layer.
    fn leave(&self, room: &str);
    /// Sends `session:end { code, message, reconnect }`, then closes the
    /// transport (retryable code) or disconnects (terminal code). Called
    /// once per session, by [`crate::Gateway`].
    fn end(&self, code: ErrorCode, message: &str);
}

/// A Socket.IO socket as a [`Connection`].
pub struct SocketConn<A: Adapter> {
    socket: SocketRef<A>,
    transports: Arc<Transports>,
}

impl<A: Adapter> SocketConn<A> {
    pub fn new(socket: SocketRef<A>, transports: Arc<Transports>) -> Self {
        Self { socket, transports }
    }
}

impl<A: Adapter> Connection for SocketConn<A> {
    fn connected(&self) -> bool {
        let socket: &socketioxide::socket::Socket<A> = &self.socket;
        socket.connected()
    }

    fn emit_value(&self, event: &str, data: &serde_json::Value) {
        let _ = self.socket.emit(event, data);
    }

    fn leave(&self, room: &str) {
        self.socket.leave(room.to_owned());
    }

    fn end(&self, code: ErrorCode, message: &str) {
        let s = &self.socket;
        let reconnect = code.is_retryable();
        // Nothing more reaches it through its rooms.
        s.leave_all();
        if reconnect {
            self.transports.prepare_end(s);
        }
        let end = SessionEnd::new(code, message);
        if let Err(e) = s.emit(server::SESSION_END, &end) {
            tracing::warn!(error = %e, "session:end could not be sent");
        }
        // The close comes a moment later. Once socketioxide has removed a
        // socket, the next packet the client sends for it closes the whole
        // transport, and what was not yet written (this `session:end`) is
        // lost: a client still emitting would be cut off without a reason.
        // Meanwhile its events are dropped (see `Session::is_ending`).
        let socket = s.clone();
        let transports = self.transports.clone();
        tokio::spawn(async move {
            tokio::time::sleep(FLUSH_BEFORE_CLOSE).await;
            if reconnect {
                transports.close(&socket);
            } else {
                let _ = socket.disconnect();
            }
        });
    }
}

/// How long an ending socket's `session:end` gets to be written before the
/// close.
const FLUSH_BEFORE_CLOSE: Duration = Duration::from_millis(50);

/// A shared handle on a live connection.
pub type Conn = Arc<dyn Connection>;

struct Entry {
    session: Arc<Session>,
    socket: Conn,
}

#[derive(Default)]
struct Inner {
    by_sid: HashMap<Sid, Entry>,
    by_user: HashMap<String, Vec<Sid>>,
}

/// A handshake that reserved its place but never connected is dropped after this.
const STALE_RESERVATION: Duration = Duration::from_secs(30);

/// Every live session of this node.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

impl Registry {
    /// Registers a new session, enforcing the per-user limit atomically.
    /// Returns the sessions the `evict-oldest` policy pushed out (already
    /// unregistered); the caller ends them.
    pub fn admit(
        &self,
        session: Arc<Session>,
        socket: Conn,
        limit: Option<SessionLimit>,
    ) -> Result<Vec<(Arc<Session>, Conn)>, AuthError> {
        let mut inner = self.inner.lock().expect("registry lock");
        inner.drop_stale(&session.user_id);
        let mut evicted = Vec::new();
        if let Some(limit) = limit {
            let count = inner.by_user.get(&session.user_id).map_or(0, Vec::len);
            if count >= limit.max {
                if limit.policy == LimitPolicy::Reject {
                    return Err(AuthError::new(
                        ErrorCode::SessionLimit,
                        format!("user already has {count} sessions (limit {})", limit.max),
                    ));
                }
                // Sids are kept in admission order: the front is the oldest.
                let excess = count + 1 - limit.max;
                let oldest: Vec<Sid> = inner.by_user[&session.user_id][..excess].to_vec();
                evicted = oldest
                    .into_iter()
                    .filter_map(|sid| inner.remove(sid))
                    .map(|e| (e.session, e.socket))
                    .collect();
            }
        }
        inner
            .by_user
            .entry(session.user_id.clone())
            .or_default()
            .push(session.sid);
        inner.by_sid.insert(session.sid, Entry { session, socket });
        Ok(evicted)
    }

    /// Forgets a session; called when its socket disconnects, for any reason.
    pub fn remove(&self, sid: Sid) -> Option<Arc<Session>> {
        self.inner
            .lock()
            .expect("registry lock")
            .remove(sid)
            .map(|e| e.session)
    }

    /// The session with public id `id` (a scan: for the admin API and the
    /// cluster, not for per-message paths).
    pub fn find(&self, id: &str) -> Option<(Arc<Session>, Conn)> {
        let inner = self.inner.lock().expect("registry lock");
        inner
            .by_sid
            .values()
            .find(|e| e.session.id.as_str() == id)
            .map(|e| (e.session.clone(), e.socket.clone()))
    }

    pub fn get(&self, sid: Sid) -> Option<(Arc<Session>, Conn)> {
        let inner = self.inner.lock().expect("registry lock");
        inner
            .by_sid
            .get(&sid)
            .map(|e| (e.session.clone(), e.socket.clone()))
    }

    /// The sessions of one user, oldest first.
    pub fn of_user(&self, user_id: &str) -> Vec<(Arc<Session>, Conn)> {
        let inner = self.inner.lock().expect("registry lock");
        let sids = inner
            .by_user
            .get(user_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        sids.iter()
            .filter_map(|sid| inner.by_sid.get(sid))
            .map(|e| (e.session.clone(), e.socket.clone()))
            .collect()
    }

    /// Every session whose current identity matches `pred`.
    pub fn matching(&self, pred: impl Fn(&Session) -> bool) -> Vec<(Arc<Session>, Conn)> {
        let inner = self.inner.lock().expect("registry lock");
        inner
            .by_sid
            .values()
            .filter(|e| pred(&e.session))
            .map(|e| (e.session.clone(), e.socket.clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("registry lock").by_sid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn remove(&mut self, sid: Sid) -> Option<Entry> {
        let entry = self.by_sid.remove(&sid)?;
        if let Some(sids) = self.by_user.get_mut(&entry.session.user_id) {
            sids.retain(|s| *s != sid);
            if sids.is_empty() {
                self.by_user.remove(&entry.session.user_id);
            }
        }
        Some(entry)
    }

    /// Drops reservations of handshakes that never completed (the connect
    /// packet could not be sent, so no disconnect handler will ever run).
    fn drop_stale(&mut self, user_id: &str) {
        let Some(sids) = self.by_user.get(user_id) else {
            return;
        };
        let stale: Vec<Sid> = sids
            .iter()
            .filter(|sid| {
                self.by_sid.get(sid).is_some_and(|e| {
                    !e.socket.connected() && e.session.registered.elapsed() > STALE_RESERVATION
                })
            })
            .copied()
            .collect();
        for sid in stale {
            self.remove(sid);
        }
    }
}

pub use sockgate_protocol::rooms::user_room;

pub fn transport_name(t: TransportType) -> &'static str {
    match t {
        TransportType::Websocket => "websocket",
        TransportType::Polling => "polling",
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abuse::{AbuseLimits, Guard};

    #[test]
    fn a_session_begins_to_end_once() {
        let claims = serde_json::json!({ "sub": "alice" });
        let identity = Identity::from_claims(claims.as_object().unwrap().clone(), "sub").unwrap();
        let budget = Guard::new(AbuseLimits::default()).event_budget();
        let session = Session::new(
            Sid::new(),
            identity,
            None,
            None,
            TransportType::Websocket,
            budget,
        );
        assert!(!session.is_ending());
        assert!(session.begin_end(), "the first end goes through");
        assert!(!session.begin_end(), "a second end does nothing");
        assert!(session.is_ending());
    }
}
