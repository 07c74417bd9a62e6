//! A single node's recovery history on disk: `history.db` in the data
//! directory, so that a restart recovers clients as a cluster does.
//!
//! The node keeps its history in memory ([`MemoryHistory`](sockgate_core::backend::memory::MemoryHistory)) and writes it
//! here through a [`Journal`]: each kept message, parked session, take and
//! trim is queued as it happens, and one task writes the queue in
//! transactions of up to [`MAX_BATCH`] writes, never on the delivery
//! path. A start reads back what is still in the window, with the run's
//! epoch and the key of its `pid`s, so that a client's `pid` and offset
//! of the last run mean the same thing.
//!
//! A SIGTERM drains the node (every session parked), then waits for the
//! queue to be written ([`DiskJournal::flush`]). A SIGKILL loses what was
//! still queued: the last few milliseconds of messages. A client whose
//! last offset is one of them starts fresh (its offset is past what the
//! history holds); another may miss them.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sockgate_core::backend::Journal;
use sockgate_core::recovery::{Entry, Message, Offset, Parked, PidKey};
use sockgate_core::revocation::StoreError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use tokio::sync::{mpsc, oneshot};

/// Most writes one transaction holds.
pub const MAX_BATCH: usize = 512;

/// Most writes waiting; past it a write is dropped (and counted) rather
/// than let memory grow while the disk stalls.
const MAX_QUEUED: usize = 65_536;

/// One write.
enum Write {
    Message(Entry),
    Park(Box<Parked>),
    Unpark(String),
    ForgetUser(String),
    Trim {
        oldest_ms: u64,
        parked_before_ms: u64,
    },
    Flush(oneshot::Sender<()>),
}

/// What the last run left.
pub struct Kept {
    /// Its messages in the window, oldest first.
    pub entries: Vec<Entry>,
    /// Its parked sessions in the window.
    pub parked: Vec<Parked>,
    /// Its epoch (drawn on the first start).
    pub epoch: String,
    /// The key of its `pid`s (drawn on the first start).
    pub key: PidKey,
}

/// The journal of a single node's history, on disk.
pub struct DiskJournal {
    queue: mpsc::Sender<Write>,
    /// Writes dropped because the queue was full.
    dropped: AtomicU64,
}

fn failed(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// `t` as SQLite keeps it.
fn stored(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

impl DiskJournal {
    /// Opens (creating if needed) `history.db` in `dir`, reads back what
    /// is still within `window` of `now_ms`, and starts the writer,
    /// keeping at most `max_messages`.
    pub async fn open(
        dir: &Path,
        window: Duration,
        max_messages: usize,
        now_ms: u64,
    ) -> Result<(Arc<Self>, Kept), StoreError> {
        std::fs::create_dir_all(dir).map_err(failed)?;
        let options = SqliteConnectOptions::new()
            .filename(dir.join("history.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A crash of the process loses nothing committed with WAL and
            // `NORMAL`; a power cut may lose the last commits, which a
            // history of a few minutes can afford.
            .synchronous(SqliteSynchronous::Normal);
        let db = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(failed)?;
        for table in [
            "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS messages (ms INTEGER NOT NULL, seq INTEGER NOT NULL, \
             message TEXT NOT NULL, PRIMARY KEY (ms, seq))",
            "CREATE TABLE IF NOT EXISTS parked (session TEXT PRIMARY KEY, user_id TEXT NOT NULL, \
             parked_at INTEGER NOT NULL, parked TEXT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS parked_by_user ON parked (user_id)",
        ] {
            sqlx::query(table).execute(&db).await.map_err(failed)?;
        }
        let oldest = now_ms.saturating_sub(window.as_millis() as u64);
        let kept = read(&db, oldest).await?;
        let (queue, writes) = mpsc::channel(MAX_QUEUED);
        tokio::spawn(write_all(db, writes, max_messages));
        let journal = Arc::new(Self {
            queue,
            dropped: AtomicU64::new(0),
        });
        Ok((journal, kept))
    }

    /// Waits until everything queued so far is written (or the writer is
    /// gone).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Write::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }

    /// Writes dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn queue(&self, write: Write) {
        if self.queue.try_send(write).is_err() {
            let before = self.dropped.fetch_add(1, Ordering::Relaxed);
            if before.is_power_of_two() || before == 0 {
                tracing::warn!(
                    dropped = before + 1,
                    "the history's disk writes fall behind; some are dropped (a restart may not recover every client)"
                );
            }
        }
    }
}

impl Journal for DiskJournal {
    fn appended(&self, entry: Entry) {
        self.queue(Write::Message(entry));
    }

    fn parked(&self, parked: &Parked) {
        self.queue(Write::Park(Box::new(parked.clone())));
    }

    fn unparked(&self, session: &str) {
        self.queue(Write::Unpark(session.to_owned()));
    }

    fn forgot_user(&self, user: &str) {
        self.queue(Write::ForgetUser(user.to_owned()));
    }

    fn trimmed(&self, oldest_ms: u64, parked_before_ms: u64) {
        self.queue(Write::Trim {
            oldest_ms,
            parked_before_ms,
        });
    }
}

/// What the database holds from `oldest_ms` on, with the epoch and the
/// pid key (both drawn and stored on the first start).
async fn read(db: &SqlitePool, oldest_ms: u64) -> Result<Kept, StoreError> {
    let epoch = meta(db, "epoch", || format!("{:016x}", rand::random::<u64>())).await?;
    let secret = meta(db, "pid_key", || {
        rand::random::<[u8; 32]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    })
    .await?;
    let rows: Vec<(i64, i64, String)> =
        sqlx::query_as("SELECT ms, seq, message FROM messages WHERE ms >= ? ORDER BY ms, seq")
            .bind(stored(oldest_ms))
            .fetch_all(db)
            .await
            .map_err(failed)?;
    let entries = rows
        .into_iter()
        .filter_map(|(ms, seq, json)| {
            let message: Message = serde_json::from_str(&json).ok()?;
            let offset = Offset {
                ms: ms as u64,
                seq: seq as u64,
            };
            Some(Entry { offset, message })
        })
        .collect();
    let parked: Vec<(String,)> = sqlx::query_as("SELECT parked FROM parked WHERE parked_at >= ?")
        .bind(stored(oldest_ms))
        .fetch_all(db)
        .await
        .map_err(failed)?;
    let parked = parked
        .into_iter()
        .filter_map(|(json,)| serde_json::from_str(&json).ok())
        .collect();
    Ok(Kept {
        entries,
        parked,
        epoch,
        key: PidKey::new(secret.as_bytes()),
    })
}

/// The value of `name` in `meta`, stored as `draw()` gives it the first
/// time.
async fn meta(
    db: &SqlitePool,
    name: &str,
    draw: impl Fn() -> String,
) -> Result<String, StoreError> {
    sqlx::query("INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)")
        .bind(name)
        .bind(draw())
        .execute(db)
        .await
        .map_err(failed)?;
    let (value,): (String,) = sqlx::query_as("SELECT value FROM meta WHERE name = ?")
        .bind(name)
        .fetch_one(db)
        .await
        .map_err(failed)?;
    Ok(value)
}

/// Writes the queue, a batch per transaction, until every sender is gone.
async fn write_all(db: SqlitePool, mut writes: mpsc::Receiver<Write>, max_messages: usize) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while writes.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut done = Vec::new();
        if let Err(e) = write_batch(&db, &mut batch, &mut done, max_messages).await {
            tracing::warn!(error = %e, "a batch of the history could not be written; a restart may not recover every client");
        }
        batch.clear();
        for flushed in done {
            let _ = flushed.send(());
        }
    }
}

async fn write_batch(
    db: &SqlitePool,
    batch: &mut Vec<Write>,
    done: &mut Vec<oneshot::Sender<()>>,
    max_messages: usize,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let mut trimmed = false;
    for write in batch.drain(..) {
        match write {
            Write::Message(entry) => insert(&mut tx, &entry).await?,
            Write::Park(parked) => {
                let json = serde_json::to_string(&*parked).expect("parked sessions serialize");
                sqlx::query(
                    "INSERT OR REPLACE INTO parked (session, user_id, parked_at, parked) VALUES (?, ?, ?, ?)",
                )
                .bind(&parked.session)
                .bind(&parked.user_id)
                .bind(stored(parked.parked_at))
                .bind(json)
                .execute(&mut *tx)
                .await?;
            }
            Write::Unpark(session) => {
                sqlx::query("DELETE FROM parked WHERE session = ?")
                    .bind(session)
                    .execute(&mut *tx)
                    .await?;
            }
            Write::ForgetUser(user) => {
                sqlx::query("DELETE FROM parked WHERE user_id = ?")
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
            }
            Write::Trim {
                oldest_ms,
                parked_before_ms,
            } => {
                sqlx::query("DELETE FROM messages WHERE ms < ?")
                    .bind(stored(oldest_ms))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM parked WHERE parked_at < ?")
                    .bind(stored(parked_before_ms))
                    .execute(&mut *tx)
                    .await?;
                trimmed = true;
            }
            Write::Flush(flushed) => done.push(flushed),
        }
    }
    if trimmed {
        // The count bound, as the memory history's: the oldest go.
        sqlx::query(
            "DELETE FROM messages WHERE rowid IN (SELECT rowid FROM messages ORDER BY ms DESC, seq DESC LIMIT -1 OFFSET ?)",
        )
        .bind(max_messages as i64)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

async fn insert(tx: &mut Transaction<'_, Sqlite>, entry: &Entry) -> Result<(), sqlx::Error> {
    let json = serde_json::to_string(&entry.message).expect("messages serialize");
    sqlx::query("INSERT OR REPLACE INTO messages (ms, seq, message) VALUES (?, ?, ?)")
        .bind(stored(entry.offset.ms))
        .bind(stored(entry.offset.seq))
        .bind(json)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn message(room: &str, n: u32) -> Message {
        Message {
            rooms: vec![room.to_owned()],
            except: None,
            event: "e".into(),
            data: RawValue::from_string(n.to_string()).unwrap(),
            gap: false,
            keep: Default::default(),
        }
    }

    fn parked(session: &str, at: u64) -> Parked {
        Parked {
            session: session.into(),
            user_id: "alice".into(),
            socket: "S".repeat(20),
            rooms: vec!["chat".into()],
            token_id: None,
            issued_at: None,
            since: Offset::default(),
            parked_at: at,
        }
    }

    #[tokio::test]
    async fn what_was_written_is_read_back_with_the_same_epoch_and_key() {
        let dir =
            std::env::temp_dir().join(format!("sockgate-history-{:016x}", rand::random::<u64>()));
        let window = Duration::from_secs(60);
        let (journal, first) = DiskJournal::open(&dir, window, 100, 100_000).await.unwrap();
        assert!(first.entries.is_empty() && first.parked.is_empty());
        for n in 0..3u32 {
            let offset = Offset::at(100_000 + u64::from(n));
            journal.appended(Entry {
                offset,
                message: message("chat", n),
            });
        }
        journal.parked(&parked("one", 100_001));
        journal.parked(&parked("two", 100_002));
        journal.unparked("two");
        journal.flush().await;
        let (again, second) = DiskJournal::open(&dir, window, 100, 100_010).await.unwrap();
        let data: Vec<&str> = second
            .entries
            .iter()
            .map(|e| e.message.data.get())
            .collect();
        assert_eq!(data, ["0", "1", "2"]);
        assert_eq!(second.entries[2].offset, Offset::at(100_002));
        let sessions: Vec<&str> = second.parked.iter().map(|p| p.session.as_str()).collect();
        assert_eq!(sessions, ["one"]);
        assert_eq!(second.epoch, first.epoch);
        let id = sockgate_core::SessionId::random();
        assert_eq!(second.key.pid(id), first.key.pid(id), "the same pid key");
        // A trim drops what the window passed, and the count bound the
        // oldest.
        again.trimmed(100_001, 100_002);
        again.flush().await;
        let (_, third) = DiskJournal::open(&dir, window, 100, 100_010).await.unwrap();
        assert_eq!(third.entries.len(), 2);
        assert!(third.parked.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
