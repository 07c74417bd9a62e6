//! Verification keys: HMAC secrets, a public key, a JWKS endpoint, and the
//! Next-Auth session cookies' keys.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sockgate_auth::SessionCookies;
use sockgate_auth::keys::MIN_SECRET_BYTES;

use super::{ConfigError, Secret, Settings, invalid, list};

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

/// The Next-Auth session cookies, with their keys derived from every
/// configured secret. A secret is the app's `NEXTAUTH_SECRET`: the cookies'
/// keys come from it through HKDF alone, so a short one could be guessed
/// offline from any cookie; the same 32-byte floor as `JWT_SECRET` applies.
pub(super) fn session_cookies(s: &Settings) -> Result<Option<Arc<SessionCookies>>, ConfigError> {
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
