//! Revocations and kicks, here and through the control bus on every node,
//! and the announcements of the other nodes.

use std::sync::Arc;

use sockgate_auth::ErrorCode;
use sockgate_protocol::payloads::end_reason;

use super::Node;
use crate::backend::{Announced, Control};
use crate::connection::Conn;
use crate::revocation::StoreError;
use crate::session::Session;
use crate::telemetry;

/// The outcome of a revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    /// Sessions ended on this node.
    pub ended: usize,
    /// Whether the other nodes were told now (otherwise the control bus
    /// tells them once it can). `None` when there are none.
    pub shared: Option<bool>,
    /// Until when the revocation is kept (`expiresAt`), or the user's
    /// `issuedBefore`.
    pub expires_at: u64,
}

impl Node {
    /// Revokes one token and ends the live sessions running on it. The
    /// sessions end first, here and (through the control bus) elsewhere;
    /// the store's write follows (a failed write is reported, and the
    /// revocation still holds until a restart).
    ///
    /// The revocation is kept until `expires_at`, or until the real `exp` of
    /// the token when a session here runs on it and that is later: a token
    /// must not come back to life because its revocation was pruned early.
    pub async fn revoke_token(&self, jti: &str, expires_at: u64) -> Result<Revoked, StoreError> {
        telemetry::revocation("token");
        let expires_at = expires_at.max(self.longest_exp_of(jti));
        self.revocations.remember_token(jti, expires_at);
        let hits = self.sessions_on_token(jti);
        let msg = Control::RevokeToken {
            jti: jti.to_owned(),
            expires_at,
        };
        let (ended, shared) = self.end_here_and_share(hits, msg).await;
        self.revocations.persist_token(jti, expires_at).await?;
        Ok(Revoked {
            ended,
            shared,
            expires_at,
        })
    }

    /// Revokes a user's tokens issued before `issued_before` and ends the
    /// live sessions running on one of them; the store's write last, as above.
    pub async fn revoke_user(
        &self,
        user_id: &str,
        issued_before: u64,
    ) -> Result<Revoked, StoreError> {
        telemetry::revocation("user");
        self.revocations.remember_user(user_id, issued_before);
        let hits = self
            .sessions
            .of_user(user_id)
            .into_iter()
            .filter(|(s, _)| self.revocations.is_revoked(&s.identity()))
            .collect();
        let msg = Control::RevokeUser {
            user_id: user_id.to_owned(),
            issued_before,
        };
        let (ended, shared) = self.end_here_and_share(hits, msg).await;
        self.revocations
            .persist_user(user_id, issued_before)
            .await?;
        Ok(Revoked {
            ended,
            shared,
            expires_at: issued_before,
        })
    }

    /// Ends one session (admin kick), wherever it is. False when no node
    /// holds it.
    pub async fn kick(&self, id: &str) -> bool {
        let code = ErrorCode::Kicked;
        if let Some((session, conn)) = self.local(id) {
            self.end(&session, &conn, code, end_reason(code));
            return true;
        }
        if !matches!(self.directory.elsewhere(id).await, Ok(true)) {
            return false;
        }
        let msg = Control::End {
            sid: id.to_owned(),
            code: code.as_str().to_owned(),
        };
        self.control.announce(&msg).await;
        true
    }

    /// Ends every session of a user (admin kick), on every node. Returns how many.
    pub async fn kick_user(&self, user_id: &str) -> usize {
        // Counted before anything ends, while every node still lists them.
        let listed = self
            .directory
            .list(Some(user_id))
            .await
            .map_or(0, |s| s.len());
        let code = ErrorCode::Kicked;
        // A parked session of the user would come back on recovery.
        self.history.forget_user(user_id).await;
        let local = self.end_all(self.sessions.of_user(user_id), code, end_reason(code));
        let msg = Control::EndUser {
            user_id: user_id.to_owned(),
        };
        self.control.announce(&msg).await;
        listed.max(local)
    }

    /// Applies an announcement from the control bus (this node's own
    /// included: applying one twice ends nothing more).
    pub async fn apply(&self, msg: Control) {
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
                if let Some((session, conn)) = self.local(&sid) {
                    self.end(&session, &conn, code, end_reason(code));
                }
            }
            Control::EndUser { user_id } => {
                self.history.forget_user(&user_id).await;
                let kicked = ErrorCode::Kicked;
                self.end_all(self.sessions.of_user(&user_id), kicked, end_reason(kicked));
            }
            Control::MoveSockets { who, to, join } => {
                self.move_here(&who, &to, join);
            }
        }
    }

    /// Ends every session here whose token is now revoked.
    pub fn end_revoked(&self) {
        let hits = self
            .sessions
            .matching(|s| self.revocations.is_revoked(&s.identity()));
        let revoked = ErrorCode::TokenRevoked;
        self.end_all(hits, revoked, end_reason(revoked));
    }

    /// The sessions here that run on token `jti`.
    fn sessions_on_token(&self, jti: &str) -> Vec<(Arc<Session>, Conn)> {
        self.sessions
            .matching(|s| s.identity().token_id() == Some(jti))
    }

    /// The latest `exp` of the sessions here that run on token `jti`.
    fn longest_exp_of(&self, jti: &str) -> u64 {
        self.sessions_on_token(jti)
            .iter()
            .filter_map(|(s, _)| s.identity().expires_at)
            .max()
            .unwrap_or(0)
    }

    /// Ends revoked local sessions while the revocation goes out to the
    /// other nodes: they need not wait for thousands of local ends.
    /// Returns how many ended here, and whether the others were told now.
    async fn end_here_and_share(
        &self,
        hits: Vec<(Arc<Session>, Conn)>,
        msg: Control,
    ) -> (usize, Option<bool>) {
        // The announcement runs first: it sends its request and yields at
        // the round trip, during which the local sessions end.
        let revoked = ErrorCode::TokenRevoked;
        let (announced, ended) = tokio::join!(biased; self.control.announce(&msg), async {
            self.end_all(hits, revoked, end_reason(revoked))
        });
        let shared = match announced {
            Announced::Alone => None,
            Announced::Sent => Some(true),
            Announced::Later => {
                tracing::warn!(
                    "the other nodes cannot be told now: the revocation is announced when they can"
                );
                Some(false)
            }
        };
        (ended, shared)
    }
}
