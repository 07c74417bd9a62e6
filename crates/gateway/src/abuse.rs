//! Abuse limits: handshakes per client address, events per socket, and the
//! connection cap. Token buckets come from `governor`.
//!
//! - A client address over its handshake budget is refused with
//!   `RATE_LIMITED` and told when to retry.
//! - A socket over its event budget gets `RATE_LIMITED` in the event's ack;
//!   a socket that keeps going (twice its burst refused in a row) is ended
//!   with `session:end { code: "RATE_LIMITED" }`.
//! - Past `max_connections` sessions, new handshakes get `CONNECTION_LIMIT`;
//!   existing sockets are untouched.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use sockgate_auth::{AuthError, ErrorCode};

/// A token bucket: `rate` per second sustained, `burst` at once. A rate of
/// 0 turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Rate {
    fn quota(self) -> Option<Quota> {
        let rate = NonZeroU32::new(self.per_second)?;
        let burst = NonZeroU32::new(self.burst.max(1)).expect("at least 1");
        Some(Quota::per_second(rate).allow_burst(burst))
    }
}

/// The abuse limits of a gateway.
#[derive(Debug, Clone)]
pub struct AbuseLimits {
    pub handshakes_per_ip: Rate,
    pub events_per_socket: Rate,
    pub max_connections: Option<usize>,
}

impl Default for AbuseLimits {
    fn default() -> Self {
        Self {
            // Generous enough for an office behind one NAT address.
            handshakes_per_ip: Rate {
                per_second: 50,
                burst: 200,
            },
            events_per_socket: Rate {
                per_second: 100,
                burst: 200,
            },
            max_connections: None,
        }
    }
}

/// The gateway-wide guard.
pub struct Guard {
    limits: AbuseLimits,
    handshakes: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl Guard {
    pub fn new(limits: AbuseLimits) -> Self {
        let handshakes = limits.handshakes_per_ip.quota().map(RateLimiter::keyed);
        Self { limits, handshakes }
    }

    /// Spends one handshake of `ip`'s budget.
    pub fn handshake(&self, ip: Option<IpAddr>) -> Result<(), AuthError> {
        let (Some(limiter), Some(ip)) = (&self.handshakes, ip) else {
            return Ok(());
        };
        limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            AuthError::new(
                ErrorCode::RateLimited,
                format!("too many handshakes from this address; retry in {secs} s"),
            )
        })
    }

    /// Refuses a handshake when the gateway already holds `current` sessions at the cap.
    pub fn connection(&self, current: usize) -> Result<(), AuthError> {
        match self.limits.max_connections {
            Some(max) if current >= max => Err(AuthError::new(
                ErrorCode::ConnectionLimit,
                "the gateway is at its connection limit; try again later or elsewhere",
            )),
            _ => Ok(()),
        }
    }

    /// A fresh event budget for one socket.
    pub fn event_budget(&self) -> EventBudget {
        EventBudget {
            limiter: self
                .limits
                .events_per_socket
                .quota()
                .map(RateLimiter::direct),
            refused_in_a_row: AtomicU32::new(0),
            tolerance: self.limits.events_per_socket.burst.max(1).saturating_mul(2),
        }
    }

    /// Forgets addresses that have not handshaken lately.
    pub fn shrink(&self) {
        if let Some(limiter) = &self.handshakes {
            limiter.retain_recent();
        }
    }
}

/// One socket's event budget.
pub struct EventBudget {
    limiter: Option<DefaultDirectRateLimiter>,
    refused_in_a_row: AtomicU32,
    tolerance: u32,
}

/// The verdict on one event.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Refuse this event with `RATE_LIMITED`.
    Refused,
    /// Refuse it and end the socket: the abuse goes on.
    Abusive,
}

impl EventBudget {
    pub fn spend(&self) -> Verdict {
        let Some(limiter) = &self.limiter else {
            return Verdict::Allowed;
        };
        if limiter.check().is_ok() {
            self.refused_in_a_row.store(0, Ordering::Relaxed);
            return Verdict::Allowed;
        }
        let refused = self.refused_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        if refused >= self.tolerance {
            Verdict::Abusive
        } else {
            Verdict::Refused
        }
    }
}

impl std::fmt::Debug for EventBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBudget").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_are_limited_per_address() {
        let guard = Guard::new(AbuseLimits {
            handshakes_per_ip: Rate {
                per_second: 1,
                burst: 3,
            },
            ..AbuseLimits::default()
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(guard.handshake(Some(a)).is_ok());
        }
        let err = guard.handshake(Some(a)).unwrap_err();
        assert_eq!(err.code, ErrorCode::RateLimited);
        assert!(err.message.contains("retry in 1 s"), "{}", err.message);
        assert!(
            guard.handshake(Some(b)).is_ok(),
            "other addresses are not affected"
        );
    }

    #[test]
    fn events_are_refused_then_the_abuser_is_cut() {
        let guard = Guard::new(AbuseLimits {
            events_per_socket: Rate {
                per_second: 1,
                burst: 2,
            },
            ..AbuseLimits::default()
        });
        let budget = guard.event_budget();
        assert_eq!(budget.spend(), Verdict::Allowed);
        assert_eq!(budget.spend(), Verdict::Allowed);
        for _ in 0..3 {
            assert_eq!(budget.spend(), Verdict::Refused);
        }
        assert_eq!(budget.spend(), Verdict::Abusive);
    }

    #[test]
    fn zero_turns_limits_off_and_the_cap_holds() {
        let guard = Guard::new(AbuseLimits {
            handshakes_per_ip: Rate {
                per_second: 0,
                burst: 0,
            },
            events_per_socket: Rate {
                per_second: 0,
                burst: 0,
            },
            max_connections: Some(2),
        });
        let ip = Some("10.0.0.1".parse().unwrap());
        for _ in 0..1000 {
            assert!(guard.handshake(ip).is_ok());
            assert_eq!(guard.event_budget().spend(), Verdict::Allowed);
        }
        assert!(guard.connection(1).is_ok());
        assert_eq!(
            guard.connection(2).unwrap_err().code,
            ErrorCode::ConnectionLimit
        );
    }
}
