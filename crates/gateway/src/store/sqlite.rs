//! The revocation store: a SQLite file in the data directory.
//!
//! Every revocation is written here before the admin API answers, and the
//! index is loaded from it at startup, so nothing revoked comes back to
//! life after a restart. Token entries are pruned once the token they
//! revoke has expired; user entries are kept (one row per user, the latest
//! time wins).
//!
//! SQLite stores signed 64-bit integers, so a time beyond
//! [`sockgate_core::revocation::MAX_TIME`] (`i64::MAX`) is stored as that:
//! "forever" stays forever, instead of wrapping to a negative number that a
//! restart would prune or load as 0.

use std::future::Future;
use std::path::Path;

use sockgate_core::revocation::{RevocationList, RevokedToken, RevokedUser, StoreError};
use sockgate_core::{BoxFuture, RevocationStore, Revocations};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// `t` as the store keeps it.
fn stored(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn failed(e: sqlx::Error) -> StoreError {
    StoreError(e.to_string())
}

/// `revocations.db`.
pub struct SqliteStore {
    db: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) `revocations.db` in `dir`, prunes what
    /// expired, and returns what it holds.
    pub async fn open(dir: &Path) -> Result<(Self, RevocationList), StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError(e.to_string()))?;
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
            .await
            .map_err(failed)?;
        for table in [
            "CREATE TABLE IF NOT EXISTS revoked_tokens (jti TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS revoked_users (user_id TEXT PRIMARY KEY, issued_before INTEGER NOT NULL)",
        ] {
            sqlx::query(table).execute(&db).await.map_err(failed)?;
        }
        let store = Self { db };
        store
            .delete_expired(sockgate_core::clock::unix_now())
            .await?;
        let list = store.load().await.map_err(failed)?;
        Ok((store, list))
    }

    async fn load(&self) -> Result<RevocationList, sqlx::Error> {
        let tokens: Vec<(String, i64)> =
            sqlx::query_as("SELECT jti, expires_at FROM revoked_tokens")
                .fetch_all(&self.db)
                .await?;
        let users: Vec<(String, i64)> =
            sqlx::query_as("SELECT user_id, issued_before FROM revoked_users")
                .fetch_all(&self.db)
                .await?;
        let tokens = tokens
            .into_iter()
            .map(|(jti, exp)| RevokedToken {
                jti,
                expires_at: exp.max(0) as u64,
            })
            .collect();
        let users = users
            .into_iter()
            .map(|(user_id, before)| RevokedUser {
                user_id,
                issued_before: before.max(0) as u64,
            })
            .collect();
        Ok(RevocationList { tokens, users })
    }

    async fn delete_expired(&self, now: u64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < ?1")
            .bind(stored(now))
            .execute(&self.db)
            .await
            .map_err(failed)?;
        Ok(done.rows_affected())
    }
}

impl RevocationStore for SqliteStore {
    fn save_token<'a>(
        &'a self,
        jti: &'a str,
        expires_at: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?1, ?2)
                 ON CONFLICT(jti) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)",
            )
            .bind(jti)
            .bind(stored(expires_at))
            .execute(&self.db)
            .await
            .map(drop)
            .map_err(failed)
        })
    }

    fn save_user<'a>(
        &'a self,
        user_id: &'a str,
        issued_before: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO revoked_users (user_id, issued_before) VALUES (?1, ?2)
                 ON CONFLICT(user_id) DO UPDATE SET issued_before = MAX(issued_before, excluded.issued_before)",
            )
            .bind(user_id)
            .bind(stored(issued_before))
            .execute(&self.db)
            .await
            .map(drop)
            .map_err(failed)
        })
    }

    fn prune(&self, now: u64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.delete_expired(now))
    }
}

/// Opening the revocation index on its SQLite file:
/// `Revocations::open(&data_dir)`.
pub trait OnDisk: Sized {
    /// The index of `revocations.db` in `dir`, created if needed.
    fn open(dir: &Path) -> impl Future<Output = Result<Self, StoreError>> + Send;
}

impl OnDisk for Revocations {
    async fn open(dir: &Path) -> Result<Self, StoreError> {
        let (store, list) = SqliteStore::open(dir).await?;
        Ok(Revocations::new(Box::new(store), list))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sockgate_auth::{ErrorCode, Identity};
    use sockgate_core::clock::unix_now;
    use sockgate_core::revocation::MAX_TIME;

    fn identity(user: &str, jti: &str, iat: u64) -> Identity {
        let claims = json!({ "sub": user, "jti": jti, "iat": iat, "exp": iat + 600 });
        Identity::from_claims(claims.as_object().unwrap().clone(), "sub").unwrap()
    }

    fn temp_dir() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("sockgate-rev-{}", rand::random::<u64>()))
    }

    #[tokio::test]
    async fn revocations_survive_reopening_and_expired_ones_are_pruned() {
        let dir = temp_dir();
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
        let dir = temp_dir();
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
        let dir = temp_dir();
        let (store, _) = SqliteStore::open(&dir).await.unwrap();
        for _ in 0..3 {
            // Every connection of the pool: 2 is FULL (1 would be NORMAL).
            let (level,): (i64,) = sqlx::query_as("PRAGMA synchronous")
                .fetch_one(&store.db)
                .await
                .unwrap();
            assert_eq!(level, 2);
        }
        std::fs::remove_dir_all(dir).ok();
    }
}
