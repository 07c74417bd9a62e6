//! Room messages between nodes: a broadcast here goes out on one sealed
//! channel, and every other node delivers it to its own sockets.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use sockgate_core::BoxFuture;
use sockgate_core::recovery::Message;

use super::{Cluster, RedisHistory};
use crate::gateway::{Emitter, Fanout};

const ROOMS: &str = "sockgate:rooms";

/// One room message on the channel.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// The node it came from (which delivered it itself).
    node: String,
    rooms: Vec<String>,
    event: String,
    data: serde_json::Value,
}

/// The cluster as the gateway's [`Fanout`].
pub struct RoomBus {
    cluster: Arc<Cluster>,
    /// The cluster's history, when recovery is on.
    history: Option<Arc<RedisHistory>>,
}

impl RoomBus {
    /// Room messages through `cluster`, logged in `history` when recovery
    /// is on.
    pub fn new(cluster: Arc<Cluster>, history: Option<Arc<RedisHistory>>) -> Self {
        Self { cluster, history }
    }
}

impl Fanout for RoomBus {
    /// Sent from a task: local delivery never waits on Redis (and while
    /// Redis is away the driver skips it, counted).
    fn send(&self, rooms: &[String], event: &str, data: &serde_json::Value) {
        let envelope = Envelope {
            node: self.cluster.node.clone(),
            rooms: rooms.to_vec(),
            event: event.to_owned(),
            data: data.clone(),
        };
        let body = self
            .cluster
            .seal
            .seal(&serde_json::to_vec(&envelope).expect("room messages serialize"));
        let cluster = self.cluster.clone();
        tokio::spawn(async move {
            if let Err(e) = cluster.driver.publish(ROOMS.to_owned(), body).await {
                tracing::warn!(error = %e, "a room message did not reach the other nodes");
            }
        });
    }

    fn send_logged(
        &self,
        message: Message,
        fallback: Box<dyn FnOnce() + Send>,
    ) -> BoxFuture<'static, ()> {
        match &self.history {
            Some(history) => Box::pin(history.clone().append(message, fallback)),
            None => Box::pin(async move { fallback() }),
        }
    }
}

/// Delivers the other nodes' room messages here, until the channel closes.
pub async fn follow_rooms(emitter: Arc<Emitter>, cluster: Arc<Cluster>) {
    let mut stream = match cluster.driver.subscribe(ROOMS.to_owned(), 4096).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::error!(error = %e, "cannot subscribe to the room channel");
            return;
        }
    };
    while let Some((_, body)) = stream.recv().await {
        let Some(json) = cluster.seal.open(&body) else {
            tracing::warn!("ignoring a room message without a valid seal");
            continue;
        };
        match serde_json::from_slice::<Envelope>(json) {
            Ok(m) if m.node != cluster.node => {
                emitter.deliver(&m.rooms, None, &m.event, m.data);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "ignoring a malformed room message"),
        }
    }
}
