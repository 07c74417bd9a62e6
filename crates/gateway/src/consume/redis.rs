//! A Redis stream as a queue. The consumer group `sockgate` (created at
//! the stream's start if missing, so nothing queued before sockgate first
//! ran is skipped) shares the stream among the nodes, each a consumer
//! named by its node id. A message's field `payload` holds the JSON. An
//! entry is acknowledged (`XACK`) once it is published; the entries a dead
//! node held are claimed (`XAUTOCLAIM`) once idle for `claim_idle`
//! seconds. sockgate never deletes entries: trim the stream from the
//! producer (`XADD … MAXLEN ~ 100000`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{AsyncConnectionConfig, Value};
use sockgate_core::BoxFuture;
use tokio::sync::watch;

use crate::config::consumers::RedisSettings;

use super::{Backoff, Consumer, Outage, Sink};

/// The consumer group every node reads in.
pub const GROUP: &str = "sockgate";
/// The field of an entry that holds the message.
pub const FIELD: &str = "payload";
/// Entries read at once.
const BATCH: usize = 100;
/// How long one read waits for new entries: also how soon a stop is seen.
const BLOCK: Duration = Duration::from_secs(1);
/// How often the queue's lag is read for the figures.
const LAG_EVERY: Duration = Duration::from_secs(2);

/// Reads one stream in the group [`GROUP`].
pub struct RedisConsumer {
    settings: RedisSettings,
    /// This node's name in the group.
    me: String,
}

impl RedisConsumer {
    /// The consumer of `settings`, named `node` in the group.
    pub fn new(settings: RedisSettings, node: &str) -> Self {
        Self {
            settings,
            me: node.to_owned(),
        }
    }

    /// A connection with the group in place.
    async fn connect(&self) -> redis::RedisResult<MultiplexedConnection> {
        let client = redis::Client::open(self.settings.url.as_str())?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(BLOCK + Duration::from_secs(5)));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.settings.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(conn),
            other => other.map(|()| conn),
        }
    }
}

/// Why a round stopped early.
enum Stop {
    /// The broker failed: reconnect after a backoff.
    Broker(redis::RedisError),
    /// The node cannot take a message now: read this node's pending
    /// entries again after a backoff.
    Later,
}

impl From<redis::RedisError> for Stop {
    fn from(e: redis::RedisError) -> Self {
        Stop::Broker(e)
    }
}

/// What one run keeps between rounds.
struct Reader {
    conn: MultiplexedConnection,
    /// This node's own unacknowledged entries come first: after a message
    /// left for later, and after a claim.
    own_first: bool,
    next_claim: Instant,
    claim_cursor: String,
    next_lag: Instant,
}

impl Consumer for RedisConsumer {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn run(self: Arc<Self>, sink: Sink, mut stop: watch::Receiver<bool>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let mut backoff = Backoff::default();
            let mut reader: Option<Reader> = None;
            let mut outage = Outage::new("the stream", &self.settings.url);
            while !*stop.borrow() {
                let r = match reader.as_mut() {
                    Some(r) => r,
                    None => match self.connect().await {
                        Ok(conn) => reader.insert(Reader {
                            conn,
                            own_first: true,
                            next_claim: Instant::now(),
                            claim_cursor: "0-0".into(),
                            next_lag: Instant::now(),
                        }),
                        Err(e) => {
                            outage.failed(&sink, &e);
                            backoff.wait(&mut stop).await;
                            continue;
                        }
                    },
                };
                outage.running(&sink);
                match self.round(r, &sink).await {
                    Ok(()) => backoff.reset(),
                    Err(Stop::Later) => {
                        r.own_first = true;
                        backoff.wait(&mut stop).await;
                    }
                    Err(Stop::Broker(e)) => {
                        reader = None;
                        outage.failed(&sink, &e);
                        backoff.wait(&mut stop).await;
                    }
                }
            }
            sink.gauge().set_state("stopped");
        })
    }
}

impl RedisConsumer {
    /// One read and the handling of what it brought.
    async fn round(&self, r: &mut Reader, sink: &Sink) -> Result<(), Stop> {
        let now = Instant::now();
        if now >= r.next_lag {
            r.next_lag = now + LAG_EVERY;
            sink.gauge().set_lag(self.lag(&mut r.conn).await?);
        }
        if now >= r.next_claim {
            r.next_claim = now + self.claim_every();
            if self.claim(r).await? {
                r.own_first = true;
            }
        }
        let from = if r.own_first { "0" } else { ">" };
        let entries = self.read(&mut r.conn, from).await?;
        if r.own_first && entries.is_empty() {
            r.own_first = false;
        }
        // Acknowledged together once the batch is done: one round trip per
        // batch, not per entry. A crash before it redelivers the batch, as
        // at-least-once allows (keyed publishes stay once to clients).
        let mut done = Vec::with_capacity(entries.len());
        let mut later = false;
        for entry in &entries {
            let outcome = match payload(entry) {
                Ok(body) => sink.take(&entry.id, body).await,
                Err(reason) => sink.take_refused(&entry.id, reason),
            };
            if !outcome.is_final() {
                later = true;
                break;
            }
            done.push(entry.id.as_str());
        }
        if !done.is_empty() {
            let _: i64 = redis::cmd("XACK")
                .arg(&self.settings.stream)
                .arg(GROUP)
                .arg(&done)
                .query_async(&mut r.conn)
                .await?;
        }
        if later {
            return Err(Stop::Later);
        }
        Ok(())
    }

    /// This node's entries from `from`: `0` for its own pending ones, `>`
    /// for new ones (waiting up to [`BLOCK`]).
    async fn read(
        &self,
        conn: &mut MultiplexedConnection,
        from: &str,
    ) -> redis::RedisResult<Vec<StreamId>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(&self.me)
            .arg("COUNT")
            .arg(BATCH);
        if from == ">" {
            cmd.arg("BLOCK").arg(BLOCK.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&self.settings.stream).arg(from);
        let reply: Option<StreamReadReply> = cmd.query_async(conn).await?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .collect())
    }

    /// Claims the entries other nodes left idle past `claim_idle`; true if
    /// it took any.
    async fn claim(&self, r: &mut Reader) -> redis::RedisResult<bool> {
        let idle_ms = self.settings.claim_idle.saturating_mul(1000);
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.settings.stream)
            .arg(GROUP)
            .arg(&self.me)
            .arg(idle_ms)
            .arg(&r.claim_cursor)
            .arg("COUNT")
            .arg(BATCH)
            .arg("JUSTID")
            .query_async(&mut r.conn)
            .await?;
        r.claim_cursor = reply.next_stream_id;
        if !reply.claimed.is_empty() {
            tracing::info!(
                target: "sockgate::consume",
                consumer = %self.settings.stream,
                claimed = reply.claimed.len(),
                "claimed entries another node left unacknowledged"
            );
        }
        Ok(!reply.claimed.is_empty())
    }

    fn claim_every(&self) -> Duration {
        Duration::from_millis((self.settings.claim_idle * 500).clamp(500, 10_000))
    }

    /// Entries not yet delivered to the group, and delivered but not yet
    /// acknowledged.
    async fn lag(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<Option<u64>> {
        let groups: Vec<Vec<Value>> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&self.settings.stream)
            .query_async(conn)
            .await?;
        for group in groups {
            let field = |name: &str| {
                group
                    .chunks(2)
                    .find(|kv| matches!(&kv[0], Value::BulkString(b) if b == name.as_bytes()))
                    .and_then(|kv| kv.get(1))
                    .cloned()
            };
            let named =
                matches!(field("name"), Some(Value::BulkString(b)) if b == GROUP.as_bytes());
            if !named {
                continue;
            }
            let number = |v: Option<Value>| match v {
                Some(Value::Int(n)) => u64::try_from(n).ok(),
                _ => None,
            };
            let pending = number(field("pending")).unwrap_or(0);
            return Ok(number(field("lag")).map(|lag| lag + pending));
        }
        Ok(None)
    }
}

/// The entry's `payload` field.
fn payload(entry: &StreamId) -> Result<&[u8], String> {
    match entry.map.get(FIELD) {
        Some(Value::BulkString(bytes)) => Ok(bytes),
        Some(_) => Err(format!("the field `{FIELD}` is not a string")),
        None if entry.map.is_empty() => Err("the entry was deleted from the stream".into()),
        None => Err(format!("the entry has no field `{FIELD}`")),
    }
}
