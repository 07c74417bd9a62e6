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
