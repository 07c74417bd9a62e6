//! Static verification keys: HMAC secrets and PEM public keys.
//!
//! Each key carries the algorithms it may verify. The algorithm is pinned by
//! the key's type, never taken from the token: an RSA key never verifies an
//! `HS256` token (algorithm confusion) and nothing verifies `alg: none`.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use spki::ObjectIdentifier;

use crate::rules::Rules;

/// Shortest HMAC secret accepted: 256 bits, as RFC 7518 §3.2 asks for HS256.
pub const MIN_SECRET_BYTES: usize = 32;

pub(crate) const HMAC_ALGS: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
pub(crate) const RSA_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// A key that is not usable; raised at startup, never per token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error(
        "the HMAC secret is {0} bytes; at least {MIN_SECRET_BYTES} are required, because a \
         shorter secret can be brute-forced from any token it signed"
    )]
    /// An HMAC secret shorter than the minimum; the length it had.
    SecretTooShort(usize),
    #[error("not a PEM public key: {0}")]
    /// The key file is not PEM.
    NotPem(String),
    #[error("unsupported public key type: {0} (use RSA, EC P-256/P-384 or Ed25519)")]
    /// A key type or curve sockgate does not verify with.
    Unsupported(String),
    #[error("invalid public key: {0}")]
    /// The PEM does not hold a valid key.
    Invalid(String),
}

/// A decoding key with the validation (and so the algorithms) pinned to it.
pub struct VerifyKey {
    pub(crate) key: DecodingKey,
    pub(crate) validation: Validation,
}

impl VerifyKey {
    pub(crate) fn new(key: DecodingKey, algorithms: &[Algorithm], rules: &Rules) -> Self {
        Self {
            key,
            validation: rules.validation(algorithms),
        }
    }

    /// The algorithms this key verifies.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.validation.algorithms
    }

    /// An HMAC secret for HS256/384/512.
    pub fn hmac(secret: &[u8], rules: &Rules) -> Result<Self, KeyError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(KeyError::SecretTooShort(secret.len()));
        }
        Ok(Self::new(
            DecodingKey::from_secret(secret),
            HMAC_ALGS,
            rules,
        ))
    }

    /// A PEM public key: `PUBLIC KEY` (SPKI: RSA, EC P-256/P-384, Ed25519)
    /// or `RSA PUBLIC KEY` (PKCS#1).
    pub fn from_pem(pem_bytes: &[u8], rules: &Rules) -> Result<Self, KeyError> {
        let block = pem::parse(pem_bytes).map_err(|e| KeyError::NotPem(e.to_string()))?;
        let (key, algs): (DecodingKey, &[Algorithm]) = match block.tag() {
            "RSA PUBLIC KEY" => (DecodingKey::from_rsa_der(block.contents()), RSA_ALGS),
            "PUBLIC KEY" => spki_key(block.contents())?,
            other => return Err(KeyError::NotPem(format!("unexpected PEM block `{other}`"))),
        };
        Ok(Self::new(key, algs, rules))
    }
}

fn spki_key(der: &[u8]) -> Result<(DecodingKey, &'static [Algorithm]), KeyError> {
    let info = spki::SubjectPublicKeyInfoRef::try_from(der)
        .map_err(|e| KeyError::Invalid(e.to_string()))?;
    let raw = info.subject_public_key.raw_bytes();
    let oid = info.algorithm.oid;
    if oid == OID_RSA {
        // jsonwebtoken's RSA DER form is the PKCS#1 key inside the SPKI wrapper.
        return Ok((DecodingKey::from_rsa_der(raw), RSA_ALGS));
    }
    if oid == OID_ED25519 {
        return Ok((DecodingKey::from_ed_der(raw), &[Algorithm::EdDSA]));
    }
    if oid == OID_EC {
        let curve = info
            .algorithm
            .parameters_oid()
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let alg: &'static [Algorithm] = match curve {
            c if c == OID_P256 => &[Algorithm::ES256],
            c if c == OID_P384 => &[Algorithm::ES384],
            c => return Err(KeyError::Unsupported(format!("EC curve {c}"))),
        };
        return Ok((DecodingKey::from_ec_der(raw), alg));
    }
    Err(KeyError::Unsupported(format!("algorithm {oid}")))
}
