//! `room:joined` and `room:left` for the members of rooms with presence
//! events (`[[room_rules]] presence_events = true`, or every room): a
//! user's first socket in the room, and its last one gone for longer than
//! the delay. A return within the delay (a reload, a reconnect) cancels
//! both: the room hears neither.
//!
//! One node's view: a user with sockets in the room on two nodes is
//! announced by each.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use sockgate_protocol::events::server;
use sockgate_protocol::payloads::RoomPresence;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Node;
use crate::backend::Outgoing;
use crate::session::Session;

/// How long a user's last socket may be gone before `room:left`, unless
/// the node is told otherwise.
pub const DEFAULT_PRESENCE_DELAY: Duration = Duration::from_secs(5);

/// A user came to a room or went.
#[derive(Debug)]
pub(crate) enum Note {
    Came { room: String, user: String },
    Went { room: String, user: String },
}

/// The presence events' settings and their queue.
pub(crate) struct PresenceEvents {
    /// Every room, whatever the rules say.
    pub all: bool,
    pub delay: Duration,
    notes: mpsc::UnboundedSender<Note>,
    inbox: Mutex<Option<mpsc::UnboundedReceiver<Note>>>,
}

impl PresenceEvents {
    pub(crate) fn new(all: bool, delay: Duration) -> Self {
        let (notes, inbox) = mpsc::unbounded_channel();
        Self {
            all,
            delay,
            notes,
            inbox: Mutex::new(Some(inbox)),
        }
    }
}

impl Default for PresenceEvents {
    fn default() -> Self {
        Self::new(false, DEFAULT_PRESENCE_DELAY)
    }
}

impl Node {
    /// Tells every room its members' comings and goings (`all`), or the
    /// rooms of rules with `presence_events` only; a departure is told
    /// after `delay`, unless the user is back by then.
    pub fn with_presence_events(mut self, all: bool, delay: Duration) -> Self {
        self.presence_events = PresenceEvents::new(all, delay);
        self
    }

    /// Notes that `session`'s user came to (`came`) or left `room`.
    pub(crate) fn note_presence(&self, room: &str, session: &Session, came: bool) {
        let events = &self.presence_events;
        if !self
            .policy
            .presence_events(events.all, &session.identity(), room)
        {
            return;
        }
        let (room, user) = (room.to_owned(), session.user_id.clone());
        let note = if came {
            Note::Came { room, user }
        } else {
            Note::Went { room, user }
        };
        let _ = events.notes.send(note);
    }

    /// Tells the rooms, forever; part of [`Node::run_deadlines`].
    pub(crate) async fn run_presence_events(&self) {
        let Some(mut inbox) = self
            .presence_events
            .inbox
            .lock()
            .expect("presence lock")
            .take()
        else {
            return;
        };
        let delay = self.presence_events.delay;
        // (room, user) → when its `room:left` is due.
        let mut leaving: HashMap<(String, String), Instant> = HashMap::new();
        loop {
            let due = leaving.values().min().copied();
            tokio::select! {
                note = inbox.recv() => match note {
                    Some(Note::Came { room, user }) => {
                        if leaving.remove(&(room.clone(), user.clone())).is_none() {
                            self.tell_room(server::ROOM_JOINED, &room, &user).await;
                        }
                    }
                    Some(Note::Went { room, user }) => {
                        leaving.insert((room, user), Instant::now() + delay);
                    }
                    None => return,
                },
                () = sleep_until(due) => {
                    let now = Instant::now();
                    let gone: Vec<_> = leaving.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
                    for key in gone {
                        leaving.remove(&key);
                        self.tell_room(server::ROOM_LEFT, &key.0, &key.1).await;
                    }
                }
            }
        }
    }

    /// `event { room, userId }` to the room's members, on every node.
    async fn tell_room(&self, event: &str, room: &str, user: &str) {
        let payload = RoomPresence {
            room,
            user_id: user,
        };
        let body = serde_json::value::to_raw_value(&payload).expect("payloads serialize");
        let out = Outgoing {
            rooms: vec![room.to_owned()],
            event,
            data: Some(&body),
            except: None,
            once: None,
        };
        if let Err(e) = self.deliver(out).await {
            tracing::debug!(room, event, error = %e.message, "a presence event was not delivered");
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
