//! The first things the engine reads of a request, whatever a client sends:
//! the query (any text: `EIO`, `transport` and `sid` each at most once, or
//! a refusal) and a long-polling body (any bytes), whose packets are
//! counted before they are decoded, and whose events are decided on their
//! head (`sio::peek_event`) before their arguments are read. Must never
//! panic; the head must name what the full decode finds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockgate_engine::engine::Query;
use sockgate_engine::eio::{self, Packet};
use sockgate_engine::sio::{self, Decoded, Kind, Value};

const MAX_PAYLOAD: usize = 64 * 1024;
const MAX_PACKETS: usize = 256;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (query, body) = rest.split_at(usize::from(split).min(rest.len()));
    if let Ok(query) = std::str::from_utf8(query) {
        check_query(query);
    }
    let packets = body.iter().filter(|&&b| b == 0x1e).count() + 1;
    if packets > MAX_PACKETS {
        return;
    }
    let Ok(packets) = eio::decode_payload(body, MAX_PAYLOAD) else {
        return;
    };
    assert!(packets.len() <= MAX_PACKETS);
    for packet in packets {
        if let Packet::Message(text) = packet {
            check_event_head(&text);
        }
    }
});

/// A query reads each of the three parameters once, or is refused when one
/// repeats.
fn check_query(query: &str) {
    let keys = |name: &str| {
        query
            .split('&')
            .filter(|pair| pair.split_once('=').map_or(*pair, |(k, _)| k) == name)
            .count()
    };
    let repeated = ["EIO", "transport", "sid"].iter().any(|k| keys(k) > 1);
    match Query::parse_str(query) {
        Ok(q) => {
            assert!(!repeated, "{query:?}");
            assert_eq!(q.sid.is_some(), keys("sid") == 1);
            assert_eq!(q.eio.is_some(), keys("EIO") == 1);
            let _ = q.session();
        }
        Err(_) => assert!(repeated, "{query:?}"),
    }
}

/// Whatever the full decode reads as an event, its head names the same.
fn check_event_head(text: &str) {
    let head = sio::peek_event(text);
    let Ok(Decoded::Complete(packet)) = sio::decode(text, 0) else {
        return;
    };
    if packet.kind != Kind::Event {
        assert!(head.is_err(), "{text:?}");
        return;
    }
    let Some(Value::Array(items)) = &packet.data else {
        unreachable!("the decoder checks an event's payload");
    };
    let Some(Value::String(name)) = items.first() else {
        unreachable!("the decoder checks an event's name");
    };
    let head = head.unwrap_or_else(|e| panic!("{e}: {text:?}"));
    assert_eq!(head.namespace, packet.namespace);
    assert_eq!(head.id, packet.id);
    assert_eq!(&head.name, name);
}
