//! Minting HS256 tokens for development and tests (`sockgate token`, `--dev`).

use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Map, Value};
use sockgate_auth::Rules;

use super::Secret;
use sockgate_core::clock::unix_now;

/// What to put in a minted token.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The user, put in the configured user claim.
    pub user: String,
    /// The token's lifetime: `exp` is this many whole seconds after `iat`.
    pub ttl: Duration,
    /// Extra claims; one named like a standard claim replaces it.
    pub claims: Vec<(String, Value)>,
}

/// Signs `req` with `secret`. The user goes into the configured user claim,
/// and the configured issuer and audience (the first of each) are added so
/// the token passes this gateway's own checks.
pub fn mint(
    secret: &Secret,
    rules: &Rules,
    req: &TokenRequest,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = unix_now();
    let mut claims = Map::new();
    claims.insert(rules.user_claim.clone(), Value::from(req.user.clone()));
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + req.ttl.as_secs()).into());
    claims.insert(
        "jti".into(),
        format!("{:032x}", rand::random::<u128>()).into(),
    );
    if let Some(iss) = rules.issuer.as_ref().and_then(|v| v.first()) {
        claims.insert("iss".into(), iss.clone().into());
    }
    if let Some(aud) = rules.audience.as_ref().and_then(|v| v.first()) {
        claims.insert("aud".into(), aud.clone().into());
    }
    for (k, v) in &req.claims {
        claims.insert(k.clone(), v.clone());
    }
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.expose().as_bytes()),
    )
}

/// Parses `key=value`; the value is JSON when it parses as JSON
/// (`admin=true`, `n=3`, `rooms=["a"]`), a string otherwise.
pub fn parse_claim(s: &str) -> Result<(String, Value), String> {
    let (k, v) = s.split_once('=').ok_or("expected key=value")?;
    if k.is_empty() {
        return Err("empty claim name".into());
    }
    let value = serde_json::from_str(v).unwrap_or_else(|_| Value::from(v));
    Ok((k.to_owned(), value))
}

/// A random 256-bit secret, hex-encoded, for `--dev`.
pub fn random_secret() -> Secret {
    let bytes: [u8; 32] = rand::random();
    Secret(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockgate_auth::{Verifier, VerifyKey};

    #[test]
    fn claims_parse_as_json_or_string() {
        assert_eq!(
            parse_claim("admin=true").unwrap(),
            ("admin".into(), Value::Bool(true))
        );
        assert_eq!(
            parse_claim("team=red").unwrap(),
            ("team".into(), Value::from("red"))
        );
        assert_eq!(parse_claim("n=3").unwrap().1, Value::from(3));
        assert!(parse_claim("novalue").is_err());
        assert!(parse_claim("=x").is_err());
    }

    #[tokio::test]
    async fn minted_tokens_pass_the_gateways_own_rules() {
        let secret = random_secret();
        let rules = Rules {
            issuer: Some(vec!["me".into()]),
            audience: Some(vec!["chat".into()]),
            user_claim: "id".into(),
            ..Rules::default()
        };
        let req = TokenRequest {
            user: "alice".into(),
            ttl: Duration::from_secs(60),
            claims: vec![("team".into(), "red".into())],
        };
        let token = mint(&secret, &rules, &req).unwrap();
        let key = VerifyKey::hmac(secret.expose().as_bytes(), &rules).unwrap();
        let id = Verifier::new(rules)
            .with_hmac(key)
            .verify(&token)
            .await
            .unwrap();
        assert_eq!(id.user_id, "alice");
        assert_eq!(id.claims.get("team").unwrap(), "red");
        assert!(id.token_id().is_some());
    }
}
