//! The app's answer to an event (`sockgate_core::hooks::reply::parse`):
//! whatever a broken or hostile backend sends, parsing never panics, and
//! what it accepts obeys the rules every answer is held to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockgate_core::hooks::reply::{MAX_EFFECTS, Rules, parse};
use sockgate_core::rooms::UserRoom;

fuzz_target!(|data: &[u8]| {
    let rules = Rules {
        user_room: UserRoom::default(),
        max_payload: 1024,
    };
    let Ok(reply) = parse(data, &rules) else {
        return;
    };
    assert!(reply.emit.len() <= MAX_EFFECTS && reply.publish.len() <= MAX_EFFECTS);
    for publish in &reply.publish {
        assert!(!publish.rooms.is_empty());
        assert!(publish.data.as_ref().is_none_or(|d| d.get().len() <= 1024));
    }
    for room in reply.join.iter().chain(&reply.leave) {
        // Names are checked when applied (with the socket's rooms): here
        // they are only carried.
        let _ = sockgate_core::rooms::validate(room);
    }
});
