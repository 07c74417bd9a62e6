//! What a node does with the cluster beyond its backends: apply the
//! announcements of the control channel, and bring Redis up to date when
//! it starts or Redis comes back.

use std::sync::Arc;

use sockgate_core::Node;
use sockgate_core::backend::Control;

use super::{Cluster, Write};

/// Applies announcements from the control channel to `node` until the
/// channel closes.
pub async fn follow(node: Arc<impl AsRef<Node>>, cluster: Arc<Cluster>) {
    let node = node.as_ref().as_ref();
    let mut stream = match cluster.control_stream().await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::error!(error = %e, "cannot subscribe to the control channel");
            return;
        }
    };
    while let Some((_, body)) = stream.recv().await {
        let Some(json) = cluster.seal.open(&body) else {
            tracing::warn!(
                "ignoring an announcement without a valid seal (forged, replayed, or another cluster secret)"
            );
            continue;
        };
        match serde_json::from_slice::<Control>(json) {
            Ok(msg) => node.apply(msg).await,
            Err(e) => tracing::warn!(error = %e, "ignoring a malformed announcement"),
        }
    }
}

/// Brings Redis and this node up to date with each other: at startup and
/// each time Redis comes back. Revocations go both ways (nothing revoked on
/// either side comes back to life); this node's sessions and presence are
/// written again from its own state.
pub async fn sync(node: &Node, cluster: &Cluster) {
    if let Err(e) = try_sync(node, cluster).await {
        tracing::warn!(error = %e, "cluster sync failed; retried at the next recovery");
    }
}

async fn try_sync(node: &Node, cluster: &Cluster) -> redis::RedisResult<()> {
    let revocations = node.revocations();
    let local = revocations.list();
    for t in &local.tokens {
        cluster.store_revoked_token(&t.jti, t.expires_at).await?;
    }
    for u in &local.users {
        cluster
            .store_revoked_user(&u.user_id, u.issued_before)
            .await?;
    }
    let (tokens, users) = cluster.revocations().await?;
    for (jti, exp) in tokens {
        revocations.remember_token(&jti, exp);
        let _ = revocations.persist_token(&jti, exp).await;
    }
    for (user, before) in users {
        revocations.remember_user(&user, before);
        let _ = revocations.persist_user(&user, before).await;
    }
    node.end_revoked();
    // Made while Redis was away: stored above, and now announced, so that
    // the nodes still serving those tokens end them.
    cluster.flush_outbox().await;

    cluster.clear_node_state().await?;
    for session in node.sessions_here() {
        cluster.write(Write::SessionUp {
            sid: session.session_id.clone(),
            user_id: session.user_id.clone(),
            info: serde_json::to_string(&session).expect("session info serializes"),
        });
    }
    for (room, user_id) in node.presence_here() {
        cluster.write(Write::PresenceUp { room, user_id });
    }
    node.restate_census();
    Ok(())
}
