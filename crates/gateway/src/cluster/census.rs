//! The cluster's [`Census`]: for each counted user, room or member, a set
//! of the nodes holding it (`sockgate:census:{code}`), an index of what
//! each node holds (`sockgate:census-of:{node}`), and the pending
//! departures by when they are due (`sockgate:census-due`, members
//! `{node}|{code}`). Each step is one script, so two nodes never both see
//! themselves first or last; a due departure is popped by one node.
//!
//! A node's set entry stays while its departure waits: a return to any
//! node meanwhile finds it there and is no news, and when the departure
//! comes due the set is not empty.

use redis::Script;
use sockgate_core::BoxFuture;
use sockgate_core::backend::{Census, Counted, Move, Unavailable};

use super::{Cluster, PREFIX};

/// `leave(set, index, code, node)`: takes `node` out; 1 when that emptied
/// the set.
const LEAVE: &str = r#"
local function leave(set, index, code, node)
  if redis.call('SREM', set, node) == 1 then
    redis.call('SREM', index, code)
    if redis.call('SCARD', set) == 0 then return 1 end
  end
  return 0
end
"#;

/// ARGV: prefix, node, now, then (op, code, delay ms) per move.
const APPLY: &str = r#"
local p, node, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local due, index = p .. 'census-due', p .. 'census-of:' .. node
local out = {}
for i = 4, #ARGV, 3 do
  local op, code, delay = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local set, pending = p .. 'census:' .. code, node .. '|' .. code
  local edge = 0
  if op == 'a' then
    if redis.call('ZREM', due, pending) == 0 then
      redis.call('SADD', index, code)
      if redis.call('SADD', set, node) == 1 and redis.call('SCARD', set) == 1 then edge = 1 end
    end
  elseif delay > 0 then
    -- In microseconds, the move's place breaking ties: a room vacated
    -- before its last user went offline comes due first.
    redis.call('ZADD', due, (now + delay) * 1000 + (i % 1000), pending)
  else
    redis.call('ZREM', due, pending)
    edge = leave(set, index, code, node)
  end
  table.insert(out, edge)
end
return out
"#;

/// ARGV: prefix, now (in microseconds, like the scores), most.
const DUE: &str = r#"
local p, now = ARGV[1], ARGV[2]
local due = p .. 'census-due'
local out = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))) do
  redis.call('ZREM', due, m)
  local sep = string.find(m, '|', 1, true)
  local node, code = string.sub(m, 1, sep - 1), string.sub(m, sep + 1)
  if leave(p .. 'census:' .. code, p .. 'census-of:' .. node, code, node) == 1 then
    table.insert(out, code)
  end
end
return out
"#;

/// ARGV: prefix, node.
const LOST: &str = r#"
local p, node = ARGV[1], ARGV[2]
local index = p .. 'census-of:' .. node
local out = {}
for _, code in ipairs(redis.call('SMEMBERS', index)) do
  if leave(p .. 'census:' .. code, index, code, node) == 1 then table.insert(out, code) end
end
redis.call('DEL', index)
return out
"#;

/// ARGV: prefix, node, then what it holds. What the node's index has
/// beyond that, and no departure of it waits, was given up during an
/// outage (and told then, by the node alone): it leaves without a word.
const RESTATE: &str = r#"
local p, node = ARGV[1], ARGV[2]
local index, due = p .. 'census-of:' .. node, p .. 'census-due'
local keep = {}
for i = 3, #ARGV do keep[ARGV[i]] = true end
for _, code in ipairs(redis.call('SMEMBERS', index)) do
  if not keep[code] and not redis.call('ZSCORE', due, node .. '|' .. code) then
    leave(p .. 'census:' .. code, index, code, node)
  end
end
for code in pairs(keep) do
  redis.call('SADD', p .. 'census:' .. code, node)
  redis.call('SADD', index, code)
end
return 0
"#;

/// Most due departures taken in one call.
const MOST_DUE: usize = 500;

fn script(body: &str) -> Script {
    Script::new(&format!("{LEAVE}{body}"))
}

fn unavailable(e: redis::RedisError) -> Unavailable {
    Unavailable(format!("census: {e}"))
}

/// How long a census step may take: past it, the node tells its edges
/// alone rather than hold every lifecycle event up (a Redis behind a
/// partition answers nothing, and the connection retries for seconds).
const STEP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `step`, within [`STEP_TIMEOUT`].
async fn bounded<T>(
    step: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, Unavailable> {
    match tokio::time::timeout(STEP_TIMEOUT, step).await {
        Ok(answer) => answer.map_err(unavailable),
        Err(_) => Err(Unavailable("census: Redis did not answer in time".into())),
    }
}

fn decode(codes: Vec<String>) -> Vec<Counted> {
    codes.iter().filter_map(|c| Counted::from_code(c)).collect()
}

impl Census for Cluster {
    fn apply<'a>(
        &'a self,
        moves: &'a [Move],
        now_ms: u64,
    ) -> BoxFuture<'a, Result<Vec<bool>, Unavailable>> {
        Box::pin(async move {
            if moves.is_empty() {
                return Ok(Vec::new());
            }
            if !self.is_healthy() {
                return Err(Unavailable("census: Redis is unreachable".into()));
            }
            let script = script(APPLY);
            let mut call = script.prepare_invoke();
            call.arg(PREFIX).arg(&self.node).arg(now_ms);
            for mv in moves {
                match mv {
                    Move::Arrive(what) => call.arg("a").arg(what.code()).arg(0),
                    Move::Depart(what, after) => {
                        call.arg("d").arg(what.code()).arg(after.as_millis() as u64)
                    }
                };
            }
            let edges: Vec<u8> = bounded(call.invoke_async(&mut self.conn())).await?;
            Ok(edges.into_iter().map(|e| e == 1).collect())
        })
    }

    fn due(&self, now_ms: u64) -> BoxFuture<'_, Result<Vec<Counted>, Unavailable>> {
        Box::pin(async move {
            if !self.is_healthy() {
                return Ok(Vec::new());
            }
            let script = script(DUE);
            let mut call = script.prepare_invoke();
            call.arg(PREFIX)
                .arg(now_ms.saturating_mul(1000).saturating_add(999))
                .arg(MOST_DUE);
            let codes: Vec<String> = bounded(call.invoke_async(&mut self.conn())).await?;
            Ok(decode(codes))
        })
    }

    fn restate<'a>(&'a self, holding: &'a [Counted]) -> BoxFuture<'a, Result<(), Unavailable>> {
        Box::pin(async move {
            let codes: Vec<String> = holding.iter().map(Counted::code).collect();
            let script = script(RESTATE);
            let mut call = script.prepare_invoke();
            call.arg(PREFIX).arg(&self.node).arg(codes);
            bounded(call.invoke_async::<()>(&mut self.conn())).await
        })
    }

    fn lost<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<Vec<Counted>, Unavailable>> {
        Box::pin(async move {
            let script = script(LOST);
            let mut call = script.prepare_invoke();
            call.arg(PREFIX).arg(node);
            let codes: Vec<String> = bounded(call.invoke_async(&mut self.conn())).await?;
            Ok(decode(codes))
        })
    }
}
