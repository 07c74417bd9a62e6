//! Transports opened and not yet authenticated.
//!
//! A transport that opened carries a [`Ticket`] in its request's
//! extensions (the handshake then keeps it with the socket): it counts
//! as pending until its Socket.IO handshake, and frees its place when the
//! transport goes, whichever comes first. The addresses that opened the
//! long-polling sessions are kept with them (see `crate::http::admission`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sockgate_auth::{AuthError, ErrorCode};
use sockgate_core::limits::Retry;
use sockgate_engine::engine::Sid;

/// The transports opened and not yet authenticated, and the addresses that
/// opened the long-polling sessions.
#[derive(Debug)]
pub struct Openings {
    pending: AtomicUsize,
    max_pending: usize,
    polling: Mutex<HashMap<Sid, Opener>>,
    /// Origins already warned about (see `warn_if_origin_refused`).
    pub(crate) refused_origins: sockgate_core::origins::RefusedOrigins,
}

/// The address of the client behind a request, after trusted proxies: put
/// in the request's extensions at the door, read by the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Who opened a long-polling session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Opener {
    /// The client's address.
    pub ip: IpAddr,
    /// Whether its `Origin` was allowed (or absent).
    pub origin_allowed: bool,
}

impl Openings {
    /// No transport pending yet; at most `max_pending` at once.
    pub fn new(max_pending: usize) -> Self {
        Self {
            pending: AtomicUsize::new(0),
            max_pending,
            polling: Mutex::new(HashMap::new()),
            refused_origins: Default::default(),
        }
    }

    /// Transports opened and not yet authenticated (nor gone).
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Takes a place among the pending transports, or says when to retry.
    pub fn take(self: &Arc<Self>) -> Result<Arc<Ticket>, Retry> {
        let taken = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_pending).then_some(n + 1)
            });
        if taken.is_err() {
            return Err(Retry {
                error: AuthError::new(
                    ErrorCode::ConnectionLimit,
                    "too many connections are opening; try again shortly",
                ),
                after: PENDING_RETRY,
            });
        }
        Ok(Arc::new(Ticket {
            openings: self.clone(),
            settled: AtomicBool::new(false),
            polling_sid: OnceLock::new(),
        }))
    }

    /// Who opened long-polling session `sid`, if it is one.
    pub(crate) fn opener(&self, sid: Sid) -> Option<Opener> {
        lock(&self.polling).get(&sid).copied()
    }

    /// Notes who opened long-polling session `sid`, for as long as
    /// `ticket`'s transport lives.
    pub(crate) fn bind(&self, ticket: &Ticket, sid: Sid, opener: Opener) {
        if ticket.polling_sid.set(sid).is_ok() {
            lock(&self.polling).insert(sid, opener);
        }
    }
}

/// A transport's place among the pending ones, held in its request's
/// extensions, then with the admitted socket, for as long as the socket lives.
#[derive(Debug)]
pub struct Ticket {
    openings: Arc<Openings>,
    settled: AtomicBool,
    polling_sid: OnceLock<Sid>,
}

impl Ticket {
    /// The transport has reached its Socket.IO handshake: it no longer counts
    /// as pending.
    pub fn settle(&self) {
        if !self.settled.swap(true, Ordering::AcqRel) {
            self.openings.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.settle();
        if let Some(sid) = self.polling_sid.get() {
            lock(&self.openings.polling).remove(sid);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How soon a client refused for the pending cap may try again.
const PENDING_RETRY: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_holds_a_pending_place_until_settled_or_dropped() {
        let openings = Arc::new(Openings::new(2));
        let a = openings.take().unwrap();
        let b = openings.take().unwrap();
        assert_eq!(openings.pending(), 2);
        let full = openings.take().unwrap_err();
        assert_eq!(full.error.code, ErrorCode::ConnectionLimit);
        a.settle();
        a.settle();
        assert_eq!(openings.pending(), 1, "settling twice frees one place");
        drop(a);
        assert_eq!(openings.pending(), 1, "a settled ticket frees nothing more");
        let sid = Sid::random();
        let opener = Opener {
            ip: "10.0.0.1".parse().unwrap(),
            origin_allowed: true,
        };
        openings.bind(&b, sid, opener);
        assert!(openings.opener(sid).is_some());
        drop(b);
        assert_eq!(openings.pending(), 0);
        assert!(
            lock(&openings.polling).is_empty(),
            "the binding goes with the transport"
        );
    }
}
