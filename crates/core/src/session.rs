//! Sessions: one per authenticated connection.
//!
//! A session is what the core knows of a connection: who it is (the
//! identity of the token it runs on, replaced by each refresh), where it
//! came from, the rooms it is in, its event budget, and whether the server
//! has begun to end it. Its id is the core's own, never a transport's.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, RwLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sockgate_auth::Identity;

use crate::limits::EventBudget;
use crate::ordering::Calls;
use sockgate_protocol::rooms::{MAIN_NAMESPACE, RoomKey, UserRoom};

/// `user:{id}`, shared by every session of a node that keeps the default.
static DEFAULT_USER_ROOM: LazyLock<Arc<UserRoom>> = LazyLock::new(Default::default);

/// A session's public id: what `auth:whoami`, the admin API, the logs and
/// Redis call it. Random and unrelated to any transport id (the Engine.IO
/// session id is a bearer credential of the transport: anyone who knows it
/// can poll and post as the client, so it is never shown).
///
/// Twenty alphanumeric characters (119 bits), held inline: the registry,
/// the deadline set and the tickets copy it without allocating.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; SessionId::LEN]);

impl SessionId {
    /// The length of every session id.
    pub const LEN: usize = 20;

    /// Sorts before every id (a bound for ordered sets).
    pub(crate) const MIN: SessionId = SessionId([0; Self::LEN]);

    /// A new random id.
    pub fn random() -> Self {
        use rand::Rng;
        let mut id = [0u8; Self::LEN];
        for (b, c) in id
            .iter_mut()
            .zip(rand::rng().sample_iter(rand::distr::Alphanumeric))
        {
            *b = c;
        }
        Self(id)
    }

    /// The id a client or the admin API names; `None` when it cannot be
    /// one (then no session has it).
    pub fn parse(id: &str) -> Option<Self> {
        let bytes: [u8; Self::LEN] = id.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(u8::is_ascii_alphanumeric)
            .then_some(Self(bytes))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ids are ASCII")
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionId({})", self.as_str())
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

/// How a connection reached the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A WebSocket.
    WebSocket,
    /// HTTP long-polling.
    Polling,
}

impl Transport {
    /// `websocket` or `polling`, as metrics, logs and the admin API name it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Polling => "polling",
        }
    }
}

/// The rooms a socket is in. Its own user room, which every socket is in,
/// is a flag rather than a name in the list: as a name it cost 64 bytes of
/// every idle connection (the string and the list), by heap profile.
#[derive(Debug, Default, Clone)]
struct Joined {
    own: bool,
    others: Vec<String>,
}

/// Where a connection came from, as its transport tells.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The client's address, behind trusted proxies.
    pub remote_addr: Option<IpAddr>,
    /// The `User-Agent` it sent.
    pub user_agent: Option<String>,
    /// The transport of the handshake.
    pub transport: Transport,
}

/// What the gateway knows about one connection.
#[derive(Debug)]
pub struct Session {
    /// The public id.
    pub id: SessionId,
    /// The user; it never changes, a refresh must name the same one.
    pub user_id: String,
    /// Unix seconds.
    pub connected_at: u64,
    /// The client's address, behind trusted proxies.
    pub remote_addr: Option<IpAddr>,
    /// The `User-Agent` of the handshake.
    pub user_agent: Option<String>,
    /// The transport of the handshake.
    pub transport: Transport,
    /// Replaced on every successful `auth:refresh`; the user never changes.
    identity: RwLock<Arc<Identity>>,
    /// The socket's event budget (see [`crate::limits`]).
    pub(crate) events: EventBudget,
    /// Rooms the socket is in.
    rooms: Mutex<Joined>,
    /// When the handshake registered it; tells a stale reservation apart
    /// from a handshake still in flight.
    pub(crate) registered: Instant,
    /// Set once the server has begun ending it (see `Connection::end`).
    ending: AtomicBool,
    /// A recovered session's cut in the recovery history (the `ms` and
    /// `seq` of its parked `since`): it keeps the first session's, so that
    /// a client that drops again mid-replay still gets what it missed.
    pub(crate) recovered_since: OnceLock<(u64, u64)>,
    /// Whether it takes back a dropped session's id (a recovery).
    pub(crate) resumed: bool,
    /// The template of the user's own room.
    user_room: Arc<UserRoom>,
    /// The `exp` whose `auth:expiring` was sent (0: none yet): one warning
    /// per token, whatever refreshes and recoveries happen in between.
    warned_exp: AtomicU64,
    /// The socket's calls to the app, in order; made on the first one.
    calls: OnceLock<Box<Calls>>,
    /// Admitted by the app's connect hook: renewed by asking it again
    /// rather than by the client's `auth:refresh`.
    pub(crate) by_app: bool,
    /// The namespace its socket is in (`/` unless it connected to
    /// another): its rooms are that namespace's.
    ns: Arc<str>,
    /// Another socket of its user on the same connection was admitted
    /// first: the per-user session limit counted that one only.
    pub(crate) riding: bool,
}

impl Session {
    /// A session for a verified `identity`, connected at `connected_at`
    /// (Unix seconds). [`crate::Node::session`] fills in the clock and the
    /// event budget.
    pub fn new(identity: Identity, origin: Origin, events: EventBudget, connected_at: u64) -> Self {
        Self {
            id: SessionId::random(),
            user_id: identity.user_id.clone(),
            connected_at,
            remote_addr: origin.remote_addr,
            user_agent: origin.user_agent,
            transport: origin.transport,
            identity: RwLock::new(Arc::new(identity)),
            rooms: Mutex::new(Joined::default()),
            events,
            registered: Instant::now(),
            ending: AtomicBool::new(false),
            recovered_since: OnceLock::new(),
            resumed: false,
            user_room: DEFAULT_USER_ROOM.clone(),
            warned_exp: AtomicU64::new(0),
            calls: OnceLock::new(),
            by_app: false,
            ns: Arc::from(MAIN_NAMESPACE),
            riding: false,
        }
    }

    /// The same session, in namespace `ns`.
    pub fn in_namespace(mut self, ns: &str) -> Self {
        self.ns = Arc::from(ns);
        self
    }

    /// The namespace its socket is in.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// The key of its namespace's room `name`: what the session, the
    /// node's rooms and every backend know the room by.
    pub fn room_key(&self, name: &str) -> String {
        RoomKey::new(&self.ns, name).key()
    }

    /// The same session, admitted by the app's connect hook.
    pub(crate) fn admitted_by_app(mut self) -> Self {
        self.by_app = true;
        self
    }

    /// Whether the app's connect hook admitted it.
    pub(crate) fn is_by_app(&self) -> bool {
        self.by_app
    }

    /// The same session with its user room named after `template`.
    pub fn with_user_room(mut self, template: Arc<UserRoom>) -> Self {
        self.user_room = template;
        self
    }

    /// The socket's line of calls to the app.
    pub(crate) fn calls(&self) -> &Calls {
        self.calls.get_or_init(Box::default)
    }

    /// Records that `auth:expiring` goes out for `exp`; false when it went
    /// out for that `exp` already.
    pub(crate) fn warn_once(&self, exp: u64) -> bool {
        self.warned_exp.swap(exp, Ordering::AcqRel) != exp
    }

    /// The same session under id `id` (a recovered one's).
    pub fn with_id(mut self, id: SessionId) -> Self {
        self.id = id;
        self.resumed = true;
        self
    }

    /// Marks the session as ending; true only for the first caller.
    pub(crate) fn begin_end(&self) -> bool {
        !self.ending.swap(true, Ordering::AcqRel)
    }

    /// True once the server has begun ending it: its events are ignored.
    pub fn is_ending(&self) -> bool {
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
        if self.is_own(room) {
            return !std::mem::replace(&mut rooms.own, true);
        }
        if rooms.others.iter().any(|r| r == room) {
            return false;
        }
        rooms.others.push(room.to_owned());
        true
    }

    /// Records that the socket left `room`; false if it was not in it.
    pub(crate) fn remove_room(&self, room: &str) -> bool {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        if self.is_own(room) {
            return std::mem::replace(&mut rooms.own, false);
        }
        let before = rooms.others.len();
        rooms.others.retain(|r| r != room);
        rooms.others.len() != before
    }

    pub(crate) fn take_rooms(&self) -> Vec<String> {
        let taken = std::mem::take(&mut *self.rooms.lock().expect("rooms lock"));
        self.names(taken)
    }

    /// Whether the socket is in `room`.
    pub fn in_room(&self, room: &str) -> bool {
        let rooms = self.rooms.lock().expect("rooms lock");
        match self.is_own(room) {
            true => rooms.own,
            false => rooms.others.iter().any(|r| r == room),
        }
    }

    /// How many rooms the socket is in, its own user room included.
    pub(crate) fn room_count(&self) -> usize {
        let rooms = self.rooms.lock().expect("rooms lock");
        rooms.others.len() + usize::from(rooms.own)
    }

    /// The rooms the socket is in, its own user room first.
    pub fn rooms(&self) -> Vec<String> {
        let rooms = self.rooms.lock().expect("rooms lock").clone();
        self.names(rooms)
    }

    /// The rooms the socket is in, by their names in its namespace.
    pub fn room_names(&self) -> Vec<String> {
        let mut rooms = self.rooms();
        if &*self.ns != MAIN_NAMESPACE {
            for room in &mut rooms {
                *room = RoomKey::parse(room).name.to_owned();
            }
        }
        rooms
    }

    fn names(&self, rooms: Joined) -> Vec<String> {
        let own = rooms.own.then(|| self.user_room());
        own.into_iter().chain(rooms.others).collect()
    }

    fn is_own(&self, room: &str) -> bool {
        let room = RoomKey::parse(room);
        room.ns == &*self.ns && self.user_room.owner(room.name) == Some(self.user_id.as_str())
    }

    /// The room every socket of a user is in (in its namespace): its key.
    pub fn user_room(&self) -> String {
        self.room_key(&self.user_room.name(&self.user_id))
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
            transport: self.transport.as_str().to_owned(),
        }
    }
}

/// A session as the admin API lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)] // the fields are the admin API's, documented in docs/api.md
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Most sessions one user may hold at once.
    pub max: usize,
    /// What happens to one more.
    pub policy: LimitPolicy,
}

impl LimitPolicy {
    /// `reject` or `evict-oldest`, as settings spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            LimitPolicy::Reject => "reject",
            LimitPolicy::EvictOldest => "evict-oldest",
        }
    }
}

impl std::str::FromStr for LimitPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reject" => Ok(LimitPolicy::Reject),
            "evict-oldest" => Ok(LimitPolicy::EvictOldest),
            _ => Err("possible values: reject, evict-oldest".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{AbuseLimits, Guard};

    fn alice() -> Session {
        let claims = serde_json::json!({ "sub": "alice" });
        let identity = Identity::from_claims(claims.as_object().unwrap().clone(), "sub").unwrap();
        let budget = Guard::new(AbuseLimits::default()).event_budget();
        let origin = Origin {
            remote_addr: None,
            user_agent: None,
            transport: Transport::WebSocket,
        };
        Session::new(identity, origin, budget, 0)
    }

    #[test]
    fn a_session_begins_to_end_once() {
        let session = alice();
        assert!(!session.is_ending());
        assert!(session.begin_end(), "the first end goes through");
        assert!(!session.begin_end(), "a second end does nothing");
        assert!(session.is_ending());
    }

    #[test]
    fn ids_are_random_alphanumeric_and_parse_back() {
        let (a, b) = (SessionId::random(), SessionId::random());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), SessionId::LEN);
        assert_eq!(SessionId::parse(a.as_str()), Some(a));
        assert_eq!(SessionId::parse("short"), None);
        assert_eq!(SessionId::parse("0123456789abcdefghi!"), None);
        assert_eq!(SessionId::parse("0123456789abcdefghié"), None);
    }
}
