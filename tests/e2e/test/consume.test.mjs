// Consumers: sockgate publishes what the app puts in its queues to
// Socket.IO clients. The same suite runs against each broker (a Redis
// stream, NATS JetStream, RabbitMQ, a PostgreSQL outbox), each test on a
// stream, subject, queue or table of its own that it removes afterwards.
// The producers below are the code docs/queues.md shows.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "redis";
import { connect as natsConnect } from "nats";
import amqp from "amqplib";
import pg from "pg";
import { api, API_KEY, eventually, sessionIdOf, sign, startGateway, startProxy, startRedis } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const NATS_PORT = 4222;
const AMQP_PORT = 5672;
const PG_PORT = 5432;
const AMQP_URL = (port) => `amqp://guest:guest@127.0.0.1:${port}/%2f`;
const PG_URL = (port) => `postgres://postgres@127.0.0.1:${port}/test`;
const REFUSED = "a queued message was refused; it is acknowledged and the next one taken";

// ---------------------------------------------------------------------------
// The producers. `queue(id, opts)` makes a queue of the test's own and
// returns { id, consumer, env, send(text), left(), cut(), restore(),
// cleanup() }: `env` points sockgate at it (through a TCP proxy with
// `proxied`), `send` enqueues one message body, `left()` says what the
// broker still holds ({ unacked, waiting }), `cut`/`restore` make the broker
// go away and come back.
// ---------------------------------------------------------------------------

const redisBroker = {
  name: "Redis Streams",
  rawJson: true,
  async open() {},
  async close() {},
  async queue(id) {
    // Its own redis-server: an outage is this server stopped and started
    // again on the same port.
    let server = await startRedis();
    const stream = `sg:${id}`;
    const producer = async () => {
      // docs/queues.md: the producer.
      const redis = await createClient({ url: server.url })
        .on("error", (err) => console.error(err))
        .connect();
      return redis;
    };
    let redis = await producer();
    const cli = (...args) => execFileSync("redis-cli", ["-p", String(server.port), ...args], { encoding: "utf8" }).trim();
    const close = () => {
      try {
        redis.destroy();
      } catch {}
    };
    return {
      id,
      consumer: `redis:${stream}`,
      env: { SOCKGATE_CONSUME_REDIS_URL: server.url, SOCKGATE_CONSUME_REDIS_STREAM: stream },
      toml: { kind: "redis", url: server.url, stream, claim_idle: 1 },
      send: (payload) => redis.xAdd(stream, "*", { payload }),
      sendsWhileCut: false,
      async left() {
        const unacked = Number(cli("XPENDING", stream, "sockgate").split("\n")[0]);
        const info = cli("XINFO", "GROUPS", stream).split("\n");
        const lag = info[info.indexOf("lag") + 1];
        assert.match(lag, /^\d+$/, `the group's lag: ${info.join(" ")}`);
        return { unacked, waiting: Number(lag) };
      },
      async cut() {
        close();
        await server.stop();
      },
      async restore() {
        server = await startRedis(server.port);
        redis = await producer();
      },
      async cleanup() {
        try {
          cli("DEL", stream);
        } catch {}
        close();
        await server.stop();
      },
    };
  },
};

const natsBroker = {
  name: "NATS JetStream",
  rawJson: true,
  async open() {
    // docs/queues.md: the producer.
    this.nc = await natsConnect({ servers: `nats://127.0.0.1:${NATS_PORT}` });
    this.js = this.nc.jetstream();
    this.jsm = await this.nc.jetstreamManager();
  },
  async close() {
    await this.nc?.close();
  },
  async queue(id, { proxied } = {}) {
    const { js, jsm } = this;
    const proxy = proxied ? await startProxy(NATS_PORT) : null;
    const stream = `sg-${id}`;
    const subject = `sg.${id}`;
    return {
      id,
      consumer: `nats:${stream}`,
      env: {
        SOCKGATE_CONSUME_NATS_URL: `nats://127.0.0.1:${proxy?.port ?? NATS_PORT}`,
        SOCKGATE_CONSUME_NATS_STREAM: stream,
        SOCKGATE_CONSUME_NATS_SUBJECT: subject,
      },
      toml: { kind: "nats", url: `nats://127.0.0.1:${NATS_PORT}`, stream, subject, ack_wait: 1 },
      send: (payload) => js.publish(subject, payload),
      sendsWhileCut: true,
      async left() {
        const c = await jsm.consumers.info(stream, "sockgate");
        return { unacked: c.num_ack_pending, waiting: c.num_pending };
      },
      cut: () => proxy.cut(),
      restore: () => proxy.resume(),
      async cleanup() {
        proxy?.stop();
        await jsm.streams.delete(stream).catch(() => {});
      },
    };
  },
};

const amqpBroker = {
  name: "RabbitMQ",
  rawJson: true,
  async open() {
    // docs/queues.md: the producer.
    this.conn = await amqp.connect(AMQP_URL(AMQP_PORT));
    this.channel = await this.conn.createConfirmChannel();
  },
  async close() {
    await this.conn?.close();
  },
  async queue(id, { proxied, deadLetters } = {}) {
    const { channel } = this;
    const proxy = proxied ? await startProxy(AMQP_PORT) : null;
    const queue = `sg-${id}`;
    const dead = `${queue}.dead`;
    const policy = `sg-dlx-${id}`;
    if (deadLetters) {
      // A dead-letter exchange given by a policy (the default exchange, to
      // the queue `dead`).
      await channel.assertQueue(dead, { durable: true });
      execFileSync("rabbitmqctl", ["-q", "set_policy", policy, `^${queue}$`, JSON.stringify({ "dead-letter-exchange": "", "dead-letter-routing-key": dead }), "--apply-to", "queues"]);
    }
    await channel.assertQueue(queue, { durable: true });
    return {
      id,
      consumer: `amqp:${queue}`,
      env: { SOCKGATE_CONSUME_AMQP_URL: AMQP_URL(proxy?.port ?? AMQP_PORT), SOCKGATE_CONSUME_AMQP_QUEUE: queue },
      toml: { kind: "amqp", url: AMQP_URL(AMQP_PORT), queue, prefetch: 10 },
      async send(payload) {
        channel.sendToQueue(queue, Buffer.from(payload), { persistent: true });
        await channel.waitForConfirms();
      },
      sendsWhileCut: true,
      async left() {
        // Unacknowledged messages go back to the queue when the consumer's
        // channel closes: count what is ready.
        const q = await channel.checkQueue(queue);
        return { unacked: 0, waiting: q.messageCount };
      },
      deadLettered: deadLetters ? async () => (await channel.checkQueue(dead)).messageCount : undefined,
      cut: () => proxy.cut(),
      restore: () => proxy.resume(),
      async cleanup() {
        proxy?.stop();
        await channel.deleteQueue(queue);
        if (deadLetters) {
          await channel.deleteQueue(dead);
          execFileSync("rabbitmqctl", ["-q", "clear_policy", policy]);
        }
      },
    };
  },
};

const postgresBroker = {
  name: "PostgreSQL outbox",
  // A jsonb column takes JSON only.
  rawJson: false,
  async open() {
    // docs/queues.md: the producer.
    this.pool = new pg.Pool({ connectionString: PG_URL(PG_PORT) });
  },
  async close() {
    await this.pool?.end();
  },
  async queue(id, { proxied } = {}) {
    const { pool } = this;
    const proxy = proxied ? await startProxy(PG_PORT) : null;
    const table = `sg_outbox_${id}`;
    const orders = `sg_orders_${id}`;
    await pool.query(`CREATE TABLE ${orders} (id bigserial PRIMARY KEY, item text NOT NULL)`);
    return {
      id,
      consumer: `postgres:${table}`,
      env: { SOCKGATE_CONSUME_POSTGRES_URL: PG_URL(proxy?.port ?? PG_PORT), SOCKGATE_CONSUME_POSTGRES_TABLE: table },
      toml: { kind: "postgres", url: PG_URL(PG_PORT), table, poll_ms: 200 },
      // The app's own write and the message, in one transaction.
      async send(payload) {
        const client = await pool.connect();
        try {
          await client.query("BEGIN");
          await client.query(`INSERT INTO ${orders} (item) VALUES ($1)`, ["book"]);
          await client.query(`INSERT INTO ${table} (payload) VALUES ($1)`, [payload]);
          await client.query("COMMIT");
        } catch (e) {
          await client.query("ROLLBACK");
          throw e;
        } finally {
          client.release();
        }
      },
      sendsWhileCut: true,
      async left() {
        const { rows } = await pool.query(`SELECT count(*)::int AS n FROM ${table}`);
        return { unacked: 0, waiting: rows[0].n };
      },
      cut: () => proxy.cut(),
      restore: () => proxy.resume(),
      async cleanup() {
        proxy?.stop();
        await pool.query(`DROP TABLE IF EXISTS ${table}, ${orders}`);
        await pool.query(`DROP FUNCTION IF EXISTS ${table}_notify()`);
      },
    };
  },
};

// ---------------------------------------------------------------------------

const newId = (tag) => `${tag}${randomBytes(4).toString("hex")}`;
const enqueue = (q, message) => q.send(JSON.stringify(message));

/** This consumer's figures on every node `gw`'s /api/stats shows. */
async function consumersOf(gw, name) {
  const res = await api(gw, "GET", "/api/stats");
  assert.equal(res.status, 200);
  return res.body.consumers.filter((c) => c.name === name);
}
const figures = async (gw, name) => (await consumersOf(gw, name))[0];

async function running(gw, name, nodes = 1) {
  await eventually(
    async () => {
      const all = await consumersOf(gw, name);
      return all.length === nodes && all.every((c) => c.state === "running");
    },
    15000,
    `${name} running on ${nodes} node(s)`,
  );
}

/** A socket of `user` that records the data of every `event`. */
async function listener(gw, user, event = "note") {
  const socket = await gw.connect({ auth: { token: sign({ sub: user }) } });
  const got = [];
  socket.on(event, (data) => got.push(data));
  return { socket, got };
}

/** How often each of 0..n-1 was received; throws on anything else. */
function tally(got, n) {
  const counts = new Array(n).fill(0);
  for (const i of got) {
    assert.ok(Number.isInteger(i) && i >= 0 && i < n, `unexpected ${JSON.stringify(i)}`);
    counts[i] += 1;
  }
  return {
    missing: counts.flatMap((c, i) => (c === 0 ? [i] : [])),
    twice: counts.flatMap((c, i) => (c > 1 ? [i] : [])),
  };
}

/**
 * Enqueues `n` messages spread over `ms`, `burst` at a time (sent at once,
 * so a consumer has several in hand); resolves when all are in.
 */
async function produce(q, n, ms, message, burst = 1) {
  const start = Date.now();
  for (let i = 0; i < n; i += burst) {
    const due = start + (i * ms) / n;
    if (due > Date.now()) await sleep(due - Date.now());
    const ids = Array.from({ length: Math.min(burst, n - i) }, (_, k) => i + k);
    await Promise.all(ids.map((k) => enqueue(q, message(k))));
  }
}

const logLines = (gw) =>
  gw.logs.flatMap((line) => {
    try {
      return [{ line, entry: JSON.parse(line) }];
    } catch {
      return [];
    }
  });

/**
 * Runs `fn` with a queue of the test's own; stops every gateway and
 * redis-server it started, then removes the queue.
 */
async function withQueue(broker, tag, opts, fn) {
  const q = await broker.queue(newId(tag), opts);
  const gateways = [];
  const redises = [];
  const ctx = {
    async start(env) {
      const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY, SOCKGATE_CONSUME_CLAIM_IDLE: "1", ...env });
      gateways.push(gw);
      return gw;
    },
    async redis() {
      const r = await startRedis();
      redises.push(r);
      return r;
    },
  };
  try {
    await fn(q, ctx);
  } finally {
    for (const gw of gateways) await gw.stop();
    for (const r of redises) await r.stop();
    await q.cleanup();
  }
}

for (const broker of [redisBroker, natsBroker, amqpBroker, postgresBroker]) {
  describe(broker.name, () => {
    before(() => broker.open());
    after(() => broker.close());

    test("the official client gets a queued message exactly once: to a user, and to a room a queued join put it in", async () => {
      await withQueue(broker, "a", {}, async (q, { start }) => {
        const gw = await start(q.env);
        await running(gw, q.consumer);
        const user = `u-${q.id}`;
        const room = `team:${q.id}`;
        const { socket, got: notes } = await listener(gw, user);
        const team = [];
        socket.on("team", (data) => team.push(data));
        const sessionId = await sessionIdOf(socket);

        await enqueue(q, { user, event: "note", data: { n: 1 } });
        await enqueue(q, { join: room, user });
        await enqueue(q, { room, event: "team", data: { n: 2 } });
        await eventually(() => notes.length >= 1 && team.length >= 1, 10000, "the user and room messages");
        assert.deepEqual((await api(gw, "GET", `/api/rooms/${room}/members`)).body.members, [user]);

        // A queued leave of this session; what follows is taken in order,
        // so the last note arrives after the room message it missed.
        await enqueue(q, { leave: room, sessionId });
        await enqueue(q, { room, event: "team", data: { n: 3 } });
        await enqueue(q, { user, event: "note", data: { n: 4 } });
        await eventually(() => notes.length >= 2, 10000, "the last note");
        await sleep(300);
        assert.deepEqual(notes, [{ n: 1 }, { n: 4 }]);
        assert.deepEqual(team, [{ n: 2 }], "the room message came once, and not after the leave");

        const f = await figures(gw, q.consumer);
        assert.equal(f.kind, q.consumer.split(":")[0]);
        assert.deepEqual([f.state, f.taken, f.duplicates, f.refused], ["running", 6, 0, 0]);
        assert.equal(f.node, "local");
      });
    });

    test("a repeated idempotencyKey is delivered once", async () => {
      await withQueue(broker, "b", {}, async (q, { start }) => {
        const gw = await start(q.env);
        await running(gw, q.consumer);
        const user = `u-${q.id}`;
        const { got } = await listener(gw, user);
        for (const [data, idempotencyKey] of [[1, "k-1"], [2, "k-1"], [3, "k-2"], [4, "k-1"], [5, undefined]]) {
          await enqueue(q, { user, event: "note", data, idempotencyKey });
        }
        await eventually(() => got.length >= 3, 10000, "three notes");
        await sleep(300);
        assert.deepEqual(got, [1, 3, 5]);
        const f = await eventually(async () => {
          const c = await figures(gw, q.consumer);
          return c.taken + c.duplicates === 5 && c;
        });
        assert.deepEqual([f.taken, f.duplicates, f.refused], [3, 2, 0]);
      });
    });

    test("SIGKILL of a consuming node with messages in flight, then a restart, loses none and repeats none", async () => {
      await withQueue(broker, "c", {}, async (q, { start, redis }) => {
        const cluster = await redis();
        const b = await start({ SOCKGATE_REDIS_URL: cluster.url });
        const nodeA = { SOCKGATE_REDIS_URL: cluster.url, ...q.env };
        const a = await start(nodeA);
        await running(a, q.consumer);
        const user = `u-${q.id}`;
        const { got } = await listener(b, user, "m");

        const N = 300;
        const producing = produce(q, N, 2000, (i) => ({ user, event: "m", data: i, idempotencyKey: `m-${i}` }), 15);
        await sleep(505);
        a.child.kill("SIGKILL");
        const beforeKill = got.length;
        const atKill = await q.left();
        await sleep(500);
        const a2 = await start(nodeA);
        await producing;
        await eventually(() => new Set(got).size === N, 30000, `all ${N} messages on node B`);
        await sleep(500);
        const { missing, twice } = tally(got, N);
        assert.deepEqual(missing, [], "lost");
        assert.deepEqual(twice, [], "delivered twice");
        assert.equal(got.length, N);
        assert.ok(beforeKill > 0 && beforeKill < N, `node A had delivered ${beforeKill} when it was killed`);
        const stats = (await api(a2, "GET", "/api/stats")).body;
        const mine = stats.consumers.find((c) => c.name === q.consumer && c.node === stats.nodes[0].id);
        console.log(`${broker.name}: ${beforeKill} delivered when node A was killed (the broker then held ${JSON.stringify(atKill)}); the new node took ${mine?.taken}, ${mine?.duplicates} duplicates`);
        assert.ok(mine?.taken > 0, "the new node delivered what node A left");
      });
    });

    test("a poison message is refused, logged with its reason and counted, and the good ones behind it arrive", async () => {
      await withQueue(broker, "d", { deadLetters: true }, async (q, { start }) => {
        const gw = await start(q.env);
        await running(gw, q.consumer);
        const user = `u-${q.id}`;
        const { got } = await listener(gw, user);
        const poisons = [
          [{ room: "r", event: "room:message", data: 1 }, /^INVALID_REQUEST: event `room:message` is reserved/],
          [{ room: "r", event: "session:end", data: 1 }, /^INVALID_REQUEST: event `session:end` is reserved/],
          [{ event: "x", data: 1 }, /^give exactly one of room, user or rooms$/],
          [{ room: "r", event: "e", extra: 1 }, /^not a publish: unknown field `extra`/],
          [{ room: "not a room", event: "e" }, /^ROOM_INVALID: /],
          [{ user, event: "note", data: "x".repeat(90000) }, /^the message is \d+ bytes; at most 81920 are taken/],
          [{ join: "team:1" }, /^give exactly one of user, sessionId or room$/],
          [{ user, event: "note", data: 1, exceptSession: "s" }, /^exceptSession is for the app's replies/],
        ];
        if (broker.rawJson) poisons.push(["not JSON {", /^not JSON of a message: /]);
        for (const [i, [poison]] of poisons.entries()) {
          await q.send(typeof poison === "string" ? poison : JSON.stringify(poison));
          await enqueue(q, { user, event: "note", data: i });
        }
        await eventually(() => got.length >= poisons.length, 10000, "the good messages");
        await sleep(300);
        assert.deepEqual(got, poisons.map((_, i) => i));

        const f = await eventually(async () => {
          const c = await figures(gw, q.consumer);
          return c.refused === poisons.length && c;
        }, 5000, "the refused count");
        assert.deepEqual([f.state, f.taken, f.refused], ["running", poisons.length, poisons.length]);

        const refusals = logLines(gw).filter(({ line, entry }) => line.includes(REFUSED) && entry.target === "sockgate::consume");
        for (const { entry } of refusals) {
          assert.equal(entry.level, "WARN");
          assert.equal(entry.consumer, q.consumer);
        }
        for (const [poison, reason] of poisons) {
          const lines = refusals.filter(({ entry }) => reason.test(entry.reason));
          assert.equal(lines.length, 1, `one log line for ${JSON.stringify(poison).slice(0, 80)}; the refusals: ${refusals.map((r) => r.entry.reason).join(" | ")}`);
        }
        assert.equal(refusals.length, poisons.length);

        // Every message was acknowledged: nothing waits, nothing is held.
        await eventually(async () => {
          const left = await q.left();
          return left.unacked === 0 && left.waiting === 0;
        }, 5000, "an empty queue");
        if (q.deadLettered) {
          await eventually(async () => (await q.deadLettered()) === poisons.length, 5000, "the refused messages dead-lettered");
        }
      });
    });

    test("a broker outage is survived: /readyz stays 200, the consumer retries, and what was queued meanwhile arrives", async () => {
      await withQueue(broker, "e", { proxied: true }, async (q, { start }) => {
        const gw = await start(q.env);
        await running(gw, q.consumer);
        const user = `u-${q.id}`;
        const { got } = await listener(gw, user);
        await enqueue(q, { user, event: "note", data: 0 });
        await eventually(() => got.length === 1, 10000, "the first note");

        await q.cut();
        const away = await eventually(async () => {
          const c = await figures(gw, q.consumer);
          return c.state === "retrying" && c.brokerErrors > 0 && c;
        }, 8000, "the consumer retrying");
        assert.equal((await fetch(`${gw.url}/readyz`)).status, 200, "ready while the broker is away");
        if (q.sendsWhileCut) {
          for (let i = 1; i <= 5; i++) await enqueue(q, { user, event: "note", data: i });
        }
        await sleep(1000);
        assert.equal((await fetch(`${gw.url}/readyz`)).status, 200, "still ready");
        assert.equal((await figures(gw, q.consumer)).state, "retrying");
        await q.restore();
        if (!q.sendsWhileCut) {
          // The restarted redis-server is empty: these go in before
          // sockgate is back (its backoff is past a second by now), into a
          // stream it must create its group on again, from the start.
          for (let i = 1; i <= 5; i++) await enqueue(q, { user, event: "note", data: i });
        }
        await eventually(() => got.length >= 6, 20000, "the messages queued during the outage");
        await sleep(300);
        assert.deepEqual(got, [0, 1, 2, 3, 4, 5]);
        const back = await figures(gw, q.consumer);
        assert.equal(back.state, "running");
        assert.ok(back.brokerErrors >= away.brokerErrors);
        assert.equal((await fetch(`${gw.url}/readyz`)).status, 200);
        const warned = logLines(gw).filter(({ entry }) => entry.target === "sockgate::consume" && entry.level === "WARN" && /cannot be read; retrying/.test(entry.message));
        assert.equal(warned.length, 1, "one warning for the outage, however many attempts");
        assert.equal(warned[0].entry.consumer, q.consumer);
        assert.ok(
          logLines(gw).some(({ entry }) => entry.target === "sockgate::consume" && entry.consumer === q.consumer && / back$/.test(entry.message)),
          "the end of the outage is logged",
        );
      });
    });

    test("two consuming nodes share one queue: every message once, none twice", async () => {
      await withQueue(broker, "f", {}, async (q, { start, redis }) => {
        const cluster = await redis();
        // The default claim idle (30 s): two live nodes, no claims.
        const env = { SOCKGATE_REDIS_URL: cluster.url, SOCKGATE_CONSUME_CLAIM_IDLE: undefined, ...q.env };
        const a = await start(env);
        const b = await start(env);
        await running(a, q.consumer, 2);
        const user = `u-${q.id}`;
        const { got } = await listener(b, user, "m");
        const N = 200;
        for (let i = 0; i < N; i++) await enqueue(q, { user, event: "m", data: i });
        await eventually(() => got.length >= N, 20000, `${N} messages`);
        await sleep(500);
        const { missing, twice } = tally(got, N);
        assert.deepEqual(missing, [], "lost");
        assert.deepEqual(twice, [], "delivered twice");
        assert.equal(got.length, N);
        const all = await eventually(async () => {
          const c = await consumersOf(a, q.consumer);
          return c.reduce((sum, x) => sum + x.taken, 0) === N && c;
        }, 5000, `taken == ${N} over both nodes`);
        assert.equal(new Set(all.map((c) => c.node)).size, 2, "one consumer per node");
        console.log(`${broker.name}: taken per node ${all.map((c) => c.taken).join(" + ")}`);
      });
    });

    test("SIGTERM while messages are being enqueued leaves nothing unacknowledged", async () => {
      await withQueue(broker, "g", {}, async (q, { start }) => {
        const gw = await start(q.env);
        await running(gw, q.consumer);
        const user = `u-${q.id}`;
        const { got } = await listener(gw, user, "m");
        const N = 200;
        const producing = produce(q, N, 2000, (i) => ({ user, event: "m", data: i }));
        await sleep(700);
        const exited = new Promise((r) => gw.child.once("exit", (code, signal) => r({ code, signal })));
        const stopping = Date.now();
        gw.child.kill("SIGTERM");
        const exit = await exited;
        const stopMs = Date.now() - stopping;
        await producing;
        assert.deepEqual(exit, { code: 0, signal: null });
        const late = gw.logs.filter((l) => l.includes("consumers did not stop in time"));
        assert.deepEqual(late, [], `the consumer stopped promptly (the node exited ${stopMs} ms after SIGTERM)`);
        assert.ok(stopMs < 5000, `the node exited ${stopMs} ms after SIGTERM`);
        const { twice } = tally(got, N);
        assert.deepEqual(twice, [], "delivered twice");
        assert.ok(got.length > 0, "the node was consuming");
        const left = await eventually(async () => {
          const l = await q.left();
          return l.waiting + got.length >= N && l;
        }, 5000, "the broker's count settled");
        assert.equal(left.unacked, 0, "unacknowledged after the node exited");
        assert.equal(got.length + left.waiting, N, `delivered ${got.length}, still queued ${left.waiting}: each message once`);
        // What was delivered is gone from the queue, what was not is next.
        assert.deepEqual(got, [...got].sort((x, y) => x - y), "in order");
        assert.equal(got.at(-1), got.length - 1, "no message taken out of turn");
      });
    });
  });
}

describe("RabbitMQ: a queue the app declared itself", () => {
  before(() => amqpBroker.open());
  after(() => amqpBroker.close());

  test("a queue declared with a dead-letter exchange in its arguments is consumed, and a refused message dead-lettered", async () => {
    const { channel } = amqpBroker;
    const queue = `sg-${newId("h")}`;
    const dead = `${queue}.dead`;
    await channel.assertQueue(dead, { durable: true });
    await channel.assertQueue(queue, { durable: true, deadLetterExchange: "", deadLetterRoutingKey: dead });
    const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY, SOCKGATE_CONSUME_AMQP_URL: AMQP_URL(AMQP_PORT), SOCKGATE_CONSUME_AMQP_QUEUE: queue });
    try {
      const user = `u-${queue}`;
      const { got } = await listener(gw, user);
      const send = async (payload) => {
        channel.sendToQueue(queue, Buffer.from(payload), { persistent: true });
        await channel.waitForConfirms();
      };
      const name = `amqp:${queue}`;
      await eventually(async () => (await figures(gw, name)).state === "running", 5000, "the consumer running").catch(async (e) => {
        const warning = gw.logs.find((l) => l.includes("cannot be read; retrying")) ?? "no warning";
        throw new Error(`${e.message}: ${JSON.stringify(await figures(gw, name))}; ${warning}`);
      });
      await send("not JSON {");
      await send(JSON.stringify({ user, event: "note", data: 1 }));
      await eventually(() => got.length === 1, 5000, "the good message");
      await eventually(async () => (await channel.checkQueue(dead)).messageCount === 1, 5000, "the refused message dead-lettered");
    } finally {
      await gw.stop();
      await channel.deleteQueue(queue);
      await channel.deleteQueue(dead);
    }
  });
});

describe("[[consumers]] in the config file", () => {
  const brokers = [redisBroker, natsBroker, amqpBroker, postgresBroker];
  before(async () => {
    for (const b of brokers) await b.open();
  });
  after(async () => {
    for (const b of brokers) await b.close();
  });

  test("one node consumes a Redis stream, a JetStream stream, a RabbitMQ queue and an outbox table at once", async () => {
    const queues = [];
    let gw;
    try {
      for (const b of brokers) queues.push(await b.queue(newId("t")));
      const toml = queues
        .map((q) => "[[consumers]]\n" + Object.entries(q.toml).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join("\n"))
        .join("\n\n");
      const file = join(mkdtempSync(join(tmpdir(), "sockgate-consumers-")), "sockgate.toml");
      writeFileSync(file, toml + "\n");
      gw = await startGateway({ SOCKGATE_API_KEY: API_KEY }, ["--config", file]);
      const all = await eventually(async () => {
        const c = (await api(gw, "GET", "/api/stats")).body.consumers;
        return c.length === 4 && c.every((x) => x.state === "running") && c;
      }, 15000, "four consumers running");
      assert.deepEqual(
        all.map((c) => [c.name, c.kind]),
        queues.map((q) => [q.consumer, q.toml.kind]),
      );
      const { got } = await listener(gw, "toml-user");
      for (const [i, q] of queues.entries()) await enqueue(q, { user: "toml-user", event: "note", data: q.toml.kind, idempotencyKey: `t-${i}` });
      await eventually(() => got.length >= 4, 10000, "one message from each queue");
      await sleep(300);
      assert.deepEqual([...got].sort(), ["amqp", "nats", "postgres", "redis"]);
    } finally {
      await gw?.stop();
      for (const q of queues) await q.cleanup();
    }
  });
});
