//! Recovery on a node: parking a session whose transport dropped, and
//! giving it back to a handshake that names it (see [`crate::recovery`]).
//!
//! A recovering handshake is verified like any other first. Then:
//! 1. [`Node::resume`] takes the parked session, if the claim's user is
//!    its user, the window has not passed and its old token is not
//!    revoked, and reads what it missed;
//! 2. the handshake admits a session under the parked id (limits apply);
//! 3. [`Node::restore`] puts it back in the rooms its new token may join,
//!    then reads the history again from where the first read stopped:
//!    joined first and read after, no message falls between the two.
//!
//! Anything else gives a fresh session: never the old state.

use std::sync::Arc;
use std::time::Duration;

use sockgate_auth::Identity;

use super::{Gone, Node};
use crate::backend::BoxFuture;
use crate::connection::Connection;
use crate::policy::Action;
use crate::recovery::{Claim, Entry, Missed, Offset, Parked, PidKey, Settings, Wanted};
use crate::rooms::validate;
use crate::session::{Session, SessionId};
use sockgate_protocol::rooms::RoomKey;

/// How often the history drops what the window has passed: a message
/// stays at most this long after its window.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Recovery's settings and the key of its `pid`s.
#[derive(Debug)]
pub(crate) struct Recovery {
    pub(crate) settings: Settings,
    key: PidKey,
}

/// A parked session taken for a handshake, with what it missed as far as
/// the history was read.
#[derive(Debug)]
pub struct Resumed {
    /// Its id, which the recovered session takes.
    pub session: SessionId,
    /// What it left.
    pub parked: Parked,
    missed: Vec<Entry>,
    /// Where the first read stopped.
    read_to: Offset,
}

/// A recovered session's missed messages, oldest first.
#[derive(Debug)]
pub struct Restored {
    /// What it missed.
    pub missed: Vec<Entry>,
    /// Messages at or before this reached the client already or are in
    /// `missed`: the transport drops them if they also arrive live.
    pub through: Offset,
}

impl Node {
    /// Parks dropped sessions for `settings.window`, under `key`'s `pid`s.
    pub fn with_recovery(mut self, settings: Settings, key: PidKey) -> Self {
        self.recovery = Some(Arc::new(Recovery { settings, key }));
        self
    }

    /// Recovery's settings, when it is on.
    pub fn recovery(&self) -> Option<&Settings> {
        self.recovery.as_deref().map(|r| &r.settings)
    }

    /// The `pid` the client of `session` recovers it with.
    pub fn pid(&self, session: SessionId) -> Option<String> {
        Some(self.recovery.as_ref()?.key.pid(session))
    }

    /// The claim of a handshake's `pid` and `offset`; `None` when recovery
    /// is off or the pid names no session of ours.
    pub fn claim(&self, pid: &str, offset: Option<&str>) -> Option<Claim> {
        self.recovery.as_ref()?.key.claim(pid, offset)
    }

    /// The transport of session `id` dropped, not by its user's wish (a
    /// network failure, a closed transport): it is parked for recovery,
    /// then forgotten. Returns the write of the parked state, to run now
    /// (it finishes at once in memory) or in a task.
    pub fn lost(&self, id: SessionId, why: Gone) -> Option<BoxFuture<'static, ()>> {
        let parked = self
            .sessions
            .get(id)
            .and_then(|(session, conn)| self.parked(&session, conn.as_ref()));
        self.forget(id, why);
        parked.map(|parked| self.park(parked))
    }

    /// What `session` leaves when parked; `None` when recovery is off.
    pub(crate) fn parked(&self, session: &Session, conn: &dyn Connection) -> Option<Parked> {
        self.recovery.as_ref()?;
        let identity = session.identity();
        let now = self.clock.now_ms();
        let since = match session.recovered_since.get() {
            Some(&(ms, seq)) => Offset { ms, seq },
            None => {
                let age = session.registered.elapsed().as_millis() as u64;
                Offset::before(now.saturating_sub(age))
            }
        };
        Some(Parked {
            session: session.id.to_string(),
            user_id: session.user_id.clone(),
            socket: conn.transport_id(),
            rooms: session.rooms(),
            token_id: identity.token_id().map(str::to_owned),
            issued_at: identity.issued_at(),
            since,
            parked_at: now,
        })
    }

    pub(crate) fn park(&self, parked: Parked) -> BoxFuture<'static, ()> {
        let history = self.history.clone();
        Box::pin(async move { history.park(&parked).await })
    }

    /// Takes the session `claim` names for a handshake verified as
    /// `identity`, with what it missed; `None` gives a fresh session, and
    /// logs why.
    pub async fn resume(&self, identity: &Identity, claim: &Claim) -> Option<Resumed> {
        let settings = &self.recovery.as_ref()?.settings;
        let user = identity.user_id.as_str();
        let not = |why: &str| {
            tracing::info!(target: "sockgate::session", user, session = %claim.session, why, "not recovered");
            None
        };
        let parked = match self.history.unpark(user, claim.session.as_str()).await {
            Ok(Some(parked)) => parked,
            Ok(None) => return not("no session of this user parked under this pid"),
            Err(_) => return not("the history is unavailable"),
        };
        let window = settings.window.as_millis() as u64;
        if parked.parked_at.saturating_add(window) < self.clock.now_ms() {
            return not("the recovery window has passed");
        }
        let (jti, iat) = (parked.token_id.as_deref(), parked.issued_at);
        if self.revocations.is_revoked_token(user, jti, iat) {
            return not("the session's token was revoked");
        }
        // An offset from before the session (a client's own from an older
        // session, or a made-up one) would replay what was sent before it
        // connected: the session missed nothing from then.
        let after = claim.offset.map_or(parked.since, |o| o.max(parked.since));
        let wanted = self.wanted(&parked.rooms, &parked.socket);
        match self.history.since(after, &wanted).await {
            Ok(Missed::Messages(missed)) => Some(Resumed {
                session: claim.session,
                read_to: missed.last().map_or(after, |e| e.offset),
                missed,
                parked,
            }),
            Ok(Missed::Gap) => not("the history no longer holds all it missed"),
            Ok(Missed::Overflow) => not("it missed more than the recovery bounds"),
            Err(_) => not("the history is unavailable"),
        }
    }

    /// Puts an admitted recovered `session` back in the rooms of `resumed`
    /// its token may still join (checked again, as after a refresh), and
    /// returns what it missed. `None` when the second read finds it over
    /// the bounds or gone: the caller ends the session, and the client's
    /// next handshake is a fresh one.
    pub async fn restore(
        &self,
        conn: &dyn Connection,
        session: &Session,
        resumed: Resumed,
    ) -> Option<Restored> {
        let since = resumed.parked.since;
        let _ = session.recovered_since.set((since.ms, since.seq));
        let own = session.user_room();
        let mut rooms = vec![own.clone()];
        let identity = session.identity();
        let max = self.limits.max_rooms_per_socket;
        for room in resumed.parked.rooms.iter().filter(|r| **r != own) {
            // A room of the session's namespace only: a pid presented on
            // another namespace's CONNECT brings none of its rooms there.
            let key = RoomKey::parse(room);
            let allowed = key.ns == session.namespace()
                && validate(key.name).is_ok()
                && rooms.len() <= max
                && self
                    .policy_of(session)
                    .authorize(&identity, key.name, Action::Join, true)
                    .await
                    .is_ok();
            if allowed {
                self.enter(conn, session, room);
                rooms.push(room.clone());
            }
        }
        // Listening first: what the second read does not see yet arrives
        // live, and what it does, live after `through`, is dropped.
        self.broker.listening(&rooms).await;
        let wanted = self.wanted(&rooms, &resumed.parked.socket);
        let Ok(Missed::Messages(later)) = self.history.since(resumed.read_to, &wanted).await else {
            return None;
        };
        let earlier = resumed.missed.into_iter();
        let missed: Vec<Entry> = earlier
            .filter(|e| e.message.reaches(&rooms, &resumed.parked.socket))
            .chain(later)
            .collect();
        let through = missed.last().map_or(resumed.read_to, |e| e.offset);
        let bytes: usize = missed.iter().map(|e| e.message.size()).sum();
        (missed.len() <= wanted.max_packets && bytes <= wanted.max_bytes).then_some(Restored {
            missed,
            through: through.max(resumed.read_to),
        })
    }

    /// Trims the history on a timer while recovery is on, so that what
    /// the window has passed goes even when nothing is published; returns
    /// at once when it is off.
    pub(crate) async fn trim_history(&self) {
        if self.recovery.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(TRIM_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.history.trim(self.clock.now_ms()).await;
        }
    }

    fn wanted<'a>(&self, rooms: &'a [String], socket: &'a str) -> Wanted<'a> {
        let settings = self.recovery().cloned().unwrap_or_default();
        Wanted {
            rooms,
            socket,
            max_packets: settings.max_packets,
            max_bytes: settings.max_bytes,
        }
    }
}
