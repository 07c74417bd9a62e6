//! Tokens: minted HS256 tokens (`JWT_SECRET`), or a file of tokens.
//!
//! A minted token carries `sub`, `iat`, `exp` and a unique `jti`. The
//! `reject` scenario also mints the three kinds of bad token: a wrong
//! signature, an expired one and an unsigned (`alg: none`) one.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A fresh random `jti`.
pub fn random_jti() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Signs HS256 tokens with the server's secret.
#[derive(Clone)]
pub struct Minter {
    key: EncodingKey,
    wrong_key: EncodingKey,
    /// Lifetime of the tokens it mints.
    pub ttl: Duration,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Minter {
    /// A minter signing with `secret`, whose tokens live `ttl`. The bad
    /// signatures use another secret derived from it.
    pub fn new(secret: &str, ttl: Duration) -> Self {
        Self {
            key: EncodingKey::from_secret(secret.as_bytes()),
            wrong_key: EncodingKey::from_secret(format!("not-{secret}").as_bytes()),
            ttl,
        }
    }

    fn claims(&self, sub: &str, jti: Option<&str>) -> Value {
        self.claims_lasting(sub, jti, self.ttl.as_secs().max(1))
    }

    fn claims_lasting(&self, sub: &str, jti: Option<&str>, secs: u64) -> Value {
        let now = unix_now();
        json!({
            "sub": sub,
            "iat": now,
            "exp": now + secs,
            "jti": jti.map_or_else(random_jti, str::to_owned),
        })
    }

    /// A valid token for `sub` that expires `later` seconds after one
    /// minted now with [`Minter::mint`]: a refresh must move `exp` forward
    /// (`TOKEN_NOT_NEWER` otherwise), and refreshes come faster than a
    /// second apart.
    pub fn mint_later(&self, sub: &str, later: u64) -> String {
        let secs = self.ttl.as_secs().max(1) + later;
        sign(&self.claims_lasting(sub, None, secs), &self.key)
    }

    /// A valid token for `sub`, with `jti` or a random one.
    pub fn mint(&self, sub: &str, jti: Option<&str>) -> String {
        sign(&self.claims(sub, jti), &self.key)
    }

    /// The `exp` a token minted now gets.
    pub fn expiry(&self) -> u64 {
        unix_now() + self.ttl.as_secs().max(1)
    }

    /// A well-formed token signed with another secret.
    pub fn bad_signature(&self, sub: &str) -> String {
        sign(&self.claims(sub, None), &self.wrong_key)
    }

    /// A correctly signed token that expired an hour ago.
    pub fn expired(&self, sub: &str) -> String {
        let now = unix_now();
        let claims = json!({
            "sub": sub, "iat": now - 7200, "exp": now - 3600, "jti": random_jti(),
        });
        sign(&claims, &self.key)
    }

    /// An unsigned token: header `{"alg":"none"}`, empty signature.
    pub fn unsigned(&self, sub: &str) -> String {
        unsigned_token(&self.claims(sub, None))
    }
}

fn sign(claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&Header::default(), claims, key).expect("HS256 signing cannot fail")
}

/// `base64url({"alg":"none","typ":"JWT"}).base64url(claims).` (no signature).
pub fn unsigned_token(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// Where connection tokens come from.
#[derive(Clone, Debug)]
pub enum Tokens {
    /// Minted per connection: `sub` = `user-<n>`.
    Mint(Minter),
    /// Read from a file, one per line, used round-robin.
    File(Arc<Vec<String>>),
}

impl Tokens {
    /// Reads a token file: one token per line, blank lines skipped.
    pub fn from_file(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let tokens: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        if tokens.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} holds no tokens", path.display()),
            ));
        }
        Ok(Self::File(Arc::new(tokens)))
    }

    /// The token of connection `n`.
    pub fn for_connection(&self, n: usize) -> String {
        match self {
            Self::Mint(m) => m.mint(&format!("user-{n}"), None),
            Self::File(list) => list[n % list.len()].clone(),
        }
    }

    /// The minter, for scenarios that need tokens with particular claims.
    pub fn minter(&self, scenario: &str) -> Result<&Minter, String> {
        match self {
            Self::Mint(m) => Ok(m),
            Self::File(_) => Err(format!(
                "the {scenario} scenario mints its own tokens: give JWT_SECRET (--secret) instead of --tokens-file"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    const SECRET: &str = "a-test-secret-that-is-32-bytes-long!";

    fn decode(token: &str, secret: &str) -> jsonwebtoken::errors::Result<Value> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(secret.as_bytes()), &v)
            .map(|d| d.claims)
    }

    #[test]
    fn minted_tokens_verify_and_carry_unique_jtis() {
        let m = Minter::new(SECRET, Duration::from_secs(600));
        let a = decode(&m.mint("user-1", None), SECRET).unwrap();
        let b = decode(&m.mint("user-1", None), SECRET).unwrap();
        assert_eq!(a["sub"], "user-1");
        assert_ne!(a["jti"], b["jti"]);
        let exp = a["exp"].as_u64().unwrap();
        assert_eq!(exp - a["iat"].as_u64().unwrap(), 600);
        let shared = decode(&m.mint("x", Some("same")), SECRET).unwrap();
        assert_eq!(shared["jti"], "same");
    }

    #[test]
    fn bad_tokens_are_bad_in_the_intended_way() {
        let m = Minter::new(SECRET, Duration::from_secs(600));
        let err = decode(&m.bad_signature("u"), SECRET).unwrap_err();
        assert!(matches!(
            err.kind(),
            jsonwebtoken::errors::ErrorKind::InvalidSignature
        ));
        let err = decode(&m.expired("u"), SECRET).unwrap_err();
        assert!(matches!(
            err.kind(),
            jsonwebtoken::errors::ErrorKind::ExpiredSignature
        ));
        let none = m.unsigned("u");
        assert!(none.ends_with('.'));
        let header = URL_SAFE_NO_PAD
            .decode(none.split('.').next().unwrap())
            .unwrap();
        assert_eq!(header, br#"{"alg":"none","typ":"JWT"}"#);
        assert!(decode(&none, SECRET).is_err());
    }

    #[test]
    fn token_files_are_used_round_robin() {
        let path = std::env::temp_dir().join(format!("sockgate-bench-tokens-{}", random_jti()));
        std::fs::write(&path, "a\n\n b \nc\n").unwrap();
        let t = Tokens::from_file(&path).unwrap();
        let got: Vec<String> = (0..4).map(|i| t.for_connection(i)).collect();
        assert_eq!(got, ["a", "b", "c", "a"]);
        assert!(t.minter("refresh").is_err());
        std::fs::write(&path, "\n").unwrap();
        assert!(Tokens::from_file(&path).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
