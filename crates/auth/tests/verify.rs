//! Table-driven verification rules: every error code, every key type.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sockgate_auth::jwks::FetchFuture;
use sockgate_auth::{ErrorCode, Jwks, JwksFetcher, KeyError, Rules, Verifier, VerifyKey};

const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
const OLD_SECRET: &[u8] = b"old-secret-old-secret-old-secret-old!";

fn key_file(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/keys")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(extra: Value) -> Value {
    let mut c = json!({ "sub": "alice", "exp": now() + 600, "iat": now() });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn encoding_key(alg: Algorithm, private: &str) -> EncodingKey {
    let pem = key_file(private);
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => unreachable!(),
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    }
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value, kid: Option<&str>) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn hs(alg: Algorithm, secret: &[u8], claims: &Value) -> String {
    sign(alg, &EncodingKey::from_secret(secret), claims, None)
}

fn hmac_verifier(rules: Rules) -> Verifier {
    let key = VerifyKey::hmac(SECRET, &rules).unwrap();
    let old = VerifyKey::hmac(OLD_SECRET, &rules).unwrap();
    Verifier::new(rules).with_hmac(key).with_hmac(old)
}

fn pem_verifier(public: &str, rules: Rules) -> Verifier {
    let key = VerifyKey::from_pem(&key_file(public), &rules).unwrap();
    Verifier::new(rules).with_public_key(key)
}

async fn code_of(v: &Verifier, token: &str) -> Result<String, ErrorCode> {
    v.verify(token)
        .await
        .map(|id| id.user_id)
        .map_err(|e| e.code)
}

#[tokio::test]
async fn every_public_key_type_verifies_its_own_tokens_only() {
    // (algorithm, private key, public key, an unrelated private key of the same type)
    let table = [
        (Algorithm::RS256, "rsa.key", "rsa.pub", "rsa2.key"),
        (Algorithm::RS384, "rsa.key", "rsa.pub", "rsa2.key"),
        (Algorithm::RS512, "rsa.key", "rsa-pkcs1.pub", "rsa2.key"),
        (Algorithm::PS256, "rsa.key", "rsa.pub", "rsa2.key"),
        (Algorithm::PS512, "rsa.key", "rsa.pub", "rsa2.key"),
        (Algorithm::ES256, "ec256.key", "ec256.pub", "ec384.key"),
        (Algorithm::ES384, "ec384.key", "ec384.pub", "ec256.key"),
        (
            Algorithm::EdDSA,
            "ed25519.key",
            "ed25519.pub",
            "ed25519.key",
        ),
    ];
    for (alg, private, public, other) in table {
        let v = pem_verifier(public, Rules::default());
        let good = sign(alg, &encoding_key(alg, private), &claims(json!({})), None);
        assert_eq!(code_of(&v, &good).await, Ok("alice".into()), "{alg:?}");

        if other != private {
            let other_alg = if other.starts_with("ec3") {
                Algorithm::ES384
            } else if other.starts_with("ec2") {
                Algorithm::ES256
            } else {
                alg
            };
            let forged = sign(
                other_alg,
                &encoding_key(other_alg, other),
                &claims(json!({})),
                None,
            );
            assert_eq!(
                code_of(&v, &forged).await,
                Err(ErrorCode::TokenInvalid),
                "{alg:?} vs {other}"
            );
        }
        // A valid token with a tampered payload.
        let parts: Vec<&str> = good.split('.').collect();
        let evil = sign(
            alg,
            &encoding_key(alg, private),
            &claims(json!({ "sub": "mallory" })),
            None,
        );
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            evil.split('.').nth(1).unwrap(),
            parts[2]
        );
        assert_eq!(
            code_of(&v, &tampered).await,
            Err(ErrorCode::TokenInvalid),
            "{alg:?} tampered"
        );
    }
}

#[tokio::test]
async fn hmac_algorithms_and_secret_rotation() {
    let v = hmac_verifier(Rules::default());
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        assert_eq!(
            code_of(&v, &hs(alg, SECRET, &claims(json!({})))).await,
            Ok("alice".into())
        );
        assert_eq!(
            code_of(&v, &hs(alg, OLD_SECRET, &claims(json!({})))).await,
            Ok("alice".into())
        );
        let wrong = hs(
            alg,
            b"some-other-secret-some-other-secret!",
            &claims(json!({})),
        );
        assert_eq!(code_of(&v, &wrong).await, Err(ErrorCode::TokenInvalid));
    }
    // Once the previous secret is dropped, its tokens stop working.
    let rules = Rules::default();
    let only_new = Verifier::new(rules.clone()).with_hmac(VerifyKey::hmac(SECRET, &rules).unwrap());
    let old = hs(Algorithm::HS256, OLD_SECRET, &claims(json!({})));
    assert_eq!(code_of(&only_new, &old).await, Err(ErrorCode::TokenInvalid));
}

#[test]
fn short_secrets_and_bad_pems_are_refused_at_startup() {
    let rules = Rules::default();
    assert_eq!(
        VerifyKey::hmac(b"short", &rules).err(),
        Some(KeyError::SecretTooShort(5))
    );
    assert!(VerifyKey::hmac(&[7u8; 32], &rules).is_ok());
    assert!(matches!(
        VerifyKey::from_pem(b"not a pem", &rules),
        Err(KeyError::NotPem(_))
    ));
    // A private key is not a public key.
    assert!(VerifyKey::from_pem(&key_file("rsa.key"), &rules).is_err());
    let ec = VerifyKey::from_pem(&key_file("ec384.pub"), &rules).unwrap();
    assert_eq!(ec.algorithms(), &[Algorithm::ES384]);
    let ed = VerifyKey::from_pem(&key_file("ed25519.pub"), &rules).unwrap();
    assert_eq!(ed.algorithms(), &[Algorithm::EdDSA]);
}

#[tokio::test]
async fn algorithm_is_pinned_by_the_key_type() {
    let rsa_only = pem_verifier("rsa.pub", Rules::default());
    // Algorithm confusion: HS256 "signed" with the RSA public key as secret.
    let confused = hs(Algorithm::HS256, &key_file("rsa.pub"), &claims(json!({})));
    assert_eq!(
        code_of(&rsa_only, &confused).await,
        Err(ErrorCode::TokenInvalid)
    );
    // Even with an HMAC secret configured too, the public key is no secret.
    let rules = Rules::default();
    let both =
        pem_verifier("rsa.pub", rules.clone()).with_hmac(VerifyKey::hmac(SECRET, &rules).unwrap());
    assert_eq!(
        code_of(&both, &confused).await,
        Err(ErrorCode::TokenInvalid)
    );

    // ES384 token against a P-256 key, RS256 against an EC key.
    let p256 = pem_verifier("ec256.pub", Rules::default());
    let es384 = sign(
        Algorithm::ES384,
        &encoding_key(Algorithm::ES384, "ec384.key"),
        &claims(json!({})),
        None,
    );
    assert_eq!(code_of(&p256, &es384).await, Err(ErrorCode::TokenInvalid));
    let rs = sign(
        Algorithm::RS256,
        &encoding_key(Algorithm::RS256, "rsa.key"),
        &claims(json!({})),
        None,
    );
    assert_eq!(code_of(&p256, &rs).await, Err(ErrorCode::TokenInvalid));
    // HS tokens when no secret is configured.
    assert_eq!(
        code_of(&p256, &hs(Algorithm::HS256, SECRET, &claims(json!({})))).await,
        Err(ErrorCode::TokenInvalid)
    );
}

#[tokio::test]
async fn alg_none_and_malformed_tokens_are_invalid() {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        b64(&claims(json!({})))
    );
    let v = hmac_verifier(Rules::default());
    let not_an_object = format!(
        "{}.{}.sig",
        b64(&json!({ "alg": "HS256" })),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("[1,2]")
    );
    for token in [
        none.as_str(),
        "",
        "abc",
        "a.b.c",
        "....",
        "\u{0}\u{1}",
        not_an_object.as_str(),
    ] {
        assert_eq!(
            code_of(&v, token).await,
            Err(ErrorCode::TokenInvalid),
            "{token:?}"
        );
    }
    // Oversized tokens are refused even when correctly signed.
    let big = hs(
        Algorithm::HS256,
        SECRET,
        &claims(json!({ "pad": "x".repeat(9000) })),
    );
    let err = v.verify(&big).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::TokenInvalid);
    assert!(err.message.contains("8192"), "{}", err.message);
}

#[tokio::test]
async fn time_claims() {
    let strict = hmac_verifier(Rules::default());
    let expired = hs(
        Algorithm::HS256,
        SECRET,
        &claims(json!({ "exp": now() - 1 })),
    );
    let err = strict.verify(&expired).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::TokenExpired);
    assert!(err.message.starts_with("token expired "), "{}", err.message);

    // Valid only before `exp` (RFC 7519): not during the second that is its
    // `exp`, which the gateway would end at once.
    let expiring_now = hs(Algorithm::HS256, SECRET, &claims(json!({ "exp": now() })));
    assert_eq!(
        code_of(&strict, &expiring_now).await,
        Err(ErrorCode::TokenExpired)
    );

    let lenient = hmac_verifier(Rules {
        leeway_secs: 30,
        ..Rules::default()
    });
    assert_eq!(code_of(&lenient, &expired).await, Ok("alice".into()));

    let future = hs(
        Algorithm::HS256,
        SECRET,
        &claims(json!({ "nbf": now() + 120 })),
    );
    assert_eq!(
        code_of(&strict, &future).await,
        Err(ErrorCode::TokenNotYetValid)
    );
    let started = hs(
        Algorithm::HS256,
        SECRET,
        &claims(json!({ "nbf": now() - 1 })),
    );
    assert_eq!(code_of(&strict, &started).await, Ok("alice".into()));

    let no_exp = hs(Algorithm::HS256, SECRET, &claims(json!({ "exp": null })));
    assert_eq!(
        code_of(&strict, &no_exp).await,
        Err(ErrorCode::ClaimsInvalid)
    );
    let optional = hmac_verifier(Rules {
        require_exp: false,
        ..Rules::default()
    });
    let id = optional.verify(&no_exp).await.unwrap();
    assert_eq!(id.expires_at, None);

    let bad_exp = hs(
        Algorithm::HS256,
        SECRET,
        &claims(json!({ "exp": "tomorrow" })),
    );
    assert_eq!(
        code_of(&strict, &bad_exp).await,
        Err(ErrorCode::ClaimsInvalid)
    );
}

#[tokio::test]
async fn issuer_audience_and_user_claim() {
    let v = hmac_verifier(Rules {
        issuer: Some(vec!["https://id.example".into()]),
        audience: Some(vec!["chat".into()]),
        ..Rules::default()
    });
    let ok = json!({ "iss": "https://id.example", "aud": "chat" });
    let table = [
        (json!({}), Err(ErrorCode::ClaimsInvalid)),
        (
            json!({ "iss": "https://id.example" }),
            Err(ErrorCode::ClaimsInvalid),
        ),
        (json!({ "aud": "chat" }), Err(ErrorCode::ClaimsInvalid)),
        (
            json!({ "iss": "https://evil.example", "aud": "chat" }),
            Err(ErrorCode::ClaimsInvalid),
        ),
        (
            json!({ "iss": "https://id.example", "aud": "other" }),
            Err(ErrorCode::ClaimsInvalid),
        ),
        (
            json!({ "iss": "https://id.example", "aud": ["other", "chat"] }),
            Ok("alice".to_owned()),
        ),
        (ok.clone(), Ok("alice".to_owned())),
    ];
    for (extra, want) in table {
        let token = hs(Algorithm::HS256, SECRET, &claims(extra.clone()));
        assert_eq!(code_of(&v, &token).await, want, "{extra}");
    }

    let by_id = hmac_verifier(Rules {
        user_claim: "id".into(),
        ..Rules::default()
    });
    let table = [
        (json!({ "id": 42 }), Ok("42".to_owned())),
        (json!({ "id": "u-7" }), Ok("u-7".to_owned())),
        (json!({ "id": "" }), Err(ErrorCode::ClaimsInvalid)),
        (json!({ "id": 1.5 }), Err(ErrorCode::ClaimsInvalid)),
        (json!({ "id": ["a"] }), Err(ErrorCode::ClaimsInvalid)),
        (json!({ "id": true }), Err(ErrorCode::ClaimsInvalid)),
        (json!({}), Err(ErrorCode::ClaimsInvalid)),
    ];
    for (extra, want) in table {
        let token = hs(Algorithm::HS256, SECRET, &claims(extra.clone()));
        assert_eq!(code_of(&by_id, &token).await, want, "{extra}");
    }
    // Without an audience configured, a token's own `aud` is accepted.
    let plain = hmac_verifier(Rules::default());
    let token = hs(
        Algorithm::HS256,
        SECRET,
        &claims(json!({ "aud": "anything" })),
    );
    assert_eq!(code_of(&plain, &token).await, Ok("alice".into()));
}

#[tokio::test]
async fn identity_carries_claims_and_expiry() {
    let v = hmac_verifier(Rules::default());
    let exp = now() + 90;
    let token = hs(
        Algorithm::HS256,
        SECRET,
        &claims(json!({ "exp": exp, "jti": "t-1", "team": "red" })),
    );
    let id = v.verify(&token).await.unwrap();
    assert_eq!(id.expires_at, Some(exp as u64));
    assert_eq!(id.token_id(), Some("t-1"));
    assert_eq!(id.claims.get("team").unwrap(), "red");
    assert!(id.issued_at().is_some());
}

/// A fetcher serving whatever set the test puts in it, counting fetches.
#[derive(Clone, Default)]
struct FakeIdp {
    set: Arc<Mutex<Option<JwkSet>>>,
    fetches: Arc<AtomicUsize>,
}

impl FakeIdp {
    fn publish(&self, keys: &[(&str, Algorithm, &str)]) {
        let keys = keys
            .iter()
            .map(|(kid, alg, private)| {
                let mut jwk = Jwk::from_encoding_key(&encoding_key(*alg, private), *alg).unwrap();
                jwk.common.key_id = Some((*kid).to_owned());
                jwk
            })
            .collect();
        *self.set.lock().unwrap() = Some(JwkSet { keys });
    }
    fn go_down(&self) {
        *self.set.lock().unwrap() = None;
    }
}

impl JwksFetcher for FakeIdp {
    fn fetch(&self) -> FetchFuture<'_> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let set = self.set.lock().unwrap().clone();
        Box::pin(async move { set.ok_or_else(|| "connection refused".to_owned()) })
    }
}

fn jwks_verifier(idp: &FakeIdp, min_refetch: Duration) -> (Verifier, Arc<Jwks>) {
    let jwks = Arc::new(Jwks::new(idp.clone(), Rules::default(), min_refetch));
    (
        Verifier::new(Rules::default()).with_jwks(jwks.clone()),
        jwks,
    )
}

fn rs(kid: &str, private: &str) -> String {
    sign(
        Algorithm::RS256,
        &encoding_key(Algorithm::RS256, private),
        &claims(json!({})),
        Some(kid),
    )
}

#[tokio::test]
async fn jwks_picks_keys_by_kid_and_follows_rotation() {
    let idp = FakeIdp::default();
    idp.publish(&[
        ("k1", Algorithm::RS256, "rsa.key"),
        ("e1", Algorithm::ES256, "ec256.key"),
    ]);
    let (v, jwks) = jwks_verifier(&idp, Duration::ZERO);
    assert_eq!(jwks.refresh().await, Ok(2));

    assert_eq!(code_of(&v, &rs("k1", "rsa.key")).await, Ok("alice".into()));
    let es = sign(
        Algorithm::ES256,
        &encoding_key(Algorithm::ES256, "ec256.key"),
        &claims(json!({})),
        Some("e1"),
    );
    assert_eq!(code_of(&v, &es).await, Ok("alice".into()));
    // A key declared for RS256 does not verify a PS256 token.
    let ps = sign(
        Algorithm::PS256,
        &encoding_key(Algorithm::PS256, "rsa.key"),
        &claims(json!({})),
        Some("k1"),
    );
    assert_eq!(code_of(&v, &ps).await, Err(ErrorCode::TokenInvalid));
    // Two keys and no kid: ambiguous.
    let no_kid = sign(
        Algorithm::RS256,
        &encoding_key(Algorithm::RS256, "rsa.key"),
        &claims(json!({})),
        None,
    );
    assert_eq!(code_of(&v, &no_kid).await, Err(ErrorCode::TokenInvalid));

    // Rotation: the provider starts signing with k2; the unknown kid refetches.
    idp.publish(&[("k2", Algorithm::RS256, "rsa2.key")]);
    assert_eq!(code_of(&v, &rs("k2", "rsa2.key")).await, Ok("alice".into()));
    assert_eq!(
        code_of(&v, &rs("k1", "rsa.key")).await,
        Err(ErrorCode::TokenInvalid)
    );
    // A single key also answers tokens without kid.
    let no_kid = sign(
        Algorithm::RS256,
        &encoding_key(Algorithm::RS256, "rsa2.key"),
        &claims(json!({})),
        None,
    );
    assert_eq!(code_of(&v, &no_kid).await, Ok("alice".into()));
    // A kid that names the key but a signature from another key.
    assert_eq!(
        code_of(&v, &rs("k2", "rsa.key")).await,
        Err(ErrorCode::TokenInvalid)
    );
}

#[tokio::test]
async fn jwks_refetch_is_rate_limited_and_survives_outages() {
    let idp = FakeIdp::default();
    let (v, jwks) = jwks_verifier(&idp, Duration::from_secs(3600));

    // Never fetched successfully: the keys are unavailable.
    assert_eq!(
        code_of(&v, &rs("k1", "rsa.key")).await,
        Err(ErrorCode::AuthUnavailable)
    );
    assert!(!jwks.is_loaded());

    idp.publish(&[("k1", Algorithm::RS256, "rsa.key")]);
    assert_eq!(jwks.refresh().await, Ok(1));
    let before = idp.fetches.load(Ordering::SeqCst);
    // Forged kids: at most one refetch per interval (here: none, one just ran).
    for i in 0..50 {
        let forged = rs(&format!("forged-{i}"), "rsa.key");
        assert_eq!(code_of(&v, &forged).await, Err(ErrorCode::TokenInvalid));
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), before);

    // The endpoint goes down: the last good set keeps serving.
    idp.go_down();
    assert!(jwks.refresh().await.is_err());
    assert_eq!(code_of(&v, &rs("k1", "rsa.key")).await, Ok("alice".into()));
}

#[tokio::test]
async fn jwks_ignores_symmetric_and_encryption_keys() {
    let idp = FakeIdp::default();
    let mut oct =
        Jwk::from_encoding_key(&EncodingKey::from_secret(SECRET), Algorithm::HS256).unwrap();
    oct.common.key_id = Some("oct".into());
    *idp.set.lock().unwrap() = Some(JwkSet { keys: vec![oct] });
    let (v, jwks) = jwks_verifier(&idp, Duration::ZERO);
    assert!(
        jwks.refresh().await.is_err(),
        "a set of only symmetric keys is unusable"
    );
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("oct".into());
    let token = jsonwebtoken::encode(
        &header,
        &claims(json!({})),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert_ne!(code_of(&v, &token).await, Ok("alice".into()));
}

/// RFC 7515 §4.1.11: a `crit` header names extensions the recipient must
/// understand; sockgate understands none, so a correctly signed token that
/// carries one is refused.
#[tokio::test]
async fn crit_headers_are_refused() {
    let hmac = hmac_verifier(Rules::default());
    for crit in [vec!["exp".to_owned()], vec!["b64".to_owned()], Vec::new()] {
        let mut header = Header::new(Algorithm::HS256);
        header.crit = Some(crit.clone());
        let token = jsonwebtoken::encode(
            &header,
            &claims(json!({})),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        let err = hmac.verify(&token).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::TokenInvalid, "{crit:?}");
        assert!(err.message.contains("crit"), "{}", err.message);
    }
    // Public keys too: the check comes before any key is chosen.
    let rsa = pem_verifier("rsa.pub", Rules::default());
    let mut header = Header::new(Algorithm::RS256);
    header.crit = Some(vec!["urn:example:ext".into()]);
    let token = jsonwebtoken::encode(
        &header,
        &claims(json!({ "urn:example:ext": true })),
        &encoding_key(Algorithm::RS256, "rsa.key"),
    )
    .unwrap();
    assert_eq!(code_of(&rsa, &token).await, Err(ErrorCode::TokenInvalid));
    // The same token without `crit` is fine: only the header decides.
    let plain = sign(
        Algorithm::RS256,
        &encoding_key(Algorithm::RS256, "rsa.key"),
        &claims(json!({})),
        None,
    );
    assert_eq!(code_of(&rsa, &plain).await, Ok("alice".into()));
}

/// A token issued in the future would escape a user revocation (which
/// covers tokens issued before a time): it is not valid before its `iat`.
#[tokio::test]
async fn tokens_issued_in_the_future_are_not_yet_valid() {
    let strict = hmac_verifier(Rules::default());
    let year = 365 * 24 * 3600;
    let future = hs(
        Algorithm::HS256,
        SECRET,
        &claims(json!({ "iat": now() + year, "exp": now() + 2 * year })),
    );
    let err = strict.verify(&future).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::TokenNotYetValid);
    assert!(err.message.contains("future"), "{}", err.message);
    let soon = hs(
        Algorithm::HS256,
        SECRET,
        &claims(json!({ "iat": now() + 20 })),
    );
    assert_eq!(
        code_of(&strict, &soon).await,
        Err(ErrorCode::TokenNotYetValid)
    );
    // A fractional or huge `iat` cannot overflow its way in.
    let huge = hs(Algorithm::HS256, SECRET, &claims(json!({ "iat": 1e300 })));
    assert_eq!(
        code_of(&strict, &huge).await,
        Err(ErrorCode::TokenNotYetValid)
    );
    // Now, the past, and no `iat` at all are fine.
    for iat in [json!(now()), json!(now() - 3600), Value::Null] {
        let token = hs(Algorithm::HS256, SECRET, &claims(json!({ "iat": iat })));
        assert_eq!(code_of(&strict, &token).await, Ok("alice".into()), "{iat}");
    }
    // The leeway covers an issuer whose clock runs a little ahead.
    let lenient = hmac_verifier(Rules {
        leeway_secs: 30,
        ..Rules::default()
    });
    assert_eq!(code_of(&lenient, &soon).await, Ok("alice".into()));
    assert_eq!(
        code_of(&lenient, &future).await,
        Err(ErrorCode::TokenNotYetValid)
    );
}

/// The user claim follows the admin API's rules for user ids, so every user
/// who can connect can be revoked and published to.
#[tokio::test]
async fn user_ids_the_admin_api_cannot_name_are_refused() {
    let v = hmac_verifier(Rules::default());
    let table = [
        (json!("u".repeat(256)), Ok("u".repeat(256))),
        (json!("u".repeat(257)), Err(ErrorCode::ClaimsInvalid)),
        (json!("bob smith"), Err(ErrorCode::ClaimsInvalid)),
        (json!("bob\nsmith"), Err(ErrorCode::ClaimsInvalid)),
        (json!("bob\u{7}"), Err(ErrorCode::ClaimsInvalid)),
        (json!(12345), Ok("12345".to_owned())),
    ];
    for (sub, want) in table {
        let token = hs(Algorithm::HS256, SECRET, &claims(json!({ "sub": sub })));
        assert_eq!(code_of(&v, &token).await, want, "{sub}");
    }
}
