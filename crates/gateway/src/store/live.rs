//! The sessions a single node holds, kept on disk (`live-sessions.json` in
//! the data directory) so that the next start can report a crashed run's
//! sessions: a killed process says nothing of them, and without a cluster
//! no other node can.
//!
//! The file is rewritten at most once a second, when the sessions changed;
//! a clean shutdown ends every session first, so it is left empty.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sockgate_core::Node;
use sockgate_core::clock::unix_now_ms;
use sockgate_core::hooks::happened::{Happened, Watcher};
use sockgate_core::session::SessionInfo;

/// The file's name in the data directory.
pub const LIVE_FILE: &str = "live-sessions.json";
/// How often the sessions are looked at.
const EVERY: Duration = Duration::from_secs(1);

/// Keeps `path` up to date with `node`'s sessions, forever; spawn it once.
pub async fn keep_live_sessions(
    node: Arc<impl AsRef<Node> + Send + Sync + 'static>,
    path: PathBuf,
) {
    let mut tick = tokio::time::interval(EVERY);
    let mut written = String::new();
    loop {
        tick.tick().await;
        let mut sessions = node.as_ref().as_ref().sessions_here();
        sessions.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        let json = serde_json::to_string(&sessions).expect("sessions serialize");
        if json != written {
            if let Err(e) = write(&path, &json).await {
                tracing::warn!(error = %e, path = %path.display(), "the live sessions could not be written");
                continue;
            }
            written = json;
        }
    }
}

/// Writes `json` to `path` through a temporary file, so that a crash in
/// the middle leaves the previous version, not half of one.
async fn write(path: &Path, json: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    tokio::fs::write(&tmp, json).await?;
    tokio::fs::rename(&tmp, path).await
}

/// The sessions the previous run held when it stopped (none after a clean
/// shutdown), and the file emptied: they are reported once.
pub fn take_crashed_run(path: &Path) -> Vec<SessionInfo> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let _ = std::fs::remove_file(path);
    serde_json::from_str(&text).unwrap_or_default()
}

/// Tells `watcher` that a crashed run's `sessions` ended (`NODE_LOST`),
/// and that their users went offline.
pub fn report_crashed_run(watcher: &dyn Watcher, sessions: Vec<SessionInfo>) {
    if sessions.is_empty() {
        return;
    }
    tracing::warn!(
        target: "sockgate::session",
        sessions = sessions.len(),
        "the previous run stopped without a word; its sessions are reported lost (NODE_LOST)"
    );
    let now = unix_now_ms();
    let mut users = Vec::new();
    for info in sessions {
        watcher.happened(Happened::SessionEnded {
            user_id: info.user_id.clone(),
            session_id: info.session_id,
            code: "NODE_LOST".to_owned(),
            reconnect: true,
            duration_ms: now.saturating_sub(info.connected_at.saturating_mul(1000)),
        });
        if !users.contains(&info.user_id) {
            users.push(info.user_id);
        }
    }
    for user_id in users {
        watcher.happened(Happened::UserOffline { user_id });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crashed_run_is_read_once() {
        let dir = std::env::temp_dir().join(format!("sockgate-live-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(LIVE_FILE);
        std::fs::write(
            &path,
            r#"[{"sessionId":"s1","userId":"u","connectedAt":1,"expiresAt":null,"remoteAddr":null,"userAgent":null,"transport":"websocket"}]"#,
        )
        .unwrap();
        let first = take_crashed_run(&path);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].user_id, "u");
        assert!(take_crashed_run(&path).is_empty(), "reported once");
        std::fs::write(&path, "not json").unwrap();
        assert!(take_crashed_run(&path).is_empty());
    }
}
