// A cluster's control channel under attack and under a partition (security
// review): forged announcements are ignored, and revocations made by a node
// cut off from Redis reach every node once it is back.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createServer, connect } from "node:net";
import { api, API_KEY, ended, eventually, now, sign, startGateway, startRedis } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ready = async (gw) => (await fetch(`${gw.url}/readyz`)).status;

/**
 * A TCP proxy in front of Redis that can be cut like a network partition:
 * while cut it accepts and holds connections but forwards nothing, so the
 * node sees silence rather than an error.
 */
async function partitionableProxy(target) {
  const proxy = { cut: false, pairs: new Set() };
  proxy.server = createServer((client) => {
    const upstream = connect(target, "127.0.0.1");
    const pair = { client, upstream };
    proxy.pairs.add(pair);
    const forward = (from, to) =>
      from.on("data", (d) => {
        if (!proxy.cut) to.write(d);
      });
    forward(client, upstream);
    forward(upstream, client);
    const close = () => {
      client.destroy();
      upstream.destroy();
      proxy.pairs.delete(pair);
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  await new Promise((r) => proxy.server.listen(0, "127.0.0.1", r));
  proxy.url = `redis://127.0.0.1:${proxy.server.address().port}`;
  proxy.heal = () => {
    proxy.cut = false;
    // What was sent into the void is lost: the connections are reset.
    for (const { client, upstream } of proxy.pairs) {
      client.destroy();
      upstream.destroy();
    }
  };
  proxy.close = () => {
    proxy.heal();
    proxy.server.close();
  };
  return proxy;
}

test("a revocation made on a node cut off from Redis reaches the other nodes when it is back", async () => {
  const redis = await startRedis();
  const proxy = await partitionableProxy(redis.port);
  const a = await startGateway({ SOCKGATE_REDIS_URL: proxy.url, SOCKGATE_API_KEY: API_KEY });
  const b = await startGateway({ SOCKGATE_REDIS_URL: redis.url, SOCKGATE_API_KEY: API_KEY });
  try {
    await eventually(async () => (await ready(a)) === 200 && (await ready(b)) === 200, 10000, "cluster ready");
    const healthy = await api(a, "POST", "/api/revocations", { body: { jti: "while-healthy", expiresAt: now() + 300 } });
    assert.equal(healthy.body.shared, true);

    const victim = await b.connect({ auth: { token: sign({ sub: "px", jti: "partitioned" }) } });
    proxy.cut = true;
    const cutAt = Date.now();
    // Node A notices the silence within seconds, and says so.
    await eventually(async () => (await ready(a)) === 503, 5000, "A degraded");
    assert.ok(Date.now() - cutAt < 5000);
    const res = await api(a, "POST", "/api/revocations", { body: { jti: "partitioned", expiresAt: now() + 300 } });
    assert.equal(res.status, 201);
    assert.equal(res.body.shared, false, "the answer says the other nodes were not told");
    await sleep(500);
    assert.ok(victim.connected, "node B could not know yet");

    const ending = ended(victim, 20000);
    proxy.heal();
    await eventually(async () => (await ready(a)) === 200, 15000, "A back");
    const { end } = await ending;
    assert.equal(end.code, "TOKEN_REVOKED");
  } finally {
    await a.stop();
    await b.stop();
    proxy.close();
    await redis.stop();
  }
});

test("announcements forged by a Redis writer are ignored", async () => {
  const redis = await startRedis();
  const env = { SOCKGATE_REDIS_URL: redis.url, SOCKGATE_API_KEY: API_KEY };
  const a = await startGateway(env);
  const b = await startGateway(env);
  try {
    await eventually(async () => (await ready(a)) === 200 && (await ready(b)) === 200, 10000, "cluster ready");
    const alice = await a.connect({ auth: { token: sign({ sub: "alice" }) } });
    let ends = 0;
    alice.on("session:end", () => ends++);
    const publish = (msg) => execFileSync("redis-cli", ["-p", String(redis.port), "PUBLISH", "sockgate:control", JSON.stringify(msg)]);
    publish({ kind: "end_user", user_id: "alice" });
    publish({ kind: "revoke_user", user_id: "alice", issued_before: 18446744073709551615 });
    await sleep(1000);
    assert.equal(ends, 0, "alice was not kicked");
    assert.ok(alice.connected);
    // Nothing was persisted either: alice can still connect, on both nodes.
    for (const gw of [a, b]) {
      const s = await gw.connect({ auth: { token: sign({ sub: "alice" }) } });
      assert.equal((await s.emitWithAck("auth:whoami")).userId, "alice");
    }
    assert.ok(a.logs.some((l) => l.includes("without a valid seal")), "the forgery was noticed");
    // Genuine announcements still work.
    const kicked = ended(alice);
    assert.equal((await api(b, "POST", "/api/users/alice/disconnect")).status, 200);
    assert.equal((await kicked).end.code, "KICKED");
  } finally {
    await a.stop();
    await b.stop();
    await redis.stop();
  }
});

test("cluster mode without any shared secret refuses to start", async () => {
  const redis = await startRedis();
  try {
    await assert.rejects(
      startGateway({ SOCKGATE_REDIS_URL: redis.url, JWT_SECRET: undefined, SOCKGATE_JWT_PUBLIC_KEY: "tests/fixtures/keys/ec256.pub" }),
      /SOCKGATE_CLUSTER_SECRET: cluster mode needs a secret/,
    );
  } finally {
    await redis.stop();
  }
});
