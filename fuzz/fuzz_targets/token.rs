//! Token parsing and verification: any bytes as a token, against an HMAC
//! secret and an RSA public key. Must never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sockgate_auth::{Rules, Verifier, VerifyKey};

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let rules = Rules::default();
        let pem = include_bytes!("../../tests/fixtures/keys/rsa.pub");
        Verifier::new(rules.clone())
            .with_hmac(VerifyKey::hmac(b"fuzz-secret-fuzz-secret-fuzz-secret!", &rules).unwrap())
            .with_public_key(VerifyKey::from_pem(pem, &rules).unwrap())
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    if let Err(e) = rt.block_on(verifier().verify(token)) {
        // Every refusal renders as `CODE: sentence`, and never echoes a
        // JWT-shaped token (a token that merely equals a sentence is no leak).
        let text = e.to_string();
        assert!(text.starts_with(e.code.as_str()));
        let jwt_shaped = token.len() >= 16 && token.matches('.').count() == 2;
        assert!(!jwt_shaped || !text.contains(token));
    }
});
