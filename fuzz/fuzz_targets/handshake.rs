//! The handshake payload and headers: any JSON as `auth`, any strings as
//! the Authorization, Cookie and query. Finding the token must never panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use sockgate_auth::{Handshake, SessionCookies, SourcePolicy};

fn policy() -> &'static SourcePolicy {
    static P: OnceLock<SourcePolicy> = OnceLock::new();
    P.get_or_init(|| SourcePolicy {
        cookie: Some("sg".into()),
        session_cookies: Some(Arc::new(SessionCookies::new(&["fuzz-nextauth-secret"], None))),
        query: true,
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\u{1}');
    let auth = parts.next().and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok());
    let handshake = Handshake {
        auth: auth.as_ref(),
        authorization: parts.next(),
        cookie: parts.next(),
        query: parts.next(),
    };
    let policy = policy();
    let _ = policy.find(&handshake);
});
