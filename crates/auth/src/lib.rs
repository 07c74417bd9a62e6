//! # sockgate-auth
//!
//! Token verification and identity for sockgate, with no sockets and no I/O
//! of its own, so it is easy to test and to reuse.
//!
//! - [`source`]: where a handshake's credential comes from (auth payload,
//!   header, cookie, Next-Auth session cookie, query).
//! - [`session_cookie`]: Next-Auth (v4) and Auth.js (v5) session cookies,
//!   decrypted directly.
//! - [`keys`]: HMAC secrets and PEM public keys, each pinned to its algorithms.
//! - [`jwks`]: a cached JWKS key set chosen by `kid`, refetched on rotation.
//! - [`exposure`]: which claims clients and backends see (never a credential).
//! - [`rules`]: issuer, audience, leeway, required claims, the user claim.
//! - [`verifier`]: a compact JWT in, an [`Identity`] or a coded [`AuthError`] out.
//! - [`error`]: the stable error codes.
//!
//! ```
//! use sockgate_auth::{Rules, Verifier, VerifyKey};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let rules = Rules::default();
//! let key = VerifyKey::hmac(b"an-example-secret-of-32-bytes-or-more", &rules).unwrap();
//! let verifier = Verifier::new(rules).with_hmac(key);
//! let err = verifier.verify("not-a-jwt").await.unwrap_err();
//! assert_eq!(err.code.as_str(), "TOKEN_INVALID");
//! # });
//! ```

#![warn(missing_docs)]

pub mod error;
pub mod exposure;
pub mod identity;
pub mod jwks;
pub mod keys;
pub mod rules;
pub mod session_cookie;
pub mod source;
pub mod verifier;

pub use error::{AuthError, Class, ErrorCode};
pub use exposure::Exposure;
pub use identity::{Claims, Identity};
pub use jwks::{Jwks, JwksFetcher};
pub use keys::{KeyError, VerifyKey};
pub use rules::Rules;
pub use session_cookie::{SessionCookie, SessionCookies};
pub use source::{Credential, Handshake, SourcePolicy, TokenSource};
pub use verifier::{SessionIdentity, Verifier};

/// Re-exported so users can name algorithms and JWK types without a
/// direct dependency.
pub use jsonwebtoken;
