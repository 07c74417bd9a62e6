//! The in-memory backends: one node, sharing with nobody. What a
//! [`crate::Node`] runs on until it is given others.

use std::sync::Arc;

use serde_json::value::RawValue;

use super::Unavailable;
use super::{Admission, Announced, BoxFuture, Broker, Control, ControlBus, Directory, Presence};
use crate::registry::Registry;
use crate::rooms::Rooms;
use crate::session::{SessionInfo, SessionLimit};

/// Delivers to the connections of this node's registry, by their rooms.
///
/// A scan of the registry per publish: the gateway hands room delivery to
/// its transport layer, which indexes sockets by room; this one serves
/// embedders and tests.
pub struct MemoryBroker {
    sessions: Arc<Registry>,
}

impl MemoryBroker {
    /// A broker over `sessions`.
    pub fn new(sessions: Arc<Registry>) -> Self {
        Self { sessions }
    }
}

impl Broker for MemoryBroker {
    fn publish<'a>(
        &'a self,
        rooms: Vec<String>,
        event: &'a str,
        data: Option<&'a RawValue>,
    ) -> BoxFuture<'a, usize> {
        Box::pin(async move {
            let value = data
                .and_then(|d| serde_json::from_str(d.get()).ok())
                .unwrap_or(serde_json::Value::Null);
            let reached = self
                .sessions
                .matching(|s| rooms.iter().any(|r| s.in_room(r)));
            for (_, conn) in &reached {
                conn.emit_value(event, &value);
            }
            reached.len()
        })
    }
}

/// This node's room index is all the presence there is.
pub struct MemoryPresence {
    rooms: Arc<Rooms>,
}

impl MemoryPresence {
    /// Presence as `rooms` counts it.
    pub fn new(rooms: Arc<Rooms>) -> Self {
        Self { rooms }
    }
}

impl Presence for MemoryPresence {
    fn arrived(&self, _: &str, _: &str) {}

    fn left(&self, _: &str, _: &str) {}

    fn members<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<Vec<String>, Unavailable>> {
        Box::pin(async move { Ok(self.rooms.members(room)) })
    }

    /// O(1), without building the member list.
    fn count<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<usize, Unavailable>> {
        Box::pin(async move { Ok(self.rooms.count(room)) })
    }
}

/// This node's registry is the whole directory.
pub struct MemoryDirectory {
    sessions: Arc<Registry>,
}

impl MemoryDirectory {
    /// A directory of `sessions`.
    pub fn new(sessions: Arc<Registry>) -> Self {
        Self { sessions }
    }
}

impl Directory for MemoryDirectory {
    fn node(&self) -> &str {
        "local"
    }

    fn status(&self) -> &'static str {
        "off"
    }

    /// The registry applies the limit; nothing else holds sessions.
    fn admit<'a>(
        &'a self,
        _: &'a SessionInfo,
        _: Option<SessionLimit>,
    ) -> BoxFuture<'a, Result<Admission, Unavailable>> {
        Box::pin(async { Ok(Admission::Admitted(Vec::new())) })
    }

    fn left(&self, _: &str, _: &str) {}

    fn list<'a>(
        &'a self,
        user: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<SessionInfo>, Unavailable>> {
        Box::pin(async move {
            let sessions = match user {
                Some(user) => self.sessions.of_user(user),
                None => self.sessions.matching(|_| true),
            };
            Ok(sessions.iter().map(|(s, _)| s.info()).collect())
        })
    }

    fn elsewhere<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<bool, Unavailable>> {
        Box::pin(async { Ok(false) })
    }

    fn share_figures<'a>(&'a self, _: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn peer_figures(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async { Vec::new() })
    }
}

/// No other node to tell.
#[derive(Debug, Default)]
pub struct MemoryControl;

impl ControlBus for MemoryControl {
    fn announce<'a>(&'a self, _: &'a Control) -> BoxFuture<'a, Announced> {
        Box::pin(async { Announced::Alone })
    }
}
