//! `echo` (and `rpc`): C connections each send M `echo` events with acks
//! (`42<id>["echo",{"n":<id>}]`), at most `window` unanswered at a time per
//! connection. All connections connect first and start together. Reports
//! acks/s over the echo phase and the round-trip time of each message (from
//! queueing it to its ack). An ack whose payload is not what was sent is an
//! error: counted by its `code` when it is a refusal (`{"ok":false,"code":..}`,
//! e.g. sockgate's per-socket `RATE_LIMITED`), as `ERR_ECHO_MISMATCH` otherwise.
//!
//! `rpc` is the same exchange on an app event (`rpc`) that the server does
//! not answer itself: sockgate forwards it to the app's backend
//! (`bench/app-backend`), the Node peer's handler answers it in process.
//! Both acks carry back the payload.

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
use crate::{Conn, Gate, Report, Setup, now_us};

/// How long one ack may take before the connection gives up.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// The `echo` scenario's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EchoConfig {
    /// Connections, each sending its own messages.
    pub connections: usize,
    /// Messages per connection.
    pub messages: usize,
    /// Most unanswered messages per connection.
    pub window: usize,
    /// Bytes of chat-like text each message carries besides its number
    /// (`{"n":..,"text":..}`); 0 sends `{"n":..}` alone.
    #[serde(default)]
    pub payload: usize,
    /// How fast the connections are opened.
    pub pace: Pace,
    /// The event sent: `echo`, or an app event for `rpc`.
    #[serde(default = "echo_event")]
    pub event: String,
}

fn echo_event() -> String {
    client::ECHO.to_owned()
}

impl EchoConfig {
    /// The scenario's name: `echo` for sockgate's own event, `rpc` for an
    /// app event.
    pub fn scenario(&self) -> &'static str {
        if self.event == client::ECHO {
            "echo"
        } else {
            "rpc"
        }
    }
}

/// The data of echo message `n`, with `payload` bytes of text.
fn message(n: usize, payload: usize) -> serde_json::Value {
    match payload {
        0 => json!({ "n": n }),
        bytes => json!({ "n": n, "text": protocol::filler(bytes, n as u64) }),
    }
}

/// What the `echo` scenario measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EchoResult {
    /// Connections whose CONNECT was accepted.
    pub connected: usize,
    /// Echo events sent, over all connections.
    pub sent: usize,
    /// Acks that carried back the payload sent (correct echoes).
    pub acked: usize,
    /// Round-trip time of each correct echo, from queueing the event to its
    /// ack, µs.
    pub rtt: Option<Summary>,
    /// Correct echoes per second, over the echo phase (all connections).
    pub messages_per_s: f64,
    /// Duration of the echo phase (all connections).
    pub elapsed_s: f64,
    /// Errors by label: failed handshakes, refusals in acks (by `code`),
    /// mismatches, timeouts, dropped connections.
    pub errors: Errors,
}

#[derive(Default)]
struct Outcome {
    sent: usize,
    rtts: Vec<u64>,
    errors: Errors,
}

async fn run(
    mut conn: Conn,
    event: &str,
    messages: usize,
    window: usize,
    payload: usize,
) -> Outcome {
    let mut out = Outcome {
        rtts: Vec::with_capacity(messages),
        ..Outcome::default()
    };
    let mut sent_at = vec![0u64; messages];
    let mut done = vec![false; messages];
    let (mut next, mut finished) = (0usize, 0usize);
    let window = window.max(1);
    while finished < messages {
        if next < messages && next - finished < window {
            while next < messages && next - finished < window {
                let frame = protocol::event(event, &message(next, payload), Some(next as u64));
                sent_at[next] = now_us();
                if let Err(e) = conn.feed(frame).await {
                    out.errors.add_n(e.label(), (messages - finished) as u64);
                    return out;
                }
                next += 1;
            }
            out.sent = next;
            if let Err(e) = conn.flush().await {
                out.errors.add_n(e.label(), (messages - finished) as u64);
                return out;
            }
        }
        match tokio::time::timeout(ACK_TIMEOUT, conn.recv()).await {
            Ok(Ok(Inbound::Ack { id, data })) => {
                let id = id as usize;
                if id >= messages || done[id] {
                    out.errors.add("ERR_UNEXPECTED_ACK");
                    continue;
                }
                done[id] = true;
                finished += 1;
                if data == message(id, payload) {
                    out.rtts.push(now_us() - sent_at[id]);
                } else if let (Some(false), Some(code)) =
                    (data["ok"].as_bool(), data["code"].as_str())
                {
                    // A refusal in the ack (e.g. sockgate's RATE_LIMITED).
                    out.errors.add(code);
                } else {
                    out.errors.add("ERR_ECHO_MISMATCH");
                }
            }
            Ok(Ok(Inbound::Disconnect)) => {
                out.errors.add_n(
                    "ERR_CLOSED: socket.io disconnect",
                    (messages - finished) as u64,
                );
                break;
            }
            Ok(Ok(_)) => {} // other server events are not ours
            Ok(Err(e)) => {
                out.errors.add_n(e.label(), (messages - finished) as u64);
                break;
            }
            Err(_) => {
                out.errors
                    .add_n("ERR_TIMEOUT: ack", (messages - finished) as u64);
                break;
            }
        }
    }
    conn.close().await;
    out
}

/// Runs the `echo` scenario: every connection connects first, then all
/// send their messages together.
pub async fn echo(setup: &Setup, cfg: &EchoConfig) -> EchoResult {
    let deadline = Instant::now() + setup.timeout;
    let tokens = setup.tokens.clone();
    let start = Gate::default();
    let gate = start.clone();
    let (messages, window) = (cfg.messages, cfg.window);
    let payload = cfg.payload;
    let event = std::sync::Arc::<str>::from(cfg.event.as_str());
    let launched = fleet::launch(
        setup,
        cfg.connections,
        cfg.pace,
        deadline,
        move |i| token_auth(&tokens.for_connection(i)),
        move |_, mut conn| {
            let gate = gate.clone();
            let event = event.clone();
            async move {
                match conn.idle_until(gate.wait()).await {
                    Ok(()) => run(conn, &event, messages, window, payload).await,
                    Err(e) => {
                        let mut out = Outcome::default();
                        out.errors
                            .add_n(format!("dropped: {}", e.label()), messages as u64);
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
    let mut rtts = Vec::with_capacity(connected * cfg.messages);
    let mut sent = 0;
    for o in outcomes {
        sent += o.sent;
        rtts.extend(o.rtts);
        errors.merge(&o.errors);
    }
    let acked = rtts.len();
    EchoResult {
        connected,
        sent,
        acked,
        rtt: Summary::of(&mut rtts),
        messages_per_s: per_second(acked, elapsed),
        elapsed_s: elapsed.as_secs_f64(),
        errors,
    }
}

impl EchoResult {
    /// The [`Report`]; `ok` only when every message came back without error.
    pub fn report(&self, setup: &Setup, cfg: &EchoConfig) -> Report {
        let name = cfg.scenario();
        let mut metrics = vec![
            Metric::count(&format!("{name}.connected"), "connected", self.connected),
            Metric::count(&format!("{name}.acked"), "acks received", self.acked),
            Metric::new(
                &format!("{name}.rate"),
                "messages/s",
                "msg/s",
                Some(self.messages_per_s),
                Better::Higher,
            ),
        ];
        metrics.extend(Metric::latencies(
            &format!("{name}.rtt"),
            "round trip",
            self.rtt.as_ref(),
        ));
        Report {
            scenario: name.into(),
            target: setup.client.http_base(),
            ok: self.errors.is_empty() && self.acked == cfg.connections * cfg.messages,
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
