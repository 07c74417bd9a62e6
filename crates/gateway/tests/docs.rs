//! The configuration reference names every setting the binary reads.

#[test]
fn every_setting_is_in_the_configuration_reference() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let source =
        std::fs::read_to_string(format!("{root}/crates/gateway/src/config/settings.rs")).unwrap();
    let doc = std::fs::read_to_string(format!("{root}/docs/configuration.md")).unwrap();
    let settings: Vec<&str> = source
        .split("env = \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(settings.len() > 40, "found {} settings", settings.len());
    for setting in settings {
        assert!(
            doc.contains(&format!("`{setting}`")),
            "docs/configuration.md does not document {setting}"
        );
    }
}
