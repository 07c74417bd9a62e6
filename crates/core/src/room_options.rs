//! Room options by pattern (`[[room_options]]`): what a room does, beside
//! who may enter it (the policy's business). The first entry whose
//! pattern matches a room gives its options; what it leaves unset, and a
//! room no entry matches, takes the defaults.
//!
//! An option is a field of [`RoomOptions`] (read from the config file
//! as it is) and a field of [`Options`] (what it means for one room), and
//! the node asks [`RoomOptionsList::of`] where it matters.

use crate::recovery::Keep;
use serde::{Deserialize, Serialize};
use sockgate_auth::{AuthError, ErrorCode};
use wildmatch::WildMatch;

/// One `[[room_options]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomOptions {
    /// A glob over room names (`*` any run of characters, `?` one).
    #[serde(rename = "match")]
    pub pattern: String,
    /// Whether clients may `room:publish` there (default yes, for those
    /// the policy lets publish). The app's replies, the admin API and the
    /// queues always may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_publish: Option<bool>,
    /// Whether `room:members` answers there (default yes, for those with
    /// the presence right).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<bool>,
    /// Whether the room tells its members `room:joined` and `room:left`
    /// (default: as `[[room_rules]] presence_events` and
    /// `SOCKGATE_ROOM_PRESENCE_EVENTS` say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_events: Option<bool>,
    /// Whether the room's messages are kept for recovery (default yes,
    /// where recovery is on). No: they carry no offset, and a session
    /// that recovers does not get back the ones it missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recover: Option<bool>,
    /// Most messages the history keeps of the room (default: as the
    /// global bounds share it out). Past it, the room's oldest go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_size: Option<usize>,
    /// Longest the history keeps a message of the room, in seconds
    /// (default: the recovery window). Older ones are not served, and go
    /// with the room's next message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_ttl: Option<u64>,
}

/// The options of one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Clients may `room:publish`.
    pub client_publish: bool,
    /// `room:members` answers.
    pub presence: bool,
    /// `room:joined` and `room:left` on (`Some(true)`), off
    /// (`Some(false)`), or as the rules say (`None`).
    pub presence_events: Option<bool>,
    /// Its messages are kept for recovery.
    pub recover: bool,
    /// Its own bounds in the history.
    pub keep: Keep,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            client_publish: true,
            presence: true,
            presence_events: None,
            recover: true,
            keep: Keep::default(),
        }
    }
}

impl Options {
    /// `FORBIDDEN` where clients may not publish.
    pub fn check_client_publish(&self) -> Result<(), AuthError> {
        if self.client_publish {
            return Ok(());
        }
        Err(AuthError::new(
            ErrorCode::Forbidden,
            "clients may not publish in this room",
        ))
    }

    /// `FORBIDDEN` where the room lists no members.
    pub fn check_presence(&self) -> Result<(), AuthError> {
        if self.presence {
            return Ok(());
        }
        Err(AuthError::new(
            ErrorCode::Forbidden,
            "this room does not list its members",
        ))
    }
}

/// Every `[[room_options]]` entry, in the file's order.
#[derive(Debug, Clone, Default)]
pub struct RoomOptionsList {
    entries: Vec<(WildMatch, RoomOptions)>,
}

impl RoomOptionsList {
    /// The list of `entries`, in their order.
    pub fn new(entries: Vec<RoomOptions>) -> Self {
        Self {
            entries: entries
                .into_iter()
                .map(|e| (WildMatch::new(&e.pattern), e))
                .collect(),
        }
    }

    /// Whether any entry sets `presence_events`.
    pub(crate) fn any_presence_events(&self) -> bool {
        self.entries
            .iter()
            .any(|(_, e)| e.presence_events.is_some())
    }

    /// The options of `room`: the first matching entry's, over the
    /// defaults.
    pub fn of(&self, room: &str) -> Options {
        let defaults = Options::default();
        let Some((_, entry)) = self.entries.iter().find(|(m, _)| m.matches(room)) else {
            return defaults;
        };
        Options {
            client_publish: entry.client_publish.unwrap_or(defaults.client_publish),
            presence: entry.presence.unwrap_or(defaults.presence),
            presence_events: entry.presence_events,
            recover: entry.recover.unwrap_or(defaults.recover),
            keep: Keep {
                size: entry.history_size,
                ttl_ms: entry.history_ttl.map(|s| s.saturating_mul(1000)),
            },
        }
    }

    /// Whether a broadcast to `rooms` is kept for recovery: when any of
    /// them keeps its messages.
    pub fn keeps(&self, rooms: &[String]) -> bool {
        self.entries.is_empty() || rooms.iter().any(|room| self.of(room).recover)
    }

    /// Whether there are no entries (every room has the defaults).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_match_gives_the_options_over_the_defaults() {
        let list = RoomOptionsList::new(vec![
            RoomOptions {
                pattern: "news:*".into(),
                client_publish: Some(false),
                ..RoomOptions::default()
            },
            RoomOptions {
                pattern: "*".into(),
                presence: Some(false),
                ..RoomOptions::default()
            },
        ]);
        let news = list.of("news:today");
        assert!(
            !news.client_publish && news.presence,
            "the first match only"
        );
        assert!(news.check_client_publish().is_err());
        let other = list.of("chat:1");
        assert!(other.client_publish && !other.presence);
        assert_eq!(
            other.check_presence().unwrap_err().code,
            ErrorCode::Forbidden
        );
        assert_eq!(RoomOptionsList::default().of("x"), Options::default());
    }

    #[test]
    fn a_broadcast_is_kept_when_any_of_its_rooms_keeps_messages() {
        let list = RoomOptionsList::new(vec![RoomOptions {
            pattern: "live:*".into(),
            recover: Some(false),
            ..RoomOptions::default()
        }]);
        let rooms = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert!(!list.keeps(&rooms(&["live:1"])));
        assert!(!list.keeps(&rooms(&["live:1", "live:2"])));
        assert!(list.keeps(&rooms(&["live:1", "chat:1"])));
        assert!(RoomOptionsList::default().keeps(&rooms(&["live:1"])));
    }

    #[test]
    fn entries_are_read_as_the_file_writes_them() {
        let entry: RoomOptions = toml_like(r#"{ "match": "chat:*", "client_publish": false }"#);
        assert_eq!(entry.pattern, "chat:*");
        assert_eq!(entry.client_publish, Some(false));
        assert!(serde_json::from_str::<RoomOptions>(r#"{ "match": "x", "publish": 1 }"#).is_err());
    }

    fn toml_like(json: &str) -> RoomOptions {
        serde_json::from_str(json).unwrap()
    }
}
