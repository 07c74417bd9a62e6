//! Rooms: which sockets a broadcast reaches. A namespace has its own, or
//! shares them with others (then the server above keeps their names apart:
//! sockgate's are room keys that hold the namespace); a broadcast is
//! written in the namespace of each socket it reaches.
//!
//! A room name is stored once, as an `Arc<str>` shared by the index and
//! every socket in the room (a socket keeps the names it joined, so that
//! leaving everything needs no scan of the index).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::frames::{Frames, Offset, encode, event_data};
use crate::sio::{Kind, Value};

/// What a room holds: a socket that takes a broadcast's frames (the
/// engine's is `io::SioSocket`).
pub trait Member: Send + Sync + 'static {
    /// Sends a broadcast's frames, shared with the other members, with its
    /// recovery offset when it has one.
    fn send_frames(&self, frames: Frames, offset: Option<Offset>);
    /// Whether its id is `id`.
    fn is(&self, id: &str) -> bool;
    /// The namespace it is in, which the broadcast's packet names.
    fn namespace(&self) -> &str;
}

/// Told when a room gains its first socket (`true`) or loses its last
/// (`false`), in the order it happens for each room: called under the
/// rooms' lock, so it must be quick and must not touch the rooms.
pub type Watcher = Box<dyn Fn(&str, bool) + Send + Sync>;

/// Rooms holding sockets `S`.
pub struct Rooms<S> {
    map: Mutex<HashMap<Arc<str>, Vec<Arc<S>>>>,
    watcher: std::sync::OnceLock<Watcher>,
}

impl<S> std::fmt::Debug for Rooms<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rooms").finish_non_exhaustive()
    }
}

impl<S> Default for Rooms<S> {
    fn default() -> Self {
        Self {
            map: Mutex::default(),
            watcher: std::sync::OnceLock::new(),
        }
    }
}

impl<S: Member> Rooms<S> {
    /// No rooms yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Has `watcher` told of each room's first and last socket from now
    /// on; false when a watcher was set already.
    pub fn watch(&self, watcher: Watcher) -> bool {
        self.watcher.set(watcher).is_ok()
    }

    fn tell(&self, room: &str, occupied: bool) {
        if let Some(watcher) = self.watcher.get() {
            watcher(room, occupied);
        }
    }

    /// Puts `socket` in `room`, which it is not in (the socket's own list
    /// says, without a scan of the room); the name it is stored under
    /// (shared).
    pub(crate) fn join(&self, socket: &Arc<S>, room: &str) -> Arc<str> {
        let mut map = lock(&self.map);
        let name = match map.get_key_value(room) {
            Some((name, _)) => name.clone(),
            None => Arc::from(room),
        };
        let members = map.entry(name.clone()).or_default();
        push_first_exact(members, socket.clone());
        if members.len() == 1 {
            self.tell(&name, true);
        }
        name
    }

    /// Takes `socket` out of `room`.
    pub(crate) fn leave(&self, socket: &S, room: &str) {
        let mut map = lock(&self.map);
        let Some(members) = map.get_mut(room) else {
            return;
        };
        if let Some(at) = members.iter().position(|s| std::ptr::eq(&**s, socket)) {
            members.swap_remove(at);
        }
        if members.is_empty() {
            map.remove(room);
            self.tell(room, false);
        }
    }

    /// How many sockets are in `room`.
    pub fn len(&self, room: &str) -> usize {
        lock(&self.map).get(room).map_or(0, Vec::len)
    }

    /// Emits `event` with `args` to every socket in any of `rooms`, each
    /// once, but `except`. The packet is encoded once. Returns how many
    /// sockets it reached.
    pub fn emit(&self, rooms: &[&str], except: Option<&S>, event: &str, args: Vec<Value>) -> usize {
        let kept = |socket: &S| except.is_none_or(|e| !std::ptr::eq(e, socket));
        self.send(self.members(rooms, kept), event, args, None)
    }

    /// [`Rooms::emit`] but to the socket with id `except`, with the
    /// broadcast's recovery `offset` as the last argument when it has one
    /// (a socket recovered elsewhere keeps its id).
    pub fn emit_at(
        &self,
        rooms: &[&str],
        except: Option<&str>,
        event: &str,
        args: Vec<Value>,
        offset: Option<Offset>,
    ) -> usize {
        let kept = |socket: &S| except.is_none_or(|e| !socket.is(e));
        self.send(self.members(rooms, kept), event, args, offset)
    }

    /// [`Rooms::emit_at`] for the share of `rooms[at]`: its sockets that
    /// are in none of the rooms before it. A broadcast to several rooms
    /// that arrives once per room (a cluster's per-room channels) reaches
    /// each socket once: from the first of its rooms in the list.
    pub fn emit_share(
        &self,
        rooms: &[&str],
        at: usize,
        except: Option<&str>,
        event: &str,
        args: Vec<Value>,
        offset: Option<Offset>,
    ) -> usize {
        let Some(room) = rooms.get(at) else {
            return 0;
        };
        let kept = |socket: &S| except.is_none_or(|e| !socket.is(e));
        let targets = {
            let map = lock(&self.map);
            // The earlier rooms' sockets, looked up once each: a scan of
            // their lists per socket would cost |room| × |earlier rooms|.
            let earlier: std::collections::HashSet<*const S> = rooms[..at]
                .iter()
                .flat_map(|r| map.get(*r).into_iter().flatten())
                .map(Arc::as_ptr)
                .collect();
            map.get(*room)
                .into_iter()
                .flatten()
                .filter(|s| kept(s) && !earlier.contains(&Arc::as_ptr(s)))
                .cloned()
                .collect()
        };
        self.send(targets, event, args, offset)
    }

    /// How many sockets are in any of `rooms`, but the one with id `except`.
    pub fn count(&self, rooms: &[&str], except: Option<&str>) -> usize {
        let kept = |socket: &S| except.is_none_or(|e| !socket.is(e));
        self.members(rooms, kept).len()
    }

    fn send(
        &self,
        targets: Vec<Arc<S>>,
        event: &str,
        args: Vec<Value>,
        offset: Option<Offset>,
    ) -> usize {
        if targets.is_empty() {
            return 0;
        }
        let data = event_data(event, args, offset);
        // Encoded once per namespace (a room's sockets are all in one, and
        // the scan costs a comparison each), and shared: each member's
        // outbox holds the same bytes.
        let first = targets[0].namespace();
        if targets.iter().all(|s| s.namespace() == first) {
            let Some(encoded) = encode(Kind::Event, first, None, Some(data)) else {
                return 0;
            };
            let frames = Frames::from(encoded);
            for socket in &targets {
                socket.send_frames(frames.clone(), offset);
            }
            return targets.len();
        }
        let mut reached = 0;
        let mut by_namespace: HashMap<&str, Option<Frames>> = HashMap::new();
        for socket in &targets {
            let frames = by_namespace
                .entry(socket.namespace())
                .or_insert_with_key(|ns| {
                    encode(Kind::Event, ns, None, Some(data.clone())).map(Frames::from)
                });
            if let Some(frames) = frames {
                socket.send_frames(frames.clone(), offset);
                reached += 1;
            }
        }
        reached
    }

    /// The sockets in any of `rooms`, each once, that are `kept`. A room holds
    /// a socket once (see [`Rooms::join`]), so only several rooms need the
    /// set that makes each socket count once.
    fn members(&self, rooms: &[&str], kept: impl Fn(&S) -> bool) -> Vec<Arc<S>> {
        let map = lock(&self.map);
        let kept = |socket: &&Arc<S>| kept(socket);
        let [room] = rooms else {
            let mut seen = std::collections::HashSet::new();
            return rooms
                .iter()
                .flat_map(|room| map.get(*room).into_iter().flatten())
                .filter(kept)
                .filter(|socket| seen.insert(Arc::as_ptr(socket)))
                .cloned()
                .collect();
        };
        map.get(*room)
            .into_iter()
            .flatten()
            .filter(kept)
            .cloned()
            .collect()
    }
}

/// Pushes `item`, with room for exactly one when `list` had none: most
/// lists here hold one (a user's room, a connection's socket), and a first
/// push reserves four.
pub(crate) fn push_first_exact<T>(list: &mut Vec<T>, item: T) {
    let first = usize::from(list.capacity() == 0);
    list.reserve_exact(first);
    list.push(item);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Probe {
        id: &'static str,
        got: AtomicUsize,
    }

    impl Member for Probe {
        fn send_frames(&self, _: Frames, _: Option<Offset>) {
            self.got.fetch_add(1, Ordering::Relaxed);
        }
        fn is(&self, id: &str) -> bool {
            self.id == id
        }
        fn namespace(&self) -> &str {
            "/"
        }
    }

    fn probe(id: &'static str) -> Arc<Probe> {
        Arc::new(Probe {
            id,
            got: AtomicUsize::new(0),
        })
    }

    #[test]
    fn the_watcher_hears_first_and_last_members_in_order() {
        let rooms = Rooms::<Probe>::new();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let log = heard.clone();
        assert!(rooms.watch(Box::new(move |room, up| {
            log.lock()
                .unwrap()
                .push(format!("{room}{}", if up { '+' } else { '-' }))
        })));
        let (a, b) = (probe("a"), probe("b"));
        rooms.join(&a, "r");
        rooms.join(&b, "r");
        rooms.leave(&a, "r");
        rooms.leave(&b, "r");
        rooms.join(&a, "r");
        rooms.leave(&a, "s");
        assert_eq!(*heard.lock().unwrap(), ["r+", "r-", "r+"]);
    }

    #[test]
    fn shares_reach_each_socket_once_across_the_copies() {
        let rooms = Rooms::<Probe>::new();
        let (a, b, c) = (probe("a"), probe("b"), probe("c"));
        rooms.join(&a, "x");
        rooms.join(&a, "y");
        rooms.join(&b, "y");
        rooms.join(&c, "y");
        let list = ["x", "y", "z"];
        let mut reached = 0;
        for at in 0..=list.len() {
            reached += rooms.emit_share(&list, at, Some("c"), "e", Vec::new(), None);
        }
        assert_eq!(reached, 2);
        assert_eq!(a.got.load(Ordering::Relaxed), 1);
        assert_eq!(b.got.load(Ordering::Relaxed), 1);
        assert_eq!(c.got.load(Ordering::Relaxed), 0);
    }
}
