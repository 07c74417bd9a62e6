//! Revocations: single tokens by `jti`, or every token of a user issued
//! before a time.
//!
//! The handshake and refresh paths check an in-memory index (two hash
//! lookups, no I/O). Every revocation is written to a local SQLite file in
//! the data directory before it takes effect, and the index is loaded from
//! it at startup, so nothing revoked comes back to life after a restart.
//! Token entries are pruned once the token they revoke has expired; user
//! entries are kept (one row per user, the latest time wins).
//!
//! Times are Unix seconds. SQLite stores signed 64-bit integers, so a time
//! beyond [`MAX_TIME`] (`i64::MAX`, billions of years away) is stored, kept
//! and answered as `MAX_TIME`: "forever" stays forever, instead of wrapping
//! to a negative number that a restart would prune or load as 0.

use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use sockgate_auth::{AuthError, ErrorCode, Identity};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::sessions::unix_now;

/// The latest revocation time the store keeps; later ones are saturated to it.
pub const MAX_TIME: u64 = i64::MAX as u64;

/// `t` as the store keeps it.
fn stored(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// A revoked token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RevokedToken {
    pub jti: String,
    pub expires_at: u64,
}

/// A user whose tokens issued before `issued_before` are revoked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RevokedUser {
    pub user_id: String,
    pub issued_before: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RevocationList {
    pub tokens: Vec<RevokedToken>,
    pub users: Vec<RevokedUser>,
}

pub struct Revocations {
    tokens: RwLock<HashMap<String, u64>>,
    users: RwLock<HashMap<String, u64>>,
    db: SqlitePool,
}

impl Revocations {
    /// Opens (creating if needed) `revocations.db` in `dir` and loads it.
    pub async fn open(dir: &Path) -> Result<Self, sqlx::Error> {
        std::fs::create_dir_all(dir)?;
        let options = SqliteConnectOptions::new()
            .filename(dir.join("revocations.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A revocation answered 201 must survive a power cut, not only a
            // crash: with WAL, `NORMAL` may lose the last commits.
            .synchronous(SqliteSynchronous::Full);
        let db = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS revoked_tokens (jti TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)",
        )
        .execute(&db)
        .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS revoked_users (user_id TEXT PRIMARY KEY, issued_before INTEGER NOT NULL)",
        )
        .execute(&db)
        .await?;
        let this = Self {
            tokens: RwLock::default(),
            users: RwLock::default(),
            db,
        };
        this.prune().await?;
        this.load().await?;
        Ok(this)
    }

    async fn load(&self) -> Result<(), sqlx::Error> {
        let tokens: Vec<(String, i64)> =
            sqlx::query_as("SELECT jti, expires_at FROM revoked_tokens")
                .fetch_all(&self.db)
                .await?;
        let users: Vec<(String, i64)> =
            sqlx::query_as("SELECT user_id, issued_before FROM revoked_users")
                .fetch_all(&self.db)
                .await?;
        *self.tokens.write().expect("revocations lock") = tokens
            .into_iter()
            .map(|(k, v)| (k, v.max(0) as u64))
            .collect();
        *self.users.write().expect("revocations lock") = users
            .into_iter()
            .map(|(k, v)| (k, v.max(0) as u64))
            .collect();
        Ok(())
    }

    /// `TOKEN_REVOKED` if `id` is revoked. A token without `iat` counts as
    /// issued before any user revocation: it cannot prove it is newer.
    pub fn check(&self, id: &Identity) -> Result<(), AuthError> {
        if self.is_revoked(id) {
            return Err(AuthError::new(ErrorCode::TokenRevoked, "token revoked"));
        }
        Ok(())
    }

    pub fn is_revoked(&self, id: &Identity) -> bool {
        if let Some(jti) = id.token_id()
            && self
                .tokens
                .read()
                .expect("revocations lock")
                .contains_key(jti)
        {
            return true;
        }
        let users = self.users.read().expect("revocations lock");
        match users.get(&id.user_id) {
            Some(before) => id.issued_at().is_none_or(|iat| iat < *before),
            None => false,
        }
    }

    /// Revokes one token until `expires_at` (its own `exp`): in memory at
    /// once, then on disk.
    pub async fn revoke_token(&self, jti: &str, expires_at: u64) -> Result<(), sqlx::Error> {
        self.remember_token(jti, expires_at);
        self.persist_token(jti, expires_at).await
    }

    /// Revokes every token of `user_id` issued before `issued_before`: in
    /// memory at once, then on disk.
    pub async fn revoke_user(&self, user_id: &str, issued_before: u64) -> Result<(), sqlx::Error> {
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

    /// Writes a token revocation to disk.
    pub async fn persist_token(&self, jti: &str, expires_at: u64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?1, ?2)
             ON CONFLICT(jti) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)",
        )
        .bind(jti)
        .bind(stored(expires_at))
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Writes a user revocation to disk.
    pub async fn persist_user(&self, user_id: &str, issued_before: u64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO revoked_users (user_id, issued_before) VALUES (?1, ?2)
             ON CONFLICT(user_id) DO UPDATE SET issued_before = MAX(issued_before, excluded.issued_before)",
        )
        .bind(user_id)
        .bind(stored(issued_before))
        .execute(&self.db)
        .await?;
        Ok(())
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

    /// Forgets token revocations whose token has expired anyway.
    pub async fn prune(&self) -> Result<u64, sqlx::Error> {
        let now = unix_now();
        let done = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < ?1")
            .bind(stored(now))
            .execute(&self.db)
            .await?;
        self.tokens
            .write()
            .expect("revocations lock")
            .retain(|_, exp| *exp >= now);
        Ok(done.rows_affected())
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
    async fn revocations_survive_reopening_and_expired_ones_are_pruned() {
        let dir = std::env::temp_dir().join(format!("sockgate-rev-{}", rand::random::<u64>()));
        let now = unix_now();
        {
            let r = Revocations::open(&dir).await.unwrap();
            r.revoke_token("t-live", now + 600).await.unwrap();
            r.revoke_token("t-old", now - 1).await.unwrap();
            r.revoke_user("bob", now).await.unwrap();
            assert!(r.is_revoked(&identity("alice", "t-live", now)));
        }
        let r = Revocations::open(&dir).await.unwrap();
        assert_eq!(
            r.list().tokens,
            vec![RevokedToken {
                jti: "t-live".into(),
                expires_at: now + 600
            }]
        );
        assert!(r.is_revoked(&identity("alice", "t-live", now)));
        assert!(!r.is_revoked(&identity("alice", "t-other", now)));
        assert!(r.is_revoked(&identity("bob", "b-1", now - 5)));
        assert!(
            !r.is_revoked(&identity("bob", "b-2", now)),
            "issued at T is not before T"
        );
        let err = r.check(&identity("bob", "b-3", now - 1)).unwrap_err();
        assert_eq!(err.code, ErrorCode::TokenRevoked);
        std::fs::remove_dir_all(dir).ok();
    }

    /// A time of 2^63 or more used to wrap negative in SQLite: the token
    /// revocation was pruned at the next start, the user revocation loaded
    /// as 0 (revoking nothing), although the API had answered 201.
    #[tokio::test]
    async fn revocations_until_the_end_of_time_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("sockgate-rev-{}", rand::random::<u64>()));
        let now = unix_now();
        {
            let r = Revocations::open(&dir).await.unwrap();
            r.revoke_token("forever", 1 << 63).await.unwrap();
            r.revoke_token("max", u64::MAX).await.unwrap();
            r.revoke_user("bob", u64::MAX).await.unwrap();
            r.revoke_user("carol", 1 << 63).await.unwrap();
            assert!(r.is_revoked(&identity("bob", "b-1", now)));
        }
        let r = Revocations::open(&dir).await.unwrap();
        assert!(r.is_revoked(&identity("alice", "forever", now)));
        assert!(r.is_revoked(&identity("alice", "max", now)));
        assert!(r.is_revoked(&identity("bob", "b-1", now)));
        assert!(r.is_revoked(&identity("carol", "c-1", now)));
        let list = r.list();
        assert!(
            list.tokens.iter().all(|t| t.expires_at == MAX_TIME),
            "{list:?}"
        );
        assert!(
            list.users.iter().all(|u| u.issued_before == MAX_TIME),
            "{list:?}"
        );
        // Later, smaller revocations never shorten them.
        r.revoke_user("bob", now).await.unwrap();
        drop(r);
        let r = Revocations::open(&dir).await.unwrap();
        assert!(r.is_revoked(&identity("bob", "b-2", now + 3600)));
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn the_store_syncs_every_commit_to_disk() {
        let dir = std::env::temp_dir().join(format!("sockgate-rev-{}", rand::random::<u64>()));
        let r = Revocations::open(&dir).await.unwrap();
        for _ in 0..3 {
            // Every connection of the pool: 2 is FULL (1 would be NORMAL).
            let (level,): (i64,) = sqlx::query_as("PRAGMA synchronous")
                .fetch_one(&r.db)
                .await
                .unwrap();
            assert_eq!(level, 2);
        }
        std::fs::remove_dir_all(dir).ok();
    }
}
