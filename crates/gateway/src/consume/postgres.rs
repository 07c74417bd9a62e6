//! A PostgreSQL table as the transactional outbox: the app inserts a row
//! in the same transaction as its own write, and sockgate publishes it.
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS sockgate_outbox (
//!   id bigserial PRIMARY KEY,
//!   payload jsonb NOT NULL,
//!   created_at timestamptz NOT NULL DEFAULT now()
//! );
//! ```
//!
//! sockgate creates the table when it is missing, and a trigger that
//! notifies the channel named after the table on each insert: it listens
//! there, and polls every `poll_ms` besides, in case a notification is
//! lost. Rows are taken in id order with `FOR UPDATE SKIP LOCKED`, so
//! several nodes share one table, and deleted in the same transaction once
//! published: a node that dies mid-batch leaves its rows to the next taker.

use std::sync::Arc;
use std::time::Duration;

use sockgate_core::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Row};
use tokio::sync::watch;

use crate::config::consumers::PostgresSettings;

use super::{Backoff, Consumer, Outage, Sink, stopped_within};

/// Rows taken in one transaction.
const BATCH: i64 = 100;

/// SQL with the table's name in it: the name was checked to be a plain
/// identifier ([`is_identifier`], when the settings were read), and nothing
/// else is put in; the values are bound.
fn safe(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

/// Publishes the rows of one outbox table.
pub struct PostgresConsumer {
    settings: PostgresSettings,
}

/// What a round did.
enum Round {
    /// Took a full batch: there may be more at once.
    More,
    /// Took what there was.
    Drained,
    /// Left a row for later (the node cannot take it now).
    Later,
}

impl PostgresConsumer {
    /// The consumer of `settings`.
    pub fn new(settings: PostgresSettings) -> Self {
        Self { settings }
    }

    fn table(&self) -> &str {
        &self.settings.table
    }

    /// A pool and a listener, with the table and its trigger in place.
    async fn connect(&self) -> sqlx::Result<(PgPool, PgListener)> {
        let options: PgConnectOptions = self.settings.url.parse()?;
        // A busy outbox must not write a log line per query.
        let options = options.disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        self.prepare(&pool).await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(self.table()).await?;
        Ok((pool, listener))
    }

    /// The table, and the trigger that notifies on insert. Several nodes
    /// starting at once each run this: an advisory lock takes them in
    /// turn, since concurrent `CREATE … IF NOT EXISTS` can still collide.
    async fn prepare(&self, pool: &PgPool) -> sqlx::Result<()> {
        let t = self.table();
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("sockgate:{t}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(safe(format!(
            "CREATE TABLE IF NOT EXISTS {t} (id bigserial PRIMARY KEY, payload jsonb NOT NULL, \
             created_at timestamptz NOT NULL DEFAULT now())"
        )))
        .execute(&mut *tx)
        .await?;
        sqlx::query(safe(format!(
            "CREATE OR REPLACE FUNCTION {t}_notify() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_notify('{t}', ''); RETURN NULL; END $$"
        )))
        .execute(&mut *tx)
        .await?;
        sqlx::query(safe(format!(
            "CREATE OR REPLACE TRIGGER {t}_notify AFTER INSERT ON {t} \
             FOR EACH STATEMENT EXECUTE FUNCTION {t}_notify()"
        )))
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Takes a batch of rows in id order, publishes them one by one, and
    /// deletes those done, in one transaction.
    async fn round(&self, pool: &PgPool, sink: &Sink) -> sqlx::Result<Round> {
        let t = self.table();
        let mut tx = pool.begin().await?;
        let rows = sqlx::query(safe(format!(
            "SELECT id, payload::text AS payload FROM {t} ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
        )))
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let mut done = Vec::with_capacity(rows.len());
        let mut later = false;
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let payload: String = row.try_get("payload")?;
            if !sink
                .take(&id.to_string(), payload.as_bytes())
                .await
                .is_final()
            {
                later = true;
                break;
            }
            done.push(id);
        }
        if !done.is_empty() {
            sqlx::query(safe(format!("DELETE FROM {t} WHERE id = ANY($1)")))
                .bind(&done)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(if later {
            Round::Later
        } else if rows.len() as i64 == BATCH {
            Round::More
        } else {
            Round::Drained
        })
    }

    /// Rows waiting, for the figures.
    async fn lag(&self, pool: &PgPool) -> Option<u64> {
        let count: i64 = sqlx::query_scalar(safe(format!("SELECT count(*) FROM {}", self.table())))
            .fetch_one(pool)
            .await
            .ok()?;
        u64::try_from(count).ok()
    }

    /// Until `stop` or a failure: rounds while there are rows, then waits
    /// for a notification or the next poll.
    async fn serve(
        &self,
        pool: &PgPool,
        listener: &mut PgListener,
        sink: &Sink,
        stop: &mut watch::Receiver<bool>,
    ) -> sqlx::Result<()> {
        let poll = Duration::from_millis(self.settings.poll_ms.max(10));
        let mut backoff = Backoff::default();
        while !*stop.borrow() {
            match self.round(pool, sink).await? {
                Round::More => continue,
                Round::Later => {
                    backoff.wait(stop).await;
                    continue;
                }
                Round::Drained => backoff.reset(),
            }
            sink.gauge().set_lag(self.lag(pool).await);
            tokio::select! {
                notified = listener.recv() => { notified?; }
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => {}
            }
        }
        Ok(())
    }
}

impl Consumer for PostgresConsumer {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn run(self: Arc<Self>, sink: Sink, mut stop: watch::Receiver<bool>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let mut backoff = Backoff::default();
            let mut outage = Outage::new("the outbox", &self.settings.url);
            while !*stop.borrow() {
                let (pool, mut listener) = match self.connect().await {
                    Ok(c) => c,
                    Err(e) => {
                        outage.failed(&sink, &e);
                        backoff.wait(&mut stop).await;
                        continue;
                    }
                };
                backoff.reset();
                outage.running(&sink);
                let result = self.serve(&pool, &mut listener, &sink, &mut stop).await;
                // The listener holds one of the pool's connections, which
                // `close` would wait for.
                drop(listener);
                pool.close().await;
                if let Err(e) = result {
                    outage.failed(&sink, &e);
                    if stopped_within(&mut stop, Duration::from_millis(100)).await {
                        break;
                    }
                    backoff.wait(&mut stop).await;
                }
            }
            sink.gauge().set_state("stopped");
        })
    }
}
