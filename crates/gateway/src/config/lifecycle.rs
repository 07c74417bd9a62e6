//! The lifecycle webhooks' settings, and the offline delay they share with
//! the rooms' presence events.

use std::time::Duration;

use super::{ConfigError, Settings, events, invalid};

/// `SOCKGATE_WEBHOOK_OFFLINE_DELAY`: how long a departure waits for a
/// return, for the webhook and for `room:left`.
pub(super) fn offline_delay(s: &Settings) -> Result<Duration, ConfigError> {
    let delay = s.webhook_offline_delay.unwrap_or(5.0);
    if !(0.0..=3600.0).contains(&delay) {
        return Err(invalid(
            "SOCKGATE_WEBHOOK_OFFLINE_DELAY",
            "must be 0 to 3600 seconds",
        ));
    }
    Ok(Duration::from_secs_f64(delay))
}

/// The lifecycle webhook's settings; `None` without a URL.
pub(super) fn webhook_settings(
    s: &Settings,
) -> Result<Option<crate::outbound::lifecycle::Settings>, ConfigError> {
    let Some(url) = s.webhook_url.clone().filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let secret = s
        .webhook_secret
        .as_ref()
        .or(s.events_secret.as_ref())
        .ok_or_else(|| {
            invalid(
                "SOCKGATE_WEBHOOK_SECRET",
                "required with SOCKGATE_WEBHOOK_URL (or SOCKGATE_EVENTS_SECRET)",
            )
        })?;
    if secret.expose().len() < events::MIN_EVENTS_SECRET_BYTES {
        return Err(invalid(
            "SOCKGATE_WEBHOOK_SECRET",
            format!(
                "is {} bytes; at least {} are required",
                secret.expose().len(),
                events::MIN_EVENTS_SECRET_BYTES
            ),
        ));
    }
    let events = match s.webhook_events.as_deref().filter(|e| !e.trim().is_empty()) {
        None => None,
        Some(list) => {
            let kinds: Vec<String> = list.split(',').map(|k| k.trim().to_owned()).collect();
            if let Some(bad) = kinds
                .iter()
                .find(|k| !sockgate_core::hooks::happened::KINDS.contains(&k.as_str()))
            {
                return Err(invalid(
                    "SOCKGATE_WEBHOOK_EVENTS",
                    format!(
                        "`{bad}` is not one of {}",
                        sockgate_core::hooks::happened::KINDS.join(", ")
                    ),
                ));
            }
            Some(kinds)
        }
    };
    Ok(Some(crate::outbound::lifecycle::Settings {
        url,
        secret: secret.expose().as_bytes().to_vec(),
        events,
        batch: Duration::from_millis(s.webhook_batch_ms.unwrap_or(50).min(60_000)),
        retry_for: Duration::from_secs(s.webhook_retry_for.unwrap_or(300)),
    }))
}
