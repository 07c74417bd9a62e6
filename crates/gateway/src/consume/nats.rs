//! A NATS JetStream stream as a queue: the durable pull consumer
//! `sockgate` (created if missing, with the stream if that is missing too)
//! with explicit acks, shared by every node. A message is acknowledged once
//! it is published; one a node took and never acknowledged (the node died)
//! is delivered again after `ack_wait` seconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::Client;
use async_nats::connection::State;
use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures_util::StreamExt;
use sockgate_core::BoxFuture;
use tokio::sync::watch;

use crate::config::consumers::NatsSettings;

use super::{Backoff, Consumer, Outage, Sink};

/// The durable consumer every node pulls from.
pub const DURABLE: &str = "sockgate";
/// Messages pulled at once.
const BATCH: usize = 100;
/// How long one pull waits for messages: also how soon a stop is seen.
const PULL_WAIT: Duration = Duration::from_secs(1);
/// How often the consumer's pending count is read for the figures.
const LAG_EVERY: Duration = Duration::from_secs(2);

/// Pulls one stream through the durable consumer [`DURABLE`].
pub struct NatsConsumer {
    settings: NatsSettings,
}

impl NatsConsumer {
    /// The consumer of `settings`.
    pub fn new(settings: NatsSettings) -> Self {
        Self { settings }
    }

    /// A connection, with the stream and the durable consumer in place.
    async fn connect(&self) -> Result<(Client, PullConsumer), async_nats::Error> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            // The client reconnects by itself in the background (0 would
            // mean "forever" to it); sockgate watches its state instead, and
            // starts over with its own backoff and figures when it is lost.
            .max_reconnects(Some(1))
            .connect(self.settings.url.as_str())
            .await?;
        let js = jetstream::new(client.clone());
        let stream = js
            .get_or_create_stream(jetstream::stream::Config {
                name: self.settings.stream.clone(),
                subjects: vec![self.settings.subject.clone()],
                ..Default::default()
            })
            .await?;
        let consumer = stream
            .get_or_create_consumer(
                DURABLE,
                jetstream::consumer::pull::Config {
                    durable_name: Some(DURABLE.to_owned()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(self.settings.ack_wait),
                    filter_subject: self.settings.subject.clone(),
                    ..Default::default()
                },
            )
            .await?;
        Ok((client, consumer))
    }

    /// One pull and the handling of what it brought: `Ok(false)` when a
    /// message was left for later (the node cannot take it now).
    async fn round(
        &self,
        (client, consumer): &mut (Client, PullConsumer),
        sink: &Sink,
        next_lag: &mut Instant,
    ) -> Result<bool, async_nats::Error> {
        // A pull on a lost connection waits in the client's buffer and
        // comes back empty: the state is the only sign of an outage.
        if client.connection_state() != State::Connected {
            return Err("the connection to NATS is lost".into());
        }
        if Instant::now() >= *next_lag {
            *next_lag = Instant::now() + LAG_EVERY;
            if let Ok(info) = consumer.info().await {
                sink.gauge()
                    .set_lag(Some(info.num_pending + info.num_ack_pending as u64));
            }
        }
        let mut batch = consumer
            .fetch()
            .max_messages(BATCH)
            .expires(PULL_WAIT)
            .messages()
            .await?;
        while let Some(message) = batch.next().await {
            let message = message?;
            let id = message
                .info()
                .map(|i| i.stream_sequence.to_string())
                .unwrap_or_default();
            let outcome = sink.take(&id, &message.payload).await;
            if !outcome.is_final() {
                // Delivered again after the backoff, before what follows it.
                message.ack_with(AckKind::Nak(None)).await?;
                return Ok(false);
            }
            // Not waited for one by one (the batch's are flushed at its
            // end): an acknowledgement lost to a broken connection
            // redelivers the message, as at-least-once allows (keyed
            // publishes stay once to clients).
            message.ack().await?;
        }
        client.flush().await?;
        Ok(true)
    }
}

impl Consumer for NatsConsumer {
    fn kind(&self) -> &'static str {
        "nats"
    }

    fn run(self: Arc<Self>, sink: Sink, mut stop: watch::Receiver<bool>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let mut backoff = Backoff::default();
            let mut consumer: Option<(Client, PullConsumer)> = None;
            let mut outage = Outage::new("NATS", &self.settings.url);
            let mut next_lag = Instant::now();
            while !*stop.borrow() {
                let c = match consumer.as_mut() {
                    Some(c) => c,
                    None => match self.connect().await {
                        Ok(c) => consumer.insert(c),
                        Err(e) => {
                            outage.failed(&sink, &e);
                            backoff.wait(&mut stop).await;
                            continue;
                        }
                    },
                };
                outage.running(&sink);
                match self.round(c, &sink, &mut next_lag).await {
                    Ok(true) => backoff.reset(),
                    Ok(false) => {
                        backoff.wait(&mut stop).await;
                    }
                    Err(e) => {
                        consumer = None;
                        outage.failed(&sink, &e);
                        backoff.wait(&mut stop).await;
                    }
                }
            }
            // What was acknowledged leaves before the process does.
            if let Some((client, _)) = &consumer {
                let _ = client.flush().await;
            }
            sink.gauge().set_state("stopped");
        })
    }
}
