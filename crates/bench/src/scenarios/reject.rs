//! `reject`: handshakes with bad tokens, in turn a wrong signature, an
//! expired token and an unsigned (`alg: none`) token. Every one must be
//! refused: an accepted connection is a security failure, reported loudly
//! (and `sockgate-bench` exits non-zero).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{CLOSE_GRACE, per_second, to_value};
use crate::fleet::{self, Pace};
use crate::protocol::token_auth;
use crate::report::{Better, Errors, Metric};
use crate::stats::Summary;
use crate::{ConnError, Report, Setup};

/// The kinds of bad token, used in turn.
pub const KINDS: [&str; 3] = ["bad-signature", "expired", "unsigned"];

/// The `reject` scenario's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RejectConfig {
    /// Total handshakes, spread evenly over the three kinds.
    pub attempts: usize,
    /// How fast the handshakes are started.
    pub pace: Pace,
}

/// What the `reject` scenario measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RejectResult {
    /// Handshakes attempted.
    pub attempted: usize,
    /// Handshakes the server refused (CONNECT_ERROR), as it must.
    pub refused: usize,
    /// Bad tokens the server let in. Must be 0.
    pub accepted: usize,
    /// Refusal codes (or `ACCEPTED`) per kind of bad token.
    pub by_kind: BTreeMap<String, Errors>,
    /// Time from TCP connect start to the refusal.
    pub latency: Option<Summary>,
    /// Refusals per second, from the first connect start to the last
    /// handshake's end.
    pub rejections_per_s: f64,
    /// From the first connect start to the last handshake's end, seconds.
    pub elapsed_s: f64,
    /// SYNs dropped at a full listen queue while connecting (system-wide).
    pub listen_overflows: Option<u64>,
    /// Everything that was neither a refusal nor expected: transport
    /// errors and accepted tokens (`ACCEPTED (kind)`).
    pub errors: Errors,
}

/// Runs the `reject` scenario. `Err` when the tokens come from a file:
/// the bad tokens have to be minted.
pub async fn reject(setup: &Setup, cfg: &RejectConfig) -> Result<RejectResult, String> {
    let minter = setup.tokens.minter("reject")?.clone();
    let deadline = Instant::now() + setup.timeout;
    let launched = fleet::launch(
        setup,
        cfg.attempts,
        cfg.pace,
        deadline,
        move |i| {
            let sub = format!("user-{i}");
            token_auth(&match i % KINDS.len() {
                0 => minter.bad_signature(&sub),
                1 => minter.expired(&sub),
                _ => minter.unsigned(&sub),
            })
        },
        |_, conn| conn.close(),
    )
    .await;
    let mut by_kind: BTreeMap<String, Errors> = BTreeMap::new();
    let mut errors = Errors::default();
    let mut latencies = Vec::new();
    let (mut refused, mut accepted) = (0, 0);
    for h in &launched.handshakes {
        let kind = KINDS[h.index % KINDS.len()];
        let tally = by_kind.entry(kind.to_owned()).or_default();
        match &h.result {
            Ok(()) => {
                accepted += 1;
                tally.add("ACCEPTED");
                errors.add(format!("ACCEPTED ({kind})"));
            }
            Err(ConnError::Refused { code, .. }) => {
                refused += 1;
                latencies.push(h.elapsed.as_micros() as u64);
                tally.add(code.clone());
            }
            Err(e) => {
                tally.add(e.label());
                errors.add(e.label());
            }
        }
    }
    errors.add_n(
        "ERR_TIMEOUT: scenario (handshake never finished)",
        launched.unreported as u64,
    );
    let elapsed = launched.elapsed;
    let (_, lost) = fleet::join_all(launched.tasks, Instant::now() + CLOSE_GRACE).await;
    errors.add_n("ERR_TASK_LOST", lost as u64);
    Ok(RejectResult {
        listen_overflows: launched.listen_overflows,
        attempted: cfg.attempts,
        refused,
        accepted,
        by_kind,
        latency: Summary::of(&mut latencies),
        rejections_per_s: per_second(refused, elapsed),
        elapsed_s: elapsed.as_secs_f64(),
        errors,
    })
}

impl RejectResult {
    /// The [`Report`], with a `failure` when any bad token was accepted.
    pub fn report(&self, setup: &Setup, cfg: &RejectConfig) -> Report {
        let mut metrics = vec![
            Metric::count("reject.refused", "refused", self.refused),
            Metric::new(
                "reject.rate",
                "rejections/s",
                "rej/s",
                Some(self.rejections_per_s),
                Better::Higher,
            ),
        ];
        metrics.extend(Metric::latencies_short(
            "reject.latency",
            "handshake→refusal",
            self.latency.as_ref(),
        ));
        metrics.push(Metric::new(
            "reject.accepted",
            "ACCEPTED (must be 0)",
            "",
            Some(self.accepted as f64),
            Better::Lower,
        ));
        metrics.push(Metric::new(
            "reject.listen_overflows",
            "listen queue overflows",
            "",
            self.listen_overflows.map(|n| n as f64),
            Better::Lower,
        ));
        let notes = self
            .by_kind
            .iter()
            .map(|(kind, codes)| {
                let codes: Vec<String> = codes.0.iter().map(|(c, n)| format!("{c} ×{n}")).collect();
                format!("{kind}: {}", codes.join(", "))
            })
            .collect();
        let failure = (self.accepted > 0).then(|| {
            format!(
                "{} of {} BAD TOKENS WERE ACCEPTED: the server let unauthenticated clients in",
                self.accepted, self.attempted
            )
        });
        Report {
            scenario: "reject".into(),
            target: setup.client.http_base(),
            ok: self.errors.is_empty() && self.refused == self.attempted,
            failure,
            elapsed_s: self.elapsed_s,
            config: to_value(cfg),
            metrics,
            errors: self.errors.clone(),
            notes,
            details: to_value(self),
        }
    }
}
