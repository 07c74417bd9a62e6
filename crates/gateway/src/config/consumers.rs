//! The consumers of the app's queues: `SOCKGATE_CONSUME_*` for one of each
//! kind, and `[[consumers]]` in the file for several.

use super::{ConfigError, Secret, Settings, invalid};
use serde::{Deserialize, Serialize};

/// One consumer, as configured: by settings (`SOCKGATE_CONSUME_*`) or by a
/// `[[consumers]]` entry of the config file.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ConsumerSettings {
    /// A Redis stream, read by the consumer group `sockgate`.
    Redis(RedisSettings),
    /// A NATS JetStream stream, read by the durable pull consumer `sockgate`.
    Nats(NatsSettings),
    /// A RabbitMQ queue.
    Amqp(AmqpSettings),
    /// A PostgreSQL outbox table.
    Postgres(PostgresSettings),
}

/// Names the consumer and its broker without the URL's credentials.
impl std::fmt::Debug for ConsumerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = match self {
            ConsumerSettings::Redis(s) => &s.url,
            ConsumerSettings::Nats(s) => &s.url,
            ConsumerSettings::Amqp(s) => &s.url,
            ConsumerSettings::Postgres(s) => &s.url,
        };
        write!(f, "{} at {}", self.name(), crate::telemetry::redacted(url))
    }
}

impl ConsumerSettings {
    /// The consumer's name in the figures and the log.
    pub fn name(&self) -> String {
        match self {
            ConsumerSettings::Redis(s) => format!("redis:{}", s.stream),
            ConsumerSettings::Nats(s) => format!("nats:{}", s.stream),
            ConsumerSettings::Amqp(s) => format!("amqp:{}", s.queue),
            ConsumerSettings::Postgres(s) => format!("postgres:{}", s.table),
        }
    }
}

/// `SOCKGATE_CONSUME_REDIS_*`, or a `[[consumers]]` entry with
/// `kind = "redis"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// The Redis URL (`SOCKGATE_CONSUME_REDIS_URL`, default
    /// `SOCKGATE_REDIS_URL`).
    pub url: String,
    /// The stream (`SOCKGATE_CONSUME_REDIS_STREAM`).
    pub stream: String,
    /// Seconds an entry a node took stays unacknowledged before another
    /// node claims it (`SOCKGATE_CONSUME_CLAIM_IDLE`, default 30).
    #[serde(default = "default_claim_idle")]
    pub claim_idle: u64,
}

/// 30 s: long enough that a live node finishes what it holds.
pub fn default_claim_idle() -> u64 {
    30
}

/// `SOCKGATE_CONSUME_NATS_*`, or a `[[consumers]]` entry with
/// `kind = "nats"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    /// The NATS URL (`SOCKGATE_CONSUME_NATS_URL`).
    pub url: String,
    /// The stream (`SOCKGATE_CONSUME_NATS_STREAM`).
    pub stream: String,
    /// The subject it takes, and the consumer's filter
    /// (`SOCKGATE_CONSUME_NATS_SUBJECT`).
    pub subject: String,
    /// Seconds before a message taken and not acknowledged is delivered
    /// again (`SOCKGATE_CONSUME_CLAIM_IDLE`, default 30).
    #[serde(default = "default_claim_idle")]
    pub ack_wait: u64,
}

/// `SOCKGATE_CONSUME_AMQP_*`, or a `[[consumers]]` entry with
/// `kind = "amqp"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    /// The AMQP URL (`SOCKGATE_CONSUME_AMQP_URL`).
    pub url: String,
    /// The queue (`SOCKGATE_CONSUME_AMQP_QUEUE`).
    pub queue: String,
    /// Most messages a node holds unacknowledged [default: 100].
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
}

/// 100: enough to keep a node busy while it acknowledges, few enough that
/// a node that dies gives little back to redeliver.
pub fn default_prefetch() -> u16 {
    100
}

/// `SOCKGATE_CONSUME_POSTGRES_*`, or a `[[consumers]]` entry with
/// `kind = "postgres"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// The PostgreSQL URL (`SOCKGATE_CONSUME_POSTGRES_URL`).
    pub url: String,
    /// The outbox table (`SOCKGATE_CONSUME_POSTGRES_TABLE`).
    #[serde(default = "default_table")]
    pub table: String,
    /// Milliseconds between polls when no notification comes [default: 1000].
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

/// `sockgate_outbox`.
pub fn default_table() -> String {
    "sockgate_outbox".to_owned()
}

/// A second: the notifications carry the latency; the poll only catches
/// what they miss.
pub fn default_poll_ms() -> u64 {
    1000
}

/// Whether `name` can be put in SQL as it is: a letter or `_`, then
/// letters, digits or `_`, at most 63 bytes (PostgreSQL's own limit).
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63
}

/// Every consumer the settings name: the file's `[[consumers]]` first,
/// then one per kind whose `SOCKGATE_CONSUME_*` settings are given.
pub fn from_settings(s: &Settings) -> Result<Vec<ConsumerSettings>, ConfigError> {
    let mut all = s.consumers.clone().unwrap_or_default();
    let claim_idle = s.consume_claim_idle.unwrap_or_else(default_claim_idle);
    if claim_idle == 0 || claim_idle > 3600 {
        return Err(invalid(
            "SOCKGATE_CONSUME_CLAIM_IDLE",
            "must be 1 to 3600 seconds",
        ));
    }
    if let Some(stream) = non_empty(&s.consume_redis_stream) {
        let url = url(&s.consume_redis_url)
            .or_else(|| non_empty(&s.redis_url))
            .ok_or_else(|| {
                invalid(
                    "SOCKGATE_CONSUME_REDIS_STREAM",
                    "needs SOCKGATE_CONSUME_REDIS_URL (or SOCKGATE_REDIS_URL)",
                )
            })?;
        all.push(ConsumerSettings::Redis(RedisSettings {
            url,
            stream,
            claim_idle,
        }));
    }
    if let Some(stream) = non_empty(&s.consume_nats_stream) {
        let url = url(&s.consume_nats_url).ok_or_else(|| {
            invalid(
                "SOCKGATE_CONSUME_NATS_STREAM",
                "needs SOCKGATE_CONSUME_NATS_URL",
            )
        })?;
        let subject = non_empty(&s.consume_nats_subject).unwrap_or_else(|| stream.clone());
        all.push(ConsumerSettings::Nats(NatsSettings {
            url,
            stream,
            subject,
            ack_wait: claim_idle,
        }));
    }
    if let Some(queue) = non_empty(&s.consume_amqp_queue) {
        let url = url(&s.consume_amqp_url).ok_or_else(|| {
            invalid(
                "SOCKGATE_CONSUME_AMQP_QUEUE",
                "needs SOCKGATE_CONSUME_AMQP_URL",
            )
        })?;
        all.push(ConsumerSettings::Amqp(AmqpSettings {
            url,
            queue,
            prefetch: default_prefetch(),
        }));
    }
    if let Some(url) = url(&s.consume_postgres_url) {
        let table = non_empty(&s.consume_postgres_table).unwrap_or_else(default_table);
        all.push(ConsumerSettings::Postgres(PostgresSettings {
            url,
            table,
            poll_ms: default_poll_ms(),
        }));
    }
    for consumer in &all {
        check(consumer)?;
    }
    Ok(all)
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.trim().is_empty())
}

/// A URL setting, which may carry a password.
fn url(value: &Option<Secret>) -> Option<String> {
    non_empty(&value.as_ref().map(|s| s.expose().to_owned()))
}

/// The names a consumer is given are used as they are: a table name is
/// put in SQL, so it must be a plain identifier.
fn check(consumer: &ConsumerSettings) -> Result<(), ConfigError> {
    let setting = "consumers";
    match consumer {
        ConsumerSettings::Redis(r) if r.stream.is_empty() || r.url.is_empty() => {
            Err(invalid(setting, "a redis consumer needs url and stream"))
        }
        ConsumerSettings::Nats(n)
            if n.stream.is_empty() || n.subject.is_empty() || n.url.is_empty() =>
        {
            Err(invalid(
                setting,
                "a nats consumer needs url, stream and subject",
            ))
        }
        ConsumerSettings::Amqp(a) if a.queue.is_empty() || a.url.is_empty() => {
            Err(invalid(setting, "an amqp consumer needs url and queue"))
        }
        ConsumerSettings::Amqp(a) if a.prefetch == 0 => Err(invalid(
            setting,
            "an amqp consumer's prefetch must be at least 1",
        )),
        ConsumerSettings::Postgres(p) if !is_identifier(&p.table) => Err(invalid(
            "SOCKGATE_CONSUME_POSTGRES_TABLE",
            "must be a plain identifier: a letter or _, then letters, digits or _, at most 63",
        )),
        _ => Ok(()),
    }
}
