//! Namespaces (`[[namespaces]]`): the logical channels one connection
//! multiplexes (`io(url + "/admin")`). Each is joined by its own CONNECT,
//! authenticated on its own, and has rooms of its own
//! ([`sockgate_protocol::rooms::RoomKey`]). What a namespace leaves unset
//! (its credential sources, its room rules, its room options) is the main
//! namespace's.

use std::sync::{Arc, LazyLock};

use serde_json::{Map, Value};
use sockgate_auth::{AuthError, ErrorCode, Identity, SourcePolicy};
use sockgate_protocol::rooms::MAIN_NAMESPACE;
pub use sockgate_protocol::rooms::check_namespace as check_name;
use wildmatch::WildMatch;

use crate::limits::Rate;
use crate::policy::Policy;
use crate::room_options::RoomOptionsList;

/// One namespace, or every namespace whose name matches a pattern.
#[derive(Default)]
pub struct Namespace {
    /// Its name (`/admin`), or a pattern (`/tenant-*`: `*` any run of
    /// characters, `?` one).
    pub name: String,
    /// Sockets need no credential: one without is anonymous
    /// (`anon-` and a random id); one with a credential is checked as
    /// anywhere else.
    pub public: bool,
    /// Claims the token must carry, each equal to its value (or, for an
    /// array claim, holding it): `NAMESPACE_FORBIDDEN` otherwise.
    pub claims: Map<String, Value>,
    /// Where its credentials may come from, when not as in the main
    /// namespace.
    pub sources: Option<SourcePolicy>,
    /// Its room rules, when not the main namespace's.
    pub policy: Option<Policy>,
    /// Its room options, when not the main namespace's.
    pub room_options: Option<RoomOptionsList>,
    /// The events one of its sockets may send, when not as everywhere
    /// (`SOCKGATE_EVENT_RATE`, `SOCKGATE_EVENT_BURST`).
    pub event_rate: Option<Rate>,
}

/// The main namespace's own settings: none, the node's apply.
static MAIN: LazyLock<Arc<Namespace>> = LazyLock::new(|| {
    Arc::new(Namespace {
        name: MAIN_NAMESPACE.to_owned(),
        ..Namespace::default()
    })
});

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.name)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Namespace {
    /// The main namespace, `/`, as it is when `[[namespaces]]` does not
    /// name it.
    pub fn main() -> Arc<Namespace> {
        MAIN.clone()
    }

    /// Whether `name` is this namespace, or one of its pattern's.
    pub fn matches(&self, name: &str) -> bool {
        match self.is_pattern() {
            true => WildMatch::new(&self.name).matches(name),
            false => self.name == name,
        }
    }

    fn is_pattern(&self) -> bool {
        self.name.contains(['*', '?'])
    }

    /// `NAMESPACE_FORBIDDEN` when `identity` lacks one of its claims.
    pub fn check_claims(&self, identity: &Identity) -> Result<(), AuthError> {
        for (name, wanted) in &self.claims {
            let held = identity.claims.get(name);
            let ok = match &held {
                Some(Value::Array(values)) => {
                    values.contains(wanted) || held.as_ref() == Some(wanted)
                }
                Some(value) => value == wanted,
                None => false,
            };
            if !ok {
                return Err(AuthError::new(
                    ErrorCode::NamespaceForbidden,
                    format!(
                        "namespace {} needs the claim `{name}` = {wanted}",
                        self.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Every namespace served: the main one, then `[[namespaces]]` in the
/// config's order (an exact name before the patterns).
#[derive(Debug, Clone)]
pub struct Namespaces {
    list: Vec<Arc<Namespace>>,
    /// The patterns of `list`, compiled once (a pattern namespace is
    /// looked up on each of its handshakes and publishes).
    patterns: Vec<Option<WildMatch>>,
}

impl Default for Namespaces {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl Namespaces {
    /// The main namespace and `others`; an entry named `/` replaces the
    /// main one's settings.
    pub fn new(others: Vec<Namespace>) -> Self {
        let mut list: Vec<Arc<Namespace>> = Vec::with_capacity(others.len() + 1);
        let (exact, patterns): (Vec<_>, Vec<_>) =
            others.into_iter().partition(|ns| !ns.is_pattern());
        if !exact.iter().any(|ns| ns.name == MAIN_NAMESPACE) {
            list.push(Namespace::main());
        }
        list.extend(exact.into_iter().map(Arc::new));
        list.extend(patterns.into_iter().map(Arc::new));
        let patterns = list
            .iter()
            .map(|ns| ns.is_pattern().then(|| WildMatch::new(&ns.name)))
            .collect();
        Self { list, patterns }
    }

    /// The namespace `name` is, if it is served.
    pub fn find(&self, name: &str) -> Option<&Arc<Namespace>> {
        let at = self
            .patterns
            .iter()
            .zip(&self.list)
            .position(|(pattern, ns)| match pattern {
                Some(pattern) => pattern.matches(name),
                None => ns.name == name,
            })?;
        Some(&self.list[at])
    }

    /// Every namespace, the main one first.
    pub fn all(&self) -> &[Arc<Namespace>] {
        &self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(claims: Value) -> Identity {
        let Value::Object(map) = claims else {
            unreachable!()
        };
        Identity::from_claims(map, "sub").unwrap()
    }

    #[test]
    fn exact_names_then_patterns() {
        let ns = |name: &str| Namespace {
            name: name.into(),
            ..Namespace::default()
        };
        let all = Namespaces::new(vec![ns("/tenant-*"), ns("/tenant-main"), ns("/admin")]);
        assert_eq!(all.find("/").unwrap().name, "/");
        assert_eq!(all.find("/admin").unwrap().name, "/admin");
        assert_eq!(all.find("/tenant-main").unwrap().name, "/tenant-main");
        assert_eq!(all.find("/tenant-acme").unwrap().name, "/tenant-*");
        assert!(all.find("/tenant").is_none());
        assert!(all.find("/adminx").is_none());
    }

    #[test]
    fn claims_are_equal_or_held_by_an_array() {
        let admin = Namespace {
            name: "/admin".into(),
            claims: serde_json::from_value(serde_json::json!({ "role": "admin" })).unwrap(),
            ..Namespace::default()
        };
        let ok = |claims| admin.check_claims(&identity(claims)).is_ok();
        assert!(ok(serde_json::json!({ "sub": "a", "role": "admin" })));
        assert!(ok(
            serde_json::json!({ "sub": "a", "role": ["user", "admin"] })
        ));
        assert!(!ok(serde_json::json!({ "sub": "a", "role": "user" })));
        assert!(!ok(serde_json::json!({ "sub": "a" })));
        let e = admin
            .check_claims(&identity(serde_json::json!({ "sub": "a" })))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NamespaceForbidden);
    }
}
