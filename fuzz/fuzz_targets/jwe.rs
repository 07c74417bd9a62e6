//! Next-Auth / Auth.js session cookies: any `Cookie` header through the
//! chunk finder, and any compact JWE through the parser and both
//! decryptions. Half of the inputs are raw text; the other half get an
//! accepted header and are cut into IV, ciphertext and tag, base64url-encoded,
//! so that the length checks and the AEAD / CBC-HMAC paths see every size. Must never
//! panic, and no refusal may echo the cookie.
#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use sockgate_auth::{SessionCookie, SessionCookies};

const NAMES: [&str; 3] = ["authjs.session-token", "next-auth.session-token", "app.session"];

fn jars() -> &'static [SessionCookies; 2] {
    static J: OnceLock<[SessionCookies; 2]> = OnceLock::new();
    J.get_or_init(|| {
        let secrets = ["fuzz-nextauth-secret-fuzz-nextauth-secret", "an-older-fuzz-secret-an-older-fuzz-secret"];
        [SessionCookies::new(&secrets, None), SessionCookies::new(&secrets, Some("app.session"))]
    })
}

fn check(jar: &SessionCookies, cookie: &SessionCookie) {
    if let Err(e) = jar.open(cookie) {
        let text = e.to_string();
        assert!(text.starts_with(e.code.as_str()));
        // A JWE-shaped cookie is never echoed (a value that merely equals a
        // sentence is no leak: see regressions/jwe-cookie-equals-message).
        let jwe_shaped = cookie.value.len() >= 16 && cookie.value.matches('.').count() == 4;
        assert!(!jwe_shaped || !text.contains(&cookie.value));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let value = if mode & 1 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else { return };
        for jar in jars() {
            for found in jar.find(text) {
                check(jar, &found);
            }
        }
        text.to_owned()
    } else {
        // A header the parser accepts (or raw bytes), then iv | ciphertext |
        // tag cut at the offsets the next two bytes give.
        let Some((cuts, body)) = rest.split_at_checked(2) else { return };
        let header: &[u8] = match (mode >> 1) & 3 {
            0 => br#"{"alg":"dir","enc":"A256GCM"}"#,
            1 => br#"{"alg":"dir","enc":"A256CBC-HS512"}"#,
            2 => br#"{"alg":"dir","enc":"A256CBC-HS512","kid":"x"}"#,
            _ => b"",
        };
        let a = cuts[0] as usize * body.len() / 255;
        let b = (cuts[1] as usize * body.len() / 255).max(a);
        let (iv, tail) = body.split_at(a);
        let (ct, tag) = tail.split_at(b - a);
        let enc = |p: &[u8]| URL_SAFE_NO_PAD.encode(p);
        format!("{}..{}.{}.{}", enc(header), enc(iv), enc(ct), enc(tag))
    };
    for jar in jars() {
        for name in NAMES {
            check(jar, &SessionCookie { name: name.to_owned(), value: value.clone() });
        }
    }
});
