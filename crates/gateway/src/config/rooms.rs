//! Room authorization: the capabilities claim, the rules, the webhook.

use std::sync::Arc;
use std::time::Duration;

use sockgate_core::hooks::App;
use sockgate_core::policy::{Policy, RoomRule};
use sockgate_core::room_options::{RoomOptions, RoomOptionsList};

use super::{ConfigError, invalid};
use crate::outbound::webhook::Webhook;

/// Room authorization settings.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    /// The token claim holding room capabilities.
    pub claim: String,
    /// The room rules of the config file.
    pub rules: Vec<RoomRule>,
    /// The room options of the config file, in its order.
    pub options: Vec<RoomOptions>,
    /// URL of the authorization webhook; `None` turns it off.
    pub authz_url: Option<String>,
    /// How long the webhook's answers are cached.
    pub authz_cache_ttl: Duration,
    /// How long to wait for the webhook before answering `AUTH_UNAVAILABLE`.
    pub authz_timeout: Duration,
}

impl RoomSettings {
    /// The authorization webhook, when set, its URL checked.
    pub fn webhook(&self) -> Result<Option<Webhook>, ConfigError> {
        let Some(url) = &self.authz_url else {
            return Ok(None);
        };
        Webhook::new(url, self.authz_timeout, self.authz_cache_ttl)
            .map(Some)
            .map_err(|e| invalid("SOCKGATE_AUTHZ_URL", e))
    }

    /// What each room does.
    pub fn options(&self) -> RoomOptionsList {
        RoomOptionsList::new(self.options.clone())
    }

    /// The policy, asking `authority` last (the app holding the webhook).
    pub fn policy(&self, authority: Option<Arc<dyn App>>) -> Policy {
        Policy {
            claim: self.claim.clone(),
            rules: self.rules.clone(),
            webhook: authority,
        }
    }
}
