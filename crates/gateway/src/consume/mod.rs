//! Consumers: the queues an app already runs, as one more way in to
//! [`sockgate_core::Node::publish`].
//!
//! Each consumer (one file per broker) takes messages whose body is the
//! JSON body of `POST /api/publish`, or a server-side join or leave (see
//! [`sockgate_protocol::queue`]), hands each to its [`Sink`], and
//! acknowledges it only once the sink is done with it:
//!
//! - **at least once from the queue**: a crash before the acknowledgement
//!   gets the message redelivered; the producer's `idempotencyKey` makes the
//!   delivery to clients exactly once;
//! - **in order**: one message at a time per consumer;
//! - **a refused message never blocks the rest**: it is logged once with its
//!   reason, counted, and acknowledged (or dead-lettered, for RabbitMQ);
//! - **a message the node cannot take now** (a keyed publish while Redis is
//!   away) is left unacknowledged and taken again after a backoff;
//! - **a broker that goes away** is retried with backoff, while the node
//!   keeps serving and `/readyz` stays up;
//! - **on SIGTERM** a consumer stops taking messages, finishes and
//!   acknowledges those in hand, then the node drains.
//!
//! In a cluster every node runs the same consumers, and the broker gives
//! each message to one of them (a consumer group, a durable consumer, a
//! queue, `SKIP LOCKED` rows), which fans it out like any publish.

pub mod amqp;
pub mod nats;
pub mod postgres;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use sockgate_core::BoxFuture;
use sockgate_core::stats::ConsumerGauge;
use sockgate_protocol::ErrorCode;
use sockgate_protocol::queue::QueueMessage;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::consumers::ConsumerSettings;
use crate::gateway::Gateway;

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered, joined or left: acknowledge it.
    Done,
    /// Its idempotency key was seen: acknowledge it.
    Duplicate,
    /// Not a message, or against a rule: acknowledge it (or dead-letter
    /// it); it was logged and counted.
    Refused(String),
    /// The node cannot take it now: leave it unacknowledged and try again
    /// after a backoff.
    Later(String),
}

impl Outcome {
    /// Whether the message is finished with (acknowledged).
    pub fn is_final(&self) -> bool {
        !matches!(self, Outcome::Later(_))
    }
}

/// Hands a consumer's messages to the node, and keeps its figures.
#[derive(Clone)]
pub struct Sink {
    gateway: Arc<Gateway>,
    gauge: Arc<ConsumerGauge>,
}

impl Sink {
    /// A sink into `gateway`'s node, counting on `gauge`.
    pub fn new(gateway: Arc<Gateway>, gauge: Arc<ConsumerGauge>) -> Self {
        Self { gateway, gauge }
    }

    /// The consumer's figures.
    pub fn gauge(&self) -> &ConsumerGauge {
        &self.gauge
    }

    /// The largest body taken: the publish limit, plus room for the rest of
    /// the message (as `/api/publish`'s body limit).
    fn max_body(&self) -> usize {
        self.gateway.node.limits().max_payload + 16 * 1024
    }

    /// Takes one message; `id` names it in the log (the broker's id).
    pub async fn take(&self, id: &str, body: &[u8]) -> Outcome {
        let outcome = self.decide(body).await;
        self.record(id, outcome)
    }

    /// Refuses a message the broker gave in a shape that is not one (no
    /// body where the broker keeps it), as [`Sink::take`] refuses.
    pub fn take_refused(&self, id: &str, reason: String) -> Outcome {
        self.record(id, Outcome::Refused(reason))
    }

    fn record(&self, id: &str, outcome: Outcome) -> Outcome {
        match &outcome {
            Outcome::Done => self.gauge.took(),
            Outcome::Duplicate => self.gauge.duplicate(),
            Outcome::Refused(reason) => {
                self.gauge.refused();
                tracing::warn!(
                    target: "sockgate::consume",
                    consumer = self.gauge.name(),
                    id,
                    reason = %reason,
                    "a queued message was refused; it is acknowledged and the next one taken"
                );
            }
            Outcome::Later(reason) => tracing::info!(
                target: "sockgate::consume",
                consumer = self.gauge.name(),
                id,
                reason = %reason,
                "a queued message is left for later"
            ),
        }
        outcome
    }

    async fn decide(&self, body: &[u8]) -> Outcome {
        let max = self.max_body();
        if body.len() > max {
            return Outcome::Refused(format!(
                "the message is {} bytes; at most {max} are taken (SOCKGATE_MAX_PAYLOAD + 16 KiB)",
                body.len()
            ));
        }
        let message = match QueueMessage::parse(body) {
            Ok(message) => message,
            Err(reason) => return Outcome::Refused(reason),
        };
        let node = &self.gateway.node;
        let result = match message {
            QueueMessage::Publish(publish) if publish.except_session.is_some() => {
                return Outcome::Refused(
                    "exceptSession is for the app's replies; a queued publish reaches every socket of its target".into(),
                );
            }
            QueueMessage::Publish(publish) => node.publish(publish).await.map(|p| p.duplicate),
            QueueMessage::Move {
                room,
                sockets,
                join,
            } => node.move_sockets(sockets, &room, join).await.map(|_| false),
        };
        match result {
            Ok(false) => {
                crate::telemetry::message_out("queue", 1);
                Outcome::Done
            }
            Ok(true) => Outcome::Duplicate,
            Err(e) if e.code == ErrorCode::BackendUnavailable => {
                Outcome::Later(e.message.into_owned())
            }
            Err(e) => Outcome::Refused(format!("{}: {}", e.code.as_str(), e.message)),
        }
    }
}

/// A consumer of one broker.
pub trait Consumer: Send + Sync + 'static {
    /// `redis`, `nats`, `amqp` or `postgres`.
    fn kind(&self) -> &'static str;
    /// Takes messages into `sink` until `stop` turns true, then finishes
    /// and acknowledges the ones in hand and returns.
    fn run(self: Arc<Self>, sink: Sink, stop: watch::Receiver<bool>) -> BoxFuture<'static, ()>;
}

/// The consumer that `settings` describes, named `node` where the broker
/// asks (a Redis consumer).
fn consumer_for(settings: &ConsumerSettings, node: &str) -> Arc<dyn Consumer> {
    match settings {
        ConsumerSettings::Redis(s) => Arc::new(redis::RedisConsumer::new(s.clone(), node)),
        ConsumerSettings::Nats(s) => Arc::new(nats::NatsConsumer::new(s.clone())),
        ConsumerSettings::Amqp(s) => Arc::new(amqp::AmqpConsumer::new(s.clone())),
        ConsumerSettings::Postgres(s) => Arc::new(postgres::PostgresConsumer::new(s.clone())),
    }
}

/// The running consumers of a node.
pub struct Consumers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// How long the consumers get to finish the messages in hand on shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Consumers {
    /// Starts one task per consumer of `settings`, into `gateway`'s node;
    /// `node` names this node to the brokers that ask (a Redis consumer).
    pub fn start(gateway: &Arc<Gateway>, settings: &[ConsumerSettings], node: &str) -> Self {
        let (stop, stopped) = watch::channel(false);
        let tasks = settings
            .iter()
            .map(|s| {
                let consumer = consumer_for(s, node);
                let gauge = Arc::new(ConsumerGauge::new(s.name(), consumer.kind()));
                gateway.node.stats().add_consumer(gauge.clone());
                tracing::info!(target: "sockgate::consume", consumer = gauge.name(), "consuming");
                let sink = Sink::new(gateway.clone(), gauge);
                tokio::spawn(consumer.run(sink, stopped.clone()))
            })
            .collect();
        Self { stop, tasks }
    }

    /// Stops taking messages, and waits (at most 10 s) for the
    /// ones in hand to be finished and acknowledged.
    pub async fn stop(self) {
        if self.tasks.is_empty() {
            return;
        }
        let _ = self.stop.send(true);
        let all = futures_util::future::join_all(self.tasks);
        if tokio::time::timeout(STOP_TIMEOUT, all).await.is_err() {
            tracing::warn!(target: "sockgate::consume", "consumers did not stop in time");
        }
    }
}

/// Waits between attempts on a broker that failed: 100 ms, doubling to 5 s,
/// back to the start after a success.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MOST: Duration = Duration::from_secs(5);

    /// Sleeps the next wait, or less if `stop` turns true; true if it did.
    pub async fn wait(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MOST);
        stopped_within(stop, wait).await
    }

    /// The broker answered: the next failure waits from the start again.
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Whether `stop` turns true within `wait` (or is already).
pub async fn stopped_within(stop: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(wait) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// A consumer's broker outages, in the log and the figures: one `WARN`
/// when an outage starts, one `INFO` when it ends, the failures between at
/// debug level; each failure counted, the state `retrying` meanwhile.
pub struct Outage {
    /// How the log names the broker (`RabbitMQ`, `the stream`).
    broker: &'static str,
    /// Its URL, without credentials.
    url: String,
    away: bool,
}

impl Outage {
    /// No outage yet, of the broker at `url`.
    pub fn new(broker: &'static str, url: &str) -> Self {
        Self {
            broker,
            url: redacted(url),
            away: false,
        }
    }

    /// The broker failed with `error`.
    pub fn failed(&mut self, sink: &Sink, error: &dyn std::fmt::Display) {
        sink.gauge().broker_error();
        sink.gauge().set_state("retrying");
        let (consumer, url) = (sink.gauge().name(), &self.url);
        if self.away {
            tracing::debug!(target: "sockgate::consume", consumer, %url, error = %error, "{} is still away", self.broker);
        } else {
            self.away = true;
            tracing::warn!(target: "sockgate::consume", consumer, %url, error = %error, "{} cannot be read; retrying", self.broker);
        }
    }

    /// The broker answers: the consumer is running.
    pub fn running(&mut self, sink: &Sink) {
        if self.away {
            self.away = false;
            tracing::info!(target: "sockgate::consume", consumer = sink.gauge().name(), "{} is back", self.broker);
        }
        sink.gauge().set_state("running");
    }
}

/// A URL without its credentials, for the log.
pub fn redacted(url: &str) -> String {
    crate::telemetry::redacted(url)
}
