//! Room messages between nodes: a broadcast here goes out on one sealed
//! channel, and every other node delivers it to its own sockets.

use std::sync::{Arc, LazyLock};

use redis::Script;
use serde::{Deserialize, Serialize};

use sockgate_core::BoxFuture;
use sockgate_core::backend::Unavailable;
use sockgate_core::recovery::Message;

use super::{BEAT_TIMEOUT, Cluster, RedisHistory};
use crate::gateway::{Emitter, Fanout};

const ROOMS: &str = "sockgate:rooms";

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

/// Records a key and publishes, in one step. KEYS: the key, the channel;
/// ARGV: the window (ms), the message. 1 when published, 0 for a
/// duplicate.
const SEND_ONCE: &str = r#"
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
redis.call('PUBLISH', KEYS[2], ARGV[2])
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
}

impl RoomBus {
    /// Room messages through `cluster`, logged in `history` when recovery
    /// is on.
    pub fn new(cluster: Arc<Cluster>, history: Option<Arc<RedisHistory>>) -> Self {
        Self { cluster, history }
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
        self.cluster
            .seal
            .seal(&serde_json::to_vec(&envelope).expect("room messages serialize"))
    }
}

impl Fanout for RoomBus {
    /// Sent from a task: local delivery never waits on Redis (and while
    /// Redis is away the driver skips it, counted).
    fn send(&self, rooms: &[String], except: Option<&str>, event: &str, data: &serde_json::Value) {
        let body = self.seal(rooms, except, event, data);
        let cluster = self.cluster.clone();
        tokio::spawn(async move {
            if let Err(e) = cluster.driver.publish(ROOMS.to_owned(), body).await {
                tracing::warn!(error = %e, "a room message did not reach the other nodes");
            }
        });
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
        Box::pin(async move {
            if !cluster.is_healthy() {
                return Err(Unavailable("Redis is away".into()));
            }
            let mut invocation = SEND_ONCE_SCRIPT.prepare_invoke();
            invocation
                .key(idempotency_key(&key))
                .key(ROOMS)
                .arg(window_ms.max(1))
                .arg(body);
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
}

/// Delivers the other nodes' room messages here, until the channel closes.
pub async fn follow_rooms(emitter: Arc<Emitter>, cluster: Arc<Cluster>) {
    let mut stream = match cluster.driver.subscribe(ROOMS.to_owned(), 4096).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::error!(error = %e, "cannot subscribe to the room channel");
            return;
        }
    };
    while let Some((_, body)) = stream.recv().await {
        let Some(json) = cluster.seal.open(&body) else {
            tracing::warn!("ignoring a room message without a valid seal");
            continue;
        };
        match serde_json::from_slice::<Envelope>(json) {
            Ok(m) if m.node != cluster.node => {
                emitter.deliver_at(&m.rooms, m.except.as_deref(), &m.event, m.data, None);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "ignoring a malformed room message"),
        }
    }
}
