// Cluster mode: several sockgate processes on one private redis-server
// behave as one, and ride out a Redis outage.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { api, API_KEY, benchBinary, ended, eventually, next, now, refusal, run, SECRET, sessionIdOf, sign, startGateway, startRedis, freePort } from "./helpers.mjs";

/** Every key and value in the Redis on `port`, as one string. */
function redisContents(port) {
  const cli = (...args) => execFileSync("redis-cli", ["-p", String(port), ...args], { encoding: "utf8" });
  const read = { hash: ["HGETALL"], zset: ["ZRANGE", "0", "-1"], set: ["SMEMBERS"], string: ["GET"], list: ["LRANGE", "0", "-1"] };
  return cli("--scan")
    .split("\n")
    .filter(Boolean)
    .map((key) => {
      const [cmd, ...rest] = read[cli("TYPE", key).trim()] ?? ["TYPE"];
      return `${key} ${cli(cmd, key, ...rest)}`;
    })
    .join("\n");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const caps = { rooms: ["chat:*"] };

async function ready(gw) {
  const res = await fetch(`${gw.url}/readyz`);
  return res.status;
}

describe("two nodes", () => {
  let redis;
  let a;
  let b;
  before(async () => {
    redis = await startRedis();
    const env = { SOCKGATE_REDIS_URL: redis.url, SOCKGATE_API_KEY: API_KEY };
    a = await startGateway(env);
    b = await startGateway(env);
  });
  after(async () => {
    await a.stop();
    await b.stop();
    await redis.stop();
  });

  test("both nodes are ready", async () => {
    assert.equal(await ready(a), 200);
    assert.equal(await ready(b), 200);
  });

  test("a room message crosses nodes, and presence covers both", async () => {
    const alice = await a.connect({ auth: { token: sign({ sub: "alice", ...caps }) } });
    const bob = await b.connect({ auth: { token: sign({ sub: "bob", ...caps }) } });
    assert.equal((await alice.emitWithAck("room:join", { room: "chat:x" })).ok, true);
    const joined = await bob.emitWithAck("room:join", { room: "chat:x" });
    assert.equal(joined.members, 2, "the join count spans nodes");
    const got = next(bob, "room:message");
    assert.equal((await alice.emitWithAck("room:publish", { room: "chat:x", data: { hi: 1 } })).ok, true);
    const m = await got;
    assert.deepEqual([m.from, m.room, m.data], ["alice", "chat:x", { hi: 1 }]);
    const presence = await eventually(async () => {
      const r = (await api(a, "GET", "/api/rooms/chat:x/members")).body.members;
      return r.length === 2 && r;
    });
    assert.deepEqual(presence, ["alice", "bob"]);
    const seen = await bob.emitWithAck("room:members", { room: "chat:x" });
    assert.equal(seen.code, "FORBIDDEN", "presence still needs the right");
  });

  test("/api/publish to a user reaches its sockets on both nodes", async () => {
    const onA = await a.connect({ auth: { token: sign({ sub: "carl" }) } });
    const onB = await b.connect({ auth: { token: sign({ sub: "carl" }) } });
    const got = [next(onA, "notification"), next(onB, "notification")];
    const res = await api(a, "POST", "/api/publish", { body: { user: "carl", event: "notification", data: { n: 1 } } });
    assert.deepEqual(res.body, { delivered: 1 }, "delivered counts this node's sockets");
    assert.deepEqual(await Promise.all(got), [{ n: 1 }, { n: 1 }]);
  });

  test("socketsJoin through node A moves a room's sockets on node B too", async () => {
    const onA = await a.connect({ auth: { token: sign({ sub: "dora", ...caps }) } });
    const onB = await b.connect({ auth: { token: sign({ sub: "ed", ...caps }) } });
    for (const s of [onA, onB]) assert.equal((await s.emitWithAck("room:join", { room: "chat:move" })).ok, true);
    const res = await api(a, "POST", "/api/rooms/chat:moved/join", { body: { room: "chat:move" } });
    assert.deepEqual(res.body, { moved: 1 }, "moved counts this node's sockets");
    const members = await eventually(async () => {
      const m = (await api(b, "GET", "/api/rooms/chat:moved/members")).body.members;
      return m.length === 2 && m;
    });
    assert.deepEqual(members, ["dora", "ed"]);
    const got = next(onB, "news");
    await api(a, "POST", "/api/publish", { body: { room: "chat:moved", event: "news", data: "both" } });
    assert.equal(await got, "both");
    // A user's sockets and one session, named on node A, held by node B.
    assert.deepEqual((await api(a, "POST", "/api/rooms/chat:ed/join", { body: { user: "ed" } })).body, { moved: 0 });
    const sid = await sessionIdOf(onB);
    assert.deepEqual((await api(a, "POST", "/api/rooms/chat:one/join", { body: { sessionId: sid } })).body, { moved: 0 });
    for (const room of ["chat:ed", "chat:one"]) {
      await eventually(async () => (await api(b, "GET", `/api/rooms/${room}/members`)).body.members.join() === "ed", 10000, room);
    }
    onA.close();
    onB.close();
  });

  test("a revocation on node A ends the socket on node B within 100 ms and holds on both", async () => {
    const token = sign({ sub: "rev", jti: "cluster-jti" });
    const onB = await b.connect({ auth: { token }, transports: ["websocket"] });
    const ending = ended(onB);
    await api(a, "GET", "/api/revocations"); // warm the HTTP connection
    const sent = Date.now();
    const res = await api(a, "POST", "/api/revocations", { body: { jti: "cluster-jti", expiresAt: now() + 600 } });
    assert.equal(res.status, 201);
    const { end, at } = await ending;
    assert.equal(end.code, "TOKEN_REVOKED");
    assert.ok(at - sent < 100, `ended ${at - sent} ms after the call on the other node`);
    assert.match((await refusal(b, { auth: { token } })).message, /^TOKEN_REVOKED: /);
    assert.match((await refusal(a, { auth: { token } })).message, /^TOKEN_REVOKED: /);
  });

  test("sockgate-bench measures fan-out and revocation across the two nodes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sockgate-bench-"));
    const env = { JWT_SECRET: SECRET, SOCKGATE_API_KEY: API_KEY };
    const nodes = ["--url", a.url, "--node", b.url, "--sources", "1", "--timeout", "60"];
    const report = async (scenario, args) => {
      const json = join(dir, `${scenario}.json`);
      const out = await run([scenario, ...nodes, "--json", json, ...args], env, benchBinary);
      assert.equal(out.code, 0, out.stdout + out.stderr);
      const r = JSON.parse(readFileSync(json, "utf8"));
      const metric = (key) => r.metrics.find((m) => m.key === key)?.value;
      return { r, metric };
    };

    const fan = await report("fanout", ["--members", "20", "--messages", "5"]);
    assert.equal(fan.metric("fanout.completed"), 5);
    // Half the members sit on node B; the publish call went to node A.
    assert.equal(fan.r.details.remote_delivery.count, 10 * 5);
    assert.equal(typeof fan.metric("fanout.remote.p99"), "number");

    const rev = await report("revoke", ["--connections", "20", "--rounds", "2"]);
    assert.equal(rev.r.details.ended, 40);
    assert.equal(rev.r.details.ended_by_api, 20, "the API counts what node A ended itself");
    assert.equal(rev.r.details.remote_latency.count, 20);
    assert.ok(rev.metric("revoke.remote.p99") < 1000, `p99 ${rev.metric("revoke.remote.p99")} ms`);
  });

  test("sessions list, kick and disconnect span nodes", async () => {
    const s1 = await a.connect({ auth: { token: sign({ sub: "dora" }) } });
    const s2 = await b.connect({ auth: { token: sign({ sub: "dora" }) } });
    const listed = await eventually(async () => {
      const r = (await api(a, "GET", "/api/sessions?user=dora")).body.sessions;
      return r.length === 2 && r;
    });
    const [id1, id2] = [await sessionIdOf(s1), await sessionIdOf(s2)];
    assert.deepEqual(listed.map((s) => s.sessionId).sort(), [id1, id2].sort());
    // Redis holds public session ids, never an Engine.IO sid (a credential).
    const stored = redisContents(redis.port);
    assert.ok(stored.includes(id1) && stored.includes(id2), "the sessions are in Redis");
    for (const sid of [s1.id, s2.id, s1.io.engine.id, s2.io.engine.id]) assert.ok(!stored.includes(sid), `Redis holds the sid ${sid}`);
    const ending = ended(s2);
    assert.equal((await api(a, "DELETE", `/api/sessions/${id2}`)).status, 200);
    assert.equal((await ending).end.code, "KICKED");
    const s3 = await b.connect({ auth: { token: sign({ sub: "dora" }) } });
    const endings = [ended(s1), ended(s3)];
    const res = await api(b, "POST", "/api/users/dora/disconnect");
    assert.equal(res.body.ended, 2);
    for (const { end } of await Promise.all(endings)) assert.equal(end.code, "KICKED");
  });
});

describe("session limits across nodes", () => {
  let redis;
  const nodes = [];
  before(async () => (redis = await startRedis()));
  after(async () => {
    for (const n of nodes) await n.stop();
    await redis.stop();
  });

  test("reject: the limit counts sessions on every node", async () => {
    const env = { SOCKGATE_REDIS_URL: redis.url, SOCKGATE_MAX_SESSIONS_PER_USER: "2", SOCKGATE_SESSION_LIMIT_POLICY: "reject" };
    const [a, b] = [await startGateway(env), await startGateway(env)];
    nodes.push(a, b);
    const first = await a.connect({ auth: { token: sign({ sub: "lim" }) } });
    await b.connect({ auth: { token: sign({ sub: "lim" }) } });
    assert.match((await refusal(a, { auth: { token: sign({ sub: "lim" }) } })).message, /^SESSION_LIMIT: /);
    assert.match((await refusal(b, { auth: { token: sign({ sub: "lim" }) } })).message, /^SESSION_LIMIT: /);
    first.disconnect();
    await eventually(async () => {
      try {
        await b.connect({ auth: { token: sign({ sub: "lim" }) } });
        return true;
      } catch {
        return false;
      }
    }, 5000, "a freed slot");
  });

  test("evict-oldest: the oldest session ends, even on another node", async () => {
    const env = { SOCKGATE_REDIS_URL: redis.url, SOCKGATE_MAX_SESSIONS_PER_USER: "2", SOCKGATE_SESSION_LIMIT_POLICY: "evict-oldest" };
    const [a, b] = [await startGateway(env), await startGateway(env)];
    nodes.push(a, b);
    const oldest = await a.connect({ auth: { token: sign({ sub: "evi" }) } });
    await sleep(20);
    const middle = await b.connect({ auth: { token: sign({ sub: "evi" }) } });
    const ending = ended(oldest);
    const newest = await b.connect({ auth: { token: sign({ sub: "evi" }) } });
    assert.equal((await ending).end.code, "SESSION_EVICTED");
    assert.ok(middle.connected && newest.connected);
  });
});

test("Redis outage: nodes keep serving locally, report degraded, and resume by themselves", async () => {
  const redis = await startRedis();
  const env = { SOCKGATE_REDIS_URL: redis.url, SOCKGATE_API_KEY: API_KEY };
  const a = await startGateway(env);
  const b = await startGateway(env);
  let restarted;
  try {
    const revoked = sign({ sub: "ghost", jti: "before-outage" });
    assert.equal((await api(a, "POST", "/api/revocations", { body: { jti: "before-outage", expiresAt: now() + 600 } })).status, 201);
    const a1 = await a.connect({ auth: { token: sign({ sub: "a1", ...caps }) } });
    const a2 = await a.connect({ auth: { token: sign({ sub: "a2", ...caps }) } });
    const b1 = await b.connect({ auth: { token: sign({ sub: "b1", ...caps }) } });
    for (const s of [a1, a2, b1]) await s.emitWithAck("room:join", { room: "chat:outage" });

    await redis.stop();
    await eventually(async () => (await ready(a)) === 503 && (await ready(b)) === 503, 10000, "degraded readiness");
    assert.deepEqual((await (await fetch(`${a.url}/readyz`)).json()), { status: "degraded", redis: "unreachable" });
    // Local service goes on: events, local room delivery, new handshakes,
    // and revocations made before the outage still hold.
    assert.deepEqual(await a1.emitWithAck("echo", "still"), "still");
    const local = next(a2, "room:message", 3000);
    assert.equal((await a1.emitWithAck("room:publish", { room: "chat:outage", data: "local" })).ok, true);
    assert.equal((await local).data, "local");
    const fresh = await b.connect({ auth: { token: sign({ sub: "newcomer" }) } });
    assert.equal((await fresh.emitWithAck("auth:whoami")).userId, "newcomer");
    assert.match((await refusal(b, { auth: { token: revoked } })).message, /^TOKEN_REVOKED: /);

    restarted = await startRedis(redis.port);
    await eventually(async () => (await ready(a)) === 200 && (await ready(b)) === 200, 15000, "readiness after Redis is back");
    // Cross-node delivery resumes without a restart.
    await eventually(async () => {
      const got = next(b1, "room:message", 1000).catch(() => null);
      await a1.emitWithAck("room:publish", { room: "chat:outage", data: "across" });
      return (await got)?.data === "across";
    }, 15000, "cross-node delivery after recovery");
    const members = await eventually(async () => {
      const r = (await api(b, "GET", "/api/rooms/chat:outage/members")).body.members;
      return r.length === 3 && r;
    }, 10000, "presence after recovery");
    assert.deepEqual(members, ["a1", "a2", "b1"]);
    // Redis came back empty: the nodes gave it their revocations again.
    const listed = await api(b, "GET", "/api/revocations");
    assert.ok(listed.body.tokens.some((t) => t.jti === "before-outage"));
    assert.match((await refusal(b, { auth: { token: revoked } })).message, /^TOKEN_REVOKED: /);
  } finally {
    await a.stop();
    await b.stop();
    await (restarted ?? redis).stop();
  }
});

test("a node that cannot reach Redis at start says so and exits non-zero", async () => {
  const port = await freePort();
  const out = await run(["serve"], {
    JWT_SECRET: "x".repeat(40),
    SOCKGATE_LISTEN: "127.0.0.1:0",
    SOCKGATE_REDIS_URL: `redis://user:hunter2@127.0.0.1:${port}`,
    SOCKGATE_DATA_DIR: `/tmp/sockgate-noredis-${port}`,
  });
  assert.equal(out.code, 2);
  assert.match(out.stderr, new RegExp(`cannot reach Redis at redis://127.0.0.1:${port}`));
  assert.ok(!out.stderr.includes("hunter2"), "the password is never printed");
});
