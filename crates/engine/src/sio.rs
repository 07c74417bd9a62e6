//! Socket.IO v5 packets, carried in Engine.IO messages.
//!
//! The text form is
//! `<type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]`: the
//! attachment count only for the binary kinds, the namespace only when it
//! is not the main one (`/`). A binary packet's buffers leave the JSON,
//! which keeps a placeholder `{"_placeholder":true,"num":N}` where each
//! stood, and follow the text as that many binary Engine.IO messages.
//! [`decode`] reads the text and, for a binary packet, hands back a
//! [`Partial`] that takes the buffers one by one; [`encode`] does the
//! reverse.
//!
//! Both directions check the rules of the protocol: the namespace starts
//! with `/`; an EVENT's payload is a non-empty array whose first element
//! is the event name; an ACK's is an array and it carries an id; a CONNECT
//! carries nothing or an object; a CONNECT_ERROR an object; a DISCONNECT
//! nothing; and only events and acks carry an id or binary data.

use std::collections::BTreeMap;

use bytes::Bytes;

#[cfg(test)]
mod tests;

/// The main namespace, the one the text form leaves out.
pub const MAIN_NAMESPACE: &str = "/";

/// The type of a Socket.IO packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `0`: connect to a namespace (client), or accept it (server).
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2`: an event.
    Event,
    /// `3`: the acknowledgement of an event.
    Ack,
    /// `4`: the server refuses a connection to a namespace.
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an acknowledgement with binary attachments.
    BinaryAck,
}

impl Kind {
    /// The type's number on the wire.
    pub fn code(self) -> u8 {
        match self {
            Kind::Connect => 0,
            Kind::Disconnect => 1,
            Kind::Event => 2,
            Kind::Ack => 3,
            Kind::ConnectError => 4,
            Kind::BinaryEvent => 5,
            Kind::BinaryAck => 6,
        }
    }

    /// The type with this number, if any.
    pub fn from_code(code: u8) -> Option<Kind> {
        Some(match code {
            0 => Kind::Connect,
            1 => Kind::Disconnect,
            2 => Kind::Event,
            3 => Kind::Ack,
            4 => Kind::ConnectError,
            5 => Kind::BinaryEvent,
            6 => Kind::BinaryAck,
            _ => return None,
        })
    }

    /// Whether the text form has an attachment count.
    pub fn is_binary(self) -> bool {
        matches!(self, Kind::BinaryEvent | Kind::BinaryAck)
    }
}

/// A payload: JSON with binary buffers where they stand in the data.
///
/// Binary is a variant of the tree, rather than the wire's JSON with
/// placeholder objects beside a list of buffers, so that a handler never
/// sees the wire's numbering, and a placeholder without its buffer or a
/// buffer without its placeholder cannot be built: the encoder numbers the
/// placeholders itself, and the decoder checks the numbering once, when it
/// puts each buffer back in place. Objects are sorted maps, the order
/// `serde_json` gives them in this workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// JSON `null`.
    Null,
    /// A JSON boolean.
    Bool(bool),
    /// A JSON number.
    Number(serde_json::Number),
    /// A JSON string.
    String(String),
    /// A JSON array.
    Array(Vec<Value>),
    /// A JSON object.
    Object(BTreeMap<String, Value>),
    /// A binary buffer, sent as an attachment.
    Binary(Bytes),
}

impl Value {
    /// Whether a binary buffer stands anywhere in the value.
    pub fn has_binary(&self) -> bool {
        match self {
            Value::Binary(_) => true,
            Value::Array(items) => items.iter().any(Value::has_binary),
            Value::Object(map) => map.values().any(Value::has_binary),
            _ => false,
        }
    }
}

impl From<serde_json::Value> for Value {
    fn from(value: serde_json::Value) -> Self {
        use serde_json::Value as Json;
        match value {
            Json::Null => Value::Null,
            Json::Bool(flag) => Value::Bool(flag),
            Json::Number(number) => Value::Number(number),
            Json::String(text) => Value::String(text),
            Json::Array(items) => Value::Array(items.into_iter().map(Value::from).collect()),
            Json::Object(map) => {
                Value::Object(map.into_iter().map(|(k, v)| (k, Value::from(v))).collect())
            }
        }
    }
}

impl Value {
    /// The value as JSON, unless a binary buffer stands in it: binary is
    /// never spelled out as JSON (an array of its bytes made one JSON
    /// number of each byte, 80 ms of CPU for one 1.6 KB event).
    pub fn into_json(self) -> Option<serde_json::Value> {
        use serde_json::Value as Json;
        Some(match self {
            Value::Null => Json::Null,
            Value::Bool(flag) => Json::Bool(flag),
            Value::Number(number) => Json::Number(number),
            Value::String(text) => Json::String(text),
            Value::Array(items) => Json::Array(
                items
                    .into_iter()
                    .map(Value::into_json)
                    .collect::<Option<_>>()?,
            ),
            Value::Object(map) => Json::Object(
                map.into_iter()
                    .map(|(k, v)| Some((k, v.into_json()?)))
                    .collect::<Option<_>>()?,
            ),
            Value::Binary(_) => return None,
        })
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::String(text.to_owned())
    }
}

impl From<Bytes> for Value {
    fn from(data: Bytes) -> Self {
        Value::Binary(data)
    }
}

/// One Socket.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The packet's type. [`encode`] writes EVENT or BINARY_EVENT (ACK or
    /// BINARY_ACK) after whether the data holds binary, whichever of the
    /// two is set here.
    pub kind: Kind,
    /// The namespace, `/` for the main one.
    pub namespace: String,
    /// The acknowledgement id of an event that asks for one, or of an ack.
    pub id: Option<u64>,
    /// The payload, if any.
    pub data: Option<Value>,
}

/// Why an input is not a valid Socket.IO packet, or a packet cannot be
/// encoded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An empty packet.
    #[error("empty packet")]
    Empty,
    /// The first character is not a packet type.
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    /// A binary packet without a positive `<count>-` that fits a `usize`.
    #[error("binary packet without a valid attachment count")]
    BadAttachmentCount,
    /// More attachments announced than the decoder allows.
    #[error("{count} attachments exceed the maximum of {max}")]
    TooManyAttachments {
        /// The announced count.
        count: usize,
        /// The bound it exceeds.
        max: usize,
    },
    /// A namespace followed by a payload with no comma between them.
    #[error("namespace not ended by a comma")]
    NamespaceWithoutComma,
    /// A namespace to encode that does not start with `/` or holds a comma.
    #[error("namespace must start with '/' and hold no ','")]
    BadNamespace,
    /// An ack id too large for a `u64`.
    #[error("ack id overflows u64")]
    IdOverflow,
    /// An id on a packet type that takes none.
    #[error("{0:?} packet takes no ack id")]
    UnexpectedId(Kind),
    /// An ack without its id.
    #[error("{0:?} packet needs an ack id")]
    MissingId(Kind),
    /// The payload is not JSON.
    #[error("invalid JSON payload: {0}")]
    Json(#[from] serde_json::Error),
    /// The payload has the wrong shape for the packet type.
    #[error("{kind:?} payload must be {expected}")]
    BadPayload {
        /// The packet type.
        kind: Kind,
        /// What that type takes.
        expected: &'static str,
    },
    /// An object with `"_placeholder": true` in a binary packet that is not
    /// exactly `{"_placeholder":true,"num":N}` with N a non-negative integer.
    #[error("malformed binary placeholder")]
    BadPlaceholder,
    /// A placeholder naming an attachment past the announced count.
    #[error("placeholder {num} out of range for {count} attachments")]
    PlaceholderOutOfRange {
        /// The placeholder's `num`.
        num: usize,
        /// The announced count.
        count: usize,
    },
    /// Two placeholders naming the same attachment.
    #[error("attachment {0} named by two placeholders")]
    DuplicatePlaceholder(usize),
    /// The announced count differs from the number of placeholders.
    #[error("{count} attachments announced, {placeholders} placeholders found")]
    AttachmentMismatch {
        /// The number of placeholders in the payload.
        placeholders: usize,
        /// The announced count.
        count: usize,
    },
    /// Binary data in a packet type other than an event or an ack.
    #[error("{0:?} packet cannot carry binary data")]
    BinaryNotAllowed(Kind),
}

/// What [`decode`] and [`Partial::push`] give.
#[derive(Debug)]
pub enum Decoded {
    /// A whole packet.
    Complete(Packet),
    /// A binary packet that still waits for attachments.
    Partial(Partial),
}

/// A binary packet whose text has arrived, waiting for its attachments:
/// the next [`Partial::expected`] binary Engine.IO messages of the
/// connection, in order.
#[derive(Debug)]
pub struct Partial {
    /// The packet with its placeholders still in the data, as objects.
    packet: Packet,
    count: usize,
    buffers: Vec<Bytes>,
}

impl Partial {
    /// How many attachments the packet announced.
    pub fn expected(&self) -> usize {
        self.count
    }

    /// How many attachments are still to come.
    pub fn remaining(&self) -> usize {
        self.count.saturating_sub(self.buffers.len())
    }

    /// Takes the next attachment; gives the packet once it has all of
    /// them, with each buffer where its placeholder stood.
    pub fn push(mut self, buffer: Bytes) -> Result<Decoded, Error> {
        self.buffers.push(buffer);
        if self.buffers.len() < self.count {
            return Ok(Decoded::Partial(self));
        }
        let mut packet = self.packet;
        if let Some(data) = packet.data.as_mut() {
            fill_placeholders(data, &self.buffers)?;
        }
        Ok(Decoded::Complete(packet))
    }
}

/// A packet in its wire form: the text of one Engine.IO message, then the
/// attachments, one binary Engine.IO message each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The packet's text form.
    pub text: String,
    /// The binary attachments, in placeholder order.
    pub attachments: Vec<Bytes>,
}

/// Decodes the text of a packet. A binary packet announcing more than
/// `max_attachments` attachments is refused, before any of them is
/// buffered; one whose placeholders do not name each announced attachment
/// exactly once is refused too.
pub fn decode(text: &str, max_attachments: usize) -> Result<Decoded, Error> {
    let (kind, rest) = split_kind(text)?;
    let (count, rest) = match kind.is_binary() {
        true => split_count(rest, max_attachments)?,
        false => (0, rest),
    };
    let (namespace, rest) = split_namespace(rest)?;
    let (id, rest) = split_id(rest)?;
    let data = parse_data(rest)?;
    check_id(kind, id)?;
    check_data(kind, data.as_ref())?;
    let packet = Packet {
        kind,
        namespace: namespace.to_owned(),
        id,
        data,
    };
    if count == 0 {
        return Ok(Decoded::Complete(packet));
    }
    check_placeholders(packet.data.as_ref(), count)?;
    let buffers = Vec::with_capacity(count);
    Ok(Decoded::Partial(Partial {
        packet,
        count,
        buffers,
    }))
}

/// The head of an EVENT packet: what it takes to decide about the event
/// before reading its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHead<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// The acknowledgement id, when the client asked for one.
    pub id: Option<u64>,
    /// The event's name.
    pub name: String,
}

/// Reads the head of an EVENT packet (not a binary one): its namespace, ack
/// id and name, and nothing of its arguments. The time it takes depends on
/// the name's length, not the packet's: an event a server does not handle
/// (or a client over its budget) costs no parse of its arguments.
pub fn peek_event(text: &str) -> Result<EventHead<'_>, Error> {
    use serde::Deserialize;
    let (kind, rest) = split_kind(text)?;
    let bad = Error::BadPayload {
        kind,
        expected: expected_payload(Kind::Event),
    };
    if kind != Kind::Event {
        return Err(bad);
    }
    let (namespace, rest) = split_namespace(rest)?;
    let (id, rest) = split_id(rest)?;
    let Some(rest) = rest.trim_start().strip_prefix('[') else {
        return Err(bad);
    };
    // One value from the start of the rest: serde_json reads the string
    // and stops there, the arguments after it untouched.
    let mut json = serde_json::Deserializer::from_str(rest.trim_start());
    let name = String::deserialize(&mut json).map_err(|_| bad)?;
    Ok(EventHead {
        namespace,
        id,
        name,
    })
}

/// Encodes a packet: its text, with a placeholder for each binary buffer
/// in the data, and the buffers as attachments.
pub fn encode(packet: &Packet) -> Result<Encoded, Error> {
    check_namespace(&packet.namespace)?;
    check_id(packet.kind, packet.id)?;
    check_data(packet.kind, packet.data.as_ref())?;
    let binary = packet.data.as_ref().is_some_and(Value::has_binary);
    let kind = wire_kind(packet.kind, binary)?;
    if let Some(data) = packet.data.as_ref().filter(|_| binary) {
        refuse_placeholder_objects(data)?;
    }
    let mut attachments = Vec::new();
    let json = packet
        .data
        .as_ref()
        .map(|data| to_json(data, &mut attachments));
    let mut text = String::new();
    text.push(char::from(b'0' + kind.code()));
    if kind.is_binary() {
        text.push_str(&attachments.len().to_string());
        text.push('-');
    }
    if packet.namespace != MAIN_NAMESPACE {
        text.push_str(&packet.namespace);
        text.push(',');
    }
    if let Some(id) = packet.id {
        text.push_str(&id.to_string());
    }
    if let Some(json) = json {
        text.push_str(&json.to_string());
    }
    Ok(Encoded { text, attachments })
}

fn split_kind(text: &str) -> Result<(Kind, &str), Error> {
    let mut chars = text.chars();
    let first = chars.next().ok_or(Error::Empty)?;
    let kind = first
        .to_digit(10)
        .and_then(|digit| u8::try_from(digit).ok())
        .and_then(Kind::from_code)
        .ok_or(Error::UnknownType(first))?;
    Ok((kind, chars.as_str()))
}

/// Splits `<count>-` off a binary packet.
fn split_count(rest: &str, max: usize) -> Result<(usize, &str), Error> {
    let (digits, rest) = split_digits(rest);
    let rest = rest.strip_prefix('-').ok_or(Error::BadAttachmentCount)?;
    let count: usize = digits.parse().map_err(|_| Error::BadAttachmentCount)?;
    // A binary packet without binary is never sent: the encoder writes the
    // plain kind then, so refusing it keeps the two kinds unambiguous.
    if count == 0 {
        return Err(Error::BadAttachmentCount);
    }
    if count > max {
        return Err(Error::TooManyAttachments { count, max });
    }
    Ok((count, rest))
}

/// Splits `<namespace>,` off, or gives the main namespace if there is none.
fn split_namespace(rest: &str) -> Result<(&str, &str), Error> {
    if !rest.starts_with('/') {
        return Ok((MAIN_NAMESPACE, rest));
    }
    match rest.split_once(',') {
        Some(split) => Ok(split),
        // A payload right after the namespace means a missing comma.
        None if rest.contains(['[', '{']) => Err(Error::NamespaceWithoutComma),
        // The reference clients send `0/admin` (and `1/admin`) with nothing
        // after the namespace, so it may end the packet without a comma.
        None => Ok((rest, "")),
    }
}

fn split_id(rest: &str) -> Result<(Option<u64>, &str), Error> {
    let (digits, rest) = split_digits(rest);
    if digits.is_empty() {
        return Ok((None, rest));
    }
    // Only ASCII digits are left, so the parse fails on overflow alone.
    let id = digits.parse().map_err(|_| Error::IdOverflow)?;
    Ok((Some(id), rest))
}

/// Splits `s` before its first character that is not an ASCII digit.
fn split_digits(s: &str) -> (&str, &str) {
    // `find` gives a character boundary within `s`, so this cannot panic.
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

fn parse_data(json: &str) -> Result<Option<Value>, Error> {
    if json.is_empty() {
        return Ok(None);
    }
    let value: serde_json::Value = serde_json::from_str(json)?;
    Ok(Some(value.into()))
}

fn check_namespace(namespace: &str) -> Result<(), Error> {
    // A comma inside would end the namespace early on the receiving side.
    if !namespace.starts_with('/') || namespace.contains(',') {
        return Err(Error::BadNamespace);
    }
    Ok(())
}

fn check_id(kind: Kind, id: Option<u64>) -> Result<(), Error> {
    match (kind, id) {
        (Kind::Connect | Kind::Disconnect | Kind::ConnectError, Some(_)) => {
            Err(Error::UnexpectedId(kind))
        }
        (Kind::Ack | Kind::BinaryAck, None) => Err(Error::MissingId(kind)),
        _ => Ok(()),
    }
}

fn check_data(kind: Kind, data: Option<&Value>) -> Result<(), Error> {
    let valid = match (kind, data) {
        (Kind::Connect, None | Some(Value::Object(_))) => true,
        (Kind::Disconnect, None) => true,
        (Kind::ConnectError, Some(Value::Object(_))) => true,
        (Kind::Event | Kind::BinaryEvent, Some(Value::Array(items))) => {
            matches!(items.first(), Some(Value::String(_)))
        }
        (Kind::Ack | Kind::BinaryAck, Some(Value::Array(_))) => true,
        _ => false,
    };
    if !valid {
        let expected = expected_payload(kind);
        return Err(Error::BadPayload { kind, expected });
    }
    Ok(())
}

fn expected_payload(kind: Kind) -> &'static str {
    match kind {
        Kind::Connect => "absent or an object",
        Kind::Disconnect => "absent",
        Kind::ConnectError => "an object",
        Kind::Event | Kind::BinaryEvent => "a non-empty array starting with the event name",
        Kind::Ack | Kind::BinaryAck => "an array",
    }
}

/// The kind to write, after whether the data holds binary.
fn wire_kind(kind: Kind, binary: bool) -> Result<Kind, Error> {
    match (kind, binary) {
        (Kind::Event | Kind::BinaryEvent, true) => Ok(Kind::BinaryEvent),
        (Kind::Event | Kind::BinaryEvent, false) => Ok(Kind::Event),
        (Kind::Ack | Kind::BinaryAck, true) => Ok(Kind::BinaryAck),
        (Kind::Ack | Kind::BinaryAck, false) => Ok(Kind::Ack),
        (other, true) => Err(Error::BinaryNotAllowed(other)),
        (other, false) => Ok(other),
    }
}

/// The placeholder's `num` if the object is one. Only called on binary
/// packets, where `"_placeholder": true` is reserved: an object that sets
/// it but is not exactly a placeholder is refused, not kept as data.
fn placeholder_num(map: &BTreeMap<String, Value>) -> Result<Option<usize>, Error> {
    if map.get("_placeholder") != Some(&Value::Bool(true)) {
        return Ok(None);
    }
    let num = match map.get("num") {
        Some(Value::Number(num)) if map.len() == 2 => num.as_u64(),
        _ => None,
    };
    let num = num.and_then(|num| usize::try_from(num).ok());
    num.map(Some).ok_or(Error::BadPlaceholder)
}

/// Checks that the placeholders name each of `count` attachments once.
fn check_placeholders(data: Option<&Value>, count: usize) -> Result<(), Error> {
    let mut nums = Vec::new();
    if let Some(data) = data {
        collect_placeholders(data, count, &mut nums)?;
    }
    if nums.len() != count {
        let placeholders = nums.len();
        return Err(Error::AttachmentMismatch {
            placeholders,
            count,
        });
    }
    // `count` equals the number of placeholders found, so it is bounded by
    // the input's size even when the configured maximum is not.
    let mut seen = vec![false; count];
    for num in nums {
        match seen.get_mut(num) {
            Some(slot) if !*slot => *slot = true,
            Some(_) => return Err(Error::DuplicatePlaceholder(num)),
            None => return Err(Error::PlaceholderOutOfRange { num, count }),
        }
    }
    Ok(())
}

fn collect_placeholders(value: &Value, count: usize, nums: &mut Vec<usize>) -> Result<(), Error> {
    match value {
        Value::Array(items) => items
            .iter()
            .try_for_each(|item| collect_placeholders(item, count, nums)),
        Value::Object(map) => match placeholder_num(map)? {
            Some(num) if num < count => {
                nums.push(num);
                Ok(())
            }
            Some(num) => Err(Error::PlaceholderOutOfRange { num, count }),
            None => map
                .values()
                .try_for_each(|item| collect_placeholders(item, count, nums)),
        },
        _ => Ok(()),
    }
}

/// Puts each buffer where its placeholder stands.
fn fill_placeholders(value: &mut Value, buffers: &[Bytes]) -> Result<(), Error> {
    match value {
        Value::Array(items) => items
            .iter_mut()
            .try_for_each(|item| fill_placeholders(item, buffers)),
        Value::Object(map) => match placeholder_num(map)? {
            Some(num) => {
                let count = buffers.len();
                let buffer = buffers
                    .get(num)
                    .ok_or(Error::PlaceholderOutOfRange { num, count })?;
                *value = Value::Binary(buffer.clone());
                Ok(())
            }
            None => map
                .values_mut()
                .try_for_each(|item| fill_placeholders(item, buffers)),
        },
        _ => Ok(()),
    }
}

/// Refuses data that would read back differently: in a binary packet, an
/// object of the application's with `"_placeholder": true` would be taken
/// for a placeholder by the receiver.
fn refuse_placeholder_objects(value: &Value) -> Result<(), Error> {
    match value {
        Value::Array(items) => items.iter().try_for_each(refuse_placeholder_objects),
        Value::Object(map) if map.get("_placeholder") == Some(&Value::Bool(true)) => {
            Err(Error::BadPlaceholder)
        }
        Value::Object(map) => map.values().try_for_each(refuse_placeholder_objects),
        _ => Ok(()),
    }
}

/// The JSON of a value, each buffer moved to `attachments` and replaced by
/// its placeholder.
fn to_json(value: &Value, attachments: &mut Vec<Bytes>) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        Value::Null => Json::Null,
        Value::Bool(flag) => Json::Bool(*flag),
        Value::Number(number) => Json::Number(number.clone()),
        Value::String(text) => Json::String(text.clone()),
        Value::Array(items) => Json::Array(
            items
                .iter()
                .map(|item| to_json(item, attachments))
                .collect(),
        ),
        Value::Object(map) => Json::Object(
            map.iter()
                .map(|(key, item)| (key.clone(), to_json(item, attachments)))
                .collect(),
        ),
        Value::Binary(data) => {
            let num = attachments.len();
            attachments.push(data.clone());
            placeholder(num)
        }
    }
}

fn placeholder(num: usize) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    map.insert("_placeholder".into(), serde_json::Value::Bool(true));
    map.insert("num".into(), serde_json::Value::from(num));
    serde_json::Value::Object(map)
}
