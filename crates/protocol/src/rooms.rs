//! Room names.

/// What a user wants to do in a room: what room rules grant and the
/// authorization webhook is asked about (`"action": "join"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Join the room.
    Join,
    /// Publish to it.
    Publish,
    /// See who is in it.
    Presence,
}

impl Action {
    /// The action as rules and the webhook spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Join => "join",
            Action::Publish => "publish",
            Action::Presence => "presence",
        }
    }
}

/// The default template of every user's own room, `user:{id}`.
pub const DEFAULT_USER_ROOM: &str = "user:{id}";

/// Longest room name, in characters.
pub const MAX_ROOM_CHARS: usize = 200;

/// The name of the room every socket of a user is in, reserved to that
/// user: a template with one `{id}` (`SOCKGATE_USER_ROOM`, default
/// `user:{id}`). Apps moving from a Node server whose handlers did
/// `socket.join("user-" + id)` set `user-{id}` and keep their room names.
/// Every room that starts with the part before `{id}` (and ends with the
/// part after it) is a user room: only its user can be in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRoom {
    prefix: Box<str>,
    suffix: Box<str>,
}

impl Default for UserRoom {
    fn default() -> Self {
        Self::parse(DEFAULT_USER_ROOM).expect("the default template is valid")
    }
}

impl UserRoom {
    /// Reads a template: exactly one `{id}`, after at least one character,
    /// all of them printable and no whitespace.
    pub fn parse(template: &str) -> Result<Self, &'static str> {
        let Some((prefix, suffix)) = template.split_once("{id}") else {
            return Err("the template must hold `{id}`, e.g. `user:{id}` or `user-{id}`");
        };
        if suffix.contains("{id}") {
            return Err("the template must hold `{id}` once");
        }
        if prefix.is_empty() {
            return Err(
                "the template must start with a fixed part before `{id}`, e.g. `user-{id}`",
            );
        }
        if template
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err("the template must be printable, without whitespace");
        }
        Ok(Self {
            prefix: prefix.into(),
            suffix: suffix.into(),
        })
    }

    /// The room of `user_id`.
    pub fn name(&self, user_id: &str) -> String {
        format!("{}{user_id}{}", self.prefix, self.suffix)
    }

    /// The user whose room `room` is, when it is a user room.
    pub fn owner<'a>(&self, room: &'a str) -> Option<&'a str> {
        room.strip_prefix(&*self.prefix)?
            .strip_suffix(&*self.suffix)
            .filter(|id| !id.is_empty())
    }

    /// Whether `room` is a user room (anyone's).
    pub fn is_user_room(&self, room: &str) -> bool {
        room.starts_with(&*self.prefix) && room.ends_with(&*self.suffix)
    }

    /// The template, as configured.
    pub fn template(&self) -> String {
        format!("{}{{id}}{}", self.prefix, self.suffix)
    }
}

/// The main namespace, `/`: the one `io(url)` connects to.
pub const MAIN_NAMESPACE: &str = "/";

/// A room of a namespace: each namespace has rooms of its own, and the
/// same name in two namespaces is two rooms.
///
/// Backends, the history and the cluster store a room by its key
/// ([`RoomKey::key`]): the bare name in the main namespace (as before
/// namespaces existed, so stored rooms and their histories keep their
/// keys), and `"{ns} {name}"` in another. A room name never holds
/// whitespace ([`check_name`]) and a namespace name never does
/// (`[[namespaces]]`), so the space cannot be ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomKey<'a> {
    /// The namespace, `/` for the main one.
    pub ns: &'a str,
    /// The room's name in it.
    pub name: &'a str,
}

impl<'a> RoomKey<'a> {
    /// `name` in namespace `ns`.
    pub fn new(ns: &'a str, name: &'a str) -> Self {
        Self { ns, name }
    }

    /// `name` in the main namespace.
    pub fn main(name: &'a str) -> Self {
        Self::new(MAIN_NAMESPACE, name)
    }

    /// The room a stored key names.
    pub fn parse(key: &'a str) -> Self {
        match key.split_once(' ') {
            Some((ns, name)) if ns.starts_with('/') => Self { ns, name },
            _ => Self::main(key),
        }
    }

    /// The key it is stored under.
    pub fn key(&self) -> String {
        match self.ns {
            MAIN_NAMESPACE => self.name.to_owned(),
            ns => format!("{ns} {}", self.name),
        }
    }
}

/// Whether `name` can name a namespace, or a pattern of them: `/` and up
/// to 100 printable characters without whitespace. The sentence says why
/// not.
pub fn check_namespace(name: &str) -> Result<(), &'static str> {
    let ok = name.starts_with('/')
        && name.chars().count() <= 101
        && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    match ok {
        true => Ok(()),
        false => Err("a namespace is `/` and up to 100 printable characters without whitespace"),
    }
}

/// Whether `room` is a valid name: 1 to [`MAX_ROOM_CHARS`] printable
/// characters without whitespace. The sentence says why not.
pub fn check_name(room: &str) -> Result<(), &'static str> {
    let chars = room.chars().count();
    if chars == 0
        || chars > MAX_ROOM_CHARS
        || room.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("room names are 1 to 200 printable characters without whitespace");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_printable_and_bounded() {
        assert!(check_name("chat:lobby").is_ok());
        assert!(check_name(&"é".repeat(MAX_ROOM_CHARS)).is_ok());
        for bad in ["", "a b", "a\nb", "a\u{7}"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(MAX_ROOM_CHARS + 1)).is_err());
    }

    #[test]
    fn room_keys_keep_namespaces_apart() {
        assert_eq!(RoomKey::main("chat:1").key(), "chat:1");
        let admin = RoomKey::new("/admin", "chat:1");
        assert_eq!(admin.key(), "/admin chat:1");
        assert_eq!(RoomKey::parse("/admin chat:1"), admin);
        assert_eq!(RoomKey::parse("chat:1"), RoomKey::main("chat:1"));
        // A main-namespace room whose name starts with a slash stays one.
        assert_eq!(RoomKey::parse("/feed"), RoomKey::main("/feed"));
        assert_ne!(RoomKey::main("chat:1").key(), admin.key());
    }

    #[test]
    fn user_room_templates() {
        let default = UserRoom::default();
        assert_eq!(default.name("alice"), "user:alice");
        assert_eq!(default.owner("user:alice"), Some("alice"));
        assert_eq!(default.owner("user-alice"), None);
        assert_eq!(default.owner("user:"), None);
        assert!(default.is_user_room("user:"));
        let seeds = UserRoom::parse("user-{id}").unwrap();
        assert_eq!(seeds.name("42"), "user-42");
        assert_eq!(seeds.owner("user-42"), Some("42"));
        assert_eq!(seeds.template(), "user-{id}");
        let inbox = UserRoom::parse("u/{id}/inbox").unwrap();
        assert_eq!(inbox.owner("u/7/inbox"), Some("7"));
        assert_eq!(inbox.owner("u/7/outbox"), None);
        for bad in ["user", "{id}", "a{id}{id}", "user {id}", ""] {
            assert!(UserRoom::parse(bad).is_err(), "{bad}");
        }
    }
}

/// Whose sockets a server-side join or leave moves: `{ user }`, `{
/// sessionId }`, or `{ room }` (every socket now in that room: Socket.IO's
/// `io.in(room).socketsJoin(other)`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Sockets {
    /// Every socket of a user.
    User(String),
    /// One session's socket, by its public id.
    SessionId(String),
    /// Every socket in a room.
    Room(String),
}

/// `{ user | sessionId | room }`, as the admin API and the consumers take
/// it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SocketsRequest {
    user: Option<String>,
    session_id: Option<String>,
    room: Option<String>,
    /// The namespace whose sockets move, and whose rooms (`/` when not
    /// given).
    namespace: Option<String>,
}

impl SocketsRequest {
    /// A request from its three fields.
    pub fn new(user: Option<String>, session_id: Option<String>, room: Option<String>) -> Self {
        Self {
            user,
            session_id,
            room,
            namespace: None,
        }
    }

    /// The namespace named, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The sockets named, if exactly one of the three is given.
    pub fn into_sockets(self) -> Result<Sockets, &'static str> {
        match (self.user, self.session_id, self.room) {
            (Some(user), None, None) => Ok(Sockets::User(user)),
            (None, Some(id), None) => Ok(Sockets::SessionId(id)),
            (None, None, Some(room)) => Ok(Sockets::Room(room)),
            _ => Err("give exactly one of user, sessionId or room"),
        }
    }
}
