//! Engine.IO v4 / Socket.IO v5 text frames, as they travel over a WebSocket.
//!
//! Only what the generator needs: the default namespace `/`, text (not
//! binary) packets.
//!
//! | Frame | Meaning |
//! |---|---|
//! | `0{"sid":..,"pingInterval":..}` | Engine.IO open (server → client) |
//! | `2` / `3` | Engine.IO ping (server → client) / pong (client → server) |
//! | `40{"token":".."}` | Socket.IO CONNECT with the auth payload (client → server) |
//! | `40{"sid":".."}` | CONNECT accepted (server → client) |
//! | `44{"message":"CODE: sentence"}` | CONNECT refused |
//! | `42["event",payload]`, `42<id>["event",payload]` | event, with an ack id |
//! | `43<id>[payload]` | ack reply |

use serde_json::Value;

/// A decoded frame from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// Engine.IO open.
    Open {
        /// The Engine.IO session id.
        sid: String,
        /// The server's ping interval, in ms (25 000 when not given).
        ping_interval_ms: u64,
    },
    /// Engine.IO close.
    Close,
    /// Engine.IO ping: answer with [`PONG`].
    Ping,
    /// Engine.IO pong, noop, upgrade: nothing to do.
    Noop,
    /// Socket.IO CONNECT accepted.
    Connect {
        /// The Socket.IO session id.
        sid: String,
    },
    /// Socket.IO CONNECT refused with `message` (`CODE: sentence`).
    ConnectError {
        /// The refusal message, `CODE: sentence` (see [`error_code`]).
        message: String,
    },
    /// Socket.IO DISCONNECT (the server ended the namespace).
    Disconnect,
    /// An event from the server; `data` is its first argument (`Null` when none).
    Event {
        /// The event name.
        name: String,
        /// Its first argument; `Null` when it has none.
        data: Value,
        /// The ack id, when the server asks for a reply.
        ack: Option<u64>,
    },
    /// The reply to an event we sent with ack id `id`; `data` is its first argument.
    Ack {
        /// The ack id of the event it answers.
        id: u64,
        /// The reply's first argument; `Null` when it has none.
        data: Value,
    },
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "protocol error: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(msg.into()))
}

/// The Engine.IO pong frame.
pub const PONG: &str = "3";

/// The path and query of the WebSocket transport.
pub const WS_PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// `40{auth}`: Socket.IO CONNECT to `/` with an auth payload.
pub fn connect(auth: &Value) -> String {
    format!("40{auth}")
}

/// The auth payload `{"token": token}`.
pub fn token_auth(token: &str) -> Value {
    serde_json::json!({ "token": token })
}

/// `42["name",data]`, or `42<id>["name",data]` with an ack id.
pub fn event(name: &str, data: &Value, ack: Option<u64>) -> String {
    let name = Value::from(name);
    match ack {
        Some(id) => format!("42{id}[{name},{data}]"),
        None => format!("42[{name},{data}]"),
    }
}

/// `43<id>[data]`: an ack reply (the server asked for one).
pub fn ack(id: u64, data: &Value) -> String {
    format!("43{id}[{data}]")
}

/// The code of a refusal message: the text before the first `:`, trimmed;
/// the whole message when it has no `:` (free-text errors).
pub fn error_code(message: &str) -> &str {
    message.split(':').next().unwrap_or(message).trim()
}

/// Decodes one text frame.
pub fn parse(frame: &str) -> Result<Inbound, ProtocolError> {
    let mut chars = frame.chars();
    let Some(engine) = chars.next() else {
        return err("empty frame");
    };
    let rest = chars.as_str();
    match engine {
        '0' => parse_open(rest),
        '1' => Ok(Inbound::Close),
        '2' => Ok(Inbound::Ping),
        '3' | '5' | '6' => Ok(Inbound::Noop),
        '4' => parse_socket(rest),
        other => err(format!("unknown engine.io packet type {other:?}")),
    }
}

fn parse_open(json: &str) -> Result<Inbound, ProtocolError> {
    let v: Value =
        serde_json::from_str(json).map_err(|e| ProtocolError(format!("open packet: {e}")))?;
    let sid = v["sid"]
        .as_str()
        .ok_or_else(|| ProtocolError("open packet without sid".into()))?;
    Ok(Inbound::Open {
        sid: sid.to_owned(),
        ping_interval_ms: v["pingInterval"].as_u64().unwrap_or(25_000),
    })
}

fn parse_socket(s: &str) -> Result<Inbound, ProtocolError> {
    let mut chars = s.chars();
    let Some(kind) = chars.next() else {
        return err("empty socket.io packet");
    };
    let mut rest = chars.as_str();
    if rest.starts_with('/') {
        // `/nsp,` prefix: only the default namespace is spoken here.
        let (nsp, after) = rest
            .split_once(',')
            .ok_or_else(|| ProtocolError("namespace without ','".into()))?;
        if nsp != "/" {
            return err(format!("packet for namespace {nsp}"));
        }
        rest = after;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (id, json) = rest.split_at(digits);
    let id = if id.is_empty() {
        None
    } else {
        Some(
            id.parse::<u64>()
                .map_err(|_| ProtocolError(format!("ack id {id}")))?,
        )
    };
    let payload = || -> Result<Value, ProtocolError> {
        serde_json::from_str(json).map_err(|e| ProtocolError(format!("payload: {e}")))
    };
    match kind {
        '0' => {
            let v = payload()?;
            let sid = v["sid"]
                .as_str()
                .ok_or_else(|| ProtocolError("connect without sid".into()))?;
            Ok(Inbound::Connect {
                sid: sid.to_owned(),
            })
        }
        '1' => Ok(Inbound::Disconnect),
        '2' => {
            let Value::Array(mut items) = payload()? else {
                return err("event payload is not an array");
            };
            if items.is_empty() {
                return err("event without a name");
            }
            let Value::String(name) = items.remove(0) else {
                return err("event name is not a string");
            };
            let data = if items.is_empty() {
                Value::Null
            } else {
                items.swap_remove(0)
            };
            Ok(Inbound::Event {
                name,
                data,
                ack: id,
            })
        }
        '3' => {
            let id = id.ok_or_else(|| ProtocolError("ack without an id".into()))?;
            let Value::Array(mut items) = payload()? else {
                return err("ack payload is not an array");
            };
            let data = if items.is_empty() {
                Value::Null
            } else {
                items.swap_remove(0)
            };
            Ok(Inbound::Ack { id, data })
        }
        '4' => {
            let v = payload()?;
            let message = match &v {
                Value::String(s) => s.clone(),
                _ => v["message"].as_str().unwrap_or_default().to_owned(),
            };
            Ok(Inbound::ConnectError { message })
        }
        other => err(format!("unsupported socket.io packet type {other:?}")),
    }
}

/// About `bytes` of text like a chat line or a notification: words of one
/// small vocabulary in an order that `seed` sets (each message of a run
/// its own, so that no message repeats the one before: a compressor that
/// keeps its context gets the vocabulary, not whole repeats). The same
/// for the same arguments. Empty for 0.
pub fn filler(bytes: usize, seed: u64) -> String {
    const WORDS: [&str; 24] = [
        "the", "release", "is", "ready", "for", "review", "and", "we", "ship", "it", "after",
        "standup", "alice", "bob", "thanks", "see", "you", "at", "noon", "build", "42", "passed",
        "on", "main",
    ];
    let mut out = String::with_capacity(bytes + 8);
    let mut state: u32 = 0x9e37_79b9 ^ (seed as u32).wrapping_mul(2_654_435_761);
    while out.len() < bytes {
        // A small LCG: varied, but the same text every run.
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        out.push_str(WORDS[(state >> 16) as usize % WORDS.len()]);
        out.push(' ');
    }
    out.truncate(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_client_frames() {
        assert_eq!(connect(&token_auth("abc")), r#"40{"token":"abc"}"#);
        assert_eq!(
            event("chat", &json!({"n":1}), None),
            r#"42["chat",{"n":1}]"#
        );
        assert_eq!(
            event("chat", &json!({"n":1}), Some(17)),
            r#"4217["chat",{"n":1}]"#
        );
        assert_eq!(event("a\"b", &json!(null), Some(0)), r#"420["a\"b",null]"#);
        assert_eq!(ack(5, &json!("x")), r#"435["x"]"#);
        assert_eq!(PONG, "3");
    }

    #[test]
    fn decodes_engine_frames() {
        assert_eq!(
            parse(r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#)
                .unwrap(),
            Inbound::Open {
                sid: "abc".into(),
                ping_interval_ms: 25000
            }
        );
        assert_eq!(parse("2").unwrap(), Inbound::Ping);
        assert_eq!(parse("3").unwrap(), Inbound::Noop);
        assert_eq!(parse("6").unwrap(), Inbound::Noop);
        assert_eq!(parse("1").unwrap(), Inbound::Close);
        assert!(parse("").is_err());
        assert!(parse("9").is_err());
        assert!(parse("0{}").is_err());
    }

    #[test]
    fn decodes_connect_and_refusal() {
        assert_eq!(
            parse(r#"40{"sid":"XTYhJQxwfxZfVhwR"}"#).unwrap(),
            Inbound::Connect {
                sid: "XTYhJQxwfxZfVhwR".into()
            }
        );
        assert_eq!(
            parse(r#"40/,{"sid":"s1"}"#).unwrap(),
            Inbound::Connect { sid: "s1".into() }
        );
        let refused = parse(r#"44{"message":"TOKEN_EXPIRED: token expired 3 s ago"}"#).unwrap();
        let Inbound::ConnectError { message } = refused else {
            panic!("{refused:?}")
        };
        assert_eq!(error_code(&message), "TOKEN_EXPIRED");
        // Free-text refusals (a typical Node server) have no code: the whole text counts.
        assert_eq!(error_code("jwt expired"), "jwt expired");
        assert_eq!(error_code(""), "");
        assert!(parse(r#"40/admin,{"sid":"s1"}"#).is_err());
        assert_eq!(parse("41").unwrap(), Inbound::Disconnect);
    }

    #[test]
    fn decodes_events_and_acks() {
        assert_eq!(
            parse(r#"42["news",{"code":"TOKEN_REVOKED","message":"token revoked"}]"#).unwrap(),
            Inbound::Event {
                name: "news".into(),
                data: json!({"code":"TOKEN_REVOKED","message":"token revoked"}),
                ack: None
            }
        );
        assert_eq!(
            parse(r#"4212["ask"]"#).unwrap(),
            Inbound::Event {
                name: "ask".into(),
                data: Value::Null,
                ack: Some(12)
            }
        );
        assert_eq!(
            parse(r#"43123[{"ok":true,"expiresAt":1795264592}]"#).unwrap(),
            Inbound::Ack {
                id: 123,
                data: json!({"ok":true,"expiresAt":1795264592})
            }
        );
        assert_eq!(
            parse("437[]").unwrap(),
            Inbound::Ack {
                id: 7,
                data: Value::Null
            }
        );
        assert!(parse(r#"43["no id"]"#).is_err());
        assert!(parse(r#"42{"not":"array"}"#).is_err());
        assert!(parse(r#"42[1]"#).is_err());
        assert!(parse("42[").is_err());
    }

    #[test]
    fn round_trips_what_a_server_would_echo() {
        let sent = event("chat", &json!({"n": 41}), Some(3));
        // A server acks with the same id and the payload.
        let reply = format!("43{}", &sent[2..].replace(r#""chat","#, ""));
        assert_eq!(
            parse(&reply).unwrap(),
            Inbound::Ack {
                id: 3,
                data: json!({"n": 41})
            }
        );
    }
}
