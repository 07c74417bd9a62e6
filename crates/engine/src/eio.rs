//! Engine.IO v4 packets and their two encodings.
//!
//! A packet is a type digit followed by an optional payload. Over WebSocket
//! each packet is its own frame: a text frame holds `<type>[<data>]`, and a
//! binary frame is a binary message as is, with no type byte (v4 dropped
//! it). Over HTTP long-polling a body holds one or more packets joined by
//! the record separator `\x1e`, a binary message written as `b` followed by
//! its bytes in standard base64 with padding.
//!
//! Decoding is strict: a packet type that takes no payload (close, upgrade,
//! noop) refuses one, and a ping or pong carries nothing or `probe`. Every
//! decoder takes the session's `maxPayload` and refuses a larger input
//! before looking at it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

#[cfg(test)]
mod tests;

/// The record separator between the packets of a long-polling payload.
pub const SEPARATOR: char = '\u{1e}';

/// The payload of the ping and pong packets that probe a WebSocket upgrade.
const PROBE: &str = "probe";

/// One Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `0`: the handshake, whose payload is the JSON text of the session
    /// parameters (`sid`, `upgrades`, `pingInterval`, ...). It is kept as
    /// text: building and reading it belongs to the session layer.
    Open(String),
    /// `1`: the transport can be closed.
    Close,
    /// `2`: a heartbeat ping.
    Ping,
    /// `3`: the answer to [`Packet::Ping`].
    Pong,
    /// `2probe`: the client's probe of a new WebSocket during an upgrade.
    PingProbe,
    /// `3probe`: the server's answer to [`Packet::PingProbe`].
    PongProbe,
    /// `4`: a text message (possibly empty).
    Message(String),
    /// A binary message: a binary WebSocket frame, or `b<base64>` in a
    /// long-polling payload.
    Binary(Bytes),
    /// `5`: the client completes an upgrade.
    Upgrade,
    /// `6`: nothing; ends a pending long-polling request during an upgrade.
    Noop,
}

/// One WebSocket frame carrying one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Bytes),
}

/// Why an input is not a valid Engine.IO packet or payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input is larger than the session's `maxPayload`.
    #[error("{len} bytes exceed the maximum payload of {max}")]
    TooLarge {
        /// The input's size in bytes.
        len: usize,
        /// The bound it exceeds.
        max: usize,
    },
    /// A packet has no type: an empty frame, body, or payload segment.
    #[error("empty packet")]
    Empty,
    /// The first character is not a known packet type.
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    /// An open packet without its handshake payload.
    #[error("open packet without a handshake")]
    MissingHandshake,
    /// A close, upgrade or noop packet with a payload.
    #[error("packet type {0:?} takes no payload")]
    UnexpectedPayload(char),
    /// A ping or pong whose payload is neither empty nor `probe`.
    #[error("ping or pong payload other than \"probe\"")]
    BadProbe,
    /// A long-polling body that is not UTF-8.
    #[error("payload is not UTF-8")]
    NotUtf8,
    /// A `b` packet whose payload is not canonical padded base64.
    #[error("invalid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// A text to encode into a long-polling payload holds the separator,
    /// which would split it into other packets on the receiving side.
    #[error("text contains the record separator")]
    SeparatorInText,
}

/// Decodes one WebSocket text frame.
pub fn decode_text(text: &str, max_payload: usize) -> Result<Packet, Error> {
    check_size(text.len(), max_payload)?;
    parse_text(text)
}

/// Decodes one WebSocket binary frame: always a binary message.
pub fn decode_binary(data: Bytes, max_payload: usize) -> Result<Packet, Error> {
    check_size(data.len(), max_payload)?;
    Ok(Packet::Binary(data))
}

/// Encodes a packet as one WebSocket frame: binary for a binary message,
/// text for everything else.
pub fn encode_frame(packet: Packet) -> Frame {
    match packet {
        Packet::Binary(data) => Frame::Binary(data),
        other => {
            let mut text = String::new();
            push_packet(&other, &mut text);
            Frame::Text(text)
        }
    }
}

/// Decodes a long-polling request body into its packets, in order.
///
/// An empty body, or an empty segment between two separators, is an
/// error: the protocol has no empty packet.
pub fn decode_payload(body: &[u8], max_payload: usize) -> Result<Vec<Packet>, Error> {
    check_size(body.len(), max_payload)?;
    let text = std::str::from_utf8(body).map_err(|_| Error::NotUtf8)?;
    text.split(SEPARATOR).map(parse_segment).collect()
}

/// Encodes packets into a long-polling response body.
///
/// An empty list gives an empty body, which [`decode_payload`] refuses:
/// the transport answers a poll only once it has a packet to send.
pub fn encode_payload(packets: &[Packet]) -> Result<String, Error> {
    let mut body = String::new();
    for (index, packet) in packets.iter().enumerate() {
        if text_of(packet).is_some_and(|text| text.contains(SEPARATOR)) {
            return Err(Error::SeparatorInText);
        }
        if index > 0 {
            body.push(SEPARATOR);
        }
        push_packet(packet, &mut body);
    }
    Ok(body)
}

fn check_size(len: usize, max: usize) -> Result<(), Error> {
    if len > max {
        return Err(Error::TooLarge { len, max });
    }
    Ok(())
}

/// Parses one segment of a long-polling body, where binary is base64.
fn parse_segment(segment: &str) -> Result<Packet, Error> {
    match segment.strip_prefix('b') {
        Some(encoded) => Ok(Packet::Binary(STANDARD.decode(encoded)?.into())),
        None => parse_text(segment),
    }
}

/// Parses `<type>[<data>]`.
fn parse_text(text: &str) -> Result<Packet, Error> {
    let mut chars = text.chars();
    let kind = chars.next().ok_or(Error::Empty)?;
    let data = chars.as_str();
    match kind {
        '0' if data.is_empty() => Err(Error::MissingHandshake),
        '0' => Ok(Packet::Open(data.to_owned())),
        '1' => bare(kind, data, Packet::Close),
        '2' => heartbeat(data, Packet::Ping, Packet::PingProbe),
        '3' => heartbeat(data, Packet::Pong, Packet::PongProbe),
        '4' => Ok(Packet::Message(data.to_owned())),
        '5' => bare(kind, data, Packet::Upgrade),
        '6' => bare(kind, data, Packet::Noop),
        other => Err(Error::UnknownType(other)),
    }
}

fn bare(kind: char, data: &str, packet: Packet) -> Result<Packet, Error> {
    if !data.is_empty() {
        return Err(Error::UnexpectedPayload(kind));
    }
    Ok(packet)
}

fn heartbeat(data: &str, plain: Packet, probe: Packet) -> Result<Packet, Error> {
    match data {
        "" => Ok(plain),
        PROBE => Ok(probe),
        _ => Err(Error::BadProbe),
    }
}

/// The text a packet carries, if any.
fn text_of(packet: &Packet) -> Option<&str> {
    match packet {
        Packet::Open(text) | Packet::Message(text) => Some(text),
        _ => None,
    }
}

/// Appends the text form of a packet; binary as `b<base64>`, the form of
/// a long-polling payload (a WebSocket frame sends it raw instead).
fn push_packet(packet: &Packet, out: &mut String) {
    match packet {
        Packet::Open(json) => {
            out.push('0');
            out.push_str(json);
        }
        Packet::Close => out.push('1'),
        Packet::Ping => out.push('2'),
        Packet::Pong => out.push('3'),
        Packet::PingProbe => out.push_str("2probe"),
        Packet::PongProbe => out.push_str("3probe"),
        Packet::Message(text) => {
            out.push('4');
            out.push_str(text);
        }
        Packet::Binary(data) => {
            out.push('b');
            STANDARD.encode_string(data, out);
        }
        Packet::Upgrade => out.push('5'),
        Packet::Noop => out.push('6'),
    }
}
