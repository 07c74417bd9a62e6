//! The node: one gateway process's sessions and the rules they live by.
//!
//! Everything a transport or the admin API can ask of sessions goes
//! through a method here, in four files:
//! - `handshake`: a handshake, in order, from the request to a session;
//! - `lifecycle`: open, admit, events, refresh, the expiry clock, the end;
//! - `calls`: client events for the app's backend, and its replies;
//! - `revoke`: revocations, kicks and the announcements of other nodes;
//! - `rooms`: joining, leaving, publishing, members;
//! - `figures`: what `/api/stats` and the dashboard show;
//! - `recover`: parking dropped sessions and giving them back;
//! - `history`: a room's kept messages (the history API);
//! - `happenings`: what the [`crate::hooks::happened::Watcher`] and the
//!   rooms are told, once for the cluster ([`crate::backend::Census`]);
//! - `presence_events`: which rooms tell their members who comes and goes.
//!
//! A node runs on backends ([`crate::backend`]), in memory unless it is
//! given others; it never asks which kind it has.

mod calls;
mod figures;
mod handshake;
mod happenings;
mod history;
mod lifecycle;
mod presence_events;
mod recover;
mod revoke;
mod rooms;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sockgate_auth::{SourcePolicy, Verifier};

use crate::backend::memory::{
    MemoryBroker, MemoryControl, MemoryDirectory, MemoryHistory, MemoryPresence,
};
use crate::backend::{Broker, Census, ControlBus, Directory, History, MemoryCensus, Presence};
use crate::clock::{SharedClock, SystemClock};
use crate::deadlines::Deadlines;
use crate::hooks::happened::{NoWatcher, Watcher};
use crate::hooks::{App, NoApp};
use crate::limits::{AbuseLimits, Guard, Limits};
use crate::namespace::Namespaces;
use crate::ordering::InFlight;
use crate::policy::Policy;
use crate::registry::Registry;
use crate::revocation::Revocations;
use crate::room_options::RoomOptionsList;
use crate::rooms::{Rooms, UserRoom};
use crate::session::Session;
use crate::session::SessionLimit;
use crate::stats::Stats;
use crate::tickets::Tickets;
use sockgate_protocol::rooms::RoomKey;

pub use calls::DEFAULT_CALLS_PER_USER;
pub use handshake::{Accepted, Denied, Handshake};
pub use happenings::Gone;
pub use presence_events::DEFAULT_PRESENCE_DELAY;
pub use recover::{Restored, Resumed};
pub use revoke::Revoked;
pub use rooms::RoomMessage;

/// How open connections are held to their tokens.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    /// Extra time after `exp` before the connection is ended.
    pub expiry_grace: Duration,
    /// How long before expiry `auth:expiring` is sent (at most a quarter of
    /// the token's lifetime).
    pub refresh_lead: Duration,
    /// The per-user session limit, if any.
    pub session_limit: Option<SessionLimit>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            expiry_grace: Duration::ZERO,
            refresh_lead: Duration::from_secs(60),
            session_limit: None,
        }
    }
}

/// One gateway node.
pub struct Node {
    verifier: Verifier,
    sources: SourcePolicy,
    revocations: Revocations,
    lifecycle: Lifecycle,
    policy: Policy,
    limits: Limits,
    guard: Guard,
    clock: SharedClock,
    sessions: Arc<Registry>,
    deadlines: Deadlines,
    rooms: Arc<Rooms>,
    tickets: Tickets,
    stats: Stats,
    broker: Arc<dyn Broker>,
    presence: Arc<dyn Presence>,
    directory: Arc<dyn Directory>,
    control: Arc<dyn ControlBus>,
    history: Arc<dyn History>,
    /// Off unless [`Node::with_recovery`] turns it on.
    recovery: Option<Arc<recover::Recovery>>,
    /// Set on shutdown: new transports are refused, `/readyz` fails.
    draining: AtomicBool,
    /// The template of users' own rooms (`SOCKGATE_USER_ROOM`).
    user_room: Arc<UserRoom>,
    /// The app's backend, for the client events sockgate does not handle.
    app: Arc<dyn App>,
    /// Calls to the app in flight, per user.
    in_flight: InFlight,
    /// Most calls one user may have in flight (`SOCKGATE_EVENTS_CONCURRENCY`).
    max_calls_per_user: usize,
    /// Sessions of the connect hook due for renewal.
    renewals: calls::Renewals,
    /// How long a publish's idempotency key is remembered.
    idempotency_window: Duration,
    /// Hears what happens to sessions, users and rooms.
    watcher: Arc<dyn Watcher>,
    /// Whether a watcher was given: without one, the handshake and the
    /// end of a session skip building events nobody hears.
    watching: bool,
    /// `room:joined` and `room:left` for the rooms that want them.
    presence_events: presence_events::PresenceEvents,
    /// What happened here, on its way to the watcher and the rooms.
    happenings: happenings::Happenings,
    /// Which of this node's firsts and lasts are the cluster's.
    census: Arc<dyn Census>,
    /// What each room does (`[[room_options]]`).
    room_options: RoomOptionsList,
    /// The namespaces served, each with what it requires.
    namespaces: Namespaces,
}

/// How long a publish's idempotency key is remembered, unless the node is
/// told otherwise (`SOCKGATE_IDEMPOTENCY_WINDOW`).
pub const DEFAULT_IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(300);

impl Node {
    /// A node verifying with `verifier` the credentials `sources` finds, on
    /// the wall clock and the in-memory backends.
    pub fn new(
        verifier: Verifier,
        sources: SourcePolicy,
        revocations: Revocations,
        lifecycle: Lifecycle,
    ) -> Self {
        let sessions = Arc::new(Registry::default());
        let rooms = Arc::new(Rooms::default());
        Self {
            verifier,
            sources,
            revocations,
            lifecycle,
            policy: Policy::default(),
            limits: Limits::default(),
            guard: Guard::new(AbuseLimits::default()),
            clock: Arc::new(SystemClock),
            deadlines: Deadlines::default(),
            tickets: Tickets::default(),
            stats: Stats::default(),
            broker: Arc::new(MemoryBroker::new(sessions.clone())),
            presence: Arc::new(MemoryPresence::new(rooms.clone())),
            directory: Arc::new(MemoryDirectory::new(sessions.clone())),
            control: Arc::new(MemoryControl),
            history: Arc::new(MemoryHistory::new(Default::default())),
            recovery: None,
            sessions,
            rooms,
            draining: AtomicBool::new(false),
            user_room: Arc::default(),
            app: Arc::new(NoApp),
            in_flight: InFlight::default(),
            max_calls_per_user: DEFAULT_CALLS_PER_USER,
            renewals: Default::default(),
            idempotency_window: DEFAULT_IDEMPOTENCY_WINDOW,
            watcher: Arc::new(NoWatcher),
            watching: false,
            presence_events: Default::default(),
            happenings: Default::default(),
            census: Arc::new(MemoryCensus::default()),
            room_options: RoomOptionsList::default(),
            namespaces: Namespaces::default(),
        }
    }

    /// Serves `namespaces` beside the main one (`[[namespaces]]`).
    pub fn with_namespaces(mut self, namespaces: Namespaces) -> Self {
        self.namespaces = namespaces;
        self
    }

    /// The namespaces served.
    pub fn namespaces(&self) -> &Namespaces {
        &self.namespaces
    }

    /// The room policy of `session`'s namespace.
    fn policy_of(&self, session: &Session) -> &Policy {
        let space = self.namespaces.find(session.namespace());
        let own = space.and_then(|space| space.policy.as_ref());
        own.unwrap_or(&self.policy)
    }

    /// The options of the room stored under `key`, from its namespace's
    /// `[[room_options]]`.
    pub(crate) fn options_of(&self, key: &str) -> crate::room_options::Options {
        let room = RoomKey::parse(key);
        let space = self.namespaces.find(room.ns);
        let own = space.and_then(|space| space.room_options.as_ref());
        own.unwrap_or(&self.room_options).of(room.name)
    }

    /// Tells `watcher` what happens to sessions, users and rooms.
    pub fn with_watcher(mut self, watcher: Arc<dyn Watcher>) -> Self {
        self.watcher = watcher;
        self.watching = true;
        self
    }

    /// Remembers publishes' idempotency keys for `window`.
    pub fn with_idempotency_window(mut self, window: Duration) -> Self {
        self.idempotency_window = window;
        self
    }

    /// Sends the client events sockgate does not handle to `app`, at most
    /// `max_calls_per_user` at a time per user.
    pub fn with_app(mut self, app: Arc<dyn App>, max_calls_per_user: usize) -> Self {
        self.app = app;
        self.max_calls_per_user = max_calls_per_user.max(1);
        self
    }

    /// Names users' own rooms after `template` (default `user:{id}`).
    pub fn with_user_room(mut self, template: UserRoom) -> Self {
        let set = self.rooms.set_user_room(template.clone());
        debug_assert!(set, "the user room is set before the node is used");
        self.user_room = Arc::new(template);
        self
    }

    /// The template of users' own rooms.
    pub fn user_room(&self) -> &UserRoom {
        &self.user_room
    }

    /// Sets the room authorization policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Gives rooms their options (`[[room_options]]`).
    pub fn with_room_options(mut self, options: RoomOptionsList) -> Self {
        self.room_options = options;
        self
    }

    /// Sets the size limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the abuse limits.
    pub fn with_abuse_limits(mut self, limits: AbuseLimits) -> Self {
        self.guard = Guard::new(limits);
        self
    }

    /// Runs on `clock` (tests pass a [`crate::TokioClock`] under a paused
    /// tokio clock).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Delivers room events through `broker`.
    pub fn with_broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker = broker;
        self
    }

    /// Shares presence through `presence`.
    pub fn with_presence(mut self, presence: Arc<dyn Presence>) -> Self {
        self.presence = presence;
        self
    }

    /// Lists sessions and applies the session limit through `directory`.
    pub fn with_directory(mut self, directory: Arc<dyn Directory>) -> Self {
        self.directory = directory;
        self
    }

    /// Announces to other nodes through `control`.
    pub fn with_control(mut self, control: Arc<dyn ControlBus>) -> Self {
        self.control = control;
        self
    }

    /// Counts users, rooms and members across the cluster through `census`.
    pub fn with_census(mut self, census: Arc<dyn Census>) -> Self {
        self.census = census;
        self
    }

    /// Keeps the recovery window's messages and parked sessions in
    /// `history`.
    pub fn with_history(mut self, history: Arc<dyn History>) -> Self {
        self.history = history;
        self
    }

    /// Where credentials are looked for.
    pub fn sources(&self) -> &SourcePolicy {
        &self.sources
    }

    /// Whether the node verifies JWTs itself (any key configured).
    pub(crate) fn has_jwt_keys(&self) -> bool {
        self.verifier.has_keys()
    }

    /// The claim that names the user.
    pub fn user_claim(&self) -> &str {
        &self.verifier.rules().user_claim
    }

    /// The size limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The revocation index.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// The node's figures (see [`crate::stats`]).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The clock the node runs on.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// How many sessions this node holds.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// How many token deadlines are pending.
    pub fn deadline_count(&self) -> usize {
        self.deadlines.len()
    }

    /// Whether the node can serve its whole contract (`/readyz`): not
    /// draining, and its directory answers.
    pub fn is_ready(&self) -> bool {
        !self.is_draining() && self.directory.healthy()
    }

    /// True once the node has begun to shut down.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// A payload as the JSON value [`crate::Connection::emit_value`] takes.
fn json(payload: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(payload).expect("payloads serialize")
}
