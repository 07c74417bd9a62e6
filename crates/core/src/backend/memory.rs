//! The in-memory backends: one node, sharing with nobody. What a
//! [`crate::Node`] runs on until it is given others.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::{Arc, Mutex};

use super::{
    Admission, Announced, BoxFuture, Broker, Control, ControlBus, Delivery, Directory, History,
    Outgoing, Presence,
};
use super::{Journal, Unavailable};
use crate::clock::{SharedClock, SystemClock};
use crate::idempotency::Seen;
use crate::recovery::{
    self, Entry, Keep, Message, Missed, Offset, Parked, RoomHistory, Settings, Wanted,
};
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
    seen: Seen,
    clock: SharedClock,
}

impl MemoryBroker {
    /// A broker over `sessions`, its keys' windows on the wall clock.
    pub fn new(sessions: Arc<Registry>) -> Self {
        Self {
            sessions,
            seen: Seen::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl Broker for MemoryBroker {
    fn publish<'a>(&'a self, out: Outgoing<'a>) -> BoxFuture<'a, Result<Delivery, Unavailable>> {
        Box::pin(async move {
            if let Some(once) = out.once {
                let now = self.clock.now_ms();
                if !self.seen.claim(once.key, now, now + once.window_ms) {
                    return Ok(Delivery::Duplicate);
                }
            }
            let value = out
                .data
                .and_then(|d| serde_json::from_str(d.get()).ok())
                .unwrap_or(serde_json::Value::Null);
            let except = out.except.as_deref();
            let reached = self
                .sessions
                .matching(|s| out.rooms.iter().any(|r| s.in_room(r)));
            let mut count = 0;
            for (_, conn) in &reached {
                if except.is_some_and(|e| conn.transport_id() == e) {
                    continue;
                }
                conn.emit_value(out.event, &value);
                count += 1;
            }
            Ok(Delivery::Reached(count))
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
    /// Drawn at the start (offsets of another run mean nothing here),
    /// unless a journal kept the last run's.
    epoch: String,
    /// Where what it keeps is written, to outlive the process.
    journal: Option<Arc<dyn Journal>>,
}

/// The room messages of the window, with what the bounds need to push
/// out the oldest message of the room set holding the most.
#[derive(Default)]
struct Log {
    entries: BTreeMap<Offset, Entry>,
    last: Offset,
    /// Whatever is at or before it may be gone, in every room.
    dropped: Offset,
    /// Per room, whatever is at or before it may be gone in that room:
    /// pushed out of the room's share by a bound.
    dropped_in: HashMap<String, Offset>,
    /// The entries' weights ([`Message::weight`]), summed.
    bytes: usize,
    shares: Shares,
}

/// Most rooms whose messages a bound pushed out that the log remembers one
/// by one. Past it, the older half is remembered as one mark for every
/// room: that may start a few sessions fresh that had no gap, never the
/// other way round.
const MAX_MARKS: usize = 4096;

impl Log {
    fn push(&mut self, offset: Offset, message: Message) {
        let weight = message.weight();
        self.bytes += weight;
        self.shares.add(&message.rooms, offset, weight);
        self.entries.insert(offset, Entry { offset, message });
    }

    fn take(&mut self, offset: Offset) -> Option<Entry> {
        let entry = self.entries.remove(&offset)?;
        let weight = entry.message.weight();
        self.bytes -= weight;
        self.shares.remove(&entry.message.rooms, offset, weight);
        Some(entry)
    }

    /// Drops every message appended before `oldest_ms`, in every room.
    fn expire(&mut self, oldest_ms: u64) {
        while let Some((&offset, _)) = self.entries.first_key_value()
            && offset.ms < oldest_ms
        {
            self.take(offset);
            self.dropped = offset;
        }
    }

    /// Forgets the rooms' marks at or before the mark for every room: they
    /// say nothing more. On the timer, not on each append: a mark left a
    /// little longer is harmless.
    fn forget_covered_marks(&mut self) {
        let everywhere = self.dropped;
        self.dropped_in.retain(|_, at| *at > everywhere);
    }

    /// While over a bound, pushes out the oldest message of the room set
    /// that holds the most (by count for the count, by bytes for the
    /// bytes): a flood evicts its own room's messages first.
    fn bound(&mut self, settings: &Settings) {
        while self.entries.len() > settings.history && self.push_out(Measure::Count) {}
        while self.bytes > settings.history_bytes && self.push_out(Measure::Bytes) {}
    }

    /// Drops the oldest message of the room set that holds the most by
    /// `measure`, and marks its rooms: a session in one of them that
    /// missed it starts fresh. False when there was none.
    fn push_out(&mut self, measure: Measure) -> bool {
        match self.shares.heaviest(measure) {
            Some(offset) => self.drop_marked(offset),
            None => false,
        }
    }

    /// While the room set `rooms` is over its own bounds (`keep`, at
    /// `now_ms`), drops its oldest message, marking its rooms.
    fn bound_own(&mut self, rooms: &[String], keep: Keep, now_ms: u64) {
        let oldest_ms = keep.ttl_ms.map(|ttl| now_ms.saturating_sub(ttl));
        loop {
            let Some(share) = self.shares.of.get(rooms) else {
                return;
            };
            let Some(&front) = share.offsets.front() else {
                return;
            };
            let over = keep.size.is_some_and(|max| share.offsets.len() > max);
            let old = oldest_ms.is_some_and(|oldest| front.ms < oldest);
            if !(over || old) || !self.drop_marked(front) {
                return;
            }
        }
    }

    /// Drops the message at `offset` and marks its rooms: a session in
    /// one of them that missed it starts fresh.
    fn drop_marked(&mut self, offset: Offset) -> bool {
        let Some(entry) = self.take(offset) else {
            return false;
        };
        for room in entry.message.rooms {
            let mark = self.dropped_in.entry(room).or_default();
            *mark = (*mark).max(offset);
        }
        if self.dropped_in.len() > MAX_MARKS {
            let mut marks: Vec<Offset> = self.dropped_in.values().copied().collect();
            marks.sort_unstable();
            self.dropped = self.dropped.max(marks[marks.len() / 2]);
            self.forget_covered_marks();
        }
        true
    }

    /// The newest `limit` messages of `room` after `after`, oldest first.
    fn room(&self, room: &str, after: Offset, limit: usize) -> (Vec<Entry>, bool) {
        let mark = self.dropped_in.get(room).copied();
        let complete = !recovery::missed_dropped(after, self.dropped, mark);
        let later = self.entries.range((Excluded(after), Unbounded));
        let mut newest: Vec<Entry> = later
            .rev()
            .map(|(_, e)| e)
            .filter(|e| e.message.rooms.iter().any(|r| r == room))
            .take(limit)
            .cloned()
            .collect();
        newest.reverse();
        (newest, complete)
    }

    fn since(&self, after: Offset, wanted: &Wanted<'_>) -> Missed {
        // An offset this history never gave: a message of an earlier run
        // that did not reach the journal before the process died.
        if after > self.last {
            return Missed::Gap;
        }
        let marks = wanted.rooms.iter().filter_map(|r| self.dropped_in.get(r));
        if recovery::missed_dropped(after, self.dropped, marks.copied()) {
            return Missed::Gap;
        }
        let later = self.entries.range((Excluded(after), Unbounded));
        recovery::select(later.map(|(_, e)| e), wanted)
    }
}

/// A set of rooms, as a message names them: the unit the bounds share the
/// history between.
type RoomSet = Arc<[String]>;

/// What each room set holds, and which holds the most.
#[derive(Default)]
struct Shares {
    of: HashMap<RoomSet, Share>,
    by_count: BTreeSet<Rank>,
    by_bytes: BTreeSet<Rank>,
}

/// A room set's place in a ranking: the most first, and among equals the
/// one with the oldest message (so that equal shares go oldest first, as
/// a history without shares would).
type Rank = (usize, Reverse<Offset>, RoomSet);

#[derive(Default)]
struct Share {
    /// Its messages, oldest first.
    offsets: VecDeque<Offset>,
    bytes: usize,
}

#[derive(Clone, Copy)]
enum Measure {
    Count,
    Bytes,
}

impl Shares {
    fn add(&mut self, rooms: &[String], offset: Offset, weight: usize) {
        let key: RoomSet = match self.of.get_key_value(rooms) {
            Some((key, _)) => key.clone(),
            None => rooms.into(),
        };
        self.unrank(&key);
        let share = self.of.entry(key.clone()).or_default();
        share.offsets.push_back(offset);
        share.bytes += weight;
        self.rank(&key);
    }

    fn remove(&mut self, rooms: &[String], offset: Offset, weight: usize) {
        let Some((key, _)) = self.of.get_key_value(rooms) else {
            return;
        };
        let key = key.clone();
        self.unrank(&key);
        let share = self.of.get_mut(&key).expect("looked up");
        // The log takes each share's messages oldest first (by the window
        // and by the bounds alike): this is the first; the search is a
        // safeguard.
        match share.offsets.iter().position(|o| *o == offset) {
            Some(0) => {
                share.offsets.pop_front();
            }
            Some(i) => {
                share.offsets.remove(i);
            }
            None => return self.rank(&key),
        }
        share.bytes -= weight;
        if share.offsets.is_empty() {
            self.of.remove(&key);
        } else {
            self.rank(&key);
        }
    }

    /// The oldest message of the room set that holds the most.
    fn heaviest(&self, measure: Measure) -> Option<Offset> {
        let ranking = match measure {
            Measure::Count => &self.by_count,
            Measure::Bytes => &self.by_bytes,
        };
        let (_, Reverse(oldest), _) = ranking.last()?;
        Some(*oldest)
    }

    fn unrank(&mut self, key: &RoomSet) {
        if let Some((count, bytes)) = self.ranks(key) {
            self.by_count.remove(&count);
            self.by_bytes.remove(&bytes);
        }
    }

    fn rank(&mut self, key: &RoomSet) {
        if let Some((count, bytes)) = self.ranks(key) {
            self.by_count.insert(count);
            self.by_bytes.insert(bytes);
        }
    }

    fn ranks(&self, key: &RoomSet) -> Option<(Rank, Rank)> {
        let share = self.of.get(key)?;
        let oldest = Reverse(*share.offsets.front()?);
        Some((
            (share.offsets.len(), oldest, key.clone()),
            (share.bytes, oldest, key.clone()),
        ))
    }
}

#[derive(Default)]
struct Lot {
    sessions: HashMap<String, Parked>,
    /// How many were left at the last sweep of expired ones.
    swept: usize,
}

impl Lot {
    fn sweep(&mut self, now_ms: u64, window_ms: u64) {
        self.sessions
            .retain(|_, p| p.parked_at + window_ms > now_ms);
        self.swept = self.sessions.len();
    }
}

impl MemoryHistory {
    /// An empty history, kept as `settings` say.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            log: Mutex::default(),
            parked: Mutex::default(),
            epoch: format!("{:016x}", rand::random::<u64>()),
            journal: None,
        }
    }

    /// The same history, writing what it keeps to `journal`, under the
    /// `epoch` of the run whose history it continues.
    pub fn with_journal(mut self, journal: Arc<dyn Journal>, epoch: String) -> Self {
        self.journal = Some(journal);
        self.epoch = epoch;
        self
    }

    /// Takes back what a journal kept of an earlier run: its messages,
    /// oldest first, and its parked sessions. Later appends follow the
    /// last message. Nothing is written back to the journal.
    pub fn restore(&self, entries: Vec<Entry>, parked: Vec<Parked>) {
        let mut log = lock(&self.log);
        // What came before the first message kept may be gone: the bounds
        // of the earlier run pushed it out, or the window.
        if let Some(first) = entries.first() {
            let Offset { ms, seq } = first.offset;
            log.dropped = match seq {
                0 => Offset::before(ms),
                seq => Offset { ms, seq: seq - 1 },
            };
        }
        for entry in entries {
            if entry.offset <= log.last {
                continue;
            }
            log.last = entry.offset;
            let keep = entry.message.keep;
            let own = (!keep.is_unbounded()).then(|| entry.message.rooms.clone());
            log.push(entry.offset, entry.message);
            if let Some(rooms) = own {
                log.bound_own(&rooms, keep, entry.offset.ms);
            }
        }
        log.bound(&self.settings);
        drop(log);
        let mut lot = lock(&self.parked);
        for p in parked {
            lot.sessions.insert(p.session.clone(), p);
        }
    }

    /// Appends `message` at `now_ms` and runs `deliver` with its offset,
    /// before any later append: what clients receive is in offset order,
    /// which is what makes the offset a client saw last a cut of the
    /// history. Drops what is older than the window, then, while over a
    /// bound, the oldest message of the room set holding the most.
    pub fn append<T>(&self, message: Message, now_ms: u64, deliver: impl FnOnce(Offset) -> T) -> T {
        let mut log = lock(&self.log);
        let offset = log.last.next(now_ms);
        log.last = offset;
        let kept = self.journal.as_ref().map(|_| message.clone());
        let keep = message.keep;
        let own = (!keep.is_unbounded()).then(|| message.rooms.clone());
        log.push(offset, message);
        log.expire(self.oldest(now_ms));
        if let Some(rooms) = own {
            log.bound_own(&rooms, keep, now_ms);
        }
        log.bound(&self.settings);
        let delivered = deliver(offset);
        // Queued while the log is held: the journal gets the messages in
        // their offsets' order.
        if let (Some(journal), Some(message)) = (&self.journal, kept) {
            journal.appended(Entry { offset, message });
        }
        delivered
    }

    /// How many messages it holds, and their weight in bytes
    /// ([`Message::weight`]).
    pub fn size(&self) -> (usize, usize) {
        let log = lock(&self.log);
        (log.entries.len(), log.bytes)
    }

    fn window_ms(&self) -> u64 {
        self.settings.window.as_millis() as u64
    }

    /// The first millisecond still in the window at `now_ms`.
    fn oldest(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.window_ms())
    }
}

impl History for MemoryHistory {
    fn since<'a>(
        &'a self,
        after: Offset,
        wanted: &'a Wanted<'a>,
    ) -> BoxFuture<'a, Result<Missed, Unavailable>> {
        let missed = lock(&self.log).since(after, wanted);
        Box::pin(async { Ok(missed) })
    }

    fn room<'a>(
        &'a self,
        room: &'a str,
        after: Offset,
        limit: usize,
    ) -> BoxFuture<'a, Result<RoomHistory, Unavailable>> {
        let log = lock(&self.log);
        let (messages, complete) = log.room(room, after, limit);
        let last = (log.last != Offset::default()).then_some(log.last);
        let history = RoomHistory {
            messages,
            last,
            epoch: self.epoch.clone(),
            complete,
        };
        Box::pin(async { Ok(history) })
    }

    fn park<'a>(&'a self, parked: &'a Parked) -> BoxFuture<'a, ()> {
        let mut lot = lock(&self.parked);
        // Expired ones go when the lot has doubled since the last sweep:
        // a sweep per park would make a mass disconnect quadratic.
        if lot.sessions.len() > 2 * lot.swept + 64 {
            lot.sweep(parked.parked_at, self.window_ms());
        }
        lot.sessions.insert(parked.session.clone(), parked.clone());
        if let Some(journal) = &self.journal {
            journal.parked(parked);
        }
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
        if let (Some(journal), Some(_)) = (&self.journal, &taken) {
            journal.unparked(session);
        }
        Box::pin(async { Ok(taken) })
    }

    fn forget_user<'a>(&'a self, user: &'a str) -> BoxFuture<'a, ()> {
        lock(&self.parked).sessions.retain(|_, p| p.user_id != user);
        if let Some(journal) = &self.journal {
            journal.forgot_user(user);
        }
        Box::pin(async {})
    }

    fn trim(&self, now_ms: u64) -> BoxFuture<'_, ()> {
        let mut log = lock(&self.log);
        log.expire(self.oldest(now_ms));
        log.forget_covered_marks();
        drop(log);
        lock(&self.parked).sweep(now_ms, self.window_ms());
        if let Some(journal) = &self.journal {
            let oldest = self.oldest(now_ms);
            journal.trimmed(oldest, oldest);
        }
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
            keep: Keep::default(),
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

    fn wanted(rooms: &[String]) -> Wanted<'_> {
        Wanted {
            rooms,
            socket: "x",
            max_packets: 10_000,
            max_bytes: 1 << 30,
        }
    }

    /// `n` as data: a JSON string of `len` bytes, as repetitive as a
    /// flood that compresses well on the wire.
    fn big(room: &str, len: usize) -> Message {
        Message {
            data: RawValue::from_string(format!("\"{}\"", "a".repeat(len - 2))).unwrap(),
            ..message(room, 0)
        }
    }

    #[test]
    fn the_history_holds_at_most_its_bytes_as_stored() {
        let history = MemoryHistory::new(Settings {
            history_bytes: 1 << 20,
            ..Settings::default()
        });
        let rooms = ["spam".to_string()];
        let first = history.append(big("spam", 64 << 10), 1000, |o| o);
        for _ in 0..200 {
            history.append(big("spam", 64 << 10), 1000, |_| ());
        }
        let (count, bytes) = history.size();
        assert!(bytes <= 1 << 20, "{bytes} bytes kept");
        assert_eq!(count, (1 << 20) / big("spam", 64 << 10).weight());
        // What it missed went: never a gap.
        assert!(matches!(
            now(history.since(first, &wanted(&rooms))),
            Ok(Missed::Gap)
        ));
        // The weight counts what is kept, data and rooms and bookkeeping.
        let one = big("spam", 64 << 10);
        let stored = (64 << 10) + "news".len() + "spam".len();
        assert_eq!(one.weight(), stored + 24 + recovery::ENTRY_OVERHEAD);
    }

    #[test]
    fn a_room_with_its_own_bounds_keeps_within_them_and_marks_what_went() {
        let history = MemoryHistory::new(Settings::default());
        let bounded = |room: &str, n: u32, keep: Keep| Message {
            keep,
            ..message(room, n)
        };
        let five = Keep {
            size: Some(5),
            ttl_ms: None,
        };
        let start = history.append(message("quiet", 0), 1000, |o| o);
        for n in 1..=20 {
            history.append(bounded("busy", n, five), 1000 + u64::from(n), |_| ());
        }
        let room = |name: &str| now(history.room(name, Offset::default(), 100)).unwrap();
        let busy = room("busy");
        let kept: Vec<&str> = busy.messages.iter().map(|e| e.message.data.get()).collect();
        assert_eq!(kept, ["16", "17", "18", "19", "20"]);
        assert!(!busy.complete, "its older messages went");
        assert!(room("quiet").complete);
        assert_eq!(room("quiet").messages.len(), 1);
        let busy_room = ["busy".to_string()];
        assert!(matches!(
            now(history.since(start, &wanted(&busy_room))),
            Ok(Missed::Gap)
        ));
        // By age: older than the room's ttl at its next message.
        let brief = Keep {
            size: None,
            ttl_ms: Some(100),
        };
        history.append(bounded("brief", 1, brief), 2000, |_| ());
        history.append(bounded("brief", 2, brief), 2050, |_| ());
        history.append(bounded("brief", 3, brief), 2140, |_| ());
        let kept = room("brief");
        let kept: Vec<&str> = kept.messages.iter().map(|e| e.message.data.get()).collect();
        assert_eq!(kept, ["2", "3"]);
    }

    #[test]
    fn a_restored_history_goes_on_after_its_last_offset_and_refuses_offsets_past_it() {
        let first = MemoryHistory::new(Settings::default());
        let mut entries = Vec::new();
        for n in 0..3 {
            first.append(message("chat", n), 1000 + u64::from(n), |offset| {
                entries.push(Entry {
                    offset,
                    message: message("chat", n),
                })
            });
        }
        let second = MemoryHistory::new(Settings::default());
        second.restore(entries.clone(), Vec::new());
        let chat = ["chat".to_string()];
        let after_first = numbers(now(second.since(entries[0].offset, &wanted(&chat))));
        assert_eq!(after_first, ["1", "2"]);
        let next = second.append(message("chat", 3), 1001, |o| o);
        assert!(
            next > entries[2].offset,
            "offsets go on after the restored ones"
        );
        // An offset the restored history never held: a lost write.
        let past = Offset { ms: 5000, seq: 0 };
        assert!(matches!(
            now(second.since(past, &wanted(&chat))),
            Ok(Missed::Gap)
        ));
        // Before the first restored message: maybe dropped, so a gap.
        assert!(matches!(
            now(second.since(Offset::at(10), &wanted(&chat))),
            Ok(Missed::Gap)
        ));
    }

    #[test]
    fn a_flood_in_one_room_pushes_out_that_rooms_messages_first() {
        let history = MemoryHistory::new(Settings {
            history: 10,
            history_bytes: 4000,
            ..Settings::default()
        });
        let start = history.append(message("quiet", 0), 1000, |o| o);
        history.append(message("quiet", 1), 1000, |_| ());
        history.append(message("both", 2), 1000, |_| ());
        // By count: 30 messages in one room, past a bound of 10.
        for n in 0..30 {
            history.append(message("spam", 100 + n), 1001, |_| ());
        }
        assert_eq!(history.size().0, 10);
        let quiet = ["quiet".to_string(), "both".to_string()];
        assert_eq!(
            numbers(now(history.since(start, &wanted(&quiet)))),
            ["1", "2"]
        );
        let spam = ["spam".to_string()];
        assert!(
            matches!(now(history.since(start, &wanted(&spam))), Ok(Missed::Gap)),
            "the flooded room lost messages"
        );
        // By bytes: a few big messages in another room.
        for _ in 0..5 {
            history.append(big("heavy", 1000), 1002, |_| ());
        }
        assert!(history.size().1 <= 4000);
        assert_eq!(
            numbers(now(history.since(start, &wanted(&quiet)))),
            ["1", "2"]
        );
        let heavy = ["heavy".to_string()];
        assert!(matches!(
            now(history.since(start, &wanted(&heavy))),
            Ok(Missed::Gap)
        ));
    }

    #[test]
    fn when_every_room_floods_each_keeps_its_share() {
        let history = MemoryHistory::new(Settings {
            history: 12,
            ..Settings::default()
        });
        let start = Offset::at(999);
        for n in 0..40 {
            history.append(message(["a", "b", "c"][n % 3], n as u32), 1000, |_| ());
        }
        for room in ["a", "b", "c"] {
            let rooms = [room.to_string()];
            let missed = now(history.since(start, &wanted(&rooms)));
            assert!(matches!(missed, Ok(Missed::Gap)), "{room} lost its oldest");
        }
        let (count, _) = history.size();
        assert_eq!(count, 12);
        let log = lock(&history.log);
        let mut per_room: HashMap<&str, usize> = HashMap::new();
        for entry in log.entries.values() {
            *per_room.entry(entry.message.rooms[0].as_str()).or_default() += 1;
        }
        assert_eq!(
            per_room.values().copied().collect::<BTreeSet<_>>(),
            [4].into()
        );
    }

    #[test]
    fn the_timer_drops_what_the_window_passed_without_another_publish() {
        let history = MemoryHistory::new(Settings {
            window: Duration::from_secs(1),
            ..Settings::default()
        });
        let first = history.append(big("a", 1000), 1000, |o| o);
        now(history.park(&parked("s1", "alice", 1000)));
        now(history.trim(1999));
        assert_eq!(history.size().0, 1, "still in the window");
        now(history.trim(2001));
        assert_eq!(history.size(), (0, 0), "gone without another append");
        assert_eq!(now(history.unpark("alice", "s1")).unwrap(), None);
        let rooms = ["a".to_string()];
        assert!(matches!(
            now(history.since(Offset::at(999), &wanted(&rooms))),
            Ok(Missed::Gap)
        ));
        assert_eq!(numbers(now(history.since(first, &wanted(&rooms)))).len(), 0);
    }

    #[test]
    fn past_its_marks_the_history_marks_every_room_never_hides_a_gap() {
        let history = MemoryHistory::new(Settings {
            history: 1,
            ..Settings::default()
        });
        let start = Offset::at(999);
        let rooms: Vec<String> = (0..MAX_MARKS + 10).map(|n| format!("r{n}")).collect();
        let mut before_last = start;
        for (n, room) in rooms.iter().enumerate() {
            let offset = history.append(message(room, n as u32), 1000, |o| o);
            if n + 2 == rooms.len() {
                before_last = offset;
            }
        }
        assert!(lock(&history.log).dropped_in.len() <= MAX_MARKS);
        // Every room but the last lost its message: each session in one
        // of them sees a gap, whether its mark was kept or folded.
        for room in &rooms[..rooms.len() - 1] {
            let one = [room.clone()];
            assert!(
                matches!(now(history.since(start, &wanted(&one))), Ok(Missed::Gap)),
                "{room}"
            );
        }
        let last = [rooms[rooms.len() - 1].clone()];
        let got = numbers(now(history.since(before_last, &wanted(&last))));
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn the_books_balance_whatever_comes_and_goes() {
        let settings = Settings {
            window: Duration::from_secs(2),
            history: 50,
            history_bytes: 20_000,
            ..Settings::default()
        };
        let history = MemoryHistory::new(settings.clone());
        let sets: [&[&str]; 4] = [&["a"], &["b"], &["a", "b"], &["c"]];
        let mut at = 1000;
        for _ in 0..5000 {
            at += rand::random_range(0..20);
            let rooms = sets[rand::random_range(0..sets.len())];
            let message = Message {
                rooms: rooms.iter().map(|r| r.to_string()).collect(),
                ..big("a", rand::random_range(2..2000))
            };
            history.append(message, at, |_| ());
            if rand::random_range(0..10) == 0 {
                now(history.trim(at));
            }
            let log = lock(&history.log);
            let weights: usize = log.entries.values().map(|e| e.message.weight()).sum();
            assert_eq!(log.bytes, weights);
            assert!(log.entries.len() <= settings.history && log.bytes <= settings.history_bytes);
            let shared: usize = log.shares.of.values().map(|s| s.offsets.len()).sum();
            assert_eq!(shared, log.entries.len());
            assert_eq!(log.shares.by_count.len(), log.shares.of.len());
            assert_eq!(log.shares.by_bytes.len(), log.shares.of.len());
            for (set, share) in &log.shares.of {
                for offset in &share.offsets {
                    assert_eq!(log.entries[offset].message.rooms[..], set[..]);
                }
            }
        }
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
