//! The consumers of the app's queues: `SOCKGATE_CONSUME_*` for one of each
//! kind, and `[[consumers]]` in the file for several.

use super::{ConfigError, Secret, Settings, invalid};
use crate::consume::{ConsumerSettings, amqp, nats, postgres, redis};

/// Every consumer the settings name: the file's `[[consumers]]` first,
/// then one per kind whose `SOCKGATE_CONSUME_*` settings are given.
pub fn from_settings(s: &Settings) -> Result<Vec<ConsumerSettings>, ConfigError> {
    let mut all = s.consumers.clone().unwrap_or_default();
    let claim_idle = s
        .consume_claim_idle
        .unwrap_or_else(redis::default_claim_idle);
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
        all.push(ConsumerSettings::Redis(redis::Settings {
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
        all.push(ConsumerSettings::Nats(nats::Settings {
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
        all.push(ConsumerSettings::Amqp(amqp::Settings {
            url,
            queue,
            prefetch: amqp::default_prefetch(),
        }));
    }
    if let Some(url) = url(&s.consume_postgres_url) {
        let table = non_empty(&s.consume_postgres_table).unwrap_or_else(postgres::default_table);
        all.push(ConsumerSettings::Postgres(postgres::Settings {
            url,
            table,
            poll_ms: postgres::default_poll_ms(),
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
        ConsumerSettings::Postgres(p) if !postgres::is_identifier(&p.table) => Err(invalid(
            "SOCKGATE_CONSUME_POSTGRES_TABLE",
            "must be a plain identifier: a letter or _, then letters, digits or _, at most 63",
        )),
        _ => Ok(()),
    }
}
