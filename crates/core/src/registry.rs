//! The registry: every live session of this node, by id and by user.
//!
//! It answers "which sessions does this user have" (session limits, kicks,
//! revocation) and "what is session X" (admin API, timers), and applies the
//! per-user limit atomically with the registration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sockgate_auth::{AuthError, ErrorCode};

use crate::connection::Conn;
use crate::session::{LimitPolicy, Session, SessionId, SessionLimit};

struct Entry {
    session: Arc<Session>,
    socket: Conn,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<SessionId, Entry>,
    by_user: HashMap<String, Vec<SessionId>>,
}

/// A handshake that reserved its place but never connected is dropped after this.
const STALE_RESERVATION: Duration = Duration::from_secs(30);

/// Every live session of this node.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

impl Registry {
    /// Registers a new session, enforcing the per-user limit atomically.
    /// Returns the sessions the `evict-oldest` policy pushed out (already
    /// unregistered); the caller ends them.
    pub fn admit(
        &self,
        session: Arc<Session>,
        socket: Conn,
        limit: Option<SessionLimit>,
    ) -> Result<Vec<(Arc<Session>, Conn)>, AuthError> {
        let mut inner = self.inner.lock().expect("registry lock");
        inner.drop_stale(&session.user_id);
        let mut evicted = Vec::new();
        if let Some(limit) = limit {
            // Connections count, not namespace sockets: a socket riding on
            // a connection its user has counted already is not counted.
            let counted: Vec<SessionId> = inner
                .by_user
                .get(&session.user_id)
                .into_iter()
                .flatten()
                .filter(|sid| inner.by_id.get(sid).is_some_and(|e| !e.session.riding))
                .copied()
                .collect();
            let count = counted.len();
            if count >= limit.max {
                if limit.policy == LimitPolicy::Reject {
                    return Err(AuthError::new(
                        ErrorCode::SessionLimit,
                        format!("user already has {count} sessions (limit {})", limit.max),
                    ));
                }
                // Ids are kept in admission order: the front is the oldest.
                let excess = count + 1 - limit.max;
                evicted = counted[..excess]
                    .iter()
                    .filter_map(|sid| inner.remove(*sid))
                    .map(|e| (e.session, e.socket))
                    .collect();
            }
        }
        let sids = inner.by_user.entry(session.user_id.clone()).or_default();
        // Room for one first: most users have one session, and a first
        // push reserves four.
        let first = usize::from(sids.capacity() == 0);
        sids.reserve_exact(first);
        sids.push(session.id);
        inner.by_id.insert(session.id, Entry { session, socket });
        Ok(evicted)
    }

    /// Forgets a session; called when its socket disconnects, for any reason.
    pub fn remove(&self, sid: SessionId) -> Option<Arc<Session>> {
        self.inner
            .lock()
            .expect("registry lock")
            .remove(sid)
            .map(|e| e.session)
    }

    /// The session with id `sid`, and its connection.
    pub fn get(&self, sid: SessionId) -> Option<(Arc<Session>, Conn)> {
        let inner = self.inner.lock().expect("registry lock");
        inner
            .by_id
            .get(&sid)
            .map(|e| (e.session.clone(), e.socket.clone()))
    }

    /// The sessions of one user, oldest first.
    pub fn of_user(&self, user_id: &str) -> Vec<(Arc<Session>, Conn)> {
        let inner = self.inner.lock().expect("registry lock");
        let sids = inner
            .by_user
            .get(user_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        sids.iter()
            .filter_map(|sid| inner.by_id.get(sid))
            .map(|e| (e.session.clone(), e.socket.clone()))
            .collect()
    }

    /// Every session whose current identity matches `pred`.
    pub fn matching(&self, pred: impl Fn(&Session) -> bool) -> Vec<(Arc<Session>, Conn)> {
        let inner = self.inner.lock().expect("registry lock");
        inner
            .by_id
            .values()
            .filter(|e| pred(&e.session))
            .map(|e| (e.session.clone(), e.socket.clone()))
            .collect()
    }

    /// How many sessions are registered.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("registry lock").by_id.len()
    }

    /// Whether no session is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn remove(&mut self, sid: SessionId) -> Option<Entry> {
        let entry = self.by_id.remove(&sid)?;
        if let Some(sids) = self.by_user.get_mut(&entry.session.user_id) {
            sids.retain(|s| *s != sid);
            if sids.is_empty() {
                self.by_user.remove(&entry.session.user_id);
            }
        }
        Some(entry)
    }

    /// Drops reservations of handshakes that never completed (the connect
    /// packet could not be sent, so no disconnect handler will ever run).
    fn drop_stale(&mut self, user_id: &str) {
        let Some(sids) = self.by_user.get(user_id) else {
            return;
        };
        let stale: Vec<SessionId> = sids
            .iter()
            .filter(|sid| {
                self.by_id.get(sid).is_some_and(|e| {
                    !e.socket.connected() && e.session.registered.elapsed() > STALE_RESERVATION
                })
            })
            .copied()
            .collect();
        for sid in stale {
            self.remove(sid);
        }
    }
}
