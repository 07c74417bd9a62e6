//! Room messages between nodes: a broadcast goes out on the channel of
//! each of its rooms (`sockgate:room:{key}`), which only the nodes with a
//! socket in the room listen on ([`Listening`]); each delivers it to its
//! own sockets there.
//!
//! A channel carries two kinds of body, told apart by their first byte:
//! - `P{node} {sealed envelope}`: a plain broadcast; its node delivered it
//!   to its own sockets already, and skips it unopened.
//! - `L{offset} {sealed message}`: a logged one (recovery on), published
//!   by the history's append script with its offset; every node delivers
//!   it from the channel, its own node included (see `cluster::history`).
//!
//! A broadcast to several rooms arrives once per room a node listens on;
//! the copy of the i-th room reaches the sockets in it that are in none of
//! the rooms before it (`Rooms::emit_share`), so each socket gets it once.

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};

use redis::Script;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use sockgate_core::BoxFuture;
use sockgate_core::backend::Unavailable;
use sockgate_core::recovery::Message;

use super::listen::{self, Listening};
use super::{BEAT_TIMEOUT, Cluster, RedisHistory};
use crate::gateway::{Emitter, Fanout};

/// The first byte of a plain broadcast's body.
const PLAIN: u8 = b'P';
/// The first byte of a logged broadcast's body.
pub(crate) const LOGGED: u8 = b'L';

/// One room message on the channel.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// The node it came from (which delivered it itself).
    node: String,
    rooms: Vec<String>,
    /// The connection that does not get it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    except: Option<String>,
    event: String,
    data: serde_json::Value,
}

/// Prefix of the idempotency keys' Redis keys.
const KEYS: &str = "sockgate:idempotency:";

/// Records a key and publishes, in one step. KEYS: the key; ARGV: the
/// window (ms), the message, then its channels. 1 when published, 0 for
/// a duplicate.
const SEND_ONCE: &str = r#"
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
for i = 3, #ARGV do redis.call('PUBLISH', ARGV[i], ARGV[2]) end
return 1
"#;

static SEND_ONCE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SEND_ONCE));

/// The Redis key that records idempotency key `key`.
pub(crate) fn idempotency_key(key: &str) -> String {
    format!("{KEYS}{key}")
}

/// The cluster as the gateway's [`Fanout`].
pub struct RoomBus {
    cluster: Arc<Cluster>,
    /// The cluster's history, when recovery is on.
    history: Option<Arc<RedisHistory>>,
    /// The rooms this node listens on.
    listening: Arc<Listening>,
    /// Plain messages on their way to Redis, in the order they were sent.
    outbox: mpsc::Sender<Outbound>,
}

/// A plain message for Redis: its channels and its body.
type Outbound = (Vec<String>, Vec<u8>);

/// Most plain messages waiting for Redis; past it a message reaches this
/// node's sockets only (counted, as while Redis is away).
const OUTBOX: usize = 65_536;
/// Most messages in one round trip to Redis.
const PIPELINE: usize = 256;

/// Publishes the plain messages of `outbox` in order: one task, so that
/// two messages sent one after the other reach the other nodes in that
/// order (a task per message let them race: 8 then 7 was seen), and a
/// burst goes out as one pipeline.
async fn publish_in_order(cluster: Arc<Cluster>, mut outbox: mpsc::Receiver<Outbound>) {
    let mut batch = Vec::with_capacity(PIPELINE);
    while outbox.recv_many(&mut batch, PIPELINE).await > 0 {
        if let Err(e) = cluster.driver.publish_batch(&batch).await {
            tracing::warn!(error = %e, "room messages did not reach the other nodes");
        }
        batch.clear();
    }
}

impl RoomBus {
    /// Room messages through `cluster`, logged in `history` when recovery
    /// is on, heard in the rooms of `listening`.
    pub fn new(
        cluster: Arc<Cluster>,
        history: Option<Arc<RedisHistory>>,
        listening: Arc<Listening>,
    ) -> Self {
        let (outbox, rx) = mpsc::channel(OUTBOX);
        tokio::spawn(publish_in_order(cluster.clone(), rx));
        Self {
            cluster,
            history,
            listening,
            outbox,
        }
    }
}

impl RoomBus {
    /// `event` to `rooms` as this node seals it for the channel.
    fn seal(
        &self,
        rooms: &[String],
        except: Option<&str>,
        event: &str,
        data: &serde_json::Value,
    ) -> Vec<u8> {
        let envelope = Envelope {
            node: self.cluster.node.clone(),
            rooms: rooms.to_vec(),
            except: except.map(str::to_owned),
            event: event.to_owned(),
            data: data.clone(),
        };
        let json = serde_json::to_vec(&envelope).expect("room messages serialize");
        let mut body = vec![PLAIN];
        body.extend_from_slice(self.cluster.node.as_bytes());
        body.push(b' ');
        body.extend(self.cluster.seal.seal(&json));
        body
    }
}

fn channels(rooms: &[String]) -> Vec<String> {
    rooms.iter().map(|room| listen::channel(room)).collect()
}

impl Fanout for RoomBus {
    /// Queued for the task that publishes: local delivery never waits on
    /// Redis (and while Redis is away the driver skips it, counted).
    fn send(&self, rooms: &[String], except: Option<&str>, event: &str, data: &serde_json::Value) {
        let body = self.seal(rooms, except, event, data);
        if self.outbox.try_send((channels(rooms), body)).is_err() {
            self.cluster.driver.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "room messages wait for Redis past the bound: this one reached this node only"
            );
        }
    }

    /// Waits for Redis: the key decides whether this node delivers too.
    fn send_once(
        &self,
        key: String,
        window_ms: u64,
        rooms: &[String],
        except: Option<&str>,
        event: &str,
        data: &serde_json::Value,
    ) -> BoxFuture<'static, Result<bool, Unavailable>> {
        let body = self.seal(rooms, except, event, data);
        let cluster = self.cluster.clone();
        let channels = channels(rooms);
        Box::pin(async move {
            if !cluster.is_healthy() {
                return Err(Unavailable("Redis is away".into()));
            }
            let mut invocation = SEND_ONCE_SCRIPT.prepare_invoke();
            invocation
                .key(idempotency_key(&key))
                .arg(window_ms.max(1))
                .arg(body)
                .arg(channels);
            let mut conn = cluster.conn();
            let sent = invocation.invoke_async::<i64>(&mut conn);
            match tokio::time::timeout(BEAT_TIMEOUT, sent).await {
                Ok(Ok(n)) => Ok(n == 1),
                Ok(Err(e)) => Err(Unavailable(format!("Redis: {e}"))),
                Err(_) => Err(Unavailable("Redis did not answer in time".into())),
            }
        })
    }

    fn send_logged(
        &self,
        message: Message,
        once: Option<(String, u64)>,
        fallback: Box<dyn FnOnce() + Send>,
    ) -> BoxFuture<'static, Result<bool, Unavailable>> {
        match &self.history {
            Some(history) => Box::pin(history.clone().append(message, once, fallback)),
            None => Box::pin(async move {
                fallback();
                Ok(true)
            }),
        }
    }

    fn listening(&self, rooms: &[String]) -> BoxFuture<'static, ()> {
        if !self.cluster.is_healthy() {
            return Box::pin(std::future::ready(()));
        }
        let (listening, rooms) = (self.listening.clone(), rooms.to_vec());
        Box::pin(async move { listening.ready(&rooms).await })
    }
}

/// Delivers the room messages of the channels this node listens on to
/// its sockets, until the driver closes.
pub async fn follow_rooms(emitter: Arc<Emitter>, cluster: Arc<Cluster>) {
    let mut stream = cluster.driver.route_prefix(listen::ROOM_CHANNEL, 4096);
    while let Some((chan, body)) = stream.recv().await {
        let Some(room) = listen::room_of(&chan) else {
            continue;
        };
        match body.split_first() {
            Some((&PLAIN, sealed)) => deliver_plain(&emitter, &cluster, room, sealed),
            Some((&LOGGED, logged)) => {
                super::history::deliver_logged(&emitter, &cluster, room, logged)
            }
            _ => tracing::warn!("ignoring a room message of an unknown kind"),
        }
    }
}

fn deliver_plain(emitter: &Emitter, cluster: &Cluster, room: &str, body: &[u8]) {
    let at = body.iter().position(|b| *b == b' ').unwrap_or(0);
    let (node, sealed) = body.split_at(at);
    if node == cluster.node.as_bytes() {
        return;
    }
    let Some(json) = cluster.seal.open(sealed.get(1..).unwrap_or_default()) else {
        tracing::warn!("ignoring a room message without a valid seal");
        return;
    };
    match serde_json::from_slice::<Envelope>(json) {
        Ok(m) if m.node != cluster.node => {
            let Some(at) = m.rooms.iter().position(|r| r == room) else {
                return;
            };
            emitter.deliver_share(&m.rooms, at, m.except.as_deref(), &m.event, m.data, None);
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "ignoring a malformed room message"),
    }
}
