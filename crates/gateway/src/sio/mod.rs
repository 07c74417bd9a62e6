//! The Socket.IO layer: the handshake, the connection adapter, the
//! [`extract::Authed`] extractor, and one handler file per event family.
//!
//! - `handshake`: the connect middleware that authenticates;
//! - [`conn`]: a socket as the core's `Connection`, the server as a broadcaster;
//! - `auth`: `auth:whoami`, `auth:refresh`, `auth:ticket`, and `echo`;
//! - `rooms`: `room:join`, `room:leave`, `room:publish`, `room:members`.

mod auth;
pub mod conn;
pub mod extract;
mod handshake;
mod rooms;

use std::sync::Arc;
use std::time::Instant;

use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, State};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::socket::DisconnectReason;
use socketioxide_core::adapter::DefinedAdapter;
use sockgate_core::Session;
use sockgate_protocol::events::client;

use crate::{Gateway, telemetry};

/// Initial read buffer of a WebSocket connection (socketioxide's default is 4 KiB).
const WS_READ_BUFFER: usize = 1024;

/// The Socket.IO server of `gateway` on adapter `A`, and its tower layer.
/// Also returns the adapter's initialisation (for Redis, a future that
/// subscribes to the cluster's channels and must be awaited).
pub(crate) fn server<A: Adapter + DefinedAdapter>(
    gateway: &Arc<Gateway>,
    adapter: A::State,
) -> (SocketIoLayer<A>, SocketIo<A>, A::InitRes) {
    let limits = gateway.node.limits();
    let (layer, io) = SocketIo::builder()
        .connect_timeout(limits.handshake_timeout)
        .max_payload(limits.max_message as u64)
        .ws_max_message_size(limits.max_message)
        // Client messages are small; a bigger one grows the buffer as needed.
        .ws_read_buffer_size(WS_READ_BUFFER)
        .with_adapter::<A>(adapter)
        .with_state(gateway.clone())
        .build_layer();
    let init = io.ns("/", on_connect.with(handshake::authenticate));
    if !gateway.emitter.set(Box::new(io.clone())) {
        panic!("a Gateway can be served by one app only");
    }
    (layer, io, init)
}

/// Sets up an admitted socket: registers the handlers and attaches the
/// session.
///
/// Called from the handshake middleware, before socketioxide sends the
/// client its CONNECT: a client may emit the moment it is connected, and
/// socketioxide runs the connect handler as a spawned task, so handlers
/// registered there could miss those first events.
fn serve<A: Adapter>(s: &SocketRef<A>, gw: &Gateway, session: &Arc<Session>) {
    telemetry::connection(session.transport.as_str(), 1.0);
    s.on(client::WHOAMI, auth::whoami);
    s.on(client::REFRESH, auth::refresh);
    // Each handler is an entry in every socket's own handler table: this
    // one cost 0.15-0.2 KiB per idle connection (sockgate-bench hold, 5,000
    // connections, two runs each way), so it exists only where it can be used.
    if gw.node.sources().session_cookies.is_some() {
        s.on(client::TICKET, auth::ticket);
    }
    s.on(client::ECHO, auth::echo);
    s.on(client::ROOM_JOIN, rooms::join);
    s.on(client::ROOM_LEAVE, rooms::leave);
    s.on(client::ROOM_PUBLISH, rooms::publish);
    s.on(client::ROOM_MEMBERS, rooms::members);
    s.on_disconnect(on_disconnect);
    s.extensions.insert(session.clone());
}

/// The namespace's connect handler. Everything it would do already
/// happened in [`serve`], before the client was told it is connected.
async fn on_connect() {}

async fn on_disconnect<A: Adapter>(
    s: SocketRef<A>,
    reason: DisconnectReason,
    State(gw): State<Arc<Gateway>>,
) {
    let started = Instant::now();
    gw.transports.forget(s.id);
    if let Some(session) = s.extensions.get::<Arc<Session>>() {
        telemetry::connection(session.transport.as_str(), -1.0);
        // The network failed, not the user leaving: a closed tab or app is
        // a clean close, a client's own disconnect a namespace one.
        let network = matches!(
            reason,
            DisconnectReason::TransportError | DisconnectReason::HeartbeatTimeout
        );
        let node = &gw.node;
        if network && !session.is_ending() {
            node.stats().lost(&session.user_id, node.clock().now_ms());
        }
        node.forget(session.id);
    }
    gw.node.stats().overhead(started.elapsed());
}
