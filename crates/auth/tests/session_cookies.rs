//! Session cookies made by the real Next-Auth v4 and Auth.js v5 encoders
//! (`tests/fixtures/nextauth`), opened and verified.

use std::sync::Arc;

use sockgate_auth::{
    Credential, ErrorCode, Rules, SessionCookie, SessionCookies, SessionIdentity, Verifier,
};

const SECRET: &str = "fixture-nextauth-secret-fixture-nextauth-secret";

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../../tests/fixtures/nextauth/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path)
        .expect("fixture")
        .trim()
        .to_owned()
}

fn verifier(secrets: &[&str]) -> Verifier {
    Verifier::new(Rules::default()).with_session_cookies(
        Arc::new(SessionCookies::new(secrets, None)),
        SessionIdentity::Detect,
    )
}

fn cookie(name: &str, value: String) -> Credential<'static> {
    Credential::SessionCookies(vec![SessionCookie {
        name: name.to_owned(),
        value,
    }])
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn real_v4_and_v5_cookies_open_under_their_names() {
    let v = verifier(&["a-newer-secret-that-did-not-sign-these", SECRET]);
    for (name, file) in [
        ("next-auth.session-token", "v4.jwe"),
        ("__Secure-next-auth.session-token", "v4.jwe"),
        ("authjs.session-token", "v5.jwe"),
        ("__Secure-authjs.session-token", "v5-secure.jwe"),
    ] {
        let identity = run(v.verify_credential(&cookie(name, fixture(file)))).expect(name);
        assert_eq!(identity.user_id, "fixture-user");
        assert_eq!(identity.claims.get("team").unwrap(), "red");
        assert!(identity.expires_at.is_some());
    }
}

#[test]
fn a_v5_cookie_is_bound_to_its_name_and_secret() {
    let v = verifier(&[SECRET]);
    let moved =
        run(v.verify_credential(&cookie("__Secure-authjs.session-token", fixture("v5.jwe"))));
    assert_eq!(moved.unwrap_err().code, ErrorCode::TokenInvalid);
    let wrong = verifier(&["another-secret-another-secret-another-secret"]);
    let err = run(wrong.verify_credential(&cookie("authjs.session-token", fixture("v5.jwe"))));
    assert_eq!(err.unwrap_err().code, ErrorCode::TokenInvalid);
}

#[test]
fn every_flipped_byte_is_refused() {
    let v = verifier(&[SECRET]);
    for (name, file) in [
        ("next-auth.session-token", "v4.jwe"),
        ("authjs.session-token", "v5.jwe"),
    ] {
        let good = fixture(file);
        for i in 0..good.len() {
            let mut bytes = good.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let Ok(bad) = String::from_utf8(bytes) else {
                continue;
            };
            if bad == good {
                continue;
            }
            // The header is the AEAD's associated data, the rest is sealed,
            // and non-canonical base64 is refused: no flip goes unnoticed.
            let result = run(v.verify_credential(&cookie(name, bad)));
            assert_eq!(
                result.unwrap_err().code,
                ErrorCode::TokenInvalid,
                "{file} byte {i}"
            );
        }
        let mut cut = good.clone();
        cut.truncate(good.len() - 1);
        assert!(run(v.verify_credential(&cookie(name, cut))).is_err());
    }
}
