//! A RabbitMQ queue (AMQP 0-9-1): used as the app declared it, or declared
//! durable when missing; consumed
//! with manual acks and a prefetch bound, shared by every node. A message
//! is acknowledged once it is published; a refused one is rejected without
//! requeue, so the queue's dead-letter exchange gets it when one is
//! configured. The broker gives back what a dead node held unacknowledged.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use sockgate_core::BoxFuture;
use tokio::sync::watch;

use crate::config::consumers::AmqpSettings;

use super::{Backoff, Consumer, Outage, Outcome, Sink};

/// How often the queue's depth is read for the figures.
const LAG_EVERY: Duration = Duration::from_secs(2);

/// Consumes one queue.
pub struct AmqpConsumer {
    settings: AmqpSettings,
}

impl AmqpConsumer {
    /// The consumer of `settings`.
    pub fn new(settings: AmqpSettings) -> Self {
        Self { settings }
    }

    /// A connection and a channel, with the queue in place.
    async fn connect(&self) -> lapin::Result<(Connection, Channel)> {
        let connect = Connection::connect(&self.settings.url, ConnectionProperties::default());
        let conn = match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(conn) => conn?,
            Err(_) => {
                return Err(lapin::Error::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no answer from the broker within 5 s",
                )));
            }
        };
        let mut channel = conn.create_channel().await?;
        if self.depth(&channel).await.is_err() {
            // Not there (the broker closed that channel): declared durable.
            channel = conn.create_channel().await?;
            channel
                .queue_declare(
                    self.settings.queue.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await?;
        }
        channel
            .basic_qos(self.settings.prefetch, BasicQosOptions::default())
            .await?;
        Ok((conn, channel))
    }

    /// The queue's depth, by a passive declare: a queue the app declared
    /// (with its dead-letter exchange, as a quorum queue) is used as it is,
    /// since declaring it again with other arguments is an error.
    async fn depth(&self, channel: &Channel) -> lapin::Result<u32> {
        let queue = channel
            .queue_declare(
                self.settings.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(queue.message_count())
    }

    /// Consumes until `stop`, the connection fails, or a message is left
    /// for later (`Ok(false)`).
    async fn consume(
        &self,
        channel: &Channel,
        sink: &Sink,
        stop: &mut watch::Receiver<bool>,
    ) -> lapin::Result<bool> {
        let tag = format!("sockgate-{:08x}", rand::random::<u32>());
        let mut deliveries = channel
            .basic_consume(
                self.settings.queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut lag_tick = tokio::time::interval(LAG_EVERY);
        loop {
            let delivery = tokio::select! {
                _ = stop.changed() => {
                    // What the broker sent but sockgate did not take goes
                    // back to the queue when the channel closes.
                    return Ok(true);
                }
                _ = lag_tick.tick() => {
                    sink.gauge().set_lag(self.depth(channel).await.ok().map(u64::from));
                    continue;
                }
                next = deliveries.next() => next,
            };
            let Some(delivery) = delivery else {
                return Err(lapin::Error::from(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "the broker cancelled the consumer",
                )));
            };
            let delivery = delivery?;
            let id = delivery.delivery_tag.to_string();
            match sink.take(&id, &delivery.data).await {
                Outcome::Done | Outcome::Duplicate => {
                    delivery.ack(BasicAckOptions::default()).await?;
                }
                Outcome::Refused(_) => {
                    delivery
                        .reject(BasicRejectOptions { requeue: false })
                        .await?;
                }
                Outcome::Later(_) => {
                    delivery
                        .nack(BasicNackOptions {
                            multiple: false,
                            requeue: true,
                        })
                        .await?;
                    return Ok(false);
                }
            }
        }
    }
}

impl Consumer for AmqpConsumer {
    fn kind(&self) -> &'static str {
        "amqp"
    }

    fn run(self: Arc<Self>, sink: Sink, mut stop: watch::Receiver<bool>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let mut backoff = Backoff::default();
            let mut outage = Outage::new("RabbitMQ", &self.settings.url);
            while !*stop.borrow() {
                let (conn, channel) = match self.connect().await {
                    Ok(c) => c,
                    Err(e) => {
                        outage.failed(&sink, &e);
                        backoff.wait(&mut stop).await;
                        continue;
                    }
                };
                backoff.reset();
                outage.running(&sink);
                let result = self.consume(&channel, &sink, &mut stop).await;
                let _ = channel.close(200, "sockgate".into()).await;
                let _ = conn.close(200, "sockgate".into()).await;
                match result {
                    Ok(true) => {}
                    Ok(false) => {
                        backoff.wait(&mut stop).await;
                    }
                    Err(e) => {
                        outage.failed(&sink, &e);
                        backoff.wait(&mut stop).await;
                    }
                }
            }
            sink.gauge().set_state("stopped");
        })
    }
}
