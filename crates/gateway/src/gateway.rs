//! The gateway: a [`Node`] with the transport-side state the Socket.IO
//! layer and the HTTP door share. Built once, served by [`crate::app`].

use std::sync::{Arc, OnceLock};

use serde_json::value::RawValue;
use sockgate_auth::{SourcePolicy, Verifier};
use sockgate_core::backend::{Broker, ControlBus, Directory, Presence};
use sockgate_core::limits::{AbuseLimits, Limits};
use sockgate_core::policy::Policy;
use sockgate_core::{BoxFuture, Lifecycle, Node, Revocations};

use crate::config::TrustedProxies;
use crate::transports::Transports;
use crate::transports::openings::Openings;

/// One running gateway.
pub struct Gateway {
    /// The sessions and their rules.
    pub node: Node,
    /// Peers whose forwarding headers name the client.
    pub(crate) proxies: TrustedProxies,
    /// The transports sockgate may have to close (see [`crate::transports`]).
    pub(crate) transports: Arc<Transports>,
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
            transports: Arc::default(),
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

/// Server-side emits, whatever adapter the Socket.IO server runs on.
pub trait Broadcast: Send + Sync + 'static {
    /// Emits to `rooms` on every node; returns the sockets reached here.
    fn broadcast<'a>(
        &'a self,
        rooms: Vec<String>,
        event: &'a str,
        data: Option<&'a RawValue>,
    ) -> BoxFuture<'a, usize>;
}

/// The node's [`Broker`]: the Socket.IO server, once it exists.
#[derive(Default)]
pub struct Emitter {
    io: OnceLock<Box<dyn Broadcast>>,
}

impl Emitter {
    /// Sets the server; false if one was set already.
    pub(crate) fn set(&self, io: Box<dyn Broadcast>) -> bool {
        self.io.set(io).is_ok()
    }
}

impl Broker for Emitter {
    fn publish<'a>(
        &'a self,
        rooms: Vec<String>,
        event: &'a str,
        data: Option<&'a RawValue>,
    ) -> BoxFuture<'a, usize> {
        let io = self
            .io
            .get()
            .expect("the gateway is served by sockgate::app");
        io.broadcast(rooms, event, data)
    }
}
