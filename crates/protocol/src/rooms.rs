//! Room names.

/// The prefix of every user's own room, `user:{userId}`: reserved to that user.
pub const USER_ROOM_PREFIX: &str = "user:";

/// Longest room name, in characters.
pub const MAX_ROOM_CHARS: usize = 200;

/// The room every socket of `user_id` is in.
pub fn user_room(user_id: &str) -> String {
    format!("{USER_ROOM_PREFIX}{user_id}")
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
        assert_eq!(user_room("alice"), "user:alice");
    }
}
