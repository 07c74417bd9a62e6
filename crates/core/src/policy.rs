//! Room authorization: deny by default; the first source that decides wins.
//!
//! 1. Capabilities in the token: the rooms claim (default `rooms`) lists glob
//!    patterns (granting join and publish) or `{ match, allow }` objects.
//! 2. Rules from the config file: patterns with templates filled from the
//!    identity (`dm:{userId}:*`, `team:{claims.team}:*`), optionally only for
//!    users whose `roles` claim holds a role.
//!    A rule with a template is matched segment by segment (segments are
//!    separated by `:`), so neither a `*` nor a filled-in value can reach
//!    into the next segment.
//! 3. The app ([`App::authorize`]), the gateway's authorization webhook:
//!    it decides, or answers `AUTH_UNAVAILABLE` when it cannot.
//!
//! Sources 1 and 2 only grant: when they do not, the question goes on. The
//! webhook, when configured, always decides. Without a grant: `FORBIDDEN`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sockgate_auth::{AuthError, ErrorCode, Identity};
use wildmatch::WildMatch;

use std::sync::Arc;

use crate::hooks::App;

/// What separates the segments of a room name (`team:red:general`).
pub const SEGMENT: char = ':';

pub use sockgate_protocol::rooms::Action;

/// A config-file rule (`[[room_rules]]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoomRule {
    /// A glob pattern (`*` any run of characters, `?` one character) with
    /// `{userId}` and `{claims.NAME}` templates.
    #[serde(rename = "match")]
    pub pattern: String,
    /// What the rule grants.
    pub allow: Vec<Action>,
    /// Only for users whose `roles` claim (a string or a list) holds this role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The rooms it matches tell their members `room:joined` and
    /// `room:left` (see `Node::with_presence_events`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub presence_events: bool,
}

/// The room authorization policy of a node.
pub struct Policy {
    /// The claim holding capabilities.
    pub claim: String,
    /// The config file's rules.
    pub rules: Vec<RoomRule>,
    /// The app, asked last when set ([`App::authorize`]: the gateway's
    /// authorization webhook).
    pub webhook: Option<Arc<dyn App>>,
}

impl Policy {
    /// Whether `room` tells its members who comes and goes: `all`, or a
    /// rule with `presence_events` matches it (for `id`, whose templates
    /// the rule may use).
    pub fn presence_events(&self, all: bool, id: &Identity, room: &str) -> bool {
        all || self
            .rules
            .iter()
            .any(|r| r.presence_events && rule_matches(&r.pattern, id, room))
    }

    /// Whether any rule has `presence_events`.
    pub(crate) fn any_presence_events(&self) -> bool {
        self.rules.iter().any(|r| r.presence_events)
    }
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
        if let Some(app) = &self.webhook
            && app.authorize(id, room, action, fresh).await?
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
                && rule_matches(&rule.pattern, id, room)
        })
    }
}

/// Whether a config rule's pattern matches `room` for `id`.
///
/// A pattern without a template is one glob over the whole name, as it
/// always was. A pattern with a template is matched segment by segment: the
/// room must have as many `:`-separated segments as the pattern, and each
/// segment must match its own glob. So `dm:{userId}:*` lets `bob` into
/// `dm:bob:alice`, never into `dm:bob:smith:private` (the room of user
/// `bob:smith`, or anything else), and a value can never span segments:
/// [`fill_template`] refuses values holding `:`.
pub(crate) fn rule_matches(pattern: &str, id: &Identity, room: &str) -> bool {
    if !pattern.contains('{') {
        return WildMatch::new(pattern).matches(room);
    }
    let Some(filled) = fill_template(pattern, id) else {
        return false;
    };
    let mut globs = filled.split(SEGMENT);
    let mut segments = room.split(SEGMENT);
    loop {
        match (globs.next(), segments.next()) {
            (None, None) => return true,
            (Some(glob), Some(segment)) if WildMatch::new(glob).matches(segment) => {}
            _ => return false,
        }
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
/// not a string or integer, holds a wildcard or a segment separator (`:`):
/// a claim must never widen the pattern it fills, nor reach into another
/// segment of the room name.
pub fn fill_template(pattern: &str, id: &Identity) -> Option<String> {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}')? + start;
        let value = template_value(&rest[start + 1..end], id)?;
        if value.contains(['*', '?', SEGMENT]) {
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
    let claims = id.claims.to_map();
    let mut value = claims.get(name.strip_prefix("claims.")?.split('.').next()?)?;
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

    fn rule(pattern: &str) -> RoomRule {
        RoomRule {
            pattern: pattern.into(),
            allow: vec![Action::Join],
            role: None,
            presence_events: false,
        }
    }

    /// `*` in a templated rule stays within its segment, and a value holding
    /// `:` makes the rule not apply: `bob` cannot reach `dm:bob:smith:*`, the
    /// rooms of user `bob:smith`, nor team `red` the rooms under `team:red:admins`.
    #[tokio::test]
    async fn templated_rules_match_segment_by_segment() {
        let policy = Policy {
            rules: vec![
                rule("dm:{userId}:*"),
                rule("team:{claims.team}:*"),
                rule("org:{claims.org}:*:lobby"),
                rule("open:*"),
            ],
            ..Policy::default()
        };
        let may = |id: &Identity, room: &str| {
            let allowed = policy.rules_grant(id, room, Action::Join);
            assert_eq!(
                allowed,
                rule_matches_any(&policy, id, room),
                "rules_grant and rule_matches disagree on {room}"
            );
            allowed
        };
        let bob = id(json!({ "sub": "bob", "team": "red", "org": "acme" }));
        assert!(may(&bob, "dm:bob:alice"));
        assert!(may(&bob, "dm:bob:"));
        assert!(!may(&bob, "dm:bob:smith:private"));
        assert!(!may(&bob, "dm:bob"));
        assert!(!may(&bob, "dm:bobby:alice"));
        assert!(may(&bob, "team:red:general"));
        assert!(!may(&bob, "team:red:admins:ops"));
        assert!(!may(&bob, "team:redder:general"));
        assert!(may(&bob, "org:acme:eu:lobby"));
        assert!(!may(&bob, "org:acme:eu:west:lobby"));
        assert!(!may(&bob, "org:acme:eu:lobby:x"));
        // Patterns without a template keep matching across segments.
        assert!(may(&bob, "open:a:b:c"));

        // A value holding the separator makes its rule not apply at all.
        let smith = id(json!({ "sub": "bob:smith", "team": "red:admins" }));
        assert!(!may(&smith, "dm:bob:smith:private"));
        assert!(!may(&smith, "dm:bob:smith"));
        assert!(!may(&smith, "team:red:admins:ops"));
        assert_eq!(fill_template("dm:{userId}:*", &smith), None);
        assert_eq!(fill_template("team:{claims.team}:*", &smith), None);
    }

    fn rule_matches_any(policy: &Policy, id: &Identity, room: &str) -> bool {
        policy
            .rules
            .iter()
            .any(|r| rule_matches(&r.pattern, id, room))
    }

    #[tokio::test]
    async fn claims_then_rules_then_deny() {
        let policy = Policy {
            rules: vec![
                RoomRule {
                    pattern: "team:{claims.team}:*".into(),
                    allow: vec![Action::Join, Action::Presence],
                    role: None,
                    presence_events: false,
                },
                RoomRule {
                    pattern: "ops:*".into(),
                    allow: vec![Action::Join, Action::Publish],
                    role: Some("admin".into()),
                    presence_events: false,
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
