//! The listener's connections: their caps and timeouts, and TLS.

use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, Settings, invalid};

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

/// The connections' caps and timeouts; every timeout is at least a second.
pub(super) fn connection_settings(s: &Settings) -> Result<ConnectionSettings, ConfigError> {
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
