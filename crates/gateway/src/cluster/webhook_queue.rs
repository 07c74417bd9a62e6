//! The lifecycle webhooks' [`SharedQueue`] in a cluster: one Redis stream
//! (`sockgate:webhooks`) every node appends to, and a lease
//! (`sockgate:webhooks:lease`) that says which node sends it. The lease
//! lasts three renewals, so a dead sender's queue is taken over within
//! about 6 s.

use redis::Script;
use redis::streams::StreamRangeReply;
use sockgate_core::BoxFuture;

use super::Cluster;
use crate::outbound::lifecycle::SharedQueue;

/// How long the lease lasts without a renewal.
const LEASE_MS: u64 = 6_000;

/// KEYS: the stream; ARGV: the most it holds, then the events.
const PUSH: &str = r#"
local n = 0
for i = 2, #ARGV do
  if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then break end
  redis.call('XADD', KEYS[1], '*', 'e', ARGV[i])
  n = n + 1
end
return n
"#;

/// KEYS: the lease; ARGV: this node, how long.
const LEAD: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"#;

/// KEYS: the lease; ARGV: this node.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"#;

fn said(e: redis::RedisError) -> String {
    e.to_string()
}

impl SharedQueue for Cluster {
    fn push<'a>(
        &'a self,
        events: &'a [String],
        max: usize,
    ) -> BoxFuture<'a, Result<usize, String>> {
        Box::pin(async move {
            Script::new(PUSH)
                .key(self.key(&["webhooks"]))
                .arg(max)
                .arg(events)
                .invoke_async(&mut self.conn())
                .await
                .map_err(said)
        })
    }

    fn lead(&self) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move {
            if !self.is_healthy() {
                return Ok(false);
            }
            Script::new(LEAD)
                .key(self.key(&["webhooks", "lease"]))
                .arg(&self.node)
                .arg(LEASE_MS)
                .invoke_async(&mut self.conn())
                .await
                .map_err(said)
        })
    }

    fn peek(&self, n: usize) -> BoxFuture<'_, Result<Vec<(String, String)>, String>> {
        Box::pin(async move {
            let reply: StreamRangeReply = redis::cmd("XRANGE")
                .arg(self.key(&["webhooks"]))
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(n)
                .query_async(&mut self.conn())
                .await
                .map_err(said)?;
            Ok(reply
                .ids
                .into_iter()
                .map(|entry| {
                    let event: String = entry.get("e").unwrap_or_default();
                    (entry.id, event)
                })
                .collect())
        })
    }

    fn release(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let released = Script::new(RELEASE)
                .key(self.key(&["webhooks", "lease"]))
                .arg(&self.node)
                .invoke_async::<()>(&mut self.conn())
                .await;
            if let Err(e) = released {
                tracing::debug!(target: "sockgate::webhook", error = %e, "the webhook lease was not given up; it runs out");
            }
        })
    }

    fn remove<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(());
            }
            redis::cmd("XDEL")
                .arg(self.key(&["webhooks"]))
                .arg(ids)
                .query_async::<()>(&mut self.conn())
                .await
                .map_err(said)
        })
    }
}
