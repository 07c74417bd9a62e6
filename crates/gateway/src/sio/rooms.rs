//! The `room:*` events.
//!
//! - `room:join { room }` → `{ ok: true, room, members }` (`members`: how many
//!   users are in the room, counted without needing the presence right).
//! - `room:leave { room }` → `{ ok: true }`.
//! - `room:publish { room, data }` → `{ ok: true, id }`; the room's other
//!   sockets get `room:message { id, room, from, data, ts }`.
//! - `room:members { room }` → `{ ok: true, room, members: [userId] }`.
//! - `room:history { room, since?, limit? }` → `{ ok: true, room, messages,
//!   offset, epoch, complete }`.
//!
//! Errors are `{ ok: false, code, message }`. The requests and acks are
//! the protocol's (`sockgate_protocol::requests`), the rules the node's
//! ([`sockgate_core::Node::join`] and the rest); this file joins the two.

use serde::Serialize;
use sockgate_auth::AuthError;
use sockgate_engine::io::Ack;
use sockgate_protocol::requests::{
    History, Join, JoinAck, Leave, LeaveAck, Members, MembersAck, Publish, PublishAck,
};

use super::extract::{Authed, reply};
use crate::Gateway;

fn answer<T: Serialize>(ack: Option<Ack>, result: Result<T, AuthError>) {
    match result {
        Ok(v) => reply(ack, &v),
        Err(e) => reply(ack, &e.to_ack()),
    }
}

pub(super) async fn join(gw: &Gateway, authed: Authed, request: Join, ack: Option<Ack>) {
    let room = &request.room;
    let result = gw.node.join(&authed.conn(), &authed.session, room).await;
    answer(
        ack,
        result.map(|members| JoinAck {
            ok: true,
            room,
            members,
        }),
    );
}

pub(super) async fn leave(gw: &Gateway, authed: Authed, request: Leave, ack: Option<Ack>) {
    let result = gw
        .node
        .leave(&authed.conn(), &authed.session, &request.room);
    answer(ack, result.map(|()| LeaveAck { ok: true }));
}

pub(super) async fn publish(gw: &Gateway, authed: Authed, request: Publish, ack: Option<Ack>) {
    let result = async {
        // `data` is forwarded as it came; its size is its JSON text's.
        let data = request
            .data
            .as_ref()
            .map(|data| serde_json::value::to_raw_value(data).expect("JSON serializes"));
        gw.node
            .publish_from(
                &authed.conn(),
                &authed.session,
                &request.room,
                data.as_deref(),
            )
            .await
    }
    .await;
    match result {
        Ok(id) => reply(ack, &PublishAck { ok: true, id: &id }),
        Err(e) => reply(ack, &e.to_ack()),
    }
}

pub(super) async fn members(gw: &Gateway, authed: Authed, request: Members, ack: Option<Ack>) {
    let room = &request.room;
    let result = gw.node.members_for(&authed.session, room).await;
    answer(
        ack,
        result.map(|members| MembersAck {
            ok: true,
            room,
            members,
        }),
    );
}

pub(super) async fn history(gw: &Gateway, authed: Authed, request: History, ack: Option<Ack>) {
    let room = &request.room;
    let since = request.since.as_deref();
    let result = gw
        .node
        .room_history_for(&authed.session, room, since, request.limit)
        .await;
    answer(ack, result.map(|h| h.into_ack(room, Some(true))));
}
