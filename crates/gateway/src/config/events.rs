//! The app's backend for client events: `SOCKGATE_EVENTS_URL`,
//! `SOCKGATE_EVENTS_SECRET`, `SOCKGATE_EVENTS_TIMEOUT_MS`,
//! `SOCKGATE_EVENTS_CONCURRENCY`, and `[[events]]` routes in the file.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sockgate_core::node::DEFAULT_CALLS_PER_USER;

use super::{ConfigError, Secret, Settings, invalid};

/// Shortest signing secret, in bytes: HMAC-SHA256's own output size.
pub const MIN_EVENTS_SECRET_BYTES: usize = 32;

/// A `[[events]]` route of the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSettings {
    /// The event names it takes (`chat:*`).
    #[serde(rename = "match")]
    pub pattern: String,
    /// Where they go.
    pub url: String,
    /// Its timeout [default: `SOCKGATE_EVENTS_TIMEOUT_MS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Its signing secret [default: `SOCKGATE_EVENTS_SECRET`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
}

/// One checked route.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The event names it takes.
    pub pattern: String,
    /// Where they go.
    pub url: String,
    /// How long a call may take.
    pub timeout: Duration,
    /// The signing secret.
    pub secret: Secret,
    /// The namespace (or pattern of them) whose events it takes, when it
    /// is a namespace's own (`[[namespaces.events]]`); `None` for the
    /// main namespace's, which also take the events of every namespace
    /// without routes of its own.
    pub namespace: Option<String>,
}

/// The checked event settings: routes, first match first, and the
/// connect hook.
#[derive(Debug, Clone)]
pub struct Events {
    /// The routes, `[[events]]` in file order, then `SOCKGATE_EVENTS_URL` for `*`.
    pub routes: Vec<RouteConfig>,
    /// Most calls a user may have in flight.
    pub concurrency: usize,
    /// The connect hook (`SOCKGATE_CONNECT_URL`): its endpoint as a route
    /// (`pattern` unused), and the headers it is shown.
    pub connect: Option<(RouteConfig, Vec<String>)>,
}

/// The headers the connect hook is shown by default.
pub const DEFAULT_CONNECT_HEADERS: &str = "cookie,authorization,user-agent,origin";

impl Events {
    pub(super) fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let timeout = Duration::from_millis(s.events_timeout_ms.unwrap_or(5000).max(1));
        let default_secret = s.events_secret.clone();
        let mut routes = Vec::new();
        let own = s.namespaces.iter().flatten().flat_map(|ns| {
            let routes = ns.events.iter().flatten();
            routes.map(|r| (Some(ns.name.clone()), r))
        });
        let main = s.events.iter().flatten().map(|r| (None, r));
        for (namespace, r) in own.chain(main) {
            routes.push(RouteConfig {
                pattern: r.pattern.clone(),
                url: r.url.clone(),
                timeout: r
                    .timeout_ms
                    .map_or(timeout, |ms| Duration::from_millis(ms.max(1))),
                secret: secret(r.secret.as_ref().or(default_secret.as_ref()), "events")?,
                namespace,
            });
        }
        if let Some(url) = s.events_url.as_deref().filter(|u| !u.is_empty()) {
            routes.push(RouteConfig {
                pattern: "*".into(),
                url: url.to_owned(),
                timeout,
                secret: secret(default_secret.as_ref(), "SOCKGATE_EVENTS_URL")?,
                namespace: None,
            });
        }
        let connect = match s.connect_url.as_deref().filter(|u| !u.is_empty()) {
            None => None,
            Some(url) => {
                let secret = s.connect_secret.as_ref().or(default_secret.as_ref());
                let headers = s
                    .connect_headers
                    .as_deref()
                    .unwrap_or(DEFAULT_CONNECT_HEADERS)
                    .split(',')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .collect();
                let route = RouteConfig {
                    pattern: "connect".into(),
                    url: url.to_owned(),
                    timeout,
                    secret: secret_for(secret, "SOCKGATE_CONNECT_SECRET", "SOCKGATE_CONNECT_URL")?,
                    namespace: None,
                };
                Some((route, headers))
            }
        };
        let concurrency = match s.events_concurrency {
            Some(0) => return Err(invalid("SOCKGATE_EVENTS_CONCURRENCY", "must be at least 1")),
            Some(n) => n,
            None => DEFAULT_CALLS_PER_USER,
        };
        Ok(Self {
            routes,
            concurrency,
            connect,
        })
    }
}

fn secret(secret: Option<&Secret>, what: &str) -> Result<Secret, ConfigError> {
    secret_for(secret, "SOCKGATE_EVENTS_SECRET", what)
}

fn secret_for(
    secret: Option<&Secret>,
    setting: &'static str,
    what: &str,
) -> Result<Secret, ConfigError> {
    match secret {
        Some(s) if s.expose().len() >= MIN_EVENTS_SECRET_BYTES => Ok(s.clone()),
        Some(_) => Err(invalid(
            setting,
            format!("must be at least {MIN_EVENTS_SECRET_BYTES} bytes"),
        )),
        None => Err(invalid(
            setting,
            format!(
                "{what} needs a secret to sign its calls (at least {MIN_EVENTS_SECRET_BYTES} bytes): \
                 the backend checks it to refuse forged calls"
            ),
        )),
    }
}
