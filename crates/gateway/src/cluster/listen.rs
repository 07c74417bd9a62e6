//! Which room channels this node listens on: a room's channel
//! (`sockgate:room:{key}`) while the node has a socket in the room, and
//! [`LINGER`] after its last one left. A node hears the traffic of its own
//! rooms only, so adding nodes adds no work to the others.
//!
//! - The engine tells of each room's first and last socket here
//!   ([`Listening::edge`], under its rooms' lock: it only marks the room).
//! - One task turns the marks into `SUBSCRIBE` and `UNSUBSCRIBE` commands,
//!   up to [`BATCH`] channels each: a burst of handshakes costs one round
//!   trip, not one per user.
//! - A room left and joined again within [`LINGER`] costs no command: a
//!   user's page reload, or a socket moving between rooms, keeps the
//!   subscription.
//! - [`Listening::ready`] is what the core waits for after a join
//!   (`Broker::listening`): the subscription is confirmed, or failed, or
//!   half a second passed. Redis away never holds a join up for long.
//!
//! All commands go out on the driver's one connection, in the order the
//! task sends them: an `UNSUBSCRIBE` never overtakes a later `SUBSCRIBE`
//! of the same room.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};

use super::driver::ResilientDriver;

/// The prefix of a room's channel; the room's key follows.
pub const ROOM_CHANNEL: &str = "sockgate:room:";

/// How long a room's subscription outlives its last socket here.
pub const LINGER: Duration = Duration::from_secs(5);
/// Most channels in one command.
const BATCH: usize = 1000;
/// Longest a join waits for its subscription, and a command for its
/// answer. Well under a second: a handshake waits for it after its
/// session is admitted, and the node drops an admitted session whose
/// transport is not confirmed a second later.
const WAIT: Duration = Duration::from_millis(500);
/// How often lingering rooms are looked at (and failed subscriptions
/// tried again).
const TICK: Duration = Duration::from_secs(1);

/// The channel of the room with key `room`.
pub fn channel(room: &str) -> String {
    format!("{ROOM_CHANNEL}{room}")
}

/// The room key a channel is of; `None` for another channel.
pub fn room_of(channel: &str) -> Option<&str> {
    channel.strip_prefix(ROOM_CHANNEL)
}

#[derive(Default)]
struct Room {
    /// A socket of this node is in the room.
    occupied: bool,
    /// Redis confirmed the subscription (and no unsubscribe was sent).
    subscribed: bool,
    /// A `SUBSCRIBE` is on its way.
    asking: bool,
    /// When its last socket left.
    vacated: Option<Instant>,
    /// Joins waiting for the subscription.
    waiting: Vec<oneshot::Sender<()>>,
}

impl Room {
    fn idle(&self) -> bool {
        !self.occupied && !self.subscribed && !self.asking && self.waiting.is_empty()
    }
}

/// The node's room subscriptions.
#[derive(Default)]
pub struct Listening {
    rooms: Mutex<HashMap<String, Room>>,
    wake: Notify,
}

impl Listening {
    /// No room yet.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<String, Room>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The engine's word: `room` got its first socket here (`true`) or lost
    /// its last (`false`).
    pub fn edge(&self, room: &str, occupied: bool) {
        let mut rooms = self.rooms();
        let entry = rooms.entry(room.to_owned()).or_default();
        entry.occupied = occupied;
        entry.vacated = (!occupied).then(Instant::now);
        let ask = occupied && !entry.subscribed && !entry.asking;
        if entry.idle() {
            rooms.remove(room);
        }
        drop(rooms);
        if ask {
            self.wake.notify_one();
        }
    }

    /// Done once every one of `rooms` this node has a socket in is
    /// subscribed (or its subscription failed, or half a second passed).
    pub async fn ready(&self, rooms: &[String]) {
        let waits: Vec<oneshot::Receiver<()>> = {
            let mut all = self.rooms();
            rooms
                .iter()
                .filter_map(|room| {
                    let entry = all.get_mut(room)?;
                    if entry.subscribed || !entry.occupied {
                        return None;
                    }
                    let (tx, rx) = oneshot::channel();
                    entry.waiting.push(tx);
                    Some(rx)
                })
                .collect()
        };
        if waits.is_empty() {
            return;
        }
        self.wake.notify_one();
        let all = futures_util::future::join_all(waits);
        let _ = tokio::time::timeout(WAIT, all).await;
    }

    /// The rooms whose subscription is confirmed.
    pub fn subscribed(&self) -> usize {
        self.rooms().values().filter(|r| r.subscribed).count()
    }

    /// What to subscribe now (marked as asked) and what to unsubscribe
    /// (marked as not subscribed: a join from now on waits for a new
    /// `SUBSCRIBE`, sent after the `UNSUBSCRIBE`).
    fn plan(&self, now: Instant) -> (Vec<String>, Vec<String>) {
        let mut rooms = self.rooms();
        let mut subscribe = Vec::new();
        let mut unsubscribe = Vec::new();
        for (name, room) in rooms.iter_mut() {
            if room.occupied && !room.subscribed && !room.asking {
                room.asking = true;
                subscribe.push(name.clone());
            } else if !room.occupied
                && room.subscribed
                && room
                    .vacated
                    .is_none_or(|at| now.duration_since(at) >= LINGER)
            {
                room.subscribed = false;
                unsubscribe.push(name.clone());
            }
        }
        rooms.retain(|_, room| !room.idle());
        (subscribe, unsubscribe)
    }

    /// Redis answered the `SUBSCRIBE` of `names`: the joins waiting on them
    /// go on either way (a failed one is asked again at the next tick).
    fn answered(&self, names: &[String], ok: bool) {
        let mut rooms = self.rooms();
        for name in names {
            let Some(room) = rooms.get_mut(name) else {
                continue;
            };
            room.asking = false;
            room.subscribed = ok;
            for tx in room.waiting.drain(..) {
                let _ = tx.send(());
            }
            if room.idle() {
                rooms.remove(name);
            }
        }
    }

    /// Lets every waiting join go on.
    fn release_all(&self) {
        for room in self.rooms().values_mut() {
            for tx in room.waiting.drain(..) {
                let _ = tx.send(());
            }
        }
    }

    /// Keeps the subscriptions as the rooms say, until the process ends.
    /// While Redis is away nothing is asked: the joins waiting go on at
    /// once (nothing crosses nodes then anyway), and the rooms are asked
    /// for at the first tick after it is back.
    pub async fn run(self: Arc<Self>, driver: ResilientDriver) {
        loop {
            let _ = tokio::time::timeout(TICK, self.wake.notified()).await;
            if !driver.is_healthy() {
                self.release_all();
                continue;
            }
            let (subscribe, unsubscribe) = self.plan(Instant::now());
            for chunk in unsubscribe.chunks(BATCH) {
                let channels: Vec<String> = chunk.iter().map(|r| channel(r)).collect();
                let result = tokio::time::timeout(WAIT, driver.unsubscribe(channels)).await;
                if !matches!(result, Ok(Ok(()))) {
                    tracing::debug!("a room unsubscribe failed");
                }
            }
            for chunk in subscribe.chunks(BATCH) {
                let channels: Vec<String> = chunk.iter().map(|r| channel(r)).collect();
                let result = tokio::time::timeout(WAIT, driver.subscribe_rooms(channels)).await;
                let ok = matches!(result, Ok(Ok(())));
                if !ok {
                    tracing::warn!(
                        rooms = chunk.len(),
                        "room subscriptions failed; asked again in a second"
                    );
                }
                self.answered(chunk, ok);
            }
            let (subscribes, unsubscribes) = (
                subscribe.len().div_ceil(BATCH) as u64,
                unsubscribe.len().div_ceil(BATCH) as u64,
            );
            if subscribes + unsubscribes > 0 {
                crate::telemetry::room_channels(self.subscribed(), subscribes, unsubscribes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_joined_room_is_asked_for_once_and_kept_a_while_after_its_last_socket() {
        let listening = Listening::new();
        listening.edge("a", true);
        listening.edge("b", true);
        let start = Instant::now();
        let (mut sub, unsub) = listening.plan(start);
        sub.sort();
        assert_eq!(sub, ["a", "b"]);
        assert!(unsub.is_empty());
        // Asked already: not again while the answer is on its way.
        assert_eq!(listening.plan(start), (vec![], vec![]));
        listening.answered(&sub, true);
        assert_eq!(listening.subscribed(), 2);
        listening.edge("a", false);
        assert_eq!(listening.plan(start), (vec![], vec![]));
        // Back within the linger: nothing to do.
        listening.edge("a", true);
        listening.edge("a", false);
        let later = Instant::now() + LINGER;
        assert_eq!(listening.plan(later), (vec![], vec!["a".to_owned()]));
        assert_eq!(listening.subscribed(), 1);
        assert_eq!(
            listening.rooms().len(),
            1,
            "a vacated, unsubscribed room is forgotten"
        );
    }

    #[test]
    fn a_failed_subscription_is_asked_again() {
        let listening = Listening::new();
        listening.edge("a", true);
        let now = Instant::now();
        let (sub, _) = listening.plan(now);
        listening.answered(&sub, false);
        assert_eq!(listening.plan(now).0, ["a"]);
    }

    #[test]
    fn a_room_unsubscribed_then_joined_is_subscribed_again_after() {
        let listening = Listening::new();
        listening.edge("a", true);
        let (sub, _) = listening.plan(Instant::now());
        listening.answered(&sub, true);
        listening.edge("a", false);
        let (_, unsub) = listening.plan(Instant::now() + LINGER);
        assert_eq!(unsub, ["a"]);
        listening.edge("a", true);
        assert_eq!(listening.plan(Instant::now()).0, ["a"]);
    }

    #[tokio::test]
    async fn ready_waits_for_the_answer_of_occupied_rooms_only() {
        let listening = Listening::new();
        listening.edge("a", true);
        // Not a room here: nothing to wait for.
        listening.ready(&["z".to_owned()]).await;
        let waiting = {
            let listening = listening.clone();
            tokio::spawn(async move { listening.ready(&["a".to_owned()]).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "it waits for the answer");
        let (sub, _) = listening.plan(Instant::now());
        listening.answered(&sub, true);
        waiting.await.unwrap();
        listening.ready(&["a".to_owned()]).await;
    }
}
