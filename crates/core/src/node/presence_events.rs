//! `room:joined` and `room:left` for the members of rooms with presence
//! events (`[[room_rules]] presence_events = true`, or every room): a
//! user's first socket in the room on any node, and its last one gone for
//! longer than the delay. A return within the delay (a reload, a
//! reconnect, on any node) cancels both: the room hears neither. They are
//! told by the happenings task (`happenings.rs`) through the census.

use std::time::Duration;

use super::Node;
use crate::session::Session;
use sockgate_protocol::rooms::RoomKey;

/// How long a user's last socket may be gone before `room:left` (and
/// before `user.offline`, `room.vacated`), unless the node is told
/// otherwise.
pub const DEFAULT_PRESENCE_DELAY: Duration = Duration::from_secs(5);

/// The presence events' settings.
pub(crate) struct PresenceEvents {
    /// Every room, whatever the rules say.
    pub all: bool,
    /// How long departures wait for a return.
    pub delay: Duration,
}

impl Default for PresenceEvents {
    fn default() -> Self {
        Self {
            all: false,
            delay: DEFAULT_PRESENCE_DELAY,
        }
    }
}

impl Node {
    /// Tells every room its members' comings and goings (`all`), or the
    /// rooms of rules with `presence_events` only; a departure (this one,
    /// and `user.offline` and `room.vacated` for the watcher) is told
    /// after `delay`, unless the user or the room is back by then.
    pub fn with_presence_events(mut self, all: bool, delay: Duration) -> Self {
        self.presence_events = PresenceEvents { all, delay };
        self
    }

    /// How long departures wait for a return.
    pub(crate) fn departure_delay(&self) -> Duration {
        self.presence_events.delay
    }

    /// Whether `room` tells its members of `session`'s user coming and
    /// going.
    pub(crate) fn wants_presence_events(&self, room: &str, session: &Session) -> bool {
        if let Some(on) = self.options_of(room).presence_events {
            return on;
        }
        let all = self.presence_events.all;
        let policy = self.policy_of(session);
        // Most nodes have none: no identity built per join.
        (all || policy.any_presence_events())
            && policy.presence_events(all, &session.identity(), RoomKey::parse(room).name)
    }
}
