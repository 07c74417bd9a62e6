//! Prometheus metrics: every name and label sockgate exports, in one place.
//! The exposition text is rendered by `metrics-exporter-prometheus` at
//! `/metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (once) and returns its handle; `None`
/// when another recorder was installed first (by an embedding application).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("sockgate_verify_seconds".to_owned()),
                    &[
                        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05,
                        0.25, 1.0,
                    ],
                )
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "sockgate_handshakes_total",
        "Handshakes by outcome (OK or the error code)."
    );
    metrics::describe_histogram!("sockgate_verify_seconds", "Time to decide a handshake.");
    metrics::describe_gauge!(
        "sockgate_connections",
        "Open connections by handshake transport."
    );
    metrics::describe_gauge!("sockgate_sessions", "Sessions on this node.");
    metrics::describe_counter!("sockgate_refreshes_total", "In-band refreshes by outcome.");
    metrics::describe_counter!(
        "sockgate_revocations_total",
        "Revocations made on this node, by kind."
    );
    metrics::describe_counter!(
        "sockgate_room_joins_total",
        "room:join by result (allowed, denied)."
    );
    metrics::describe_counter!("sockgate_messages_in_total", "Client events received.");
    metrics::describe_counter!(
        "sockgate_messages_out_total",
        "Server emits, by kind (room, publish)."
    );
    metrics::describe_counter!(
        "sockgate_rate_limited_total",
        "Refusals by abuse limits, by scope."
    );
    metrics::describe_counter!(
        "sockgate_sessions_ended_total",
        "Sessions the server ended, by code."
    );
    metrics::describe_gauge!(
        "sockgate_redis_up",
        "1 while this cluster node reaches Redis, else 0."
    );
}

pub fn handshake(outcome: &'static str, took: Duration) {
    counter!("sockgate_handshakes_total", "outcome" => outcome).increment(1);
    histogram!("sockgate_verify_seconds").record(took.as_secs_f64());
    if outcome == "RATE_LIMITED" {
        rate_limited("handshake");
    }
}

pub fn connection(transport: &'static str, delta: f64) {
    gauge!("sockgate_connections", "transport" => transport).increment(delta);
}

pub fn sessions(count: usize) {
    gauge!("sockgate_sessions").set(count as f64);
}

pub fn refresh(outcome: &'static str) {
    counter!("sockgate_refreshes_total", "outcome" => outcome).increment(1);
}

pub fn revocation(kind: &'static str) {
    counter!("sockgate_revocations_total", "kind" => kind).increment(1);
}

pub fn room_join(allowed: bool) {
    let result = if allowed { "allowed" } else { "denied" };
    counter!("sockgate_room_joins_total", "result" => result).increment(1);
}

pub fn message_in() {
    counter!("sockgate_messages_in_total").increment(1);
}

pub fn message_out(kind: &'static str, n: u64) {
    counter!("sockgate_messages_out_total", "kind" => kind).increment(n);
}

pub fn rate_limited(scope: &'static str) {
    counter!("sockgate_rate_limited_total", "scope" => scope).increment(1);
}

pub fn session_ended(code: &'static str) {
    counter!("sockgate_sessions_ended_total", "code" => code).increment(1);
}

pub fn redis_up(up: bool) {
    gauge!("sockgate_redis_up").set(if up { 1.0 } else { 0.0 });
}
