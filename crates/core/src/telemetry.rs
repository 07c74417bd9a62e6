//! Metrics: every name and label sockgate exports, in one place. They are
//! recorded through the `metrics` facade; the gateway installs the
//! Prometheus exporter that renders them at `/metrics`.

use std::time::Duration;

use metrics::{counter, gauge, histogram};

/// Describes every metric to the installed recorder.
pub fn describe() {
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
    metrics::describe_counter!(
        "sockgate_webhook_events_dropped_total",
        "Lifecycle webhook events dropped, by reason (full, given_up)."
    );
    metrics::describe_gauge!(
        "sockgate_redis_up",
        "1 while this cluster node reaches Redis, else 0."
    );
    metrics::describe_gauge!(
        "sockgate_room_channels",
        "Room channels this cluster node listens on."
    );
    metrics::describe_counter!(
        "sockgate_room_channel_commands_total",
        "SUBSCRIBE and UNSUBSCRIBE commands this cluster node sent for its rooms, by command."
    );
    metrics::describe_counter!(
        "sockgate_app_calls_total",
        "Client events sent to the app's backend, by route and outcome (OK or the code)."
    );
    metrics::describe_histogram!(
        "sockgate_app_call_seconds",
        "Time the app's backend took to answer an event, by route."
    );
    metrics::describe_counter!(
        "sockgate_app_calls_refused_total",
        "Client events refused by sockgate rather than the app's backend (no route, a reserved name, a full line, the concurrency limit, an answer breaking a room rule), by code."
    );
}

/// A decided handshake: its outcome (`OK` or the code) and how long it took.
pub fn handshake(outcome: &'static str, took: Duration) {
    counter!("sockgate_handshakes_total", "outcome" => outcome).increment(1);
    histogram!("sockgate_verify_seconds").record(took.as_secs_f64());
    if outcome == "RATE_LIMITED" {
        rate_limited("handshake");
    }
}

/// A connection opened (+1) or closed (-1) on `transport`.
pub fn connection(transport: &'static str, delta: f64) {
    gauge!("sockgate_connections", "transport" => transport).increment(delta);
}

/// The number of sessions on this node.
pub fn sessions(count: usize) {
    gauge!("sockgate_sessions").set(count as f64);
}

/// An in-band refresh and its outcome.
pub fn refresh(outcome: &'static str) {
    counter!("sockgate_refreshes_total", "outcome" => outcome).increment(1);
}

/// A revocation made on this node (`token` or `user`).
pub fn revocation(kind: &'static str) {
    counter!("sockgate_revocations_total", "kind" => kind).increment(1);
}

/// A `room:join`, allowed or denied.
pub(crate) fn room_join(allowed: bool) {
    let result = if allowed { "allowed" } else { "denied" };
    counter!("sockgate_room_joins_total", "result" => result).increment(1);
}

/// A client event received.
pub(crate) fn message_in() {
    counter!("sockgate_messages_in_total").increment(1);
}

/// `n` server emits of `kind` (`room`, `publish`).
pub fn message_out(kind: &'static str, n: u64) {
    counter!("sockgate_messages_out_total", "kind" => kind).increment(n);
}

/// A publish whose idempotency key was seen inside the window.
pub(crate) fn duplicate_publish() {
    counter!("sockgate_publish_duplicates_total").increment(1);
}

/// A refusal by an abuse limit of `scope`.
pub(crate) fn rate_limited(scope: &'static str) {
    counter!("sockgate_rate_limited_total", "scope" => scope).increment(1);
}

/// A session the server ended, with its code.
pub(crate) fn session_ended(code: &'static str) {
    counter!("sockgate_sessions_ended_total", "code" => code).increment(1);
}

/// `n` lifecycle webhook events dropped: past the queue's bound (`full`)
/// or not taken within the retry window (`given_up`).
pub fn webhook_events_dropped(reason: &'static str, n: u64) {
    counter!("sockgate_webhook_events_dropped_total", "reason" => reason).increment(n);
}

/// Whether this cluster node reaches Redis.
pub fn redis_up(up: bool) {
    gauge!("sockgate_redis_up").set(if up { 1.0 } else { 0.0 });
}

/// The room channels this cluster node listens on, after a round of
/// `subscribe` and `unsubscribe` commands (each of up to 1,000 channels).
pub fn room_channels(listening: usize, subscribe: u64, unsubscribe: u64) {
    gauge!("sockgate_room_channels").set(listening as f64);
    let commands = "sockgate_room_channel_commands_total";
    counter!(commands, "command" => "subscribe").increment(subscribe);
    counter!(commands, "command" => "unsubscribe").increment(unsubscribe);
}

/// A call to the app's backend on `route`, its outcome (`OK` or the code)
/// and how long it took.
pub fn app_call(route: &str, outcome: &'static str, took: Duration) {
    let route = route.to_owned();
    counter!("sockgate_app_calls_total", "route" => route.clone(), "outcome" => outcome)
        .increment(1);
    histogram!("sockgate_app_call_seconds", "route" => route).record(took.as_secs_f64());
}

/// A client event answered with `code` without a call to the app (no
/// route, a reserved name, a full line, too many calls in flight), or a
/// call whose reply could not be applied.
pub(crate) fn call_refused(code: &'static str) {
    counter!("sockgate_app_calls_refused_total", "code" => code).increment(1);
}
