//! Engine.IO decoding: any bytes as a long-polling body, a WebSocket text
//! frame and a binary frame. Must never panic, and whatever decodes must
//! encode back to the very same bytes: the decoder accepts one spelling of
//! each packet only (strict payloads, canonical base64).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sockgate_engine::eio::{self, Frame, Packet};

const MAX_PAYLOAD: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if let Ok(packets) = eio::decode_payload(data, MAX_PAYLOAD) {
        let body = eio::encode_payload(&packets).expect("decoded packets encode");
        assert_eq!(body.as_bytes(), data);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(packet) = eio::decode_text(text, MAX_PAYLOAD)
    {
        assert!(!matches!(packet, Packet::Binary(_)));
        assert_eq!(eio::encode_frame(packet), Frame::Text(text.to_owned()));
    }
    let frame = Bytes::copy_from_slice(data);
    match eio::decode_binary(frame.clone(), MAX_PAYLOAD) {
        Ok(packet) => assert_eq!(eio::encode_frame(packet), Frame::Binary(frame)),
        Err(_) => assert!(data.len() > MAX_PAYLOAD),
    }
});
