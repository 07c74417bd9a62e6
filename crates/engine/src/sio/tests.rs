use serde_json::json;

use super::*;

const MAX_ATTACHMENTS: usize = 10;

fn packet(kind: Kind, namespace: &str, id: Option<u64>, data: Option<Value>) -> Packet {
    Packet {
        kind,
        namespace: namespace.into(),
        id,
        data,
    }
}

fn data(value: serde_json::Value) -> Option<Value> {
    Some(value.into())
}

fn bin(bytes: &'static [u8]) -> Value {
    Value::Binary(Bytes::from_static(bytes))
}

fn array(items: Vec<Value>) -> Option<Value> {
    Some(Value::Array(items))
}

/// Decodes a packet that needs no attachment.
fn complete(text: &str) -> Result<Packet, Error> {
    match decode(text, MAX_ATTACHMENTS)? {
        Decoded::Complete(packet) => Ok(packet),
        Decoded::Partial(partial) => panic!("{text:?} waits for {} buffers", partial.remaining()),
    }
}

/// Decodes a binary packet and feeds it its attachments.
fn reassemble(text: &str, buffers: &[&[u8]]) -> Result<Packet, Error> {
    let mut decoded = decode(text, MAX_ATTACHMENTS)?;
    for buffer in buffers {
        decoded = match decoded {
            Decoded::Partial(partial) => partial.push(Bytes::copy_from_slice(buffer))?,
            Decoded::Complete(_) => panic!("{text:?} complete before all buffers"),
        };
    }
    match decoded {
        Decoded::Complete(packet) => Ok(packet),
        Decoded::Partial(partial) => panic!("{text:?} still waits for {}", partial.remaining()),
    }
}

fn encoded_text(packet: &Packet) -> String {
    let encoded = encode(packet).unwrap();
    assert!(encoded.attachments.is_empty(), "{encoded:?}");
    encoded.text
}

/// The README's examples without binary: the packet and its text.
fn spec_examples() -> Vec<(Packet, &'static str)> {
    vec![
        (packet(Kind::Connect, "/", None, None), "0"),
        (
            packet(
                Kind::Connect,
                "/admin",
                None,
                data(json!({"sid": "oSO0OpakMV_3jnilAAAA"})),
            ),
            r#"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#,
        ),
        (
            packet(
                Kind::ConnectError,
                "/",
                None,
                data(json!({"message": "Not authorized"})),
            ),
            r#"4{"message":"Not authorized"}"#,
        ),
        (
            packet(Kind::Event, "/", None, data(json!(["foo"]))),
            r#"2["foo"]"#,
        ),
        (
            packet(Kind::Event, "/admin", None, data(json!(["bar"]))),
            r#"2/admin,["bar"]"#,
        ),
        (
            packet(Kind::Event, "/", Some(12), data(json!(["foo"]))),
            r#"212["foo"]"#,
        ),
        (
            packet(Kind::Ack, "/admin", Some(13), data(json!(["bar"]))),
            r#"3/admin,13["bar"]"#,
        ),
        (packet(Kind::Ack, "/", Some(12), data(json!([]))), "312[]"),
        (packet(Kind::Disconnect, "/", None, None), "1"),
        (packet(Kind::Disconnect, "/admin", None, None), "1/admin,"),
    ]
}

#[test]
fn spec_examples_encode_to_their_text() {
    for (packet, text) in spec_examples() {
        assert_eq!(encoded_text(&packet), text);
    }
}

#[test]
fn spec_examples_decode_to_their_packet() {
    for (packet, text) in spec_examples() {
        assert_eq!(complete(text).unwrap(), packet, "{text:?}");
    }
}

#[test]
fn spec_binary_event_encodes_placeholder_and_attachment() {
    let event = packet(
        Kind::BinaryEvent,
        "/",
        None,
        array(vec!["baz".into(), bin(&[1, 2, 3, 4])]),
    );
    let encoded = encode(&event).unwrap();
    assert_eq!(encoded.text, r#"51-["baz",{"_placeholder":true,"num":0}]"#);
    assert_eq!(encoded.attachments, vec![Bytes::from_static(&[1, 2, 3, 4])]);
}

#[test]
fn spec_binary_event_with_two_attachments_in_namespace() {
    let items = vec!["baz".into(), bin(&[1, 2]), bin(&[3, 4])];
    let event = packet(Kind::BinaryEvent, "/admin", None, array(items));
    let encoded = encode(&event).unwrap();
    let text = r#"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
    assert_eq!(encoded.text, text);
    assert_eq!(encoded.attachments, [&[1u8, 2][..], &[3, 4]]);
    assert_eq!(reassemble(text, &[&[1, 2], &[3, 4]]).unwrap(), event);
}

#[test]
fn spec_binary_ack_with_id() {
    let ack = packet(
        Kind::BinaryAck,
        "/",
        Some(15),
        array(vec!["bar".into(), bin(&[1, 2, 3, 4])]),
    );
    let text = r#"61-15["bar",{"_placeholder":true,"num":0}]"#;
    assert_eq!(encode(&ack).unwrap().text, text);
    assert_eq!(reassemble(text, &[&[1, 2, 3, 4]]).unwrap(), ack);
}

#[test]
fn sample_session_binary_ack_in_namespace() {
    let text = r#"61-/admin,1[{"_placeholder":true,"num":0}]"#;
    let ack = packet(
        Kind::BinaryAck,
        "/admin",
        Some(1),
        array(vec![bin(b"\xff\x00")]),
    );
    assert_eq!(reassemble(text, &[b"\xff\x00"]).unwrap(), ack);
    assert_eq!(encode(&ack).unwrap().text, text);
}

#[test]
fn placeholders_are_filled_by_num_not_by_position() {
    let text = r#"52-["swap",{"_placeholder":true,"num":1},{"k":{"_placeholder":true,"num":0}}]"#;
    let got = reassemble(text, &[b"first", b"second"]).unwrap();
    let mut inner = BTreeMap::new();
    inner.insert("k".to_owned(), bin(b"first"));
    let want = array(vec!["swap".into(), bin(b"second"), Value::Object(inner)]);
    assert_eq!(got.data, want);
}

#[test]
fn partial_counts_down_and_completes_on_the_last_buffer() {
    let text = r#"52-1["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
    let Decoded::Partial(partial) = decode(text, MAX_ATTACHMENTS).unwrap() else {
        panic!("binary packet decoded whole");
    };
    assert_eq!((partial.expected(), partial.remaining()), (2, 2));
    let Decoded::Partial(partial) = partial.push(Bytes::from_static(b"a")).unwrap() else {
        panic!("complete after one of two buffers");
    };
    assert_eq!(partial.remaining(), 1);
    let Decoded::Complete(packet) = partial.push(Bytes::from_static(b"b")).unwrap() else {
        panic!("incomplete after two of two buffers");
    };
    assert_eq!(packet.id, Some(1));
    assert_eq!(packet.data, array(vec!["e".into(), bin(b"a"), bin(b"b")]));
}

#[test]
fn namespace_may_end_the_packet_without_comma() {
    assert_eq!(
        complete("0/custom").unwrap(),
        packet(Kind::Connect, "/custom", None, None)
    );
    assert_eq!(
        complete("1/custom").unwrap(),
        packet(Kind::Disconnect, "/custom", None, None)
    );
}

#[test]
fn connect_with_auth_payload() {
    let got = complete(r#"0/custom,{"token":"abc"}"#).unwrap();
    assert_eq!(
        got,
        packet(
            Kind::Connect,
            "/custom",
            None,
            data(json!({"token": "abc"}))
        )
    );
    let got = complete(r#"0{"token":"123"}"#).unwrap();
    assert_eq!(
        got,
        packet(Kind::Connect, "/", None, data(json!({"token": "123"})))
    );
}

#[test]
fn event_with_ack_id_and_mixed_arguments() {
    let got = complete(r#"2456["message-with-ack",1,"2",{"3":[false]}]"#).unwrap();
    let want = data(json!(["message-with-ack", 1, "2", {"3": [false]}]));
    assert_eq!(got, packet(Kind::Event, "/", Some(456), want));
}

#[test]
fn explicit_main_namespace_and_leading_zeros_decode_to_the_same_packet() {
    let want = packet(Kind::Event, "/", Some(7), data(json!(["e"])));
    assert_eq!(complete(r#"2/,7["e"]"#).unwrap(), want);
    assert_eq!(complete(r#"2007["e"]"#).unwrap(), want);
    assert_eq!(encoded_text(&want), r#"27["e"]"#);
}

#[test]
fn largest_ack_id_fits() {
    let text = r#"218446744073709551615["e"]"#;
    assert_eq!(complete(text).unwrap().id, Some(u64::MAX));
    assert_eq!(encoded_text(&complete(text).unwrap()), text);
}

#[test]
fn every_kind_round_trips() {
    let cases = [
        packet(Kind::Connect, "/", None, None),
        packet(
            Kind::Connect,
            "/a/b",
            None,
            data(json!({"k": [1, null, 2.5, "€"]})),
        ),
        packet(Kind::Disconnect, "/x", None, None),
        packet(
            Kind::Event,
            "/",
            None,
            data(json!(["e", {"nested": {"deep": true}}])),
        ),
        packet(Kind::Event, "/", Some(0), data(json!(["e"]))),
        packet(Kind::Ack, "/n", Some(u64::MAX), data(json!([]))),
        packet(
            Kind::ConnectError,
            "/n",
            None,
            data(json!({"message": "no", "data": {"code": 1}})),
        ),
        packet(
            Kind::BinaryEvent,
            "/",
            Some(3),
            array(vec!["b".into(), bin(b""), bin(b"\x00")]),
        ),
        packet(
            Kind::BinaryAck,
            "/n",
            Some(9),
            array(vec![Value::Array(vec![bin(b"x")])]),
        ),
    ];
    for original in cases {
        let encoded = encode(&original).unwrap();
        let buffers: Vec<&[u8]> = encoded.attachments.iter().map(|b| &b[..]).collect();
        assert_eq!(reassemble(&encoded.text, &buffers).unwrap(), original);
    }
}

#[test]
fn encode_picks_the_binary_kind_from_the_data() {
    let plain = packet(Kind::BinaryEvent, "/", None, data(json!(["e"])));
    assert_eq!(encoded_text(&plain), r#"2["e"]"#);
    let with_binary = packet(Kind::Ack, "/", Some(1), array(vec![bin(b"z")]));
    assert_eq!(
        encode(&with_binary).unwrap().text,
        r#"61-1[{"_placeholder":true,"num":0}]"#
    );
}

#[test]
fn placeholder_lookalike_in_plain_event_is_data() {
    let text = r#"2["e",{"_placeholder":true,"num":0}]"#;
    let got = complete(text).unwrap();
    assert_eq!(
        got.data,
        data(json!(["e", {"_placeholder": true, "num": 0}]))
    );
    assert_eq!(encoded_text(&got), text);
}

#[test]
fn empty_and_unknown_types_are_refused() {
    assert!(matches!(complete(""), Err(Error::Empty)));
    assert!(matches!(complete("7"), Err(Error::UnknownType('7'))));
    assert!(matches!(complete("abc"), Err(Error::UnknownType('a'))));
    assert!(matches!(complete("٣[]"), Err(Error::UnknownType('٣'))));
}

#[test]
fn bad_attachment_counts_are_refused() {
    for text in [
        r#"5["e"]"#,
        r#"5-["e"]"#,
        r#"51["e",{"_placeholder":true,"num":0}]"#,
        r#"50-["e"]"#,
        r#"5x-["e"]"#,
        r#"599999999999999999999999-["e"]"#,
    ] {
        assert!(
            matches!(complete(text), Err(Error::BadAttachmentCount)),
            "{text:?}"
        );
    }
}

#[test]
fn too_many_attachments_are_refused_before_buffering() {
    let got = decode(r#"511-["e"]"#, MAX_ATTACHMENTS);
    assert!(matches!(
        got,
        Err(Error::TooManyAttachments { count: 11, max: 10 })
    ));
    let placeholders: Vec<_> = (0..3)
        .map(|num| json!({"_placeholder": true, "num": num}))
        .collect();
    let text = format!(
        "53-{}",
        json!(["e", placeholders[0], placeholders[1], placeholders[2]])
    );
    assert!(matches!(
        decode(&text, 2),
        Err(Error::TooManyAttachments { count: 3, max: 2 })
    ));
    assert!(matches!(decode(&text, 3), Ok(Decoded::Partial(_))));
}

#[test]
fn placeholder_out_of_range_is_refused() {
    let text = r#"51-["e",{"_placeholder":true,"num":1}]"#;
    let got = complete(text);
    assert!(matches!(
        got,
        Err(Error::PlaceholderOutOfRange { num: 1, count: 1 })
    ));
    let huge = r#"51-["e",{"_placeholder":true,"num":18446744073709551615}]"#;
    assert!(matches!(
        complete(huge),
        Err(Error::PlaceholderOutOfRange { .. })
    ));
}

#[test]
fn attachment_count_must_match_the_placeholders() {
    let fewer = r#"52-["e",{"_placeholder":true,"num":0}]"#;
    let got = complete(fewer);
    assert!(matches!(
        got,
        Err(Error::AttachmentMismatch {
            placeholders: 1,
            count: 2
        })
    ));
    let none = r#"51-["e"]"#;
    let got = complete(none);
    assert!(matches!(
        got,
        Err(Error::AttachmentMismatch {
            placeholders: 0,
            count: 1
        })
    ));
    let more = r#"51-["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]"#;
    assert!(matches!(
        complete(more),
        Err(Error::AttachmentMismatch { .. })
    ));
}

#[test]
fn duplicate_placeholder_is_refused() {
    let text = r#"52-["e",{"_placeholder":true,"num":1},{"_placeholder":true,"num":1}]"#;
    assert!(matches!(
        complete(text),
        Err(Error::DuplicatePlaceholder(1))
    ));
}

#[test]
fn malformed_placeholders_are_refused() {
    for placeholder in [
        r#"{"_placeholder":true}"#,
        r#"{"_placeholder":true,"num":-1}"#,
        r#"{"_placeholder":true,"num":0.5}"#,
        r#"{"_placeholder":true,"num":"0"}"#,
        r#"{"_placeholder":true,"num":0,"extra":1}"#,
    ] {
        let text = format!(r#"51-["e",{placeholder}]"#);
        assert!(
            matches!(complete(&text), Err(Error::BadPlaceholder)),
            "{text}"
        );
    }
}

#[test]
fn truncated_or_invalid_json_is_refused() {
    for text in [
        r#"2["foo""#,
        r#"2["foo",]"#,
        r#"0{"token":"#,
        r#"2["foo"]x"#,
        r#"2abc["message-with-ack",1]"#,
        r#"2-1["e"]"#,
        r#"2["\ud800"]"#,
    ] {
        assert!(matches!(complete(text), Err(Error::Json(_))), "{text:?}");
    }
}

#[test]
fn namespace_without_comma_is_refused() {
    for text in [
        r#"2/admin["bar"]"#,
        r#"0/admin{"token":"1"}"#,
        r#"3/admin13[]"#,
    ] {
        assert!(
            matches!(complete(text), Err(Error::NamespaceWithoutComma)),
            "{text:?}"
        );
    }
}

#[test]
fn ack_id_overflowing_u64_is_refused() {
    for text in [
        r#"218446744073709551616["e"]"#,
        r#"399999999999999999999999999[]"#,
    ] {
        assert!(matches!(complete(text), Err(Error::IdOverflow)), "{text:?}");
    }
}

#[test]
fn ids_only_on_events_and_acks() {
    assert!(matches!(
        complete("05"),
        Err(Error::UnexpectedId(Kind::Connect))
    ));
    assert!(matches!(
        complete("1/a,5"),
        Err(Error::UnexpectedId(Kind::Disconnect))
    ));
    let text = r#"47{"message":"x"}"#;
    assert!(matches!(
        complete(text),
        Err(Error::UnexpectedId(Kind::ConnectError))
    ));
    assert!(matches!(complete("3[]"), Err(Error::MissingId(Kind::Ack))));
    let text = r#"61-[{"_placeholder":true,"num":0}]"#;
    assert!(matches!(
        complete(text),
        Err(Error::MissingId(Kind::BinaryAck))
    ));
}

#[test]
fn payload_shapes_are_checked_on_decode() {
    for (text, kind) in [
        ("2", Kind::Event),
        ("2{}", Kind::Event),
        ("2[]", Kind::Event),
        ("2[1]", Kind::Event),
        ("2null", Kind::Event),
        (r#"2"e""#, Kind::Event),
        (r#"51-[{"_placeholder":true,"num":0}]"#, Kind::BinaryEvent),
        ("31", Kind::Ack),
        ("31{}", Kind::Ack),
        ("0[]", Kind::Connect),
        (r#"0"token""#, Kind::Connect),
        ("1{}", Kind::Disconnect),
        ("1/admin,[]", Kind::Disconnect),
        ("4", Kind::ConnectError),
        (r#"4"Not authorized""#, Kind::ConnectError),
    ] {
        let got = complete(text);
        assert!(
            matches!(got, Err(Error::BadPayload { kind: k, .. }) if k == kind),
            "{text:?}: {got:?}"
        );
    }
}

#[test]
fn payload_shapes_are_checked_on_encode() {
    let bad = [
        packet(Kind::Event, "/", None, None),
        packet(Kind::Event, "/", None, data(json!([]))),
        packet(Kind::Event, "/", None, array(vec![bin(b"name")])),
        packet(Kind::Ack, "/", Some(1), data(json!({}))),
        packet(Kind::Connect, "/", None, data(json!(["x"]))),
        packet(Kind::Disconnect, "/", None, data(json!({}))),
        packet(Kind::ConnectError, "/", None, None),
    ];
    for packet in bad {
        assert!(
            matches!(encode(&packet), Err(Error::BadPayload { .. })),
            "{packet:?}"
        );
    }
}

#[test]
fn bad_namespaces_are_refused_on_encode() {
    for namespace in ["", "admin", "/a,b"] {
        let event = packet(Kind::Event, namespace, None, data(json!(["e"])));
        assert!(
            matches!(encode(&event), Err(Error::BadNamespace)),
            "{namespace:?}"
        );
    }
}

#[test]
fn ids_are_checked_on_encode() {
    let connect = packet(Kind::Connect, "/", Some(1), None);
    assert!(matches!(
        encode(&connect),
        Err(Error::UnexpectedId(Kind::Connect))
    ));
    let ack = packet(Kind::Ack, "/", None, data(json!([])));
    assert!(matches!(encode(&ack), Err(Error::MissingId(Kind::Ack))));
}

#[test]
fn binary_only_in_events_and_acks() {
    let mut auth = BTreeMap::new();
    auth.insert("key".to_owned(), bin(b"k"));
    let connect = packet(Kind::Connect, "/", None, Some(Value::Object(auth)));
    assert!(matches!(
        encode(&connect),
        Err(Error::BinaryNotAllowed(Kind::Connect))
    ));
}

#[test]
fn placeholder_lookalike_beside_binary_is_refused_on_encode() {
    let lookalike = Value::from(json!({"_placeholder": true, "num": 0}));
    let event = packet(
        Kind::Event,
        "/",
        None,
        array(vec!["e".into(), lookalike, bin(b"x")]),
    );
    assert!(matches!(encode(&event), Err(Error::BadPlaceholder)));
}

#[test]
fn kind_codes_round_trip() {
    for code in 0..=6 {
        assert_eq!(Kind::from_code(code).map(Kind::code), Some(code));
    }
    assert_eq!(Kind::from_code(7), None);
    assert!(Kind::BinaryAck.is_binary() && !Kind::Ack.is_binary());
}
