//! Rooms: names, and who is in which room on this node.
//!
//! A socket is always in its own user room (`user:{userId}` by default, see
//! [`UserRoom`]) and can never join another user's. Membership is kept in an index next to the transport
//! layer's rooms, so member counts and presence never scan sockets. What the
//! other nodes hold is the [`crate::backend::Presence`] backend's.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use sockgate_auth::{AuthError, ErrorCode};
use sockgate_protocol::rooms::check_name;

use crate::connection::Connection;
use crate::session::Session;

pub use sockgate_protocol::rooms::UserRoom;

/// Checks a room name: 1 to 200 printable characters, no whitespace.
pub fn validate(room: &str) -> Result<(), AuthError> {
    check_name(room).map_err(|why| AuthError::new(ErrorCode::RoomInvalid, why))
}

/// Which users are in which room on this node, with a socket count each.
#[derive(Default)]
pub struct Rooms {
    members: Mutex<Index>,
    /// Set once when the node is built; the default until then.
    user_room: OnceLock<UserRoom>,
}

#[derive(Default)]
struct Index {
    rooms: HashMap<String, Users>,
    /// Users' own rooms (`user:{id}`), by user id, with a socket count:
    /// every socket is in one, and keyed by the id alone they hold one
    /// string each instead of two (the room's name and the user's).
    own: HashMap<Box<str>, u32>,
}

/// The user whose own room `room` is, when it is `user`'s.
fn own_room_of<'a>(template: &UserRoom, room: &'a str, user: &str) -> Option<&'a str> {
    template.owner(room).filter(|id| *id == user)
}

impl Index {
    /// The user of the own room `room`, with its socket count, if someone
    /// is in it.
    fn own_room(&self, template: &UserRoom, room: &str) -> Option<(&str, u32)> {
        let id = template.owner(room)?;
        let (user, count) = self.own.get_key_value(id)?;
        Some((user, *count))
    }
}

/// The users of one room, with a socket count each. Most rooms hold one
/// user (every socket's own `user:` room is one), and a table for one
/// costs about 160 bytes of every idle connection, by heap profile.
enum Users {
    One(String, u32),
    /// Boxed, so that the common case is not as large as a table (every
    /// room's entry in the index has the size of the largest variant).
    #[allow(clippy::box_collection)]
    Many(Box<HashMap<String, u32>>),
}

impl Users {
    /// Counts one more socket of `user`; true when it is the first.
    fn add(&mut self, user: &str) -> bool {
        if let Users::One(only, n) = self {
            if only == user {
                *n += 1;
                return false;
            }
            *self = Users::Many(Box::new(HashMap::from([(std::mem::take(only), *n)])));
        }
        let Users::Many(map) = self else {
            unreachable!("a second user makes a table");
        };
        let n = map.entry(user.to_owned()).or_default();
        *n += 1;
        *n == 1
    }

    /// Counts one socket of `user` out; true when it was the last.
    fn remove(&mut self, user: &str) -> bool {
        let n = match self {
            Users::One(only, n) if only == user => n,
            Users::One(..) => return false,
            Users::Many(map) => match map.get_mut(user) {
                Some(n) => n,
                None => return false,
            },
        };
        *n -= 1;
        if *n > 0 {
            return false;
        }
        if let Users::Many(map) = self {
            map.remove(user);
        }
        true
    }

    fn len(&self) -> usize {
        match self {
            Users::One(_, 0) => 0,
            Users::One(..) => 1,
            Users::Many(map) => map.len(),
        }
    }

    fn names(&self) -> Box<dyn Iterator<Item = &String> + '_> {
        match self {
            Users::One(_, 0) => Box::new(std::iter::empty()),
            Users::One(only, _) => Box::new(std::iter::once(only)),
            Users::Many(map) => Box::new(map.keys()),
        }
    }
}

impl Rooms {
    /// Names users' own rooms after `template`; once, before any use.
    /// False when a template was in use already.
    pub(crate) fn set_user_room(&self, template: UserRoom) -> bool {
        self.user_room.set(template).is_ok()
    }

    /// The template of users' own rooms.
    pub fn user_room(&self) -> &UserRoom {
        self.user_room.get_or_init(UserRoom::default)
    }

    /// Puts the connection in `room`. Returns `None` when it already was,
    /// else whether its user just arrived in the room (the user's first
    /// socket there).
    pub(crate) fn enter(
        &self,
        conn: &dyn Connection,
        session: &Session,
        room: &str,
    ) -> Option<bool> {
        if !session.add_room(room) {
            return None;
        }
        conn.join(room);
        let mut index = self.members.lock().expect("rooms lock");
        if let Some(user) = own_room_of(self.user_room(), room, &session.user_id) {
            let count = index.own.entry(Box::from(user)).or_default();
            *count += 1;
            return Some(*count == 1);
        }
        match index.rooms.get_mut(room) {
            Some(users) => Some(users.add(&session.user_id)),
            None => {
                let users = Users::One(session.user_id.clone(), 1);
                index.rooms.insert(room.to_owned(), users);
                Some(true)
            }
        }
    }

    /// Takes the connection out of `room`. Returns `None` when it was not
    /// in it, else whether its user just left the room (its last socket
    /// there).
    pub fn exit(&self, conn: &dyn Connection, session: &Session, room: &str) -> Option<bool> {
        if !session.remove_room(room) {
            return None;
        }
        conn.leave(room);
        Some(self.uncount(room, &session.user_id))
    }

    /// The `n` rooms with the most members on this node (users' own rooms
    /// left out), most first.
    pub fn top(&self, n: usize) -> Vec<(String, usize)> {
        let index = self.members.lock().expect("rooms lock");
        let mut rooms: Vec<(String, usize)> = index
            .rooms
            .iter()
            .filter(|(room, _)| !self.user_room().is_user_room(room))
            .map(|(room, users)| (room.clone(), users.len()))
            .collect();
        rooms.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rooms.truncate(n);
        rooms
    }

    /// Drops a gone session from every room it was in (the transport layer
    /// drops the socket itself). Returns the rooms its user left with it.
    pub fn forget(&self, session: &Session) -> Vec<String> {
        let mut left = session.take_rooms();
        left.retain(|room| self.uncount(room, &session.user_id));
        left
    }

    /// Counts one socket of `user` out of `room`; true when it was the last.
    fn uncount(&self, room: &str, user: &str) -> bool {
        let mut index = self.members.lock().expect("rooms lock");
        if let Some(user) = own_room_of(self.user_room(), room, user) {
            let Some(count) = index.own.get_mut(user) else {
                return false;
            };
            *count -= 1;
            if *count == 0 {
                index.own.remove(user);
                return true;
            }
            return false;
        }
        let Some(users) = index.rooms.get_mut(room) else {
            return false;
        };
        let gone = users.remove(user);
        if users.len() == 0 {
            index.rooms.remove(room);
        }
        gone
    }

    /// The users present in `room`, sorted.
    pub fn members(&self, room: &str) -> Vec<String> {
        let index = self.members.lock().expect("rooms lock");
        if let Some((user, _)) = index.own_room(self.user_room(), room) {
            return vec![user.to_owned()];
        }
        let mut users: Vec<String> = index
            .rooms
            .get(room)
            .map(|u| u.names().cloned().collect())
            .unwrap_or_default();
        users.sort();
        users
    }

    /// Every `(room, user)` pair present on this node.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let index = self.members.lock().expect("rooms lock");
        let own = index
            .own
            .keys()
            .map(|user| (self.user_room().name(user), user.to_string()));
        let others = index
            .rooms
            .iter()
            .flat_map(|(room, users)| users.names().map(move |u| (room.clone(), u.clone())));
        own.chain(others).collect()
    }

    /// How many users are present in `room`.
    pub fn count(&self, room: &str) -> usize {
        let index = self.members.lock().expect("rooms lock");
        if index.own_room(self.user_room(), room).is_some() {
            return 1;
        }
        index.rooms.get(room).map_or(0, Users::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A room's users as one entry, then a table once a second user comes:
    /// the counts and who arrived or left first are the same either way.
    #[test]
    fn users_count_sockets_per_user() {
        let mut users = Users::One("alice".into(), 1);
        assert!(!users.add("alice"), "alice's second socket");
        assert!(users.add("bob"), "bob arrives");
        assert!(matches!(users, Users::Many(_)));
        assert_eq!(users.len(), 2);
        let mut names: Vec<_> = users.names().cloned().collect();
        names.sort();
        assert_eq!(names, ["alice", "bob"]);
        assert!(!users.remove("alice"), "one socket of alice is left");
        assert!(users.remove("alice"), "alice's last socket");
        assert!(!users.remove("carol"), "never there");
        assert_eq!(users.len(), 1);
        assert!(users.remove("bob"));
        assert_eq!(users.len(), 0);
        let mut one = Users::One("dave".into(), 1);
        assert!(one.remove("dave"));
        assert_eq!(one.len(), 0);
        assert_eq!(one.names().count(), 0);
    }

    #[test]
    fn room_names() {
        for ok in ["a", "chat:lobby", "team:red:*x", &"é".repeat(200), "a/b#c"] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            " ",
            "a b",
            "tab\there",
            "new\nline",
            "bell\u{7}",
            &"x".repeat(201),
        ] {
            assert_eq!(
                validate(bad).unwrap_err().code,
                ErrorCode::RoomInvalid,
                "{bad:?}"
            );
        }
    }
}
