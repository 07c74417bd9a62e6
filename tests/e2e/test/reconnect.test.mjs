// Staying connected: restarts, bursts and proxies never strand a client that
// uses the official socket.io-client with its default options, while
// terminal ends (revoked, kicked) stay ended.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { io } from "socket.io-client";
import { api, API_KEY, eventually, freePort, refusal, sign, startGateway } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A client as apps write it: default options (reconnection on, polling then
 * the upgrade to WebSocket) and an `auth` callback that signs a fresh token
 * for every attempt. Records what it lives through.
 */
function client(url, sub, opts = {}) {
  const socket = io(url, { forceNew: true, auth: (cb) => cb({ token: sign({ sub }) }), ...opts });
  const seen = { ends: [], disconnects: [], connects: 0, connectErrors: [] };
  socket.on("connect", () => seen.connects++);
  // `disconnects` tells whether it came before the close (0) or was held
  // back and delivered after a reconnect.
  socket.on("session:end", (end) => seen.ends.push({ ...end, disconnects: seen.disconnects.length }));
  socket.on("disconnect", (reason) => seen.disconnects.push({ reason, at: Date.now() }));
  socket.on("connect_error", (err) => seen.connectErrors.push(err));
  return { socket, seen };
}

const connectedCount = (clients) => clients.filter((c) => c.socket.connected).length;

test("a graceful restart brings every client back, on either transport", async () => {
  const port = await freePort();
  const env = { SOCKGATE_LISTEN: `127.0.0.1:${port}`, SOCKGATE_DRAIN_WINDOW: "2" };
  let gw = await startGateway(env);
  const clients = [];
  try {
    for (let i = 0; i < 300; i++) {
      // Mostly the defaults; some pinned to one transport, to cover both closes.
      const transports = i % 10 === 0 ? ["polling"] : i % 10 === 1 ? ["websocket"] : undefined;
      clients.push(client(gw.url, `restart-${i}`, transports ? { transports } : {}));
    }
    await eventually(() => connectedCount(clients) === 300, 30000, "300 clients connected");
    await eventually(() => clients.every((c) => c.socket.io.engine?.transport?.name === (c.socket.io.opts.transports?.[0] ?? "websocket")), 10000, "upgrades done");

    const exited = new Promise((r) => gw.child.once("exit", (code) => r(code)));
    gw.child.kill("SIGTERM");
    assert.equal(await exited, 0, "the old process exits 0");
    gw = await startGateway(env);

    await eventually(() => connectedCount(clients) === 300, 45000, "every client back");
    for (const [i, { socket, seen }] of clients.entries()) {
      assert.deepEqual(
        seen.ends.map((e) => [e.code, e.reconnect, e.disconnects]),
        [["SERVER_SHUTDOWN", true, 0]],
        `client ${i}: session:end before the close: ${JSON.stringify(seen.ends)}`,
      );
      assert.equal(seen.disconnects.length, 1, `client ${i}`);
      assert.match(seen.disconnects[0].reason, /^transport (close|error)$/, `client ${i}`);
      assert.equal(seen.connects, 2, `client ${i} connected twice`);
      const me = await socket.emitWithAck("auth:whoami");
      assert.equal(me.userId, `restart-${i}`);
    }
    // The closes were spread rather than all at once: 300 sessions at the
    // drain pace of 5,000 per second take 60 ms (the window is the most).
    const times = clients.map((c) => c.seen.disconnects[0].at);
    const spread = Math.max(...times) - Math.min(...times);
    assert.ok(spread >= 40, `closes spread over ${spread} ms`);
  } finally {
    for (const c of clients) c.socket.close();
    await gw.stop();
  }
});

test("/readyz fails and new transports are refused while a node drains", async () => {
  const gw = await startGateway({ SOCKGATE_DRAIN_WINDOW: "3" });
  const clients = [];
  try {
    for (let i = 0; i < 20; i++) clients.push(client(gw.url, `drain-${i}`, { transports: ["websocket"] }));
    await eventually(() => connectedCount(clients) === 20, 10000, "20 connected");
    assert.equal((await fetch(gw.url + "/readyz")).status, 200);
    gw.child.kill("SIGTERM");
    await eventually(async () => (await fetch(gw.url + "/readyz")).status === 503, 2000, "readyz 503");
    const open = await fetch(gw.url + "/socket.io/?EIO=4&transport=polling");
    assert.equal(open.status, 503);
    assert.ok(Number(open.headers.get("retry-after")) >= 1);
    const body = await open.json();
    assert.equal(body.code, "SERVER_SHUTDOWN");
    assert.ok(body.retryAfterMs > 0);
  } finally {
    for (const c of clients) c.socket.close();
    await gw.stop();
  }
});

test("a burst of 600 clients from one address all connect under the default limits", async () => {
  const gw = await startGateway({ SOCKGATE_HANDSHAKE_RATE: undefined, SOCKGATE_HANDSHAKE_BURST: undefined });
  const clients = [];
  try {
    for (let i = 0; i < 600; i++) clients.push(client(gw.url, `burst-${i}`));
    await eventually(() => connectedCount(clients) === 600, 50000, "600 clients connected");
    // The default budget (burst 200, 50/s) was exceeded and the excess
    // retried by itself after an HTTP 429.
    const refused = clients.flatMap((c) => c.seen.connectErrors);
    assert.ok(refused.filter((e) => e.message === "xhr poll error" && e.description === 429).length > 0, "some attempts were refused with 429");
    // Nothing but transport-level failures, which the client retries: no
    // refusal reached it as a Socket.IO CONNECT error.
    for (const err of refused) assert.match(err.message, /^(xhr poll error|xhr post error|websocket error|timeout)$/, `${err.message} ${err.description}`);
    assert.ok(clients.every((c) => c.seen.ends.length === 0));
  } finally {
    for (const c of clients) c.socket.close();
    await gw.stop();
  }
});

test("revoked and kicked clients stay disconnected", async () => {
  const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY });
  try {
    const revoked = client(gw.url, "revoke-me");
    const kicked = client(gw.url, "kick-me");
    const expired = client(gw.url, "expire-me", { auth: { token: sign({ sub: "expire-me" }, { ttl: 2 }) } });
    await eventually(() => revoked.socket.connected && kicked.socket.connected && expired.socket.connected, 10000, "connected");
    let attempts = 0;
    for (const c of [revoked, kicked]) c.socket.io.on("reconnect_attempt", () => attempts++);
    assert.equal((await api(gw, "POST", "/api/revocations", { body: { userId: "revoke-me" } })).status, 201);
    const kickedId = (await kicked.socket.emitWithAck("auth:whoami")).sessionId;
    assert.equal((await api(gw, "DELETE", `/api/sessions/${kickedId}`)).status, 200);
    // An expired session is a retryable end: the client comes back with
    // whatever its auth gives; a fixed, expired token is then refused with a
    // terminal TOKEN_EXPIRED, and it stops there.
    await sleep(4000);
    assert.deepEqual(revoked.seen.ends.map((e) => [e.code, e.reconnect, e.disconnects]), [["TOKEN_REVOKED", false, 0]]);
    assert.deepEqual(kicked.seen.ends.map((e) => [e.code, e.reconnect, e.disconnects]), [["KICKED", false, 0]]);
    for (const c of [revoked, kicked]) {
      assert.deepEqual(c.seen.disconnects.map((d) => d.reason), ["io server disconnect"]);
      assert.equal(c.socket.connected, false);
      assert.equal(c.seen.connects, 1);
    }
    assert.equal(attempts, 0, "no reconnect attempt");
    assert.deepEqual(expired.seen.ends.map((e) => [e.code, e.reconnect, e.disconnects]), [["SESSION_EXPIRED", true, 0]]);
    assert.match(expired.seen.disconnects[0].reason, /^transport (close|error)$/);
    assert.equal(expired.socket.connected, false);
    assert.match(expired.seen.connectErrors.at(-1)?.message ?? "", /^TOKEN_EXPIRED: /);
    revoked.socket.close();
    kicked.socket.close();
    expired.socket.close();
  } finally {
    await gw.stop();
  }
});

test("an expired session with a token source comes back on a fresh token", async () => {
  const gw = await startGateway();
  try {
    // The auth callback is asked before every attempt: the second one gets
    // a token that lives long enough.
    let issued = 0;
    const socket = io(gw.url, {
      forceNew: true,
      auth: (cb) => cb({ token: sign({ sub: "fresh" }, { ttl: issued++ === 0 ? 2 : 300 }) }),
    });
    const ends = [];
    socket.on("session:end", (e) => ends.push(e.code));
    let connects = 0;
    socket.on("connect", () => connects++);
    await eventually(() => connects === 2, 15000, "back after the expiry");
    assert.deepEqual(ends, ["SESSION_EXPIRED"]);
    assert.equal((await socket.emitWithAck("auth:whoami")).userId, "fresh");
    socket.close();
  } finally {
    await gw.stop();
  }
});

test("behind a trusted proxy each forwarded client has its own budget; forged headers do not", async () => {
  const limits = { SOCKGATE_HANDSHAKE_RATE: "1", SOCKGATE_HANDSHAKE_BURST: "2", SOCKGATE_API_KEY: API_KEY };
  const proxied = await startGateway({ ...limits, SOCKGATE_TRUSTED_PROXIES: "127.0.0.0/8" });
  const direct = await startGateway(limits);
  const from = (ip) => ({ auth: { token: sign({ sub: ip }) }, transports: ["polling"], extraHeaders: { "x-forwarded-for": ip } });
  try {
    // Two handshakes each for two users behind the proxy; the third of one
    // user is refused, and the other user is not affected.
    await proxied.connect(from("198.51.100.1"));
    await proxied.connect(from("198.51.100.1"));
    const third = await refusal(proxied, from("198.51.100.1"));
    assert.equal(third.message, "xhr poll error");
    assert.equal(third.description, 429);
    await proxied.connect(from("198.51.100.2"));
    await proxied.connect(from("198.51.100.2"));
    const listed = await api(proxied, "GET", "/api/sessions?user=198.51.100.2");
    assert.deepEqual(listed.body.sessions.map((s) => s.remoteAddr), ["198.51.100.2", "198.51.100.2"]);
    // A client that forges the header towards a gateway that trusts no proxy
    // shares its real address's budget whatever it writes.
    await direct.connect(from("203.0.113.1"));
    await direct.connect(from("203.0.113.2"));
    assert.equal((await refusal(direct, from("203.0.113.3"))).description, 429);
    const forged = await api(direct, "GET", "/api/sessions?user=203.0.113.1");
    assert.deepEqual(forged.body.sessions.map((s) => s.remoteAddr), ["127.0.0.1"]);
  } finally {
    await proxied.stop();
    await direct.stop();
  }
});

test("an oversized admin body gets its 413 answer, not a broken pipe", async () => {
  const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY });
  const { hostname, port } = new URL(gw.url);
  const body = Buffer.alloc(3 * 1024 * 1024, "x");
  const post = () =>
    new Promise((resolve) => {
      const req = http.request(
        { host: hostname, port, method: "POST", path: "/api/revocations", agent: false, headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json", "content-length": body.length } },
        (res) => {
          let text = "";
          res.on("data", (d) => (text += d));
          res.on("end", () => resolve({ status: res.statusCode, text }));
        },
      );
      req.on("error", (err) => resolve({ error: err.code }));
      req.end(body);
    });
  try {
    for (let i = 0; i < 20; i++) {
      const res = await post();
      assert.equal(res.status, 413, `attempt ${i}: ${JSON.stringify(res)}`);
      assert.equal(JSON.parse(res.text).error.code, "PAYLOAD_TOO_LARGE");
    }
  } finally {
    await gw.stop();
  }
});
