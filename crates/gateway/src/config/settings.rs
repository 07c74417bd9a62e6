//! [`Settings`]: every setting, each optional, the one raw form shared by
//! the TOML file, the environment and the flags; and [`Secret`], a string
//! no log line shows.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::builder::BoolishValueParser;
use serde::{Deserialize, Serialize};

use sockgate_core::policy::RoomRule;
use sockgate_core::room_options::RoomOptions;
use sockgate_core::session::LimitPolicy;

use super::{ConfigError, LogFormat, consumers, events};

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

    /// Room options; only in the config file (`[[room_options]]`).
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_options: Option<Vec<RoomOptions>>,

    /// Namespaces beside the main one; only in the config file (`[[namespaces]]`).
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<super::namespaces::NamespaceSettings>>,

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
