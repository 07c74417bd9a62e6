//! Limits: on what clients send ([`Limits`]), and against abuse
//! ([`AbuseLimits`]): handshakes per client address, events per socket, and
//! the connection cap. Token buckets come from `governor`.
//!
//! - A client address over its handshake budget is refused with
//!   `RATE_LIMITED` and told when to retry. A handshake is the opening of a
//!   transport; the address is the client's behind trusted proxies (the
//!   transport layer finds it), an IPv6 client's /64 ([`budget_key`]).
//! - A socket over its event budget gets `RATE_LIMITED` in the event's ack;
//!   a socket that keeps going (twice its burst refused in a row) is ended
//!   with `session:end { code: "RATE_LIMITED" }`.
//! - Past `max_connections` sessions, new handshakes get `CONNECTION_LIMIT`;
//!   existing sockets are untouched.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sockgate_auth::{AuthError, ErrorCode};

use crate::origins::Origins;

/// Size limits on what clients and the backend send.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest `data` of `room:publish` and `/api/publish`, in bytes.
    pub max_payload: usize,
    /// Most rooms one socket may be in, its own user room not counted.
    pub max_rooms_per_socket: usize,
    /// Largest incoming Socket.IO message (any transport), in bytes.
    pub max_message: usize,
    /// How long a client may take from opening the transport to the
    /// Socket.IO handshake.
    pub handshake_timeout: Duration,
    /// Browser origins allowed to connect; `None` allows any.
    pub allowed_origins: Option<Origins>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload: 64 * 1024,
            max_rooms_per_socket: 100,
            max_message: 128 * 1024,
            handshake_timeout: Duration::from_secs(10),
            allowed_origins: None,
        }
    }
}

/// A token bucket: `rate` per second sustained, `burst` at once. A rate of
/// 0 turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Sustained, per second.
    pub per_second: u32,
    /// At once.
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
    /// Transports one client address may open.
    pub handshakes_per_ip: Rate,
    /// Events one socket may send.
    pub events_per_socket: Rate,
    /// Most sessions the node holds; `None` for no cap.
    pub max_connections: Option<usize>,
    /// Most transports open and not yet authenticated, across all clients.
    pub max_pending_handshakes: usize,
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
            // A transport waiting for its handshake holds about 10 KiB, so
            // a flood from many addresses stays under 40 MiB; a legitimate
            // burst passes through in milliseconds per transport.
            max_pending_handshakes: 4096,
        }
    }
}

/// A retryable refusal and when to come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// The refusal.
    pub error: AuthError,
    /// How soon the client may try again.
    pub after: Duration,
}

/// How soon a client refused for the connection cap may try again.
const CAP_RETRY: Duration = Duration::from_secs(1);

/// The node-wide guard.
pub struct Guard {
    limits: AbuseLimits,
    handshakes: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl Guard {
    /// A guard applying `limits`.
    pub fn new(limits: AbuseLimits) -> Self {
        let handshakes = limits.handshakes_per_ip.quota().map(RateLimiter::keyed);
        Self { limits, handshakes }
    }

    /// The limits it applies.
    pub fn limits(&self) -> &AbuseLimits {
        &self.limits
    }

    /// Spends one handshake of `ip`'s budget.
    pub fn handshake(&self, ip: Option<IpAddr>) -> Result<(), Retry> {
        let (Some(limiter), Some(ip)) = (&self.handshakes, ip) else {
            return Ok(());
        };
        limiter.check_key(&budget_key(ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            Retry {
                error: AuthError::new(
                    ErrorCode::RateLimited,
                    format!("too many handshakes from this address; retry in {secs} s"),
                ),
                after: wait,
            }
        })
    }

    /// Refuses a handshake when the gateway already holds `current` sessions at the cap.
    pub fn connection(&self, current: usize) -> Result<(), Retry> {
        match self.limits.max_connections {
            Some(max) if current >= max => Err(Retry {
                error: AuthError::new(
                    ErrorCode::ConnectionLimit,
                    "the gateway is at its connection limit; try again later or elsewhere",
                ),
                after: CAP_RETRY,
            }),
            _ => Ok(()),
        }
    }

    /// A fresh event budget for one socket.
    pub(crate) fn event_budget(&self) -> EventBudget {
        self.event_budget_at(self.limits.events_per_socket)
    }

    /// A fresh event budget for one socket, at `rate` (a namespace's own).
    pub(crate) fn event_budget_at(&self, rate: Rate) -> EventBudget {
        EventBudget {
            limiter: rate
                .quota()
                .map(|quota| RateLimiter::direct_with_clock(quota, MonotonicClock)),
            refused_in_a_row: AtomicU32::new(0),
            tolerance: rate.burst.max(1).saturating_mul(2),
        }
    }

    /// Forgets addresses that have not handshaken lately.
    pub(crate) fn shrink(&self) {
        if let Some(limiter) = &self.handshakes {
            limiter.retain_recent();
        }
    }
}

/// A socket's token bucket, on the standard library's monotonic clock: it
/// lives as long as the socket, and with the default clock (which carries
/// its calibration) it was 72 bytes of every idle connection, 40 with this.
type SocketLimiter =
    RateLimiter<NotKeyed, InMemoryState, MonotonicClock, NoOpMiddleware<std::time::Instant>>;

/// One socket's event budget.
pub struct EventBudget {
    limiter: Option<SocketLimiter>,
    refused_in_a_row: AtomicU32,
    tolerance: u32,
}

/// The verdict on one event.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the budget.
    Allowed,
    /// Refuse this event with `RATE_LIMITED`.
    Refused,
    /// Refuse it and end the socket: the abuse goes on.
    Abusive,
}

impl EventBudget {
    /// Spends one event.
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

/// The key of a client's budgets: its IPv4 address, or its IPv6 /64.
///
/// One IPv6 host is routinely given a whole /64, so keying on the full
/// address would let it mint a fresh budget per address.
pub fn budget_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `PAYLOAD_TOO_LARGE` for data over `max` bytes of JSON.
pub(crate) fn check_payload(
    data: Option<&serde_json::value::RawValue>,
    max: usize,
) -> Result<(), AuthError> {
    let size = data.map_or(0, |d| d.get().len());
    if size > max {
        return Err(AuthError::new(
            ErrorCode::PayloadTooLarge,
            format!("data is {size} bytes; the limit is {max}"),
        ));
    }
    Ok(())
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
        let retry = guard.handshake(Some(a)).unwrap_err();
        assert_eq!(retry.error.code, ErrorCode::RateLimited);
        assert!(
            retry.error.message.contains("retry in 1 s"),
            "{}",
            retry.error.message
        );
        assert!(retry.after <= Duration::from_secs(1));
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
            ..AbuseLimits::default()
        });
        let ip = Some("10.0.0.1".parse().unwrap());
        for _ in 0..1000 {
            assert!(guard.handshake(ip).is_ok());
            assert_eq!(guard.event_budget().spend(), Verdict::Allowed);
        }
        assert!(guard.connection(1).is_ok());
        assert_eq!(
            guard.connection(2).unwrap_err().error.code,
            ErrorCode::ConnectionLimit
        );
    }
}
