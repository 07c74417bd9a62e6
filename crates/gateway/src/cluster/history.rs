//! Recovery in a cluster: the room messages of the window in one Redis
//! stream, parked sessions in one hash per user, so that a session parked
//! by one node recovers on any.
//!
//! - `sockgate:history`: a stream of sealed room messages, at most the
//!   configured length (trimmed approximately, by whole stream nodes),
//!   expiring two windows after the last append. A stream id is a
//!   message's offset.
//! - `sockgate:rooms:logged`: the channel the messages go out on, each
//!   as `{id} {sealed}`. One script appends and publishes, so that the
//!   channel's order is the stream's: every node, this one included,
//!   delivers from the channel, and every client sees offsets in order.
//! - `sockgate:parked:{user}`: the user's parked sessions, by session id,
//!   as JSON; the hash expires a window after the last park. Taken with
//!   a script that reads and deletes at once: a session recovers once.

use std::sync::{Arc, Mutex};

use redis::{Script, Value};
use sockgate_core::backend::{BoxFuture, History, Unavailable};
use sockgate_core::recovery::{self, Entry, Message, Missed, Offset, Parked, Settings, Wanted};

use super::{BEAT_TIMEOUT, Cluster};
use crate::gateway::Emitter;

const STREAM: &str = "sockgate:history";
const LOGGED: &str = "sockgate:rooms:logged";

const APPEND: &str = r#"
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'm', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', KEYS[2], id .. ' ' .. ARGV[2])
return id
"#;

const TAKE: &str = r#"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then redis.call('HDEL', KEYS[1], ARGV[1]) end
return v
"#;

/// The cluster's history.
pub struct RedisHistory {
    cluster: Arc<Cluster>,
    settings: Settings,
    /// The rooms of messages delivered here without being logged (Redis
    /// away), marked in the history once it is back.
    holes: Mutex<Vec<String>>,
}

impl RedisHistory {
    /// The history of `cluster`, kept as `settings` say.
    pub fn new(cluster: Arc<Cluster>, settings: Settings) -> Self {
        Self {
            cluster,
            settings,
            holes: Mutex::default(),
        }
    }

    /// Marks in the history the rooms whose messages went out unlogged
    /// while Redis was away: a session that was parked before then would
    /// recover with a gap, so it starts fresh. Call it once Redis is back.
    pub async fn mark_holes(self: Arc<Self>) {
        let rooms = std::mem::take(&mut *self.holes.lock().expect("holes lock"));
        if rooms.is_empty() {
            return;
        }
        let mark = Message {
            rooms,
            except: None,
            event: String::new(),
            data: serde_json::value::to_raw_value(&()).expect("null serializes"),
            gap: true,
        };
        let this = self.clone();
        let again = mark.rooms.clone();
        let retry = Box::new(move || this.holes.lock().expect("holes lock").extend(again));
        self.append(mark, retry).await;
    }

    fn window_ms(&self) -> u64 {
        self.settings.window.as_millis() as u64
    }

    /// Appends `message` and sends it to every node; `fallback` runs
    /// (delivery here, without an offset) when Redis cannot take it.
    pub async fn append(self: Arc<Self>, message: Message, fallback: Box<dyn FnOnce() + Send>) {
        let json = serde_json::to_vec(&message).expect("messages serialize");
        let sealed = self.cluster.seal.seal(&json);
        let this = self;
        {
            if this.cluster.is_healthy() {
                let script = Script::new(APPEND);
                let mut invocation = script.prepare_invoke();
                invocation
                    .key(STREAM)
                    .key(LOGGED)
                    .arg(this.settings.history)
                    .arg(sealed)
                    .arg(2 * this.window_ms());
                let mut conn = this.cluster.conn();
                let append = invocation.invoke_async::<String>(&mut conn);
                match tokio::time::timeout(BEAT_TIMEOUT, append).await {
                    Ok(Ok(_)) => return,
                    Ok(Err(e)) => tracing::warn!(error = %e, "a room message was not logged"),
                    Err(_) => tracing::warn!("a room message was not logged in time"),
                }
            }
            let mut holes = this.holes.lock().expect("holes lock");
            for room in message.rooms {
                if !holes.contains(&room) {
                    holes.push(room);
                }
            }
            drop(holes);
            fallback();
        }
    }

    fn parked_key(&self, user: &str) -> String {
        self.cluster.key(&["parked", user])
    }

    /// The entries after `after`, and the newest id the stream dropped,
    /// read after them: a trim racing the read can only make it look like
    /// a gap, never hide one.
    async fn read_since(&self, after: Offset) -> redis::RedisResult<(Offset, Vec<Entry>)> {
        let mut conn = self.cluster.conn();
        let range: Value = redis::cmd("XRANGE")
            .arg(STREAM)
            .arg(format!("({after}"))
            .arg("+")
            .arg("COUNT")
            .arg(self.settings.history + 1)
            .query_async(&mut conn)
            .await?;
        // No stream (nothing logged for two windows) has dropped nothing.
        let info: Value = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(STREAM)
            .query_async(&mut conn)
            .await
            .unwrap_or(Value::Nil);
        let window = std::time::Duration::from_millis(2 * self.window_ms());
        let entries = entries(&range)
            .filter_map(|(offset, sealed)| {
                let json = self.cluster.seal.open_within(sealed, window)?;
                let message = serde_json::from_slice(json).ok()?;
                Some(Entry { offset, message })
            })
            .collect();
        Ok((max_deleted(&info), entries))
    }
}

impl History for RedisHistory {
    fn since<'a>(
        &'a self,
        after: Offset,
        wanted: &'a Wanted<'a>,
    ) -> BoxFuture<'a, Result<Missed, Unavailable>> {
        Box::pin(async move {
            let (deleted, entries) = self.read_since(after).await.map_err(unavailable)?;
            if after < deleted {
                return Ok(Missed::Gap);
            }
            Ok(recovery::select(entries.iter(), wanted))
        })
    }

    fn park<'a>(&'a self, parked: &'a Parked) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let key = self.parked_key(&parked.user_id);
            let json = serde_json::to_string(parked).expect("parked sessions serialize");
            let result: redis::RedisResult<()> = redis::pipe()
                .hset(&key, &parked.session, json)
                .ignore()
                .pexpire(&key, self.window_ms() as i64)
                .ignore()
                .query_async(&mut self.cluster.conn())
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "a dropped session could not be parked in Redis");
            }
        })
    }

    fn unpark<'a>(
        &'a self,
        user: &'a str,
        session: &'a str,
    ) -> BoxFuture<'a, Result<Option<Parked>, Unavailable>> {
        Box::pin(async move {
            let json: Option<String> = Script::new(TAKE)
                .key(self.parked_key(user))
                .arg(session)
                .invoke_async(&mut self.cluster.conn())
                .await
                .map_err(unavailable)?;
            let parked = json.and_then(|j| serde_json::from_str::<Parked>(&j).ok());
            Ok(parked.filter(|p| p.user_id == user && p.session == session))
        })
    }

    fn forget_user<'a>(&'a self, user: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let deleted: redis::RedisResult<()> = redis::cmd("DEL")
                .arg(self.parked_key(user))
                .query_async(&mut self.cluster.conn())
                .await;
            if let Err(e) = deleted {
                tracing::warn!(error = %e, "a kicked user's parked sessions stay in Redis");
            }
        })
    }
}

fn unavailable(e: redis::RedisError) -> Unavailable {
    tracing::warn!(error = %e, "the recovery history is unavailable");
    Unavailable(e.to_string())
}

/// The newest id the stream dropped (`XINFO STREAM`'s
/// `max-deleted-entry-id`, Redis 7); `0-0` when it has none or is gone.
fn max_deleted(info: &Value) -> Offset {
    let Value::Array(fields) = info else {
        return Offset::default();
    };
    fields
        .chunks(2)
        .find(|kv| matches!(&kv[0], Value::BulkString(k) if k == b"max-deleted-entry-id"))
        .and_then(|kv| kv.get(1))
        .and_then(text)
        .and_then(|t| t.parse().ok())
        .unwrap_or_default()
}

/// The `(id, m)` pairs of an `XRANGE` answer.
fn entries(range: &Value) -> impl Iterator<Item = (Offset, &[u8])> {
    let items = match range {
        Value::Array(items) => items.as_slice(),
        _ => &[],
    };
    items.iter().filter_map(|item| {
        let Value::Array(pair) = item else {
            return None;
        };
        let id = text(pair.first()?)?.parse().ok()?;
        let Value::Array(fields) = pair.get(1)? else {
            return None;
        };
        match fields.as_slice() {
            [Value::BulkString(k), Value::BulkString(v)] if k == b"m" => Some((id, v.as_slice())),
            _ => None,
        }
    })
}

fn text(value: &Value) -> Option<&str> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// Delivers the cluster's logged room messages here, with their offsets,
/// until the channel closes.
pub async fn follow_logged(emitter: Arc<Emitter>, cluster: Arc<Cluster>) {
    let mut stream = match cluster.driver.subscribe(LOGGED.to_owned(), 4096).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::error!(error = %e, "cannot subscribe to the logged room channel");
            return;
        }
    };
    while let Some((_, body)) = stream.recv().await {
        let Some((offset, message)) = open_logged(&cluster, &body) else {
            tracing::warn!("ignoring a logged room message without a valid seal");
            continue;
        };
        if message.gap {
            continue;
        }
        let data = serde_json::from_str(message.data.get()).unwrap_or_default();
        let except = message.except.as_deref();
        emitter.deliver_at(&message.rooms, except, &message.event, data, Some(offset));
    }
}

fn open_logged(cluster: &Cluster, body: &[u8]) -> Option<(Offset, Message)> {
    let at = body.iter().position(|b| *b == b' ')?;
    let offset = std::str::from_utf8(&body[..at]).ok()?.parse().ok()?;
    let json = cluster.seal.open(&body[at + 1..])?;
    Some((offset, serde_json::from_slice(json).ok()?))
}
