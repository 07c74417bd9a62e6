//! Rooms: names, and who is in which room on this node.
//!
//! A socket is always in its own `user:{userId}` room and can never join
//! another user's. Membership is kept in an index next to the transport
//! layer's rooms, so member counts and presence never scan sockets. What the
//! other nodes hold is the [`crate::backend::Presence`] backend's.

use std::collections::HashMap;
use std::sync::Mutex;

use sockgate_auth::{AuthError, ErrorCode};
use sockgate_protocol::rooms::check_name;

use crate::connection::Connection;
use crate::session::Session;

pub use sockgate_protocol::rooms::USER_ROOM_PREFIX;

/// Checks a room name: 1 to 200 printable characters, no whitespace.
pub fn validate(room: &str) -> Result<(), AuthError> {
    check_name(room).map_err(|why| AuthError::new(ErrorCode::RoomInvalid, why))
}

/// Which users are in which room on this node, with a socket count each.
#[derive(Default)]
pub struct Rooms {
    members: Mutex<HashMap<String, HashMap<String, u32>>>,
}

impl Rooms {
    /// Puts the connection in `room`. Returns `None` when it already was,
    /// else whether its user just arrived in the room (the user's first
    /// socket there).
    pub fn enter(&self, conn: &dyn Connection, session: &Session, room: &str) -> Option<bool> {
        if !session.add_room(room) {
            return None;
        }
        conn.join(room);
        let mut members = self.members.lock().expect("rooms lock");
        let count = members
            .entry(room.to_owned())
            .or_default()
            .entry(session.user_id.clone())
            .or_default();
        *count += 1;
        Some(*count == 1)
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
        let members = self.members.lock().expect("rooms lock");
        let mut rooms: Vec<(String, usize)> = members
            .iter()
            .filter(|(room, _)| !room.starts_with(USER_ROOM_PREFIX))
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
        let mut members = self.members.lock().expect("rooms lock");
        let Some(users) = members.get_mut(room) else {
            return false;
        };
        let mut gone = false;
        if let Some(n) = users.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                users.remove(user);
                gone = true;
            }
        }
        if users.is_empty() {
            members.remove(room);
        }
        gone
    }

    /// The users present in `room`, sorted.
    pub fn members(&self, room: &str) -> Vec<String> {
        let members = self.members.lock().expect("rooms lock");
        let mut users: Vec<String> = members
            .get(room)
            .map(|u| u.keys().cloned().collect())
            .unwrap_or_default();
        users.sort();
        users
    }

    /// Every `(room, user)` pair present on this node.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let members = self.members.lock().expect("rooms lock");
        members
            .iter()
            .flat_map(|(room, users)| users.keys().map(move |u| (room.clone(), u.clone())))
            .collect()
    }

    /// How many users are present in `room`.
    pub fn count(&self, room: &str) -> usize {
        self.members
            .lock()
            .expect("rooms lock")
            .get(room)
            .map_or(0, HashMap::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
