//! `queue`: N members of one user's room; K messages sent through a
//! producer ([`crate::produce`]): sockgate's admin API, one of the queues
//! sockgate consumes, or the Node peer's `@socket.io/redis-emitter` (an
//! outside command). Each message carries its sequence number and the time
//! the producer sent it (`{"seq": k, "t": <µs>}`).
//!
//! Measured: deliveries (one message reaching one member) from the first
//! send until the last member has the last message, as messages per second
//! (each message to every member), and the latency of each delivery, from
//! just before the producer sent it to the moment the member has it.
//!
//! `rate` 0 sends as fast as `in_flight` concurrent senders can: the
//! throughput run, where a queue's backlog shows in the latency. A rate
//! sends at that pace: the latency run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{CLOSE_GRACE, per_second, to_value};
use crate::fleet::{self, Pace};
use crate::produce::{Producer, Via};
use crate::protocol::{Inbound, token_auth};
use crate::report::{Better, Errors, Metric};
use crate::stats::Summary;
use crate::{Gate, Report, Setup, Tokens, now_us};

/// The `queue` scenario's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueConfig {
    /// Members (connections) of the user.
    pub members: usize,
    /// Messages sent.
    pub messages: usize,
    /// The `sub` of every member's token, and the `user` published to.
    pub user: String,
    /// The event name the server emits.
    pub event: String,
    /// Messages per second; 0: as fast as the senders go.
    pub rate: f64,
    /// Concurrent senders when `rate` is 0.
    pub in_flight: usize,
    /// What carries the messages (`api`, `redis`, ...).
    pub via: String,
    /// How long to wait, after the last send, for every delivery.
    #[serde(with = "crate::report::secs")]
    pub drain_timeout: Duration,
    /// How fast the members are connected.
    pub pace: Pace,
    /// Admin API key (Bearer), for `api`; not written to reports.
    #[serde(skip)]
    pub api_key: String,
    /// The producer; not written to reports (URLs may hold passwords).
    #[serde(skip)]
    pub target: Option<Via>,
    /// Delete the stream, queue or table once the run is over.
    #[serde(default)]
    pub drop_after: bool,
}

/// What the `queue` scenario measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueResult {
    /// Members whose CONNECT was accepted.
    pub connected: usize,
    /// Messages the producer sent without an error.
    pub sent: usize,
    /// Deliveries (message × member) received.
    pub deliveries: usize,
    /// Deliveries received twice (the same `seq` to the same member).
    pub duplicates: usize,
    /// Messages per second, each to every member: deliveries / members /
    /// elapsed.
    pub messages_per_s: f64,
    /// Per delivery: from the send to the member.
    pub latency: Option<Summary>,
    /// The producer's send call itself.
    pub send_call: Option<Summary>,
    /// From the first send until the last delivery (or the timeout), seconds.
    pub elapsed_s: f64,
    /// Set when the producer cannot send at all.
    pub failure: Option<String>,
    /// Errors by label.
    pub errors: Errors,
}

#[derive(Default)]
struct Member {
    latencies: Vec<u64>,
    seen: Vec<bool>,
    duplicates: usize,
    errors: Errors,
}

/// Counts every delivery, and says when all are in.
struct Tally {
    received: AtomicUsize,
    expected: AtomicUsize,
    last_us: std::sync::atomic::AtomicU64,
    all_in: Notify,
}

/// Runs the `queue` scenario.
pub async fn queue(setup: &Setup, cfg: &QueueConfig) -> QueueResult {
    let deadline = Instant::now() + setup.timeout;
    let tally = Arc::new(Tally {
        received: AtomicUsize::new(0),
        expected: AtomicUsize::new(usize::MAX),
        last_us: Default::default(),
        all_in: Notify::new(),
    });
    let done = Gate::default();
    let tokens = setup.tokens.clone();
    let user = cfg.user.clone();
    let (t, gate, event, k) = (tally.clone(), done.clone(), cfg.event.clone(), cfg.messages);
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
        move |_, mut conn| {
            let (tally, gate, event) = (t.clone(), gate.clone(), event.clone());
            async move {
                let mut m = Member {
                    seen: vec![false; k],
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
                                match m.seen.get_mut(seq as usize) {
                                    Some(seen) if *seen => {
                                        m.duplicates += 1;
                                        continue;
                                    }
                                    Some(seen) => *seen = true,
                                    None => {
                                        m.errors.add("ERR_BAD_SEQ");
                                        continue;
                                    }
                                }
                                m.latencies.push(now.saturating_sub(t));
                                tally.last_us.fetch_max(now, SeqCst);
                                if tally.received.fetch_add(1, SeqCst) + 1 == tally.expected.load(SeqCst) {
                                    tally.all_in.notify_one();
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

    let senders = if cfg.rate > 0.0 {
        1
    } else {
        cfg.in_flight.max(1)
    };
    let producer = match &cfg.target {
        None => Err("no producer".to_owned()),
        Some(via) => {
            Producer::connect(via, &setup.client.http_base(), &cfg.api_key, senders as u32).await
        }
    };
    let mut failure = None;
    let mut calls = Vec::new();
    let mut sent = 0;
    let t0 = now_us();
    let started = Instant::now();
    match &producer {
        Err(e) => failure = Some(e.clone()),
        Ok(_) if connected == 0 => failure = Some("no member connected".into()),
        Ok(producer) => {
            let (s, c, e) = send_all(producer, cfg, senders, deadline).await;
            sent = s;
            calls = c;
            errors.merge(&e);
            if sent == 0 {
                failure = Some("the producer sent nothing".into());
            }
        }
    }
    let expected = sent * connected;
    tally.expected.store(expected, SeqCst);
    let wait_until = (Instant::now() + cfg.drain_timeout).min(deadline + CLOSE_GRACE);
    while tally.received.load(SeqCst) < expected {
        if tokio::time::timeout_at(wait_until, tally.all_in.notified())
            .await
            .is_err()
        {
            break;
        }
    }
    let last = tally.last_us.load(SeqCst);
    let elapsed = if last > t0 {
        Duration::from_micros(last - t0)
    } else {
        started.elapsed()
    };
    done.open();
    let (members, lost) = fleet::join_all(launched.tasks, Instant::now() + CLOSE_GRACE).await;
    errors.add_n("ERR_TASK_LOST", lost as u64);
    if let (true, Ok(producer)) = (cfg.drop_after, &producer)
        && let Err(e) = producer.drop_target().await
    {
        errors.add(format!("ERR_DROP: {}", first_words(&e)));
    }
    let mut latencies = Vec::new();
    let mut duplicates = 0;
    for m in members {
        duplicates += m.duplicates;
        latencies.extend(m.latencies);
        errors.merge(&m.errors);
    }
    let deliveries = latencies.len();
    if deliveries < expected {
        errors.add_n(
            "ERR_TIMEOUT: delivery (a member never got it)",
            (expected - deliveries) as u64,
        );
    }
    if duplicates > 0 {
        errors.add_n(
            "ERR_DUPLICATE: a member got a message twice",
            duplicates as u64,
        );
    }
    QueueResult {
        connected,
        sent,
        deliveries,
        duplicates,
        messages_per_s: per_second(deliveries, elapsed) / connected.max(1) as f64,
        latency: Summary::of(&mut latencies),
        send_call: Summary::of(&mut calls),
        elapsed_s: elapsed.as_secs_f64(),
        failure,
        errors,
    }
}

/// Sends the messages: one sender at `rate`, or `senders` as fast as they
/// go. Returns how many were sent, each send's time, and the errors.
async fn send_all(
    producer: &Producer,
    cfg: &QueueConfig,
    senders: usize,
    deadline: Instant,
) -> (usize, Vec<u64>, Errors) {
    let next = Arc::new(AtomicUsize::new(0));
    let interval = (cfg.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / cfg.rate));
    let tasks: Vec<_> = (0..senders)
        .map(|_| {
            let (producer, next) = (producer.clone(), next.clone());
            let (user, event, k) = (cfg.user.clone(), cfg.event.clone(), cfg.messages);
            tokio::spawn(async move {
                let (mut sent, mut calls, mut errors) = (0, Vec::new(), Errors::default());
                let start = Instant::now();
                loop {
                    let seq = next.fetch_add(1, SeqCst);
                    if seq >= k || Instant::now() >= deadline {
                        break;
                    }
                    if let Some(every) = interval {
                        tokio::time::sleep_until(start + every * seq as u32).await;
                    }
                    let t = now_us();
                    let body =
                        json!({ "user": user, "event": event, "data": { "seq": seq, "t": t } });
                    match producer.send(&body).await {
                        Ok(()) => sent += 1,
                        Err(e) => errors.add(format!("ERR_SEND: {}", first_words(&e))),
                    }
                    calls.push(now_us() - t);
                }
                (sent, calls, errors)
            })
        })
        .collect();
    let (mut sent, mut calls, mut errors) = (0, Vec::new(), Errors::default());
    for task in tasks {
        if let Ok((s, c, e)) = task.await {
            sent += s;
            calls.extend(c);
            errors.merge(&e);
        }
    }
    (sent, calls, errors)
}

/// An error's first words, so that one cause is one label.
fn first_words(e: &str) -> String {
    e.split_whitespace().take(6).collect::<Vec<_>>().join(" ")
}

impl QueueResult {
    /// The [`Report`].
    pub fn report(&self, setup: &Setup, cfg: &QueueConfig) -> Report {
        let mut metrics = vec![
            Metric::count("queue.connected", "members connected", self.connected),
            Metric::count("queue.sent", "messages sent", self.sent),
            Metric::new(
                "queue.rate",
                "messages/s (each to every member)",
                "msg/s",
                (self.deliveries > 0).then_some(self.messages_per_s),
                Better::Higher,
            ),
        ];
        metrics.extend(Metric::latencies(
            "queue.latency",
            "send→member",
            self.latency.as_ref(),
        ));
        metrics.push(Metric::new(
            "queue.send.p50",
            "producer's send p50",
            "ms",
            self.send_call.map(|s| crate::stats::ms(s.p50_us)),
            Better::Lower,
        ));
        Report {
            scenario: "queue".into(),
            target: setup.client.http_base(),
            ok: self.failure.is_none() && self.errors.is_empty(),
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
