//! The gateway: a [`Node`] with the transport-side state the Socket.IO
//! layer and the HTTP door share. Built once, served by [`crate::app`].

use std::sync::{Arc, OnceLock};

use serde_json::value::RawValue;
use sockgate_auth::{SourcePolicy, Verifier};
use sockgate_core::backend::{Broker, ControlBus, Directory, Presence};
use sockgate_core::limits::{AbuseLimits, Limits};
use sockgate_core::policy::Policy;
use sockgate_core::{BoxFuture, Lifecycle, Node, Revocations};
use sockgate_engine::io::SioSocket;
use sockgate_engine::rooms::Rooms;
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
        }
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Sets the room authorization policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.node = self.node.with_policy(policy);
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
    pub fn with_cluster<B: Presence + Directory + ControlBus>(mut self, backend: Arc<B>) -> Self {
        self.node = self
            .node
            .with_presence(backend.clone())
            .with_directory(backend.clone())
            .with_control(backend);
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
    /// Sends `event` with `data` to `rooms` on every other node.
    fn send(&self, rooms: &[String], event: &str, data: &serde_json::Value);
}

/// Room delivery: to this node's sockets through the engine's rooms, and
/// to the other nodes through the [`Fanout`], when there is one. The
/// node's [`Broker`].
#[derive(Default)]
pub struct Emitter {
    rooms: OnceLock<Arc<Rooms>>,
    fanout: OnceLock<Arc<dyn Fanout>>,
}

impl Emitter {
    /// The main namespace's rooms; false if they were set already.
    pub(crate) fn set_rooms(&self, rooms: Arc<Rooms>) -> bool {
        self.rooms.set(rooms).is_ok()
    }

    /// Sends to the other nodes through `fanout` too.
    pub(crate) fn set_fanout(&self, fanout: Arc<dyn Fanout>) {
        let _ = self.fanout.set(fanout);
    }

    /// Emits to `rooms` here (but to `except`) and on the other nodes;
    /// returns the sockets reached here.
    pub(crate) fn emit(
        &self,
        rooms: &[String],
        except: Option<&SioSocket>,
        event: &str,
        data: serde_json::Value,
    ) -> usize {
        if let Some(fanout) = self.fanout.get() {
            fanout.send(rooms, event, &data);
        }
        self.deliver(rooms, except, event, data)
    }

    /// Emits to `rooms` on this node only (a message from another node).
    pub(crate) fn deliver(
        &self,
        rooms: &[String],
        except: Option<&SioSocket>,
        event: &str,
        data: serde_json::Value,
    ) -> usize {
        let rooms: Vec<&str> = rooms.iter().map(String::as_str).collect();
        let local = self
            .rooms
            .get()
            .expect("the gateway is served by sockgate::app");
        local.emit(&rooms, except, event, vec![Value::from(data)])
    }
}

impl Broker for Emitter {
    fn publish<'a>(
        &'a self,
        rooms: Vec<String>,
        event: &'a str,
        data: Option<&'a RawValue>,
    ) -> BoxFuture<'a, usize> {
        let data = data
            .and_then(|d| serde_json::from_str(d.get()).ok())
            .unwrap_or(serde_json::Value::Null);
        Box::pin(async move { self.emit(&rooms, None, event, data) })
    }
}
