//! The cluster's pub/sub: announcements and room messages between nodes.
//!
//! It must ride out Redis restarts:
//!
//! - it runs on redis-rs's `ConnectionManager`, which reconnects and
//!   resubscribes by itself;
//! - pushes go through an unbounded queue and are handed on with
//!   back-pressure, never dropped;
//! - while the cluster is degraded, publishes are skipped (and counted):
//!   local delivery never waits on Redis.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, PushInfo, PushKind, Value};
use tokio::sync::mpsc;

/// A message of a channel: its name and its body.
pub type ChanItem = (String, Vec<u8>);

/// Where pushed messages go: a channel's own subscriber, or the one of
/// every channel under a prefix (the room channels).
#[derive(Default)]
struct Routes {
    exact: HashMap<String, mpsc::Sender<ChanItem>>,
    prefixed: Vec<(String, mpsc::Sender<ChanItem>)>,
}

impl Routes {
    fn of(&self, chan: &str) -> Option<mpsc::Sender<ChanItem>> {
        if let Some(tx) = self.exact.get(chan) {
            return Some(tx.clone());
        }
        let mut under = self.prefixed.iter();
        under
            .find(|(prefix, _)| chan.starts_with(prefix.as_str()))
            .map(|(_, tx)| tx.clone())
    }
}

type Handlers = Arc<RwLock<Routes>>;

/// The cluster's pub/sub on a reconnecting Redis connection: pushed
/// messages are never dropped, and publishes are skipped while degraded.
#[derive(Clone)]
pub struct ResilientDriver {
    /// Swapped for one to the new master after a failover ([`ResilientDriver::switch`]).
    conn: Arc<RwLock<ConnectionManager>>,
    handlers: Handlers,
    /// Every channel subscribed, to subscribe again on a new master.
    channels: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    healthy: Arc<AtomicBool>,
    /// Publishes skipped while degraded.
    pub skipped: Arc<AtomicU64>,
}

/// A Redis error of the pub/sub.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct DriverError(#[from] redis::RedisError);

impl ResilientDriver {
    /// Connects (failing fast when Redis is not there) and starts routing
    /// pushed messages to their subscribers.
    pub async fn connect(
        client: redis::Client,
        healthy: Arc<AtomicBool>,
    ) -> redis::RedisResult<Self> {
        let handlers: Handlers = Arc::default();
        let conn = manager(client, &handlers).await?;
        Ok(Self {
            conn: Arc::new(RwLock::new(conn)),
            handlers,
            channels: Arc::default(),
            healthy,
            skipped: Arc::default(),
        })
    }

    /// Moves to the Redis of `client` (a new master): commands go there
    /// from now on, and every channel is subscribed there again.
    pub async fn switch(&self, client: redis::Client) -> redis::RedisResult<()> {
        let conn = manager(client, &self.handlers).await?;
        *self.conn.write().expect("connection lock") = conn;
        let channels: Vec<String> = self.channels().iter().cloned().collect();
        for chunk in channels.chunks(1000) {
            self.connection().subscribe(chunk).await?;
        }
        Ok(())
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A reconnecting connection to `client`'s Redis whose pushed messages go
/// to `handlers`.
async fn manager(
    client: redis::Client,
    handlers: &Handlers,
) -> redis::RedisResult<ConnectionManager> {
    let (push_tx, push_rx) = mpsc::unbounded_channel();
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_push_sender(push_tx)
        .set_automatic_resubscription()
        .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
        .set_response_timeout(Some(std::time::Duration::from_secs(2)));
    let conn = ConnectionManager::new_with_config(client, config).await?;
    tokio::spawn(route(push_rx, handlers.clone()));
    Ok(conn)
}

impl ResilientDriver {
    /// Whether Redis answered the last heartbeat.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The underlying connection, for plain commands.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.read().expect("connection lock").clone()
    }
}

/// Hands each pushed message to its channel's subscriber, waiting when the
/// subscriber is slow rather than dropping the message.
async fn route(mut pushes: mpsc::UnboundedReceiver<PushInfo>, handlers: Handlers) {
    while let Some(push) = pushes.recv().await {
        let Some((chan, msg)) = message_of(push) else {
            continue;
        };
        let tx = handlers.read().expect("handlers lock").of(&chan);
        if let Some(tx) = tx {
            let _ = tx.send((chan, msg)).await;
        }
    }
}

fn message_of(push: PushInfo) -> Option<(String, Vec<u8>)> {
    if !matches!(push.kind, PushKind::Message | PushKind::SMessage) {
        return None;
    }
    let mut data = push.data.into_iter();
    let chan = match data.next()? {
        Value::BulkString(b) => String::from_utf8(b).ok()?,
        Value::SimpleString(s) => s,
        _ => return None,
    };
    match data.next()? {
        Value::BulkString(b) => Some((chan, b)),
        _ => None,
    }
}

impl ResilientDriver {
    /// Publishes `val` on `chan` (skipped, and counted, while degraded).
    pub async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), DriverError> {
        if !self.healthy.load(Ordering::Relaxed) {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        if let Err(e) = self.connection().publish::<_, _, Value>(chan, val).await {
            // Other nodes miss this one; local delivery must still happen.
            tracing::warn!(error = %e, "publish to the cluster failed");
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The messages of `chan`, as they arrive (`size` wait at most).
    pub async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<mpsc::Receiver<ChanItem>, DriverError> {
        let (tx, rx) = mpsc::channel(size.max(1));
        self.handlers
            .write()
            .expect("handlers lock")
            .exact
            .insert(chan.clone(), tx);
        self.channels().insert(chan.clone());
        self.connection().subscribe(chan).await?;
        Ok(rx)
    }

    /// The messages of every channel whose name starts with `prefix`, as
    /// they arrive (`size` wait at most); subscribing to them is left to
    /// [`ResilientDriver::subscribe_rooms`].
    pub fn route_prefix(&self, prefix: &str, size: usize) -> mpsc::Receiver<ChanItem> {
        let (tx, rx) = mpsc::channel(size.max(1));
        let mut routes = self.handlers.write().expect("handlers lock");
        routes.prefixed.push((prefix.to_owned(), tx));
        rx
    }

    /// Subscribes to `channels` in one command (kept across reconnects).
    pub async fn subscribe_rooms(&self, channels: Vec<String>) -> Result<(), DriverError> {
        self.channels().extend(channels.iter().cloned());
        Ok(self.connection().subscribe(channels).await?)
    }

    /// Unsubscribes from `channels` in one command.
    pub async fn unsubscribe(&self, channels: Vec<String>) -> Result<(), DriverError> {
        {
            let mut known = self.channels();
            for chan in &channels {
                known.remove(chan);
            }
        }
        Ok(self.connection().unsubscribe(channels).await?)
    }

    /// Publishes each body on each of its channels, in order and in one
    /// round trip (skipped, and counted, while degraded).
    pub async fn publish_batch(&self, batch: &[(Vec<String>, Vec<u8>)]) -> Result<(), DriverError> {
        if !self.healthy.load(Ordering::Relaxed) {
            self.skipped
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (channels, val) in batch {
            for chan in channels {
                pipe.publish(chan, val).ignore();
            }
        }
        if let Err(e) = pipe.query_async::<()>(&mut self.connection()).await {
            tracing::warn!(error = %e, "publish to the cluster failed");
            self.skipped
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}
