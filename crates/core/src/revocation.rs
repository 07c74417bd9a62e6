//! Revocations: single tokens by `jti`, or every token of a user issued
//! before a time.
//!
//! The handshake and refresh paths check an in-memory index (two hash
//! lookups, no I/O). Every revocation is also written to a
//! [`RevocationStore`] (the gateway's is a SQLite file in its data
//! directory) and the index is loaded from it at startup, so nothing
//! revoked comes back to life after a restart. Token entries are pruned once
//! the token they revoke has expired; user entries are kept (one per user,
//! the latest time wins).
//!
//! Times are Unix seconds. A time beyond [`MAX_TIME`] (`i64::MAX`, billions
//! of years away) is kept and answered as `MAX_TIME`: "forever" stays
//! forever in any store that holds signed 64-bit integers.

use std::collections::HashMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use sockgate_auth::{AuthError, ErrorCode, Identity};

use crate::BoxFuture;

/// The latest revocation time kept; later ones are saturated to it.
pub const MAX_TIME: u64 = i64::MAX as u64;

/// The latest time the admin API accepts: the end of year 9999. A larger
/// one in a shared store was not written by sockgate.
pub const MAX_API_TIME: u64 = 253_402_300_799;

/// A revoked token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RevokedToken {
    /// The token's `jti`.
    pub jti: String,
    /// Until when the revocation is kept (the token's `exp`).
    pub expires_at: u64,
}

/// A user whose tokens issued before `issued_before` are revoked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RevokedUser {
    /// The user.
    pub user_id: String,
    /// Tokens with an earlier `iat` (or none) are revoked.
    pub issued_before: u64,
}

/// Every active revocation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RevocationList {
    /// Revoked tokens, by `jti`.
    pub tokens: Vec<RevokedToken>,
    /// Revoked users.
    pub users: Vec<RevokedUser>,
}

/// A store that failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Where revocations are kept across restarts.
pub trait RevocationStore: Send + Sync + 'static {
    /// Keeps a token revocation (the later `expires_at` wins).
    fn save_token<'a>(
        &'a self,
        jti: &'a str,
        expires_at: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Keeps a user revocation (the later `issued_before` wins).
    fn save_user<'a>(
        &'a self,
        user_id: &'a str,
        issued_before: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Forgets token revocations that expired before `now`; returns how many.
    fn prune(&self, now: u64) -> BoxFuture<'_, Result<u64, StoreError>>;
}

/// The store of a node that keeps nothing: revocations last as long as the
/// process. The default, for tests and embedders.
#[derive(Debug, Default)]
pub struct MemoryStore;

impl RevocationStore for MemoryStore {
    fn save_token<'a>(&'a self, _: &'a str, _: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    fn save_user<'a>(&'a self, _: &'a str, _: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    fn prune(&self, _: u64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async { Ok(0) })
    }
}

/// The revocation index, over its store.
pub struct Revocations {
    tokens: RwLock<HashMap<String, u64>>,
    users: RwLock<HashMap<String, u64>>,
    store: Box<dyn RevocationStore>,
}

impl Default for Revocations {
    fn default() -> Self {
        Self::in_memory()
    }
}

impl Revocations {
    /// An empty index that keeps nothing across restarts.
    pub fn in_memory() -> Self {
        Self::new(Box::new(MemoryStore), RevocationList::default())
    }

    /// The index of what `store` holds (`loaded`, read from it at startup).
    pub fn new(store: Box<dyn RevocationStore>, loaded: RevocationList) -> Self {
        let this = Self {
            tokens: RwLock::default(),
            users: RwLock::default(),
            store,
        };
        for t in loaded.tokens {
            this.remember_token(&t.jti, t.expires_at);
        }
        for u in loaded.users {
            this.remember_user(&u.user_id, u.issued_before);
        }
        this
    }
    /// `TOKEN_REVOKED` if `id` is revoked. A token without `iat` counts as
    /// issued before any user revocation: it cannot prove it is newer.
    pub fn check(&self, id: &Identity) -> Result<(), AuthError> {
        if self.is_revoked(id) {
            return Err(AuthError::new(ErrorCode::TokenRevoked, "token revoked"));
        }
        Ok(())
    }

    /// Whether `id` is revoked.
    pub fn is_revoked(&self, id: &Identity) -> bool {
        self.is_revoked_token(&id.user_id, id.token_id(), id.issued_at())
    }

    /// Whether the token of `user_id` with `jti` and `iat` is revoked.
    pub(crate) fn is_revoked_token(
        &self,
        user_id: &str,
        jti: Option<&str>,
        iat: Option<u64>,
    ) -> bool {
        if let Some(jti) = jti
            && self
                .tokens
                .read()
                .expect("revocations lock")
                .contains_key(jti)
        {
            return true;
        }
        let users = self.users.read().expect("revocations lock");
        match users.get(user_id) {
            Some(before) => iat.is_none_or(|iat| iat < *before),
            None => false,
        }
    }

    /// Revokes one token until `expires_at` (its own `exp`): in memory at
    /// once, then on disk.
    pub async fn revoke_token(&self, jti: &str, expires_at: u64) -> Result<(), StoreError> {
        self.remember_token(jti, expires_at);
        self.persist_token(jti, expires_at).await
    }

    /// Revokes every token of `user_id` issued before `issued_before`: in
    /// memory at once, then on disk.
    pub async fn revoke_user(&self, user_id: &str, issued_before: u64) -> Result<(), StoreError> {
        self.remember_user(user_id, issued_before);
        self.persist_user(user_id, issued_before).await
    }

    /// Puts a token revocation in the in-memory index only.
    pub fn remember_token(&self, jti: &str, expires_at: u64) {
        let expires_at = expires_at.min(MAX_TIME);
        let mut tokens = self.tokens.write().expect("revocations lock");
        let entry = tokens.entry(jti.to_owned()).or_insert(expires_at);
        *entry = (*entry).max(expires_at);
    }

    /// Puts a user revocation in the in-memory index only.
    pub fn remember_user(&self, user_id: &str, issued_before: u64) {
        let issued_before = issued_before.min(MAX_TIME);
        let mut users = self.users.write().expect("revocations lock");
        let entry = users.entry(user_id.to_owned()).or_insert(issued_before);
        *entry = (*entry).max(issued_before);
    }

    /// Writes a token revocation to the store.
    pub async fn persist_token(&self, jti: &str, expires_at: u64) -> Result<(), StoreError> {
        self.store.save_token(jti, expires_at.min(MAX_TIME)).await
    }

    /// Writes a user revocation to the store.
    pub async fn persist_user(&self, user_id: &str, issued_before: u64) -> Result<(), StoreError> {
        self.store
            .save_user(user_id, issued_before.min(MAX_TIME))
            .await
    }

    /// The active revocations.
    pub fn list(&self) -> RevocationList {
        let mut tokens: Vec<RevokedToken> = self
            .tokens
            .read()
            .expect("revocations lock")
            .iter()
            .map(|(jti, exp)| RevokedToken {
                jti: jti.clone(),
                expires_at: *exp,
            })
            .collect();
        let mut users: Vec<RevokedUser> = self
            .users
            .read()
            .expect("revocations lock")
            .iter()
            .map(|(user, before)| RevokedUser {
                user_id: user.clone(),
                issued_before: *before,
            })
            .collect();
        tokens.sort_by(|a, b| a.jti.cmp(&b.jti));
        users.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        RevocationList { tokens, users }
    }

    /// Forgets token revocations whose token has expired before `now`.
    pub async fn prune(&self, now: u64) -> Result<u64, StoreError> {
        let done = self.store.prune(now).await?;
        self.tokens
            .write()
            .expect("revocations lock")
            .retain(|_, exp| *exp >= now);
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity(user: &str, jti: &str, iat: u64) -> Identity {
        let claims = json!({ "sub": user, "jti": jti, "iat": iat, "exp": iat + 600 });
        Identity::from_claims(claims.as_object().unwrap().clone(), "sub").unwrap()
    }

    #[tokio::test]
    async fn tokens_and_users_are_revoked_and_expired_tokens_pruned() {
        let r = Revocations::in_memory();
        let now = 1_000_000;
        r.revoke_token("t-live", now + 600).await.unwrap();
        r.revoke_token("t-old", now - 1).await.unwrap();
        r.revoke_user("bob", now).await.unwrap();
        assert!(r.is_revoked(&identity("alice", "t-live", now)));
        assert!(!r.is_revoked(&identity("alice", "t-other", now)));
        assert!(r.is_revoked(&identity("bob", "b-1", now - 5)));
        assert!(
            !r.is_revoked(&identity("bob", "b-2", now)),
            "issued at T is not before T"
        );
        let err = r.check(&identity("bob", "b-3", now - 1)).unwrap_err();
        assert_eq!(err.code, ErrorCode::TokenRevoked);
        r.prune(now).await.unwrap();
        let jtis: Vec<_> = r.list().tokens.into_iter().map(|t| t.jti).collect();
        assert_eq!(jtis, ["t-live"]);
    }

    #[tokio::test]
    async fn later_revocations_win_and_forever_stays_forever() {
        let r = Revocations::in_memory();
        r.revoke_user("bob", u64::MAX).await.unwrap();
        r.revoke_user("bob", 5).await.unwrap();
        r.revoke_token("t", 1 << 63).await.unwrap();
        let list = r.list();
        assert_eq!(list.users[0].issued_before, MAX_TIME);
        assert_eq!(list.tokens[0].expires_at, MAX_TIME);
        let loaded = Revocations::new(Box::new(MemoryStore), list.clone());
        assert_eq!(loaded.list(), list, "an index loads what a store held");
    }
}
