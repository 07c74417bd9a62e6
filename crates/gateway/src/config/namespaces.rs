//! Namespaces (`[[namespaces]]`, only in the config file): the logical
//! channels one connection multiplexes, each with what it requires of its
//! sockets and the rules of its rooms. What an entry leaves out is the
//! main namespace's.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sockgate_auth::SourcePolicy;
use sockgate_core::hooks::App;
use sockgate_core::namespace::{Namespace, Namespaces, check_name};
use sockgate_core::policy::{Policy, RoomRule};
use sockgate_core::room_options::{RoomOptions, RoomOptionsList};
use std::sync::Arc;

use super::{ConfigError, invalid};

/// One `[[namespaces]]` entry, as the config file has it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceSettings {
    /// `/admin`, or a pattern: `/tenant-*`.
    pub name: String,
    /// Sockets without a credential are let in, anonymous.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
    /// Claims the token must carry (`{ role = "admin" }`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub claims: Map<String, Value>,
    /// Whether the cookie and Next-Auth session cookies count here
    /// (default: as in the main namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookies: Option<bool>,
    /// Whether `?token=` counts here (default: as in the main namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<bool>,
    /// Its room rules, instead of the main namespace's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_rules: Option<Vec<RoomRule>>,
    /// Its room options, instead of the main namespace's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_options: Option<Vec<RoomOptions>>,
}

/// Checks every entry: a valid name, each once.
pub fn check(entries: &[NamespaceSettings]) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::new();
    for entry in entries {
        check_name(&entry.name)
            .map_err(|e| invalid("namespaces", format!("{:?}: {e}", entry.name)))?;
        if !seen.insert(entry.name.as_str()) {
            return Err(invalid(
                "namespaces",
                format!("{:?} is named twice", entry.name),
            ));
        }
    }
    Ok(())
}

/// The namespaces served, from `entries`, on top of the main namespace's
/// sources, room claim and webhook authority.
pub fn assemble(
    entries: &[NamespaceSettings],
    sources: &SourcePolicy,
    main_policy: &Policy,
    authority: Option<Arc<dyn App>>,
) -> Namespaces {
    let list = entries
        .iter()
        .map(|entry| Namespace {
            name: entry.name.clone(),
            public: entry.public,
            claims: entry.claims.clone(),
            sources: sources_of(entry, sources),
            policy: entry.room_rules.as_ref().map(|rules| Policy {
                claim: main_policy.claim.clone(),
                rules: rules.clone(),
                webhook: authority.clone(),
            }),
            room_options: entry
                .room_options
                .as_ref()
                .map(|o| RoomOptionsList::new(o.clone())),
        })
        .collect();
    Namespaces::new(list)
}

fn sources_of(entry: &NamespaceSettings, main: &SourcePolicy) -> Option<SourcePolicy> {
    if entry.cookies.is_none() && entry.query.is_none() {
        return None;
    }
    let cookies = entry.cookies.unwrap_or(true);
    Some(SourcePolicy {
        cookie: main.cookie.clone().filter(|_| cookies),
        session_cookies: main.session_cookies.clone().filter(|_| cookies),
        query: entry.query.unwrap_or(main.query),
    })
}
