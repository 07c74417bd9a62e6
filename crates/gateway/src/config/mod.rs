//! Configuration: one set of settings from a TOML file, the environment and
//! command-line flags, in rising order of precedence.
//!
//! [`Settings`] (`settings.rs`) is the raw, all-optional form shared by all
//! three sources (every field is documented in `docs/configuration.md`).
//! [`Config`] is the checked form the server runs on: defaults applied,
//! keys loaded. Each concern reads its part in a file of its own: `keys`,
//! `rooms`, `connections` (and TLS), `recovery`, `lifecycle` (the
//! webhooks), `events` (the app's routes), `consumers` (the queues),
//! `proxies`, `token` (dev tokens).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sockgate_auth::{Exposure, Rules, SessionIdentity, SourcePolicy};

use sockgate_core::Lifecycle;
use sockgate_core::limits::{AbuseLimits, Limits, Rate};
use sockgate_core::origins::{DEV_ORIGINS, Origins};
use sockgate_core::recovery::Settings as RecoverySettings;
use sockgate_core::rooms::UserRoom;
use sockgate_core::session::{LimitPolicy, SessionLimit};
use sockgate_engine::engine::Compression;

pub use crate::telemetry::logging::LogFormat;
pub use proxies::TrustedProxies;

mod connections;
pub mod consumers;
pub mod events;
mod keys;
mod lifecycle;
pub mod namespaces;
mod proxies;
mod recovery;
mod rooms;
mod settings;
pub mod token;

use connections::connection_settings;
pub use connections::{ConnectionSettings, TlsFiles};
pub use keys::KeySettings;
use keys::session_cookies;
use lifecycle::{offline_delay, webhook_settings};
use recovery::recovery_settings;
pub use rooms::RoomSettings;
pub use settings::{Secret, Settings};

/// Address listened on when `listen` is not set.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3001";
/// Shortest admin API key accepted.
pub const MIN_API_KEY_BYTES: usize = 16;

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

pub(crate) fn invalid(setting: &'static str, message: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.to_string(),
    }
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
    /// `[[namespaces]]`: the namespaces beside the main one.
    pub namespaces: Vec<namespaces::NamespaceSettings>,
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

impl Config {
    /// Applies defaults. Keys are only checked by [`crate::assemble::verifier`].
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
            options: s.room_options.unwrap_or_default(),
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
        let namespaces = s.namespaces.unwrap_or_default();
        namespaces::check(&namespaces)?;
        let every_option = rooms.options.iter().chain(
            namespaces
                .iter()
                .flat_map(|ns| ns.room_options.iter().flatten()),
        );
        for option in every_option {
            if option.history_size == Some(0) || option.history_ttl == Some(0) {
                return Err(invalid(
                    "room_options",
                    format!(
                        "{:?}: history_size and history_ttl are at least 1 (recover = false keeps nothing)",
                        option.pattern
                    ),
                ));
            }
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
            namespaces,
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
