//! Keys from a JWKS endpoint, chosen by `kid`, with rotation.
//!
//! The key set is cached. A token naming an unknown `kid` triggers a refetch,
//! at most once per `min_refetch`, so a flood of forged `kid`s cannot hammer
//! the identity provider. When a fetch fails the last good set keeps
//! serving; only a gateway that never obtained a set answers
//! `AUTH_UNAVAILABLE`. Fetching itself is behind [`JwksFetcher`], so this
//! module does no I/O of its own.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::error::{AuthError, ErrorCode};
use crate::keys::{RSA_ALGS, VerifyKey};
use crate::rules::Rules;

/// The future a fetcher returns.
pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<JwkSet, String>> + Send + 'a>>;

/// Downloads the current key set. The gateway implements it over HTTP.
pub trait JwksFetcher: Send + Sync + 'static {
    /// Fetches the key set once.
    fn fetch(&self) -> FetchFuture<'_>;
}

#[derive(Default)]
struct KeyTable {
    by_kid: HashMap<String, Arc<VerifyKey>>,
    /// The key used for tokens without `kid`: set only when the set holds
    /// exactly one usable key, so the choice is never ambiguous.
    sole: Option<Arc<VerifyKey>>,
}

/// A cached, self-refreshing JWKS key set.
pub struct Jwks {
    fetcher: Box<dyn JwksFetcher>,
    rules: Rules,
    min_refetch: Duration,
    table: RwLock<Option<Arc<KeyTable>>>,
    /// When the last fetch started; the lock also makes fetches single-flight.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl Jwks {
    /// A key set fetched by `fetcher`, refetched at most once per `min_refetch` for unknown `kid`s.
    pub fn new(fetcher: impl JwksFetcher, rules: Rules, min_refetch: Duration) -> Self {
        Self {
            fetcher: Box::new(fetcher),
            rules,
            min_refetch,
            table: RwLock::new(None),
            last_fetch: tokio::sync::Mutex::new(None),
        }
    }

    /// Fetches the set now, whatever the rate limit. Returns how many usable
    /// keys it holds. On error the previous set stays in place.
    pub async fn refresh(&self) -> Result<usize, String> {
        let mut last = self.last_fetch.lock().await;
        self.fetch_locked(&mut last).await
    }

    /// Whether a key set has ever been obtained.
    pub fn is_loaded(&self) -> bool {
        self.table.read().expect("jwks lock").is_some()
    }

    pub(crate) async fn key(&self, kid: Option<&str>) -> Result<Arc<VerifyKey>, AuthError> {
        if let Some(key) = self.lookup(kid) {
            return Ok(key);
        }
        self.refetch_if_due().await;
        if let Some(key) = self.lookup(kid) {
            return Ok(key);
        }
        if !self.is_loaded() {
            return Err(AuthError::new(
                ErrorCode::AuthUnavailable,
                "the JWKS key set could not be fetched",
            ));
        }
        Err(AuthError::invalid(match kid {
            Some(_) => "unknown kid",
            None => "token has no kid and the key set holds more than one key",
        }))
    }

    fn lookup(&self, kid: Option<&str>) -> Option<Arc<VerifyKey>> {
        let guard = self.table.read().expect("jwks lock");
        let table = guard.as_ref()?;
        match kid {
            Some(kid) => table.by_kid.get(kid).cloned(),
            None => table.sole.clone(),
        }
    }

    async fn refetch_if_due(&self) {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.min_refetch) {
            return;
        }
        if let Err(e) = self.fetch_locked(&mut last).await {
            tracing::warn!(error = %e, "JWKS refetch failed; keeping the last good key set");
        }
    }

    async fn fetch_locked(&self, last: &mut Option<Instant>) -> Result<usize, String> {
        *last = Some(Instant::now());
        let set = self.fetcher.fetch().await?;
        let table = build_table(&set, &self.rules);
        let count =
            table.by_kid.len() + usize::from(table.by_kid.is_empty() && table.sole.is_some());
        if count == 0 {
            return Err("the key set holds no usable signing key".to_owned());
        }
        *self.table.write().expect("jwks lock") = Some(Arc::new(table));
        Ok(count)
    }
}

fn build_table(set: &JwkSet, rules: &Rules) -> KeyTable {
    let mut table = KeyTable::default();
    let mut usable = Vec::new();
    for jwk in &set.keys {
        let Some(algs) = jwk_algorithms(jwk) else {
            continue;
        };
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        let key = Arc::new(VerifyKey::new(key, &algs, rules));
        if let Some(kid) = &jwk.common.key_id {
            table.by_kid.insert(kid.clone(), key.clone());
        }
        usable.push(key);
    }
    if usable.len() == 1 {
        table.sole = usable.pop();
    }
    table
}

/// The algorithms a JWK may verify, or `None` for keys sockgate never uses:
/// encryption keys, symmetric (`oct`) keys and unsupported curves.
fn jwk_algorithms(jwk: &Jwk) -> Option<Vec<Algorithm>> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let family: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => RSA_ALGS.to_vec(),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            vec![Algorithm::EdDSA]
        }
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(family),
        Some(declared) => {
            let alg = Algorithm::try_from(declared).ok()?;
            family.contains(&alg).then(|| vec![alg])
        }
    }
}
