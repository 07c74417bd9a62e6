//! Room authorization: the capabilities claim, the rules, the webhook.

use std::time::Duration;

use sockgate_core::policy::RoomRule;
use sockgate_core::room_options::RoomOptions;

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
