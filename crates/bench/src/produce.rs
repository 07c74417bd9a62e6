//! Producers for the `queue` scenario: what puts a message on its way to
//! the clients. sockgate's admin API (`POST /api/publish`), each queue
//! sockgate consumes (a Redis stream, a NATS JetStream subject, a RabbitMQ
//! queue, a PostgreSQL outbox table), or an outside command that reads one
//! message per line on its standard input (the Node peer's
//! `@socket.io/redis-emitter`).

use std::process::Stdio;
use std::sync::Arc;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin};
use tokio::sync::Mutex;

use crate::http::Api;

/// Where the `queue` scenario sends its messages, as the command line
/// names it: `api`, `redis:URL#STREAM`, `nats:URL#SUBJECT`,
/// `amqp:URL#QUEUE`, `postgres:URL#TABLE` or `command:CMD`.
#[derive(Debug, Clone)]
pub enum Via {
    /// `POST /api/publish` on the server.
    Api,
    /// `XADD stream * payload <json>`.
    Redis {
        /// The broker's URL.
        url: String,
        /// Where the messages go.
        stream: String,
    },
    /// A JetStream publish, acknowledged by the stream.
    Nats {
        /// The broker's URL.
        url: String,
        /// Where the messages go.
        subject: String,
    },
    /// A persistent message to the default exchange, routed to the queue.
    Amqp {
        /// The broker's URL.
        url: String,
        /// Where the messages go.
        queue: String,
    },
    /// `INSERT INTO table (payload) VALUES ($1)`, one transaction each.
    Postgres {
        /// The broker's URL.
        url: String,
        /// Where the messages go.
        table: String,
    },
    /// One line of JSON per message on the command's standard input.
    Command(String),
}

impl Via {
    /// Reads `api`, `KIND:URL#NAME` or `command:CMD`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "api" {
            return Ok(Via::Api);
        }
        let (kind, rest) = text
            .split_once(':')
            .ok_or_else(|| format!("--via {text}: give api, KIND:URL#NAME or command:CMD"))?;
        if kind == "command" {
            return Ok(Via::Command(rest.to_owned()));
        }
        let (url, name) = rest
            .rsplit_once('#')
            .ok_or_else(|| format!("--via {text}: the URL is followed by #NAME"))?;
        let (url, name) = (url.to_owned(), name.to_owned());
        match kind {
            "redis" => Ok(Via::Redis { url, stream: name }),
            "nats" => Ok(Via::Nats { url, subject: name }),
            "amqp" => Ok(Via::Amqp { url, queue: name }),
            "postgres" => Ok(Via::Postgres { url, table: name }),
            _ => Err(format!("--via {text}: unknown kind {kind}")),
        }
    }

    /// A short name for reports: `api`, `redis`, ...
    pub fn label(&self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Redis { .. } => "redis",
            Via::Nats { .. } => "nats",
            Via::Amqp { .. } => "amqp",
            Via::Postgres { .. } => "postgres",
            Via::Command(_) => "command",
        }
    }
}

/// A connected producer; cheap to clone, usable from several tasks.
#[derive(Clone)]
pub enum Producer {
    /// sockgate's admin API.
    Api(Arc<Api>),
    /// A Redis stream.
    Redis(redis::aio::MultiplexedConnection, Arc<str>),
    /// A JetStream subject.
    Nats(async_nats::jetstream::Context, Arc<str>),
    /// A RabbitMQ queue.
    Amqp(Arc<lapin::Channel>, Arc<str>),
    /// A PostgreSQL outbox.
    Postgres(sqlx::PgPool, Arc<str>),
    /// An outside command's standard input.
    Command(Arc<Mutex<ChildStdin>>, Arc<Mutex<Child>>),
}

impl Producer {
    /// Connects to what `via` names; `base` and `key` are the server's
    /// admin API, for `api`; `pool` is how many sends may be in flight.
    pub async fn connect(via: &Via, base: &str, key: &str, pool: u32) -> Result<Self, String> {
        let err = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
        Ok(match via {
            Via::Api => Producer::Api(Arc::new(Api::new(base, key)?)),
            Via::Redis { url, stream } => {
                let client = redis::Client::open(url.as_str()).map_err(|e| err("redis", &e))?;
                let conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|e| err("redis", &e))?;
                Producer::Redis(conn, stream.as_str().into())
            }
            Via::Nats { url, subject } => {
                let client = async_nats::connect(url.as_str())
                    .await
                    .map_err(|e| err("nats", &e))?;
                Producer::Nats(async_nats::jetstream::new(client), subject.as_str().into())
            }
            Via::Amqp { url, queue } => {
                let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
                    .await
                    .map_err(|e| err("amqp", &e))?;
                let channel = conn.create_channel().await.map_err(|e| err("amqp", &e))?;
                // The connection lives as long as the channel needs it.
                std::mem::forget(conn);
                Producer::Amqp(Arc::new(channel), queue.as_str().into())
            }
            Via::Postgres { url, table } => {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(pool.max(1))
                    .connect(url)
                    .await
                    .map_err(|e| err("postgres", &e))?;
                Producer::Postgres(pool, table.as_str().into())
            }
            Via::Command(cmd) => {
                let mut child = tokio::process::Command::new("sh")
                    .arg("-c")
                    .arg(cmd)
                    .stdin(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| err("command", &e))?;
                let stdin = child.stdin.take().ok_or("command: no stdin")?;
                Producer::Command(Arc::new(Mutex::new(stdin)), Arc::new(Mutex::new(child)))
            }
        })
    }

    /// Deletes what the run put on the broker: the stream (Redis, or the
    /// JetStream stream that takes the subject), the queue, or the outbox
    /// table with its notify function.
    pub async fn drop_target(&self) -> Result<(), String> {
        match self {
            Producer::Api(_) | Producer::Command(..) => Ok(()),
            Producer::Redis(conn, stream) => {
                let mut conn = conn.clone();
                redis::cmd("DEL")
                    .arg(&**stream)
                    .query_async::<i64>(&mut conn)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Producer::Nats(js, subject) => {
                let name = js
                    .stream_by_subject(subject.to_string())
                    .await
                    .map_err(|e| e.to_string())?;
                js.delete_stream(name)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Producer::Amqp(channel, queue) => channel
                .queue_delete((&**queue).into(), Default::default())
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Producer::Postgres(pool, table) => {
                for sql in [
                    format!("DROP TABLE IF EXISTS {table}"),
                    format!("DROP FUNCTION IF EXISTS {table}_notify()"),
                ] {
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(pool)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            }
        }
    }

    /// Sends one publish body (`{ user|room, event, data }`): done when the
    /// queue has it (the API answered, the broker acknowledged, the row is
    /// committed, the line is written).
    pub async fn send(&self, body: &Value) -> Result<(), String> {
        let json = body.to_string();
        match self {
            Producer::Api(api) => {
                let answer = api.post("/api/publish", body).await?;
                if answer.is_success() {
                    Ok(())
                } else {
                    Err(format!("HTTP {}", answer.status))
                }
            }
            Producer::Redis(conn, stream) => {
                let mut conn = conn.clone();
                redis::cmd("XADD")
                    .arg(&**stream)
                    .arg("*")
                    .arg("payload")
                    .arg(json)
                    .query_async::<String>(&mut conn)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Producer::Nats(js, subject) => {
                let ack = js
                    .publish(subject.to_string(), json.into())
                    .await
                    .map_err(|e| e.to_string())?;
                ack.await.map(drop).map_err(|e| e.to_string())
            }
            Producer::Amqp(channel, queue) => {
                let confirm = channel
                    .basic_publish(
                        "".into(),
                        (&**queue).into(),
                        lapin::options::BasicPublishOptions::default(),
                        json.as_bytes(),
                        lapin::BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                confirm.await.map(drop).map_err(|e| e.to_string())
            }
            Producer::Postgres(pool, table) => {
                let sql = format!("INSERT INTO {table} (payload) VALUES ($1::jsonb)");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(json)
                    .execute(pool)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Producer::Command(stdin, _) => {
                let mut line = json.into_bytes();
                line.push(b'\n');
                let mut stdin = stdin.lock().await;
                stdin.write_all(&line).await.map_err(|e| e.to_string())?;
                stdin.flush().await.map_err(|e| e.to_string())
            }
        }
    }
}
