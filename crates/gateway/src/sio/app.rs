//! Every other client event: forwarded to the app's backend, whose reply
//! the node applies and whose ack goes back to the client (see
//! [`sockgate_core::hooks`]). Without a backend (or a route for the event),
//! the ack is `{ ok: false, code: "UNKNOWN_EVENT" }`.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sockgate_core::Conn;
use sockgate_engine::io::Ack;
use sockgate_engine::sio::Value;

use super::extract::{Authed, reply};
use crate::Gateway;

/// Sends `event` with `args` to the app and answers `ack` with its reply.
/// A binary argument (a `Buffer`, an `ArrayBuffer`), wherever it stands,
/// goes as `{ "$binary": "<base64>" }`.
pub(super) async fn forward(
    gw: &Gateway,
    authed: Authed,
    event: &str,
    args: Vec<Value>,
    ack: Option<Ack>,
) {
    let args: Vec<serde_json::Value> = args.into_iter().map(to_json).collect();
    let args = serde_json::value::to_raw_value(&args).expect("JSON values serialize");
    let conn: Conn = Arc::new(authed.conn());
    let answer = gw.node.call(&conn, &authed.session, event, &args).await;
    reply(ack, &answer);
}

/// An argument as JSON, binary buffers as `{ "$binary": "<base64>" }`.
fn to_json(value: Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        Value::Null => Json::Null,
        Value::Bool(flag) => Json::Bool(flag),
        Value::Number(number) => Json::Number(number),
        Value::String(text) => Json::String(text),
        Value::Array(items) => Json::Array(items.into_iter().map(to_json).collect()),
        Value::Object(map) => Json::Object(map.into_iter().map(|(k, v)| (k, to_json(v))).collect()),
        Value::Binary(bytes) => serde_json::json!({ "$binary": STANDARD.encode(&bytes) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_arguments_go_as_base64_wherever_they_stand() {
        let arg = Value::Object(
            [
                (
                    "file".to_owned(),
                    Value::Binary(vec![0, 255, b'h', b'i'].into()),
                ),
                ("n".to_owned(), Value::from(serde_json::json!(1))),
            ]
            .into(),
        );
        assert_eq!(
            to_json(Value::Array(vec![arg])),
            serde_json::json!([{ "file": { "$binary": "AP9oaQ==" }, "n": 1 }])
        );
    }
}
