//! Idempotency keys seen on this node: a publish whose key was seen inside
//! the window is a duplicate. The in-memory brokers use it; a cluster keeps
//! its keys in Redis instead, set by the same script that publishes.
//!
//! Memory is bounded: at most [`MAX_KEYS`] keys are kept, the oldest
//! forgotten first. A key of 128 bytes costs about 300 bytes here, so the
//! bound is about 30 MB; a producer that sends more distinct keys inside
//! one window than that gets the oldest ones' duplicates delivered.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Most keys one node remembers.
pub const MAX_KEYS: usize = 100_000;

/// The keys seen, with the time each one's window ends.
#[derive(Default)]
pub struct Seen {
    inner: Mutex<Keys>,
}

#[derive(Default)]
struct Keys {
    until: HashMap<String, u64>,
    /// In the order they were claimed: `(key, until)`.
    order: VecDeque<(String, u64)>,
}

impl Seen {
    /// True, and the key remembered until `until_ms`, when `key` is not
    /// remembered at `now_ms`; false for a duplicate.
    pub fn claim(&self, key: &str, now_ms: u64, until_ms: u64) -> bool {
        let mut keys = self.inner.lock().expect("idempotency lock");
        keys.forget_expired(now_ms);
        if keys.until.get(key).is_some_and(|&until| until > now_ms) {
            return false;
        }
        while keys.order.len() >= MAX_KEYS {
            keys.forget_oldest();
        }
        keys.until.insert(key.to_owned(), until_ms);
        keys.order.push_back((key.to_owned(), until_ms));
        true
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("idempotency lock").until.len()
    }

    /// True when no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Keys {
    /// Windows end in claim order when they all have the same length;
    /// a shorter window set later is forgotten when the ones before it are.
    fn forget_expired(&mut self, now_ms: u64) {
        while self
            .order
            .front()
            .is_some_and(|(_, until)| *until <= now_ms)
        {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((key, until)) = self.order.pop_front() {
            // A key claimed again after its window keeps its newer entry.
            if self.until.get(&key) == Some(&until) {
                self.until.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_taken_once_per_window() {
        let seen = Seen::default();
        assert!(seen.claim("k", 0, 300));
        assert!(!seen.claim("k", 299, 599));
        assert!(seen.claim("other", 1, 301));
        // Its window over, the key is new again.
        assert!(seen.claim("k", 300, 600));
        assert!(!seen.claim("k", 301, 601));
    }

    #[test]
    fn memory_stays_bounded() {
        let seen = Seen::default();
        for i in 0..MAX_KEYS + 10 {
            assert!(seen.claim(&i.to_string(), 0, 1_000));
        }
        assert_eq!(seen.len(), MAX_KEYS);
        // The oldest were forgotten, the newest are kept.
        assert!(seen.claim("0", 1, 1_000));
        assert!(!seen.claim(&(MAX_KEYS + 9).to_string(), 1, 1_000));
    }

    #[test]
    fn expired_keys_are_dropped() {
        let seen = Seen::default();
        for i in 0..100 {
            seen.claim(&i.to_string(), 0, 10);
        }
        seen.claim("late", 11, 20);
        assert_eq!(seen.len(), 1);
    }
}
