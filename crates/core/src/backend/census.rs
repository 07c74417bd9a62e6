//! The census: which nodes hold a user, a room, a user in a room, so that
//! the cluster tells the first arrival and the last departure once, not
//! once per node.
//!
//! A node moves only on its own edges: its first session of a user, its
//! first member of a room, and their last ones. The census answers whether
//! that edge is the cluster's too. A departure may wait (`user.offline`,
//! `room.vacated`, `room:left` wait the offline delay): until it is due the
//! node still counts as a holder, and an arrival on the same node cancels
//! it, so a reload or a deploy that brings the user back in time is no
//! news anywhere. Departures that come due are handed, each once, to
//! whichever node asks first ([`Census::due`]); a dead node's holdings are
//! given up by the node that reports it ([`Census::lost`]).
//!
//! [`MemoryCensus`] is the single node's; the gateway's Redis census sits
//! beside the other Redis backends.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BoxFuture, Unavailable};

/// What the census counts the holders of.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Counted {
    /// A user's sessions (`user.online`, `user.offline`).
    #[serde(rename = "u")]
    User(String),
    /// A room's members (`room.occupied`, `room.vacated`).
    #[serde(rename = "r")]
    Room(String),
    /// A user's sockets in a room (`member.joined`, `member.left`): room,
    /// user.
    #[serde(rename = "m")]
    Member(String, String),
    /// The same, for the rooms' own `room:joined` and `room:left`, whose
    /// departures wait: room, user.
    #[serde(rename = "p")]
    Present(String, String),
}

impl Counted {
    /// Its short, unambiguous name: the JSON of it (`{"u":"alice"}`).
    pub fn code(&self) -> String {
        serde_json::to_string(self).expect("a census entry serializes")
    }

    /// The entry a [`Counted::code`] names.
    pub fn from_code(code: &str) -> Option<Self> {
        serde_json::from_str(code).ok()
    }
}

/// One edge of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    /// This node holds it now (its first here).
    Arrive(Counted),
    /// This node no longer holds it (its last here left), from `after` on.
    Depart(Counted, Duration),
}

/// Counts the nodes holding each [`Counted`], for the cluster.
pub trait Census: Send + Sync + 'static {
    /// Applies this node's `moves`, in order, at `now_ms` (Unix ms). For
    /// each, whether it is the cluster's edge: an arrival where no node
    /// held it (and that cancelled no pending departure of this node), or
    /// an immediate departure that left no holder. A departure with a
    /// delay answers false: it is told by [`Census::due`].
    fn apply<'a>(
        &'a self,
        moves: &'a [Move],
        now_ms: u64,
    ) -> BoxFuture<'a, Result<Vec<bool>, Unavailable>>;

    /// The delayed departures due at `now_ms`, of any node, that left no
    /// holder; each is given to one caller once.
    fn due(&self, now_ms: u64) -> BoxFuture<'_, Result<Vec<Counted>, Unavailable>>;

    /// Gives up everything dead `node` held; what is left with no holder.
    fn lost<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<Vec<Counted>, Unavailable>>;

    /// Sets this node's holdings to `holding` (and what waits to depart),
    /// telling nothing: after an outage of the census, what the node could
    /// not record meanwhile is set right.
    fn restate<'a>(&'a self, holding: &'a [Counted]) -> BoxFuture<'a, Result<(), Unavailable>>;
}

/// One node's census: every edge here is the cluster's.
#[derive(Default)]
pub struct MemoryCensus {
    inner: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    held: HashSet<Counted>,
    /// Pending departures, by when they are due, then in the order they
    /// were made (a room vacated before its last user went offline).
    due: BTreeSet<(u64, u64, Counted)>,
    due_at: HashMap<Counted, (u64, u64)>,
    made: u64,
}

impl Held {
    fn apply(&mut self, mv: &Move, now_ms: u64) -> bool {
        match mv {
            Move::Arrive(what) => {
                if let Some((at, n)) = self.due_at.remove(what) {
                    self.due.remove(&(at, n, what.clone()));
                    return false;
                }
                self.held.insert(what.clone())
            }
            Move::Depart(what, after) if after.is_zero() => self.held.remove(what),
            Move::Depart(what, after) => {
                let at = now_ms.saturating_add(after.as_millis() as u64);
                self.schedule(what.clone(), at);
                false
            }
        }
    }

    fn schedule(&mut self, what: Counted, at: u64) {
        self.made += 1;
        if let Some((old, n)) = self.due_at.insert(what.clone(), (at, self.made)) {
            self.due.remove(&(old, n, what.clone()));
        }
        self.due.insert((at, self.made, what));
    }
}

impl MemoryCensus {
    /// The departures still waiting, with when they are due (Unix ms): a
    /// stopping node keeps them for the next start, so that users back by
    /// then are not told gone.
    pub fn pending(&self) -> Vec<(Counted, u64)> {
        let held = self.inner.lock().expect("census lock");
        held.due
            .iter()
            .map(|(at, _, what)| (what.clone(), *at))
            .collect()
    }

    /// Takes back a previous run's [`MemoryCensus::pending`] departures:
    /// held until due, cancelled by an arrival.
    pub fn restore(&self, pending: Vec<(Counted, u64)>) {
        let mut held = self.inner.lock().expect("census lock");
        for (what, at) in pending {
            held.held.insert(what.clone());
            held.schedule(what, at);
        }
    }
}

impl Census for MemoryCensus {
    fn apply<'a>(
        &'a self,
        moves: &'a [Move],
        now_ms: u64,
    ) -> BoxFuture<'a, Result<Vec<bool>, Unavailable>> {
        let mut held = self.inner.lock().expect("census lock");
        let edges = moves.iter().map(|mv| held.apply(mv, now_ms)).collect();
        Box::pin(std::future::ready(Ok(edges)))
    }

    fn due(&self, now_ms: u64) -> BoxFuture<'_, Result<Vec<Counted>, Unavailable>> {
        let mut held = self.inner.lock().expect("census lock");
        let mut gone = Vec::new();
        while let Some((at, _, _)) = held.due.first()
            && *at <= now_ms
        {
            let (_, _, what) = held.due.pop_first().expect("a first entry");
            held.due_at.remove(&what);
            if held.held.remove(&what) {
                gone.push(what);
            }
        }
        Box::pin(std::future::ready(Ok(gone)))
    }

    fn lost<'a>(&'a self, _node: &'a str) -> BoxFuture<'a, Result<Vec<Counted>, Unavailable>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    /// Never out of date: it is the node's own memory.
    fn restate<'a>(&'a self, _holding: &'a [Counted]) -> BoxFuture<'a, Result<(), Unavailable>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAY: Duration = Duration::from_secs(5);

    fn user(name: &str) -> Counted {
        Counted::User(name.into())
    }

    async fn apply(census: &MemoryCensus, moves: &[Move], now: u64) -> Vec<bool> {
        census.apply(moves, now).await.unwrap()
    }

    #[tokio::test]
    async fn a_return_within_the_delay_is_no_news() {
        let census = MemoryCensus::default();
        assert_eq!(apply(&census, &[Move::Arrive(user("a"))], 0).await, [true]);
        assert_eq!(
            apply(&census, &[Move::Depart(user("a"), DELAY)], 1_000).await,
            [false]
        );
        assert_eq!(
            apply(&census, &[Move::Arrive(user("a"))], 2_000).await,
            [false]
        );
        assert!(census.due(10_000).await.unwrap().is_empty(), "cancelled");
        assert_eq!(
            apply(&census, &[Move::Depart(user("a"), DELAY)], 11_000).await,
            [false]
        );
        assert!(census.due(15_999).await.unwrap().is_empty(), "not yet due");
        assert_eq!(census.due(16_000).await.unwrap(), [user("a")]);
        assert!(census.due(20_000).await.unwrap().is_empty(), "told once");
        assert_eq!(
            apply(&census, &[Move::Arrive(user("a"))], 21_000).await,
            [true]
        );
    }

    #[tokio::test]
    async fn an_immediate_departure_answers_at_once() {
        let census = MemoryCensus::default();
        let m = Counted::Member("r".into(), "a".into());
        let moves = [
            Move::Arrive(m.clone()),
            Move::Depart(m.clone(), Duration::ZERO),
            Move::Depart(m.clone(), Duration::ZERO),
        ];
        assert_eq!(apply(&census, &moves, 0).await, [true, true, false]);
    }

    #[tokio::test]
    async fn pending_departures_outlive_a_restart() {
        let before = MemoryCensus::default();
        apply(
            &before,
            &[Move::Arrive(user("a")), Move::Arrive(user("b"))],
            0,
        )
        .await;
        apply(
            &before,
            &[
                Move::Depart(user("a"), DELAY),
                Move::Depart(user("b"), DELAY),
            ],
            1_000,
        )
        .await;
        let after = MemoryCensus::default();
        after.restore(before.pending());
        assert_eq!(
            apply(&after, &[Move::Arrive(user("a"))], 3_000).await,
            [false]
        );
        assert_eq!(after.due(6_000).await.unwrap(), [user("b")]);
    }

    #[test]
    fn codes_name_one_entry_each() {
        let a = Counted::Member("r|x".into(), "u".into());
        let b = Counted::Member("r".into(), "x|u".into());
        assert_ne!(a.code(), b.code());
        assert_eq!(Counted::from_code(&a.code()), Some(a));
        assert_eq!(user("alice").code(), r#"{"u":"alice"}"#);
    }
}
