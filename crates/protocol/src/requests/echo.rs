//! `echo <payload>` → the payload, unchanged (tests and benchmarks).

use serde_json::Value;

/// `echo`: its one payload (`null` without one).
#[derive(Debug, Clone, PartialEq)]
pub struct Echo(pub Value);

impl Echo {
    pub(super) fn parse(payload: Option<Value>) -> Self {
        Self(payload.unwrap_or(Value::Null))
    }
}
