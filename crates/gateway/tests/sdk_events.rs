//! The TypeScript SDK names the gateway's events in
//! `clients/js/src/protocol.ts`; every name there must be one the gateway
//! registers (client events) or emits (server events).

use std::path::Path;

fn sources() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = String::new();
    let mut stack = vec![dir];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                all.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
    }
    all
}

fn names(ts: &str, object: &str) -> Vec<String> {
    let block = ts
        .split(&format!("export const {object} = {{"))
        .nth(1)
        .and_then(|rest| rest.split("} as const;").next())
        .unwrap_or_else(|| panic!("no `{object}` in protocol.ts"));
    block
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().trim_end_matches(',').trim_matches('"').to_owned())
        .collect()
}

#[test]
fn every_event_the_sdk_names_is_the_gateways() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../clients/js/src/protocol.ts"
    );
    let ts = std::fs::read_to_string(path).expect("clients/js/src/protocol.ts");
    let src = sources();
    let client = names(&ts, "CLIENT_EVENTS");
    let server = names(&ts, "SERVER_EVENTS");
    assert!(client.len() >= 8 && server.len() >= 4);
    for name in client {
        assert!(
            src.contains(&format!("s.on(\"{name}\"")),
            "the gateway does not answer {name}"
        );
    }
    for name in server {
        assert!(
            src.contains(&format!("\"{name}\"")),
            "the gateway never sends {name}"
        );
    }
}
