//! The sessions of a node that died: a killed node says nothing, so a live
//! one says it for it.
//!
//! Every node looks every [`EVERY`] for session hashes
//! (`sockgate:sessions:{node}`) whose node's heartbeat has expired. One
//! live node takes each dead node (`SET sockgate:lost:{node} NX`), tells
//! `session.ended { code: "NODE_LOST" }` for each of its sessions not taken
//! back on a live node meanwhile (a recovery keeps the session's id), gives
//! up what it held in the census (users left on no live node go offline,
//! rooms left empty are vacated, members leave: `Node::tell_lost_node`),
//! and removes what the dead node left in Redis.
//!
//! A node that stops cleanly takes itself first ([`Cluster::stopping`]):
//! its sessions end with its own `SERVER_SHUTDOWN`. What its last writes
//! may have left in Redis is removed by a live node once its departures
//! had time to come due, without a word.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use redis::{AsyncCommands, Script};
use sockgate_core::Node;
use sockgate_core::clock::unix_now_ms;
use sockgate_core::hooks::happened::Happened;
use sockgate_core::session::SessionInfo;

use super::Cluster;

/// How often dead nodes are looked for: with the 5 s heartbeat, a dead
/// node is reported within 7 s.
const EVERY: Duration = Duration::from_secs(2);
/// How long the taking of a dead node is kept: the same node id never
/// comes back (ids are random per process).
const TAKEN_FOR_MS: u64 = 24 * 3600 * 1000;

/// Looks for dead nodes forever; spawn it once. A cleanly stopped node's
/// leftovers are removed `settle` after it stopped (its departures' delay,
/// and then some).
pub async fn report_lost_nodes(
    cluster: Arc<Cluster>,
    node: Arc<impl AsRef<Node> + Send + Sync + 'static>,
    settle: Duration,
) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        if !cluster.is_healthy() || !cluster.settled() {
            continue;
        }
        if let Err(e) = report_once(&cluster, node.as_ref().as_ref(), settle).await {
            tracing::debug!(error = %e, "looking for lost nodes failed; next round");
        }
    }
}

/// Takes a stopped node's leftovers once: `stopped:{ms}` becomes `cleaned`
/// when `settle` ms have passed since. KEYS: the lost key; ARGV: settle,
/// now, how long the mark is kept.
const TAKE_STOPPED: &str = r#"
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 8) == 'stopped:'
   and tonumber(string.sub(v, 9)) + tonumber(ARGV[1]) < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[1], 'cleaned', 'PX', ARGV[3])
  return 1
end
return 0
"#;

async fn report_once(cluster: &Cluster, node: &Node, settle: Duration) -> redis::RedisResult<()> {
    let live = cluster.live_nodes().await?;
    let with_sessions = cluster.nodes_with_sessions().await?;
    cluster.prune_nodes(&live, &with_sessions).await?;
    for dead in with_sessions {
        if live.contains(&dead) || dead == cluster.node {
            continue;
        }
        let mut conn = cluster.conn();
        // Asked once more, by its key, right before: a report removes the
        // node's sessions, and must not rest on one scan.
        let beating: bool = conn.exists(cluster.key(&["node", &dead])).await?;
        if beating || !cluster.settled() {
            continue;
        }
        let taken: bool = redis::cmd("SET")
            .arg(cluster.lost_key(&dead))
            .arg(&cluster.node)
            .arg("NX")
            .arg("PX")
            .arg(TAKEN_FOR_MS)
            .query_async::<Option<String>>(&mut conn)
            .await?
            .is_some();
        if taken {
            report_node(cluster, node, &dead, &live).await?;
            continue;
        }
        let stopped: bool = Script::new(TAKE_STOPPED)
            .key(cluster.lost_key(&dead))
            .arg(settle.as_millis() as u64)
            .arg(unix_now_ms())
            .arg(TAKEN_FOR_MS)
            .invoke_async(&mut conn)
            .await?;
        if stopped {
            let sessions = sessions_of(cluster, &dead).await?;
            remove_traces(cluster, &dead, &sessions).await?;
            node.tell_lost_node(&dead, Vec::new());
        }
    }
    Ok(())
}

/// Tells what went with `dead`, and removes its traces.
async fn report_node(
    cluster: &Cluster,
    node: &Node,
    dead: &str,
    live: &HashSet<String>,
) -> redis::RedisResult<()> {
    let sessions = sessions_of(cluster, dead).await?;
    let now = unix_now_ms();
    let mut ended = Vec::new();
    for (sid, info) in &sessions {
        let Ok(info) = serde_json::from_str::<SessionInfo>(info) else {
            continue;
        };
        if held_by_live_node(cluster, sid, live).await? {
            continue;
        }
        ended.push(Happened::SessionEnded {
            user_id: info.user_id.clone(),
            session_id: info.session_id.clone(),
            code: "NODE_LOST".to_owned(),
            reconnect: true,
            duration_ms: now.saturating_sub(info.connected_at.saturating_mul(1000)),
        });
    }
    let lost = ended.len();
    node.tell_lost_node(dead, ended);
    remove_traces(cluster, dead, &sessions).await?;
    tracing::warn!(
        target: "sockgate::cluster",
        node = dead,
        by = %cluster.node,
        live = ?live,
        sessions = lost,
        "a node stopped without a word; its sessions are reported lost (NODE_LOST)"
    );
    Ok(())
}

/// Removes `dead`'s sessions (its hash and its users' entries) and its
/// presence.
async fn remove_traces(
    cluster: &Cluster,
    dead: &str,
    sessions: &HashMap<String, String>,
) -> redis::RedisResult<()> {
    let mut conn = cluster.conn();
    for (sid, info) in sessions {
        if let Ok(info) = serde_json::from_str::<SessionInfo>(info) {
            let member = format!("{dead}|{sid}");
            let _: () = conn
                .zrem(cluster.key(&["user", &info.user_id]), member)
                .await?;
        }
    }
    for key in presence_keys(cluster, dead).await? {
        let _: () = conn.del(key).await?;
    }
    let _: () = conn.del(cluster.key(&["sessions", dead])).await?;
    cluster.forget_node(dead).await
}

/// `dead`'s session hash: session id → its `SessionInfo` as JSON.
async fn sessions_of(cluster: &Cluster, dead: &str) -> redis::RedisResult<HashMap<String, String>> {
    cluster
        .conn()
        .hgetall(cluster.key(&["sessions", dead]))
        .await
}

/// Whether a live node holds session `sid` (a recovery keeps its id).
async fn held_by_live_node(
    cluster: &Cluster,
    sid: &str,
    live: &HashSet<String>,
) -> redis::RedisResult<bool> {
    let mut conn = cluster.conn();
    for node in live {
        let held: bool = conn.hexists(cluster.key(&["sessions", node]), sid).await?;
        if held {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The keys of `dead`'s presence, one per room.
async fn presence_keys(cluster: &Cluster, dead: &str) -> redis::RedisResult<Vec<String>> {
    let prefix = cluster.key(&["presence", dead, ""]);
    let mut conn = cluster.conn();
    let mut iter: redis::AsyncIter<String> = conn.scan_match(format!("{prefix}*")).await?;
    let mut keys = Vec::new();
    while let Some(key) = iter.next_item().await {
        keys.push(key?);
    }
    Ok(keys)
}
