//! Room authorization: deny by default; the first source that decides wins.
//!
//! 1. Capabilities in the token: the rooms claim (default `rooms`) lists glob
//!    patterns (granting join and publish) or `{ match, allow }` objects.
//! 2. Rules from the config file: patterns with templates filled from the
//!    identity (`dm:{userId}:*`, `team:{claims.team}:*`), optionally only for
//!    users whose `roles` claim holds a role.
//! 3. An optional webhook: `POST { userId, room, action, claims }`; 2xx
//!    allows, any other status denies, a timeout or an unreachable backend is
//!    `AUTH_UNAVAILABLE`. Answers are cached.
//!
//! Sources 1 and 2 only grant: when they do not, the question goes on. The
//! webhook, when configured, always decides. Without a grant: `FORBIDDEN`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sockgate_auth::{AuthError, ErrorCode, Identity};
use wildmatch::WildMatch;

/// What a user wants to do in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Join,
    Publish,
    Presence,
}

impl Action {
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Join => "join",
            Action::Publish => "publish",
            Action::Presence => "presence",
        }
    }
}

/// A config-file rule (`[[room_rules]]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoomRule {
    /// A glob pattern (`*` any run of characters, `?` one character) with
    /// `{userId}` and `{claims.NAME}` templates.
    #[serde(rename = "match")]
    pub pattern: String,
    pub allow: Vec<Action>,
    /// Only for users whose `roles` claim (a string or a list) holds this role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The authorization webhook.
pub struct Webhook {
    client: reqwest::Client,
    url: reqwest::Url,
    cache: mini_moka::sync::Cache<(String, String, Action), bool>,
}

impl Webhook {
    pub fn new(url: &str, timeout: Duration, cache_ttl: Duration) -> Result<Self, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let cache = mini_moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(cache_ttl.max(Duration::from_millis(1)))
            .build();
        Ok(Self { client, url, cache })
    }

    async fn decide(
        &self,
        id: &Identity,
        room: &str,
        action: Action,
        fresh: bool,
    ) -> Result<bool, AuthError> {
        let key = (id.user_id.clone(), room.to_owned(), action);
        if !fresh && let Some(allowed) = self.cache.get(&key) {
            return Ok(allowed);
        }
        let body = serde_json::json!({
            "userId": id.user_id, "room": room, "action": action, "claims": id.claims,
        });
        let res = self
            .client
            .post(self.url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "authorization webhook unreachable");
                AuthError::new(
                    ErrorCode::AuthUnavailable,
                    "the authorization service did not answer",
                )
            })?;
        let allowed = res.status().is_success();
        self.cache.insert(key, allowed);
        Ok(allowed)
    }
}

/// The room authorization policy of a gateway.
pub struct Policy {
    /// The claim holding capabilities.
    pub claim: String,
    pub rules: Vec<RoomRule>,
    pub webhook: Option<Webhook>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            claim: "rooms".to_owned(),
            rules: Vec::new(),
            webhook: None,
        }
    }
}

impl Policy {
    /// Whether `id` may do `action` in `room`. `fresh` skips the webhook
    /// cache (used when rights are recomputed after a refresh).
    pub async fn authorize(
        &self,
        id: &Identity,
        room: &str,
        action: Action,
        fresh: bool,
    ) -> Result<(), AuthError> {
        if self.claims_grant(id, room, action) || self.rules_grant(id, room, action) {
            return Ok(());
        }
        if let Some(hook) = &self.webhook
            && hook.decide(id, room, action, fresh).await?
        {
            return Ok(());
        }
        Err(AuthError::new(
            ErrorCode::Forbidden,
            format!("not allowed to {} in this room", action.as_str()),
        ))
    }

    fn claims_grant(&self, id: &Identity, room: &str, action: Action) -> bool {
        let Some(Value::Array(caps)) = id.claims.get(&self.claim) else {
            return false;
        };
        caps.iter().any(|cap| match cap {
            Value::String(pattern) => {
                matches!(action, Action::Join | Action::Publish)
                    && WildMatch::new(pattern).matches(room)
            }
            Value::Object(obj) => {
                let pattern = obj.get("match").and_then(Value::as_str);
                let allows = obj
                    .get("allow")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(action.as_str())));
                allows && pattern.is_some_and(|p| WildMatch::new(p).matches(room))
            }
            _ => false,
        })
    }

    fn rules_grant(&self, id: &Identity, room: &str, action: Action) -> bool {
        self.rules.iter().any(|rule| {
            rule.allow.contains(&action)
                && rule.role.as_deref().is_none_or(|role| has_role(id, role))
                && fill_template(&rule.pattern, id)
                    .is_some_and(|p| WildMatch::new(&p).matches(room))
        })
    }
}

fn has_role(id: &Identity, role: &str) -> bool {
    match id.claims.get("roles") {
        Some(Value::Array(roles)) => roles.iter().any(|r| r.as_str() == Some(role)),
        Some(Value::String(r)) => r == role,
        _ => false,
    }
}

/// Fills `{userId}` and `{claims.a.b}`. `None` when a value is missing, is
/// not a string or integer, or holds a wildcard: a claim must never widen
/// the pattern it fills.
pub fn fill_template(pattern: &str, id: &Identity) -> Option<String> {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}')? + start;
        let value = template_value(&rest[start + 1..end], id)?;
        if value.contains(['*', '?']) {
            return None;
        }
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn template_value(name: &str, id: &Identity) -> Option<String> {
    if name == "userId" {
        return Some(id.user_id.clone());
    }
    let mut value = id
        .claims
        .get(name.strip_prefix("claims.")?.split('.').next()?)?;
    for part in name.strip_prefix("claims.")?.split('.').skip(1) {
        value = value.get(part)?;
    }
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(claims: Value) -> Identity {
        Identity::from_claims(claims.as_object().unwrap().clone(), "sub").unwrap()
    }

    #[test]
    fn templates_fill_from_identity_and_never_widen() {
        let alice = id(json!({ "sub": "alice", "team": "red", "org": { "id": 7 }, "evil": "*" }));
        assert_eq!(
            fill_template("dm:{userId}:*", &alice).as_deref(),
            Some("dm:alice:*")
        );
        assert_eq!(
            fill_template("team:{claims.team}:*", &alice).as_deref(),
            Some("team:red:*")
        );
        assert_eq!(
            fill_template("org:{claims.org.id}", &alice).as_deref(),
            Some("org:7")
        );
        assert_eq!(fill_template("x:{claims.missing}", &alice), None);
        assert_eq!(fill_template("x:{claims.evil}", &alice), None);
        assert_eq!(fill_template("x:{claims.org}", &alice), None);
        assert_eq!(fill_template("x:{unclosed", &alice), None);
    }

    #[tokio::test]
    async fn claims_then_rules_then_deny() {
        let policy = Policy {
            rules: vec![
                RoomRule {
                    pattern: "team:{claims.team}:*".into(),
                    allow: vec![Action::Join, Action::Presence],
                    role: None,
                },
                RoomRule {
                    pattern: "ops:*".into(),
                    allow: vec![Action::Join, Action::Publish],
                    role: Some("admin".into()),
                },
            ],
            ..Policy::default()
        };
        let user = id(json!({
            "sub": "u", "team": "red", "roles": ["dev"],
            "rooms": ["chat:*", { "match": "news:*", "allow": ["join", "presence"] }, 42],
        }));
        let admin = id(json!({ "sub": "a", "roles": ["admin"] }));
        let ok = |r: Result<(), AuthError>| r.is_ok();
        assert!(ok(policy
            .authorize(&user, "chat:lobby", Action::Publish, false)
            .await));
        assert!(!ok(policy
            .authorize(&user, "chat:lobby", Action::Presence, false)
            .await));
        assert!(ok(policy
            .authorize(&user, "news:today", Action::Presence, false)
            .await));
        assert!(!ok(policy
            .authorize(&user, "news:today", Action::Publish, false)
            .await));
        assert!(ok(policy
            .authorize(&user, "team:red:general", Action::Join, false)
            .await));
        assert!(!ok(policy
            .authorize(&user, "team:blue:general", Action::Join, false)
            .await));
        assert!(!ok(policy
            .authorize(&user, "ops:alerts", Action::Join, false)
            .await));
        assert!(ok(policy
            .authorize(&admin, "ops:alerts", Action::Publish, false)
            .await));
        let err = policy
            .authorize(&admin, "chat:lobby", Action::Join, false)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Forbidden);
    }
}
