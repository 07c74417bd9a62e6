//! What the node tells its [`Watcher`](crate::hooks::happened::Watcher)
//! and the rooms with presence events: sessions that start and end, and
//! the cluster's first and last of a user, of a room's members, of a user
//! in a room.
//!
//! The node's paths only note what happened here ([`Note`]), without
//! waiting; one task ([`Node::run_happenings`]) takes the notes in order,
//! asks the [`Census`](crate::backend::Census) which of this node's edges
//! are the cluster's, and tells those. So a user with sessions on two
//! nodes is online once, and events reach the watcher in the order they
//! happened here.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sockgate_protocol::events::server;
use sockgate_protocol::payloads::RoomPresence;
use sockgate_protocol::rooms::RoomKey;
use tokio::sync::{mpsc, oneshot};

use super::Node;
use crate::backend::{Counted, Move, Outgoing};
use crate::hooks::happened::Happened;
use crate::session::Session;

/// How a connection went, when the server did not end it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// The client closed it (a closed tab, `socket.disconnect()`).
    ClientClosed,
    /// The network failed (a transport error, a missed heartbeat): the
    /// client reconnects by itself.
    TransportLost,
    /// The handshake failed after the session was admitted (its rooms or
    /// its recovery could not be set up).
    HandshakeFailed,
}

impl Gone {
    /// The `code` of its `session.ended`.
    pub const fn code(self) -> &'static str {
        match self {
            Gone::ClientClosed => "CLIENT_CLOSED",
            Gone::TransportLost => "TRANSPORT_LOST",
            Gone::HandshakeFailed => "HANDSHAKE_FAILED",
        }
    }
}

/// How often delayed departures are looked for: the delay's precision.
const SWEEP_EVERY: Duration = Duration::from_millis(100);
/// Most notes taken to the census in one call.
const MAX_NOTES: usize = 512;

/// Something that happened here, for the happenings task.
#[derive(Debug)]
pub(crate) enum Note {
    /// Told as it is (a session's start or end).
    Told(Happened),
    /// An edge of this node, told if it is the cluster's.
    Moved(Move),
    /// A dead node's holdings to give up (its sessions' ends told first).
    Lost(String),
    /// This node's holdings, said again to the census.
    Restate(Vec<Counted>),
    /// Answered once every note before it was told.
    Flush(oneshot::Sender<()>),
}

/// The notes' queue: the node's paths send, the task receives.
pub(crate) struct Happenings {
    notes: mpsc::UnboundedSender<Note>,
    inbox: Mutex<Option<mpsc::UnboundedReceiver<Note>>>,
    /// Whether the census's outage was logged.
    census_down: AtomicBool,
}

impl Default for Happenings {
    fn default() -> Self {
        let (notes, inbox) = mpsc::unbounded_channel();
        Self {
            notes,
            inbox: Mutex::new(Some(inbox)),
            census_down: AtomicBool::new(false),
        }
    }
}

impl Node {
    fn note(&self, note: Note) {
        let _ = self.happenings.notes.send(note);
    }

    /// `session` was admitted: `session.started`, and the user's arrival.
    pub(crate) fn tell_started(&self, session: &Session) {
        if !self.watching {
            return;
        }
        self.note(Note::Told(Happened::SessionStarted {
            user_id: session.user_id.clone(),
            session_id: session.id.to_string(),
            transport: session.transport.as_str().to_owned(),
            remote_addr: session.remote_addr.map(|a| a.to_string()),
            recovered: session.resumed,
        }));
        if self.sessions.of_user(&session.user_id).len() == 1 {
            let user = Counted::User(session.user_id.clone());
            self.note(Note::Moved(Move::Arrive(user)));
        }
    }

    /// `session` left the registry with `code`: `session.ended`, and the
    /// user's departure when it was the user's last here.
    pub(crate) fn tell_ended(&self, session: &Session, code: &str, reconnect: bool) {
        if !self.watching {
            return;
        }
        let connected_ms = session.connected_at.saturating_mul(1000);
        self.note(Note::Told(Happened::SessionEnded {
            user_id: session.user_id.clone(),
            session_id: session.id.to_string(),
            code: code.to_owned(),
            reconnect,
            duration_ms: self.clock.now_ms().saturating_sub(connected_ms),
        }));
        if self.sessions.of_user(&session.user_id).is_empty() {
            let user = Counted::User(session.user_id.clone());
            self.note(Note::Moved(Move::Depart(user, self.departure_delay())));
        }
    }

    /// `session`'s user's first socket here entered `room`.
    pub(crate) fn tell_arrived(&self, room: &str, session: &Session) {
        if self.user_room.is_user_room(RoomKey::parse(room).name) {
            return;
        }
        let user = &session.user_id;
        if self.wants_presence_events(room, session) {
            let present = Counted::Present(room.to_owned(), user.clone());
            self.note(Note::Moved(Move::Arrive(present)));
        }
        if !self.watching {
            return;
        }
        if self.rooms.count(room) == 1 {
            let occupied = Counted::Room(room.to_owned());
            self.note(Note::Moved(Move::Arrive(occupied)));
        }
        let member = Counted::Member(room.to_owned(), user.clone());
        self.note(Note::Moved(Move::Arrive(member)));
    }

    /// `session`'s user's last socket here left `room`.
    pub(crate) fn tell_left(&self, room: &str, session: &Session) {
        if self.user_room.is_user_room(RoomKey::parse(room).name) {
            return;
        }
        let user = &session.user_id;
        let delay = self.departure_delay();
        if self.wants_presence_events(room, session) {
            let present = Counted::Present(room.to_owned(), user.clone());
            self.note(Note::Moved(Move::Depart(present, delay)));
        }
        if !self.watching {
            return;
        }
        let member = Counted::Member(room.to_owned(), user.clone());
        self.note(Note::Moved(Move::Depart(member, Duration::ZERO)));
        if self.rooms.count(room) == 0 {
            let vacated = Counted::Room(room.to_owned());
            self.note(Note::Moved(Move::Depart(vacated, delay)));
        }
    }

    /// Tells what dead `node` held, as a live node that reports it:
    /// `ended` (its sessions' `session.ended`) first, then the departures
    /// its death makes the cluster's (users offline, rooms vacated, members
    /// left).
    pub fn tell_lost_node(&self, node: &str, ended: Vec<Happened>) {
        for event in ended {
            self.note(Note::Told(event));
        }
        self.note(Note::Lost(node.to_owned()));
    }

    /// Says again to the census what this node holds, telling nothing:
    /// after Redis came back, what the node could not record meanwhile is
    /// set right (its own edges were told as the cluster's then).
    pub fn restate_census(&self) {
        let mut holding = Vec::new();
        if self.watching {
            let users: std::collections::BTreeSet<String> = self
                .sessions_here()
                .into_iter()
                .map(|s| s.user_id)
                .collect();
            holding.extend(users.into_iter().map(Counted::User));
        }
        let mut rooms = std::collections::BTreeSet::new();
        for (room, user) in self.presence_here() {
            if self.user_room.is_user_room(RoomKey::parse(&room).name) {
                continue;
            }
            let session = self.sessions.of_user(&user).into_iter().next();
            if session.is_some_and(|(s, _)| self.wants_presence_events(&room, &s)) {
                holding.push(Counted::Present(room.clone(), user.clone()));
            }
            if self.watching {
                rooms.insert(room.clone());
                holding.push(Counted::Member(room, user));
            }
        }
        holding.extend(rooms.into_iter().map(Counted::Room));
        self.note(Note::Restate(holding));
    }

    /// Waits until everything noted so far was told: a stopping node's
    /// last departures are in the census (and its watcher's queue) after
    /// this.
    pub async fn flush_happenings(&self) {
        let (done, told) = oneshot::channel();
        self.note(Note::Flush(done));
        let _ = told.await;
    }

    /// Tells the notes, and the departures that come due, forever; part of
    /// [`Node::run_deadlines`].
    pub(crate) async fn run_happenings(&self) {
        let Some(mut inbox) = self.happenings.inbox.lock().expect("notes lock").take() else {
            return;
        };
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut notes = Vec::with_capacity(MAX_NOTES);
        loop {
            tokio::select! {
                n = inbox.recv_many(&mut notes, MAX_NOTES) => {
                    if n == 0 {
                        return;
                    }
                    self.tell_notes(&mut notes).await;
                }
                _ = sweep.tick(), if self.tells_anything() => self.tell_due().await,
            }
        }
    }

    /// Whether anything is ever told: a watcher, or rooms with presence
    /// events. A node with neither leaves the cluster's due departures to
    /// the nodes that tell them.
    fn tells_anything(&self) -> bool {
        self.watching
            || self.presence_events.all
            || self.policy.any_presence_events()
            || self.room_options.any_presence_events()
            || self.namespaces.all().iter().any(|ns| {
                ns.policy.as_ref().is_some_and(|p| p.any_presence_events())
                    || ns
                        .room_options
                        .as_ref()
                        .is_some_and(|o| o.any_presence_events())
            })
    }

    async fn tell_notes(&self, notes: &mut Vec<Note>) {
        let moves: Vec<Move> = notes
            .iter()
            .filter_map(|n| match n {
                Note::Moved(mv) => Some(mv.clone()),
                _ => None,
            })
            .collect();
        let down = &self.happenings.census_down;
        let edges = match self.census.apply(&moves, self.clock.now_ms()).await {
            Ok(edges) => {
                down.store(false, Ordering::Relaxed);
                edges
            }
            Err(e) => {
                // Told as this node sees them: a duplicate beats a loss.
                if !down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e.0, "the census does not answer; this node's firsts and lasts are told as the cluster's until it does");
                }
                moves.iter().map(|_| true).collect()
            }
        };
        let mut edges = edges.into_iter();
        for note in notes.drain(..) {
            match note {
                Note::Told(event) => self.watcher.happened(event),
                Note::Moved(mv) => {
                    if edges.next().unwrap_or(false) {
                        self.tell_move(mv).await;
                    }
                }
                Note::Lost(node) => self.tell_lost(&node).await,
                Note::Restate(holding) => {
                    if let Err(e) = self.census.restate(&holding).await {
                        tracing::warn!(error = %e.0, "the census was not set right; retried at the next recovery");
                    }
                }
                Note::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    async fn tell_move(&self, mv: Move) {
        match mv {
            Move::Arrive(what) => self.tell_edge(what, true).await,
            // With a delay, the departure is told when it comes due.
            Move::Depart(what, _) => self.tell_edge(what, false).await,
        }
    }

    async fn tell_due(&self) {
        match self.census.due(self.clock.now_ms()).await {
            Ok(gone) => {
                for what in gone {
                    self.tell_edge(what, false).await;
                }
            }
            Err(e) => tracing::debug!(error = %e.0, "due departures not read; next round"),
        }
    }

    async fn tell_lost(&self, node: &str) {
        match self.census.lost(node).await {
            Ok(gone) => {
                for what in gone {
                    self.tell_edge(what, false).await;
                }
            }
            Err(e) => {
                tracing::warn!(node, error = %e.0, "a lost node's users and rooms could not be given up")
            }
        }
    }

    /// Tells the cluster's arrival (`came`) or departure of `what`.
    async fn tell_edge(&self, what: Counted, came: bool) {
        let event = match (what, came) {
            (Counted::User(user_id), true) => Happened::UserOnline { user_id },
            (Counted::User(user_id), false) => Happened::UserOffline { user_id },
            (Counted::Room(room), true) => Happened::RoomOccupied { room },
            (Counted::Room(room), false) => Happened::RoomVacated { room },
            (Counted::Member(room, user_id), true) => Happened::MemberJoined { room, user_id },
            (Counted::Member(room, user_id), false) => Happened::MemberLeft { room, user_id },
            (Counted::Present(room, user), came) => {
                let event = if came {
                    server::ROOM_JOINED
                } else {
                    server::ROOM_LEFT
                };
                return self.tell_room(event, &room, &user).await;
            }
        };
        self.watcher.happened(event);
    }

    /// `event { room, userId }` to the room's members, on every node.
    async fn tell_room(&self, event: &str, room: &str, user: &str) {
        let payload = RoomPresence {
            room: RoomKey::parse(room).name,
            user_id: user,
        };
        let body = serde_json::value::to_raw_value(&payload).expect("payloads serialize");
        let out = Outgoing {
            rooms: vec![room.to_owned()],
            event,
            data: Some(&body),
            except: None,
            once: None,
            logged: true,
            keep: Default::default(),
        };
        if let Err(e) = self.deliver(out).await {
            tracing::debug!(room, event, error = %e.message, "a presence event was not delivered");
        }
    }
}
