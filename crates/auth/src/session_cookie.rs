//! Next-Auth (v4) and Auth.js (v5) session cookies, opened directly.
//!
//! A Next.js app that logs users in with Next-Auth already holds an
//! HTTP-only session cookie, which browsers send on sockgate's handshake when
//! the gateway is same-site. The cookie is a compact JWE (`alg: dir`) whose
//! key is derived from the app's secret:
//!
//! | version | cookie names | `enc` | key (HKDF-SHA256 of the secret) |
//! |---|---|---|---|
//! | Next-Auth v4 | `next-auth.session-token`, `__Secure-` + it | A256GCM | salt `""`, info `NextAuth.js Generated Encryption Key`, 32 bytes |
//! | Auth.js v5 | `authjs.session-token`, `__Secure-` + it | A256CBC-HS512 (A256GCM too) | salt = the cookie name, info `Auth.js Generated Encryption Key (<name>)`, 64 (32) bytes |
//!
//! Large sessions are split into `<name>.0`, `<name>.1`, … and joined in
//! numeric order. Opening a cookie yields its JWT claims set; the verifier
//! turns it into an identity.
//!
//! The primitives are aws-lc-rs's (already in the tree through
//! jsonwebtoken): AES-GCM, AES-CBC, HMAC-SHA512 and HKDF. Only the compact
//! JWE framing is parsed here, with every length checked before anything is
//! decrypted. A JOSE crate would bring a second crypto stack, and most
//! implement far more of JWE (key wrapping, compression) than the two
//! combinations sockgate must accept and nothing else.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey};
use aws_lc_rs::{constant_time, hkdf, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::error::{AuthError, ErrorCode};

/// Session cookies above this size (all chunks together) are refused before
/// any decoding. Next-Auth splits at about 4 KB per chunk; 64 KiB is 16 chunks.
pub const MAX_COOKIE_BYTES: usize = 64 * 1024;

/// Most chunks read of one cookie name.
const MAX_CHUNKS: usize = 16;

const V4_INFO: &str = "NextAuth.js Generated Encryption Key";

/// A session cookie as the handshake carried it: the name it was found
/// under and its value, chunks joined.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCookie {
    /// The cookie name it was found under (chunks: the name without `.N`).
    pub name: String,
    /// Its value, chunks joined in order: a credential, never logged.
    pub value: String,
}

impl std::fmt::Debug for SessionCookie {
    // The value is a credential: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCookie")
            .field("name", &self.name)
            .field("bytes", &self.value.len())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enc {
    A256Gcm,
    A256CbcHs512,
}

impl Enc {
    fn from_header(enc: &str) -> Option<Self> {
        match enc {
            "A256GCM" => Some(Enc::A256Gcm),
            "A256CBC-HS512" => Some(Enc::A256CbcHs512),
            _ => None,
        }
    }

    const fn key_len(self) -> usize {
        match self {
            Enc::A256Gcm => 32,
            Enc::A256CbcHs512 => 64,
        }
    }

    const fn iv_len(self) -> usize {
        match self {
            Enc::A256Gcm => 12,
            Enc::A256CbcHs512 => 16,
        }
    }

    const fn tag_len(self) -> usize {
        match self {
            Enc::A256Gcm => 16,
            Enc::A256CbcHs512 => 32,
        }
    }
}

/// One derived key: for one cookie name, one secret and one `enc`.
struct CookieKey {
    name: String,
    enc: Enc,
    key: Vec<u8>,
}

/// The Next-Auth / Auth.js session cookies sockgate accepts, with their keys
/// derived once at startup.
pub struct SessionCookies {
    /// Cookie names in the order they are looked for.
    names: Vec<String>,
    keys: Vec<CookieKey>,
}

impl std::fmt::Debug for SessionCookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCookies")
            .field("names", &self.names)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// Which derivations a cookie name gets.
#[derive(Clone, Copy)]
enum Version {
    V4,
    V5,
    /// A renamed cookie: its version cannot be told from its name.
    Either,
}

impl SessionCookies {
    /// The standard names: Auth.js v5 before Next-Auth v4 and the
    /// `__Secure-` forms first, as production sites set them. `rename`
    /// replaces them all with one name of either version.
    pub fn new(secrets: &[impl AsRef<[u8]>], rename: Option<&str>) -> Self {
        let names: Vec<(String, Version)> = match rename {
            Some(name) => vec![(name.to_owned(), Version::Either)],
            None => vec![
                ("__Secure-authjs.session-token".into(), Version::V5),
                ("authjs.session-token".into(), Version::V5),
                ("__Secure-next-auth.session-token".into(), Version::V4),
                ("next-auth.session-token".into(), Version::V4),
            ],
        };
        let mut keys = Vec::new();
        for (name, version) in &names {
            for secret in secrets {
                keys.extend(derive(secret.as_ref(), name, *version));
            }
        }
        Self {
            names: names.into_iter().map(|(n, _)| n).collect(),
            keys,
        }
    }

    /// The session cookies of a `Cookie` header, in the order they are tried.
    /// A name present whole wins over its chunks.
    pub fn find(&self, header: &str) -> Vec<SessionCookie> {
        let jar: Vec<_> = cookie::Cookie::split_parse(header)
            .filter_map(Result::ok)
            .filter(|c| !c.value().is_empty())
            .collect();
        let mut found = Vec::new();
        for name in &self.names {
            if let Some(whole) = jar.iter().find(|c| c.name() == name) {
                found.push(SessionCookie {
                    name: name.clone(),
                    value: whole.value().to_owned(),
                });
                continue;
            }
            let mut chunks: Vec<(usize, &str)> = jar
                .iter()
                .filter_map(|c| Some((chunk_index(c.name(), name)?, c.value())))
                .collect();
            if chunks.is_empty() {
                continue;
            }
            chunks.sort_unstable_by_key(|(i, _)| *i);
            chunks.truncate(MAX_CHUNKS);
            found.push(SessionCookie {
                name: name.clone(),
                value: chunks.into_iter().map(|(_, v)| v).collect(),
            });
        }
        found
    }

    /// The claims of the first of `cookies` that opens; a refusal names the
    /// first one's failure (`AUTH_REQUIRED` when there is none).
    pub fn open_first(&self, cookies: &[SessionCookie]) -> Result<Map<String, Value>, AuthError> {
        let mut first_error = None;
        for cookie in cookies {
            match self.open(cookie) {
                Ok(claims) => return Ok(claims),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error
            .unwrap_or_else(|| AuthError::new(ErrorCode::AuthRequired, "no session cookie")))
    }

    /// Decrypts a session cookie with the keys of its name and returns its
    /// claims set. Every failure is `TOKEN_INVALID`; the sentence never
    /// holds any part of the cookie.
    pub fn open(&self, cookie: &SessionCookie) -> Result<Map<String, Value>, AuthError> {
        let jwe = Compact::parse(&cookie.value)?;
        let mut keys = self
            .keys
            .iter()
            .filter(|k| k.name == cookie.name && k.enc == jwe.enc)
            .peekable();
        if keys.peek().is_none() {
            return Err(AuthError::invalid(
                "the session cookie's encryption does not match its name",
            ));
        }
        let plaintext = keys
            .find_map(|k| jwe.decrypt(&k.key))
            .ok_or_else(|| AuthError::invalid("the session cookie does not decrypt"))?;
        serde_json::from_slice(&plaintext)
            .map_err(|_| AuthError::invalid("the session cookie does not hold a JSON object"))
    }
}

/// `Some(n)` when `cookie` is chunk `n` of `name` (`<name>.<n>`).
fn chunk_index(cookie: &str, name: &str) -> Option<usize> {
    let digits = cookie.strip_prefix(name)?.strip_prefix('.')?;
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn derive(secret: &[u8], name: &str, version: Version) -> Vec<CookieKey> {
    let v5_info = format!("Auth.js Generated Encryption Key ({name})");
    let mut plan: Vec<(&[u8], &str, Enc)> = Vec::new();
    if matches!(version, Version::V4 | Version::Either) {
        plan.push((b"", V4_INFO, Enc::A256Gcm));
    }
    if matches!(version, Version::V5 | Version::Either) {
        plan.push((name.as_bytes(), &v5_info, Enc::A256CbcHs512));
        plan.push((name.as_bytes(), &v5_info, Enc::A256Gcm));
    }
    plan.into_iter()
        .map(|(salt, info, enc)| CookieKey {
            name: name.to_owned(),
            enc,
            key: hkdf_sha256(secret, salt, info.as_bytes(), enc.key_len()),
        })
        .collect()
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf_sha256(secret: &[u8], salt: &[u8], info: &[u8], len: usize) -> Vec<u8> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(secret);
    let info = [info];
    let mut out = vec![0; len];
    prk.expand(&info, Len(len))
        .and_then(|okm| okm.fill(&mut out))
        .expect("a 32 or 64 byte HKDF-SHA256 output is always in range");
    out
}

/// A compact JWE (`alg: dir`), decoded and length-checked, not yet decrypted.
struct Compact<'a> {
    enc: Enc,
    /// The protected header exactly as sent: the AEAD's associated data.
    aad: &'a [u8],
    iv: Vec<u8>,
    ciphertext: Vec<u8>,
    tag: Vec<u8>,
}

impl<'a> Compact<'a> {
    fn parse(value: &'a str) -> Result<Self, AuthError> {
        let malformed = || AuthError::invalid("malformed session cookie (not a compact JWE)");
        if value.len() > MAX_COOKIE_BYTES {
            return Err(AuthError::invalid(format!(
                "the session cookie is larger than {MAX_COOKIE_BYTES} bytes"
            )));
        }
        let mut parts = value.split('.');
        let (Some(header), Some(key), Some(iv), Some(ciphertext), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(malformed());
        };
        let enc = read_header(&b64(header).ok_or_else(malformed)?)?;
        if !key.is_empty() {
            return Err(AuthError::invalid(
                "the session cookie carries an encrypted key (alg dir has none)",
            ));
        }
        let (iv, ciphertext, tag) = (
            b64(iv).ok_or_else(malformed)?,
            b64(ciphertext).ok_or_else(malformed)?,
            b64(tag).ok_or_else(malformed)?,
        );
        let cbc_ok =
            enc != Enc::A256CbcHs512 || (!ciphertext.is_empty() && ciphertext.len() % 16 == 0);
        if iv.len() != enc.iv_len() || tag.len() != enc.tag_len() || !cbc_ok {
            return Err(AuthError::invalid(
                "the session cookie's lengths do not fit its encryption",
            ));
        }
        Ok(Self {
            enc,
            aad: header.as_bytes(),
            iv,
            ciphertext,
            tag,
        })
    }

    /// The plaintext, or `None` when `key` is not the one it was sealed with.
    fn decrypt(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.enc {
            Enc::A256Gcm => self.open_gcm(key),
            Enc::A256CbcHs512 => self.open_cbc_hs512(key),
        }
    }

    fn open_gcm(&self, key: &[u8]) -> Option<Vec<u8>> {
        let key = LessSafeKey::new(UnboundKey::new(&aead::AES_256_GCM, key).ok()?);
        let nonce = Nonce::try_assume_unique_for_key(&self.iv).ok()?;
        let mut buf = [self.ciphertext.as_slice(), &self.tag].concat();
        let len = key
            .open_in_place(nonce, Aad::from(self.aad), &mut buf)
            .ok()?
            .len();
        buf.truncate(len);
        Some(buf)
    }

    /// RFC 7516 §5.2.2.1 with RFC 7518 §5.2.5: the first half of the key
    /// authenticates, the second decrypts; the tag is checked first.
    fn open_cbc_hs512(&self, key: &[u8]) -> Option<Vec<u8>> {
        let (mac_key, enc_key) = key.split_at(32);
        let aad_bits = (self.aad.len() as u64 * 8).to_be_bytes();
        let mac = hmac::Key::new(hmac::HMAC_SHA512, mac_key);
        let mut ctx = hmac::Context::with_key(&mac);
        for part in [self.aad, &self.iv, &self.ciphertext, &aad_bits] {
            ctx.update(part);
        }
        let expected = ctx.sign();
        constant_time::verify_slices_are_equal(&expected.as_ref()[..32], &self.tag).ok()?;
        let cipher = UnboundCipherKey::new(&AES_256, enc_key).ok()?;
        let key = PaddedBlockDecryptingKey::cbc_pkcs7(cipher).ok()?;
        let iv: [u8; 16] = self.iv.as_slice().try_into().ok()?;
        let mut buf = self.ciphertext.clone();
        let len = key
            .decrypt(&mut buf, DecryptionContext::Iv128(iv.into()))
            .ok()?
            .len();
        buf.truncate(len);
        Some(buf)
    }
}

fn b64(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(part).ok()
}

/// Accepts exactly `alg: dir` with one of the two `enc`s, and refuses the
/// header parameters that would change how the payload is read (`zip`,
/// `crit`). Others (`kid`, `typ`, `cty`) are ignored: every key of the
/// cookie's name is tried.
fn read_header(raw: &[u8]) -> Result<Enc, AuthError> {
    let header: Map<String, Value> = serde_json::from_slice(raw)
        .map_err(|_| AuthError::invalid("the session cookie's header is not a JSON object"))?;
    let refuse = || {
        AuthError::invalid("the session cookie is not alg dir with enc A256GCM or A256CBC-HS512")
    };
    if header.get("alg").and_then(Value::as_str) != Some("dir") {
        return Err(refuse());
    }
    if header.contains_key("zip") || header.contains_key("crit") {
        return Err(AuthError::invalid(
            "the session cookie's header asks for compression or extensions",
        ));
    }
    header
        .get("enc")
        .and_then(Value::as_str)
        .and_then(Enc::from_header)
        .ok_or_else(refuse)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "a-next-auth-secret";

    #[test]
    fn chunks_are_joined_in_numeric_order_and_whole_cookies_win() {
        let jar = SessionCookies::new(&[SECRET], None);
        let found = jar.find(
            "authjs.session-token.10=k; a=1; authjs.session-token.1=b; \
             authjs.session-token.0=a; authjs.session-token.2=c; authjs.session-token.x=no",
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "authjs.session-token");
        // 0, 1, 2, then 10: numeric, not lexical, order.
        assert_eq!(found[0].value, "abck");
        let found = jar.find("next-auth.session-token=whole; next-auth.session-token.0=chunk");
        assert_eq!(found[0].value, "whole");
    }

    #[test]
    fn names_are_tried_v5_first_and_a_rename_replaces_them() {
        let jar = SessionCookies::new(&[SECRET], None);
        let found = jar.find("next-auth.session-token=v4; __Secure-authjs.session-token=v5");
        let names: Vec<_> = found.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["__Secure-authjs.session-token", "next-auth.session-token"]
        );
        let renamed = SessionCookies::new(&[SECRET], Some("app.session"));
        assert!(renamed.find("next-auth.session-token=v4").is_empty());
        assert_eq!(renamed.find("app.session=x")[0].value, "x");
    }

    #[test]
    fn keys_follow_the_documented_derivation() {
        // A v5 key is bound to its cookie name through the salt and info;
        // the v4 key is not.
        let a = hkdf_sha256(SECRET.as_bytes(), b"authjs.session-token", b"x", 64);
        let b = hkdf_sha256(
            SECRET.as_bytes(),
            b"__Secure-authjs.session-token",
            b"x",
            64,
        );
        assert_ne!(a, b);
        // RFC 5869 test case 1.
        let ikm = [0x0b; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let okm = hkdf_sha256(&ikm, &salt, &info, 42);
        assert_eq!(okm[..8], [0x3c, 0xb2, 0x5f, 0x25, 0xfa, 0xac, 0xd5, 0x7a]);
    }

    #[test]
    fn malformed_cookies_are_token_invalid_without_echo() {
        let jar = SessionCookies::new(&[SECRET], None);
        let header_dir_gcm = URL_SAFE_NO_PAD.encode(br#"{"alg":"dir","enc":"A256GCM"}"#);
        let header_rsa = URL_SAFE_NO_PAD.encode(br#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#);
        let header_zip = URL_SAFE_NO_PAD.encode(br#"{"alg":"dir","enc":"A256GCM","zip":"DEF"}"#);
        let iv = URL_SAFE_NO_PAD.encode([0u8; 12]);
        let tag = URL_SAFE_NO_PAD.encode([0u8; 16]);
        let cases = [
            "secret-looking-garbage".to_owned(),
            format!("{header_dir_gcm}..{iv}.AAAA.{tag}.extra"),
            format!("{header_rsa}..{iv}.AAAA.{tag}"),
            format!("{header_zip}..{iv}.AAAA.{tag}"),
            format!("{header_dir_gcm}.AAAA.{iv}.AAAA.{tag}"),
            format!("{header_dir_gcm}..AAAA.AAAA.{tag}"),
            format!("{header_dir_gcm}..{iv}.AAAA.AAAA"),
            format!("{header_dir_gcm}..{iv}.AA==.{tag}"),
            format!("{header_dir_gcm}..{iv}.AAAA.{tag}"),
            "x".repeat(MAX_COOKIE_BYTES + 1),
        ];
        for value in cases {
            let cookie = SessionCookie {
                name: "next-auth.session-token".into(),
                value: value.clone(),
            };
            let err = jar.open(&cookie).unwrap_err();
            assert_eq!(err.code, ErrorCode::TokenInvalid, "{value:.80}");
            assert!(!err.message.contains("AAAA") && !err.message.contains("garbage"));
        }
    }
}
