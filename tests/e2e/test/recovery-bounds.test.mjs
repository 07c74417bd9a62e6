// The recovery history's bounds, with the official client against the real
// binary, on one node (memory) and in a cluster (Redis):
// - it holds at most SOCKGATE_RECOVERY_HISTORY_BYTES, however well a flood
//   compressed on the wire;
// - what the window has passed goes even when nothing more is published;
// - a flood in one room pushes out that room's messages, not the others';
// - a recovery offset older than the session replays nothing from before it.
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { api, API_KEY, eventually, sign, startGateway, startRedis } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const caps = { rooms: ["chat:*"] };
const MiB = 1024 * 1024;

/** The resident memory of a process, in bytes. */
function rss(pid) {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("VmRSS:"));
  return Number(line.split(/\s+/)[1]) * 1024;
}

/** A client of `user` in `room`, over a WebSocket (compressed: the client offers it). */
async function member(gw, user, room, extra = {}) {
  const socket = await gw.connect({ transports: ["websocket"], auth: { token: sign({ sub: user, ...caps }) }, ...extra });
  assert.equal((await socket.emitWithAck("room:join", { room })).ok, true);
  return socket;
}

/**
 * Publishes `count` messages to `room` from `sockets` clients of mallory, each
 * with `size` bytes of one repeated letter: they cost next to nothing on the
 * wire (permessage-deflate) and their size in the history.
 */
async function flood(gw, room, { count, size = 16, sockets = 1 }) {
  const pad = "x".repeat(size);
  const clients = [];
  for (let i = 0; i < sockets; i++) clients.push(await member(gw, "mallory", room));
  const per = Math.ceil(count / sockets);
  await Promise.all(
    clients.map(async (socket, i) => {
      for (let n = i * per; n < Math.min(count, (i + 1) * per); n++) {
        const ack = await socket.emitWithAck("room:publish", { room, data: { pad, n } });
        assert.equal(ack.ok, true, JSON.stringify(ack));
      }
    }),
  );
  for (const socket of clients) socket.close();
}

/** Publishes `{ n }` as `news` to `room` through the admin API. */
async function publish(gw, room, n) {
  const res = await api(gw, "POST", "/api/publish", { body: { room, event: "news", data: { n } } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
}

/** The `n` of every news `socket` gets. */
function record(socket) {
  const got = [];
  socket.on("news", (data) => got.push(data.n));
  return got;
}

/** Drops `socket`'s transport, runs `meanwhile`, reconnects it and resolves once it is back. */
async function dropAndReconnect(socket, meanwhile) {
  socket.io.engine.close();
  await sleep(100);
  await meanwhile();
  const back = new Promise((resolve) => socket.once("connect", resolve));
  socket.connect();
  await back;
}

/** Run against one node, then against two nodes on one Redis. */
for (const mode of ["one node", "a cluster"]) {
  describe(`recovery history bounds on ${mode}`, () => {
    let redis;
    before(async () => {
      if (mode === "a cluster") redis = await startRedis();
    });
    after(async () => redis?.stop());
    // Each test starts from an empty history.
    beforeEach(() => redis && cli("FLUSHALL"));

    /** A gateway with `env`, on the cluster's Redis in cluster mode. */
    const gateway = (env) =>
      startGateway({ SOCKGATE_API_KEY: API_KEY, ...(redis ? { SOCKGATE_REDIS_URL: redis.url } : {}), ...env });
    const cli = (...args) => execFileSync("redis-cli", ["-p", String(redis.port), ...args], { encoding: "utf8" }).trim();

    test("a flood in one room pushes out that room's messages, not another room's", async () => {
      const env = { SOCKGATE_RECOVERY_HISTORY: "20", SOCKGATE_RECOVERY_HISTORY_BYTES: "400000" };
      const a = await gateway(env);
      const b = redis ? await gateway(env) : a;
      try {
        const alice = await member(a, "alice", "chat:quiet");
        const bob = await member(a, "bob", "chat:spam");
        const got = record(alice);
        const id = alice.id;
        await dropAndReconnect(alice, async () => {
          await dropAndReconnect(bob, async () => {
            await publish(b, "chat:quiet", 1);
            // Far past both bounds: 40 messages, 10 of 30 KB.
            await flood(b, "chat:spam", { count: 30 });
            await flood(b, "chat:spam", { count: 10, size: 30_000 });
          });
        });
        assert.equal(alice.recovered, true, "the quiet room's member recovers");
        assert.equal(alice.id, id);
        await eventually(() => got.length === 1, 5000, "the quiet room's message");
        assert.deepEqual(got, [1]);
        assert.equal(bob.recovered, false, "the flooded room's member starts fresh: never a gap");
        alice.close();
        bob.close();
      } finally {
        await a.stop();
        if (b !== a) await b.stop();
      }
    });

    test("a recovery offset older than the session replays nothing from before it connected", async () => {
      const gw = await gateway({});
      try {
        // Kept in the history before alice's session connects.
        await publish(gw, "chat:r", 1);
        await publish(gw, "chat:r", 2);
        await sleep(50);
        const alice = await member(gw, "alice", "chat:r");
        const got = record(alice);
        await publish(gw, "chat:r", 3);
        await eventually(() => got.length === 1, 5000, "a live message");
        await dropAndReconnect(alice, async () => {
          await publish(gw, "chat:r", 4);
          // An offset from long before the session, as a client may keep
          // from an older one.
          alice._lastOffset = "0-0";
        });
        assert.equal(alice.recovered, true);
        await eventually(() => got.length >= 3, 5000, "the replay");
        await sleep(200);
        assert.deepEqual(got, [3, 3, 4], "3 live, then 3 and 4 again: nothing from before the session");
        alice.close();
      } finally {
        await gw.stop();
      }
    });

    if (mode === "one node") {
      test("compressed floods pin at most SOCKGATE_RECOVERY_HISTORY_BYTES of memory", async () => {
        const gw = await gateway({ SOCKGATE_RECOVERY_HISTORY_BYTES: String(MiB) });
        try {
          // Warm up: connections, buffers and compression contexts.
          await flood(gw, "chat:spam", { count: 30, size: 60_000, sockets: 3 });
          const start = rss(gw.child.pid);
          // 480 messages of 60 KB: 28 MB of data, a few KB on the wire.
          await flood(gw, "chat:spam", { count: 480, size: 60_000, sockets: 3 });
          const grown = rss(gw.child.pid) - start;
          assert.ok(grown < 12 * MiB, `the server grew by ${(grown / MiB).toFixed(1)} MiB`);
        } finally {
          await gw.stop();
        }
      });
    } else {
      test("the Redis stream holds at most SOCKGATE_RECOVERY_HISTORY_BYTES", async () => {
        const gw = await gateway({ SOCKGATE_RECOVERY_HISTORY_BYTES: String(MiB) });
        try {
          // 100 messages of 60 KB: 6 MB of data.
          await flood(gw, "chat:spam", { count: 100, size: 60_000, sockets: 2 });
          const held = Number(cli("MEMORY", "USAGE", "sockgate:history", "SAMPLES", "0"));
          assert.ok(held < 2 * MiB, `the stream holds ${(held / MiB).toFixed(1)} MiB`);
          assert.ok(Number(cli("XLEN", "sockgate:history")) < 20);
        } finally {
          await gw.stop();
        }
      });

      test("what the window has passed leaves the Redis stream with nothing more published", async () => {
        // The stream itself expires two windows after the last message (10 s):
        // the messages must go before, a window after they came.
        const gw = await gateway({ SOCKGATE_RECOVERY_WINDOW: "5" });
        try {
          for (const n of [1, 2, 3]) await publish(gw, "chat:r", n);
          const published = Date.now();
          assert.equal(cli("XLEN", "sockgate:history"), "3");
          await eventually(() => cli("XLEN", "sockgate:history") === "0", 8500, "the stream trimmed");
          assert.ok(Date.now() - published >= 4500, "not before the window passed");
        } finally {
          await gw.stop();
        }
      });
    }
  });
}
