//! Every other client event: forwarded to the app's backend, whose reply
//! the node applies and whose ack goes back to the client (see
//! [`sockgate_core::hooks`]). Without a backend (or a route for the event),
//! the ack is `{ ok: false, code: "UNKNOWN_EVENT" }`.

use std::sync::Arc;

use sockgate_core::Conn;
use sockgate_engine::io::Ack;
use sockgate_engine::sio::Value;

use super::extract::{Authed, reply};
use crate::Gateway;

/// Sends `event` with `args` to the app and answers `ack` with its reply.
/// The engine takes no binary (see `server`): every argument is JSON.
pub(super) async fn forward(
    gw: &Gateway,
    authed: Authed,
    event: &str,
    args: Vec<Value>,
    ack: Option<Ack>,
) {
    let args: Vec<serde_json::Value> = args.into_iter().filter_map(Value::into_json).collect();
    let args = serde_json::value::to_raw_value(&args).expect("JSON values serialize");
    let conn: Conn = Arc::new(authed.conn());
    let answer = gw.node.call(&conn, &authed.session, event, &args).await;
    reply(ack, &answer);
}
