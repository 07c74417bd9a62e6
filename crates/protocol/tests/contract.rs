//! The contract as others see it: every code with its class in
//! `docs/errors.md`, and the TypeScript SDK (`clients/js/src/protocol.ts`)
//! holding the same codes, classes and event names as this crate.

use sockgate_protocol::ErrorCode;
use sockgate_protocol::events::{client, server};

fn read(path: &str) -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    std::fs::read_to_string(format!("{root}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `key: "value"` lines of `export const NAME = { … } as const;`.
fn ts_object(ts: &str, name: &str) -> Vec<(String, String)> {
    let block = ts
        .split(&format!("export const {name} = {{"))
        .nth(1)
        .and_then(|rest| rest.split("} as const;").next())
        .unwrap_or_else(|| panic!("no `{name}` in protocol.ts"));
    block
        .lines()
        .filter_map(|line| {
            let (key, value) = line.trim().trim_end_matches(',').split_once(':')?;
            Some((
                key.trim().to_owned(),
                value.trim().trim_matches('"').to_owned(),
            ))
        })
        .collect()
}

#[test]
fn every_code_is_shown_with_its_class() {
    let doc = read("docs/errors.md");
    let section = doc
        .split("## Retryable or terminal")
        .nth(1)
        .expect("a section `Retryable or terminal`");
    for code in ErrorCode::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.class().as_str());
        assert!(section.contains(&row), "docs/errors.md lacks the row {row}");
    }
}

#[test]
fn the_sdk_has_every_code_with_its_class() {
    let sdk = ts_object(&read("clients/js/src/protocol.ts"), "CODES");
    let rust: Vec<(String, String)> = ErrorCode::ALL
        .iter()
        .map(|c| (c.as_str().to_owned(), c.class().as_str().to_owned()))
        .collect();
    assert_eq!(
        sdk, rust,
        "clients/js/src/protocol.ts has drifted from ErrorCode"
    );
}

#[test]
fn the_sdk_names_the_same_events() {
    let ts = read("clients/js/src/protocol.ts");
    let values = |name| {
        let mut v: Vec<String> = ts_object(&ts, name).into_iter().map(|(_, v)| v).collect();
        v.sort();
        v
    };
    let sorted = |names: &[&str]| {
        let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(values("CLIENT_EVENTS"), sorted(&client::ALL));
    assert_eq!(values("SERVER_EVENTS"), sorted(&server::ALL));
}
