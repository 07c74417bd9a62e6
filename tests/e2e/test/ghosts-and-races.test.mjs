// Attacks on session bookkeeping (security review, high and medium items):
// a session must exist only while its socket does, and a revocation must
// leave no session on its token, whatever it races.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { io } from "socket.io-client";
import { api, API_KEY, eventually, now, sessionIdOf, sign, startGateway, startRedis } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Opens a long-polling Engine.IO session with raw HTTP; returns its sid.
 * Retries while the gateway refuses new transports (its cap is full).
 */
async function openPolling(url) {
  for (let i = 0; ; i++) {
    const res = await fetch(`${url}/socket.io/?EIO=4&transport=polling`);
    const text = await res.text();
    if (res.status === 200) return JSON.parse(text.slice(1)).sid;
    assert.equal(res.status, 503, text);
    assert.ok(i < 100, "the gateway refused new transports for 10 s");
    await sleep(100);
  }
}

test("a CONNECT sent together with an Engine.IO close leaves no session behind", async () => {
  const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY, SOCKGATE_MAX_CONNECTIONS: "20", SOCKGATE_HANDSHAKE_RATE: "0" });
  try {
    const token = sign({ sub: "ghost" });
    for (let i = 0; i < 100; i++) {
      // Long-polling: CONNECT and close in one payload.
      const sid = await openPolling(gw.url);
      await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
        method: "POST",
        body: `40${JSON.stringify({ token })}\x1e1`,
      });
      // WebSocket: CONNECT, then the connection is cut at once.
      await new Promise((resolve) => {
        const ws = new WebSocket(`${gw.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
        ws.on("message", (m) => {
          if (String(m).startsWith("0{")) {
            ws.send(`40${JSON.stringify({ token })}`);
            ws.terminate();
            resolve();
          }
        });
        ws.on("error", resolve);
      });
    }
    // Whatever was registered for a moment is gone once the socket proves missing.
    await eventually(async () => (await api(gw, "GET", "/api/sessions?user=ghost")).body.sessions.length === 0, 5000, "no ghost sessions");
    // And nobody is locked out by them.
    const s = await gw.connect({ auth: { token: sign({ sub: "after" }) } });
    assert.equal((await s.emitWithAck("auth:whoami")).userId, "after");
  } finally {
    await gw.stop();
  }
});

test("evict-oldest forgets the evicted session's rooms and presence", async () => {
  const gw = await startGateway({
    SOCKGATE_API_KEY: API_KEY,
    SOCKGATE_MAX_SESSIONS_PER_USER: "1",
    SOCKGATE_SESSION_LIMIT_POLICY: "evict-oldest",
  });
  try {
    const token = () => sign({ sub: "evi", rooms: [{ match: "chat:*", allow: ["join", "presence"] }] });
    for (let i = 0; i < 5; i++) {
      const s = await gw.connect({ auth: { token: token() } });
      assert.equal((await s.emitWithAck("room:join", { room: `chat:${i}` })).ok, true);
    }
    await sleep(200);
    // Only the last session is alive; it is in chat:4 alone.
    for (let i = 0; i < 4; i++) {
      assert.deepEqual((await api(gw, "GET", `/api/rooms/chat:${i}/members`)).body.members, [], `chat:${i}`);
    }
    assert.deepEqual((await api(gw, "GET", "/api/rooms/chat:4/members")).body.members, ["evi"]);
    assert.equal((await api(gw, "GET", "/api/sessions?user=evi")).body.sessions.length, 1);
  } finally {
    await gw.stop();
  }
});

describe("revocation races", () => {
  let redis;
  let a;
  let b;
  before(async () => {
    redis = await startRedis();
    const env = { SOCKGATE_REDIS_URL: redis.url, SOCKGATE_API_KEY: API_KEY, SOCKGATE_MAX_SESSIONS_PER_USER: "5", SOCKGATE_HANDSHAKE_RATE: "0" };
    a = await startGateway(env);
    b = await startGateway(env);
    await eventually(async () => (await fetch(`${b.url}/readyz`)).status === 200, 10000, "cluster ready");
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await redis?.stop();
  });

  test("a handshake racing the revocation of its own token does not survive it", async () => {
    // The handshake on node B checks the token, then takes the session limit
    // through Redis, then registers; the revocation goes to node A.
    const survivors = [];
    for (let round = 0; round < 15; round++) {
      await Promise.all(
        Array.from({ length: 20 }, async (_, k) => {
          const i = round * 20 + k;
          const jti = `race-${i}`;
          const socket = io(b.url, { forceNew: true, reconnection: false, transports: ["websocket"], auth: { token: sign({ sub: `racer-${i % 7}`, jti }) } });
          const settled = new Promise((r) => {
            socket.once("connect", r);
            socket.once("connect_error", r);
          });
          await sleep(Math.random() * 8);
          const res = await api(a, "POST", "/api/revocations", { body: { jti, expiresAt: now() + 300 } });
          assert.equal(res.status, 201);
          await settled;
          // Once the call has answered, the token's session is ending or gone.
          await sleep(300);
          if (socket.connected) survivors.push(jti);
          socket.close();
        }),
      );
    }
    assert.deepEqual(survivors, [], `${survivors.length} of 300 handshakes survived the revocation of their token`);
  });

  test("a refresh racing the revocation of its new token does not install it", async () => {
    const survivors = [];
    for (let round = 0; round < 10; round++) {
      await Promise.all(
        Array.from({ length: 20 }, async (_, k) => {
          const i = round * 20 + k;
          const socket = io(b.url, { forceNew: true, reconnection: false, transports: ["websocket"], auth: { token: sign({ sub: `refresher-${i}` }) } });
          await new Promise((r) => socket.once("connect", r));
          const jti = `fresh-${i}`;
          // A later exp than the handshake's token: a refresh must move it forward.
          const refreshed = socket.emitWithAck("auth:refresh", { token: sign({ sub: `refresher-${i}`, jti }, { ttl: 600 }) });
          await sleep(Math.random() * 4);
          await api(b, "POST", "/api/revocations", { body: { jti, expiresAt: now() + 600 } });
          const ack = await refreshed;
          await sleep(100);
          // Either the refresh lost (the old token stays) or the session ended.
          if (ack.ok && socket.connected) survivors.push(jti);
          socket.close();
        }),
      );
    }
    assert.deepEqual(survivors, [], `${survivors.length} of 200 sessions run on a revoked token`);
  });

  test("sessions are known by a public id, never by their Engine.IO sid", async () => {
    const s = await b.connect({ auth: { token: sign({ sub: "named" }) } });
    const id = await sessionIdOf(s);
    assert.notEqual(id, s.id);
    assert.equal((await api(a, "DELETE", `/api/sessions/${encodeURIComponent(s.id)}`)).status, 404);
    assert.equal((await api(a, "DELETE", `/api/sessions/${id}`)).status, 200);
  });
});
