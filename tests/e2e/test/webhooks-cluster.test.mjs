// Lifecycle webhooks and room presence events in a cluster: two nodes on
// one Redis and one receiver tell each user's comings and goings, and each
// room's, once for the whole cluster (not once a node), and a node that
// dies does not take its queued events with it.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { execFileSync } from "node:child_process";
import { API_KEY, eventually, freePort, sessionIdOf, sign, startGateway, startProxy, startRedis } from "./helpers.mjs";

const SECRET = "webhook-secret-webhook-secret-0123456789";
const DELAY_MS = 1000; // SOCKGATE_WEBHOOK_OFFLINE_DELAY
const MARGIN_MS = 700; // past the delay: whatever was coming has come
const SETTLE_MS = 400; // a few batches: a duplicate sent with its marker has come
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The signature check a receiver does: `t=<s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, within 5 minutes. */
function verify(body, header) {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? "");
  if (!m) return false;
  if (Math.abs(Date.now() / 1000 - Number(m[1])) > 300) return false;
  const want = createHmac("sha256", SECRET).update(`${m[1]}.`).update(body).digest();
  return timingSafeEqual(want, Buffer.from(m[2], "hex"));
}

/**
 * A webhook receiver for both nodes (each node POSTs to its own path, `url(name)`):
 * the events it took, deduplicated by id (delivery is at least once), each
 * with the time it came (`at`) and the path it came on (`path`). `answer(status)`
 * answers every request with `status` from now on; the events of the requests
 * not taken are kept in `refused`.
 */
async function receiver() {
  const port = await freePort();
  const state = { requests: 0, bad: 0, status: 204, events: [], refused: [], ids: new Set() };
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
      const { events } = JSON.parse(body);
      const at = Date.now();
      if (state.status < 200 || state.status > 299) {
        state.refused.push(...events.map((e) => ({ ...e, at, path: req.url })));
        res.writeHead(state.status).end();
        return;
      }
      for (const e of events) {
        if (state.ids.has(e.id)) continue;
        state.ids.add(e.id);
        state.events.push({ ...e, at, path: req.url });
      }
      res.writeHead(state.status).end();
    });
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return {
    state,
    url: (node) => `http://127.0.0.1:${port}/hooks/${node}`,
    of: (type, where = () => true) => state.events.filter((e) => e.type === type && where(e)),
    answer: (status) => (state.status = status),
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A node of the cluster on `redis`, POSTing to `hook` (on its own path `name`). */
const node = (hook, redis, name, extra = {}) =>
  startGateway({
    SOCKGATE_API_KEY: API_KEY,
    SOCKGATE_REDIS_URL: redis.url,
    SOCKGATE_WEBHOOK_URL: hook.url(name),
    SOCKGATE_WEBHOOK_SECRET: SECRET,
    SOCKGATE_WEBHOOK_OFFLINE_DELAY: String(DELAY_MS / 1000),
    SOCKGATE_WEBHOOK_BATCH_MS: "20",
    SOCKGATE_ROOM_PRESENCE_EVENTS: "true",
    ...extra,
  });

const token = (user) => sign({ sub: user, rooms: ["game:*"] });
const join = async (s, room) => assert.equal((await s.emitWithAck("room:join", { room })).ok, true, `join ${room}`);
const leave = async (s, room) => assert.equal((await s.emitWithAck("room:leave", { room })).ok, true, `leave ${room}`);
const types = (events) => events.map((e) => e.type);
/** eventually(), its failure saying `what()` at the time it failed. */
const until = (fn, ms, what) =>
  eventually(fn, ms).catch(() => {
    throw new Error(`${what()} not reached within ${ms} ms`);
  });

describe("lifecycle webhooks, one cluster of two nodes", () => {
  let redis;
  let hook;
  let a;
  let b;
  before(async () => {
    redis = await startRedis();
    hook = await receiver();
    a = await node(hook, redis, "a");
    b = await node(hook, redis, "b");
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await hook?.close();
    await redis?.stop();
    assert.equal(hook.state.bad, 0, "every request was signed");
  });

  /** Resolves once the receiver has the session.started of `socket`'s session; returns its id. */
  const started = async (socket, what) => {
    const sid = await sessionIdOf(socket);
    await eventually(() => hook.of("session.started", (e) => e.sessionId === sid).length === 1, 10000, `session.started of ${what}`);
    return sid;
  };
  const ended = (sid, what) => eventually(() => hook.of("session.ended", (e) => e.sessionId === sid).length === 1, 10000, `session.ended of ${what}`);

  test("a user on both nodes is online once, and offline once its last socket on any node is gone", async () => {
    const user = "whc-both";
    const mine = (type) => hook.of(type, (e) => e.userId === user);
    const onA = await a.connect({ auth: { token: token(user) } });
    await started(onA, "the socket on A");
    await eventually(() => mine("user.online").length >= 1, 10000, "user.online");
    const onB = await b.connect({ auth: { token: token(user) } });
    await started(onB, "the socket on B");
    await sleep(SETTLE_MS);
    assert.equal(mine("user.online").length, 1, `one user.online for the cluster, got ${JSON.stringify(types(hook.state.events.filter((e) => e.userId === user)))}`);

    // The socket on A goes: the user is still online, on B.
    const sidA = await sessionIdOf(onA);
    onA.close();
    await ended(sidA, "the socket on A");
    await sleep(DELAY_MS + MARGIN_MS);
    assert.equal(mine("user.offline").length, 0, "no user.offline while a socket is on B");

    // The last one goes: offline once, after the delay.
    const sidB = await sessionIdOf(onB);
    const closed = Date.now();
    onB.close();
    await ended(sidB, "the socket on B");
    await eventually(() => mine("user.offline").length >= 1, 10000, "user.offline");
    const took = mine("user.offline")[0].at - closed;
    assert.ok(took >= DELAY_MS - 100, `user.offline ${took} ms after the last socket closed, before the ${DELAY_MS} ms delay`);
    await sleep(MARGIN_MS);
    assert.deepEqual(types(hook.state.events.filter((e) => e.userId === user && e.type.startsWith("user."))), ["user.online", "user.offline"]);
  });

  test("a user moving from node A to node B within the delay is neither offline nor online again", async () => {
    const user = "whc-moves";
    const mine = (type) => hook.of(type, (e) => e.userId === user);
    const first = await a.connect({ auth: { token: token(user) } });
    const sidA = await started(first, "the socket on A");
    await eventually(() => mine("user.online").length >= 1, 10000, "user.online");
    // A deploy, a reload landing on the other node: gone from A, back on B at once.
    first.close();
    const second = await b.connect({ auth: { token: token(user) } });
    const sidB = await started(second, "the socket on B");
    await ended(sidA, "the socket on A");
    await sleep(DELAY_MS + MARGIN_MS);
    assert.deepEqual(
      types(hook.state.events.filter((e) => e.userId === user && e.type.startsWith("user."))),
      ["user.online"],
      "neither a user.offline nor a second user.online",
    );
    // Gone for good: offline, once.
    second.close();
    await ended(sidB, "the socket on B");
    await eventually(() => mine("user.offline").length >= 1, 10000, "user.offline at last");
    await sleep(SETTLE_MS);
    assert.equal(mine("user.online").length, 1);
    assert.equal(mine("user.offline").length, 1);
  });

  test("a room with members on both nodes is occupied once, and vacated once its last member on any node left", async () => {
    const room = "game:whc-occupied";
    const ofRoom = (type, user) => hook.of(type, (e) => e.room === room && (user === undefined || e.userId === user));
    const u1 = await a.connect({ auth: { token: token("whc-occ-1") } });
    await join(u1, room);
    await eventually(() => ofRoom("member.joined", "whc-occ-1").length >= 1, 10000, "member.joined of the member on A");
    const u2 = await b.connect({ auth: { token: token("whc-occ-2") } });
    await join(u2, room);
    await eventually(() => ofRoom("member.joined", "whc-occ-2").length >= 1, 10000, "member.joined of the member on B");
    await sleep(SETTLE_MS);
    assert.equal(ofRoom("room.occupied").length, 1, `one room.occupied for the cluster, got ${JSON.stringify(types(ofRoom("room.occupied")))}`);

    // The member on A leaves: the room still has one, on B.
    await leave(u1, room);
    await eventually(() => ofRoom("member.left", "whc-occ-1").length >= 1, 10000, "member.left of the member on A");
    await sleep(DELAY_MS + MARGIN_MS);
    assert.equal(ofRoom("room.vacated").length, 0, "no room.vacated while a member is on B");

    // The last member leaves: vacated once, after the delay.
    const left = Date.now();
    await leave(u2, room);
    await eventually(() => ofRoom("member.left", "whc-occ-2").length >= 1, 10000, "member.left of the member on B");
    await eventually(() => ofRoom("room.vacated").length >= 1, 10000, "room.vacated");
    const took = ofRoom("room.vacated")[0].at - left;
    assert.ok(took >= DELAY_MS - 100, `room.vacated ${took} ms after the last member left, before the ${DELAY_MS} ms delay`);
    await sleep(MARGIN_MS);
    assert.deepEqual(types(hook.state.events.filter((e) => e.room === room && e.type.startsWith("room."))), ["room.occupied", "room.vacated"]);
    for (const user of ["whc-occ-1", "whc-occ-2"]) {
      assert.deepEqual(types(hook.state.events.filter((e) => e.room === room && e.userId === user)), ["member.joined", "member.left"], `${user} joined and left once`);
    }
    u1.close();
    u2.close();
  });

  test("a user in a room from both nodes joined it once, and left it once its last socket in it on any node left", async () => {
    const room = "game:whc-members";
    const user = "whc-mem";
    const ofUser = (type) => hook.of(type, (e) => e.room === room && e.userId === user);
    const onA = await a.connect({ auth: { token: token(user) } });
    await join(onA, room);
    await eventually(() => ofUser("member.joined").length >= 1, 10000, "member.joined from A");
    const onB = await b.connect({ auth: { token: token(user) } });
    await started(onB, "the socket on B");
    await join(onB, room);
    // A marker after the join on B: another user joins on B.
    const marker = await b.connect({ auth: { token: token("whc-mem-marker") } });
    await join(marker, room);
    await eventually(() => hook.of("member.joined", (e) => e.room === room && e.userId === "whc-mem-marker").length >= 1, 10000, "the marker's member.joined");
    await sleep(SETTLE_MS);
    assert.equal(ofUser("member.joined").length, 1, "one member.joined for the user's sockets on two nodes");

    // Its socket on A leaves the room: it is still in it, on B.
    await leave(onA, room);
    await sleep(DELAY_MS + MARGIN_MS);
    assert.equal(ofUser("member.left").length, 0, "no member.left while its socket on B is in the room");

    // Its last socket in the room ends (not a room:leave): left, once.
    const sidB = await sessionIdOf(onB);
    onB.close();
    await ended(sidB, "the socket on B");
    await eventually(() => ofUser("member.left").length >= 1, 10000, "member.left");
    await sleep(DELAY_MS + MARGIN_MS);
    assert.deepEqual(types(hook.state.events.filter((e) => e.room === room && e.userId === user)), ["member.joined", "member.left"]);
    onA.close();
    marker.close();
  });

  test("room:joined and room:left reach the members on both nodes once, for a user on both nodes", async () => {
    const room = "game:whc-push";
    const user = "whc-push-u";
    /** A member socket of the room on `gw`, recording what it hears about `user`. */
    const member = async (gw, name) => {
      const socket = await gw.connect({ auth: { token: token(name) } });
      const heard = [];
      socket.on("room:joined", (p) => p.userId === user && heard.push(["joined", p.room, p.userId, Date.now()]));
      socket.on("room:left", (p) => p.userId === user && heard.push(["left", p.room, p.userId, Date.now()]));
      await join(socket, room);
      return { socket, heard, of: (kind) => heard.filter((h) => h[0] === kind && h[1] === room) };
    };
    const onB = await member(b, "whc-push-mb");
    const onA = await member(a, "whc-push-ma");
    const members = [
      ["the member on A", onA],
      ["the member on B", onB],
    ];

    // The user joins on A, then with a second socket on B.
    const first = await a.connect({ auth: { token: token(user) } });
    await join(first, room);
    for (const [name, m] of members) await eventually(() => m.of("joined").length >= 1, 10000, `room:joined heard by ${name}`);
    const second = await b.connect({ auth: { token: token(user) } });
    await join(second, room);
    await sleep(SETTLE_MS);
    for (const [name, m] of members) assert.equal(m.of("joined").length, 1, `${name} hears room:joined once, heard ${JSON.stringify(m.heard)}`);

    // Its socket on A goes: still there, on B.
    first.close();
    await sleep(DELAY_MS + MARGIN_MS);
    for (const [name, m] of members) assert.equal(m.of("left").length, 0, `${name} hears no room:left while the user's socket on B is in the room`);

    // Its last socket goes: room:left once, after the delay.
    const closed = Date.now();
    second.close();
    for (const [name, m] of members) await eventually(() => m.of("left").length >= 1, 10000, `room:left heard by ${name}`);
    for (const [name, m] of members) {
      const took = m.of("left")[0][3] - closed;
      assert.ok(took >= DELAY_MS - 100, `${name} heard room:left ${took} ms after the last socket closed, before the ${DELAY_MS} ms delay`);
    }
    await sleep(MARGIN_MS);
    for (const [name, m] of members) {
      assert.deepEqual(m.heard.map((h) => h[0]), ["joined", "left"], `${name}: one room:joined, one room:left`);
    }
    onA.socket.close();
    onB.socket.close();
  });
});

describe("lifecycle webhooks, a node that dies with events queued", () => {
  test("its queued events are delivered by the surviving node, then its sessions NODE_LOST", async () => {
    const redis = await startRedis();
    const hook = await receiver();
    const settings = { SOCKGATE_WEBHOOK_RETRY_FOR: "120" };
    const a = await node(hook, redis, "a", settings);
    const b = await node(hook, redis, "b", settings);
    try {
      // The receiver is down (503) while sessions start on A: their events wait in A's queue.
      hook.answer(503);
      const users = ["whc-dead-1", "whc-dead-2", "whc-dead-3"];
      const sockets = await Promise.all(users.map((u) => a.connect({ auth: { token: token(u) } })));
      const sids = await Promise.all(sockets.map((s) => sessionIdOf(s)));
      await eventually(
        () => sids.every((sid) => hook.state.refused.some((e) => e.type === "session.started" && e.sessionId === sid && e.path === "/hooks/a")),
        10000,
        "A tried to send its session.started events (refused)",
      );
      assert.equal(hook.state.events.length, 0, "nothing taken while the receiver is down");
      await sleep(1500); // whatever A keeps of its queue elsewhere, at most once a second, is kept
      a.child.kill("SIGKILL");
      hook.answer(204);

      // B takes A (its heartbeat expires in 5 s, looked for every 2 s): A's sessions end NODE_LOST...
      await until(
        () => sids.every((sid) => hook.of("session.ended", (e) => e.sessionId === sid && e.code === "NODE_LOST").length >= 1),
        25000,
        () => `session.ended NODE_LOST of A's sessions (taken: ${JSON.stringify(types(hook.state.events))})`,
      );
      // ... and what A had queued is sent too, by B.
      await until(
        () => sids.every((sid) => hook.of("session.started", (e) => e.sessionId === sid).length >= 1),
        10000,
        () => `A's queued session.started events (taken: ${JSON.stringify(hook.state.events.map((e) => [e.type, e.userId, e.code]))})`,
      );
      for (const [i, sid] of sids.entries()) {
        const [e] = hook.of("session.started", (x) => x.sessionId === sid);
        assert.equal(e.userId, users[i]);
        assert.equal(e.path, "/hooks/b", "delivered by the surviving node");
      }
      for (const u of users) {
        await eventually(() => hook.of("user.offline", (e) => e.userId === u).length >= 1, 10000, `user.offline of ${u}`);
        assert.equal(hook.of("user.online", (e) => e.userId === u).length, 1, `A's queued user.online of ${u}`);
      }
      await sleep(SETTLE_MS);
      for (const sid of sids) {
        assert.equal(hook.of("session.started", (e) => e.sessionId === sid).length, 1);
        assert.equal(hook.of("session.ended", (e) => e.sessionId === sid).length, 1, "ended once");
      }
      for (const u of users) assert.equal(hook.of("user.offline", (e) => e.userId === u).length, 1, `one user.offline of ${u}`);
      assert.equal(hook.state.bad, 0, "every request was signed");
    } finally {
      await a.stop();
      await b.stop();
      await hook.close();
      await redis.stop();
    }
  });
});

describe("lifecycle webhooks, the cluster's shared queue and a deploy", () => {
  test("entries in the shared queue that are not events are dropped unsent; the queue goes on", async () => {
    const redis = await startRedis();
    const hook = await receiver();
    const a = await node(hook, redis, "a");
    const cli = (...args) => execFileSync("redis-cli", ["-p", String(redis.port), ...args], { encoding: "utf8" }).trim();
    try {
      // Written by hand ahead of the nodes' events: another field, not JSON, JSON but no event.
      cli("XADD", "sockgate:webhooks", "*", "junk", "1");
      cli("XADD", "sockgate:webhooks", "*", "e", "not json {");
      cli("XADD", "sockgate:webhooks", "*", "e", '{"type":"user.online"}');
      const socket = await a.connect({ auth: { token: token("whc-poison") } });
      const sid = await sessionIdOf(socket);
      await eventually(() => hook.of("session.started", (e) => e.sessionId === sid).length === 1, 10000, "the session.started after the junk");
      await eventually(() => cli("XLEN", "sockgate:webhooks") === "0", 10000, "the queue emptied");
      assert.deepEqual(types(hook.state.events), ["session.started", "user.online"]);
      assert.equal(hook.state.bad, 0, "every request was signed");
      socket.close();
    } finally {
      await a.stop();
      await hook.close();
      await redis.stop();
    }
  });

  test("what a cleanly stopped node's last writes left in Redis is removed by a live node, without NODE_LOST", async () => {
    const redis = await startRedis();
    const hook = await receiver();
    const cli = (...args) => execFileSync("redis-cli", ["-p", String(redis.port), ...args], { encoding: "utf8" }).trim();
    // A node that stopped a minute ago, marked stopped, whose last writes did
    // not reach Redis: a session entry and a user it still holds in the count.
    const gone = "00000000deadbeef";
    const code = JSON.stringify({ u: "whc-leftover" });
    cli("SET", `sockgate:lost:${gone}`, `stopped:${Date.now() - 60000}`);
    const info = { sessionId: "leftover-sid", userId: "whc-leftover", connectedAt: Math.floor(Date.now() / 1000) - 120, expiresAt: null, remoteAddr: null, userAgent: null, transport: "websocket" };
    cli("HSET", `sockgate:sessions:${gone}`, "leftover-sid", JSON.stringify(info));
    // A node is in the set of nodes from its first heartbeat on.
    cli("SADD", "sockgate:nodes", gone);
    cli("SADD", `sockgate:census:${code}`, gone);
    cli("SADD", `sockgate:census-of:${gone}`, code);
    const a = await node(hook, redis, "a");
    try {
      await eventually(() => cli("EXISTS", `sockgate:sessions:${gone}`) === "0", 15000, "the leftover session hash removed");
      await eventually(() => hook.of("user.offline", (e) => e.userId === "whc-leftover").length === 1, 10000, "the leftover user told offline");
      assert.equal(cli("EXISTS", `sockgate:census-of:${gone}`), "0");
      assert.equal(cli("GET", `sockgate:lost:${gone}`), "cleaned");
      await sleep(SETTLE_MS);
      assert.equal(hook.of("session.ended").length, 0, "no NODE_LOST for a node that stopped cleanly");
      assert.equal(hook.of("user.offline").length, 1);
    } finally {
      await a.stop();
      await hook.close();
      await redis.stop();
    }
  });

  test("a node stopped cleanly (a deploy): its users, back on the other node within the delay, are neither offline nor online again", async () => {
    const redis = await startRedis();
    const hook = await receiver();
    const a = await node(hook, redis, "a");
    const b = await node(hook, redis, "b");
    try {
      const user = "whc-deploy";
      const first = await a.connect({ auth: { token: token(user) } });
      await join(first, "game:whc-deploy");
      const sid = await sessionIdOf(first);
      await eventually(() => hook.of("member.joined", (e) => e.userId === user).length === 1, 10000, "member.joined");
      // SIGTERM with the client still there (a.stop() would close it first):
      // its session ends SERVER_SHUTDOWN, its departures wait in Redis.
      const exited = new Promise((r) => a.child.once("exit", r));
      a.child.kill("SIGTERM");
      await exited;
      await eventually(() => hook.of("session.ended", (e) => e.sessionId === sid).length === 1, 10000, "session.ended");
      assert.equal(hook.of("session.ended", (e) => e.sessionId === sid)[0].code, "SERVER_SHUTDOWN");
      const second = await b.connect({ auth: { token: token(user) } });
      await join(second, "game:whc-deploy");
      const sid2 = await sessionIdOf(second);
      await eventually(() => hook.of("session.started", (e) => e.sessionId === sid2).length === 1, 10000, "the new session.started");
      await sleep(DELAY_MS + MARGIN_MS + 500); // A's departures came due (swept by B): no news
      assert.equal(hook.of("user.offline", (e) => e.userId === user).length, 0, "no user.offline across the deploy");
      assert.equal(hook.of("user.online", (e) => e.userId === user).length, 1, "online once");
      assert.equal(hook.of("room.vacated").length, 0, "the room was never empty for longer than the delay");
      // member.left is not delayed: A's member left, B's joined again.
      second.close();
      await eventually(() => hook.of("user.offline", (e) => e.userId === user).length === 1, 10000, "user.offline at the real end");
      await sleep(SETTLE_MS);
      assert.equal(hook.of("user.offline", (e) => e.userId === user).length, 1);
      assert.equal(hook.state.bad, 0, "every request was signed");
    } finally {
      await a.stop();
      await b.stop();
      await hook.close();
      await redis.stop();
    }
  });
});

describe("lifecycle webhooks through a Redis outage", () => {
  test("a user who leaves while Redis is away is told offline by the node alone (sent once Redis is back); the count is set right, and the next visit is online again", async () => {
    const redis = await startRedis();
    const proxy = await startProxy(redis.port);
    const hook = await receiver();
    const a = await node(hook, { url: `redis://127.0.0.1:${proxy.port}` }, "a");
    const cli = (...args) => execFileSync("redis-cli", ["-p", String(redis.port), ...args], { encoding: "utf8" }).trim();
    const user = "whc-outage";
    const code = JSON.stringify({ u: user });
    try {
      const first = await a.connect({ auth: { token: token(user) } });
      await eventually(() => hook.of("user.online", (e) => e.userId === user).length === 1, 10000, "online");
      assert.equal(cli("SCARD", `sockgate:census:${code}`), "1", "the node holds the user in the count");
      proxy.cut();
      await eventually(async () => (await fetch(`${a.url}/readyz`)).status === 503, 15000, "the node saw Redis go");
      first.close(); // the count cannot be asked: the node tells the departure alone
      await sleep(DELAY_MS + MARGIN_MS);
      assert.equal(cli("SCARD", `sockgate:census:${code}`), "1", "Redis still counts the node");
      await proxy.resume();
      await eventually(async () => (await fetch(`${a.url}/readyz`)).status === 200, 15000, "the node saw Redis come back");
      // Its events waited on the node for the shared queue.
      await eventually(() => hook.of("user.offline", (e) => e.userId === user).length === 1, 15000, "the offline told during the outage");
      await eventually(() => cli("SCARD", `sockgate:census:${code}`) === "0", 10000, "the count set right");
      const second = await a.connect({ auth: { token: token(user) } });
      await eventually(() => hook.of("user.online", (e) => e.userId === user).length === 2, 10000, "online again");
      assert.deepEqual(types(hook.of("user.online").concat(hook.of("user.offline")).filter((e) => e.userId === user).sort((x, y) => x.ts - y.ts)), ["user.online", "user.offline", "user.online"]);
      assert.equal(hook.state.bad, 0, "every request was signed");
      second.close();
    } finally {
      await a.stop();
      await hook.close();
      proxy.stop();
      await redis.stop();
    }
  });
});
