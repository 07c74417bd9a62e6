//! What `/api/stats` and the dashboard show: this node's figures, shared
//! with the others through the directory, and their sum.

use std::collections::HashMap;

use super::Node;
use crate::stats::{NodeStats, Point, Summary};

impl Node {
    /// Once a second: a point of the series, the overdue reconnections
    /// settled, and this node's figures shared with the other nodes.
    pub async fn tick(&self) -> Point {
        let point = self.stats.tick(self.sessions.len());
        self.settle_overdue().await;
        if let Ok(json) = serde_json::to_string(&self.figures()) {
            self.directory.share_figures(&json).await;
        }
        point
    }

    /// This node's figures now, the others' as last shared, and their sum.
    pub async fn summary(&self) -> Summary {
        let mut nodes = vec![self.figures()];
        for json in self.directory.peer_figures().await {
            nodes.extend(serde_json::from_str::<NodeStats>(&json).ok());
        }
        Summary::of(nodes)
    }

    /// This node's figures.
    fn figures(&self) -> NodeStats {
        let dir = &self.directory;
        self.stats
            .node(dir.node(), self.sessions.len(), dir.status())
    }

    /// Decides the lost sessions whose return window has passed: back if
    /// the user connected on any node since the loss. The directory is read
    /// once per tick, and only when something is overdue.
    async fn settle_overdue(&self) {
        let overdue = self.stats.overdue(self.clock.now_ms());
        if overdue.is_empty() {
            return;
        }
        let mut connected: HashMap<String, Vec<u64>> = HashMap::new();
        for s in self.directory.list(None).await.unwrap_or_default() {
            connected
                .entry(s.user_id)
                .or_default()
                .push(s.connected_at.saturating_mul(1000));
        }
        for lost in overdue {
            let back = connected
                .get(&lost.user)
                .and_then(|ats| ats.iter().filter(|at| **at >= lost.at_ms).min())
                .map(|at| at - lost.at_ms);
            self.stats.settle(back);
        }
    }
}
