// Lifecycle webhooks: sockgate POSTs what happens to sessions, users and
// rooms in signed batches to a Node receiver that checks every signature.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { api, API_KEY, eventually, freePort, refusal, sessionIdOf, sign, startGateway, startRedis } from "./helpers.mjs";

const SECRET = "webhook-secret-webhook-secret-0123456789";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The signature check a receiver does: `t=<s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, within 5 minutes. */
function verify(body, header, secret = SECRET) {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? "");
  if (!m) return false;
  if (Math.abs(Date.now() / 1000 - Number(m[1])) > 300) return false;
  const want = createHmac("sha256", secret).update(`${m[1]}.`).update(body).digest();
  return timingSafeEqual(want, Buffer.from(m[2], "hex"));
}

/**
 * A webhook receiver on `port` (a free one unless given): every request's
 * events, in order; `failNext(n)` answers the next n with 500.
 */
async function receiver(port) {
  port ??= await freePort();
  const state = { requests: 0, events: [], bad: 0, fail: 0 };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      state.requests += 1;
      const body = Buffer.concat(chunks);
      if (!verify(body, req.headers["sockgate-signature"])) {
        state.bad += 1;
        res.writeHead(401).end();
        return;
      }
      if (state.fail > 0) {
        state.fail -= 1;
        res.writeHead(500).end();
        return;
      }
      const { events } = JSON.parse(body);
      state.events.push(...events);
      res.writeHead(204).end();
    });
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return {
    port,
    url: `http://127.0.0.1:${port}/hooks`,
    state,
    of: (type, where = () => true) => state.events.filter((e) => e.type === type && where(e)),
    failNext: (n) => (state.fail = n),
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const env = (hook, extra = {}) => ({
  SOCKGATE_API_KEY: API_KEY,
  SOCKGATE_WEBHOOK_URL: hook.url,
  SOCKGATE_WEBHOOK_SECRET: SECRET,
  SOCKGATE_WEBHOOK_OFFLINE_DELAY: "0.6",
  ...extra,
});

describe("lifecycle webhooks, one node", () => {
  let hook;
  let gw;
  before(async () => {
    hook = await receiver();
    gw = await startGateway(env(hook, { SOCKGATE_WEBHOOK_BATCH_MS: "100" }));
  });
  after(async () => {
    await gw.stop();
    await hook.close();
  });

  test("every event type, with its fields, signed", async () => {
    const ann = await gw.connect({ auth: { token: sign({ sub: "wh-ann", rooms: ["game:*"] }) } });
    const sid = await sessionIdOf(ann);
    assert.equal((await ann.emitWithAck("room:join", { room: "game:1" })).ok, true);
    assert.equal((await ann.emitWithAck("room:leave", { room: "game:1" })).ok, true);
    ann.close();
    await eventually(() => hook.of("user.offline", (e) => e.userId === "wh-ann").length === 1, 10000, "user.offline");
    const mine = hook.state.events.filter((e) => e.userId === "wh-ann" || e.room === "game:1");
    assert.deepEqual(
      mine.map((e) => e.type),
      ["session.started", "user.online", "room.occupied", "member.joined", "member.left", "session.ended", "room.vacated", "user.offline"],
    );
    const [started] = hook.of("session.started", (e) => e.userId === "wh-ann");
    assert.deepEqual(
      { ...started, id: undefined, ts: undefined },
      // The default transports: polling first, upgraded later.
      { type: "session.started", userId: "wh-ann", sessionId: sid, transport: "polling", remoteAddr: "127.0.0.1", recovered: false, id: undefined, ts: undefined },
    );
    const [ended] = hook.of("session.ended", (e) => e.userId === "wh-ann");
    assert.equal(ended.sessionId, sid);
    assert.equal(ended.code, "CLIENT_CLOSED");
    assert.equal(ended.reconnect, false);
    assert.ok(Number.isInteger(ended.durationMs) && ended.durationMs >= 0 && ended.durationMs < 60000, String(ended.durationMs));
    assert.deepEqual(hook.of("member.joined", (e) => e.room === "game:1").map((e) => e.userId), ["wh-ann"]);
    for (const e of mine) {
      assert.match(e.id, /^[0-9a-f]{32}$/);
      assert.ok(Math.abs(e.ts - Date.now()) < 60000);
    }
    assert.equal(new Set(hook.state.events.map((e) => e.id)).size, hook.state.events.length, "ids are unique");
    assert.equal(hook.state.bad, 0, "every request was signed");
  });

  test("a server end carries its code: a kick is KICKED, not reconnecting", async () => {
    const bo = await gw.connect({ auth: { token: sign({ sub: "wh-bo" }) } });
    const sid = await sessionIdOf(bo);
    await api(gw, "DELETE", `/api/sessions/${sid}`);
    await eventually(() => hook.of("session.ended", (e) => e.sessionId === sid).length === 1, 10000, "session.ended");
    const [ended] = hook.of("session.ended", (e) => e.sessionId === sid);
    assert.deepEqual([ended.code, ended.reconnect], ["KICKED", false]);
  });

  test("a transport lost is TRANSPORT_LOST, reconnecting; its recovery cancels the offline", async () => {
    const cy = await gw.connect({ auth: { token: sign({ sub: "wh-cy" }) }, reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 100, transports: ["websocket"] });
    const sid = await sessionIdOf(cy);
    // A message with its offset, as recovery needs.
    const note = new Promise((r) => cy.once("note", r));
    await api(gw, "POST", "/api/publish", { body: { user: "wh-cy", event: "note", data: 1 } });
    await note;
    const back = new Promise((r) => cy.once("connect", r));
    cy.io.engine.close(); // the transport drops, as on a network failure
    await back;
    assert.equal(cy.recovered, true, "recovered");
    await sleep(1500); // past the offline delay
    const events = hook.state.events.filter((e) => e.userId === "wh-cy").map((e) => [e.type, e.code ?? e.recovered]);
    assert.deepEqual(events, [
      ["session.started", false],
      ["user.online", undefined],
      ["session.ended", "TRANSPORT_LOST"],
      ["session.started", true],
    ]);
    assert.equal(hook.of("session.ended", (e) => e.userId === "wh-cy")[0].reconnect, true);
    assert.equal(hook.of("session.started", (e) => e.userId === "wh-cy")[1].sessionId, sid, "the same session id");
    cy.close();
  });

  test("a reconnect within the offline delay sends neither offline nor a second online", async () => {
    const token = sign({ sub: "wh-di" });
    const first = await gw.connect({ auth: { token } });
    first.close();
    await sleep(100);
    const second = await gw.connect({ auth: { token } });
    await sleep(1500);
    assert.equal(hook.of("user.online", (e) => e.userId === "wh-di").length, 1);
    assert.equal(hook.of("user.offline", (e) => e.userId === "wh-di").length, 0);
    assert.equal(hook.of("session.started", (e) => e.userId === "wh-di").length, 2);
    assert.equal(hook.of("session.ended", (e) => e.userId === "wh-di").length, 1);
    second.close();
    await eventually(() => hook.of("user.offline", (e) => e.userId === "wh-di").length === 1, 10000, "user.offline at last");
  });

  test("a refused handshake sends nothing", async () => {
    const before = hook.state.events.length;
    await refusal(gw, { auth: { token: sign({ sub: "wh-ex", exp: Math.floor(Date.now() / 1000) - 60 }) } });
    await refusal(gw, { auth: { token: "not-a-token" } });
    await sleep(400);
    assert.equal(hook.state.events.length, before);
  });

  test("events go out in batches", async () => {
    const requests = hook.state.requests;
    const sockets = await Promise.all(Array.from({ length: 20 }, (_, i) => gw.connect({ auth: { token: sign({ sub: `wh-batch-${i}` }) } })));
    await eventually(() => hook.of("user.online", (e) => e.userId.startsWith("wh-batch-")).length === 20, 10000, "20 online");
    const sent = hook.state.requests - requests;
    assert.ok(sent < 20, `40 events in ${sent} requests`);
    sockets.forEach((s) => s.close());
  });
});

describe("lifecycle webhooks, a receiver that fails", () => {
  test("500s are retried until taken, in order", async () => {
    const hook = await receiver();
    const gw = await startGateway(env(hook));
    try {
      hook.failNext(3);
      const s = await gw.connect({ auth: { token: sign({ sub: "wh-retry" }) } });
      await eventually(() => hook.of("user.online", (e) => e.userId === "wh-retry").length === 1, 10000, "delivered after the 500s");
      assert.ok(hook.state.requests >= 4, `${hook.state.requests} requests`);
      assert.deepEqual(hook.state.events.map((e) => e.type), ["session.started", "user.online"]);
      s.close();
    } finally {
      await gw.stop();
      await hook.close();
    }
  });

  test("a receiver down for a while gets what happened once it is back; retries end after SOCKGATE_WEBHOOK_RETRY_FOR", async () => {
    const port = await freePort();
    const gw = await startGateway(env({ url: `http://127.0.0.1:${port}/hooks` }, { SOCKGATE_WEBHOOK_RETRY_FOR: "3" }));
    try {
      const s = await gw.connect({ auth: { token: sign({ sub: "wh-down" }) } });
      await sleep(800); // nobody listens: retried
      const hook = await receiver(port);
      await eventually(() => hook.of("session.started", (e) => e.userId === "wh-down").length === 1, 10000, "delivered after the outage");
      await hook.close();
      // Down for longer than the retry window: given up, counted in the log.
      s.close();
      await eventually(() => gw.logs.some((l) => l.includes("lifecycle events given up")), 15000, "the batch given up");
      const metrics = await (await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } })).text();
      const given = /^sockgate_webhook_events_dropped_total\{reason="given_up"\} (\d+)/m.exec(metrics);
      assert.ok(given && Number(given[1]) >= 1, `the events given up are counted:\n${metrics.split("\n").filter((l) => l.includes("webhook")).join("\n")}`);
    } finally {
      await gw.stop();
    }
  });

  test("a 3xx is retried like a 5xx (never followed), and a 64 MiB answer holds nothing up", async () => {
    let requests = 0;
    let redirected = 0;
    const events = [];
    // First a redirect (to a receiver that would take anything), then 200
    // with 64 MiB that sockgate must not wait to read.
    const huge = Buffer.alloc(64 * 1024 * 1024, 120);
    const server = createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        requests += 1;
        if (requests === 1) {
          res.writeHead(307, { location: "http://127.0.0.1:9/elsewhere" }).end();
          return;
        }
        if (req.url !== "/hooks") redirected += 1;
        events.push(...JSON.parse(Buffer.concat(chunks)).events);
        res.writeHead(200, { "content-length": huge.length });
        res.end(huge);
      });
    });
    const port = await freePort();
    await new Promise((r) => server.listen(port, "127.0.0.1", r));
    const gw = await startGateway(env({ url: `http://127.0.0.1:${port}/hooks` }));
    try {
      const s = await gw.connect({ auth: { token: sign({ sub: "wh-3xx" }) } });
      await eventually(() => events.some((e) => e.type === "user.online" && e.userId === "wh-3xx"), 10000, "delivered after the 307");
      assert.equal(redirected, 0, "the redirect was not followed");
      s.close();
      // The next batch goes out at once: the 64 MiB answer held nothing up.
      await eventually(() => events.some((e) => e.type === "session.ended" && e.userId === "wh-3xx"), 5000, "the next batch");
    } finally {
      await gw.stop();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  test("a bad SOCKGATE_WEBHOOK_EVENTS or a short secret refuses to start", async () => {
    const { run } = await import("./helpers.mjs");
    const base = { JWT_SECRET: "x".repeat(40), SOCKGATE_LISTEN: "127.0.0.1:0", SOCKGATE_WEBHOOK_URL: "http://127.0.0.1:9/x" };
    let out = await run(["serve"], { ...base, SOCKGATE_WEBHOOK_SECRET: SECRET, SOCKGATE_WEBHOOK_EVENTS: "session.started,user.gone" });
    assert.equal(out.code, 2);
    assert.match(out.stderr, /SOCKGATE_WEBHOOK_EVENTS: `user.gone` is not one of/);
    out = await run(["serve"], { ...base, SOCKGATE_WEBHOOK_SECRET: "short" });
    assert.equal(out.code, 2);
    assert.match(out.stderr, /SOCKGATE_WEBHOOK_SECRET: is 5 bytes/);
  });
});

describe("lifecycle webhooks, filtered", () => {
  test("SOCKGATE_WEBHOOK_EVENTS sends only the types it names", async () => {
    const hook = await receiver();
    const gw = await startGateway(env(hook, { SOCKGATE_WEBHOOK_EVENTS: "user.online,user.offline" }));
    try {
      const s = await gw.connect({ auth: { token: sign({ sub: "wh-only" }) } });
      s.close();
      await eventually(() => hook.of("user.offline").length === 1, 10000, "user.offline");
      assert.deepEqual(hook.state.events.map((e) => e.type), ["user.online", "user.offline"]);
    } finally {
      await gw.stop();
      await hook.close();
    }
  });
});

describe("lifecycle webhooks, two nodes", () => {
  test("a node killed with SIGKILL: a live node reports its sessions NODE_LOST, and their users offline", async () => {
    const redis = await startRedis();
    const hook = await receiver();
    const cluster = { SOCKGATE_REDIS_URL: redis.url };
    const a = await startGateway(env(hook, cluster));
    const b = await startGateway(env(hook, cluster));
    try {
      const onB = await b.connect({ auth: { token: sign({ sub: "wh-lost", rooms: ["game:*"] }) } });
      const sid = await sessionIdOf(onB);
      assert.equal((await onB.emitWithAck("room:join", { room: "game:lost" })).ok, true);
      const stays = await a.connect({ auth: { token: sign({ sub: "wh-stays" }) } });
      await eventually(() => hook.of("member.joined", (e) => e.room === "game:lost").length === 1, 10000, "the join told");
      const killed = Date.now();
      b.child.kill("SIGKILL");
      await eventually(() => hook.of("session.ended", (e) => e.sessionId === sid).length === 1, 20000, "NODE_LOST");
      const took = Date.now() - killed;
      const [ended] = hook.of("session.ended", (e) => e.sessionId === sid);
      assert.deepEqual([ended.userId, ended.code, ended.reconnect], ["wh-lost", "NODE_LOST", true]);
      assert.ok(took < 15000, `reported ${took} ms after the kill`);
      await eventually(() => hook.of("user.offline", (e) => e.userId === "wh-lost").length === 1, 10000, "user.offline");
      assert.deepEqual(hook.of("member.left", (e) => e.room === "game:lost").map((e) => e.userId), ["wh-lost"]);
      assert.equal(hook.of("room.vacated", (e) => e.room === "game:lost").length, 1);
      // Told once, and nothing about the users of the live node.
      await sleep(3000);
      assert.equal(hook.of("session.ended", (e) => e.sessionId === sid).length, 1, "told once");
      assert.equal(hook.of("user.offline", (e) => e.userId === "wh-stays").length, 0);
      stays.close();
    } finally {
      await a.stop();
      await b.stop();
      await hook.close();
      await redis.stop();
    }
  });
});

describe("lifecycle webhooks, a single node that crashed", () => {
  test("the next start reports the crashed run's sessions NODE_LOST; a clean stop leaves nothing to report", async () => {
    const hook = await receiver();
    const dataDir = mkdtempSync(join(tmpdir(), "sockgate-wh-crash-"));
    const first = await startGateway(env(hook, { SOCKGATE_DATA_DIR: dataDir }));
    const s = await first.connect({ auth: { token: sign({ sub: "wh-crash" }) } });
    const sid = await sessionIdOf(s);
    await sleep(1500); // the live sessions are written once a second
    first.child.kill("SIGKILL");
    s.close();
    const second = await startGateway(env(hook, { SOCKGATE_DATA_DIR: dataDir }));
    try {
      await eventually(() => hook.of("session.ended", (e) => e.sessionId === sid).length === 1, 10000, "NODE_LOST at the next start");
      const [ended] = hook.of("session.ended", (e) => e.sessionId === sid);
      assert.deepEqual([ended.userId, ended.code, ended.reconnect], ["wh-crash", "NODE_LOST", true]);
      await eventually(() => hook.of("user.offline", (e) => e.userId === "wh-crash").length === 1, 10000, "user.offline");
      // A clean stop: its sessions end (SERVER_SHUTDOWN), told before it exits; nothing is reported again.
      const t = await second.connect({ auth: { token: sign({ sub: "wh-clean" }) } });
      const clean = await sessionIdOf(t);
      await sleep(1500);
      // SIGTERM with the client still there (gw.stop() would close it first).
      const exited = new Promise((r) => second.child.once("exit", r));
      second.child.kill("SIGTERM");
      await exited;
      await eventually(() => hook.of("session.ended", (e) => e.sessionId === clean).length === 1, 5000, "SERVER_SHUTDOWN told");
      assert.equal(hook.of("session.ended", (e) => e.sessionId === clean)[0].code, "SERVER_SHUTDOWN");
      const third = await startGateway(env(hook, { SOCKGATE_DATA_DIR: dataDir }));
      await sleep(1000);
      await third.stop();
      assert.equal(hook.of("session.ended", (e) => e.code === "NODE_LOST").length, 1, "the crash reported once, the clean stop not at all");
    } finally {
      await second.stop();
      await hook.close();
    }
  });
});

describe("lifecycle webhooks over a restart", () => {
  test("a deploy does not flap: users back within the delay are neither offline nor online again", async () => {
    const hook = await receiver();
    const dataDir = mkdtempSync(join(tmpdir(), "sockgate-wh-deploy-"));
    const port = await freePort();
    const settings = env(hook, { SOCKGATE_DATA_DIR: dataDir, SOCKGATE_LISTEN: `127.0.0.1:${port}`, SOCKGATE_WEBHOOK_OFFLINE_DELAY: "5", SOCKGATE_DRAIN_WINDOW: "0" });
    const first = await startGateway(settings);
    const s = await first.connect({ auth: { token: sign({ sub: "wh-deploy" }) }, reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200, transports: ["websocket"] });
    await eventually(() => hook.of("user.online", (e) => e.userId === "wh-deploy").length === 1, 10000, "online");
    // SIGTERM with the client there: its session ends SERVER_SHUTDOWN, and it comes back to the new process.
    const exited = new Promise((r) => first.child.once("exit", r));
    first.child.kill("SIGTERM");
    await exited;
    const back = new Promise((r) => s.once("connect", r));
    const second = await startGateway(settings);
    try {
      await back;
      await eventually(() => hook.of("session.started", (e) => e.userId === "wh-deploy").length === 2, 10000, "the new session");
      await sleep(6000); // past the offline delay
      assert.deepEqual(hook.of("session.ended", (e) => e.userId === "wh-deploy").map((e) => e.code), ["SERVER_SHUTDOWN"]);
      assert.equal(hook.of("user.offline", (e) => e.userId === "wh-deploy").length, 0, "no offline");
      assert.equal(hook.of("user.online", (e) => e.userId === "wh-deploy").length, 1, "no second online");
      s.close();
      await eventually(() => hook.of("user.offline", (e) => e.userId === "wh-deploy").length === 1, 10000, "offline once it is gone for good");
    } finally {
      s.close();
      await second.stop();
      await hook.close();
    }
  });
});

/**
 * A receiver that takes the connection and reads the request, then holds
 * every answer until `release()`: a backend stuck for as long as the test
 * wants. sockgate gives each request 5 s, then sends the same batch again,
 * so `held` lists every attempt and `inFlight()` those still open (not
 * given up by sockgate). On `release()` the open ones are taken (204), and
 * every later request is taken at once; `events` has what was taken, in
 * order, with the repeats of at-least-once delivery.
 */
async function holdingReceiver() {
  const state = { held: [], answered: 0, bad: 0, events: [] };
  let holding = true;
  const take = (h) => {
    h.answered = true;
    state.answered += 1;
    state.events.push(...h.events);
    h.res.writeHead(204).end();
  };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      if (!verify(body, req.headers["sockgate-signature"])) {
        state.bad += 1;
        res.writeHead(401).end();
        return;
      }
      const h = { res, events: JSON.parse(body).events, answered: false, closed: false };
      // Closed before an answer: sockgate gave this attempt up.
      res.on("close", () => (h.closed = !h.answered));
      if (!holding) return take(h);
      state.held.push(h);
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}/hooks`,
    state,
    inFlight: () => state.held.filter((h) => !h.answered && !h.closed).length,
    release() {
      holding = false;
      for (const h of state.held) if (!h.answered && !h.closed) take(h);
    },
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe("lifecycle webhooks, a receiver that hangs", () => {
  test("300 sessions connect, talk, churn and are listed while the first batch hangs unanswered; all their events arrive once it answers", async () => {
    const hook = await holdingReceiver();
    const gw = await startGateway(
      // No handshake rate limit: 300 clients from one address.
      env(hook, { SOCKGATE_WEBHOOK_BATCH_MS: "50", SOCKGATE_HANDSHAKE_RATE: "0", SOCKGATE_LOG: "info" }),
    );
    const N = 300;
    const P = "wh-hang";
    const ROOM = `game:${P}`;
    const user = (i) => `${P}-${i}`;
    const sessionOf = new Map(); // userId → sessionId (auth:whoami)
    const transportOf = new Map(); // userId → handshake transport
    try {
      // The first batch (this session's events) goes out and hangs.
      const first = await gw.connect({ auth: { token: sign({ sub: `${P}-first` }) }, transports: ["websocket"] });
      sessionOf.set(`${P}-first`, await sessionIdOf(first));
      transportOf.set(`${P}-first`, "websocket");
      await eventually(() => hook.inFlight() === 1, 10000, "the first webhook request held");
      const firstBatch = hook.state.held[0].events.map((e) => e.id);

      // While it hangs: 300 clients (a third starting on long-polling, the
      // rest on WebSocket), in waves of 50, each with a round trip of its own.
      const sockets = [];
      for (let start = 0; start < N; start += 50) {
        const wave = await Promise.all(
          Array.from({ length: 50 }, async (_, k) => {
            const i = start + k;
            const polling = i % 3 === 0;
            const socket = await gw.connect({
              auth: { token: sign({ sub: user(i), rooms: ["game:*"] }) },
              timeout: 20000,
              ...(polling ? {} : { transports: ["websocket"] }),
            });
            const who = await socket.emitWithAck("auth:whoami");
            assert.equal(who.userId, user(i));
            sessionOf.set(user(i), who.sessionId);
            transportOf.set(user(i), polling ? "polling" : "websocket");
            const joined = await socket.emitWithAck("room:join", { room: ROOM });
            assert.deepEqual([joined.ok, joined.room], [true, ROOM], JSON.stringify(joined));
            assert.deepEqual(await socket.emitWithAck("echo", { i, n: "x".repeat(i) }), { i, n: "x".repeat(i) });
            return socket;
          }),
        );
        sockets.push(...wave);
      }
      assert.equal(sockets.filter((s) => s.connected).length, N, "all connected");

      // Churn: half of them leave; the others still answer.
      const churned = sockets.filter((_, i) => i % 2 === 0);
      const kept = sockets.filter((_, i) => i % 2 === 1);
      for (const s of churned) s.close();
      await Promise.all(kept.map(async (s, k) => assert.equal(await s.emitWithAck("echo", k), k)));
      const keptUsers = [`${P}-first`, ...kept.map((_, k) => user(2 * k + 1))];

      // The admin API sees exactly who is here.
      const listed = await eventually(
        async () => {
          const res = await api(gw, "GET", "/api/sessions");
          assert.equal(res.status, 200, JSON.stringify(res.body));
          const mine = res.body.sessions.filter((s) => s.userId.startsWith(P));
          return mine.length === keptUsers.length && mine;
        },
        10000,
        "the churned sessions gone from /api/sessions",
      );
      assert.deepEqual(
        new Map(listed.map((s) => [s.userId, [s.sessionId, s.transport]])),
        new Map(keptUsers.map((u) => [u, [sessionOf.get(u), transportOf.get(u)]])),
      );
      await eventually(async () => (await api(gw, "GET", "/api/stats")).body.connections === keptUsers.length, 10000, "/api/stats connections");

      // All of that happened with the first batch still not taken: no
      // request was ever answered, every attempt sockgate made carried that
      // same first batch (nothing overtook it), and one is open right now
      // (sockgate gives each up after 5 s and retries, so we may catch
      // it between two attempts, at most 10 s apart).
      assert.equal(hook.state.answered, 0, "the receiver answered nothing");
      await eventually(() => hook.inFlight() > 0, 11000, `a webhook request still in flight after the burst (${hook.state.held.length} attempts so far)`);
      assert.equal(hook.state.answered, 0, "the receiver answered nothing");
      for (const h of hook.state.held) assert.deepEqual(h.events.map((e) => e.id), firstBatch, "every attempt is the first batch");

      // The receiver answers; the others leave too. Everything arrives.
      hook.release();
      first.close();
      for (const s of kept) s.close();
      const everyone = [`${P}-first`, ...Array.from({ length: N }, (_, i) => user(i))];
      const unique = () => {
        const byId = new Map();
        for (const e of hook.state.events) {
          if (!byId.has(e.id)) byId.set(e.id, e);
          else assert.deepEqual(e, byId.get(e.id), "a repeat is the same event");
        }
        return [...byId.values()].filter((e) => e.userId?.startsWith(P) || e.room === ROOM);
      };
      await eventually(
        () => unique().filter((e) => e.type === "user.offline").length === everyone.length && unique().some((e) => e.type === "room.vacated"),
        20000,
        "every session's events",
      );
      const events = unique();
      assert.equal(hook.state.bad, 0, "every request was signed");
      // In order: the first batch first, then what happened behind it.
      assert.deepEqual(events.slice(0, firstBatch.length).map((e) => e.id), firstBatch);
      for (const u of everyone) {
        const mine = events.filter((e) => e.userId === u);
        const inRoom = u !== `${P}-first`;
        assert.deepEqual(
          mine.map((e) => e.type),
          inRoom
            ? ["session.started", "user.online", "member.joined", "member.left", "session.ended", "user.offline"]
            : ["session.started", "user.online", "session.ended", "user.offline"],
          u,
        );
        const started = mine[0];
        const ended = mine.find((e) => e.type === "session.ended");
        assert.deepEqual([started.sessionId, started.transport, started.recovered], [sessionOf.get(u), transportOf.get(u), false], u);
        assert.deepEqual([ended.sessionId, ended.code, ended.reconnect], [sessionOf.get(u), "CLIENT_CLOSED", false], u);
      }
      // Those that left during the hang ended before those that stayed.
      const endedAt = new Map();
      events.forEach((e, k) => e.type === "session.ended" && endedAt.set(e.userId, k));
      const lastChurned = Math.max(...churned.map((_, k) => endedAt.get(user(2 * k))));
      const firstKept = Math.min(...keptUsers.map((u) => endedAt.get(u)));
      assert.ok(lastChurned < firstKept, "the churn's session.ended come first");
      // 6 events for each of the 300, 4 for the first, the room's 2: nothing else, nothing twice.
      assert.equal(events.length, N * 6 + 4 + 2);
      assert.deepEqual(events.filter((e) => e.room === ROOM && !e.userId).map((e) => e.type), ["room.occupied", "room.vacated"]);
    } finally {
      hook.release();
      await gw.stop();
      await hook.close();
    }
  });
});
