//! Configuration: one set of settings from a TOML file, the environment and
//! command-line flags, in rising order of precedence.
//!
//! [`Settings`] is the raw, all-optional form shared by all three sources
//! (every field is documented in `docs/configuration.md`). [`Config`] is the
//! checked form the server runs on: defaults applied, keys loaded.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use serde::{Deserialize, Serialize};
use sockgate_auth::{
    Exposure, Jwks, Rules, SessionCookies, SessionIdentity, SourcePolicy, Verifier, VerifyKey,
};

use sockgate_core::Lifecycle;
use sockgate_core::hooks::App;
use sockgate_core::limits::{AbuseLimits, Limits, Rate};
use sockgate_core::origins::{DEV_ORIGINS, Origins};
use sockgate_core::policy::{Policy, RoomRule};
use sockgate_core::recovery::{PidKey, Settings as RecoverySettings};
use sockgate_core::rooms::UserRoom;
use sockgate_core::session::{LimitPolicy, SessionLimit};
use sockgate_engine::engine::Compression;

use crate::outbound::jwks::HttpJwks;
use crate::outbound::webhook::Webhook;
pub use crate::telemetry::logging::LogFormat;
pub use proxies::TrustedProxies;

pub mod consumers;
pub mod events;
mod proxies;
pub mod token;

/// Address listened on when `listen` is not set.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3001";
/// Shortest admin API key accepted.
pub const MIN_API_KEY_BYTES: usize = 16;
use sockgate_auth::keys::MIN_SECRET_BYTES;

/// Every setting, each optional. Flags and environment variables come from
/// clap; the TOML file uses the same names in snake_case.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on [default: 127.0.0.1:3001].
    #[arg(long, env = "SOCKGATE_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,

    /// HMAC secret for HS256/384/512 tokens, at least 32 bytes. `JWT_SECRET` is read too.
    #[arg(long, env = "SOCKGATE_JWT_SECRET", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<Secret>,

    /// A previous HMAC secret still accepted during a rotation.
    #[arg(long, env = "SOCKGATE_JWT_PREVIOUS_SECRET", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_previous_secret: Option<Secret>,

    /// Path to a PEM public key (RSA, EC P-256/P-384, Ed25519).
    #[arg(long, env = "SOCKGATE_JWT_PUBLIC_KEY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_public_key: Option<PathBuf>,

    /// URL of a JWKS endpoint; keys are chosen by `kid`.
    #[arg(long, env = "SOCKGATE_JWKS_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,

    /// Seconds between scheduled JWKS refreshes [default: 300].
    #[arg(long, env = "SOCKGATE_JWKS_REFRESH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_refresh: Option<u64>,

    /// Minimum seconds between refetches caused by an unknown `kid` [default: 10].
    #[arg(long, env = "SOCKGATE_JWKS_MIN_REFETCH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_min_refetch: Option<u64>,

    /// Accepted `iss` values, comma-separated; unset skips the check.
    #[arg(long, env = "SOCKGATE_JWT_ISSUER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_issuer: Option<String>,

    /// Accepted `aud` values, comma-separated; unset skips the check.
    #[arg(long, env = "SOCKGATE_JWT_AUDIENCE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_audience: Option<String>,

    /// Clock leeway in seconds for `exp` and `nbf` [default: 0].
    #[arg(long, env = "SOCKGATE_JWT_LEEWAY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_leeway: Option<u64>,

    /// Refuse tokens without `exp` [default: true].
    #[arg(long, env = "SOCKGATE_JWT_REQUIRE_EXP", value_parser = BoolishValueParser::new())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_require_exp: Option<bool>,

    /// The claim naming the user [default: sub].
    #[arg(long, env = "SOCKGATE_USER_CLAIM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_claim: Option<String>,

    /// The per-user room's name, a template with one `{id}` [default: user:{id}].
    #[arg(long, env = "SOCKGATE_USER_ROOM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_room: Option<String>,

    /// Comma-separated claims clients may read (`auth:whoami`) [default: every claim but credentials].
    #[arg(long, env = "SOCKGATE_EXPOSED_CLAIMS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_claims: Option<String>,

    /// Name of an HTTP-only cookie that may carry the token; unset turns cookie auth off.
    #[arg(long, env = "SOCKGATE_AUTH_COOKIE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_cookie: Option<String>,

    /// The Next.js app's `NEXTAUTH_SECRET` / `AUTH_SECRET` (at least 32 bytes), comma-separated for rotation, newest first: accepts Next-Auth / Auth.js session cookies; unset turns them off.
    #[arg(long, env = "SOCKGATE_NEXTAUTH_SECRET", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nextauth_secret: Option<Secret>,

    /// The session cookie's name, for apps that renamed it [default: the four standard Next-Auth v4 and Auth.js v5 names].
    #[arg(long, env = "SOCKGATE_NEXTAUTH_COOKIE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nextauth_cookie: Option<String>,

    /// The session claim holding a backend JWT (e.g. `accessToken`) that is verified with the JWT keys and becomes the identity; `none`: the session's own claims are [default: a backend JWT under accessToken, access_token or token that verifies with the JWT keys, else the session's claims].
    #[arg(long, env = "SOCKGATE_NEXTAUTH_TOKEN_CLAIM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nextauth_token_claim: Option<String>,

    /// Also accept `?token=` on the handshake URL [default: false].
    #[arg(long, env = "SOCKGATE_TOKEN_QUERY", value_parser = BoolishValueParser::new(),
          num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_query: Option<bool>,

    /// Seconds after a token's `exp` before its connection is ended [default: 0].
    #[arg(long, env = "SOCKGATE_EXPIRY_GRACE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_grace: Option<u64>,

    /// Seconds before expiry that `auth:expiring` is sent; at most a quarter of the token's lifetime [default: 60].
    #[arg(long, env = "SOCKGATE_REFRESH_LEAD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_lead: Option<u64>,

    /// Most sessions one user may hold at once [default: unlimited].
    #[arg(long, env = "SOCKGATE_MAX_SESSIONS_PER_USER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_sessions_per_user: Option<usize>,

    /// At the session limit: `reject` the new handshake or `evict-oldest` [default: reject].
    #[arg(long, env = "SOCKGATE_SESSION_LIMIT_POLICY", value_parser = str::parse::<LimitPolicy>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_limit_policy: Option<LimitPolicy>,

    /// Directory for local state (the revocation store) [default: ./sockgate-data].
    #[arg(long, env = "SOCKGATE_DATA_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,

    /// Key for the admin HTTP API (at least 16 bytes); unset disables the API.
    #[arg(long, env = "SOCKGATE_API_KEY", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,

    /// The claim holding room capabilities [default: rooms].
    #[arg(long, env = "SOCKGATE_ROOMS_CLAIM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rooms_claim: Option<String>,

    /// Room rules; only in the config file (`[[room_rules]]`).
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_rules: Option<Vec<RoomRule>>,

    /// URL of the authorization webhook; unset turns it off.
    #[arg(long, env = "SOCKGATE_AUTHZ_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authz_url: Option<String>,

    /// Seconds the webhook's answers are cached [default: 30].
    #[arg(long, env = "SOCKGATE_AUTHZ_CACHE_TTL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authz_cache_ttl: Option<u64>,

    /// Milliseconds to wait for the webhook before answering AUTH_UNAVAILABLE [default: 2000].
    #[arg(long, env = "SOCKGATE_AUTHZ_TIMEOUT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authz_timeout_ms: Option<u64>,

    /// The app's backend for the client events sockgate does not handle (http:// or https://); unset: they are acked UNKNOWN_EVENT.
    #[arg(long, env = "SOCKGATE_EVENTS_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_url: Option<String>,

    /// The secret event calls are signed with (at least 32 bytes); required with SOCKGATE_EVENTS_URL.
    #[arg(long, env = "SOCKGATE_EVENTS_SECRET", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_secret: Option<Secret>,

    /// Milliseconds the app's backend has to answer an event [default: 5000].
    #[arg(long, env = "SOCKGATE_EVENTS_TIMEOUT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_timeout_ms: Option<u64>,

    /// Most events one user may have waiting for the app's backend at once, across their sockets [default: 16].
    #[arg(long, env = "SOCKGATE_EVENTS_CONCURRENCY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_concurrency: Option<usize>,

    /// The app's connect hook, asked who a handshake without a credential sockgate verifies is; unset: off.
    #[arg(long, env = "SOCKGATE_CONNECT_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_url: Option<String>,

    /// The secret connect-hook calls are signed with (at least 32 bytes) [default: SOCKGATE_EVENTS_SECRET].
    #[arg(long, env = "SOCKGATE_CONNECT_SECRET", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_secret: Option<Secret>,

    /// Comma-separated request headers the connect hook is shown [default: cookie,authorization,user-agent,origin].
    #[arg(long, env = "SOCKGATE_CONNECT_HEADERS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_headers: Option<String>,

    /// Event routes by name pattern; only in the config file (`[[events]]`).
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<events::RouteSettings>>,

    /// Every room tells its members room:joined and room:left (else only the rooms of room rules with presence_events = true) [default: false].
    #[arg(long, env = "SOCKGATE_ROOM_PRESENCE_EVENTS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_presence_events: Option<bool>,

    /// Where lifecycle events (sessions, users, rooms) are POSTed in signed batches; unset: off.
    #[arg(long, env = "SOCKGATE_WEBHOOK_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,

    /// The secret lifecycle webhooks are signed with (at least 32 bytes) [default: SOCKGATE_EVENTS_SECRET].
    #[arg(long, env = "SOCKGATE_WEBHOOK_SECRET", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<Secret>,

    /// Comma-separated event types sent (session.started, session.ended, user.online, user.offline, room.occupied, room.vacated, member.joined, member.left) [default: all].
    #[arg(long, env = "SOCKGATE_WEBHOOK_EVENTS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_events: Option<String>,

    /// Milliseconds events wait to go out together [default: 50].
    #[arg(long, env = "SOCKGATE_WEBHOOK_BATCH_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_batch_ms: Option<u64>,

    /// Seconds user.offline, room.vacated and room:left wait for a return that cancels them [default: 5].
    #[arg(long, env = "SOCKGATE_WEBHOOK_OFFLINE_DELAY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_offline_delay: Option<f64>,

    /// Seconds a batch is retried before it is given up [default: 300].
    #[arg(long, env = "SOCKGATE_WEBHOOK_RETRY_FOR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_retry_for: Option<u64>,

    /// Redis URL of the stream consumer [default: SOCKGATE_REDIS_URL].
    #[arg(long, env = "SOCKGATE_CONSUME_REDIS_URL", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_redis_url: Option<Secret>,

    /// A Redis stream to publish from (consumer group `sockgate`, field `payload`); unset: off.
    #[arg(long, env = "SOCKGATE_CONSUME_REDIS_STREAM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_redis_stream: Option<String>,

    /// Seconds a message another node took stays unacknowledged before it is taken again (Redis XAUTOCLAIM, NATS ack wait) [default: 30].
    #[arg(long, env = "SOCKGATE_CONSUME_CLAIM_IDLE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_claim_idle: Option<u64>,

    /// NATS URL of the JetStream consumer.
    #[arg(long, env = "SOCKGATE_CONSUME_NATS_URL", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_nats_url: Option<Secret>,

    /// A JetStream stream to publish from (durable pull consumer `sockgate`); unset: off.
    #[arg(long, env = "SOCKGATE_CONSUME_NATS_STREAM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_nats_stream: Option<String>,

    /// The subject the stream takes, created with it when missing [default: the stream's name].
    #[arg(long, env = "SOCKGATE_CONSUME_NATS_SUBJECT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_nats_subject: Option<String>,

    /// AMQP URL of the RabbitMQ consumer (amqp://user:pass@host:5672/%2f).
    #[arg(long, env = "SOCKGATE_CONSUME_AMQP_URL", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_amqp_url: Option<Secret>,

    /// A RabbitMQ queue to publish from, declared durable when missing; unset: off.
    #[arg(long, env = "SOCKGATE_CONSUME_AMQP_QUEUE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_amqp_queue: Option<String>,

    /// PostgreSQL URL of the outbox consumer; unset: off.
    #[arg(long, env = "SOCKGATE_CONSUME_POSTGRES_URL", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_postgres_url: Option<Secret>,

    /// The outbox table, created when missing [default: sockgate_outbox].
    #[arg(long, env = "SOCKGATE_CONSUME_POSTGRES_TABLE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_postgres_table: Option<String>,

    /// Consumers of the app's queues; only in the config file (`[[consumers]]`).
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumers: Option<Vec<consumers::ConsumerSettings>>,

    /// Largest `data` of room:publish and /api/publish, in bytes [default: 65536].
    #[arg(long, env = "SOCKGATE_MAX_PAYLOAD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_payload: Option<usize>,

    /// Seconds a publish's idempotencyKey is remembered: a second publish with it is a duplicate, delivered to nobody [default: 300].
    #[arg(long, env = "SOCKGATE_IDEMPOTENCY_WINDOW")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_window: Option<u64>,

    /// Most rooms one socket may be in, its own user room not counted [default: 100].
    #[arg(long, env = "SOCKGATE_MAX_ROOMS_PER_SOCKET")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rooms_per_socket: Option<usize>,

    /// Handshakes per second one client address may make; 0 turns the limit off [default: 50].
    #[arg(long, env = "SOCKGATE_HANDSHAKE_RATE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake_rate: Option<u32>,

    /// Handshakes one client address may make at once [default: 200].
    #[arg(long, env = "SOCKGATE_HANDSHAKE_BURST")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake_burst: Option<u32>,

    /// Events per second one socket may send; 0 turns the limit off [default: 100].
    #[arg(long, env = "SOCKGATE_EVENT_RATE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_rate: Option<u32>,

    /// Events one socket may send at once [default: 200].
    #[arg(long, env = "SOCKGATE_EVENT_BURST")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_burst: Option<u32>,

    /// Most transports open and not yet authenticated, across all clients [default: 4096].
    #[arg(long, env = "SOCKGATE_MAX_PENDING_HANDSHAKES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pending_handshakes: Option<usize>,

    /// Reverse proxies whose X-Forwarded-For / Forwarded headers name the client: addresses and CIDRs, comma-separated [default: none].
    #[arg(long, env = "SOCKGATE_TRUSTED_PROXIES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_proxies: Option<String>,

    /// Most connections the gateway holds [default: unlimited].
    #[arg(long, env = "SOCKGATE_MAX_CONNECTIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,

    /// Most TCP connections open at once, counted when they are accepted; past it a new one is closed at once [default: the open-file limit minus 128].
    #[arg(long, env = "SOCKGATE_MAX_TCP_CONNECTIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tcp_connections: Option<usize>,

    /// Most TCP connections one client address (IPv6: one /64) may hold open; trusted proxies are not counted; 0 turns the cap off [default: 4096].
    #[arg(long, env = "SOCKGATE_MAX_TCP_CONNECTIONS_PER_ADDRESS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tcp_connections_per_address: Option<usize>,

    /// Seconds a connection has to send a whole request head, from its first byte (or from the accept, for its first request) [default: 10].
    #[arg(long, env = "SOCKGATE_HEADER_TIMEOUT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_timeout: Option<u64>,

    /// Seconds a keep-alive connection may wait for its next request before it is closed [default: 60].
    #[arg(long, env = "SOCKGATE_KEEPALIVE_TIMEOUT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive_timeout: Option<u64>,

    /// Seconds a request's whole body (a long-polling post, an admin API call) has to arrive [default: 30].
    #[arg(long, env = "SOCKGATE_BODY_TIMEOUT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_timeout: Option<u64>,

    /// Also serve HTTP/2 (cleartext prior knowledge, and `h2` by ALPN with TLS) on the main listener [default: false].
    #[arg(long, env = "SOCKGATE_HTTP2", value_parser = BoolishValueParser::new())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2: Option<bool>,

    /// Seconds a client has from opening the transport to the Socket.IO handshake [default: 10].
    #[arg(long, env = "SOCKGATE_HANDSHAKE_TIMEOUT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake_timeout: Option<u64>,

    /// Largest incoming message, in bytes [default: SOCKGATE_MAX_PAYLOAD + 65536].
    #[arg(long, env = "SOCKGATE_MAX_MESSAGE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_message: Option<usize>,

    /// Browser origins allowed to connect, comma-separated; required with cookie auth.
    #[arg(long, env = "SOCKGATE_ALLOWED_ORIGINS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_origins: Option<String>,

    /// PEM certificate chain: serve TLS (wss://, https://) with SOCKGATE_TLS_KEY.
    #[arg(long, env = "SOCKGATE_TLS_CERT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of SOCKGATE_TLS_CERT.
    #[arg(long, env = "SOCKGATE_TLS_KEY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,

    /// Secret shared by the nodes of a cluster, at least 32 bytes: seals their announcements [default: derived from JWT_SECRET].
    #[arg(long, env = "SOCKGATE_CLUSTER_SECRET", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_secret: Option<Secret>,

    /// Redis URL: joins this node to a cluster (e.g. redis://127.0.0.1:6379).
    #[arg(long, env = "SOCKGATE_REDIS_URL", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,

    /// Compress WebSocket messages with permessage-deflate when the client offers it (browsers and socket.io-client do) [default: true].
    #[arg(long, env = "SOCKGATE_WS_COMPRESSION", value_parser = BoolishValueParser::new())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_compression: Option<bool>,

    /// WebSocket messages smaller than this many bytes go uncompressed [default: 256].
    #[arg(long, env = "SOCKGATE_WS_COMPRESSION_THRESHOLD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_compression_threshold: Option<usize>,

    /// Keep each WebSocket's compression contexts between messages: better ratios, about 150 KiB per connection that compressed once [default: false].
    #[arg(long, env = "SOCKGATE_WS_CONTEXT_TAKEOVER", value_parser = BoolishValueParser::new())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_context_takeover: Option<bool>,

    /// Most bytes waiting to be sent to one connection; a client that reads slower than it is sent to is closed past it (close code 1013), and reconnects [default: 4194304].
    #[arg(long, env = "SOCKGATE_MAX_OUTBOX")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_outbox: Option<usize>,

    /// Seconds the fragments of one WebSocket message may take to arrive; past them the connection is closed (close code 1002) [default: 10].
    #[arg(long, env = "SOCKGATE_WS_FRAGMENT_TIMEOUT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_fragment_timeout: Option<u64>,

    /// Seconds a dropped session can be recovered in, with its id, rooms and missed room messages; 0 turns recovery off [default: 120].
    #[arg(long, env = "SOCKGATE_RECOVERY_WINDOW")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_window: Option<u64>,

    /// Most room messages one session may miss and still recover [default: 1000].
    #[arg(long, env = "SOCKGATE_RECOVERY_MAX_PACKETS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_max_packets: Option<usize>,

    /// Most bytes of room messages one session may miss and still recover [default: 1048576].
    #[arg(long, env = "SOCKGATE_RECOVERY_MAX_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_max_bytes: Option<usize>,

    /// How many room messages the recovery history keeps, across every room; past it the room holding the most loses its oldest [default: 10000].
    #[arg(long, env = "SOCKGATE_RECOVERY_HISTORY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_history: Option<usize>,

    /// How many bytes of room messages the recovery history keeps, as stored, across every room; past it the room holding the most loses its oldest [default: 33554432].
    #[arg(long, env = "SOCKGATE_RECOVERY_HISTORY_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_history_bytes: Option<usize>,

    /// Seconds over which the sessions' ends are spread on SIGTERM/SIGINT, so clients do not all reconnect at once; fractions allowed [default: 3].
    #[arg(long, env = "SOCKGATE_DRAIN_WINDOW")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_window: Option<f64>,

    /// Seconds open connections get to close on SIGTERM/SIGINT before the process exits [default: 10].
    #[arg(long, env = "SOCKGATE_SHUTDOWN_TIMEOUT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout: Option<u64>,

    /// Also serve `/metrics`, without the API key, on this address (e.g. a private 10.0.0.5:9464) [default: none].
    #[arg(long, env = "SOCKGATE_METRICS_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,

    /// Log format: `json` or `pretty` [default: json; pretty with --dev].
    #[arg(long, env = "SOCKGATE_LOG_FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,

    /// Log filter, e.g. `info` or `sockgate=debug` [default: info].
    #[arg(long, env = "SOCKGATE_LOG")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// A secret string whose `Debug` never shows it, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// The secret itself, for where it is used (never for a log line).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// A configuration that cannot run; the message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        /// The config file's path.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for [`Settings`].
    #[error("invalid config file {path}: {message}")]
    ParseFile {
        /// The config file's path.
        path: PathBuf,
        /// What is wrong and on which line, without quoting the file.
        message: String,
    },
    /// A setting's value cannot be run with.
    #[error("{setting}: {message}")]
    Invalid {
        /// The setting, by its environment variable (`SOCKGATE_USER_CLAIM`).
        setting: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// No verification key is configured (nor session cookies that need none).
    #[error(
        "no verification key configured: set JWT_SECRET, SOCKGATE_JWT_PUBLIC_KEY or \
         SOCKGATE_JWKS_URL (or run `sockgate serve --dev` to try sockgate out)"
    )]
    NoKeys,
}

fn invalid(setting: &'static str, message: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.to_string(),
    }
}

impl Settings {
    /// Layers `self` (flags and environment) over the optional TOML file.
    ///
    /// clap already gives flags precedence over their environment variables;
    /// `JWT_SECRET` is the one name clap cannot see, so it is read here.
    pub fn resolve(self, file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut merged = match file {
            Some(path) => Self::from_file(path)?,
            None => Settings::default(),
        };
        overlay(&mut merged, self);
        // An empty secret (`JWT_SECRET=` in a compose file) means "not set".
        for secret in [
            &mut merged.jwt_secret,
            &mut merged.jwt_previous_secret,
            &mut merged.api_key,
            &mut merged.cluster_secret,
            &mut merged.nextauth_secret,
        ] {
            if secret.as_ref().is_some_and(|s| s.0.is_empty()) {
                *secret = None;
            }
        }
        if merged.jwt_secret.is_none()
            && let Ok(secret) = std::env::var("JWT_SECRET")
            && !secret.is_empty()
        {
            // Only when neither a flag, SOCKGATE_JWT_SECRET nor the file set one.
            merged.jwt_secret = Some(Secret(secret));
        }
        Ok(merged)
    }

    fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::ParseFile {
            path: path.to_owned(),
            message: parse_error(&e, &text),
        })
    }
}

/// A TOML error without what toml quotes from the file: its snippet of the
/// line, or the value in a type error (`invalid type: string "..."`); either
/// may be a secret.
fn parse_error(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().lines().next().unwrap_or_default();
    let mut what = message.to_owned();
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let kind = rest.split([' ', ',']).next().unwrap_or_default();
            let expected = rest.rfind(", expected").map_or("", |i| &rest[i..]);
            what = format!("{prefix}{kind}{expected}");
        }
    }
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            format!("line {line}: {what}")
        }
        None => what,
    }
}

/// Every field set in `top` replaces the one in `base`. Going through JSON
/// keeps this free of a per-field list that would drift from the struct.
fn overlay(base: &mut Settings, top: Settings) {
    let mut merged = serde_json::to_value(&*base).expect("settings serialize");
    let top = serde_json::to_value(top).expect("settings serialize");
    if let (Some(m), Some(t)) = (merged.as_object_mut(), top.as_object()) {
        m.extend(t.clone());
    }
    *base = serde_json::from_value(merged).expect("settings round-trip");
}

/// The checked configuration the gateway runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the gateway listens on.
    pub listen: SocketAddr,
    /// The claim checks every token must pass.
    pub rules: Rules,
    /// Where a handshake's token may come from besides the `auth` payload.
    pub sources: SourcePolicy,
    /// Where a session cookie's identity comes from (`SOCKGATE_NEXTAUTH_TOKEN_CLAIM`).
    pub session_identity: SessionIdentity,
    /// The per-user room's template (`SOCKGATE_USER_ROOM`).
    pub user_room: UserRoom,
    /// What clients see of the claims (`SOCKGATE_EXPOSED_CLAIMS`).
    pub exposed_claims: Exposure,
    /// Where verification keys come from.
    pub keys: KeySettings,
    /// Expiry grace, refresh lead and the per-user session limit.
    pub lifecycle: Lifecycle,
    /// Room authorization settings.
    pub rooms: RoomSettings,
    /// The app's backend for client events (`SOCKGATE_EVENTS_*`, `[[events]]`).
    pub events: events::Events,
    /// Size limits, the handshake timeout and the allowed origins.
    pub limits: Limits,
    /// Rate limits and connection caps.
    pub abuse: AbuseLimits,
    /// Peers whose forwarding headers name the client.
    pub trusted_proxies: TrustedProxies,
    /// Caps and timeouts of the TCP connections under every request.
    pub connections: ConnectionSettings,
    /// Directory for local state (the revocation store).
    pub data_dir: PathBuf,
    /// Key of the admin HTTP API; `None` disables the API.
    pub api_key: Option<Secret>,
    /// Redis URL of the cluster; `None` runs a single node.
    pub redis_url: Option<String>,
    /// Secret sealing the cluster's announcements; `None`: derived from the
    /// HMAC secret ([`KeySettings::secret`]).
    pub cluster_secret: Option<Secret>,
    /// Certificate and key to serve TLS with; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
    /// On SIGTERM, the sessions' ends are spread over this.
    pub drain_window: Duration,
    /// How long a publish's idempotency key is remembered.
    pub idempotency_window: Duration,
    /// The consumers of the app's queues.
    pub consumers: Vec<consumers::ConsumerSettings>,
    /// The lifecycle webhook; `None` when it is off.
    pub webhook: Option<crate::outbound::lifecycle::Settings>,
    /// Whether every room tells its members `room:joined` and `room:left`.
    pub room_presence_events: bool,
    /// How long `room:left` (and the webhook's `user.offline`,
    /// `room.vacated`) wait for a return.
    pub offline_delay: Duration,
    /// Connection-state recovery; `None` when it is off.
    pub recovery: Option<RecoverySettings>,
    /// WebSocket compression; `None` when it is off.
    pub ws_compression: Option<Compression>,
    /// What one connection may hold: its outbox, a fragmented message.
    pub transport_limits: crate::transports::TransportLimits,
    /// On SIGTERM, how long open connections get to close before the
    /// process exits.
    pub shutdown_timeout: Duration,
    /// A second address serving `/metrics` alone, without the API key.
    pub metrics_listen: Option<SocketAddr>,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// The log filter (`info`, `sockgate=debug`), in `EnvFilter` syntax.
    pub log_filter: String,
}

/// Caps and timeouts of the TCP connections of the main listener (see
/// `crate::http::connections`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// Most connections open at once; `None`: the open-file limit minus a
    /// reserve, read when the server starts.
    pub max_total: Option<usize>,
    /// Most connections one client address may hold; `None`: no cap.
    pub max_per_address: Option<usize>,
    /// How long a request head may take.
    pub header_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub keepalive_timeout: Duration,
    /// How long a request body may take, whole.
    pub body_timeout: Duration,
    /// Whether HTTP/2 is served besides HTTP/1.1.
    pub http2: bool,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            max_total: None,
            max_per_address: Some(4096),
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            http2: false,
        }
    }
}

/// The certificate and key TLS is served with.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Path to the PEM certificate chain.
    pub cert: PathBuf,
    /// Path to the PEM private key of `cert`.
    pub key: PathBuf,
}

/// Room authorization settings.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    /// The token claim holding room capabilities.
    pub claim: String,
    /// The room rules of the config file.
    pub rules: Vec<RoomRule>,
    /// URL of the authorization webhook; `None` turns it off.
    pub authz_url: Option<String>,
    /// How long the webhook's answers are cached.
    pub authz_cache_ttl: Duration,
    /// How long to wait for the webhook before answering `AUTH_UNAVAILABLE`.
    pub authz_timeout: Duration,
}

impl RoomSettings {
    /// The authorization webhook, when set, its URL checked.
    pub fn webhook(&self) -> Result<Option<Webhook>, ConfigError> {
        let Some(url) = &self.authz_url else {
            return Ok(None);
        };
        Webhook::new(url, self.authz_timeout, self.authz_cache_ttl)
            .map(Some)
            .map_err(|e| invalid("SOCKGATE_AUTHZ_URL", e))
    }

    /// The policy, asking `authority` last (the app holding the webhook).
    pub fn policy(&self, authority: Option<Arc<dyn App>>) -> Policy {
        Policy {
            claim: self.claim.clone(),
            rules: self.rules.clone(),
            webhook: authority,
        }
    }
}

/// Where verification keys come from.
#[derive(Debug, Clone, Default)]
pub struct KeySettings {
    /// HMAC secret for HS256/384/512 tokens (`JWT_SECRET`).
    pub secret: Option<Secret>,
    /// A previous HMAC secret still accepted during a rotation.
    pub previous_secret: Option<Secret>,
    /// Path to a PEM public key.
    pub public_key: Option<PathBuf>,
    /// URL of a JWKS endpoint.
    pub jwks_url: Option<String>,
    /// Time between scheduled JWKS refreshes.
    pub jwks_refresh: Duration,
    /// Shortest time between refetches caused by an unknown `kid`.
    pub jwks_min_refetch: Duration,
}

impl KeySettings {
    /// Whether no key is configured: no secret, public key nor JWKS URL (a
    /// previous secret alone does not count).
    pub fn is_empty(&self) -> bool {
        self.secret.is_none() && self.public_key.is_none() && self.jwks_url.is_none()
    }
}

impl Config {
    /// Applies defaults. Keys are only checked by [`Config::verifier`].
    pub fn from_settings(s: Settings, dev: bool) -> Result<Config, ConfigError> {
        let session_cookies = session_cookies(&s)?;
        let events = events::Events::from_settings(&s)?;
        let consumers = consumers::from_settings(&s)?;
        let webhook = webhook_settings(&s)?;
        let offline_delay = offline_delay(&s)?;
        let recovery = recovery_settings(&s)?;
        let connections = connection_settings(&s)?;
        let body_timeout = connections.body_timeout;
        let rules = Rules {
            issuer: list(s.jwt_issuer.as_deref()),
            audience: list(s.jwt_audience.as_deref()),
            leeway_secs: s.jwt_leeway.unwrap_or(0),
            require_exp: s.jwt_require_exp.unwrap_or(true),
            user_claim: s.user_claim.unwrap_or_else(|| "sub".to_owned()),
            ..Rules::default()
        };
        if rules.user_claim.is_empty() {
            return Err(invalid("SOCKGATE_USER_CLAIM", "must not be empty"));
        }
        let keys = KeySettings {
            secret: s.jwt_secret,
            previous_secret: s.jwt_previous_secret,
            public_key: s.jwt_public_key,
            jwks_url: s.jwks_url,
            jwks_refresh: Duration::from_secs(s.jwks_refresh.unwrap_or(300).max(1)),
            jwks_min_refetch: Duration::from_secs(s.jwks_min_refetch.unwrap_or(10)),
        };
        let lifecycle = Lifecycle {
            expiry_grace: Duration::from_secs(s.expiry_grace.unwrap_or(0)),
            refresh_lead: Duration::from_secs(s.refresh_lead.unwrap_or(60)),
            session_limit: match s.max_sessions_per_user {
                Some(0) => {
                    return Err(invalid(
                        "SOCKGATE_MAX_SESSIONS_PER_USER",
                        "must be at least 1",
                    ));
                }
                Some(max) => Some(SessionLimit {
                    max,
                    policy: s.session_limit_policy.unwrap_or(LimitPolicy::Reject),
                }),
                None => None,
            },
        };
        if let Some(key) = &s.api_key
            && key.expose().len() < MIN_API_KEY_BYTES
        {
            return Err(invalid(
                "SOCKGATE_API_KEY",
                format!(
                    "is {} bytes; at least {MIN_API_KEY_BYTES} are required",
                    key.expose().len()
                ),
            ));
        }
        let rooms = RoomSettings {
            claim: s.rooms_claim.unwrap_or_else(|| "rooms".to_owned()),
            rules: s.room_rules.unwrap_or_default(),
            authz_url: s.authz_url.filter(|u| !u.is_empty()),
            authz_cache_ttl: Duration::from_secs(s.authz_cache_ttl.unwrap_or(30)),
            authz_timeout: Duration::from_millis(s.authz_timeout_ms.unwrap_or(2000)),
        };
        let max_payload = s.max_payload.unwrap_or(64 * 1024);
        let allowed_origins = match s.allowed_origins.as_deref() {
            Some(list) => {
                Origins::parse(list).map_err(|e| invalid("SOCKGATE_ALLOWED_ORIGINS", e))?
            }
            // A page on its own dev server (an app on :3000) just works.
            None if dev => Origins::parse(DEV_ORIGINS).expect("the dev origins parse"),
            None => None,
        };
        let cookie = s.auth_cookie.clone().filter(|c| !c.is_empty());
        for (setting, on) in [
            ("SOCKGATE_AUTH_COOKIE", cookie.is_some()),
            ("SOCKGATE_NEXTAUTH_SECRET", session_cookies.is_some()),
        ] {
            if on && allowed_origins.is_none() {
                return Err(invalid(
                    setting,
                    "cookie auth needs SOCKGATE_ALLOWED_ORIGINS: browsers send cookies with \
                     cross-site WebSocket handshakes, so any site could open a socket as your user",
                ));
            }
        }
        let session_identity = match s.nextauth_token_claim.as_deref() {
            None | Some("") => SessionIdentity::Detect,
            Some("none") => SessionIdentity::Session,
            Some(claim) => SessionIdentity::TokenIn(claim.to_owned()),
        };
        if s.nextauth_token_claim
            .as_deref()
            .is_some_and(|c| !c.is_empty())
            && session_cookies.is_none()
        {
            return Err(invalid(
                "SOCKGATE_NEXTAUTH_TOKEN_CLAIM",
                "needs SOCKGATE_NEXTAUTH_SECRET to open the session cookie",
            ));
        }
        let user_room = match s.user_room.as_deref() {
            None | Some("") => UserRoom::default(),
            Some(template) => {
                UserRoom::parse(template).map_err(|e| invalid("SOCKGATE_USER_ROOM", e))?
            }
        };
        let exposed_claims = match s.exposed_claims.as_deref() {
            None => Exposure::all(),
            Some(names) => Exposure::only(list(Some(names)).unwrap_or_default()),
        };
        let limits = Limits {
            max_payload,
            max_rooms_per_socket: s.max_rooms_per_socket.unwrap_or(100),
            // Room for the publish limit plus the event envelope.
            max_message: s.max_message.unwrap_or(max_payload + 64 * 1024),
            handshake_timeout: Duration::from_secs(s.handshake_timeout.unwrap_or(10).max(1)),
            allowed_origins,
        };
        let defaults = AbuseLimits::default();
        let abuse = AbuseLimits {
            handshakes_per_ip: Rate {
                per_second: s
                    .handshake_rate
                    .unwrap_or(defaults.handshakes_per_ip.per_second),
                burst: s
                    .handshake_burst
                    .unwrap_or(defaults.handshakes_per_ip.burst),
            },
            events_per_socket: Rate {
                per_second: s
                    .event_rate
                    .unwrap_or(defaults.events_per_socket.per_second),
                burst: s.event_burst.unwrap_or(defaults.events_per_socket.burst),
            },
            max_connections: s.max_connections,
            max_pending_handshakes: match s.max_pending_handshakes {
                Some(0) => {
                    return Err(invalid(
                        "SOCKGATE_MAX_PENDING_HANDSHAKES",
                        "must be at least 1",
                    ));
                }
                Some(n) => n,
                None => defaults.max_pending_handshakes,
            },
        };
        let trusted_proxies = TrustedProxies::parse(s.trusted_proxies.as_deref().unwrap_or(""))
            .map_err(|e| invalid("SOCKGATE_TRUSTED_PROXIES", e))?;
        let idempotency_window = s.idempotency_window.unwrap_or(300);
        if !(1..=86_400).contains(&idempotency_window) {
            return Err(invalid(
                "SOCKGATE_IDEMPOTENCY_WINDOW",
                "must be 1 to 86400 seconds",
            ));
        }
        let drain_window = s.drain_window.unwrap_or(3.0);
        if !(0.0..=3600.0).contains(&drain_window) {
            return Err(invalid(
                "SOCKGATE_DRAIN_WINDOW",
                "must be between 0 and 3600 seconds",
            ));
        }
        Ok(Config {
            listen: s
                .listen
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("default address")),
            rules,
            sources: SourcePolicy {
                cookie: s.auth_cookie.filter(|c| !c.is_empty()),
                session_cookies,
                query: s.token_query.unwrap_or(false),
            },
            session_identity,
            user_room,
            exposed_claims,
            keys,
            lifecycle,
            rooms,
            events,
            limits,
            abuse,
            trusted_proxies,
            connections,
            data_dir: s.data_dir.unwrap_or_else(|| PathBuf::from("sockgate-data")),
            api_key: s.api_key,
            redis_url: s.redis_url.filter(|u| !u.is_empty()),
            cluster_secret: s.cluster_secret,
            tls: match (s.tls_cert, s.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                (None, None) => None,
                _ => {
                    return Err(invalid(
                        "SOCKGATE_TLS_CERT",
                        "set both SOCKGATE_TLS_CERT and SOCKGATE_TLS_KEY, or neither",
                    ));
                }
            },
            drain_window: Duration::from_secs_f64(drain_window),
            idempotency_window: Duration::from_secs(idempotency_window),
            consumers,
            webhook,
            room_presence_events: s.room_presence_events.unwrap_or(false),
            offline_delay,
            recovery,
            ws_compression: s.ws_compression.unwrap_or(true).then(|| Compression {
                threshold: s.ws_compression_threshold.unwrap_or(256),
                context_takeover: s.ws_context_takeover.unwrap_or(false),
            }),
            transport_limits: crate::transports::TransportLimits {
                max_outbox: s.max_outbox.unwrap_or(4 << 20).max(64 * 1024),
                fragment_timeout: Duration::from_secs(s.ws_fragment_timeout.unwrap_or(10).max(1)),
                body_timeout,
            },
            shutdown_timeout: Duration::from_secs(s.shutdown_timeout.unwrap_or(10)),
            metrics_listen: s.metrics_listen,
            log_format: s.log_format.unwrap_or(if dev {
                LogFormat::Pretty
            } else {
                LogFormat::Json
            }),
            log_filter: s.log.unwrap_or_else(|| "info".to_owned()),
        })
    }

    /// The key of recovery `pid`s: the cluster's (derived from its secret)
    /// or, on a single node, one of this process.
    pub fn pid_key(&self) -> Result<PidKey, ConfigError> {
        match &self.redis_url {
            Some(_) => Ok(PidKey::new(self.cluster_secret()?.expose().as_bytes())),
            None => Ok(PidKey::random()),
        }
    }

    /// The secret that seals the cluster's announcements:
    /// `SOCKGATE_CLUSTER_SECRET`, else `JWT_SECRET` (every node of an HMAC
    /// deployment has it).
    pub fn cluster_secret(&self) -> Result<&Secret, ConfigError> {
        let secret = match (&self.cluster_secret, &self.keys.secret) {
            (Some(secret), _) if secret.expose().len() < 32 => {
                return Err(invalid(
                    "SOCKGATE_CLUSTER_SECRET",
                    "must be at least 32 bytes",
                ));
            }
            (Some(secret), _) | (None, Some(secret)) => secret,
            (None, None) => {
                return Err(invalid(
                    "SOCKGATE_CLUSTER_SECRET",
                    "cluster mode needs a secret shared by every node (at least 32 bytes) \
                     to seal their announcements; set it, or JWT_SECRET",
                ));
            }
        };
        Ok(secret)
    }

    /// Loads every configured key and returns the verifier, plus the JWKS set
    /// when one is configured (the server keeps it fresh).
    pub fn verifier(&self) -> Result<(Verifier, Option<Arc<Jwks>>), ConfigError> {
        let k = &self.keys;
        // Session cookies alone need no JWT key, unless they carry a backend token.
        let cookies_alone = self.sources.session_cookies.is_some()
            && !matches!(self.session_identity, SessionIdentity::TokenIn(_));
        // The connect hook alone needs no key either: the app says who it is.
        let hook_alone = self.events.connect.is_some();
        if k.is_empty() && !cookies_alone && !hook_alone {
            return Err(ConfigError::NoKeys);
        }
        let mut verifier = Verifier::new(self.rules.clone());
        if let Some(jar) = &self.sources.session_cookies {
            verifier = verifier.with_session_cookies(jar.clone(), self.session_identity.clone());
        }
        for (setting, secret) in [
            ("JWT_SECRET", &k.secret),
            ("SOCKGATE_JWT_PREVIOUS_SECRET", &k.previous_secret),
        ] {
            if let Some(secret) = secret {
                let key = VerifyKey::hmac(secret.expose().as_bytes(), &self.rules)
                    .map_err(|e| invalid(setting, e))?;
                verifier = verifier.with_hmac(key);
            }
        }
        if let Some(path) = &k.public_key {
            let pem = std::fs::read(path).map_err(|e| {
                invalid(
                    "SOCKGATE_JWT_PUBLIC_KEY",
                    format!("{}: {e}", path.display()),
                )
            })?;
            let key = VerifyKey::from_pem(&pem, &self.rules)
                .map_err(|e| invalid("SOCKGATE_JWT_PUBLIC_KEY", e))?;
            verifier = verifier.with_public_key(key);
        }
        let mut jwks = None;
        if let Some(url) = &k.jwks_url {
            let fetcher = HttpJwks::new(url).map_err(|e| invalid("SOCKGATE_JWKS_URL", e))?;
            let set = Arc::new(Jwks::new(fetcher, self.rules.clone(), k.jwks_min_refetch));
            verifier = verifier.with_jwks(set.clone());
            jwks = Some(set);
        }
        Ok((verifier, jwks))
    }
}

/// The Next-Auth session cookies, with their keys derived from every
/// configured secret. A secret is the app's `NEXTAUTH_SECRET`: the cookies'
/// keys come from it through HKDF alone, so a short one could be guessed
/// offline from any cookie; the same 32-byte floor as `JWT_SECRET` applies.
fn session_cookies(s: &Settings) -> Result<Option<Arc<SessionCookies>>, ConfigError> {
    let Some(secrets) = s
        .nextauth_secret
        .as_ref()
        .and_then(|s| list(Some(s.expose())))
    else {
        return Ok(None);
    };
    if let Some(short) = secrets.iter().find(|s| s.len() < MIN_SECRET_BYTES) {
        return Err(invalid(
            "SOCKGATE_NEXTAUTH_SECRET",
            format!(
                "a secret is {} bytes; at least {MIN_SECRET_BYTES} are required \
                 (`openssl rand -base64 32` makes one)",
                short.len()
            ),
        ));
    }
    let rename = s.nextauth_cookie.as_deref().filter(|c| !c.is_empty());
    Ok(Some(Arc::new(SessionCookies::new(&secrets, rename))))
}

fn list(value: Option<&str>) -> Option<Vec<String>> {
    let items: Vec<String> = value?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!items.is_empty()).then_some(items)
}

/// The connections' caps and timeouts; every timeout is at least a second.
fn connection_settings(s: &Settings) -> Result<ConnectionSettings, ConfigError> {
    let defaults = ConnectionSettings::default();
    let seconds = |setting, value: Option<u64>, default: Duration| match value {
        Some(0) => Err(invalid(setting, "must be at least 1 second")),
        Some(n) => Ok(Duration::from_secs(n)),
        None => Ok(default),
    };
    Ok(ConnectionSettings {
        max_total: match s.max_tcp_connections {
            Some(0) => {
                return Err(invalid(
                    "SOCKGATE_MAX_TCP_CONNECTIONS",
                    "must be at least 1",
                ));
            }
            n => n,
        },
        max_per_address: match s.max_tcp_connections_per_address {
            Some(0) => None,
            Some(n) => Some(n),
            None => defaults.max_per_address,
        },
        header_timeout: seconds(
            "SOCKGATE_HEADER_TIMEOUT",
            s.header_timeout,
            defaults.header_timeout,
        )?,
        keepalive_timeout: seconds(
            "SOCKGATE_KEEPALIVE_TIMEOUT",
            s.keepalive_timeout,
            defaults.keepalive_timeout,
        )?,
        body_timeout: seconds(
            "SOCKGATE_BODY_TIMEOUT",
            s.body_timeout,
            defaults.body_timeout,
        )?,
        http2: s.http2.unwrap_or(false),
    })
}

/// `SOCKGATE_WEBHOOK_OFFLINE_DELAY`: how long a departure waits for a
/// return, for the webhook and for `room:left`.
fn offline_delay(s: &Settings) -> Result<Duration, ConfigError> {
    let delay = s.webhook_offline_delay.unwrap_or(5.0);
    if !(0.0..=3600.0).contains(&delay) {
        return Err(invalid(
            "SOCKGATE_WEBHOOK_OFFLINE_DELAY",
            "must be 0 to 3600 seconds",
        ));
    }
    Ok(Duration::from_secs_f64(delay))
}

/// The lifecycle webhook's settings; `None` without a URL.
fn webhook_settings(
    s: &Settings,
) -> Result<Option<crate::outbound::lifecycle::Settings>, ConfigError> {
    let Some(url) = s.webhook_url.clone().filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let secret = s
        .webhook_secret
        .as_ref()
        .or(s.events_secret.as_ref())
        .ok_or_else(|| {
            invalid(
                "SOCKGATE_WEBHOOK_SECRET",
                "required with SOCKGATE_WEBHOOK_URL (or SOCKGATE_EVENTS_SECRET)",
            )
        })?;
    if secret.expose().len() < events::MIN_EVENTS_SECRET_BYTES {
        return Err(invalid(
            "SOCKGATE_WEBHOOK_SECRET",
            format!(
                "is {} bytes; at least {} are required",
                secret.expose().len(),
                events::MIN_EVENTS_SECRET_BYTES
            ),
        ));
    }
    let events = match s.webhook_events.as_deref().filter(|e| !e.trim().is_empty()) {
        None => None,
        Some(list) => {
            let kinds: Vec<String> = list.split(',').map(|k| k.trim().to_owned()).collect();
            if let Some(bad) = kinds
                .iter()
                .find(|k| !sockgate_core::hooks::happened::KINDS.contains(&k.as_str()))
            {
                return Err(invalid(
                    "SOCKGATE_WEBHOOK_EVENTS",
                    format!(
                        "`{bad}` is not one of {}",
                        sockgate_core::hooks::happened::KINDS.join(", ")
                    ),
                ));
            }
            Some(kinds)
        }
    };
    Ok(Some(crate::outbound::lifecycle::Settings {
        url,
        secret: secret.expose().as_bytes().to_vec(),
        events,
        batch: Duration::from_millis(s.webhook_batch_ms.unwrap_or(50).min(60_000)),
        retry_for: Duration::from_secs(s.webhook_retry_for.unwrap_or(300)),
    }))
}

/// Recovery's settings; `None` for a window of 0.
fn recovery_settings(s: &Settings) -> Result<Option<RecoverySettings>, ConfigError> {
    let defaults = RecoverySettings::default();
    let window = s.recovery_window.unwrap_or(defaults.window.as_secs());
    if window == 0 {
        return Ok(None);
    }
    if window > 86_400 {
        return Err(invalid(
            "SOCKGATE_RECOVERY_WINDOW",
            "must be at most 86400 seconds",
        ));
    }
    let at_least_one = |setting, value: Option<usize>, default| match value {
        Some(0) => Err(invalid(setting, "must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    Ok(Some(RecoverySettings {
        window: Duration::from_secs(window),
        max_packets: at_least_one(
            "SOCKGATE_RECOVERY_MAX_PACKETS",
            s.recovery_max_packets,
            defaults.max_packets,
        )?,
        max_bytes: at_least_one(
            "SOCKGATE_RECOVERY_MAX_BYTES",
            s.recovery_max_bytes,
            defaults.max_bytes,
        )?,
        history: at_least_one(
            "SOCKGATE_RECOVERY_HISTORY",
            s.recovery_history,
            defaults.history,
        )?,
        history_bytes: at_least_one(
            "SOCKGATE_RECOVERY_HISTORY_BYTES",
            s.recovery_history_bytes,
            defaults.history_bytes,
        )?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_come_from_the_file_and_the_settings() {
        let dir = std::env::temp_dir().join(format!("sockgate-cfg-cons-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sockgate.toml");
        std::fs::write(
            &file,
            "jwt_secret = \"cfg-secret-cfg-secret-cfg-secret-0123\"\n\
             [[consumers]]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\nstream = \"a\"\n\
             [[consumers]]\nkind = \"postgres\"\nurl = \"postgres://127.0.0.1/test\"\n\
             [[consumers]]\nkind = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\nstream = \"s\"\nsubject = \"s.>\"\n",
        )
        .unwrap();
        let top = Settings {
            consume_amqp_url: Some(Secret("amqp://127.0.0.1:5672/%2f".into())),
            consume_amqp_queue: Some("q".into()),
            ..Settings::default()
        };
        let config = Config::from_settings(top.resolve(Some(&file)).unwrap(), false).unwrap();
        let names: Vec<String> = config.consumers.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            ["redis:a", "postgres:sockgate_outbox", "nats:s", "amqp:q"]
        );
        let consumers::ConsumerSettings::Redis(redis) = &config.consumers[0] else {
            panic!("a redis consumer")
        };
        assert_eq!(redis.claim_idle, 30);

        // An unknown field, a table that is not an identifier, a queue without its broker.
        std::fs::write(
            &file,
            "[[consumers]]\nkind = \"redis\"\nurl = \"redis://x\"\nstream = \"a\"\nstrem = 1\n",
        )
        .unwrap();
        assert!(Settings::default().resolve(Some(&file)).is_err());
        let bad_table = Settings {
            jwt_secret: Some(Secret("cfg-secret-cfg-secret-cfg-secret-0123".into())),
            consume_postgres_url: Some(Secret("postgres://127.0.0.1/test".into())),
            consume_postgres_table: Some("outbox; DROP TABLE users".into()),
            ..Settings::default()
        };
        assert!(matches!(
            Config::from_settings(bad_table, false),
            Err(ConfigError::Invalid {
                setting: "SOCKGATE_CONSUME_POSTGRES_TABLE",
                ..
            })
        ));
        let no_url = Settings {
            jwt_secret: Some(Secret("cfg-secret-cfg-secret-cfg-secret-0123".into())),
            consume_redis_stream: Some("a".into()),
            ..Settings::default()
        };
        assert!(matches!(
            Config::from_settings(no_url, false),
            Err(ConfigError::Invalid {
                setting: "SOCKGATE_CONSUME_REDIS_STREAM",
                ..
            })
        ));
    }

    #[test]
    fn flags_and_env_override_the_file() {
        let dir = std::env::temp_dir().join(format!("sockgate-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sockgate.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:4000\"\nuser_claim = \"id\"\njwt_leeway = 5\n",
        )
        .unwrap();
        let top = Settings {
            jwt_leeway: Some(9),
            ..Settings::default()
        };
        let merged = top.resolve(Some(&file)).unwrap();
        assert_eq!(merged.listen, Some("127.0.0.1:4000".parse().unwrap()));
        assert_eq!(merged.user_claim.as_deref(), Some("id"));
        assert_eq!(merged.jwt_leeway, Some(9));
    }

    #[test]
    fn session_cookies_come_from_the_file_too_and_need_no_jwt_key() {
        let dir = std::env::temp_dir().join(format!("sockgate-cfg-na-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sockgate.toml");
        std::fs::write(
            &file,
            "nextauth_secret = \"new-secret-new-secret-new-secret-0123,old-secret-old-secret-old-secret-0123\"\n\
             nextauth_cookie = \"app.session\"\nallowed_origins = \"https://app.example\"\n",
        )
        .unwrap();
        let merged = Settings::default().resolve(Some(&file)).unwrap();
        let config = Config::from_settings(merged, false).unwrap();
        let jar = config
            .sources
            .session_cookies
            .clone()
            .expect("session cookies on");
        assert!(jar.find("app.session=x").len() == 1);
        assert!(jar.find("next-auth.session-token=x").is_empty(), "renamed");
        assert!(
            config.verifier().is_ok(),
            "no JWT key needed for the session's own claims"
        );
        let with_claim = Settings {
            nextauth_token_claim: Some("accessToken".into()),
            ..Settings::default().resolve(Some(&file)).unwrap()
        };
        let config = Config::from_settings(with_claim, false).unwrap();
        assert!(matches!(config.verifier(), Err(ConfigError::NoKeys)));
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = std::env::temp_dir().join(format!("sockgate-cfg-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sockgate.toml");
        std::fs::write(&file, "jwt_secrett = \"x\"\n").unwrap();
        let err = Settings::default().resolve(Some(&file)).unwrap_err();
        assert!(err.to_string().contains("jwt_secrett"), "{err}");
    }

    #[test]
    fn a_parse_error_does_not_quote_the_secret_line() {
        let dir = std::env::temp_dir().join(format!("sockgate-cfg-leak-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sockgate.toml");
        // An unterminated string: toml's own message quotes the line.
        let secret = "s3cret-s3cret-s3cret-s3cret-s3cret-s3cret";
        std::fs::write(
            &file,
            format!("listen = \"127.0.0.1:1\"\njwt_secret = \"{secret}\n"),
        )
        .unwrap();
        let err = Settings::default()
            .resolve(Some(&file))
            .unwrap_err()
            .to_string();
        assert!(!err.contains(secret), "{err}");
        assert!(err.contains("line 2"), "{err}");
        // A type error quotes the value it could not use.
        std::fs::write(&file, format!("jwt_leeway = \"{secret}\"\n")).unwrap();
        let err = Settings::default()
            .resolve(Some(&file))
            .unwrap_err()
            .to_string();
        assert!(!err.contains(secret), "{err}");
        assert!(err.contains("invalid type: string"), "{err}");
    }

    #[test]
    fn defaults_and_lists() {
        let c = Config::from_settings(
            Settings {
                jwt_issuer: Some("a, b,".into()),
                ..Settings::default()
            },
            false,
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.rules.issuer, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(c.rules.leeway_secs, 0);
        assert!(c.rules.require_exp);
        assert_eq!(c.rules.user_claim, "sub");
        assert!(!c.sources.query);
        assert!(matches!(c.verifier(), Err(ConfigError::NoKeys)));
    }

    #[test]
    fn short_secret_is_refused_with_a_reason() {
        let c = Config::from_settings(
            Settings {
                jwt_secret: Some(Secret("too-short".into())),
                ..Settings::default()
            },
            false,
        )
        .unwrap();
        let err = c.verifier().err().unwrap().to_string();
        assert!(
            err.contains("JWT_SECRET") && err.contains("at least 32"),
            "{err}"
        );
    }

    #[test]
    fn connection_settings_have_defaults_and_refuse_zero_timeouts() {
        let c = Config::from_settings(Settings::default(), false).unwrap();
        assert_eq!(c.connections, ConnectionSettings::default());
        assert!(!c.connections.http2);
        let c = Config::from_settings(
            Settings {
                max_tcp_connections: Some(500),
                max_tcp_connections_per_address: Some(0),
                header_timeout: Some(2),
                http2: Some(true),
                ..Settings::default()
            },
            false,
        )
        .unwrap();
        assert_eq!(c.connections.max_total, Some(500));
        assert_eq!(c.connections.max_per_address, None, "0 turns it off");
        assert_eq!(c.connections.header_timeout, Duration::from_secs(2));
        assert!(c.connections.http2);
        for settings in [
            Settings {
                body_timeout: Some(0),
                ..Settings::default()
            },
            Settings {
                max_tcp_connections: Some(0),
                ..Settings::default()
            },
        ] {
            let err = Config::from_settings(settings, false).unwrap_err();
            assert!(err.to_string().contains("must be at least 1"), "{err}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let s = Settings {
            jwt_secret: Some(Secret("super-secret-value".into())),
            ..Settings::default()
        };
        assert!(!format!("{s:?}").contains("super-secret-value"));
        let url = "amqp://app:broker-password@127.0.0.1:5672/%2f";
        let s = Settings {
            consume_amqp_url: Some(Secret(url.into())),
            consumers: Some(vec![consumers::ConsumerSettings::Amqp(
                consumers::AmqpSettings {
                    url: url.into(),
                    queue: "q".into(),
                    prefetch: 1,
                },
            )]),
            ..Settings::default()
        };
        assert!(!format!("{s:?}").contains("broker-password"));
    }
}
