//! The sessions of a node that died: a killed node says nothing, so a live
//! one says it for it.
//!
//! Every node with lifecycle webhooks looks every [`EVERY`] for session
//! hashes (`sockgate:sessions:{node}`) whose node's heartbeat has expired.
//! One live node takes each dead node (`SET sockgate:lost:{node} NX`), tells
//! its watcher `session.ended { code: "NODE_LOST" }` for each of its
//! sessions not taken back on a live node meanwhile (a recovery keeps the
//! session's id), `user.offline` for users left with no session on a live
//! node, `member.left` and `room.vacated` for its presence, and removes
//! what the dead node left in Redis.
//!
//! A node that stops cleanly takes itself first ([`Cluster::stopping`]):
//! its sessions end with its own `SERVER_SHUTDOWN`, and what its last
//! writes leave in Redis is not reported again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use sockgate_core::clock::unix_now_ms;
use sockgate_core::hooks::happened::{Happened, Watcher};
use sockgate_core::rooms::UserRoom;
use sockgate_core::session::SessionInfo;

use super::Cluster;

/// How often dead nodes are looked for: with the 5 s heartbeat, a dead
/// node is reported within 7 s.
const EVERY: Duration = Duration::from_secs(2);
/// How long the taking of a dead node is kept: the same node id never
/// comes back (ids are random per process).
const TAKEN_FOR_MS: u64 = 24 * 3600 * 1000;

/// Looks for dead nodes forever; spawn it once.
pub async fn report_lost_nodes(
    cluster: Arc<Cluster>,
    watcher: Arc<dyn Watcher>,
    user_room: UserRoom,
) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        if !cluster.is_healthy() {
            continue;
        }
        if let Err(e) = report_once(&cluster, watcher.as_ref(), &user_room).await {
            tracing::debug!(error = %e, "looking for lost nodes failed; next round");
        }
    }
}

async fn report_once(
    cluster: &Cluster,
    watcher: &dyn Watcher,
    user_room: &UserRoom,
) -> redis::RedisResult<()> {
    let live = cluster.live_nodes().await?;
    for node in cluster.nodes_with_sessions().await? {
        if live.contains(&node) || node == cluster.node {
            continue;
        }
        let mut conn = cluster.conn();
        let taken: bool = redis::cmd("SET")
            .arg(cluster.lost_key(&node))
            .arg(&cluster.node)
            .arg("NX")
            .arg("PX")
            .arg(TAKEN_FOR_MS)
            .query_async::<Option<String>>(&mut conn)
            .await?
            .is_some();
        if taken {
            report_node(cluster, watcher, &node, &live, user_room).await?;
        }
    }
    Ok(())
}

/// Tells what went with `dead`, and removes its traces.
async fn report_node(
    cluster: &Cluster,
    watcher: &dyn Watcher,
    dead: &str,
    live: &HashSet<String>,
    user_room: &UserRoom,
) -> redis::RedisResult<()> {
    let mut conn = cluster.conn();
    let sessions_key = cluster.key(&["sessions", dead]);
    let sessions: HashMap<String, String> = conn.hgetall(&sessions_key).await?;
    let now = unix_now_ms();
    let mut users = HashSet::new();
    let mut lost = 0;
    for (sid, info) in &sessions {
        let Ok(info) = serde_json::from_str::<SessionInfo>(info) else {
            continue;
        };
        if held_by_live_node(cluster, sid, live).await? {
            continue;
        }
        lost += 1;
        watcher.happened(Happened::SessionEnded {
            user_id: info.user_id.clone(),
            session_id: info.session_id.clone(),
            code: "NODE_LOST".to_owned(),
            reconnect: true,
            duration_ms: now.saturating_sub(info.connected_at.saturating_mul(1000)),
        });
        let _: () = conn
            .zrem(
                cluster.key(&["user", &info.user_id]),
                format!("{dead}|{sid}"),
            )
            .await?;
        users.insert(info.user_id);
    }
    for user in &users {
        if !user_on_live_node(cluster, user, live).await? {
            watcher.happened(Happened::UserOffline {
                user_id: user.clone(),
            });
        }
    }
    for (room, members) in dead_presence(cluster, dead).await? {
        // Users' own rooms have no room events.
        if user_room.is_user_room(&room) {
            let _: () = conn.del(cluster.key(&["presence", dead, &room])).await?;
            continue;
        }
        for user in &members {
            watcher.happened(Happened::MemberLeft {
                room: room.clone(),
                user_id: user.clone(),
            });
        }
        if !room_on_live_node(cluster, &room, live).await? {
            watcher.happened(Happened::RoomVacated { room: room.clone() });
        }
        let _: () = conn.del(cluster.key(&["presence", dead, &room])).await?;
    }
    let _: () = conn.del(&sessions_key).await?;
    tracing::warn!(
        target: "sockgate::cluster",
        node = dead,
        sessions = lost,
        "a node stopped without a word; its sessions are reported lost (NODE_LOST)"
    );
    Ok(())
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

/// Whether `user` has a session on a live node.
async fn user_on_live_node(
    cluster: &Cluster,
    user: &str,
    live: &HashSet<String>,
) -> redis::RedisResult<bool> {
    let members: Vec<String> = cluster
        .conn()
        .zrange(cluster.key(&["user", user]), 0, -1)
        .await?;
    Ok(members
        .iter()
        .filter_map(|m| m.split_once('|'))
        .any(|(node, _)| live.contains(node)))
}

/// Whether a live node has a member in `room`.
async fn room_on_live_node(
    cluster: &Cluster,
    room: &str,
    live: &HashSet<String>,
) -> redis::RedisResult<bool> {
    let mut conn = cluster.conn();
    for node in live {
        let n: usize = conn.hlen(cluster.key(&["presence", node, room])).await?;
        if n > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The dead node's rooms and their members.
async fn dead_presence(
    cluster: &Cluster,
    dead: &str,
) -> redis::RedisResult<Vec<(String, Vec<String>)>> {
    let prefix = cluster.key(&["presence", dead, ""]);
    let mut conn = cluster.conn();
    let keys: Vec<String> = {
        let mut iter: redis::AsyncIter<String> = conn.scan_match(format!("{prefix}*")).await?;
        let mut keys = Vec::new();
        while let Some(key) = iter.next_item().await {
            keys.push(key?);
        }
        keys
    };
    let mut rooms = Vec::new();
    for key in keys {
        let members: Vec<String> = cluster.conn().hkeys(&key).await?;
        let room = key[prefix.len()..].to_owned();
        rooms.push((room, members));
    }
    Ok(rooms)
}
