//! The in-memory backends: one node, sharing with nobody. What a
//! [`crate::Node`] runs on until it is given others.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;

use super::Unavailable;
use super::{
    Admission, Announced, BoxFuture, Broker, Control, ControlBus, Directory, History, Presence,
};
use crate::recovery::{self, Entry, Message, Missed, Offset, Parked, Settings, Wanted};
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

/// The history and the parked sessions of one node.
pub struct MemoryHistory {
    settings: Settings,
    log: Mutex<Log>,
    parked: Mutex<Lot>,
}

#[derive(Default)]
struct Log {
    entries: VecDeque<Entry>,
    /// The newest offset dropped: what came after an older one is no
    /// longer all here.
    dropped: Offset,
    last: Offset,
}

#[derive(Default)]
struct Lot {
    sessions: HashMap<String, Parked>,
    /// How many were left at the last sweep of expired ones.
    swept: usize,
}

impl MemoryHistory {
    /// An empty history, kept as `settings` say.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            log: Mutex::default(),
            parked: Mutex::default(),
        }
    }

    /// Appends `message` at `now_ms` and runs `deliver` with its offset,
    /// before any later append: what clients receive is in offset order,
    /// which is what makes the offset a client saw last a cut of the
    /// history. Drops what is older than the window or past the length.
    pub fn append<T>(&self, message: Message, now_ms: u64, deliver: impl FnOnce(Offset) -> T) -> T {
        let mut log = lock(&self.log);
        let offset = log.last.next(now_ms);
        log.last = offset;
        log.entries.push_back(Entry { offset, message });
        let oldest = now_ms.saturating_sub(self.settings.window.as_millis() as u64);
        while let Some(first) = log.entries.front()
            && (log.entries.len() > self.settings.history || first.offset.ms < oldest)
        {
            log.dropped = first.offset;
            log.entries.pop_front();
        }
        deliver(offset)
    }
}

impl History for MemoryHistory {
    fn since<'a>(
        &'a self,
        after: Offset,
        wanted: &'a Wanted<'a>,
    ) -> BoxFuture<'a, Result<Missed, Unavailable>> {
        let log = lock(&self.log);
        let missed = if after < log.dropped {
            Missed::Gap
        } else {
            let start = log.entries.partition_point(|e| e.offset <= after);
            recovery::select(log.entries.range(start..), wanted)
        };
        Box::pin(async { Ok(missed) })
    }

    fn park<'a>(&'a self, parked: &'a Parked) -> BoxFuture<'a, ()> {
        let mut lot = lock(&self.parked);
        // Expired ones go when the lot has doubled since the last sweep:
        // a sweep per park would make a mass disconnect quadratic.
        if lot.sessions.len() > 2 * lot.swept + 64 {
            let window = self.settings.window.as_millis() as u64;
            let now = parked.parked_at;
            lot.sessions.retain(|_, p| p.parked_at + window > now);
            lot.swept = lot.sessions.len();
        }
        lot.sessions.insert(parked.session.clone(), parked.clone());
        Box::pin(async {})
    }

    fn unpark<'a>(
        &'a self,
        user: &'a str,
        session: &'a str,
    ) -> BoxFuture<'a, Result<Option<Parked>, Unavailable>> {
        let mut lot = lock(&self.parked);
        let taken = match lot.sessions.get(session) {
            Some(p) if p.user_id == user => lot.sessions.remove(session),
            _ => None,
        };
        Box::pin(async { Ok(taken) })
    }

    fn forget_user<'a>(&'a self, user: &'a str) -> BoxFuture<'a, ()> {
        lock(&self.parked).sessions.retain(|_, p| p.user_id != user);
        Box::pin(async {})
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::value::RawValue;

    use super::*;

    fn message(room: &str, n: u32) -> Message {
        Message {
            rooms: vec![room.to_owned()],
            except: None,
            event: "news".into(),
            data: RawValue::from_string(n.to_string()).unwrap(),
            gap: false,
        }
    }

    fn parked(session: &str, user: &str, at: u64) -> Parked {
        Parked {
            session: session.into(),
            user_id: user.into(),
            socket: "s".into(),
            rooms: vec!["a".into()],
            token_id: None,
            issued_at: None,
            since: Offset::at(at),
            parked_at: at,
        }
    }

    fn now<T>(f: BoxFuture<'_, T>) -> T {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::pin!(f).poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the memory history answers at once"),
        }
    }

    fn numbers(missed: Result<Missed, Unavailable>) -> Vec<String> {
        match missed.expect("the memory history answers") {
            Missed::Messages(m) => m.iter().map(|e| e.message.data.get().to_owned()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_came_after_an_offset_in_order_and_a_gap_once_it_is_dropped() {
        let history = MemoryHistory::new(Settings {
            history: 3,
            ..Settings::default()
        });
        let offsets: Vec<Offset> = (1..=3)
            .map(|n| history.append(message("a", n), 1000, |o| o))
            .collect();
        assert_eq!(
            offsets[1],
            Offset { ms: 1000, seq: 1 },
            "one millisecond, in sequence"
        );
        let rooms = ["a".to_string()];
        let wanted = Wanted {
            rooms: &rooms,
            socket: "x",
            max_packets: 10,
            max_bytes: 1000,
        };
        assert_eq!(numbers(now(history.since(offsets[0], &wanted))), ["2", "3"]);
        history.append(message("b", 4), 1001, |_| ());
        // The first message went: after it, all is still here; before it, not.
        assert_eq!(numbers(now(history.since(offsets[0], &wanted))), ["2", "3"]);
        assert!(matches!(
            now(history.since(Offset::at(999), &wanted)),
            Ok(Missed::Gap)
        ));
    }

    #[test]
    fn messages_older_than_the_window_are_dropped() {
        let history = MemoryHistory::new(Settings {
            window: Duration::from_secs(1),
            ..Settings::default()
        });
        let first = history.append(message("a", 1), 1000, |o| o);
        history.append(message("a", 2), 2500, |_| ());
        let rooms = ["a".to_string()];
        let wanted = Wanted {
            rooms: &rooms,
            socket: "x",
            max_packets: 10,
            max_bytes: 1000,
        };
        assert_eq!(numbers(now(history.since(first, &wanted))), ["2"]);
        assert!(matches!(
            now(history.since(Offset::at(0), &wanted)),
            Ok(Missed::Gap)
        ));
    }

    #[test]
    fn a_parked_session_is_taken_once_and_by_its_user_only() {
        let history = MemoryHistory::new(Settings::default());
        now(history.park(&parked("s1", "alice", 1000)));
        assert_eq!(now(history.unpark("mallory", "s1")).unwrap(), None);
        let taken = now(history.unpark("alice", "s1")).unwrap();
        assert_eq!(taken.map(|p| p.session), Some("s1".to_owned()));
        assert_eq!(now(history.unpark("alice", "s1")).unwrap(), None, "once");
        now(history.park(&parked("s2", "alice", 1000)));
        now(history.park(&parked("s3", "bob", 1000)));
        now(history.forget_user("alice"));
        assert_eq!(now(history.unpark("alice", "s2")).unwrap(), None);
        assert!(now(history.unpark("bob", "s3")).unwrap().is_some());
    }
}
