//! Token deadlines of every open connection, driven by one task.
//!
//! Each session has at most two token deadlines, the `auth:expiring`
//! warning and the expiry itself, and one early check that its transport
//! exists. They sit in one ordered set; a single task sleeps until
//! the earliest and hands due entries to the gateway. A million connections
//! are a million set entries, not a million sleeping tasks.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::session::SessionId;

/// What falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Due {
    /// Send `auth:expiring`.
    Warn,
    /// End the session with `SESSION_EXPIRED`.
    Expire,
    /// Remove the session if its transport never connected it.
    Confirm,
}

/// One entry: when (Unix milliseconds), whose, what.
pub type Deadline = (u64, SessionId, Due);

/// Every pending deadline, in order.
#[derive(Default)]
pub struct Deadlines {
    set: Mutex<BTreeSet<Deadline>>,
    wake: Notify,
}

impl Deadlines {
    /// Adds a deadline.
    pub fn schedule(&self, deadline: Deadline) {
        let mut set = self.set.lock().expect("deadlines lock");
        let earliest = set.first().is_none_or(|first| deadline < *first);
        set.insert(deadline);
        drop(set);
        if earliest {
            // `notify_one` keeps a permit if the task is busy, so no wake-up is lost.
            self.wake.notify_one();
        }
    }

    /// Removes a deadline, if it is pending.
    pub fn cancel(&self, deadline: &Deadline) {
        self.set.lock().expect("deadlines lock").remove(deadline);
    }

    /// How many deadlines are pending.
    pub fn len(&self) -> usize {
        self.set.lock().expect("deadlines lock").len()
    }

    /// Runs forever, calling `on_due` for each entry as it falls due on
    /// `clock`.
    pub async fn run(&self, clock: &dyn Clock, on_due: impl Fn(Deadline)) {
        loop {
            let next = self
                .set
                .lock()
                .expect("deadlines lock")
                .first()
                .map(|d| d.0);
            match next {
                None => self.wake.notified().await,
                Some(at) => {
                    let wait = Duration::from_millis(at.saturating_sub(clock.now_ms()));
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {},
                        () = self.wake.notified() => continue,
                    }
                }
            }
            for deadline in self.take_due(clock.now_ms()) {
                on_due(deadline);
            }
        }
    }

    fn take_due(&self, now_ms: u64) -> Vec<Deadline> {
        let mut set = self.set.lock().expect("deadlines lock");
        let later = set.split_off(&(now_ms + 1, SessionId::MIN, Due::Warn));
        std::mem::replace(&mut *set, later).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;
    use std::sync::Arc;

    #[test]
    fn takes_exactly_the_due_entries_in_order() {
        let d = Deadlines::default();
        let (a, b) = (SessionId::random(), SessionId::random());
        d.schedule((300, a, Due::Expire));
        d.schedule((100, b, Due::Warn));
        d.schedule((200, a, Due::Warn));
        d.cancel(&(200, a, Due::Warn));
        assert_eq!(d.take_due(250), vec![(100, b, Due::Warn)]);
        assert_eq!(d.take_due(300), vec![(300, a, Due::Expire)]);
        assert_eq!(d.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn one_task_fires_many_deadlines_on_time() {
        let clock = TokioClock::new();
        let d = Arc::new(Deadlines::default());
        let fired = Arc::new(Mutex::new(Vec::new()));
        let runner = {
            let (d, fired) = (d.clone(), fired.clone());
            tokio::spawn(async move {
                d.run(&clock, |(_, sid, due)| {
                    fired.lock().unwrap().push((sid, due, clock.now_ms()))
                })
                .await
            })
        };
        let start = clock.now_ms();
        let sids: Vec<SessionId> = (0..100).map(|_| SessionId::random()).collect();
        // Scheduled latest first: each insert moves the earliest deadline.
        for (i, sid) in sids.iter().enumerate().rev() {
            d.schedule((start + 50 + i as u64, *sid, Due::Expire));
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        runner.abort();
        let fired = fired.lock().unwrap();
        assert_eq!(fired.len(), 100);
        for (i, (sid, _, at)) in fired.iter().enumerate() {
            assert_eq!(*sid, sids[i], "fired in deadline order");
            assert!(*at >= start + 50 + i as u64, "never early");
        }
    }
}
