//! The cluster as the node's backends: presence, the session directory and
//! the control bus, all on one Redis.

use sockgate_core::backend::{
    Admission, Announced, BoxFuture, Control, ControlBus, Directory, Presence, Unavailable,
};
use sockgate_core::session::{SessionInfo, SessionLimit};

use super::{Cluster, Write};

/// A Redis error as the node sees it, logged here (the node falls back on
/// its own state without a word).
fn unavailable(what: &str, e: redis::RedisError) -> Unavailable {
    tracing::warn!(error = %e, "cluster {what} unavailable");
    Unavailable(e.to_string())
}

/// Redis is known to be away: nothing to log again.
fn away() -> Unavailable {
    Unavailable("Redis unreachable".to_owned())
}

impl Presence for Cluster {
    fn arrived(&self, room: &str, user: &str) {
        self.write(Write::PresenceUp {
            room: room.to_owned(),
            user_id: user.to_owned(),
        });
    }

    fn left(&self, room: &str, user: &str) {
        self.write(Write::PresenceDown {
            room: room.to_owned(),
            user_id: user.to_owned(),
        });
    }

    fn members<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<Vec<String>, Unavailable>> {
        Box::pin(async move {
            if !self.is_healthy() {
                return Err(away());
            }
            Cluster::members(self, room)
                .await
                .map_err(|e| unavailable("presence", e))
        })
    }
}

impl Directory for Cluster {
    fn node(&self) -> &str {
        &self.node
    }

    fn status(&self) -> &'static str {
        if self.is_healthy() {
            "ok"
        } else {
            "unreachable"
        }
    }

    fn healthy(&self) -> bool {
        self.is_healthy()
    }

    /// With a limit and Redis there, one atomic script admits (and records)
    /// the session; otherwise the session is recorded by the write queue,
    /// and the node's registry applies the limit to its own sessions.
    fn admit<'a>(
        &'a self,
        session: &'a SessionInfo,
        limit: Option<SessionLimit>,
    ) -> BoxFuture<'a, Result<Admission, Unavailable>> {
        Box::pin(async move {
            let up = || Write::SessionUp {
                sid: session.session_id.clone(),
                user_id: session.user_id.clone(),
                info: serde_json::to_string(session).expect("session info serializes"),
            };
            let Some(limit) = limit.filter(|_| self.is_healthy()) else {
                self.write(up());
                return Ok(Admission::Admitted(Vec::new()));
            };
            let sid = &session.session_id;
            match Cluster::admit(self, &session.user_id, sid, session, limit).await {
                Ok(admission) => Ok(admission),
                Err(e) => {
                    self.write(up());
                    Err(Unavailable(e.to_string()))
                }
            }
        })
    }

    fn left(&self, session: &str, user: &str) {
        self.write(Write::SessionDown {
            sid: session.to_owned(),
            user_id: user.to_owned(),
        });
    }

    fn list<'a>(
        &'a self,
        user: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<SessionInfo>, Unavailable>> {
        Box::pin(async move {
            if !self.is_healthy() {
                return Err(away());
            }
            self.sessions(user)
                .await
                .map_err(|e| unavailable("sessions", e))
        })
    }

    fn elsewhere<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, Unavailable>> {
        Box::pin(async move {
            if !self.is_healthy() {
                return Err(away());
            }
            self.has_session(id)
                .await
                .map_err(|e| Unavailable(e.to_string()))
        })
    }

    fn share_figures<'a>(&'a self, json: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if self.is_healthy() {
                let _ = self.share_stats(json).await;
            }
        })
    }

    fn peer_figures(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            if !self.is_healthy() {
                return Vec::new();
            }
            self.peer_stats().await.unwrap_or_default()
        })
    }
}

impl ControlBus for Cluster {
    /// Announced first: the other nodes act on the announcement; a
    /// revocation's stored copy is for nodes that catch up later. A
    /// revocation that cannot be announced now waits in the outbox for
    /// Redis to come back (`Cluster::flush_outbox`).
    fn announce<'a>(&'a self, msg: &'a Control) -> BoxFuture<'a, Announced> {
        Box::pin(async move {
            let revocation = matches!(
                msg,
                Control::RevokeToken { .. } | Control::RevokeUser { .. }
            );
            if !self.is_healthy() || !self.publish_control(msg).await {
                if revocation {
                    self.outbox().push(msg.clone());
                }
                return Announced::Later;
            }
            let stored = match msg {
                Control::RevokeToken { jti, expires_at } => {
                    self.store_revoked_token(jti, *expires_at).await
                }
                Control::RevokeUser {
                    user_id,
                    issued_before,
                } => self.store_revoked_user(user_id, *issued_before).await,
                _ => Ok(()),
            };
            if let Err(e) = stored {
                tracing::warn!(error = %e, "storing a revocation in Redis failed; shared again at recovery");
            }
            Announced::Sent
        })
    }
}

impl Cluster {
    fn outbox(&self) -> std::sync::MutexGuard<'_, Vec<Control>> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Announces the revocations made while Redis was unreachable; called
    /// once Redis is back. Those that fail again wait for the next recovery.
    pub(crate) async fn flush_outbox(&self) {
        let waiting = std::mem::take(&mut *self.outbox());
        for msg in waiting {
            if !self.publish_control(&msg).await {
                self.outbox().push(msg);
            }
        }
    }
}
