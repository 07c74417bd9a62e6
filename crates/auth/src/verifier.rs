//! Token verification: from a compact JWT to an [`Identity`] or a coded refusal.
//!
//! The token's `alg` header only chooses among keys the operator configured:
//! HS* tokens go to the HMAC secrets, every other algorithm to the public key
//! or the JWKS set, and each key accepts only the algorithms of its own type.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{AlgorithmFamily, Header};
use serde_json::{Map, Value};

use crate::error::{AuthError, ErrorCode};
use crate::exposure::is_jose;
use crate::identity::{Identity, unix_seconds};
use crate::jwks::Jwks;
use crate::keys::VerifyKey;
use crate::rules::Rules;
use crate::session_cookie::{SessionCookie, SessionCookies};
use crate::source::Credential;

/// Checks tokens against the configured keys and rules. Cheap to share.
pub struct Verifier {
    rules: Rules,
    /// Current secret first, then the previous one during a rotation.
    hmac: Vec<VerifyKey>,
    public_key: Option<Arc<VerifyKey>>,
    jwks: Option<Arc<Jwks>>,
    session: Option<SessionMode>,
}

/// How Next-Auth / Auth.js session cookies are read.
struct SessionMode {
    cookies: Arc<SessionCookies>,
    identity: SessionIdentity,
    /// Whether a detected backend token was logged already (once a process).
    detected: AtomicBool,
}

/// Where a session cookie's identity comes from
/// (`SOCKGATE_NEXTAUTH_TOKEN_CLAIM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionIdentity {
    /// The backend JWT in this claim, which must be there.
    TokenIn(String),
    /// A backend JWT under one of [`TOKEN_CLAIMS`] when it verifies with
    /// the configured keys; else the session's own claims (the default).
    Detect,
    /// The session's own claims (`none`).
    Session,
}

/// The names apps store their backend token under in a Next-Auth session
/// (`token.accessToken = user.accessToken` in the `jwt` callback), in the
/// order they are looked at.
pub const TOKEN_CLAIMS: [&str; 3] = ["accessToken", "access_token", "token"];

impl Verifier {
    /// A verifier with no keys yet; add them with the `with_*` methods.
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            hmac: Vec::new(),
            public_key: None,
            jwks: None,
            session: None,
        }
    }

    /// The claim rules every token is checked against.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Adds an HMAC key. The first one added is tried first.
    pub fn with_hmac(mut self, key: VerifyKey) -> Self {
        self.hmac.push(key);
        self
    }

    /// Adds a PEM public key (RSA, EC or Ed25519).
    pub fn with_public_key(mut self, key: VerifyKey) -> Self {
        self.public_key = Some(Arc::new(key));
        self
    }

    /// Adds a JWKS key set, chosen by `kid`.
    pub fn with_jwks(mut self, jwks: Arc<Jwks>) -> Self {
        self.jwks = Some(jwks);
        self
    }

    /// Accepts Next-Auth / Auth.js session cookies, whose identity comes
    /// from where `identity` says.
    pub fn with_session_cookies(
        mut self,
        cookies: Arc<SessionCookies>,
        identity: SessionIdentity,
    ) -> Self {
        self.session = Some(SessionMode {
            cookies,
            identity,
            detected: AtomicBool::new(false),
        });
        self
    }

    /// Whether any JWT key is configured at all.
    pub fn has_keys(&self) -> bool {
        !self.hmac.is_empty() || self.public_key.is_some() || self.jwks.is_some()
    }

    /// Verifies whatever credential the handshake carried.
    pub async fn verify_credential(
        &self,
        credential: &Credential<'_>,
    ) -> Result<Identity, AuthError> {
        match credential {
            Credential::Token(token) => self.verify(token).await,
            Credential::SessionCookies(cookies) => self.verify_session(cookies).await,
        }
    }

    /// Opens the first session cookie that decrypts (a refusal names the
    /// first one's failure) and reads the identity from it.
    async fn verify_session(&self, cookies: &[SessionCookie]) -> Result<Identity, AuthError> {
        let Some(mode) = &self.session else {
            return Err(AuthError::new(
                ErrorCode::AuthRequired,
                "session cookies are not accepted here",
            ));
        };
        let claims = mode.cookies.open_first(cookies)?;
        // The cookie only carries the backend token: its own lifetime is
        // Next-Auth's business, the token's is sockgate's.
        match &mode.identity {
            SessionIdentity::TokenIn(claim) => match claims.get(claim) {
                Some(Value::String(token)) if !token.is_empty() => self.verify(token).await,
                _ => Err(AuthError::claims(format!(
                    "the session holds no `{claim}` token"
                ))),
            },
            SessionIdentity::Session => self.session_identity(claims),
            SessionIdentity::Detect => match self.backend_token_in(&claims, mode).await {
                Some(verified) => verified,
                None => self.session_identity(claims),
            },
        }
    }

    /// The backend token a session holds under a conventional name, once
    /// its signature verifies with the configured keys: from then on it is
    /// the identity, its `exp`, `jti` and user included, as if
    /// `SOCKGATE_NEXTAUTH_TOKEN_CLAIM` named it. Otherwise a session that
    /// carries a 1-hour backend token would live for the session's 30
    /// days, and revoking the token's `jti` would not end it. A token that
    /// is not ours (`TOKEN_INVALID`: another signer, not a JWT) is ignored;
    /// every other refusal (expired, revoked keys unavailable) is the
    /// session's.
    async fn backend_token_in(
        &self,
        claims: &Map<String, Value>,
        mode: &SessionMode,
    ) -> Option<Result<Identity, AuthError>> {
        if !self.has_keys() {
            return None;
        }
        for name in TOKEN_CLAIMS {
            let Some(Value::String(token)) = claims.get(name) else {
                continue;
            };
            if !is_jose(token) {
                continue;
            }
            let verified = self.verify(token).await;
            if matches!(&verified, Err(e) if e.code == ErrorCode::TokenInvalid) {
                continue;
            }
            if !mode.detected.swap(true, Ordering::Relaxed) {
                tracing::info!(
                    target: "sockgate::auth",
                    claim = name,
                    "the Next-Auth session holds a backend token signed with the configured keys: \
                     it is the identity (its user, exp and jti); SOCKGATE_NEXTAUTH_TOKEN_CLAIM=none \
                     keeps the session's own claims"
                );
            }
            return Some(verified);
        }
        None
    }

    /// The identity of a decrypted session: the same time checks as a JWT
    /// (`exp` required unless configured otherwise, `nbf`, `iat`), the user
    /// claim as configured. Issuer and audience rules are for JWTs: a
    /// Next-Auth session has neither.
    fn session_identity(&self, claims: Map<String, Value>) -> Result<Identity, AuthError> {
        for name in ["exp", "nbf", "iat"] {
            if claims.get(name).is_some_and(|v| unix_seconds(v).is_none()) {
                return Err(AuthError::claims(format!(
                    "the `{name}` claim is malformed"
                )));
            }
        }
        if self.rules.require_exp && !claims.contains_key("exp") {
            return Err(AuthError::claims("the `exp` claim is missing"));
        }
        let nbf = claims.get("nbf").and_then(unix_seconds);
        let identity = Identity::from_claims(claims, &self.rules.user_claim)?;
        self.check_not_expired(&identity)?;
        self.check_issued_in_the_past(&identity)?;
        if let Some(nbf) = nbf {
            let now = now_secs();
            if nbf > now.saturating_add(self.rules.leeway_secs) {
                return Err(AuthError::new(
                    ErrorCode::TokenNotYetValid,
                    format!("token is not valid for another {} s", nbf - now),
                ));
            }
        }
        Ok(identity)
    }

    /// Verifies a compact JWT and returns the identity it carries.
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > self.rules.max_token_bytes {
            return Err(AuthError::invalid(format!(
                "token is larger than {} bytes",
                self.rules.max_token_bytes
            )));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::invalid("malformed token (not a signed JWT)"))?;
        // RFC 7515 §4.1.11: a recipient must refuse a token whose `crit`
        // names an extension it does not understand. sockgate understands
        // none, and an empty `crit` is itself invalid, so any `crit` is refused.
        if header.crit.is_some() {
            return Err(AuthError::invalid(
                "the token's `crit` header names extensions sockgate does not understand",
            ));
        }
        let claims = match header.alg.family() {
            AlgorithmFamily::Hmac => self.decode_hmac(token, &header)?,
            _ => {
                let key = self.public_key_for(&header).await?;
                decode_with(token, &header, &key)?
            }
        };
        let identity = Identity::from_claims(claims, &self.rules.user_claim)?;
        self.check_not_expired(&identity)?;
        self.check_issued_in_the_past(&identity)?;
        Ok(identity)
    }

    /// A token issued in the future (beyond the leeway) is not valid yet.
    ///
    /// A user revocation covers the tokens issued before a time; a token
    /// whose `iat` lies ahead of that time would escape it. Refused like an
    /// early `nbf` (`TOKEN_NOT_YET_VALID`): the same token becomes acceptable
    /// once its `iat` has passed, and by then it is an ordinary token that a
    /// later revocation catches.
    fn check_issued_in_the_past(&self, identity: &Identity) -> Result<(), AuthError> {
        let Some(iat) = identity.issued_at() else {
            return Ok(());
        };
        let now = now_secs();
        if iat <= now.saturating_add(self.rules.leeway_secs) {
            return Ok(());
        }
        Err(AuthError::new(
            ErrorCode::TokenNotYetValid,
            format!("token is issued {} s in the future", iat - now),
        ))
    }

    /// RFC 7519 §4.1.4: a token is valid only *before* its `exp`.
    /// jsonwebtoken compares whole seconds and still accepts a token during
    /// the second that is its `exp`; the gateway ends sessions at `exp` to
    /// the millisecond, so that last second would admit a client only to end
    /// it at once.
    fn check_not_expired(&self, identity: &Identity) -> Result<(), AuthError> {
        let Some(exp) = identity.expires_at else {
            return Ok(());
        };
        let deadline_ms = exp
            .saturating_add(self.rules.leeway_secs)
            .saturating_mul(1000);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        if now_ms < deadline_ms {
            return Ok(());
        }
        let ago = (now_ms - exp.saturating_mul(1000)) / 1000;
        Err(AuthError::new(
            ErrorCode::TokenExpired,
            format!("token expired {ago} s ago"),
        ))
    }

    fn decode_hmac(&self, token: &str, header: &Header) -> Result<Map<String, Value>, AuthError> {
        let mut result = Err(not_accepted(header));
        for key in &self.hmac {
            result = decode_with(token, header, key);
            // Only a bad signature may mean "signed with the other secret".
            if !matches!(&result, Err(e) if e.message == BAD_SIGNATURE) {
                break;
            }
        }
        result
    }

    async fn public_key_for(&self, header: &Header) -> Result<Arc<VerifyKey>, AuthError> {
        match (&self.jwks, &self.public_key) {
            // A static key answers tokens without `kid`; JWKS answers the rest.
            (Some(jwks), Some(_)) if header.kid.is_some() => jwks.key(header.kid.as_deref()).await,
            (_, Some(key)) => Ok(key.clone()),
            (Some(jwks), None) => jwks.key(header.kid.as_deref()).await,
            (None, None) => Err(not_accepted(header)),
        }
    }
}

const BAD_SIGNATURE: &str = "bad signature";

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn not_accepted(header: &Header) -> AuthError {
    AuthError::invalid(format!("{:?} tokens are not accepted here", header.alg))
}

fn decode_with(
    token: &str,
    header: &Header,
    key: &VerifyKey,
) -> Result<Map<String, Value>, AuthError> {
    if !key.algorithms().contains(&header.alg) {
        return Err(AuthError::invalid(format!(
            "algorithm {:?} does not match the configured key",
            header.alg
        )));
    }
    jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &key.validation)
        .map(|data| data.claims)
        .map_err(|e| map_error(e.into_kind(), token))
}

fn map_error(kind: ErrorKind, token: &str) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::invalid(BAD_SIGNATURE),
        ErrorKind::ExpiredSignature => {
            let ago = claim_offset(token, "exp").map(|s| -s).unwrap_or(0);
            AuthError::new(
                ErrorCode::TokenExpired,
                format!("token expired {ago} s ago"),
            )
        }
        ErrorKind::ImmatureSignature => {
            let wait = claim_offset(token, "nbf").unwrap_or(0);
            AuthError::new(
                ErrorCode::TokenNotYetValid,
                format!("token is not valid for another {wait} s"),
            )
        }
        ErrorKind::MissingRequiredClaim(c) => {
            AuthError::claims(format!("the `{c}` claim is missing"))
        }
        ErrorKind::InvalidClaimFormat(c) => {
            AuthError::claims(format!("the `{c}` claim is malformed"))
        }
        ErrorKind::InvalidIssuer => AuthError::claims("issuer not accepted"),
        ErrorKind::InvalidAudience => AuthError::claims("audience not accepted"),
        ErrorKind::InvalidAlgorithm => AuthError::invalid("algorithm not accepted"),
        ErrorKind::Json(_) => AuthError::invalid("token payload is not a JSON object"),
        _ => AuthError::invalid("malformed token"),
    }
}

/// Seconds from now to a time claim, for error messages only. The signature
/// was already checked when this runs (jsonwebtoken checks it before claims).
fn claim_offset(token: &str, claim: &str) -> Option<i64> {
    let claims: Map<String, Value> = jsonwebtoken::dangerous::insecure_decode_claims(token).ok()?;
    let at = unix_seconds(claims.get(claim)?)? as i64;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
    Some(at - now)
}
