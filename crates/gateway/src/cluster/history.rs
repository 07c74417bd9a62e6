//! Recovery in a cluster: the room messages of the window in one Redis
//! stream, parked sessions in one hash per user, so that a session parked
//! by one node recovers on any.
//!
//! - `sockgate:history`: a stream of sealed room messages, each with its
//!   rooms (`r`, as JSON) and its weight (`w`, the bytes it holds). A
//!   stream id is a message's offset. Kept within the window, the count
//!   and the bytes of the recovery settings, as the memory history is
//!   (see [`sockgate_core::recovery`]): scripts trim it on each append and
//!   on each node's timer, and past a bound push out the oldest message of
//!   the room set that holds the most.
//! - `sockgate:history:meta`: the weights' running total (`bytes`) and
//!   the newest id dropped by the window, in every room (`dropped`).
//! - `sockgate:history:dropped`: per room, the newest id a bound pushed
//!   out of that room's share.
//! - `sockgate:history:count`, `sockgate:history:bytes`: each room set's
//!   count and bytes, ranked; `sockgate:history:share:{rooms}`: a list of
//!   the ids of the room set's messages, oldest first.
//! - The messages go out on their rooms' channels (`cluster::rooms`), each
//!   as `L{id} {sealed}`, published by the script that appends them.
//!   Where the order comes from: Redis runs one script at a time, and
//!   writes what it publishes to each subscriber connection in the order
//!   it published it; a node listens on all its rooms on one connection.
//!   So every node, this one included, gets the messages of its rooms in
//!   the stream's order, whichever rooms they are in, and delivers from
//!   the channels: every client sees offsets in order. (A node that is
//!   not listening on a room yet gets nothing of it; the node waits for
//!   its subscription before a join is acked and before a recovery's
//!   second read, so that nothing falls between the history and the
//!   channel.)
//! - `sockgate:parked:{user}`: the user's parked sessions, by session id,
//!   as JSON; the hash expires a window after the last park. Taken with
//!   a script that reads and deletes at once: a session recovers once.
//!
//! The history's keys expire two windows after the last append.

use std::sync::{Arc, LazyLock, Mutex};

use redis::{Script, Value};
use sockgate_core::backend::{BoxFuture, History, Unavailable};
use sockgate_core::recovery::{
    self, Entry, Message, Missed, Offset, Parked, RoomHistory, Settings, Wanted,
};

use super::{BEAT_TIMEOUT, Cluster};
use crate::gateway::Emitter;

const STREAM: &str = "sockgate:history";
const META: &str = "sockgate:history:meta";
const MARKS: &str = "sockgate:history:dropped";
const COUNTS: &str = "sockgate:history:count";
const SIZES: &str = "sockgate:history:bytes";
/// Followed by a room set's JSON: the list of its messages' ids.
const SHARE: &str = "sockgate:history:share:";
/// The history's identity, drawn by the first node that reads it.
const EPOCH: &str = "sockgate:history:epoch";
/// How many entries the history API reads at once, newest first.
const ROOM_PAGE: usize = 256;

/// Most rooms the history remembers one by one as pushed out of their
/// share (as the memory history does).
const MAX_MARKS: usize = 4096;

/// What both history scripts share. KEYS: the stream, meta, marks, counts
/// and sizes; ARGV[1]: the share lists' prefix, ARGV[2]: the window (ms).
const PRELUDE: &str = r#"
local stream, meta, marks, counts, sizes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix, window = ARGV[1], tonumber(ARGV[2])

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)%-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

-- Whether id `a` comes after id `b` (after everything when `b` is false).
local function newer(a, b)
  if not b then return true end
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am > bm or (am == bm and as > bs)
end

local function field(kv, name)
  for i = 1, #kv, 2 do
    if kv[i] == name then return kv[i + 1] end
  end
  return nil
end

-- Deletes entry `id` (fields `kv`) and takes it off its room set's share.
local function forget(id, kv)
  local set = field(kv, 'r') or '[]'
  local weight = tonumber(field(kv, 'w')) or 0
  redis.call('XDEL', stream, id)
  redis.call('LREM', prefix .. set, 1, id)
  redis.call('HINCRBY', meta, 'bytes', -weight)
  if tonumber(redis.call('ZINCRBY', counts, -1, set)) <= 0 then
    redis.call('ZREM', counts, set)
    redis.call('ZREM', sizes, set)
  else
    redis.call('ZINCRBY', sizes, -weight, set)
  end
end

-- Drops what was appended before the window at `now`, in every room (at
-- most a batch: the next call takes the rest).
local function expire(now)
  for _ = 1, 1000 do
    local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
    if not first or parse(first[1]) >= now - window then break end
    forget(first[1], first[2])
    redis.call('HSET', meta, 'dropped', first[1])
  end
  -- An empty stream holds nothing: whatever the total drifted to.
  if redis.call('XLEN', stream) == 0 and (tonumber(redis.call('HGET', meta, 'bytes')) or 0) ~= 0 then
    redis.call('HSET', meta, 'bytes', 0)
  end
end

-- The room set that holds the most in `ranking`; among equals, the one
-- whose oldest message is oldest: the stream's first message's when it is
-- one of them (all equal: oldest first, as without shares), else the
-- oldest of the first few.
local function heaviest(ranking)
  local top = redis.call('ZREVRANGE', ranking, 0, 0, 'WITHSCORES')
  if not top[1] then return nil end
  local most = tonumber(top[2])
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
  local set = first and field(first[2], 'r')
  if set and tonumber(redis.call('ZSCORE', ranking, set)) == most then return set end
  local best, oldest = top[1], nil
  local tied = redis.call('ZREVRANGEBYSCORE', ranking, most, most, 'LIMIT', 0, 16)
  for _, candidate in ipairs(tied) do
    local head = redis.call('LINDEX', prefix .. candidate, 0)
    if head and (not oldest or newer(oldest, head)) then best, oldest = candidate, head end
  end
  return best
end

-- Pushes out the oldest message of room set `top`, and marks its rooms;
-- false when there is nothing to push.
local function push_out_of(top)
  local id = redis.call('LINDEX', prefix .. top, 0)
  if not id then
    redis.call('ZREM', counts, top)
    redis.call('ZREM', sizes, top)
    return true
  end
  local entry = redis.call('XRANGE', stream, id, id)[1]
  if not entry then
    redis.call('LPOP', prefix .. top)
    return true
  end
  forget(id, entry[2])
  for _, room in ipairs(cjson.decode(top)) do
    if newer(id, redis.call('HGET', marks, room)) then
      redis.call('HSET', marks, room, id)
    end
  end
  return true
end

-- Pushes out the oldest message of the room set that holds the most in
-- `ranking`; false when there is nothing to push.
local function push_out(ranking)
  local top = heaviest(ranking)
  if not top then return false end
  return push_out_of(top)
end
"#;

/// Appends a message, trims, and publishes it on its rooms' channels.
/// KEYS: the prelude's, then the idempotency key's record; ARGV: the
/// prelude's, then the most entries, the most bytes, the sealed message,
/// the keys' lifetime (ms), the message's rooms (JSON), its weight, the
/// idempotency window (ms; 0 without a key), the room set's own most
/// entries and longest age (ms; 0 for none), and the room channels'
/// prefix. Returns the entry's id, or '' for a duplicate: the key is
/// recorded in the same step.
const APPEND: &str = r#"
local max_entries, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
local sealed, ttl, set, weight = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local once = tonumber(ARGV[9])
local own_size, own_ttl = tonumber(ARGV[10]), tonumber(ARGV[11])
if once > 0 and not redis.call('SET', KEYS[6], '1', 'NX', 'PX', once) then return '' end
local id = redis.call('XADD', stream, '*', 'm', sealed, 'r', set, 'w', weight)
redis.call('RPUSH', prefix .. set, id)
redis.call('ZINCRBY', counts, 1, set)
redis.call('ZINCRBY', sizes, weight, set)
redis.call('HINCRBY', meta, 'bytes', weight)
expire(parse(id))
-- The room set's own bounds (`history_size`, `history_ttl`; 0: none).
local now = parse(id)
for _ = 1, 100000 do
  local head = redis.call('LINDEX', prefix .. set, 0)
  if not head then break end
  local over = own_size > 0 and redis.call('LLEN', prefix .. set) > own_size
  local old = own_ttl > 0 and parse(head) < now - own_ttl
  if not (over or old) or not push_out_of(set) then break end
end
for _ = 1, 100000 do
  if redis.call('XLEN', stream) <= max_entries or not push_out(counts) then break end
end
for _ = 1, 100000 do
  local bytes = tonumber(redis.call('HGET', meta, 'bytes')) or 0
  if bytes <= max_bytes or not push_out(sizes) then break end
end
for _, key in ipairs({stream, meta, marks, counts, sizes, prefix .. set}) do
  redis.call('PEXPIRE', key, ttl)
end
local body = 'L' .. id .. ' ' .. sealed
for _, room in ipairs(cjson.decode(set)) do
  redis.call('PUBLISH', ARGV[12] .. room, body)
end
return id
"#;

/// Drops what the window has passed (on Redis's clock), and forgets the
/// per-room marks that the mark for every room covers. ARGV: the
/// prelude's, then the most per-room marks.
const TRIM: &str = r#"
local time = redis.call('TIME')
expire(tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
local everywhere = redis.call('HGET', meta, 'dropped')
local all = redis.call('HGETALL', marks)
if #all / 2 > tonumber(ARGV[3]) then
  -- Too many rooms marked: the older half become one mark for every room.
  local ids = {}
  for i = 2, #all, 2 do ids[#ids + 1] = all[i] end
  table.sort(ids, function(a, b) return newer(b, a) end)
  local cut = ids[math.floor(#ids / 2) + 1]
  if newer(cut, everywhere) then
    everywhere = cut
    redis.call('HSET', meta, 'dropped', cut)
  end
end
if everywhere then
  for i = 1, #all, 2 do
    if not newer(all[i + 1], everywhere) then redis.call('HDEL', marks, all[i]) end
  end
end
if redis.call('PTTL', meta) == -1 then
  redis.call('PEXPIRE', meta, 2 * window)
end
return 0
"#;

static APPEND_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&[PRELUDE, APPEND].concat()));
static TRIM_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&[PRELUDE, TRIM].concat()));

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
            keep: Default::default(),
        };
        let this = self.clone();
        let again = mark.rooms.clone();
        let retry = Box::new(move || this.holes.lock().expect("holes lock").extend(again));
        let _ = self.append(mark, None, retry).await;
    }

    fn window_ms(&self) -> u64 {
        self.settings.window.as_millis() as u64
    }

    /// Appends `message` and sends it to every node; `fallback` runs
    /// (delivery here, without an offset) when Redis cannot take it. With
    /// `once` (a key and its window), only if the key was not recorded:
    /// false then; and Redis away is [`Unavailable`], never a fallback.
    pub async fn append(
        self: Arc<Self>,
        message: Message,
        once: Option<(String, u64)>,
        fallback: Box<dyn FnOnce() + Send>,
    ) -> Result<bool, Unavailable> {
        if self.cluster.is_healthy() {
            let append = self.invoke_append(&message, once.as_ref());
            match tokio::time::timeout(BEAT_TIMEOUT, append).await {
                Ok(Ok(id)) => return Ok(!id.is_empty()),
                Ok(Err(e)) => tracing::warn!(error = %e, "a room message was not logged"),
                Err(_) => tracing::warn!("a room message was not logged in time"),
            }
        }
        if once.is_some() {
            return Err(Unavailable("Redis cannot record the key now".into()));
        }
        let mut holes = self.holes.lock().expect("holes lock");
        for room in message.rooms {
            if !holes.contains(&room) {
                holes.push(room);
            }
        }
        drop(holes);
        fallback();
        Ok(true)
    }

    /// Runs the append script for `message`, weighed as Redis keeps it:
    /// the sealed message, its rooms once more, the bookkeeping.
    fn invoke_append(
        &self,
        message: &Message,
        once: Option<&(String, u64)>,
    ) -> impl Future<Output = redis::RedisResult<String>> {
        let json = serde_json::to_vec(message).expect("messages serialize");
        let sealed = self.cluster.seal.seal(&json);
        let set = serde_json::to_string(&message.rooms).expect("room names serialize");
        let weight = sealed.len() + set.len() + recovery::ENTRY_OVERHEAD;
        let (record, window) = match once {
            Some((key, window)) => (super::rooms::idempotency_key(key), (*window).max(1)),
            None => (super::rooms::idempotency_key(""), 0),
        };
        let mut invocation = APPEND_SCRIPT.prepare_invoke();
        self.prelude(&mut invocation);
        invocation
            .key(record)
            .arg(self.settings.history)
            .arg(self.settings.history_bytes)
            .arg(sealed)
            .arg(2 * self.window_ms())
            .arg(set)
            .arg(weight)
            .arg(window)
            .arg(message.keep.size.unwrap_or(0))
            .arg(message.keep.ttl_ms.unwrap_or(0))
            .arg(super::listen::ROOM_CHANNEL);
        let mut conn = self.cluster.conn();
        async move { invocation.invoke_async::<String>(&mut conn).await }
    }

    /// The keys and arguments both history scripts start with.
    fn prelude(&self, invocation: &mut redis::ScriptInvocation<'_>) {
        invocation
            .key(STREAM)
            .key(META)
            .key(MARKS)
            .key(COUNTS)
            .key(SIZES)
            .arg(SHARE)
            .arg(self.window_ms());
    }

    fn parked_key(&self, user: &str) -> String {
        self.cluster.key(&["parked", user])
    }

    /// The entries after `after`, then what the history dropped that
    /// `rooms` may have missed (the mark for every room, and theirs), read
    /// after them: a trim racing the read can only make it look like a
    /// gap, never hide one.
    async fn read_since(
        &self,
        after: Offset,
        rooms: &[String],
    ) -> redis::RedisResult<(Vec<Entry>, bool)> {
        let mut pipe = redis::pipe();
        pipe.cmd("XRANGE")
            .arg(STREAM)
            .arg(format!("({after}"))
            .arg("+")
            .arg("COUNT")
            .arg(self.settings.history + 1)
            .cmd("HGET")
            .arg(META)
            .arg("dropped")
            .cmd("HMGET")
            .arg(MARKS)
            .arg(rooms)
            // No room is named "": at least one field, even for no rooms.
            .arg("");
        let (range, everywhere, marks): (Value, Option<String>, Vec<Option<String>>) =
            pipe.query_async(&mut self.cluster.conn()).await?;
        // No meta (nothing logged for two windows) has dropped nothing.
        let everywhere = everywhere
            .and_then(|id| id.parse().ok())
            .unwrap_or_default();
        let marks = marks.into_iter().flatten().filter_map(|id| id.parse().ok());
        let dropped = recovery::missed_dropped(after, everywhere, marks);
        let window = std::time::Duration::from_millis(2 * self.window_ms());
        let entries = entries(&range)
            .filter_map(|(offset, sealed)| {
                let json = self.cluster.seal.open_within(sealed, window)?;
                let message = serde_json::from_slice(json).ok()?;
                Some(Entry { offset, message })
            })
            .collect();
        Ok((entries, dropped))
    }
}

impl RedisHistory {
    /// The newest `limit` messages of `room` after `after`, with the
    /// history's newest offset and its epoch. The stream is read newest
    /// first, a page at a time, until `limit` of the room's are found or
    /// `after` is reached: a busy room costs a page or two, not the whole
    /// window.
    async fn read_room(
        &self,
        room: &str,
        after: Offset,
        limit: usize,
    ) -> redis::RedisResult<RoomHistory> {
        let window = std::time::Duration::from_millis(2 * self.window_ms());
        let mut found: Vec<Entry> = Vec::new();
        let mut last = None;
        let mut end = "+".to_owned();
        loop {
            let page: Value = redis::cmd("XREVRANGE")
                .arg(STREAM)
                .arg(&end)
                .arg(format!("({after}"))
                .arg("COUNT")
                .arg(ROOM_PAGE)
                .query_async(&mut self.cluster.conn())
                .await?;
            let mut read = 0;
            for (offset, sealed) in entries(&page) {
                read += 1;
                last = last.or(Some(offset));
                end = format!("({offset}");
                let Some(json) = self.cluster.seal.open_within(sealed, window) else {
                    continue;
                };
                let Ok(message) = serde_json::from_slice::<Message>(json) else {
                    continue;
                };
                if message.rooms.iter().any(|r| r == room) && found.len() < limit {
                    found.push(Entry { offset, message });
                }
            }
            if read < ROOM_PAGE || found.len() >= limit {
                break;
            }
        }
        found.reverse();
        let drawn = format!("{:016x}", rand::random::<u64>());
        let (epoch, newest, everywhere, mark): (String, Value, Option<String>, Option<String>) =
            redis::pipe()
                .cmd("SET")
                .arg(EPOCH)
                .arg(drawn)
                .arg("NX")
                .ignore()
                .cmd("GET")
                .arg(EPOCH)
                .cmd("XREVRANGE")
                .arg(STREAM)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .cmd("HGET")
                .arg(META)
                .arg("dropped")
                .cmd("HGET")
                .arg(MARKS)
                .arg(room)
                .query_async(&mut self.cluster.conn())
                .await?;
        let everywhere = everywhere
            .and_then(|id| id.parse().ok())
            .unwrap_or_default();
        let mark = mark.and_then(|id| id.parse().ok());
        Ok(RoomHistory {
            messages: found,
            last: entries(&newest).next().map(|(offset, _)| offset).or(last),
            epoch,
            complete: !recovery::missed_dropped(after, everywhere, mark),
        })
    }
}

impl History for RedisHistory {
    fn room<'a>(
        &'a self,
        room: &'a str,
        after: Offset,
        limit: usize,
    ) -> BoxFuture<'a, Result<RoomHistory, Unavailable>> {
        Box::pin(async move {
            self.read_room(room, after, limit)
                .await
                .map_err(unavailable)
        })
    }

    fn since<'a>(
        &'a self,
        after: Offset,
        wanted: &'a Wanted<'a>,
    ) -> BoxFuture<'a, Result<Missed, Unavailable>> {
        Box::pin(async move {
            let read = self.read_since(after, wanted.rooms).await;
            let (entries, dropped) = read.map_err(unavailable)?;
            if dropped {
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

    /// Trims on Redis's clock (the stream ids'); each node does, so that
    /// the history is trimmed while any node runs. Parked sessions expire
    /// with their hash.
    fn trim(&self, _now_ms: u64) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if !self.cluster.is_healthy() {
                return;
            }
            let mut invocation = TRIM_SCRIPT.prepare_invoke();
            self.prelude(&mut invocation);
            invocation.arg(MAX_MARKS);
            let trimmed = invocation
                .invoke_async::<()>(&mut self.cluster.conn())
                .await;
            if let Err(e) = trimmed {
                tracing::debug!(error = %e, "the recovery history was not trimmed");
            }
        })
    }
}

fn unavailable(e: redis::RedisError) -> Unavailable {
    tracing::warn!(error = %e, "the recovery history is unavailable");
    Unavailable(e.to_string())
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
        let sealed = fields.chunks(2).find_map(|kv| match kv {
            [Value::BulkString(k), Value::BulkString(v)] if k == b"m" => Some(v.as_slice()),
            _ => None,
        })?;
        Some((id, sealed))
    })
}

fn text(value: &Value) -> Option<&str> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// Delivers a logged room message that came on the channel of `room`
/// (`{offset} {sealed}`) to this node's sockets there, with its offset.
pub(crate) fn deliver_logged(emitter: &Emitter, cluster: &Cluster, room: &str, body: &[u8]) {
    let Some((offset, message)) = open_logged(cluster, body) else {
        tracing::warn!("ignoring a logged room message without a valid seal");
        return;
    };
    if message.gap {
        return;
    }
    let Some(at) = message.rooms.iter().position(|r| r == room) else {
        return;
    };
    let data = serde_json::from_str(message.data.get()).unwrap_or_default();
    let except = message.except.as_deref();
    emitter.deliver_share(
        &message.rooms,
        at,
        except,
        &message.event,
        data,
        Some(offset),
    );
}

fn open_logged(cluster: &Cluster, body: &[u8]) -> Option<(Offset, Message)> {
    let at = body.iter().position(|b| *b == b' ')?;
    let offset = std::str::from_utf8(&body[..at]).ok()?.parse().ok()?;
    let json = cluster.seal.open(&body[at + 1..])?;
    Some((offset, serde_json::from_slice(json).ok()?))
}
