//! `revoke` (sockgate only): N connections whose tokens share one `jti`
//! (each for its own user). Once all are connected, one
//! `POST /api/revocations {"jti", "expiresAt"}` revokes that token; the
//! latency of each socket is from just before that call to its
//! `session:end {"code":"TOKEN_REVOKED"}` event.

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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokeConfig {
    pub connections: usize,
    pub pace: Pace,
    /// How long to wait for every `session:end` after the call.
    #[serde(with = "crate::report::secs")]
    pub wait: Duration,
    #[serde(skip)]
    pub api_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokeResult {
    pub connected: usize,
    /// The `ended` count the API answered.
    pub ended_by_api: Option<u64>,
    /// Sockets that received `session:end` with `TOKEN_REVOKED`.
    pub ended: usize,
    /// From the call to each socket's `session:end`.
    pub latency: Option<Summary>,
    /// The `POST /api/revocations` call itself, µs.
    pub call_us: Option<u64>,
    pub failure: Option<String>,
    pub errors: Errors,
}

pub async fn revoke(setup: &Setup, cfg: &RevokeConfig) -> Result<RevokeResult, String> {
    let minter = setup.tokens.minter("revoke")?.clone();
    let api = Api::new(&setup.client.http_base(), &cfg.api_key)?;
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
        |_, mut conn| async move {
            let ended = loop {
                match conn.recv().await {
                    Ok(Inbound::Event { name, data, .. }) if name == "session:end" => {
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
            ended
        },
    )
    .await;
    let (_, mut errors) = launched.tally();
    let connected = launched.connected();
    let t0 = now_us();
    let answer = api
        .post(
            "/api/revocations",
            &json!({ "jti": jti, "expiresAt": expires_at }),
        )
        .await;
    let call_us = now_us() - t0;
    let mut failure = None;
    let mut ended_by_api = None;
    match answer {
        Ok(a) if a.is_success() => ended_by_api = a.body["ended"].as_u64(),
        Ok(a) => failure = Some(format!("POST /api/revocations: {}", a.describe())),
        Err(e) => failure = Some(e),
    }
    let wait = if failure.is_some() {
        Duration::ZERO
    } else {
        cfg.wait
    };
    let (outcomes, lost) = fleet::join_all(launched.tasks, Instant::now() + wait).await;
    errors.add_n("ERR_TIMEOUT: no session:end", lost as u64);
    let mut latencies = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        match outcome {
            Ok((at, code)) if code == "TOKEN_REVOKED" => latencies.push(at.saturating_sub(t0)),
            Ok((_, code)) => errors.add(format!("session:end {code}")),
            Err(e) => errors.add(e.label()),
        }
    }
    if ended_by_api.is_some_and(|n| n != connected as u64) {
        errors.add(format!(
            "ERR_ENDED_COUNT (API said {}, {connected} connected)",
            ended_by_api.unwrap_or_default()
        ));
    }
    Ok(RevokeResult {
        connected,
        ended_by_api,
        ended: latencies.len(),
        latency: Summary::of(&mut latencies),
        call_us: (failure.is_none()).then_some(call_us),
        failure,
        errors,
    })
}

impl RevokeResult {
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
        metrics.extend(
            Metric::latencies(
                "revoke.latency",
                "revocation→session:end",
                self.latency.as_ref(),
            )
            .into_iter()
            .filter(|m| !m.key.ends_with(".p90")),
        );
        Report {
            scenario: "revoke".into(),
            target: setup.client.http_base(),
            ok: self.failure.is_none() && self.errors.is_empty() && self.ended == cfg.connections,
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
