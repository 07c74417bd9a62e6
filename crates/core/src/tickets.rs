//! Tickets for renewing a session from outside its connection.
//!
//! A browser session opened by a Next-Auth cookie has no token to send with
//! `auth:refresh`: the cookie travels only with HTTP requests. The socket
//! asks for a ticket (`auth:ticket`), and the page spends it on an HTTP
//! request carrying the rotated cookie; the gateway's `/auth/refresh` finds
//! the session by the ticket. A ticket is random, single-use and valid for
//! [`TICKET_TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use crate::session::{SessionId, random_alphanumeric};

/// How long a ticket may wait for its request.
pub const TICKET_TTL: Duration = Duration::from_secs(60);

/// The outstanding ticket of each session that asked for one.
#[derive(Default)]
pub struct Tickets {
    by_session: Mutex<HashMap<SessionId, Issued>>,
}

struct Issued {
    secret: String,
    at: Instant,
}

impl Tickets {
    /// A new ticket for `session`, replacing any it had:
    /// `<session id>.<32 random alphanumerics>`.
    pub(crate) fn issue(&self, session: SessionId) -> String {
        let secret = random_alphanumeric(32);
        let ticket = format!("{session}.{secret}");
        let issued = Issued {
            secret,
            at: Instant::now(),
        };
        self.lock().insert(session, issued);
        ticket
    }

    /// The session a ticket was issued to, once: a used, replaced or
    /// expired ticket names none.
    pub(crate) fn redeem(&self, ticket: &str) -> Option<SessionId> {
        let (id, secret) = ticket.split_once('.')?;
        let id = SessionId::parse(id)?;
        let mut map = self.lock();
        let issued = map.get(&id)?;
        if !bool::from(issued.secret.as_bytes().ct_eq(secret.as_bytes())) {
            return None;
        }
        let fresh = issued.at.elapsed() < TICKET_TTL;
        map.remove(&id);
        fresh.then_some(id)
    }

    /// Drops the ticket of a session that ended.
    pub fn forget(&self, session: SessionId) {
        self.lock().remove(&session);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Issued>> {
        self.by_session.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_is_good_once_for_its_session_only() {
        let tickets = Tickets::default();
        let a = SessionId::random();
        let b = SessionId::random();
        let ticket = tickets.issue(a);
        let forged = format!("{b}.{}", ticket.split_once('.').unwrap().1);
        assert_eq!(tickets.redeem(&forged), None);
        assert_eq!(tickets.redeem(&ticket), Some(a));
        assert_eq!(tickets.redeem(&ticket), None, "single use");
        let old = tickets.issue(a);
        let new = tickets.issue(a);
        assert_eq!(tickets.redeem(&old), None, "replaced");
        assert_eq!(tickets.redeem(&new), Some(a));
        let gone = tickets.issue(a);
        tickets.forget(a);
        assert_eq!(tickets.redeem(&gone), None);
        assert_eq!(tickets.redeem("no-dot"), None);
    }
}
