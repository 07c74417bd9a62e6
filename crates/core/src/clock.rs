//! Time, as the core reads it.
//!
//! Every deadline and every timestamp of the core comes from one [`Clock`],
//! so that a test can run a token's whole life (warning, expiry, refresh)
//! on tokio's paused clock in milliseconds, and production reads the wall
//! clock that tokens' `exp` and `iat` are written in.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of Unix time in milliseconds.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// Seconds since the Unix epoch.
    fn now(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock: what production runs on.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        unix_now_ms()
    }
}

/// The wall clock as it was when this clock was made, moved on by tokio's
/// clock since: under `tokio::time::pause()` it stands still until the test
/// advances it, and the core's timers and timestamps move together.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin_ms: u64,
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that starts at the current wall-clock time.
    pub fn new() -> Self {
        Self {
            origin_ms: unix_now_ms(),
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.origin_ms + self.origin.elapsed().as_millis() as u64
    }
}

/// The wall clock in Unix seconds.
pub fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

/// The wall clock in Unix milliseconds.
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
