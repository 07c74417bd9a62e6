//! `connect`: open N authenticated connections at a concurrency or rate,
//! keep them open until all have connected, then close them.
//!
//! Latency is from the start of the TCP connect to the `40{...}` reply
//! (TCP + WebSocket upgrade + Engine.IO open + CONNECT round trip, which
//! includes the server's token check). In `--rate` mode connections start
//! on schedule; with `--concurrency` alone, at most that many handshakes are
//! in flight and time spent waiting for a slot is not counted.

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{CLOSE_GRACE, per_second, to_value};
use crate::fleet::{self, Pace};
use crate::protocol::token_auth;
use crate::report::{Better, Errors, Metric};
use crate::stats::Summary;
use crate::{Gate, Report, Setup};

/// The `connect` scenario's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectConfig {
    /// Connections to open.
    pub connections: usize,
    /// How fast they are opened.
    pub pace: Pace,
}

/// What the `connect` scenario measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectResult {
    /// Connections attempted.
    pub attempted: usize,
    /// Connections whose CONNECT was accepted.
    pub connected: usize,
    /// Connected, then closed by the server before the scenario released them.
    pub dropped: usize,
    /// Handshake latency of the connections that got in: from the start of
    /// the TCP connect to the CONNECT reply, µs.
    pub latency: Option<Summary>,
    /// Successful handshakes per second, from the first connect start to the
    /// last CONNECT reply.
    pub connections_per_s: f64,
    /// First connect start to last CONNECT reply.
    pub elapsed_s: f64,
    /// SYNs dropped at a full listen queue while connecting (system-wide).
    pub listen_overflows: Option<u64>,
    /// Failed handshakes and dropped connections, by label.
    pub errors: Errors,
}

/// Runs the `connect` scenario: opens `cfg.connections` connections at
/// `cfg.pace`, waits until every handshake has ended, then closes them.
pub async fn connect(setup: &Setup, cfg: &ConnectConfig) -> ConnectResult {
    let deadline = Instant::now() + setup.timeout;
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
                conn.close().await;
                held
            }
        },
    )
    .await;
    let (mut latencies, mut errors) = launched.tally();
    let connected = launched.connected();
    let elapsed = launched.elapsed;
    release.open();
    let (outcomes, lost) = fleet::join_all(launched.tasks, Instant::now() + CLOSE_GRACE).await;
    let mut dropped = 0;
    for outcome in outcomes {
        if let Err(e) = outcome {
            dropped += 1;
            errors.add(format!("dropped: {}", e.label()));
        }
    }
    errors.add_n("ERR_TASK_LOST", lost as u64);
    ConnectResult {
        listen_overflows: launched.listen_overflows,
        attempted: cfg.connections,
        connected,
        dropped,
        latency: Summary::of(&mut latencies),
        connections_per_s: per_second(connected, elapsed),
        elapsed_s: elapsed.as_secs_f64(),
        errors,
    }
}

impl ConnectResult {
    /// The [`Report`], named `connect-paced` when the pace has a rate and
    /// `connect` otherwise.
    pub fn report(&self, setup: &Setup, cfg: &ConnectConfig) -> Report {
        // Paced runs (`--rate`) answer another question (latency at a steady
        // arrival rate, not the most connections per second): their own name.
        let name = if cfg.pace.rate.is_some() {
            "connect-paced"
        } else {
            "connect"
        };
        let key = |k: &str| format!("{name}.{k}");
        let mut metrics = vec![
            Metric::count(&key("connected"), "connected", self.connected),
            Metric::new(
                &key("rate"),
                "connections/s",
                "conn/s",
                Some(self.connections_per_s),
                Better::Higher,
            ),
        ];
        metrics.extend(Metric::latencies(
            &key("latency"),
            "handshake→CONNECT",
            self.latency.as_ref(),
        ));
        metrics.push(Metric::new(
            &key("failures"),
            "failures",
            "",
            Some(self.errors.total() as f64),
            Better::Lower,
        ));
        metrics.push(Metric::new(
            &key("listen_overflows"),
            "listen queue overflows",
            "",
            self.listen_overflows.map(|n| n as f64),
            Better::Lower,
        ));
        Report {
            scenario: name.into(),
            target: setup.client.http_base(),
            ok: self.errors.is_empty() && self.connected == self.attempted,
            failure: None,
            elapsed_s: self.elapsed_s,
            config: to_value(cfg),
            metrics,
            errors: self.errors.clone(),
            notes: vec![],
            details: to_value(self),
        }
    }
}
