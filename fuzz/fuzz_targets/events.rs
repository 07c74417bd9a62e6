//! Client event payloads: room names, `auth:refresh` payloads, and room
//! authorization with arbitrary claims (capabilities, templates, roles).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sockgate_core::policy::{Action, Policy, RoomRule, fill_template};
use sockgate_core::rooms;
use sockgate_auth::Identity;
use sockgate_auth::source::token_from_payload;

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| Policy {
        rules: vec![RoomRule {
            pattern: "team:{claims.team}:{claims.org.id}:*".into(),
            allow: vec![Action::Join, Action::Presence],
            role: Some("member".into()),
        }],
        ..Policy::default()
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (room, rest) = text.split_once('\u{1}').unwrap_or((&text, ""));
    let _ = rooms::validate(room);
    let Ok(payload) = serde_json::from_str::<Value>(rest) else { return };
    let _ = token_from_payload(&payload);
    let Value::Object(mut claims) = payload else { return };
    claims.insert("sub".into(), Value::from("fuzz"));
    let Ok(identity) = Identity::from_claims(claims, "sub") else { return };
    let _ = fill_template(room, &identity);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for action in [Action::Join, Action::Publish, Action::Presence] {
        let _ = rt.block_on(policy().authorize(&identity, room, action, false));
    }
});
