// Connection-state recovery with the official client: a dropped transport
// comes back with its socket id, its rooms and every room message it
// missed, once and in order; a handshake that recovers is verified like any
// other, and anything off gives a fresh session.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect as tcpConnect } from "node:net";
import { api, API_KEY, eventually, now, sign, startGateway, startRedis } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const caps = { rooms: ["chat:*"] };
// The official client, reconnecting by itself, fast.
const reconnecting = { reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 100, randomizationFactor: 0 };

/** Publishes `{ n }` as `news` to room `chat:r`, or as `note` to user `alice`. */
async function publish(gw, n, to = "room") {
  const body = to === "room" ? { room: "chat:r", event: "news", data: { n } } : { user: "alice", event: "note", data: { n } };
  const res = await api(gw, "POST", "/api/publish", { body });
  assert.equal(res.status, 200, JSON.stringify(res.body));
}

/** Records the `n` of every news and note `socket` gets, with the offset that came with it. */
function record(socket) {
  const got = [];
  const offsets = [];
  for (const event of ["news", "note"]) {
    socket.on(event, (data, offset) => {
      got.push(data.n);
      offsets.push(offset);
    });
  }
  return { got, offsets };
}

/** Resolves on the socket's next `connect`. */
const reconnected = (socket) => new Promise((resolve) => socket.once("connect", resolve));

/** The numbers from `a` to `b`. */
const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

async function aliceIn(gw, extra = {}) {
  const alice = await gw.connect({ ...reconnecting, auth: { token: sign({ sub: "alice", ...caps }) }, ...extra });
  assert.equal((await alice.emitWithAck("room:join", { room: "chat:r" })).ok, true);
  return alice;
}

describe("recovery on one node", () => {
  let gw;
  before(async () => {
    gw = await startGateway({ SOCKGATE_API_KEY: API_KEY });
  });
  after(() => gw.stop());

  test("a dropped transport recovers its id and rooms, and gets what it missed once and in order", async () => {
    const alice = await aliceIn(gw);
    const { got, offsets } = record(alice);
    assert.equal(alice.recovered, false);
    const id = alice.id;
    for (const n of range(1, 4)) await publish(gw, n, n % 2 ? "room" : "user");
    await eventually(() => got.length === 4, 5000, "the first messages");
    assert.match(offsets[3], /^\d+-\d+$/, "a broadcast carries its offset last");

    const back = reconnected(alice);
    alice.io.engine.close();
    // Published while the transport is down, then while it comes back.
    for (const n of range(5, 14)) await publish(gw, n, n % 2 ? "room" : "user");
    const racing = (async () => {
      for (const n of range(15, 40)) await publish(gw, n, n % 3 ? "room" : "user");
    })();
    await back;
    await racing;
    assert.equal(alice.recovered, true, "recovered");
    assert.equal(alice.id, id, "the same socket id");
    await eventually(() => got.length >= 40, 5000, "every message");
    await sleep(200);
    assert.deepEqual(got, range(1, 40), "every message once, in order");

    // Its rooms came back too: a new message reaches it.
    await publish(gw, 41);
    await eventually(() => got.length === 41, 5000, "a message after recovery");
    alice.close();
  });

  test("a client that saw no offset gets everything since it connected", async () => {
    const alice = await aliceIn(gw);
    const { got } = record(alice);
    const id = alice.id;
    const back = reconnected(alice);
    alice.io.engine.close();
    for (const n of range(1, 3)) await publish(gw, n);
    await back;
    assert.equal(alice.recovered, true);
    assert.equal(alice.id, id);
    await eventually(() => got.length === 3, 5000, "the missed messages");
    assert.deepEqual(got, [1, 2, 3]);
    alice.close();
  });

  test("a foreign pid gives a fresh session, and leaves the owner's to recover", async () => {
    const alice = await aliceIn(gw);
    const pid = alice._pid;
    assert.ok(pid, "the CONNECT answer carries a pid");
    const aliceId = alice.id;
    const aliceSession = (await alice.emitWithAck("auth:whoami")).sessionId;
    alice.io.reconnection(false);
    alice.io.engine.close();
    await sleep(100);

    // Mallory holds a valid token of her own and alice's pid.
    const mallory = await gw.connect({ auth: { token: sign({ sub: "mallory", ...caps }), pid, offset: "0-0" } });
    const { got } = record(mallory);
    assert.equal(mallory.recovered, false);
    assert.notEqual(mallory.id, aliceId);
    const me = await mallory.emitWithAck("auth:whoami");
    assert.equal(me.userId, "mallory");
    assert.notEqual(me.sessionId, aliceSession);
    await publish(gw, 1);
    await sleep(200);
    assert.deepEqual(got, [], "not in alice's room");

    // A forged pid of alice's session names nothing either.
    const forged = pid.slice(0, -1) + (pid.endsWith("0") ? "1" : "0");
    const eve = await gw.connect({ auth: { token: sign({ sub: "alice", ...caps }), pid: forged } });
    assert.notEqual(eve.id, aliceId);
    eve.close();

    const back = reconnected(alice);
    alice.io.reconnection(true);
    alice.connect();
    await back;
    assert.equal(alice.recovered, true, "the owner still recovers");
    assert.equal(alice.id, aliceId);
    alice.close();
    mallory.close();
  });

  test("a revoked token does not recover; a new token after a user revocation gets a fresh session", async () => {
    let token = sign({ sub: "alice", jti: "recovery-jti-1", ...caps });
    const alice = await gw.connect({ ...reconnecting, reconnection: false, auth: (cb) => cb({ token }) });
    assert.equal((await alice.emitWithAck("room:join", { room: "chat:r" })).ok, true);
    alice.io.engine.close();
    await sleep(100);
    const revoked = await api(gw, "POST", "/api/revocations", { body: { jti: "recovery-jti-1", expiresAt: now() + 600 } });
    assert.equal(revoked.status, 201);

    const refused = new Promise((resolve) => alice.once("connect_error", resolve));
    alice.connect();
    const err = await refused;
    assert.equal(err.data?.code, "TOKEN_REVOKED");
    assert.notEqual(alice.recovered, true);

    // Every token of the user issued so far is revoked; a newer one
    // connects, but the old session does not come back.
    const bob = await gw.connect({ ...reconnecting, reconnection: false, auth: (cb) => cb({ token: sign({ sub: "bob", iat: now() - 5, ...caps }) }) });
    const bobId = bob.id;
    bob.io.engine.close();
    await sleep(100);
    assert.equal((await api(gw, "POST", "/api/revocations", { body: { userId: "bob", issuedBefore: now() } })).status, 201);
    const fresh = new Promise((resolve) => bob.once("connect", resolve));
    token = sign({ sub: "bob", ...caps });
    bob.auth = (cb) => cb({ token });
    bob.connect();
    await fresh;
    assert.equal(bob.recovered, false);
    assert.notEqual(bob.id, bobId);
    bob.close();
    alice.close();
  });

  test("a kicked user's dropped session does not come back", async () => {
    const alice = await aliceIn(gw, { reconnection: false });
    const id = alice.id;
    alice.io.engine.close();
    await sleep(100);
    assert.equal((await api(gw, "POST", "/api/users/alice/disconnect")).status, 200);
    const back = new Promise((resolve) => alice.once("connect", resolve));
    alice.connect();
    await back;
    assert.equal(alice.recovered, false);
    assert.notEqual(alice.id, id);
    alice.close();
  });
});

describe("recovery bounds", () => {
  test("a window that has passed gives a fresh session", async () => {
    const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY, SOCKGATE_RECOVERY_WINDOW: "1" });
    try {
      const alice = await aliceIn(gw, { reconnection: false });
      const { got } = record(alice);
      const id = alice.id;
      alice.io.engine.close();
      await publish(gw, 1);
      await sleep(1600);
      const back = reconnected(alice);
      alice.connect();
      await back;
      assert.equal(alice.recovered, false);
      assert.notEqual(alice.id, id);
      await publish(gw, 2);
      await sleep(200);
      assert.deepEqual(got, [], "a fresh session is in no room and gets nothing missed");
      alice.close();
    } finally {
      await gw.stop();
    }
  });

  test("a session that missed more than the bound gets a fresh session", async () => {
    const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY, SOCKGATE_RECOVERY_MAX_PACKETS: "3" });
    try {
      const alice = await aliceIn(gw, { reconnection: false });
      const { got } = record(alice);
      alice.io.engine.close();
      for (const n of range(1, 4)) await publish(gw, n);
      const back = reconnected(alice);
      alice.connect();
      await back;
      assert.equal(alice.recovered, false, "never a session with a gap");
      await sleep(200);
      assert.deepEqual(got, []);
      alice.close();
    } finally {
      await gw.stop();
    }
  });

  test("SOCKGATE_RECOVERY_WINDOW=0 turns recovery off", async () => {
    const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY, SOCKGATE_RECOVERY_WINDOW: "0" });
    try {
      const alice = await aliceIn(gw);
      const { offsets } = record(alice);
      assert.equal(alice._pid, undefined, "no pid in the CONNECT answer");
      await publish(gw, 1);
      await eventually(() => offsets.length === 1, 5000, "a message");
      assert.equal(offsets[0], undefined, "no offset argument");
      alice.close();
    } finally {
      await gw.stop();
    }
  });
});

/** A TCP proxy in front of one gateway, then another: what a load balancer does on a deploy. */
async function proxyTo(first) {
  let target = new URL(first.url);
  const open = new Set();
  const server = createServer((client) => {
    const upstream = tcpConnect(Number(target.port), target.hostname);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    open.add(drop);
    client.on("close", () => {
      open.delete(drop);
      drop();
    });
    upstream.on("close", drop);
    client.on("error", drop);
    upstream.on("error", drop);
    client.pipe(upstream).pipe(client);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    /** Sends new connections to `gw` and cuts the open ones. */
    switchTo(gw) {
      target = new URL(gw.url);
      for (const drop of open) drop();
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

describe("recovery in a cluster", () => {
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

  test("a session dropped on one node recovers on the other, with what it missed", async () => {
    const proxy = await proxyTo(a);
    try {
      // Through the proxy, as a client behind a load balancer.
      const { io } = await import("socket.io-client");
      const client = io(proxy.url, { ...reconnecting, forceNew: true, transports: ["websocket"], auth: { token: sign({ sub: "alice", ...caps }) } });
      await reconnected(client);
      assert.equal((await client.emitWithAck("room:join", { room: "chat:r" })).ok, true);
      const { got } = record(client);
      const id = client.id;
      await publish(a, 1);
      await publish(b, 2, "user");
      await eventually(() => got.length === 2, 5000, "messages from both nodes");

      const back = reconnected(client);
      proxy.switchTo(b);
      for (const n of range(3, 8)) await publish(n % 2 ? a : b, n, n % 2 ? "room" : "user");
      await back;
      assert.equal(client.recovered, true, "recovered on the other node");
      assert.equal(client.id, id);
      for (const n of range(9, 12)) await publish(n % 2 ? a : b, n);
      await eventually(() => got.length >= 12, 5000, "every message");
      await sleep(200);
      assert.deepEqual(got, range(1, 12), "every message once, in order");
      const sessions = (await api(a, "GET", "/api/sessions?user=alice")).body.sessions;
      assert.equal(sessions.length, 1, "one session, on the new node");
      client.close();
    } finally {
      await proxy.close();
    }
  });
});
