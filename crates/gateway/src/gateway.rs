//! The gateway: a [`Node`] with the transport-side state the Socket.IO
//! layer and the HTTP door share. Built once, served by [`crate::app`].

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use sockgate_auth::{Exposure, SourcePolicy, Verifier};
use sockgate_core::backend::memory::MemoryHistory;
use sockgate_core::backend::{
    Broker, Census, ControlBus, Delivery, Directory, History, MemoryCensus, Outgoing, Presence,
    Unavailable,
};
use sockgate_core::clock::unix_now_ms;
use sockgate_core::hooks::App;
use sockgate_core::idempotency::Seen;
use sockgate_core::limits::{AbuseLimits, Limits};
use sockgate_core::policy::Policy;
use sockgate_core::recovery::{Message, Offset, PidKey, Settings as RecoverySettings};
use sockgate_core::room_options::RoomOptionsList;
use sockgate_core::rooms::UserRoom;
use sockgate_core::{BoxFuture, Lifecycle, Node, Revocations};
use sockgate_engine::engine::Compression;
use sockgate_engine::io;
use sockgate_engine::io::SocketRooms;
use sockgate_engine::sio::Value;

use crate::config::TrustedProxies;
use crate::transports::openings::Openings;

/// One running gateway.
pub struct Gateway {
    /// The sessions and their rules.
    pub node: Node,
    /// Peers whose forwarding headers name the client.
    pub(crate) proxies: TrustedProxies,
    /// Transports opened and not yet authenticated (see [`crate::http::admission`]).
    pub(crate) openings: Arc<Openings>,
    /// Where server-side emits go, once [`crate::app`] has built the
    /// Socket.IO server.
    pub(crate) emitter: Arc<Emitter>,
    /// permessage-deflate on WebSockets; `None` is off.
    pub(crate) ws_compression: Option<Compression>,
    /// What one connection may hold.
    pub(crate) transport_limits: crate::transports::TransportLimits,
    /// What clients see of the claims.
    pub(crate) exposed_claims: Exposure,
    /// Whether the hint about another app's user rooms was logged.
    pub(crate) hinted_user_room: AtomicBool,
    /// Whether clients may send binary arguments (for the app's events).
    pub(crate) binary_events: bool,
    /// The lifecycle webhooks, when they are on.
    pub(crate) webhooks: Option<Arc<crate::outbound::lifecycle::Webhooks>>,
    /// A single node's census, whose pending departures outlive a restart.
    pub(crate) departures: Option<Arc<MemoryCensus>>,
    /// A single node's history on disk, written before the process exits.
    pub(crate) journal: Option<Arc<crate::store::history::DiskJournal>>,
    /// Run first on shutdown (a cluster node tells the others it stops).
    pub(crate) on_stop: Option<Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>>,
}

impl Gateway {
    /// A gateway verifying with `verifier` the credentials `sources` finds.
    pub fn new(
        verifier: Verifier,
        sources: SourcePolicy,
        revocations: Revocations,
        lifecycle: Lifecycle,
    ) -> Self {
        let emitter = Arc::new(Emitter::default());
        let node =
            Node::new(verifier, sources, revocations, lifecycle).with_broker(emitter.clone());
        Self {
            node,
            proxies: TrustedProxies::default(),
            openings: Arc::new(Openings::new(AbuseLimits::default().max_pending_handshakes)),
            emitter,
            ws_compression: None,
            transport_limits: Default::default(),
            exposed_claims: Exposure::all(),
            hinted_user_room: AtomicBool::new(false),
            binary_events: false,
            webhooks: None,
            departures: None,
            journal: None,
            on_stop: None,
        }
    }

    /// Names users' own rooms after `template`.
    pub fn with_user_room(mut self, template: UserRoom) -> Self {
        self.node = self.node.with_user_room(template);
        self
    }

    /// Sends the client events sockgate does not handle to `app`, at most
    /// `max_calls_per_user` at a time per user.
    pub fn with_app(mut self, app: Arc<dyn App>, max_calls_per_user: usize) -> Self {
        self.node = self.node.with_app(app, max_calls_per_user);
        self
    }

    /// Takes binary arguments, for events that go to the app (sockgate's
    /// own events stay JSON only).
    pub fn with_binary_events(mut self, on: bool) -> Self {
        self.binary_events = on;
        self
    }

    /// Shows clients only what `exposure` lets through of the claims.
    pub fn with_exposed_claims(mut self, exposure: Exposure) -> Self {
        self.exposed_claims = exposure;
        self
    }

    /// Bounds what one connection may hold.
    pub fn with_transport_limits(mut self, limits: crate::transports::TransportLimits) -> Self {
        self.transport_limits = limits;
        self
    }

    /// Compresses WebSocket messages as `compression` says, for clients
    /// that offer it.
    pub fn with_ws_compression(mut self, compression: Option<Compression>) -> Self {
        self.ws_compression = compression;
        self
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Gives rooms their options (`[[room_options]]`).
    pub fn with_room_options(mut self, options: RoomOptionsList) -> Self {
        self.node = self.node.with_room_options(options);
        self
    }

    /// Serves `namespaces` beside the main one (`[[namespaces]]`).
    pub fn with_namespaces(mut self, namespaces: sockgate_core::namespace::Namespaces) -> Self {
        self.node = self.node.with_namespaces(namespaces);
        self
    }

    /// Sets the room authorization policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.node = self.node.with_policy(policy);
        self
    }

    /// Tells `webhooks` what happens to sessions, users and rooms.
    pub fn with_webhooks(mut self, webhooks: Arc<crate::outbound::lifecycle::Webhooks>) -> Self {
        self.node = self.node.with_watcher(webhooks.clone());
        self.webhooks = Some(webhooks);
        self
    }

    /// Tells rooms who comes and goes (every room with `all`, else those of
    /// rules with `presence_events`), a departure after `delay`.
    pub fn with_presence_events(mut self, all: bool, delay: std::time::Duration) -> Self {
        self.node = self.node.with_presence_events(all, delay);
        self
    }

    /// Remembers publishes' idempotency keys for `window`.
    pub fn with_idempotency_window(mut self, window: std::time::Duration) -> Self {
        self.node = self.node.with_idempotency_window(window);
        self
    }

    /// Sets the size limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.node = self.node.with_limits(limits);
        self
    }

    /// Sets the abuse limits.
    pub fn with_abuse_limits(mut self, limits: AbuseLimits) -> Self {
        self.openings = Arc::new(Openings::new(limits.max_pending_handshakes));
        self.node = self.node.with_abuse_limits(limits);
        self
    }

    /// Trusts these proxies' forwarding headers.
    pub fn with_trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// Shares presence, sessions and announcements through `backend`
    /// (the Redis cluster).
    pub fn with_cluster<B: Presence + Directory + ControlBus + Census>(
        mut self,
        backend: Arc<B>,
    ) -> Self {
        self.node = self
            .node
            .with_presence(backend.clone())
            .with_directory(backend.clone())
            .with_census(backend.clone())
            .with_control(backend);
        self
    }

    /// Counts users and rooms in `census`, whose pending departures a
    /// stopping single node keeps for the next start.
    pub fn with_memory_census(mut self, census: Arc<MemoryCensus>) -> Self {
        self.node = self.node.with_census(census.clone());
        self.departures = Some(census);
        self
    }

    /// Turns recovery on over `history`, this node's own, whose `pid`s
    /// `key` seals (a single node's on disk: kept across restarts).
    pub(crate) fn with_own_history(
        mut self,
        settings: RecoverySettings,
        key: PidKey,
        history: Arc<MemoryHistory>,
        journal: Arc<crate::store::history::DiskJournal>,
    ) -> Self {
        self.emitter.log_here(history.clone());
        self.node = self.node.with_recovery(settings, key).with_history(history);
        self.journal = Some(journal);
        self
    }

    /// Turns connection-state recovery on, with `pid`s under `key`: on
    /// this node's history, or on `history` (the cluster's), whose
    /// broadcasts then go through the fanout.
    pub fn with_recovery(
        mut self,
        settings: RecoverySettings,
        key: PidKey,
        history: Option<Arc<dyn History>>,
    ) -> Self {
        let history = match history {
            Some(history) => {
                self.emitter.log_in_cluster();
                history
            }
            None => {
                let here = Arc::new(MemoryHistory::new(settings.clone()));
                self.emitter.log_here(here.clone());
                here
            }
        };
        self.node = self.node.with_recovery(settings, key).with_history(history);
        self
    }
}

impl AsRef<Node> for Gateway {
    fn as_ref(&self) -> &Node {
        &self.node
    }
}

/// Carries room events to the other nodes (the cluster's, in Redis).
pub trait Fanout: Send + Sync + 'static {
    /// Sends `event` with `data` to `rooms` on every other node, but to
    /// the connection `except`.
    fn send(&self, rooms: &[String], except: Option<&str>, event: &str, data: &serde_json::Value);
    /// Records `key` for `window_ms` and sends as [`Fanout::send`] does,
    /// in one step: false, and nothing sent, when the key was recorded
    /// already.
    fn send_once(
        &self,
        key: String,
        window_ms: u64,
        rooms: &[String],
        except: Option<&str>,
        event: &str,
        data: &serde_json::Value,
    ) -> BoxFuture<'static, Result<bool, Unavailable>>;
    /// Appends `message` to the cluster's history and sends it to every
    /// node, this one included, each delivering in the history's order;
    /// with `once`, only if its key was not recorded (false then). Runs
    /// `fallback` (delivery here, without an offset) when it cannot,
    /// unless there is a key: then it is [`Unavailable`]. Done once the
    /// history has it: a publish that follows is after it.
    fn send_logged(
        &self,
        message: Message,
        once: Option<(String, u64)>,
        fallback: Box<dyn FnOnce() + Send>,
    ) -> BoxFuture<'static, Result<bool, Unavailable>>;
    /// Done once what is sent to `rooms` from now on reaches this node
    /// (see `Broker::listening`); at once by default.
    fn listening(&self, rooms: &[String]) -> BoxFuture<'static, ()> {
        let _ = rooms;
        Box::pin(std::future::ready(()))
    }
}

/// Room delivery: to this node's sockets through the engine's rooms, and
/// to the other nodes through the [`Fanout`], when there is one. The
/// node's [`Broker`].
///
/// With recovery on, every broadcast gets an offset in the history as it
/// is delivered: from this node's history, or, in a cluster, from the
/// cluster's, through the fanout.
///
/// Idempotency keys are this node's ([`Seen`]) without a fanout, and the
/// cluster's, recorded by the script that sends, with one.
#[derive(Default)]
pub struct Emitter {
    rooms: OnceLock<Arc<SocketRooms>>,
    fanout: OnceLock<Arc<dyn Fanout>>,
    /// Set when recovery is on.
    history: OnceLock<Logged>,
    /// The keys of this node, when there is no fanout.
    seen: Seen,
}

/// Where broadcasts get their offsets.
enum Logged {
    /// This node's history.
    Here(Arc<MemoryHistory>),
    /// The cluster's, through the fanout.
    Cluster,
}

impl Emitter {
    /// The main namespace's rooms; false if they were set already.
    pub(crate) fn set_rooms(&self, rooms: Arc<SocketRooms>) -> bool {
        self.rooms.set(rooms).is_ok()
    }

    /// Sends to the other nodes through `fanout` too.
    pub(crate) fn set_fanout(&self, fanout: Arc<dyn Fanout>) {
        let _ = self.fanout.set(fanout);
    }

    /// Appends every broadcast to `history` as it is delivered.
    pub(crate) fn log_here(&self, history: Arc<MemoryHistory>) {
        let _ = self.history.set(Logged::Here(history));
    }

    /// Appends every broadcast to the cluster's history (the fanout's).
    pub(crate) fn log_in_cluster(&self) {
        let _ = self.history.set(Logged::Cluster);
    }

    /// Emits to `rooms` here (but to `except`) and on the other nodes,
    /// once per key with `once`; returns the sockets reached here. Done
    /// once it is in the history, when recovery is on.
    async fn emit(
        &self,
        out: &Outgoing<'_>,
        data: serde_json::Value,
    ) -> Result<Delivery, Unavailable> {
        let (rooms, except, event) = (&out.rooms, out.except.as_deref(), out.event);
        let fanout = self.fanout.get();
        if fanout.is_none()
            && let Some(once) = out.once
        {
            let now = unix_now_ms();
            if !self.seen.claim(once.key, now, now + once.window_ms) {
                return Ok(Delivery::Duplicate);
            }
        }
        let once = out.once.map(|o| (o.key.to_owned(), o.window_ms));
        // Rooms whose messages are not kept (`recover = false`) are
        // delivered as without recovery.
        let Some(logged) = self.history.get().filter(|_| out.logged) else {
            if let Some(fanout) = fanout {
                match once {
                    Some((key, window)) => {
                        let sent = fanout.send_once(key, window, rooms, except, event, &data);
                        if !sent.await? {
                            return Ok(Delivery::Duplicate);
                        }
                    }
                    None => fanout.send(rooms, except, event, &data),
                }
            }
            return Ok(Delivery::Reached(
                self.deliver_at(rooms, except, event, data, None),
            ));
        };
        let message = Message {
            rooms: rooms.to_vec(),
            except: except.map(str::to_owned),
            event: event.to_owned(),
            data: serde_json::value::to_raw_value(&data).expect("JSON values serialize"),
            gap: false,
            keep: out.keep,
        };
        let reached = match (logged, fanout) {
            (Logged::Here(history), _) => history.append(message, unix_now_ms(), |offset| {
                self.deliver_at(rooms, except, event, data, Some(offset))
            }),
            (Logged::Cluster, Some(fanout)) => {
                let local = self.local().clone();
                let names: Vec<&str> = rooms.iter().map(String::as_str).collect();
                let reached = local.count(&names, except);
                let (rooms, except) = (rooms.to_vec(), except.map(str::to_owned));
                let event = event.to_owned();
                let fallback = move || {
                    deliver_on(&local, &rooms, except.as_deref(), &event, data, None);
                };
                if !fanout
                    .send_logged(message, once, Box::new(fallback))
                    .await?
                {
                    return Ok(Delivery::Duplicate);
                }
                reached
            }
            (Logged::Cluster, None) => self.deliver_at(rooms, except, event, data, None),
        };
        Ok(Delivery::Reached(reached))
    }

    /// Emits to `rooms` on this node only but to the socket with id
    /// `except`, with the broadcast's recovery `offset`.
    pub(crate) fn deliver_at(
        &self,
        rooms: &[String],
        except: Option<&str>,
        event: &str,
        data: serde_json::Value,
        offset: Option<Offset>,
    ) -> usize {
        deliver_on(self.local(), rooms, except, event, data, offset)
    }

    /// [`Emitter::deliver_at`] for the share of `rooms[at]`: its sockets
    /// in none of the rooms before it (a copy that came on that room's
    /// channel).
    pub(crate) fn deliver_share(
        &self,
        rooms: &[String],
        at: usize,
        except: Option<&str>,
        event: &str,
        data: serde_json::Value,
        offset: Option<Offset>,
    ) -> usize {
        let (names, args, offset) = engine_args(rooms, data, offset);
        self.local()
            .emit_share(&names, at, except, event, args, offset)
    }

    /// Has `watcher` told of each room's first and last socket on this
    /// node; false when one was set already.
    pub(crate) fn watch_rooms(&self, watcher: sockgate_engine::rooms::Watcher) -> bool {
        self.local().watch(watcher)
    }

    fn local(&self) -> &Arc<SocketRooms> {
        self.rooms
            .get()
            .expect("the gateway is served by sockgate::app")
    }
}

/// Emits to `rooms` of `local` but to the socket with id `except`, with
/// the broadcast's recovery `offset`.
fn deliver_on(
    local: &SocketRooms,
    rooms: &[String],
    except: Option<&str>,
    event: &str,
    data: serde_json::Value,
    offset: Option<Offset>,
) -> usize {
    let (names, args, offset) = engine_args(rooms, data, offset);
    local.emit_at(&names, except, event, args, offset)
}

/// A broadcast's rooms, arguments and offset as the engine takes them.
fn engine_args(
    rooms: &[String],
    data: serde_json::Value,
    offset: Option<Offset>,
) -> (Vec<&str>, Vec<Value>, Option<io::Offset>) {
    let names = rooms.iter().map(String::as_str).collect();
    (names, vec![Value::from(data)], offset.map(engine_offset))
}

/// The core's offset as the engine writes it.
pub(crate) fn engine_offset(o: Offset) -> io::Offset {
    io::Offset(o.ms, o.seq)
}

impl Broker for Emitter {
    fn publish<'a>(&'a self, out: Outgoing<'a>) -> BoxFuture<'a, Result<Delivery, Unavailable>> {
        let data = out
            .data
            .and_then(|d| serde_json::from_str(d.get()).ok())
            .unwrap_or(serde_json::Value::Null);
        Box::pin(async move { self.emit(&out, data).await })
    }

    fn listening<'a>(&'a self, rooms: &'a [String]) -> BoxFuture<'a, ()> {
        match self.fanout.get() {
            Some(fanout) => fanout.listening(rooms),
            None => Box::pin(std::future::ready(())),
        }
    }
}
