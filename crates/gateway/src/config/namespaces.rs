//! Namespaces (`[[namespaces]]`, only in the config file): the logical
//! channels one connection multiplexes, each with what it requires of its
//! sockets and the rules of its rooms. What an entry leaves out is the
//! main namespace's.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sockgate_core::namespace::check_name;
use sockgate_core::policy::RoomRule;
use sockgate_core::room_options::RoomOptions;

use super::{ConfigError, invalid};

/// One `[[namespaces]]` entry, as the config file has it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    /// Its event routes (`[[namespaces.events]]`), instead of the main
    /// namespace's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<super::events::RouteSettings>>,
    /// Events one of its sockets may send per second (default:
    /// `SOCKGATE_EVENT_RATE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_rate: Option<u32>,
    /// At once (default: `SOCKGATE_EVENT_BURST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_burst: Option<u32>,
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
