//! Verification keys: HMAC secrets, a public key, a JWKS endpoint, and the
//! Next-Auth session cookies' keys.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sockgate_auth::keys::MIN_SECRET_BYTES;
use sockgate_auth::{Jwks, SessionCookies, SessionIdentity, Verifier, VerifyKey};

use super::{Config, ConfigError, Secret, Settings, invalid, list};
use crate::outbound::jwks::HttpJwks;

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
