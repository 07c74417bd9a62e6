//! Cluster mode: many gateway nodes on one Redis behave as one.
//!
//! - Room broadcasts and `/api/publish` go out on the channel of each of
//!   their rooms (sealed like the announcements); a node listens on the
//!   channels of the rooms it has sockets in ([`Listening`]) and delivers
//!   to them ([`RoomBus`]).
//! - Revocations, kicks and evictions are announced on one control channel;
//!   every node applies them to its own sockets.
//! - Sessions and presence live in node-scoped Redis hashes
//!   (`sockgate:sessions:{node}`, `sockgate:presence:{node}:{room}`); a node
//!   is alive while its heartbeat key `sockgate:node:{node}` exists, so a
//!   crashed node's entries stop counting within seconds. The nodes are
//!   listed in the set `sockgate:nodes`: finding them costs a key each,
//!   never a scan of the keyspace.
//! - The per-user session limit is one atomic script over
//!   `sockgate:user:{id}`.
//!
//! When Redis goes away the node keeps serving its own sockets, marks
//! itself degraded (`/readyz` answers 503) and, when Redis is back, writes
//! its state again and exchanges revocations: see [`Cluster::heartbeat`].

mod backends;
mod census;
pub mod driver;
mod history;
mod listen;
mod lost;
mod rooms;
pub mod seal;
mod sync;
pub mod topology;
mod webhook_queue;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redis::aio::ConnectionManager;
use redis::io::tcp::TcpSettings;
use redis::{AsyncCommands, IntoConnectionInfo, Script};
use sockgate_core::backend::Admission;
use tokio::sync::mpsc;

pub use driver::ResilientDriver;
pub use history::RedisHistory;
pub use listen::Listening;
pub use lost::report_lost_nodes;
pub use rooms::{RoomBus, follow_rooms};
pub use seal::Seal;
use sockgate_core::backend::Control;
use sockgate_core::clock::unix_now_ms;
use sockgate_core::revocation::MAX_API_TIME;
use sockgate_core::session::{SessionInfo, SessionLimit};
pub use sync::{follow, sync};

const PREFIX: &str = "sockgate:";
const CONTROL: &str = "sockgate:control";
/// How long a node counts as alive after its last heartbeat.
const NODE_TTL_MS: u64 = 5_000;
/// A heartbeat not answered within this marks Redis unreachable.
const BEAT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

/// Writes that need no answer, applied in order by one task.
#[derive(Debug)]
pub enum Write {
    /// A session opened on this node: added to its user's sessions and to
    /// the node's session hash.
    SessionUp {
        /// The session's Socket.IO id.
        sid: String,
        /// The user the session belongs to.
        user_id: String,
        /// The session's [`SessionInfo`], as JSON.
        info: String,
    },
    /// A session of this node ended: removed from both.
    SessionDown {
        /// The session's Socket.IO id.
        sid: String,
        /// The user the session belonged to.
        user_id: String,
    },
    /// A user is now present in a room on this node.
    PresenceUp {
        /// The room's name.
        room: String,
        /// The user now present.
        user_id: String,
    },
    /// A user is no longer present in a room on this node.
    PresenceDown {
        /// The room's name.
        room: String,
        /// The user who left.
        user_id: String,
    },
}

/// How long a node's shared figures live without a refresh.
const STATS_TTL_SECS: u64 = 5;

/// This node's handle on the cluster's Redis: its heartbeat, the write
/// queue, the shared sessions, presence and revocations, and the control
/// channel.
pub struct Cluster {
    /// This node's id: 16 random hex digits, drawn at [`Cluster::connect`].
    pub node: String,
    /// Where Redis is: one server, or the master the Sentinels name.
    topology: topology::Topology,
    /// The URL of the Redis in use (the master, with Sentinels).
    master: std::sync::Mutex<String>,
    /// The pub/sub driver the Socket.IO Redis adapter runs on.
    pub driver: ResilientDriver,
    healthy: Arc<AtomicBool>,
    /// When Redis last came back (Unix ms; 0: it never went away).
    back_at: std::sync::atomic::AtomicU64,
    writes: mpsc::UnboundedSender<Write>,
    seal: Seal,
    /// Revocations that could not be announced (Redis unreachable), to
    /// announce at recovery: the other nodes may still serve the token.
    outbox: std::sync::Mutex<Vec<Control>>,
}

/// Admits a session under the per-user limit, atomically for the cluster.
/// Drops members whose node is dead or whose session is gone first.
const ADMIT: &str = r#"
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, m in ipairs(members) do
  local sep = string.find(m, '|', 1, true)
  local node = string.sub(m, 1, sep - 1)
  local sid = string.sub(m, sep + 1)
  if redis.call('EXISTS', ARGV[5] .. 'node:' .. node) == 0
     or redis.call('HEXISTS', ARGV[5] .. 'sessions:' .. node, sid) == 0 then
    redis.call('ZREM', KEYS[1], m)
  end
end
local max = tonumber(ARGV[3])
local result = {'ok'}
if max > 0 then
  local count = redis.call('ZCARD', KEYS[1])
  if count >= max then
    if ARGV[4] == 'reject' then return {'reject', tostring(count)} end
    local oldest = redis.call('ZRANGE', KEYS[1], 0, count - max)
    for _, m in ipairs(oldest) do
      redis.call('ZREM', KEYS[1], m)
      local sep = string.find(m, '|', 1, true)
      redis.call('HDEL', ARGV[5] .. 'sessions:' .. string.sub(m, 1, sep - 1), string.sub(m, sep + 1))
      table.insert(result, m)
    end
  end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[6], ARGV[7])
return result
"#;

impl Cluster {
    /// Connects to Redis; fails when it cannot be reached. Announcements
    /// are sealed with `seal`.
    pub async fn connect(url: &str, seal: Seal) -> Result<Arc<Self>, redis::RedisError> {
        let topology = topology::Topology::parse(url)?;
        let master = topology.master_url().await?;
        let healthy = Arc::new(AtomicBool::new(true));
        let driver = ResilientDriver::connect(client_for(&master)?, healthy.clone()).await?;
        let mut conn = driver.connection();
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        let node = format!("{:016x}", rand::random::<u64>());
        let (writes, rx) = mpsc::unbounded_channel();
        let cluster = Arc::new(Self {
            node,
            topology,
            master: std::sync::Mutex::new(master),
            driver,
            healthy,
            writes,
            seal,
            outbox: std::sync::Mutex::default(),
            back_at: std::sync::atomic::AtomicU64::new(0),
        });
        if !cluster.beat().await {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "Redis did not take the first heartbeat",
            )));
        }
        tokio::spawn(apply_writes(cluster.clone(), rx));
        Ok(cluster)
    }

    /// Whether Redis answered the last heartbeat (false while degraded).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Whether every live node has had time to renew its heartbeat since
    /// Redis came back. A heartbeat lapses while Redis is away through no
    /// fault of its node (a failover, a partition), and the session hashes
    /// it guards do not: until then, a node missing its heartbeat is not
    /// dead. (Without the wait, the first node on a promoted replica
    /// reported the other one's sessions lost, NODE_LOST, and removed them.)
    pub(crate) fn settled(&self) -> bool {
        let back = self.back_at.load(Ordering::Relaxed);
        back == 0 || unix_now_ms() > back + 2 * NODE_TTL_MS
    }

    fn conn(&self) -> ConnectionManager {
        self.driver.connection()
    }

    /// Asks the Sentinels for the master, and moves there when they name
    /// another than the one in use (a failover); true when it moved.
    /// Nothing to do on one server.
    async fn follow_master(&self) -> bool {
        if !self.topology.follows_failovers() {
            return false;
        }
        let url = match self.topology.master_url().await {
            Ok(url) => url,
            Err(e) => {
                tracing::warn!(error = %e, "no Sentinel named the master");
                return false;
            }
        };
        if *self.master.lock().unwrap_or_else(|e| e.into_inner()) == url {
            return false;
        }
        let switched = match client_for(&url) {
            Ok(client) => self.driver.switch(client).await,
            Err(e) => Err(e),
        };
        match switched {
            Ok(()) => {
                tracing::warn!(master = %redacted(&url), "the Sentinels name a new Redis master: moved there");
                *self.master.lock().unwrap_or_else(|e| e.into_inner()) = url;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "the new Redis master cannot be reached yet");
                false
            }
        }
    }

    pub(crate) fn key(&self, parts: &[&str]) -> String {
        let mut key = PREFIX.to_owned();
        key.push_str(&parts.join(":"));
        key
    }

    /// Renews the heartbeat key; an answer later than [`BEAT_TIMEOUT`]
    /// counts as none. (Without the bound, a Redis that stops answering, as
    /// behind a network partition, went unnoticed for about 10 s while the
    /// connection manager retried.)
    async fn beat(&self) -> bool {
        let mut conn = self.conn();
        let mut pipe = redis::pipe();
        pipe.pset_ex(self.key(&["node", &self.node]), 1, NODE_TTL_MS)
            .ignore()
            // Again each time: a Redis that came back empty has it again.
            .sadd(self.key(&["nodes"]), &self.node)
            .ignore();
        let beat = pipe.query_async::<()>(&mut conn);
        matches!(tokio::time::timeout(BEAT_TIMEOUT, beat).await, Ok(Ok(())))
    }

    /// Keeps the node's heartbeat key alive. Calls `on_recovery` each time
    /// Redis comes back after an outage (and logs both transitions).
    pub async fn heartbeat(self: Arc<Self>, on_recovery: impl Fn() + Send + 'static) {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(NODE_TTL_MS / 5));
        loop {
            tick.tick().await;
            let mut ok = self.beat().await;
            tracing::trace!(ok, "heartbeat");
            let mut moved = false;
            if !ok && self.follow_master().await {
                moved = true;
                ok = self.beat().await;
            }
            crate::telemetry::redis_up(ok);
            // Marked before the node counts as healthy: the lost-node
            // reporter never sees it back and not yet settled.
            if ok && (moved || !self.is_healthy()) {
                self.back_at.store(unix_now_ms(), Ordering::Relaxed);
            }
            let was = self.healthy.swap(ok, Ordering::Relaxed);
            match (was, ok) {
                (true, false) => {
                    tracing::error!(node = %self.node, "Redis unreachable: serving local sockets only")
                }
                (false, true) => {
                    tracing::info!(node = %self.node, "Redis is back: resuming cluster mode");
                    on_recovery();
                }
                // A failover the node followed before it counted as away
                // (a planned one): the new master may lack the last writes
                // of the old (its replication is asynchronous), so the
                // node writes its state there again all the same.
                (true, true) if moved => on_recovery(),
                _ => {}
            }
        }
    }

    /// The control channel's messages, as they arrive.
    pub async fn control_stream(
        &self,
    ) -> Result<tokio::sync::mpsc::Receiver<driver::ChanItem>, driver::DriverError> {
        self.driver.subscribe(CONTROL.to_owned(), 1024).await
    }

    /// Announces `msg` to every node, this one included; false when Redis
    /// did not take it.
    pub(crate) async fn publish_control(&self, msg: &Control) -> bool {
        let body = self
            .seal
            .seal(&serde_json::to_vec(msg).expect("control serializes"));
        match self.driver.publish(CONTROL.to_owned(), body).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "announcement failed");
                false
            }
        }
    }

    /// Queues a write; applied in order, dropped (and redone at recovery) when Redis is down.
    pub fn write(&self, w: Write) {
        let _ = self.writes.send(w);
    }

    /// The nodes whose heartbeat is alive.
    pub async fn live_nodes(&self) -> redis::RedisResult<HashSet<String>> {
        self.nodes_with("node").await
    }

    /// The nodes of the set `sockgate:nodes` whose key `sockgate:{what}:{id}`
    /// exists: a look at each node's key, not a scan of every key (a
    /// `SCAN` cost hundreds of calls a second per node with 4,000 rooms,
    /// and grows with the users and rooms of the whole cluster).
    async fn nodes_with(&self, what: &str) -> redis::RedisResult<HashSet<String>> {
        let mut conn = self.conn();
        let known: Vec<String> = conn.smembers(self.key(&["nodes"])).await?;
        if known.is_empty() {
            return Ok(HashSet::new());
        }
        let mut pipe = redis::pipe();
        for node in &known {
            pipe.exists(self.key(&[what, node]));
        }
        let present: Vec<bool> = pipe.query_async(&mut conn).await?;
        Ok(known
            .into_iter()
            .zip(present)
            .filter_map(|(node, here)| here.then_some(node))
            .collect())
    }

    /// Takes out of the set of nodes those with neither a heartbeat nor a
    /// session hash: nodes that stopped (a node's next heartbeat puts it
    /// back). Without it the set would grow with every start.
    pub(crate) async fn prune_nodes(
        &self,
        live: &HashSet<String>,
        with_sessions: &HashSet<String>,
    ) -> redis::RedisResult<()> {
        let mut conn = self.conn();
        let known: Vec<String> = conn.smembers(self.key(&["nodes"])).await?;
        let gone: Vec<&String> = known
            .iter()
            .filter(|n| !live.contains(*n) && !with_sessions.contains(*n))
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        conn.srem(self.key(&["nodes"]), gone).await
    }

    /// Takes `node` out of the set of nodes (its traces are gone).
    pub(crate) async fn forget_node(&self, node: &str) -> redis::RedisResult<()> {
        self.conn().srem(self.key(&["nodes"]), node).await
    }

    /// The key that says a dead node was taken care of.
    pub(crate) fn lost_key(&self, node: &str) -> String {
        self.key(&["lost", node])
    }

    /// This node is stopping cleanly: no live node is to report its
    /// sessions lost once its heartbeat expires.
    pub async fn stopping(&self) {
        let mut conn = self.conn();
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.lost_key(&self.node))
            .arg(format!("stopped:{}", unix_now_ms()))
            .arg("PX")
            .arg(24 * 3600 * 1000u64);
        let set = cmd.query_async::<()>(&mut conn);
        if !matches!(tokio::time::timeout(BEAT_TIMEOUT, set).await, Ok(Ok(()))) {
            tracing::warn!(
                "could not tell the cluster this node is stopping; its sessions may be reported lost"
            );
        }
    }

    /// The nodes that have a session hash, alive or not.
    pub async fn nodes_with_sessions(&self) -> redis::RedisResult<HashSet<String>> {
        self.nodes_with("sessions").await
    }

    /// Admits a session under the cluster-wide per-user limit.
    pub async fn admit(
        &self,
        user_id: &str,
        sid: &str,
        info: &SessionInfo,
        limit: SessionLimit,
    ) -> redis::RedisResult<Admission> {
        use sockgate_core::backend::Placed;
        let policy = limit.policy.as_str();
        let result: Vec<String> = Script::new(ADMIT)
            .key(self.key(&["user", user_id]))
            .key(self.key(&["sessions", &self.node]))
            .arg(format!("{}|{sid}", self.node))
            .arg(unix_now_ms())
            .arg(limit.max)
            .arg(policy)
            .arg(PREFIX)
            .arg(sid)
            .arg(serde_json::to_string(info).expect("session info serializes"))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match result.first().map(String::as_str) {
            Some("reject") => Admission::Rejected(
                result
                    .get(1)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(limit.max),
            ),
            _ => Admission::Admitted(
                result
                    .iter()
                    .skip(1)
                    .filter_map(|m| m.split_once('|'))
                    .map(|(n, s)| Placed {
                        node: n.to_owned(),
                        session: s.to_owned(),
                    })
                    .collect(),
            ),
        })
    }

    /// Shares this node's figures (`/api/stats`) for a few seconds.
    pub async fn share_stats(&self, json: &str) -> redis::RedisResult<()> {
        let key = self.key(&["stats", &self.node]);
        self.conn().set_ex(key, json, STATS_TTL_SECS).await
    }

    /// The figures the other live nodes shared, as they shared them.
    pub async fn peer_stats(&self) -> redis::RedisResult<Vec<String>> {
        let mut conn = self.conn();
        let mut out = Vec::new();
        for node in self.live_nodes().await? {
            if node == self.node {
                continue;
            }
            let json: Option<String> = conn.get(self.key(&["stats", &node])).await?;
            out.extend(json);
        }
        Ok(out)
    }

    /// Every live session of the cluster, optionally of one user.
    pub async fn sessions(&self, user: Option<&str>) -> redis::RedisResult<Vec<SessionInfo>> {
        let mut conn = self.conn();
        let mut out = Vec::new();
        for node in self.live_nodes().await? {
            let all: Vec<(String, String)> = conn.hgetall(self.key(&["sessions", &node])).await?;
            out.extend(
                all.into_iter()
                    .filter_map(|(_, json)| serde_json::from_str::<SessionInfo>(&json).ok())
                    .filter(|s| user.is_none_or(|u| s.user_id == u)),
            );
        }
        Ok(out)
    }

    /// Whether a live node holds session `sid`.
    pub async fn has_session(&self, sid: &str) -> redis::RedisResult<bool> {
        let mut conn = self.conn();
        for node in self.live_nodes().await? {
            if conn.hexists(self.key(&["sessions", &node]), sid).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The users present in `room` on every live node, sorted.
    pub async fn members(&self, room: &str) -> redis::RedisResult<Vec<String>> {
        let mut conn = self.conn();
        let mut users = std::collections::BTreeSet::new();
        for node in self.live_nodes().await? {
            let present: Vec<String> = conn.hkeys(self.key(&["presence", &node, room])).await?;
            users.extend(present);
        }
        Ok(users.into_iter().collect())
    }

    /// Stores a revocation for every node and for nodes that start later.
    pub async fn store_revoked_token(&self, jti: &str, expires_at: u64) -> redis::RedisResult<()> {
        let key = self.key(&["revoked", "jti", jti]);
        let mut conn = self.conn();
        let _: () = conn.set(&key, expires_at).await?;
        conn.expire_at::<_, ()>(&key, expires_at as i64).await
    }

    /// Stores a user's revocation (tokens issued before `issued_before`,
    /// Unix seconds) for every node and for nodes that start later; an
    /// earlier time never replaces a later one.
    pub async fn store_revoked_user(
        &self,
        user_id: &str,
        issued_before: u64,
    ) -> redis::RedisResult<()> {
        // Keep the later time, like the local store.
        Script::new(
            "local v = tonumber(redis.call('GET', KEYS[1]) or '0') \
             if tonumber(ARGV[1]) > v then redis.call('SET', KEYS[1], ARGV[1]) end return 1",
        )
        .key(self.key(&["revoked", "user", user_id]))
        .arg(issued_before)
        .invoke_async::<i64>(&mut self.conn())
        .await
        .map(|_| ())
    }

    /// Every revocation stored in Redis: `(tokens, users)`.
    pub async fn revocations(
        &self,
    ) -> redis::RedisResult<(Vec<(String, u64)>, Vec<(String, u64)>)> {
        let mut conn = self.conn();
        let mut found = (Vec::new(), Vec::new());
        for (kind, into_tokens) in [("jti", true), ("user", false)] {
            let prefix = self.key(&["revoked", kind, ""]);
            let keys: Vec<String> = {
                let mut iter: redis::AsyncIter<String> =
                    conn.scan_match(format!("{prefix}*")).await?;
                let mut keys = Vec::new();
                while let Some(k) = iter.next_item().await {
                    keys.push(k?);
                }
                keys
            };
            for key in keys {
                let value: Option<u64> = conn.get(&key).await?;
                // The admin API refuses times past year 9999; a larger one
                // was not written by sockgate.
                let value = value.filter(|v| *v <= MAX_API_TIME);
                if let (Some(v), Some(id)) = (value, key.strip_prefix(&prefix)) {
                    let entry = (id.to_owned(), v);
                    if into_tokens {
                        found.0.push(entry)
                    } else {
                        found.1.push(entry)
                    }
                }
            }
        }
        Ok(found)
    }

    /// Drops this node's sessions and presence (before writing them again).
    pub async fn clear_node_state(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn();
        let mut keys = vec![self.key(&["sessions", &self.node])];
        let mut iter: redis::AsyncIter<String> = conn
            .scan_match(self.key(&["presence", &self.node, "*"]))
            .await?;
        while let Some(k) = iter.next_item().await {
            keys.push(k?);
        }
        drop(iter);
        conn.del(keys).await
    }
}

async fn apply_writes(cluster: Arc<Cluster>, mut rx: mpsc::UnboundedReceiver<Write>) {
    while let Some(w) = rx.recv().await {
        if !cluster.is_healthy() {
            continue;
        }
        let mut conn = cluster.conn();
        let node = cluster.node.as_str();
        let result: redis::RedisResult<()> = match &w {
            Write::SessionUp { sid, user_id, info } => {
                let member = format!("{node}|{sid}");
                let score = unix_now_ms();
                let _: redis::RedisResult<()> = conn
                    .zadd(cluster.key(&["user", user_id]), member, score)
                    .await;
                conn.hset(cluster.key(&["sessions", node]), sid, info).await
            }
            Write::SessionDown { sid, user_id } => {
                let _: redis::RedisResult<()> = conn
                    .zrem(cluster.key(&["user", user_id]), format!("{node}|{sid}"))
                    .await;
                conn.hdel(cluster.key(&["sessions", node]), sid).await
            }
            Write::PresenceUp { room, user_id } => {
                conn.hset(cluster.key(&["presence", node, room]), user_id, 1)
                    .await
            }
            Write::PresenceDown { room, user_id } => {
                conn.hdel(cluster.key(&["presence", node, room]), user_id)
                    .await
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, write = ?w, "cluster write failed; redone at recovery");
        }
    }
}

/// A client for the Redis at `url`.
fn client_for(url: &str) -> Result<redis::Client, redis::RedisError> {
    // TCP_NODELAY: without it a publish that follows another command
    // waits for Redis's delayed ACK (40 ms on Linux), which showed as a
    // 40 ms tail on revocations and room messages across nodes.
    let info = with_resp3(url)
        .into_connection_info()?
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    redis::Client::open(info)
}

/// Push messages (pub/sub) need RESP3 on the connection.
fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}protocol=resp3")
}

/// A URL without its credentials (see [`crate::telemetry::redacted`]).
pub use crate::telemetry::redacted;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            with_resp3("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379?protocol=resp3"
        );
        assert_eq!(
            with_resp3("redis://h/0?x=1"),
            "redis://h/0?x=1&protocol=resp3"
        );
        assert_eq!(
            with_resp3("redis://h?protocol=resp3"),
            "redis://h?protocol=resp3"
        );
        assert_eq!(
            redacted("redis://user:secret@host:6379/0"),
            "redis://host:6379/0"
        );
        assert_eq!(redacted("redis://host:6379"), "redis://host:6379");
    }

    #[test]
    fn control_messages_round_trip() {
        let msg = Control::RevokeUser {
            user_id: "u".into(),
            issued_before: 7,
        };
        let json = serde_json::to_string(&msg).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"revoke_user","user_id":"u","issued_before":7}"#
        );
        assert_eq!(serde_json::from_str::<Control>(&json).unwrap(), msg);
    }
}
