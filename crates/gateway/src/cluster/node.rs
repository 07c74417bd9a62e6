//! What a node does with the cluster: apply announcements to its own
//! sockets, and bring Redis up to date when it starts or Redis comes back.

use std::sync::Arc;

use futures_util::StreamExt;
use sockgate_auth::ErrorCode;

use super::{Cluster, Control, Write};
use crate::Gateway;
use sockgate_protocol::payloads::end_reason;

impl Gateway {
    /// Applies announcements from the control channel until it closes.
    pub(crate) async fn follow_announcements(self: Arc<Self>, cluster: Arc<Cluster>) {
        let mut stream = match cluster.control_stream().await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::error!(error = %e, "cannot subscribe to the control channel");
                return;
            }
        };
        while let Some((_, body)) = stream.next().await {
            let Some(json) = cluster.seal.open(&body) else {
                tracing::warn!(
                    "ignoring an announcement without a valid seal (forged, replayed, or another cluster secret)"
                );
                continue;
            };
            match serde_json::from_slice::<Control>(json) {
                Ok(msg) => self.apply(msg).await,
                Err(e) => tracing::warn!(error = %e, "ignoring a malformed announcement"),
            }
        }
    }

    async fn apply(&self, msg: Control) {
        match msg {
            Control::RevokeToken { jti, expires_at } => {
                // Kept at least until the real `exp` of a token seen here.
                let expires_at = expires_at.max(self.longest_exp_of(&jti));
                self.revocations.remember_token(&jti, expires_at);
                self.end_revoked();
                if let Err(e) = self.revocations.persist_token(&jti, expires_at).await {
                    tracing::error!(error = %e, "persisting an announced revocation failed");
                }
            }
            Control::RevokeUser {
                user_id,
                issued_before,
            } => {
                self.revocations.remember_user(&user_id, issued_before);
                self.end_revoked();
                if let Err(e) = self.revocations.persist_user(&user_id, issued_before).await {
                    tracing::error!(error = %e, "persisting an announced revocation failed");
                }
            }
            Control::End { sid, code } => {
                let code = ErrorCode::ALL
                    .into_iter()
                    .find(|c| c.as_str() == code)
                    .unwrap_or(ErrorCode::Kicked);
                if let Some((session, socket)) = self.sessions.find(&sid) {
                    self.end(&session, &socket, code, end_reason(code));
                }
            }
            Control::EndUser { user_id } => {
                let kicked = ErrorCode::Kicked;
                self.end_all(self.sessions.of_user(&user_id), kicked, end_reason(kicked));
            }
        }
    }

    /// Ends every local session whose token is now revoked.
    fn end_revoked(&self) {
        let hits = self
            .sessions
            .matching(|s| self.revocations.is_revoked(&s.identity()));
        let revoked = ErrorCode::TokenRevoked;
        self.end_all(hits, revoked, end_reason(revoked));
    }

    /// Brings Redis and this node up to date with each other: at startup
    /// and each time Redis comes back. Revocations go both ways (nothing
    /// revoked on either side comes back to life); this node's sessions and
    /// presence are written again from its own state.
    pub(crate) async fn sync_with_cluster(&self) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        if let Err(e) = self.try_sync(&cluster).await {
            tracing::warn!(error = %e, "cluster sync failed; retried at the next recovery");
        }
    }

    async fn try_sync(&self, cluster: &Cluster) -> redis::RedisResult<()> {
        let local = self.revocations.list();
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
            self.revocations.remember_token(&jti, exp);
            let _ = self.revocations.persist_token(&jti, exp).await;
        }
        for (user, before) in users {
            self.revocations.remember_user(&user, before);
            let _ = self.revocations.persist_user(&user, before).await;
        }
        self.end_revoked();
        // Made while Redis was away: stored above, and now announced, so
        // that the nodes still serving those tokens end them.
        self.share_unshared(cluster).await;

        cluster.clear_node_state().await?;
        for (session, _) in self.sessions.matching(|_| true) {
            cluster.write(Write::SessionUp {
                sid: session.id.to_string(),
                user_id: session.user_id.clone(),
                info: serde_json::to_string(&session.info()).expect("session info serializes"),
            });
        }
        for (room, user_id) in self.rooms.pairs() {
            cluster.write(Write::PresenceUp { room, user_id });
        }
        Ok(())
    }
}
