//! # sockgate-bench
//!
//! A load generator for sockgate and any Socket.IO v5 server, speaking
//! Engine.IO v4 / Socket.IO v5 over raw WebSockets (no JavaScript in the
//! load path). Each scenario is a function taking a config and returning a
//! result struct; the `sockgate-bench` binary is a thin command line over
//! them, and the integration tests run them against an in-process gateway.
//!
//! - [`protocol`]: encoding and decoding of frames.
//! - [`conn`]: one lean client connection (one task, small buffers).
//! - [`tokens`]: minted HS256 tokens, bad tokens, token files.
//! - [`fleet`]: opening many connections at a concurrency or rate.
//! - [`scenarios`]: connect, hold, reject, echo, fanout, refresh, revoke,
//!   reconnect.
//! - [`stats`]: exact nearest-rank percentiles.
//! - [`report`]: tables and JSON; [`compare`] and [`chart`] put two
//!   servers side by side.
//! - [`sys`]: file-descriptor limit, RSS, machine info.

#![warn(missing_docs)]

pub mod chart;
pub mod compare;
pub mod conn;
pub mod fleet;
pub mod http;
pub mod produce;
pub mod protocol;
pub mod report;
pub mod scenarios;
pub mod stats;
pub mod sys;
pub mod tokens;

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

pub use conn::{Client, Conn, ConnError};
pub use report::Report;
pub use tokens::{Minter, Tokens};

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Microseconds on this process's monotonic clock. Used for timestamps that
/// travel through the server and back (`fanout`'s `t`).
pub fn now_us() -> u64 {
    EPOCH.elapsed().as_micros() as u64
}

/// What every scenario needs: where to connect, which tokens to present,
/// and how long the whole scenario may take.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The server; admin API calls go here.
    pub client: Arc<Client>,
    /// Other nodes of the same cluster. Connection `i` goes to node
    /// `i % (1 + peers.len())`, node 0 being `client`, so a cluster run puts
    /// most of its sockets on nodes other than the one the API call hits.
    pub peers: Vec<Arc<Client>>,
    /// The tokens the connections present in their CONNECT.
    pub tokens: Tokens,
    /// Hard limit for the whole scenario; what has not finished by then is
    /// counted as an `ERR_TIMEOUT: scenario` error.
    pub timeout: Duration,
}

impl Setup {
    /// A setup for `client` alone (no peers), with a 120 s timeout.
    pub fn new(client: Client, tokens: Tokens) -> Self {
        Self {
            client: Arc::new(client),
            peers: Vec::new(),
            tokens,
            timeout: Duration::from_secs(120),
        }
    }

    /// The node connection `index` goes to (0 = `client`).
    pub fn node_of(&self, index: usize) -> usize {
        index % (1 + self.peers.len())
    }

    /// The client of node `node`.
    pub fn node(&self, node: usize) -> &Arc<Client> {
        match node {
            0 => &self.client,
            n => &self.peers[n - 1],
        }
    }
}

/// A gate many tasks wait at and one opens, once. Costs one `Arc` per waiter.
#[derive(Clone, Debug)]
pub struct Gate(Arc<Semaphore>);

impl Default for Gate {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(0)))
    }
}

impl Gate {
    /// Resolves once the gate is open.
    pub async fn wait(&self) {
        // A closed semaphore fails every acquire at once: that is "open".
        let _ = self.0.acquire().await;
    }

    /// Opens the gate: every waiter, present and future, goes through.
    pub fn open(&self) {
        self.0.close();
    }
}
