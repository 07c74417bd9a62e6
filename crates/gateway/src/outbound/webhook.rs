//! The authorization webhook: `POST { userId, room, action, claims }`; 2xx
//! allows, any other status denies, a timeout or an unreachable backend is
//! `AUTH_UNAVAILABLE`. Answers are cached per token (its claims), room and
//! action; each user has a budget of webhook calls. It is the
//! authority of the room policy (the app's `authorize`): asked only when the token's capabilities
//! and the config rules grant nothing.

use std::hash::BuildHasher;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sockgate_auth::{AuthError, ErrorCode, Identity};
use sockgate_core::policy::Action;

use super::client::describe;

/// Webhook calls one user may cause per second, sustained...
pub const WEBHOOK_CALLS_PER_SECOND: u32 = 20;
/// ...and at once: twice the default room limit of a socket, so a client
/// that joins all its rooms on connect is never slowed down.
pub const WEBHOOK_CALLS_BURST: u32 = 200;
/// The budget's idle entries are forgotten every this many calls.
const FORGET_IDLE_EVERY: u32 = 4096;

/// The authorization webhook.
pub struct Webhook {
    client: reqwest::Client,
    url: reqwest::Url,
    /// Answers by (user, room, action, hash of the token's claims): a token
    /// with other claims (a downgrade, a new `jti`) is asked about anew.
    cache: mini_moka::sync::Cache<(String, String, Action, u64), bool>,
    /// Keys the claims hash (SipHash, random keys per process).
    hasher: std::collections::hash_map::RandomState,
    /// Webhook calls per user: made-up room names cannot each cost a call.
    budget: DefaultKeyedRateLimiter<String>,
    calls: AtomicU32,
}

impl Webhook {
    /// A webhook at `url`, answering within `timeout`, its answers cached
    /// for `cache_ttl`.
    pub fn new(url: &str, timeout: Duration, cache_ttl: Duration) -> Result<Self, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        // Redirects are never followed: a 3xx answer is not 2xx, it denies.
        let client = super::client::build(timeout)?;
        let cache = mini_moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(cache_ttl.max(Duration::from_millis(1)))
            .build();
        let quota = Quota::per_second(NonZeroU32::new(WEBHOOK_CALLS_PER_SECOND).expect("non-zero"))
            .allow_burst(NonZeroU32::new(WEBHOOK_CALLS_BURST).expect("non-zero"));
        Ok(Self {
            client,
            url,
            cache,
            hasher: std::collections::hash_map::RandomState::new(),
            budget: RateLimiter::keyed(quota),
            calls: AtomicU32::new(0),
        })
    }

    async fn ask(
        &self,
        id: &Identity,
        room: &str,
        action: Action,
        fresh: bool,
    ) -> Result<bool, AuthError> {
        let key = (
            id.user_id.clone(),
            room.to_owned(),
            action,
            self.claims_hash(id),
        );
        if !fresh {
            if let Some(allowed) = self.cache.get(&key) {
                return Ok(allowed);
            }
            // Rechecks after a refresh (`fresh`) are not counted: they only
            // ask about rooms already granted, and refusing one would keep
            // a downgraded token in its room.
            self.spend(&id.user_id)?;
        }
        let body = serde_json::json!({
            "userId": id.user_id, "room": room, "action": action,
            "claims": id.claims.without_credentials(),
        });
        let res = self
            .client
            .post(self.url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %describe(e), "authorization webhook unreachable");
                AuthError::new(
                    ErrorCode::AuthUnavailable,
                    "the authorization service did not answer",
                )
            })?;
        if res.status().is_redirection() {
            tracing::warn!(
                status = res.status().as_u16(),
                "authorization webhook answered a redirect; not followed, counted as a denial"
            );
        }
        let allowed = res.status().is_success();
        self.cache.insert(key, allowed);
        Ok(allowed)
    }

    fn claims_hash(&self, id: &Identity) -> u64 {
        let claims = serde_json::to_vec(&id.claims).expect("claims serialize");
        self.hasher.hash_one(claims)
    }

    /// Spends one webhook call of `user`'s budget.
    fn spend(&self, user: &str) -> Result<(), AuthError> {
        if self
            .calls
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(FORGET_IDLE_EVERY)
        {
            self.budget.retain_recent();
        }
        self.budget
            .check_key(&user.to_owned())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                AuthError::new(
                    ErrorCode::RateLimited,
                    format!("too many room authorization requests; retry in {secs} s"),
                )
            })
    }
}

impl Webhook {
    /// Whether `id` may do `action` in `room` (the app's
    /// [`sockgate_core::hooks::App::authorize`], through the backend that
    /// holds this webhook).
    pub async fn decide(
        &self,
        id: &Identity,
        room: &str,
        action: Action,
        fresh: bool,
    ) -> Result<bool, AuthError> {
        self.ask(id, room, action, fresh).await
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn id(claims: Value) -> Identity {
        Identity::from_claims(claims.as_object().unwrap().clone(), "sub").unwrap()
    }

    /// Made-up room names each cost a webhook call: a user gets a budget of
    /// them, then `RATE_LIMITED`; other users are not affected, and the
    /// rechecks of a refresh are never refused.
    #[tokio::test]
    async fn webhook_calls_are_budgeted_per_user() {
        // Nothing listens on port 9: every call fails fast, uncached.
        let hook = Webhook::new(
            "http://127.0.0.1:9/authz",
            Duration::from_secs(2),
            Duration::from_secs(60),
        )
        .unwrap();
        let mallory = id(json!({ "sub": "mallory" }));
        let mut calls = 0;
        let limited = loop {
            let err = hook
                .ask(&mallory, &format!("junk:{calls}"), Action::Join, false)
                .await
                .unwrap_err();
            if err.code != ErrorCode::AuthUnavailable || calls > 2 * WEBHOOK_CALLS_BURST {
                break err;
            }
            calls += 1;
        };
        assert_eq!(limited.code, ErrorCode::RateLimited);
        assert!(limited.message.contains("retry in"), "{}", limited.message);
        // The burst, plus what refilled while the calls were made.
        assert!(
            (WEBHOOK_CALLS_BURST..WEBHOOK_CALLS_BURST + 100).contains(&calls),
            "{calls} calls before the budget ran out"
        );
        let fresh = hook
            .ask(&mallory, "junk:0", Action::Join, true)
            .await
            .unwrap_err();
        assert_eq!(fresh.code, ErrorCode::AuthUnavailable);
        let alice = id(json!({ "sub": "alice" }));
        let other = hook
            .ask(&alice, "junk:0", Action::Join, false)
            .await
            .unwrap_err();
        assert_eq!(other.code, ErrorCode::AuthUnavailable);
    }

    /// The cache answers for the token that was asked about, not for every
    /// token of its user: other claims are asked about anew.
    #[test]
    fn the_webhook_cache_key_holds_the_claims() {
        let hook = Webhook::new(
            "http://127.0.0.1:9/authz",
            Duration::from_secs(1),
            Duration::from_secs(60),
        )
        .unwrap();
        let pro = id(json!({ "sub": "u", "plan": "pro", "jti": "1" }));
        let same = id(json!({ "jti": "1", "plan": "pro", "sub": "u" }));
        let free = id(json!({ "sub": "u", "plan": "free", "jti": "2" }));
        assert_eq!(hook.claims_hash(&pro), hook.claims_hash(&same));
        assert_ne!(hook.claims_hash(&pro), hook.claims_hash(&free));
    }
}
