//! The error reference shows what the code decides: every code, with its
//! class, in `docs/errors.md`.

use sockgate_auth::ErrorCode;

#[test]
fn every_code_is_shown_with_its_class() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors.md");
    let doc = std::fs::read_to_string(path).expect("docs/errors.md");
    let section = doc
        .split("## Retryable or terminal")
        .nth(1)
        .expect("a section `Retryable or terminal`");
    for code in ErrorCode::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.class().as_str());
        assert!(section.contains(&row), "docs/errors.md lacks the row {row}");
    }
}

/// The TypeScript SDK carries the same codes, with the same class, in the
/// same order (`clients/js/src/protocol.ts`, one `CODE: "class",` a line).
#[test]
fn the_sdk_has_every_code_with_its_class() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../clients/js/src/protocol.ts"
    );
    let ts = std::fs::read_to_string(path).expect("clients/js/src/protocol.ts");
    let block = ts
        .split("export const CODES = {")
        .nth(1)
        .and_then(|rest| rest.split("} as const;").next())
        .expect("a `CODES` object");
    let sdk: Vec<(String, String)> = block
        .lines()
        .filter_map(|line| {
            let (code, class) = line.trim().trim_end_matches(',').split_once(':')?;
            Some((
                code.trim().to_owned(),
                class.trim().trim_matches('"').to_owned(),
            ))
        })
        .collect();
    let rust: Vec<(String, String)> = ErrorCode::ALL
        .iter()
        .map(|c| (c.as_str().to_owned(), c.class().as_str().to_owned()))
        .collect();
    assert_eq!(
        sdk, rust,
        "clients/js/src/protocol.ts has drifted from ErrorCode"
    );
}
