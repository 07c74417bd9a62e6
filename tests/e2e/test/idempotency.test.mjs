// Idempotent publishing: a publish with an idempotencyKey is delivered once
// within SOCKGATE_IDEMPOTENCY_WINDOW, on one node and across a cluster,
// with recovery's history (the default) and without it.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { api, API_KEY, eventually, run, sign, startGateway, startRedis } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A socket of `user` that records every `event` it gets. */
async function listener(gw, user, event = "note") {
  const socket = await gw.connect({ auth: { token: sign({ sub: user }) } });
  const got = [];
  socket.on(event, (data) => got.push(data));
  return { socket, got };
}

const publish = (gw, body) => api(gw, "POST", "/api/publish", { body: { event: "note", ...body } });

for (const [name, extra] of [
  ["with recovery's history", {}],
  ["without recovery", { SOCKGATE_RECOVERY_WINDOW: "0" }],
]) {
  describe(`one node, ${name}`, () => {
    let gw;
    before(async () => {
      gw = await startGateway({ SOCKGATE_API_KEY: API_KEY, SOCKGATE_IDEMPOTENCY_WINDOW: "2", ...extra });
    });
    after(() => gw.stop());

    test("a repeated key is acknowledged as a duplicate and delivered once", async () => {
      const { socket, got } = await listener(gw, "idem-one");
      const first = await publish(gw, { user: "idem-one", data: 1, idempotencyKey: "k-1" });
      assert.deepEqual([first.status, first.body], [200, { delivered: 1 }]);
      const again = await publish(gw, { user: "idem-one", data: 2, idempotencyKey: "k-1" });
      assert.deepEqual([again.status, again.body], [200, { delivered: 0, duplicate: true }]);
      // Another key, and no key, are delivered.
      assert.deepEqual((await publish(gw, { user: "idem-one", data: 3, idempotencyKey: "k-2" })).body, { delivered: 1 });
      assert.deepEqual((await publish(gw, { user: "idem-one", data: 4 })).body, { delivered: 1 });
      assert.deepEqual((await publish(gw, { user: "idem-one", data: 5 })).body, { delivered: 1 });
      await eventually(() => got.length === 4);
      await sleep(200);
      assert.deepEqual(got, [1, 3, 4, 5]);

      // Once the window has passed, the key is new again.
      await sleep(2200);
      assert.deepEqual((await publish(gw, { user: "idem-one", data: 6, idempotencyKey: "k-1" })).body, { delivered: 1 });
      await eventually(() => got.length === 5);
      assert.equal(got[4], 6);
      socket.close();
    });

    test("many retries of one key at once: exactly one is delivered", async () => {
      const { socket, got } = await listener(gw, "idem-race");
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => publish(gw, { user: "idem-race", data: i, idempotencyKey: "race" })),
      );
      assert.equal(answers.filter((a) => a.body.duplicate === true).length, 19);
      assert.equal(answers.filter((a) => a.body.delivered === 1).length, 1);
      await eventually(() => got.length === 1);
      await sleep(300);
      assert.equal(got.length, 1);
      socket.close();
    });

    test("a key that breaks the rules is 400 and delivers nothing", async () => {
      const { socket, got } = await listener(gw, "idem-bad");
      for (const idempotencyKey of ["", "x".repeat(129), "a\nb", 7]) {
        const res = await publish(gw, { user: "idem-bad", data: 1, idempotencyKey });
        assert.equal(res.status, 400, `key ${JSON.stringify(idempotencyKey)}`);
        assert.equal(res.body.error.code, "INVALID_REQUEST");
      }
      // 128 bytes is the most, and fine.
      assert.deepEqual((await publish(gw, { user: "idem-bad", data: 2, idempotencyKey: "é".repeat(64) })).body, { delivered: 1 });
      await eventually(() => got.length === 1);
      assert.deepEqual(got, [2]);
      socket.close();
    });
  });
}

describe("an out-of-range window refuses to start", () => {
  test("SOCKGATE_IDEMPOTENCY_WINDOW=0", async () => {
    const out = await run(["serve"], { JWT_SECRET: "x".repeat(40), SOCKGATE_IDEMPOTENCY_WINDOW: "0", SOCKGATE_LISTEN: "127.0.0.1:0" });
    assert.equal(out.code, 2);
    assert.match(out.stderr, /SOCKGATE_IDEMPOTENCY_WINDOW: must be 1 to 86400 seconds/);
  });
});

for (const [name, extra] of [
  ["with recovery's history", {}],
  ["without recovery", { SOCKGATE_RECOVERY_WINDOW: "0" }],
]) {
  describe(`two nodes, ${name}`, () => {
    let redis;
    let a;
    let b;
    before(async () => {
      redis = await startRedis();
      const env = { SOCKGATE_REDIS_URL: redis.url, SOCKGATE_API_KEY: API_KEY, ...extra };
      a = await startGateway(env);
      b = await startGateway(env);
    });
    after(async () => {
      await a.stop();
      await b.stop();
      await redis.stop();
    });

    test("the window is the cluster's: a key seen by one node is a duplicate on the other", async () => {
      const onA = await listener(a, "idem-cluster");
      const onB = await listener(b, "idem-cluster");
      const answers = await Promise.all([
        publish(a, { user: "idem-cluster", data: "x", idempotencyKey: "cluster-1" }),
        publish(b, { user: "idem-cluster", data: "y", idempotencyKey: "cluster-1" }),
        publish(a, { user: "idem-cluster", data: "z", idempotencyKey: "cluster-1" }),
      ]);
      assert.equal(answers.filter((r) => r.body.duplicate).length, 2, JSON.stringify(answers.map((r) => r.body)));
      await eventually(() => onA.got.length === 1 && onB.got.length === 1);
      await sleep(300);
      assert.equal(onA.got.length + onB.got.length, 2, "each socket got it once");
      assert.deepEqual(onA.got, onB.got, "both got the same one");
      onA.socket.close();
      onB.socket.close();
    });

    test("while Redis is away, a keyed publish is 503 BACKEND_UNAVAILABLE and an unkeyed one still reaches this node", async () => {
      const here = await listener(a, "idem-away");
      await redis.stop();
      await eventually(async () => (await fetch(`${a.url}/readyz`)).status === 503, 15000, "node A noticing Redis is away");
      const keyed = await publish(a, { user: "idem-away", data: 1, idempotencyKey: "away-1" });
      assert.equal(keyed.status, 503);
      assert.equal(keyed.body.error.code, "BACKEND_UNAVAILABLE");
      const plain = await publish(a, { user: "idem-away", data: 2 });
      assert.deepEqual(plain.body, { delivered: 1 });
      await eventually(() => here.got.length === 1);
      await sleep(200);
      assert.deepEqual(here.got, [2], "the refused keyed publish reached nobody");
      here.socket.close();
    });
  });
}
