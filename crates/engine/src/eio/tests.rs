use super::*;

const MAX: usize = 1_000_000;

fn text_frame(packet: Packet) -> String {
    match encode_frame(packet) {
        Frame::Text(text) => text,
        Frame::Binary(data) => panic!("expected a text frame, got {data:?}"),
    }
}

/// Every packet kind with its WebSocket text form.
fn text_cases() -> Vec<(Packet, &'static str)> {
    vec![
        (
            Packet::Open(r#"{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"]}"#.into()),
            r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"]}"#,
        ),
        (Packet::Close, "1"),
        (Packet::Ping, "2"),
        (Packet::Pong, "3"),
        (Packet::PingProbe, "2probe"),
        (Packet::PongProbe, "3probe"),
        (Packet::Message("hello".into()), "4hello"),
        (Packet::Message(String::new()), "4"),
        (Packet::Message("€ 2:4€ \u{1e}".into()), "4€ 2:4€ \u{1e}"),
        (Packet::Upgrade, "5"),
        (Packet::Noop, "6"),
    ]
}

#[test]
fn every_text_packet_encodes_to_its_frame() {
    for (packet, text) in text_cases() {
        assert_eq!(text_frame(packet), text);
    }
}

#[test]
fn every_text_frame_decodes_to_its_packet() {
    for (packet, text) in text_cases() {
        assert_eq!(decode_text(text, MAX), Ok(packet), "{text:?}");
    }
}

#[test]
fn binary_frame_is_sent_raw_without_type_byte() {
    let data = Bytes::from_static(&[1, 2, 3, 4]);
    assert_eq!(
        encode_frame(Packet::Binary(data.clone())),
        Frame::Binary(data.clone())
    );
    assert_eq!(decode_binary(data.clone(), MAX), Ok(Packet::Binary(data)));
}

#[test]
fn empty_binary_frame_is_an_empty_message() {
    assert_eq!(
        decode_binary(Bytes::new(), MAX),
        Ok(Packet::Binary(Bytes::new()))
    );
}

#[test]
fn spec_payload_of_text_packets() {
    let packets = vec![
        Packet::Message("hello".into()),
        Packet::Ping,
        Packet::Message("world".into()),
    ];
    let body = "4hello\x1e2\x1e4world";
    assert_eq!(encode_payload(&packets).as_deref(), Ok(body));
    assert_eq!(decode_payload(body.as_bytes(), MAX), Ok(packets));
}

#[test]
fn spec_payload_with_binary_as_base64() {
    let packets = vec![
        Packet::Message("hello".into()),
        Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])),
    ];
    let body = "4hello\x1ebAQIDBA==";
    assert_eq!(encode_payload(&packets).as_deref(), Ok(body));
    assert_eq!(decode_payload(body.as_bytes(), MAX), Ok(packets));
}

#[test]
fn payload_of_one_packet_has_no_separator() {
    assert_eq!(encode_payload(&[Packet::Noop]).as_deref(), Ok("6"));
    assert_eq!(decode_payload(b"3", MAX), Ok(vec![Packet::Pong]));
}

#[test]
fn payload_round_trips_every_kind() {
    let mut packets: Vec<Packet> = text_cases()
        .into_iter()
        .map(|(packet, _)| packet)
        .filter(|packet| text_of(packet).is_none_or(|text| !text.contains(SEPARATOR)))
        .collect();
    packets.push(Packet::Binary(Bytes::from_static(b"\x00\xff\x1e")));
    packets.push(Packet::Binary(Bytes::new()));
    let body = encode_payload(&packets).unwrap();
    assert_eq!(decode_payload(body.as_bytes(), MAX), Ok(packets));
}

#[test]
fn empty_binary_in_payload_is_a_bare_b() {
    assert_eq!(
        encode_payload(&[Packet::Binary(Bytes::new())]).as_deref(),
        Ok("b")
    );
    assert_eq!(
        decode_payload(b"b", MAX),
        Ok(vec![Packet::Binary(Bytes::new())])
    );
}

#[test]
fn empty_inputs_are_refused() {
    assert_eq!(decode_text("", MAX), Err(Error::Empty));
    assert_eq!(decode_payload(b"", MAX), Err(Error::Empty));
    assert_eq!(decode_payload(b"4a\x1e\x1e4b", MAX), Err(Error::Empty));
    assert_eq!(decode_payload(b"4a\x1e", MAX), Err(Error::Empty));
}

#[test]
fn unknown_types_are_refused() {
    assert_eq!(decode_text("abc", MAX), Err(Error::UnknownType('a')));
    assert_eq!(decode_text("7", MAX), Err(Error::UnknownType('7')));
    assert_eq!(decode_text("€", MAX), Err(Error::UnknownType('€')));
    assert_eq!(
        decode_payload(b"4a\x1e9", MAX),
        Err(Error::UnknownType('9'))
    );
}

#[test]
fn bare_packets_refuse_a_payload() {
    assert_eq!(decode_text("1x", MAX), Err(Error::UnexpectedPayload('1')));
    assert_eq!(
        decode_text("5probe", MAX),
        Err(Error::UnexpectedPayload('5'))
    );
    assert_eq!(decode_text("6 ", MAX), Err(Error::UnexpectedPayload('6')));
}

#[test]
fn heartbeat_payload_is_empty_or_probe() {
    assert_eq!(decode_text("2prob", MAX), Err(Error::BadProbe));
    assert_eq!(decode_text("3probes", MAX), Err(Error::BadProbe));
    assert_eq!(decode_text("2PROBE", MAX), Err(Error::BadProbe));
}

#[test]
fn open_needs_its_handshake() {
    assert_eq!(decode_text("0", MAX), Err(Error::MissingHandshake));
}

#[test]
fn inputs_over_max_payload_are_refused() {
    assert_eq!(
        decode_text("4hello", 5),
        Err(Error::TooLarge { len: 6, max: 5 })
    );
    assert_eq!(decode_text("4hell", 5), Ok(Packet::Message("hell".into())));
    let data = Bytes::from_static(&[0; 9]);
    assert_eq!(
        decode_binary(data, 8),
        Err(Error::TooLarge { len: 9, max: 8 })
    );
    let body = b"4hello\x1e2";
    assert_eq!(
        decode_payload(body, body.len() - 1),
        Err(Error::TooLarge { len: 8, max: 7 })
    );
    assert!(decode_payload(body, body.len()).is_ok());
}

#[test]
fn invalid_base64_is_refused() {
    for body in [
        "bAQIDBA=",
        "bAQIDBA",
        "b!!!!",
        "4ok\x1eb====",
        "bAQIDBB==",
        "bAQID BA=",
    ] {
        assert!(
            matches!(decode_payload(body.as_bytes(), MAX), Err(Error::Base64(_))),
            "{body:?}"
        );
    }
}

#[test]
fn non_utf8_body_is_refused() {
    assert_eq!(decode_payload(b"4\xff", MAX), Err(Error::NotUtf8));
}

#[test]
fn separator_in_text_cannot_be_encoded_into_a_payload() {
    let packets = [Packet::Ping, Packet::Message("a\u{1e}4b".into())];
    assert_eq!(encode_payload(&packets), Err(Error::SeparatorInText));
}

#[test]
fn binary_b_prefix_means_nothing_in_a_websocket_text_frame() {
    // Over WebSocket a text frame starting with `b` is not base64 binary.
    assert_eq!(decode_text("bAQIDBA==", MAX), Err(Error::UnknownType('b')));
}
