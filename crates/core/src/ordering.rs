//! One socket's calls to the app, in order, and the calls one user may
//! have in flight: what keeps a slow backend from reordering a socket's
//! events or being flooded by one user.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Calls one socket may have waiting behind its call in flight; past it,
/// `RATE_LIMITED`. A client that emits faster than the app answers is
/// told so instead of queueing without end.
pub const MAX_QUEUED_CALLS: usize = 64;

/// One socket's calls, in order: each waits for the one before it to be
/// answered and applied. Made on the socket's first call (an idle
/// connection holds none).
#[derive(Debug, Default)]
pub struct Calls {
    turn: tokio::sync::Mutex<()>,
    waiting: AtomicUsize,
}

impl Calls {
    /// Takes a place in the line, in the order of the calls: `None` when
    /// the line is full. Await [`Place::turn`] for the socket's turn.
    pub fn enter(&self) -> Option<Place<'_>> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_QUEUED_CALLS {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Place { calls: self })
    }
}

/// A place in a socket's line of calls.
pub struct Place<'a> {
    calls: &'a Calls,
}

impl<'a> Place<'a> {
    /// Waits for this call's turn. tokio's mutex is fair: waiters are
    /// served in the order they first polled, which is the order the
    /// socket's events arrived in (each event's handler is first polled on
    /// the connection's task). The place is given up once the turn comes.
    pub async fn turn(self) -> tokio::sync::MutexGuard<'a, ()> {
        self.calls.turn.lock().await
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.calls.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Calls in flight per user, across their sockets and bounded.
#[derive(Default)]
pub struct InFlight {
    per_user: Mutex<HashMap<String, usize>>,
}

impl InFlight {
    /// Counts one more call of `user`, unless they have `max` in flight.
    pub fn start<'a>(&'a self, user: &'a str, max: usize) -> Option<Started<'a>> {
        let mut per_user = self.per_user.lock().expect("in-flight lock");
        let n = per_user.entry(user.to_owned()).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Started {
            in_flight: self,
            user,
        })
    }
}

/// A call in flight; counted out when dropped.
pub struct Started<'a> {
    in_flight: &'a InFlight,
    user: &'a str,
}

impl Drop for Started<'_> {
    fn drop(&mut self) {
        let mut per_user = self.in_flight.per_user.lock().expect("in-flight lock");
        if let Some(n) = per_user.get_mut(self.user) {
            *n -= 1;
            if *n == 0 {
                per_user.remove(self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_has_at_most_max_calls_in_flight() {
        let in_flight = InFlight::default();
        let a = in_flight.start("alice", 2).unwrap();
        let _b = in_flight.start("alice", 2).unwrap();
        assert!(in_flight.start("alice", 2).is_none());
        assert!(in_flight.start("bob", 2).is_some());
        drop(a);
        assert!(in_flight.start("alice", 2).is_some());
    }

    #[test]
    fn a_full_line_refuses() {
        let calls = Calls::default();
        let places: Vec<_> = (0..MAX_QUEUED_CALLS)
            .map(|_| calls.enter().unwrap())
            .collect();
        assert!(calls.enter().is_none());
        drop(places);
        assert!(calls.enter().is_some(), "places given up are free again");
    }

    #[tokio::test]
    async fn calls_take_turns_in_the_order_they_entered() {
        let calls = std::sync::Arc::new(Calls::default());
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let first = calls.enter().unwrap().turn().await;
        let mut waiting = Vec::new();
        for i in 0..5 {
            let (calls, order) = (calls.clone(), order.clone());
            let mut task = Box::pin(async move {
                let _turn = calls.enter().unwrap().turn().await;
                order.lock().unwrap().push(i);
            });
            // First polled in order, as the connection's task does.
            let cx = &mut std::task::Context::from_waker(std::task::Waker::noop());
            assert!(task.as_mut().poll(cx).is_pending());
            waiting.push(tokio::spawn(task));
        }
        drop(first);
        for w in waiting {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }
}
