//! Assembly: the one step that turns a [`Config`] (data only, read and
//! checked by [`crate::config`]) into the live parts of a gateway: the
//! verifier and its keys, the app's backend, the room policy, the
//! namespaces, and the [`Gateway`] that holds them over the revocations
//! the server opened.
//! What differs between a single node and a cluster (the history, the
//! census, the webhooks' queue) is added by [`crate::server`] after it.

use std::sync::Arc;

use sockgate_auth::{Jwks, SessionIdentity, SourcePolicy, Verifier, VerifyKey};
use sockgate_core::hooks::App;
use sockgate_core::hooks::reply::Rules as ReplyRules;
use sockgate_core::limits::Rate;
use sockgate_core::namespace::{Namespace, Namespaces};
use sockgate_core::policy::Policy;
use sockgate_core::recovery::PidKey;
use sockgate_core::room_options::RoomOptionsList;

use crate::Gateway;
use crate::config::namespaces::NamespaceSettings;
use crate::config::{Config, ConfigError, RoomSettings, invalid};
use crate::outbound::app::connect::ConnectHook;
use crate::outbound::app::{Backend, Endpoint, Route};
use crate::outbound::jwks::HttpJwks;
use crate::outbound::webhook::Webhook;
use crate::store::Revocations;

/// A gateway assembled from its config, and the JWKS set it verifies with
/// (when one is configured: the server keeps it fresh).
pub struct Assembled {
    /// The gateway, before a history or a cluster is added.
    pub gateway: Gateway,
    /// The JWKS set.
    pub jwks: Option<Arc<Jwks>>,
}

/// Assembles the gateway `config` describes, over `revocations`.
pub fn gateway(config: &Config, revocations: Revocations) -> Result<Assembled, ConfigError> {
    let (verifier, jwks) = verifier(config)?;
    let backend = backend(config)?.map(Arc::new);
    let authority = backend
        .clone()
        .filter(|b| b.authorizes())
        .map(|b| b as Arc<dyn App>);
    let policy = policy(&config.rooms, authority.clone());
    let namespaces = namespaces(config, &policy, authority);
    let gateway = Gateway::new(
        verifier,
        config.sources.clone(),
        revocations,
        config.lifecycle.clone(),
    )
    .with_policy(policy)
    .with_namespaces(namespaces)
    .with_room_options(RoomOptionsList::new(config.rooms.options.clone()))
    .with_limits(config.limits.clone())
    .with_idempotency_window(config.idempotency_window)
    .with_presence_events(config.room_presence_events, config.offline_delay)
    .with_abuse_limits(config.abuse.clone())
    .with_trusted_proxies(config.trusted_proxies.clone())
    .with_ws_compression(config.ws_compression.clone())
    .with_transport_limits(config.transport_limits.clone())
    .with_user_room(config.user_room.clone())
    .with_exposed_claims(config.exposed_claims.clone());
    let gateway = match backend {
        Some(backend) => {
            let binary = backend.routes_events();
            gateway
                .with_app(backend, config.events.concurrency)
                .with_binary_events(binary)
        }
        None => gateway,
    };
    Ok(Assembled { gateway, jwks })
}

/// Loads every configured key and returns the verifier, plus the JWKS set
/// when one is configured.
pub fn verifier(config: &Config) -> Result<(Verifier, Option<Arc<Jwks>>), ConfigError> {
    let k = &config.keys;
    // Session cookies alone need no JWT key, unless they carry a backend token.
    let cookies_alone = config.sources.session_cookies.is_some()
        && !matches!(config.session_identity, SessionIdentity::TokenIn(_));
    // The connect hook alone needs no key either: the app says who it is.
    let hook_alone = config.events.connect.is_some();
    if k.is_empty() && !cookies_alone && !hook_alone {
        return Err(ConfigError::NoKeys);
    }
    let mut verifier = Verifier::new(config.rules.clone());
    if let Some(jar) = &config.sources.session_cookies {
        verifier = verifier.with_session_cookies(jar.clone(), config.session_identity.clone());
    }
    for (setting, secret) in [
        ("JWT_SECRET", &k.secret),
        ("SOCKGATE_JWT_PREVIOUS_SECRET", &k.previous_secret),
    ] {
        if let Some(secret) = secret {
            let key = VerifyKey::hmac(secret.expose().as_bytes(), &config.rules)
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
        let key = VerifyKey::from_pem(&pem, &config.rules)
            .map_err(|e| invalid("SOCKGATE_JWT_PUBLIC_KEY", e))?;
        verifier = verifier.with_public_key(key);
    }
    let mut jwks = None;
    if let Some(url) = &k.jwks_url {
        let fetcher = HttpJwks::new(url).map_err(|e| invalid("SOCKGATE_JWKS_URL", e))?;
        let set = Arc::new(Jwks::new(fetcher, config.rules.clone(), k.jwks_min_refetch));
        verifier = verifier.with_jwks(set.clone());
        jwks = Some(set);
    }
    Ok((verifier, jwks))
}

/// The key of recovery `pid`s in a cluster (derived from its secret), or
/// of this process alone.
pub fn pid_key(config: &Config) -> Result<PidKey, ConfigError> {
    match &config.redis_url {
        Some(_) => Ok(PidKey::new(config.cluster_secret()?.expose().as_bytes())),
        None => Ok(PidKey::random()),
    }
}

/// The app's backend, when any route, the connect hook or the
/// authorization webhook is configured; its replies' publishes obey the
/// publish rules and are read up to the largest message.
fn backend(config: &Config) -> Result<Option<Backend>, ConfigError> {
    let events = &config.events;
    let authz = authz_webhook(&config.rooms)?;
    if events.routes.is_empty() && events.connect.is_none() && authz.is_none() {
        return Ok(None);
    }
    let max_reply = config.limits.max_message;
    let connect = match &events.connect {
        None => None,
        Some((r, headers)) => {
            let endpoint =
                Endpoint::new(&r.url, r.secret.expose().as_bytes(), r.timeout, max_reply)
                    .map_err(|e| invalid("SOCKGATE_CONNECT_URL", e))?;
            Some(Arc::new(ConnectHook::new(endpoint, headers.clone())))
        }
    };
    let mut routes = Vec::with_capacity(events.routes.len());
    for r in &events.routes {
        let endpoint = Endpoint::new(&r.url, r.secret.expose().as_bytes(), r.timeout, max_reply)
            .map_err(|e| invalid("SOCKGATE_EVENTS_URL", format!("{}: {e}", r.pattern)))?;
        routes.push(Route::new(&r.pattern, endpoint).in_namespace(r.namespace.as_deref()));
    }
    let rules = ReplyRules {
        user_room: config.user_room.clone(),
        max_payload: config.limits.max_payload,
    };
    Ok(Some(Backend::new(routes, rules, connect, authz)))
}

/// The room authorization webhook, when set, its URL checked.
fn authz_webhook(rooms: &RoomSettings) -> Result<Option<Webhook>, ConfigError> {
    let Some(url) = &rooms.authz_url else {
        return Ok(None);
    };
    Webhook::new(url, rooms.authz_timeout, rooms.authz_cache_ttl)
        .map(Some)
        .map_err(|e| invalid("SOCKGATE_AUTHZ_URL", e))
}

/// The room policy, asking `authority` last (the app holding the webhook).
fn policy(rooms: &RoomSettings, authority: Option<Arc<dyn App>>) -> Policy {
    Policy {
        claim: rooms.claim.clone(),
        rules: rooms.rules.clone(),
        webhook: authority,
    }
}

/// The namespaces served: `[[namespaces]]`, on top of the main
/// namespace's sources, room claim, webhook authority and event rate.
fn namespaces(config: &Config, main: &Policy, authority: Option<Arc<dyn App>>) -> Namespaces {
    let main_rate = config.abuse.events_per_socket;
    let list = config
        .namespaces
        .iter()
        .map(|entry| Namespace {
            name: entry.name.clone(),
            public: entry.public,
            claims: entry.claims.clone(),
            sources: sources_of(entry, &config.sources),
            policy: entry.room_rules.as_ref().map(|rules| Policy {
                claim: main.claim.clone(),
                rules: rules.clone(),
                webhook: authority.clone(),
            }),
            room_options: entry
                .room_options
                .as_ref()
                .map(|o| RoomOptionsList::new(o.clone())),
            event_rate: event_rate(entry, main_rate),
        })
        .collect();
    Namespaces::new(list)
}

fn event_rate(entry: &NamespaceSettings, main: Rate) -> Option<Rate> {
    if entry.event_rate.is_none() && entry.event_burst.is_none() {
        return None;
    }
    Some(Rate {
        per_second: entry.event_rate.unwrap_or(main.per_second),
        burst: entry.event_burst.unwrap_or(main.burst),
    })
}

fn sources_of(entry: &NamespaceSettings, main: &SourcePolicy) -> Option<SourcePolicy> {
    if entry.cookies.is_none() && entry.query.is_none() {
        return None;
    }
    let cookies = entry.cookies.unwrap_or(true);
    Some(SourcePolicy {
        cookie: main.cookie.clone().filter(|_| cookies),
        session_cookies: main.session_cookies.clone().filter(|_| cookies),
        query: entry.query.unwrap_or(main.query),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, Settings};

    fn config(settings: Settings) -> Config {
        Config::from_settings(settings, false).unwrap()
    }

    #[test]
    fn no_key_is_an_error_and_a_short_secret_says_why() {
        assert!(matches!(
            verifier(&config(Settings::default())),
            Err(ConfigError::NoKeys)
        ));
        let short = config(Settings {
            jwt_secret: Some(Secret("too-short".into())),
            ..Settings::default()
        });
        let err = verifier(&short).err().unwrap().to_string();
        assert!(
            err.contains("JWT_SECRET") && err.contains("at least 32"),
            "{err}"
        );
    }

    #[test]
    fn session_cookies_need_no_jwt_key_unless_they_carry_a_backend_token() {
        let cookies = Settings {
            nextauth_secret: Some(Secret("new-secret-new-secret-new-secret-0123".into())),
            allowed_origins: Some("https://app.example".into()),
            ..Settings::default()
        };
        assert!(
            verifier(&config(cookies.clone())).is_ok(),
            "no JWT key needed for the session's own claims"
        );
        let with_claim = Settings {
            nextauth_token_claim: Some("accessToken".into()),
            ..cookies
        };
        assert!(matches!(
            verifier(&config(with_claim)),
            Err(ConfigError::NoKeys)
        ));
    }
}
