//! `hold`: open N authenticated connections, keep them idle for T seconds
//! (answering Engine.IO pings), and sample the server's resident memory
//! (`VmRSS` of `/proc/<server-pid>/status`) before connecting and while
//! holding. Memory per connection = (RSS at the end of the hold − RSS
//! before) / connected. The generator's own RSS is reported the same way.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{CLOSE_GRACE, per_second, to_value};
use crate::fleet::{self, Pace};
use crate::protocol::token_auth;
use crate::report::{Better, Errors, Metric};
use crate::stats::Summary;
use crate::sys::rss_bytes;
use crate::{Gate, Report, Setup};

/// The `hold` scenario's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HoldConfig {
    /// Connections to open and hold.
    pub connections: usize,
    /// How fast they are opened.
    pub pace: Pace,
    /// How long to hold every connection once all are open.
    #[serde(with = "crate::report::secs")]
    pub hold: Duration,
    /// The server process whose RSS is sampled; `None` = not measured.
    pub server_pid: Option<u32>,
    /// RSS sampling period while holding.
    #[serde(with = "crate::report::secs")]
    pub sample_every: Duration,
}

/// What the `hold` scenario measured. Memory figures are `None` when not
/// measured (no server pid, or `/proc` unreadable).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HoldResult {
    /// Connections attempted.
    pub attempted: usize,
    /// Connections whose CONNECT was accepted.
    pub connected: usize,
    /// Connections the server closed during the hold.
    pub dropped: usize,
    /// Engine.IO pings answered over all connections.
    pub pings_answered: u64,
    /// Handshake latency of the connections that got in, µs.
    pub connect_latency: Option<Summary>,
    /// Successful handshakes per second, from the first connect start to the
    /// last CONNECT reply.
    pub connections_per_s: f64,
    /// SYNs dropped at a full listen queue while connecting (system-wide).
    pub listen_overflows: Option<u64>,
    /// How long the connections were held, seconds (`hold`, unless the
    /// scenario timeout came first).
    pub held_s: f64,
    /// Server RSS before connecting, bytes.
    pub server_rss_before: Option<u64>,
    /// The last sample while holding.
    pub server_rss_held: Option<u64>,
    /// Highest server RSS sampled while holding, bytes.
    pub server_rss_peak: Option<u64>,
    /// (seconds since the hold started, RSS bytes).
    pub server_rss_samples: Vec<(f64, u64)>,
    /// Server memory per held connection: (RSS held − RSS before) /
    /// connected, bytes.
    pub server_bytes_per_connection: Option<f64>,
    /// The generator's own RSS before connecting, bytes.
    pub client_rss_before: Option<u64>,
    /// The generator's own RSS at the end of the hold, bytes.
    pub client_rss_held: Option<u64>,
    /// Generator memory per held connection: (RSS held − RSS before) /
    /// connected, bytes.
    pub client_bytes_per_connection: Option<f64>,
    /// Errors by label: failed handshakes, dropped connections, an RSS that
    /// could not be read.
    pub errors: Errors,
}

fn per_conn(before: Option<u64>, held: Option<u64>, n: usize) -> Option<f64> {
    match (before, held) {
        (Some(b), Some(h)) if n > 0 => Some((h as f64 - b as f64) / n as f64),
        _ => None,
    }
}

/// Runs the `hold` scenario: opens every connection, holds them idle for
/// `cfg.hold` sampling the server's RSS, then closes them.
pub async fn hold(setup: &Setup, cfg: &HoldConfig) -> HoldResult {
    let deadline = Instant::now() + setup.timeout;
    let own_pid = std::process::id();
    let server_rss_before = cfg.server_pid.and_then(rss_bytes);
    let client_rss_before = rss_bytes(own_pid);
    let tokens = setup.tokens.clone();
    let release = Gate::default();
    let gate = release.clone();
    let launched = fleet::launch(
        setup,
        cfg.connections,
        cfg.pace,
        deadline,
        move |i| token_auth(&tokens.for_connection(i)),
        move |_, mut conn| {
            let gate = gate.clone();
            async move {
                let held = conn.idle_until(gate.wait()).await;
                let pongs = conn.pongs;
                conn.close().await;
                (held, pongs)
            }
        },
    )
    .await;
    let (mut latencies, mut errors) = launched.tally();
    let connected = launched.connected();

    // Hold, sampling memory; never past the scenario deadline.
    let hold_start = Instant::now();
    let hold_end = (hold_start + cfg.hold).min(deadline.max(hold_start));
    let every = cfg.sample_every.max(Duration::from_millis(100));
    let mut samples = Vec::new();
    loop {
        let now = Instant::now();
        if let Some(rss) = cfg.server_pid.and_then(rss_bytes) {
            samples.push(((now - hold_start).as_secs_f64(), rss));
        }
        if now >= hold_end {
            break;
        }
        tokio::time::sleep_until((now + every).min(hold_end)).await;
    }
    let held_s = hold_start.elapsed().as_secs_f64();
    let client_rss_held = rss_bytes(own_pid);
    if cfg.server_pid.is_some() && samples.is_empty() {
        errors.add("ERR_RSS: server process not found");
    }
    release.open();
    let (outcomes, lost) = fleet::join_all(launched.tasks, Instant::now() + CLOSE_GRACE).await;
    let mut dropped = 0;
    let mut pings_answered = 0;
    for (held, pongs) in outcomes {
        pings_answered += pongs;
        if let Err(e) = held {
            dropped += 1;
            errors.add(format!("dropped: {}", e.label()));
        }
    }
    errors.add_n("ERR_TASK_LOST", lost as u64);
    let server_rss_held = samples.last().map(|s| s.1);
    HoldResult {
        attempted: cfg.connections,
        connected,
        dropped,
        pings_answered,
        connect_latency: Summary::of(&mut latencies),
        connections_per_s: per_second(connected, launched.elapsed),
        listen_overflows: launched.listen_overflows,
        held_s,
        server_rss_before,
        server_rss_held,
        server_rss_peak: samples.iter().map(|s| s.1).max(),
        server_bytes_per_connection: per_conn(server_rss_before, server_rss_held, connected),
        server_rss_samples: samples,
        client_rss_before,
        client_rss_held,
        client_bytes_per_connection: per_conn(client_rss_before, client_rss_held, connected),
        errors,
    }
}

fn mib(b: Option<u64>) -> Option<f64> {
    b.map(|b| b as f64 / (1024.0 * 1024.0))
}

impl HoldResult {
    /// The [`Report`]: RSS in MiB, memory per connection in KiB.
    pub fn report(&self, setup: &Setup, cfg: &HoldConfig) -> Report {
        let kib = |b: Option<f64>| b.map(|b| b / 1024.0);
        let metrics = vec![
            Metric::count("hold.connected", "connected", self.connected),
            Metric::new(
                "hold.held",
                "held for",
                "s",
                Some(self.held_s),
                Better::Neither,
            ),
            Metric::new(
                "hold.server_rss_before",
                "server RSS before",
                "MiB",
                mib(self.server_rss_before),
                Better::Neither,
            ),
            Metric::new(
                "hold.server_rss_held",
                "server RSS holding",
                "MiB",
                mib(self.server_rss_held),
                Better::Lower,
            ),
            Metric::new(
                "hold.server_per_conn",
                "server memory per connection",
                "KiB",
                kib(self.server_bytes_per_connection),
                Better::Lower,
            ),
            Metric::new(
                "hold.client_per_conn",
                "generator memory per connection",
                "KiB",
                kib(self.client_bytes_per_connection),
                Better::Neither,
            ),
            Metric::count("hold.pings", "pings answered", self.pings_answered as usize),
            Metric::new(
                "hold.listen_overflows",
                "listen queue overflows",
                "",
                self.listen_overflows.map(|n| n as f64),
                Better::Lower,
            ),
            Metric::new(
                "hold.dropped",
                "dropped while held",
                "",
                Some(self.dropped as f64),
                Better::Lower,
            ),
        ];
        let mut notes = Vec::new();
        if cfg.server_pid.is_none() {
            notes.push("no --server-pid: server memory not measured".into());
        }
        Report {
            scenario: "hold".into(),
            target: setup.client.http_base(),
            ok: self.errors.is_empty() && self.connected == self.attempted,
            failure: None,
            elapsed_s: self.held_s,
            config: to_value(cfg),
            metrics,
            errors: self.errors.clone(),
            notes,
            details: to_value(self),
        }
    }
}
