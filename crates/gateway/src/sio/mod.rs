//! The Socket.IO layer, on sockgate's own engine: the main namespace's
//! handshake, the connection adapter, the [`extract::Authed`] of every
//! event, and one handler file per event family.
//!
//! - `handshake`: the main namespace's `connect`, which authenticates;
//! - [`conn`]: a socket as the core's `Connection`;
//! - [`extract`]: the session of the socket an event came on;
//! - `auth`: `auth:whoami`, `auth:refresh`, `auth:ticket`;
//! - `rooms`: `room:join`, `room:leave`, `room:publish`, `room:members`;
//! - `app`: every other event, for the app's backend.

mod app;
mod auth;
pub mod conn;
pub mod extract;
mod handshake;
mod rooms;

use std::sync::Arc;
use std::time::Instant;

use sockgate_auth::AuthError;
use sockgate_engine::engine::{self, CloseReason, Engine};
use sockgate_engine::io::{
    self, Ack, Admission, Auth, BoxFuture, ConnectError, DisconnectReason, EioSocket, Io,
    Namespace, RequestHead, SioSocket,
};
use sockgate_engine::sio::Value;
use sockgate_protocol::events::client;
use sockgate_protocol::requests::Request;

use crate::transports::openings::{Opener, Openings, Ticket};
use crate::{Gateway, telemetry};
use sockgate_core::Gone;

/// The Socket.IO server sockgate serves on `/socket.io/`.
pub type Server = Engine<Io>;

/// Read buffer of a WebSocket, in bytes, and the most read at once.
///
/// What every idle connection holds: the buffer grows for a larger frame
/// (the handshake's CONNECT, which carries the token, is one) and is given
/// back to this size after it. Frames over 128 bytes take more than one
/// read.
const WS_READ_BUFFER: usize = 128;

/// The Socket.IO server of `gateway`.
pub(crate) fn server(gateway: &Arc<Gateway>) -> Arc<Server> {
    let limits = gateway.node.limits();
    let transport = &gateway.transport_limits;
    let config = engine::Config {
        max_payload: limits.max_message,
        max_buffered_bytes: transport.max_outbox,
        fragment_timeout: transport.fragment_timeout,
        body_timeout: transport.body_timeout,
        ws_read_buffer: WS_READ_BUFFER,
        ws_compression: gateway.ws_compression.clone(),
        ..engine::Config::default()
    };
    let io = Io::new(io::Config {
        connect_timeout: limits.handshake_timeout,
        // sockgate's own events carry JSON only: without event routes a
        // binary packet closes the connection before any of it is kept (10
        // announced attachments once held 1.2 MiB a connection, before any
        // CONNECT). With them, binary arguments go to the app, as base64
        // (`app::forward`), bounded like any packet by `max_packet`.
        binary: gateway.binary_events,
        max_packet: limits.max_message,
        ..io::Config::default()
    })
    .on_open({
        let openings = gateway.openings.clone();
        move |eio, head| opened(&openings, eio, head)
    });
    // Every namespace's sockets are in the same rooms, which the core's
    // room keys keep apart (`RoomKey`): a broadcast needs no namespace.
    let rooms = Arc::new(io::SocketRooms::new());
    let io = serve_namespaces(io, gateway, &rooms);
    if !gateway.emitter.set_rooms(rooms) {
        panic!("a Gateway can be served by one app only");
    }
    Engine::new(config, io)
}

/// The main namespace and every `[[namespaces]]` entry, exact names and
/// patterns, all handled by [`Main`] (the core tells them apart).
fn serve_namespaces(mut io: Io, gateway: &Arc<Gateway>, rooms: &Arc<io::SocketRooms>) -> Io {
    io = io.namespace_in("/", Main(gateway.clone()), rooms.clone());
    for space in gateway.node.namespaces().all() {
        let handler = Main(gateway.clone());
        if !space.name.contains(['*', '?']) {
            io = io.namespace_in(&space.name, handler, rooms.clone());
            continue;
        }
        let pattern = wildmatch::WildMatch::new(&space.name);
        let matches = move |name: &str| {
            sockgate_core::namespace::check_name(name).is_ok() && pattern.matches(name)
        };
        io = io.namespaces_matching(matches, handler, rooms.clone());
    }
    io
}

/// A connection opened: a long-polling one's sid is bound to the address
/// that opened it (and whether its origin was allowed), which its later
/// requests must match (`http::admission`). The door put both in the
/// request's extensions.
fn opened(openings: &Openings, eio: &EioSocket, head: &RequestHead) {
    if eio.transport() != engine::Transport::Polling {
        return;
    }
    let ticket = head.extensions.get::<Arc<Ticket>>();
    if let (Some(ticket), Some(opener)) = (ticket, head.extensions.get::<Opener>()) {
        openings.bind(ticket, eio.sid(), *opener);
    }
}

/// The main namespace.
struct Main(Arc<Gateway>);

impl Namespace for Main {
    fn connect<'a>(
        &'a self,
        socket: &'a Arc<SioSocket>,
        auth: Auth<'a>,
        request: &'a RequestHead,
    ) -> BoxFuture<'a, Result<(), ConnectError>> {
        Box::pin(handshake::authenticate(&self.0, socket, auth, request))
    }

    /// Every event spends the socket's budget, whatever its name, and
    /// before its arguments are read: an unknown name with a large argument
    /// once cost 8.7 ms and no budget.
    fn admit(&self, socket: &Arc<SioSocket>, _event: &str, ack: Option<Ack>) -> Admission {
        let Some(authed) = extract::Authed::of(socket) else {
            return Admission::Drop;
        };
        match authed.spend(&self.0, ack) {
            Some(ack) => Admission::Handle(ack),
            None => Admission::Drop,
        }
    }

    fn event(&self, socket: &Arc<SioSocket>, event: String, args: Vec<Value>, ack: Option<Ack>) {
        let Some(authed) = extract::Authed::of(socket) else {
            return;
        };
        let gw = self.0.clone();
        run_inline_or_spawn(async move { dispatch(&gw, authed, &event, args, ack).await });
    }

    fn disconnect(&self, socket: &Arc<SioSocket>, reason: DisconnectReason) {
        on_disconnect(&self.0, socket, reason);
    }
}

/// Runs `handler` here, on the connection's task, when it finishes at once
/// (most events: an echo, a join the claims allow), and spawns the rest (a
/// webhook call, a store write). Spawning every event cost a task and a
/// trip through the scheduler per message, and let a connection's events
/// be handled out of order.
fn run_inline_or_spawn(handler: impl Future<Output = ()> + Send + 'static) {
    let mut handler = Box::pin(handler);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if handler.as_mut().poll(&mut cx).is_pending() {
        // Polled again by its task, which registers a real waker.
        tokio::spawn(handler);
    }
}

/// Runs the handler of `event`, whose budget [`Main::admit`] spent:
/// sockgate's own events here, every other one at the app's backend.
async fn dispatch(
    gw: &Gateway,
    authed: extract::Authed,
    event: &str,
    args: Vec<Value>,
    ack: Option<Ack>,
) {
    let own = match event {
        client::TICKET => gw.node.sources().session_cookies.is_some(),
        _ => client::ALL.contains(&event),
    };
    if !own {
        return app::forward(gw, authed, event, args, ack).await;
    }
    // The engine takes no binary here (see `server`): the JSON is all of it.
    let payload = args.into_iter().next().and_then(Value::into_json);
    let Some(request) = Request::parse(event, payload) else {
        return;
    };
    let request = match request {
        Ok(request) => request,
        Err(refusal) => {
            let refused = AuthError::new(refusal.code, refusal.message);
            return extract::reply(ack, &refused.to_ack());
        }
    };
    match request {
        Request::WhoAmI(_) => auth::whoami(gw, authed, ack).await,
        Request::Refresh(refresh) => auth::refresh(gw, authed, refresh, ack).await,
        Request::Ticket(_) => auth::ticket(gw, authed, ack).await,
        Request::Echo(echo) => extract::reply(ack, &echo.0),
        Request::Join(join) => rooms::join(gw, authed, join, ack).await,
        Request::Leave(leave) => rooms::leave(gw, authed, leave, ack).await,
        Request::Publish(publish) => rooms::publish(gw, authed, publish, ack).await,
        Request::Members(members) => rooms::members(gw, authed, members, ack).await,
        Request::History(history) => rooms::history(gw, authed, history, ack).await,
    }
}

fn on_disconnect(gw: &Gateway, socket: &Arc<SioSocket>, reason: DisconnectReason) {
    let started = Instant::now();
    let Some(attached) = socket.data::<extract::Attached>() else {
        return;
    };
    let session = &attached.session;
    telemetry::connection(session.transport.as_str(), -1.0);
    // The network failed, not the user leaving: a closed tab or app is a
    // clean close, a client's own disconnect a namespace one.
    let network = matches!(
        reason,
        DisconnectReason::Closed(CloseReason::TransportError | CloseReason::PingTimeout)
    );
    let node = &gw.node;
    if network && !session.is_ending() {
        node.stats().lost(&session.user_id, node.clock().now_ms());
    }
    // Any close of the connection may be recovered from, a client's
    // `socket.disconnect()` (a namespace one) and the server's ends not.
    let recoverable = matches!(reason, DisconnectReason::Closed(_)) && !session.is_ending();
    let why = if network {
        Gone::TransportLost
    } else {
        Gone::ClientClosed
    };
    if !recoverable {
        node.forget(session.id, why);
    } else if let Some(park) = node.lost(session.id, why) {
        run_inline_or_spawn(park);
    }
    node.stats().overhead(started.elapsed());
}
