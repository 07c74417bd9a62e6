//! Connection-state recovery's settings.

use std::time::Duration;

use sockgate_core::recovery::Settings as RecoverySettings;

use super::{ConfigError, Settings, invalid};

/// Recovery's settings; `None` for a window of 0.
pub(super) fn recovery_settings(s: &Settings) -> Result<Option<RecoverySettings>, ConfigError> {
    let defaults = RecoverySettings::default();
    let window = s.recovery_window.unwrap_or(defaults.window.as_secs());
    if window == 0 {
        return Ok(None);
    }
    if window > 86_400 {
        return Err(invalid(
            "SOCKGATE_RECOVERY_WINDOW",
            "must be at most 86400 seconds",
        ));
    }
    let at_least_one = |setting, value: Option<usize>, default| match value {
        Some(0) => Err(invalid(setting, "must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    Ok(Some(RecoverySettings {
        window: Duration::from_secs(window),
        max_packets: at_least_one(
            "SOCKGATE_RECOVERY_MAX_PACKETS",
            s.recovery_max_packets,
            defaults.max_packets,
        )?,
        max_bytes: at_least_one(
            "SOCKGATE_RECOVERY_MAX_BYTES",
            s.recovery_max_bytes,
            defaults.max_bytes,
        )?,
        history: at_least_one(
            "SOCKGATE_RECOVERY_HISTORY",
            s.recovery_history,
            defaults.history,
        )?,
        history_bytes: at_least_one(
            "SOCKGATE_RECOVERY_HISTORY_BYTES",
            s.recovery_history_bytes,
            defaults.history_bytes,
        )?,
    }))
}
