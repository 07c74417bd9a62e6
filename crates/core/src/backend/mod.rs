//! What a node shares with the other nodes, as traits.
//!
//! A [`crate::Node`] runs on these backends. Each has an in-memory
//! implementation ([`memory`]) that is the default: a single node, which
//! shares with nobody. The gateway's Redis implementations sit in its
//! `cluster` module and replace them all at once.
//!
//! - [`Broker`]: server events to rooms, on every node.
//! - [`Presence`]: who is in a room, on every node.
//! - [`Directory`]: the sessions of every node, the per-user limit across
//!   them, and each node's figures.
//! - [`ControlBus`]: announcements every node applies to its own sessions
//!   (revocations, kicks, evictions).
//! - [`History`]: the room messages of the recovery window, and the
//!   sessions parked until they recover (see [`crate::recovery`]).
//! - [`Census`]: which nodes hold a user, a room, a user in a room: the
//!   cluster's first arrival and last departure, told once ([`census`]).
//!
//! Revocations are kept across restarts by a [`crate::RevocationStore`],
//! beside its index.
//!
//! A backend that cannot answer says [`Unavailable`] (and logs why, when
//! it is more than a known outage); the node then falls back on what it
//! knows itself. None of them is
//! ever asked whether it is "clustered".

pub mod census;
pub mod memory;

pub use census::{Census, Counted, MemoryCensus, Move};

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::recovery::{Missed, Offset, Parked, RoomHistory, Wanted};
use crate::session::{SessionInfo, SessionLimit};
use sockgate_protocol::rooms::Sockets;

/// A boxed future, as the backend traits return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A backend that could not answer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// One delivery, as the node hands it to its [`Broker`]: checked already.
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// The rooms it goes to; a socket in several gets it once.
    pub rooms: Vec<String>,
    /// The event name.
    pub event: &'a str,
    /// Its data, as it came.
    pub data: Option<&'a RawValue>,
    /// The transport id of a connection that does not get it (the
    /// publisher of a `room:publish`).
    pub except: Option<String>,
    /// Deliver only if this key was not seen inside its window.
    pub once: Option<Once<'a>>,
    /// Whether it is kept in the recovery history (with an offset), as
    /// its rooms' `recover` option says; the node sets it.
    pub logged: bool,
    /// Its rooms' own bounds in the history; the node sets it.
    pub keep: crate::recovery::Keep,
}

/// An idempotency key and how long it is remembered.
#[derive(Debug, Clone, Copy)]
pub struct Once<'a> {
    /// The producer's key.
    pub key: &'a str,
    /// How long a second publish with it is a duplicate, in milliseconds.
    pub window_ms: u64,
}

/// What a broker did with an [`Outgoing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Delivered; the connections it reached on this node.
    Reached(usize),
    /// Its key was seen inside the window: delivered to nobody.
    Duplicate,
}

/// Delivers server events to rooms. Only [`crate::Node`] calls it.
pub trait Broker: Send + Sync + 'static {
    /// Delivers `out` to every connection in its rooms, on every node.
    /// With a key, recording the key and delivering are one step: a
    /// duplicate reaches nobody, and a broker that cannot record the key
    /// says [`Unavailable`] and delivers nothing.
    fn publish<'a>(&'a self, out: Outgoing<'a>) -> BoxFuture<'a, Result<Delivery, Unavailable>>;
    /// Done once what is published to `rooms` (keys) from now on, on any
    /// node, reaches this node's sockets there. The node waits for it
    /// after putting a socket in rooms and before telling anyone it is
    /// there (the join's ack, the CONNECT, a recovery's second read), so
    /// that a message sent after that is never missed. At once where
    /// every message reaches every node, as here; a cluster that listens
    /// per room waits for its subscriptions (bounded: a Redis away or
    /// slow is not waited for).
    fn listening<'a>(&'a self, rooms: &'a [String]) -> BoxFuture<'a, ()> {
        let _ = rooms;
        Box::pin(std::future::ready(()))
    }
}

/// Who is in which room, on every node. The node tells it when a user
/// arrives in a room or leaves it (first and last socket of that user
/// there, on this node).
pub trait Presence: Send + Sync + 'static {
    /// `user` arrived in `room` on this node.
    fn arrived(&self, room: &str, user: &str);
    /// `user` left `room` on this node.
    fn left(&self, room: &str, user: &str);
    /// The users in `room` on every node, sorted.
    fn members<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<Vec<String>, Unavailable>>;
    /// How many users are in `room` on every node.
    fn count<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<usize, Unavailable>> {
        Box::pin(async move { self.members(room).await.map(|m| m.len()) })
    }
}

/// A session somewhere in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The node that holds it.
    pub node: String,
    /// Its public id.
    pub session: String,
}

/// The directory's answer to a new session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Admitted; these sessions were evicted to make room (the node ends
    /// them, here or by announcing it).
    Admitted(Vec<Placed>),
    /// Refused: the user already holds this many sessions.
    Rejected(usize),
}

/// The sessions of every node.
///
/// The node's own registry applies the per-user limit to the sessions it
/// holds; a directory that sees other nodes applies it across them first.
pub trait Directory: Send + Sync + 'static {
    /// This node's name among the nodes (`local` for a single node).
    fn node(&self) -> &str;
    /// `ok`, `unreachable`, or `off` for a directory of one node: what the
    /// dashboard shows of it.
    fn status(&self) -> &'static str;
    /// Whether it answers now (`/readyz`).
    fn healthy(&self) -> bool {
        true
    }
    /// Records a new session of this node and, with a limit, admits it
    /// under that limit across every node.
    fn admit<'a>(
        &'a self,
        session: &'a SessionInfo,
        limit: Option<SessionLimit>,
    ) -> BoxFuture<'a, Result<Admission, Unavailable>>;
    /// Forgets a session of this node.
    fn left(&self, session: &str, user: &str);
    /// Every session, optionally of one user.
    fn list<'a>(
        &'a self,
        user: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<SessionInfo>, Unavailable>>;
    /// Whether another node holds session `id`.
    fn elsewhere<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, Unavailable>>;
    /// Shares this node's figures (JSON) with the others for a few seconds.
    fn share_figures<'a>(&'a self, json: &'a str) -> BoxFuture<'a, ()>;
    /// The figures the other nodes shared, as they shared them.
    fn peer_figures(&self) -> BoxFuture<'_, Vec<String>>;
}

/// Announcements every node applies to its own sessions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Control {
    /// A token was revoked until `expires_at`.
    RevokeToken {
        /// The token's `jti`.
        jti: String,
        /// Until when.
        expires_at: u64,
    },
    /// A user's tokens issued before `issued_before` were revoked.
    RevokeUser {
        /// The user.
        user_id: String,
        /// The cut-off.
        issued_before: u64,
    },
    /// End one session (kick or eviction); `code` is the `session:end` code.
    End {
        /// The session's public id.
        sid: String,
        /// The code it ends with.
        code: String,
    },
    /// End every session of a user (kick).
    EndUser {
        /// The user.
        user_id: String,
    },
    /// The sockets `who` names join (or leave) room `to`.
    MoveSockets {
        /// Whose sockets move.
        who: Sockets,
        /// The room they join or leave.
        to: String,
        /// Join (`true`) or leave.
        join: bool,
    },
}

/// What became of an announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announced {
    /// There are no other nodes to tell.
    Alone,
    /// The other nodes were told.
    Sent,
    /// They could not be told now; the bus tells them once it can.
    Later,
}

/// Carries [`Control`] announcements to every node, this one included.
pub trait ControlBus: Send + Sync + 'static {
    /// Announces `msg`.
    fn announce<'a>(&'a self, msg: &'a Control) -> BoxFuture<'a, Announced>;
}

/// The recovery window's room messages, and the sessions parked in it.
///
/// Messages are appended by the transport layer as it delivers them, in
/// the order it delivers them (see the gateway's `Emitter`); the node
/// reads them back for a recovering session. A history keeps them within
/// [`crate::recovery::Settings`]' window, count and bytes, sharing the
/// bounds fairly between rooms (see [`crate::recovery`]).
pub trait History: Send + Sync + 'static {
    /// What `wanted` was sent after `after`; [`Missed::Gap`] when the
    /// history no longer holds all of it.
    fn since<'a>(
        &'a self,
        after: Offset,
        wanted: &'a Wanted<'a>,
    ) -> BoxFuture<'a, Result<Missed, Unavailable>>;
    /// Keeps `parked` until the window passes or it is taken.
    fn park<'a>(&'a self, parked: &'a Parked) -> BoxFuture<'a, ()>;
    /// Takes session `session` of `user`, once: nobody else can then. Any
    /// other user finds nothing.
    fn unpark<'a>(
        &'a self,
        user: &'a str,
        session: &'a str,
    ) -> BoxFuture<'a, Result<Option<Parked>, Unavailable>>;
    /// Drops every parked session of `user` (kicked, revoked).
    fn forget_user<'a>(&'a self, user: &'a str) -> BoxFuture<'a, ()>;
    /// The newest `limit` messages of `room` after `after`, oldest first.
    fn room<'a>(
        &'a self,
        room: &'a str,
        after: Offset,
        limit: usize,
    ) -> BoxFuture<'a, Result<RoomHistory, Unavailable>>;
    /// Drops the messages and parked sessions the window has passed at
    /// `now_ms`. The node runs it on a timer: what an append would push
    /// out goes even when nothing more is published.
    fn trim(&self, now_ms: u64) -> BoxFuture<'_, ()>;
}

/// Where a single node's history ([`memory::MemoryHistory`]) writes what
/// it keeps, so that a restart finds it again (the gateway's is SQLite).
/// Called as things happen, in their order, and never waited for: a
/// journal queues the writes and does them off the delivery path.
pub trait Journal: Send + Sync + 'static {
    /// A message was kept.
    fn appended(&self, entry: crate::recovery::Entry);
    /// A dropped session was parked.
    fn parked(&self, parked: &Parked);
    /// A parked session was taken back (or forgotten).
    fn unparked(&self, session: &str);
    /// Every parked session of `user` was forgotten.
    fn forgot_user(&self, user: &str);
    /// Messages before `oldest_ms` and sessions parked before
    /// `parked_before_ms` are past the window.
    fn trimmed(&self, oldest_ms: u64, parked_before_ms: u64);
}
