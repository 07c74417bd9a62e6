//! `fanout`: N members of one room; K messages published one at a time
//! through the HTTP API, `POST /api/publish` with
//! `{"user": "<user>", "event": "bench", "data": {"seq": k, "t": <µs>}}`
//! (or `{"room": ...}`), which answers `{"delivered": n}`.
//!
//! Every socket is in the room `user:{userId}`, so the members' tokens all
//! carry the same `sub` (`--user`, default `fanout`). For each message the
//! latency is from just before the HTTP call to the moment the last member
//! has it; the next message is sent only then (or after a timeout). Each
//! delivery's own latency is reported too.
//!
//! With [`Setup::peers`] the members are spread over the nodes of a
//! cluster while the publish call goes to the first one; deliveries on the
//! other nodes are then also reported on their own (the cross-node path).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{CLOSE_GRACE, per_second, to_value};
use crate::fleet::{self, Pace};
use crate::http::Api;
use crate::protocol::{self, Inbound, token_auth};
use crate::report::{Better, Errors, Metric};
use crate::stats::Summary;
use crate::{Gate, Report, Setup, Tokens, now_us};

/// The `fanout` scenario's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutConfig {
    /// Room members (connections) to open.
    pub members: usize,
    /// Messages, published one at a time.
    pub messages: usize,
    /// The `sub` of every member's token, and the `user` published to.
    pub user: String,
    /// Publish to this room instead of `{"user": ...}`.
    pub room: Option<String>,
    /// The event name the server emits.
    pub event: String,
    /// How long to wait for every member to have one message.
    #[serde(with = "crate::report::secs")]
    pub message_timeout: Duration,
    /// How fast the members are connected.
    pub pace: Pace,
    /// Bytes of chat-like text each message carries besides its sequence
    /// and timestamp; 0 for none.
    #[serde(default)]
    pub payload: usize,
    /// Admin API key (Bearer) for `POST /api/publish`; not written to reports.
    #[serde(skip)]
    pub api_key: String,
}

/// What the `fanout` scenario measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutResult {
    /// Members attempted.
    pub members: usize,
    /// Members whose CONNECT was accepted.
    pub connected: usize,
    /// Messages the API accepted (2xx answer).
    pub published: usize,
    /// Messages every member received.
    pub completed: usize,
    /// Per message: until the last member had it.
    pub all_members: Option<Summary>,
    /// Per delivery: until that member had it.
    pub delivery: Option<Summary>,
    /// The same, for members on nodes other than the one called (cluster runs).
    pub remote_delivery: Option<Summary>,
    /// The `POST /api/publish` call itself.
    pub publish_call: Option<Summary>,
    /// Deliveries (one message reaching one member) per second, over the
    /// publish phase.
    pub deliveries_per_s: f64,
    /// Duration of the publish phase, from the first call until the last
    /// message reached every member (or timed out), seconds.
    pub elapsed_s: f64,
    /// Set when the server cannot publish at all (no such endpoint, ...).
    pub failure: Option<String>,
    /// Errors by label: failed handshakes, publish failures, missing or late
    /// deliveries, dropped members.
    pub errors: Errors,
}

/// The message currently in flight, shared by all members.
struct Round {
    seq: AtomicU64,
    count: AtomicUsize,
    last_us: AtomicU64,
    target: AtomicUsize,
    all_in: Notify,
}

#[derive(Default)]
struct Member {
    node: usize,
    latencies: Vec<u64>,
    errors: Errors,
}

/// Runs the `fanout` scenario: connects every member, then publishes the
/// messages one at a time, each once the previous one has reached every
/// member (or timed out).
pub async fn fanout(setup: &Setup, cfg: &FanoutConfig) -> FanoutResult {
    let deadline = Instant::now() + setup.timeout;
    let api = Api::new(&setup.client.http_base(), &cfg.api_key);
    let round = Arc::new(Round {
        seq: AtomicU64::new(u64::MAX),
        count: AtomicUsize::new(0),
        last_us: AtomicU64::new(0),
        target: AtomicUsize::new(usize::MAX),
        all_in: Notify::new(),
    });
    let done = Gate::default();
    let tokens = setup.tokens.clone();
    let user = cfg.user.clone();
    let (r, gate, event) = (round.clone(), done.clone(), cfg.event.clone());
    let nodes = setup.clone();
    let launched = fleet::launch(
        setup,
        cfg.members,
        cfg.pace,
        deadline,
        move |i| {
            token_auth(&match &tokens {
                Tokens::Mint(m) => m.mint(&user, None),
                file => file.for_connection(i),
            })
        },
        move |i, mut conn| {
            let (round, gate, event) = (r.clone(), gate.clone(), event.clone());
            let node = nodes.node_of(i);
            async move {
                let mut m = Member {
                    node,
                    ..Member::default()
                };
                loop {
                    tokio::select! {
                        () = gate.wait() => break,
                        packet = conn.recv() => match packet {
                            Ok(Inbound::Event { name, data, .. }) if name == event => {
                                let now = now_us();
                                let (Some(seq), Some(t)) = (data["seq"].as_u64(), data["t"].as_u64()) else {
                                    m.errors.add("ERR_BAD_PAYLOAD");
                                    continue;
                                };
                                m.latencies.push(now.saturating_sub(t));
                                if seq == round.seq.load(SeqCst) {
                                    round.last_us.fetch_max(now, SeqCst);
                                    if round.count.fetch_add(1, SeqCst) + 1 == round.target.load(SeqCst) {
                                        round.all_in.notify_one();
                                    }
                                } else {
                                    m.errors.add("ERR_LATE_DELIVERY");
                                }
                            }
                            Ok(Inbound::Disconnect) => {
                                m.errors.add("dropped: socket.io disconnect");
                                break;
                            }
                            Ok(_) => {}
                            Err(e) => {
                                m.errors.add(format!("dropped: {}", e.label()));
                                break;
                            }
                        },
                    }
                }
                conn.close().await;
                m
            }
        },
    )
    .await;
    let (_, mut errors) = launched.tally();
    let connected = launched.connected();
    let local = launched.connected_to_first_node(setup);
    round.target.store(connected, SeqCst);

    let mut failure = None;
    let mut all_members = Vec::with_capacity(cfg.messages);
    let mut calls = Vec::with_capacity(cfg.messages);
    let mut published = 0;
    let started = Instant::now();
    match api {
        Err(e) => failure = Some(format!("HTTP client: {e}")),
        Ok(_) if connected == 0 => failure = Some("no member connected".into()),
        Ok(api) => {
            for seq in 0..cfg.messages as u64 {
                if Instant::now() >= deadline {
                    errors.add_n(
                        "ERR_TIMEOUT: scenario (messages not sent)",
                        cfg.messages as u64 - seq,
                    );
                    break;
                }
                round.count.store(0, SeqCst);
                round.last_us.store(0, SeqCst);
                round.seq.store(seq, SeqCst);
                let t0 = now_us();
                let mut body = json!({ "event": cfg.event, "data": { "seq": seq, "t": t0 } });
                if cfg.payload > 0 {
                    body["data"]["text"] = json!(protocol::filler(cfg.payload, seq));
                }
                match &cfg.room {
                    Some(room) => body["room"] = json!(room),
                    None => body["user"] = json!(cfg.user),
                }
                let answer = api.post("/api/publish", &body).await;
                calls.push(now_us() - t0);
                match answer {
                    Ok(a) if a.is_success() => {
                        published += 1;
                        let delivered = a.body["delivered"].as_u64();
                        if delivered != Some(local as u64) {
                            errors.add(format!(
                                "ERR_DELIVERED_COUNT (server said {}, {local} members on it)",
                                delivered.map_or("nothing".into(), |d| d.to_string())
                            ));
                        }
                    }
                    Ok(a) if seq == 0 => {
                        failure = Some(format!(
                            "POST /api/publish is not available on this server: {}",
                            a.describe()
                        ));
                        errors.add(format!("ERR_PUBLISH: HTTP {}", a.status));
                        break;
                    }
                    Ok(a) => {
                        errors.add(format!("ERR_PUBLISH: HTTP {}", a.status));
                        continue;
                    }
                    Err(e) if seq == 0 => {
                        failure = Some(e.clone());
                        errors.add("ERR_PUBLISH: request failed");
                        break;
                    }
                    Err(_) => {
                        errors.add("ERR_PUBLISH: request failed");
                        continue;
                    }
                }
                let wait_until = (Instant::now() + cfg.message_timeout).min(deadline);
                loop {
                    let have = round.count.load(SeqCst);
                    if have >= connected {
                        all_members.push(round.last_us.load(SeqCst).saturating_sub(t0));
                        break;
                    }
                    if tokio::time::timeout_at(wait_until, round.all_in.notified())
                        .await
                        .is_err()
                    {
                        let missing = connected.saturating_sub(round.count.load(SeqCst));
                        errors.add_n(
                            "ERR_TIMEOUT: delivery (member never got it)",
                            missing as u64,
                        );
                        break;
                    }
                }
            }
        }
    }
    let elapsed = started.elapsed();
    // Invalidate the round so nothing counts any more, then stop the members.
    round.seq.store(u64::MAX, SeqCst);
    done.open();
    let (members, lost) = fleet::join_all(launched.tasks, Instant::now() + CLOSE_GRACE).await;
    errors.add_n("ERR_TASK_LOST", lost as u64);
    let mut deliveries = Vec::new();
    let mut remote = Vec::new();
    for m in members {
        if m.node != 0 {
            remote.extend(&m.latencies);
        }
        deliveries.extend(m.latencies);
        errors.merge(&m.errors);
    }
    FanoutResult {
        members: cfg.members,
        connected,
        published,
        completed: all_members.len(),
        all_members: Summary::of(&mut all_members),
        deliveries_per_s: per_second(deliveries.len(), elapsed),
        delivery: Summary::of(&mut deliveries),
        remote_delivery: Summary::of(&mut remote),
        publish_call: Summary::of(&mut calls),
        elapsed_s: elapsed.as_secs_f64(),
        failure,
        errors,
    }
}

impl FanoutResult {
    /// The [`Report`]; per-node latencies only in cluster runs.
    pub fn report(&self, setup: &Setup, cfg: &FanoutConfig) -> Report {
        let mut metrics = vec![
            Metric::count("fanout.connected", "members connected", self.connected),
            Metric::count(
                "fanout.completed",
                "messages all members got",
                self.completed,
            ),
            Metric::new(
                "fanout.rate",
                "deliveries/s",
                "msg/s",
                (self.published > 0).then_some(self.deliveries_per_s),
                Better::Higher,
            ),
        ];
        metrics.extend(Metric::latencies_short(
            "fanout.all",
            "publish→all members",
            self.all_members.as_ref(),
        ));
        metrics.push(Metric::new(
            "fanout.delivery.p50",
            "publish→one member p50",
            "ms",
            self.delivery.map(|s| crate::stats::ms(s.p50_us)),
            Better::Lower,
        ));
        if !setup.peers.is_empty() {
            metrics.extend(Metric::latencies_short(
                "fanout.remote",
                "publish→member, other node",
                self.remote_delivery.as_ref(),
            ));
        }
        metrics.push(Metric::new(
            "fanout.call.p50",
            "POST /api/publish p50",
            "ms",
            self.publish_call.map(|s| crate::stats::ms(s.p50_us)),
            Better::Lower,
        ));
        Report {
            scenario: "fanout".into(),
            target: setup.client.http_base(),
            ok: self.failure.is_none() && self.errors.is_empty() && self.completed == cfg.messages,
            failure: self.failure.clone(),
            elapsed_s: self.elapsed_s,
            config: to_value(cfg),
            metrics,
            errors: self.errors.clone(),
            notes: vec![],
            details: to_value(self),
        }
    }
}
