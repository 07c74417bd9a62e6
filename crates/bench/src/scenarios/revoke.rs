//! `revoke` (sockgate only): N connections whose tokens share one `jti`
//! (each for its own user). Once all are connected, one
//! `POST /api/revocations {"jti", "expiresAt"}` revokes that token; the
//! latency of each socket is from just before that call to its
//! `session:end {"code":"TOKEN_REVOKED"}` event. With several rounds this
//! repeats with fresh connections and a fresh `jti`, so the percentiles
//! rest on more than one call.
//!
//! With [`Setup::peers`] the sockets are spread over the nodes of a
//! cluster while the call goes to the first one, and the sockets on the
//! other nodes are also reported on their own: that is the propagation
//! time of a revocation across the cluster.

use sockgate_protocol::events::server;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

use super::to_value;
use crate::fleet::{self, Pace};
use crate::http::Api;
use crate::protocol::{Inbound, token_auth};
use crate::report::{Better, Errors, Metric};
use crate::stats::Summary;
use crate::tokens::random_jti;
use crate::{ConnError, Report, Setup, now_us};

/// The `revoke` scenario's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokeConfig {
    /// Connections per round, all sharing the round's `jti`.
    pub connections: usize,
    /// Rounds, each with fresh connections and its own `jti`; the latencies
    /// of all rounds are summarised together.
    #[serde(default = "one")]
    pub rounds: usize,
    /// How fast the connections are opened.
    pub pace: Pace,
    /// How long to wait for every `session:end` after the call.
    #[serde(with = "crate::report::secs")]
    pub wait: Duration,
    /// Admin API key (Bearer) for `POST /api/revocations`; not written to
    /// reports.
    #[serde(skip)]
    pub api_key: String,
}

fn one() -> usize {
    1
}

/// What the `revoke` scenario measured, over all rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokeResult {
    /// Connections whose CONNECT was accepted, summed over the rounds.
    pub connected: usize,
    /// The `ended` counts the API answered, summed over the rounds.
    pub ended_by_api: Option<u64>,
    /// Sockets that received `session:end` with `TOKEN_REVOKED`.
    pub ended: usize,
    /// From the call to each socket's `session:end`.
    pub latency: Option<Summary>,
    /// The same, for sockets on nodes other than the one called (cluster runs).
    pub remote_latency: Option<Summary>,
    /// The `POST /api/revocations` call itself, median over the rounds, µs.
    pub call_us: Option<u64>,
    /// Set when a revocation call failed (HTTP error, no such endpoint, ...);
    /// no further round is run.
    pub failure: Option<String>,
    /// Errors by label: failed handshakes, missing or other `session:end`s,
    /// an `ended` count that does not match.
    pub errors: Errors,
}

/// What one round collected.
#[derive(Default)]
struct Round {
    connected: usize,
    ended_by_api: Option<u64>,
    latencies: Vec<u64>,
    remote: Vec<u64>,
    call_us: Option<u64>,
    failure: Option<String>,
    errors: Errors,
}

/// Runs the `revoke` scenario, `cfg.rounds` rounds (at least one). `Err`
/// when the tokens come from a file or the API client cannot be built.
pub async fn revoke(setup: &Setup, cfg: &RevokeConfig) -> Result<RevokeResult, String> {
    let api = Api::new(&setup.client.http_base(), &cfg.api_key)?;
    let mut all = Round::default();
    let mut calls = Vec::new();
    for _ in 0..cfg.rounds.max(1) {
        let mut r = round(setup, cfg, &api).await?;
        all.connected += r.connected;
        all.ended_by_api = match (all.ended_by_api, r.ended_by_api) {
            (a, None) => a,
            (a, Some(b)) => Some(a.unwrap_or_default() + b),
        };
        all.latencies.append(&mut r.latencies);
        all.remote.append(&mut r.remote);
        calls.extend(r.call_us);
        all.errors.merge(&r.errors);
        if r.failure.is_some() {
            all.failure = r.failure;
            break;
        }
    }
    Ok(RevokeResult {
        connected: all.connected,
        ended_by_api: all.ended_by_api,
        ended: all.latencies.len(),
        latency: Summary::of(&mut all.latencies),
        remote_latency: Summary::of(&mut all.remote),
        call_us: Summary::of(&mut calls).map(|s| s.p50_us),
        failure: all.failure,
        errors: all.errors,
    })
}

/// Connects `cfg.connections` sockets sharing a fresh `jti`, revokes it,
/// and waits for their `session:end`.
async fn round(setup: &Setup, cfg: &RevokeConfig, api: &Api) -> Result<Round, String> {
    let minter = setup.tokens.minter("revoke")?.clone();
    let deadline = Instant::now() + setup.timeout;
    let jti = random_jti();
    let expires_at = minter.expiry();
    let shared = jti.clone();
    let launched = fleet::launch(
        setup,
        cfg.connections,
        cfg.pace,
        deadline,
        move |i| token_auth(&minter.mint(&format!("user-{i}"), Some(&shared))),
        |i, mut conn| async move {
            let ended = loop {
                match conn.recv().await {
                    Ok(Inbound::Event { name, data, .. }) if name == server::SESSION_END => {
                        break Ok((now_us(), data["code"].as_str().unwrap_or("?").to_owned()));
                    }
                    Ok(Inbound::Disconnect) => {
                        break Err(ConnError::Closed("socket.io disconnect before session:end"));
                    }
                    Ok(_) => continue,
                    Err(e) => break Err(e),
                }
            };
            conn.close().await;
            (i, ended)
        },
    )
    .await;
    let (_, errors) = launched.tally();
    let local = launched.connected_to_first_node(setup);
    let mut r = Round {
        connected: launched.connected(),
        errors,
        ..Round::default()
    };
    let t0 = now_us();
    let answer = api
        .post(
            "/api/revocations",
            &json!({ "jti": jti, "expiresAt": expires_at }),
        )
        .await;
    let call_us = now_us() - t0;
    match answer {
        Ok(a) if a.is_success() => {
            r.ended_by_api = a.body["ended"].as_u64();
            r.call_us = Some(call_us);
        }
        Ok(a) => r.failure = Some(format!("POST /api/revocations: {}", a.describe())),
        Err(e) => r.failure = Some(e),
    }
    let wait = if r.failure.is_some() {
        Duration::ZERO
    } else {
        cfg.wait
    };
    let (outcomes, lost) = fleet::join_all(launched.tasks, Instant::now() + wait).await;
    r.errors.add_n("ERR_TIMEOUT: no session:end", lost as u64);
    for (i, outcome) in outcomes {
        match outcome {
            Ok((at, code)) if code == "TOKEN_REVOKED" => {
                r.latencies.push(at.saturating_sub(t0));
                if setup.node_of(i) != 0 {
                    r.remote.push(at.saturating_sub(t0));
                }
            }
            Ok((_, code)) => r.errors.add(format!("session:end {code}")),
            Err(e) => r.errors.add(e.label()),
        }
    }
    if r.ended_by_api.is_some_and(|n| n != local as u64) {
        r.errors.add(format!(
            "ERR_ENDED_COUNT (API said {}, {local} connected to it)",
            r.ended_by_api.unwrap_or_default(),
        ));
    }
    Ok(r)
}

impl RevokeResult {
    /// The [`Report`]; per-node latencies only in cluster runs.
    pub fn report(&self, setup: &Setup, cfg: &RevokeConfig) -> Report {
        let mut metrics = vec![
            Metric::count("revoke.connected", "connected", self.connected),
            Metric::count("revoke.ended", "got session:end TOKEN_REVOKED", self.ended),
            Metric::new(
                "revoke.call",
                "POST /api/revocations",
                "ms",
                self.call_us.map(crate::stats::ms),
                Better::Lower,
            ),
        ];
        metrics.extend(Metric::latencies_short(
            "revoke.latency",
            "revocation→session:end",
            self.latency.as_ref(),
        ));
        if !setup.peers.is_empty() {
            metrics.extend(Metric::latencies_short(
                "revoke.remote",
                "revocation→end, other node",
                self.remote_latency.as_ref(),
            ));
        }
        Report {
            scenario: "revoke".into(),
            target: setup.client.http_base(),
            ok: self.failure.is_none()
                && self.errors.is_empty()
                && self.ended == cfg.connections * cfg.rounds.max(1),
            failure: self.failure.clone(),
            elapsed_s: self.latency.map_or(0.0, |s| s.max_us as f64 / 1e6),
            config: to_value(cfg),
            metrics,
            errors: self.errors.clone(),
            notes: vec![],
            details: to_value(self),
        }
    }
}
