//! `refresh` (sockgate only): C connections each send
//! `auth:refresh {"token": <fresh token>}` R times, one at a time, with an
//! ack. A success is `{"ok":true,"expiresAt":...}`; a failure
//! `{"ok":false,"code":...}` is counted by its code. The fresh token (same
//! `sub`, new `jti`) is minted before the clock starts.

use sockgate_protocol::events::client;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

use super::{CLOSE_GRACE, per_second, to_value};
use crate::fleet::{self, Pace};
use crate::protocol::{self, Inbound, token_auth};
use crate::report::{Better, Errors, Metric};
use crate::stats::Summary;
use crate::{Conn, Gate, Minter, Report, Setup, now_us};

const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// The `refresh` scenario's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshConfig {
    /// Connections, each refreshing its own token.
    pub connections: usize,
    /// Refreshes per connection.
    pub refreshes: usize,
    /// How fast the connections are opened.
    pub pace: Pace,
}

/// What the `refresh` scenario measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshResult {
    /// Connections whose CONNECT was accepted.
    pub connected: usize,
    /// Refreshes acked with `ok: true`.
    pub refreshed: usize,
    /// Time of each successful refresh, from sending `auth:refresh` to its
    /// ack, µs.
    pub latency: Option<Summary>,
    /// Successful refreshes per second, over the refresh phase (all
    /// connections).
    pub refreshes_per_s: f64,
    /// Duration of the refresh phase, from the start until every connection
    /// had finished, seconds.
    pub elapsed_s: f64,
    /// Errors by label: failed handshakes, refusals (by `code`), timeouts,
    /// dropped connections.
    pub errors: Errors,
}

#[derive(Default)]
struct Outcome {
    latencies: Vec<u64>,
    errors: Errors,
}

async fn run(mut conn: Conn, minter: &Minter, sub: &str, refreshes: usize) -> Outcome {
    let mut out = Outcome::default();
    for r in 0..refreshes {
        let frame = protocol::event(
            client::REFRESH,
            &json!({ "token": minter.mint_later(sub, r as u64 + 1) }),
            Some(r as u64),
        );
        let t0 = now_us();
        if let Err(e) = conn.send(frame).await {
            out.errors.add_n(e.label(), (refreshes - r) as u64);
            break;
        }
        let answer = loop {
            match tokio::time::timeout(ACK_TIMEOUT, conn.recv()).await {
                Ok(Ok(Inbound::Ack { id, data })) if id == r as u64 => break Ok(data),
                Ok(Ok(Inbound::Disconnect)) => break Err("ERR_CLOSED: socket.io disconnect".into()),
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => break Err(e.label()),
                Err(_) => break Err("ERR_TIMEOUT: ack".to_owned()),
            }
        };
        match answer {
            Ok(data) if data["ok"] == json!(true) => out.latencies.push(now_us() - t0),
            Ok(data) => out.errors.add(
                data["code"]
                    .as_str()
                    .map_or_else(|| format!("ERR_PROTOCOL: ack {data}"), str::to_owned),
            ),
            Err(label) => {
                out.errors.add_n(label, (refreshes - r) as u64);
                break;
            }
        }
    }
    conn.close().await;
    out
}

/// Runs the `refresh` scenario. `Err` when the tokens come from a file:
/// the fresh tokens have to be minted.
pub async fn refresh(setup: &Setup, cfg: &RefreshConfig) -> Result<RefreshResult, String> {
    let minter = setup.tokens.minter("refresh")?.clone();
    let deadline = Instant::now() + setup.timeout;
    let start = Gate::default();
    let gate = start.clone();
    let refreshes = cfg.refreshes;
    let m = minter.clone();
    let launched = fleet::launch(
        setup,
        cfg.connections,
        cfg.pace,
        deadline,
        move |i| token_auth(&m.mint(&format!("user-{i}"), None)),
        move |i, mut conn| {
            let (gate, minter) = (gate.clone(), minter.clone());
            async move {
                match conn.idle_until(gate.wait()).await {
                    Ok(()) => run(conn, &minter, &format!("user-{i}"), refreshes).await,
                    Err(e) => {
                        let mut out = Outcome::default();
                        out.errors
                            .add_n(format!("dropped: {}", e.label()), refreshes as u64);
                        out
                    }
                }
            }
        },
    )
    .await;
    let (_, mut errors) = launched.tally();
    let connected = launched.connected();
    let started = Instant::now();
    start.open();
    let (outcomes, lost) = fleet::join_all(launched.tasks, deadline + CLOSE_GRACE).await;
    let elapsed = started.elapsed();
    errors.add_n("ERR_TASK_LOST", lost as u64);
    let mut latencies = Vec::new();
    for o in outcomes {
        latencies.extend(o.latencies);
        errors.merge(&o.errors);
    }
    Ok(RefreshResult {
        connected,
        refreshed: latencies.len(),
        refreshes_per_s: per_second(latencies.len(), elapsed),
        latency: Summary::of(&mut latencies),
        elapsed_s: elapsed.as_secs_f64(),
        errors,
    })
}

impl RefreshResult {
    /// The [`Report`]; `ok` only when every refresh succeeded.
    pub fn report(&self, setup: &Setup, cfg: &RefreshConfig) -> Report {
        let mut metrics = vec![
            Metric::count("refresh.connected", "connected", self.connected),
            Metric::count("refresh.refreshed", "refreshed", self.refreshed),
            Metric::new(
                "refresh.rate",
                "refreshes/s",
                "ref/s",
                Some(self.refreshes_per_s),
                Better::Higher,
            ),
        ];
        metrics.extend(Metric::latencies(
            "refresh.latency",
            "refresh",
            self.latency.as_ref(),
        ));
        Report {
            scenario: "refresh".into(),
            target: setup.client.http_base(),
            ok: self.errors.is_empty() && self.refreshed == cfg.connections * cfg.refreshes,
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
