// The app's backend over gRPC (proto/sockgate/v1/app.proto): a real
// @grpc/grpc-js server answers sockgate's Event and Connect calls, checking
// the `sockgate-signature` metadata on every one; the official
// socket.io-client talks to the real binary.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import express from "express";
import { io } from "socket.io-client";
import { ended, eventually, freePort, next, now, root, sign, startGateway } from "./helpers.mjs";

const EVENTS_SECRET = "grpc-events-secret-grpc-events-secret-0123";
const WRONG_SECRET = "not-the-events-secret-not-the-events-secret";

const proto = protoLoader.loadSync(join(root, "proto", "sockgate", "v1", "app.proto"), {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
});
const AppService = grpc.loadPackageDefinition(proto).sockgate.v1.App.service;

/** True when `sockgate-signature` is `t=<s>,v1=<hex HMAC(secret, "<t>.<id>")>` and recent. */
function signed(metadata, id, secret) {
  const [header] = metadata.get("sockgate-signature");
  if (typeof header !== "string" || !id) return false;
  const { t, v1 } = Object.fromEntries(header.split(",").map((p) => p.split("=")));
  if (!t || !v1 || Math.abs(Date.now() / 1000 - Number(t)) > 300) return false;
  const expected = createHmac("sha256", secret).update(`${t}.${id}`).digest();
  const given = Buffer.from(v1, "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * The app's gRPC backend on 127.0.0.1. `onEvent(request)` and
 * `onConnect(request)` give the reply; `null` never answers; a thrown
 * `{ code, details }` is a gRPC status. Every call is recorded, and a call
 * whose signature does not check against `app.secret` is refused with
 * UNAUTHENTICATED and counted in `badSignatures`.
 */
async function startApp({ port = 0, onEvent = () => ({}), onConnect = () => ({}) } = {}) {
  const app = { port, secret: EVENTS_SECRET, events: [], connects: [], badSignatures: 0, onEvent, onConnect, server: null };
  const handle = (list, hook) => (call, callback) => {
    if (!signed(call.metadata, call.request.id, app.secret)) {
      app.badSignatures++;
      return callback({ code: grpc.status.UNAUTHENTICATED, details: "bad sockgate-signature" });
    }
    // When it arrived, for the renewal that must come before an expiry.
    list.push({ ...call.request, receivedAt: Date.now() });
    let reply;
    try {
      reply = hook(call.request);
    } catch (status) {
      return callback(status);
    }
    if (reply !== null) callback(null, reply);
  };
  app.start = async () => {
    app.server = new grpc.Server();
    app.server.addService(AppService, {
      event: handle(app.events, (r) => app.onEvent(r)),
      connect: handle(app.connects, (r) => app.onConnect(r)),
    });
    app.port = await bind(app.server, app.port);
  };
  // forceShutdown also drops the calls left unanswered on purpose.
  app.stop = () => app.server?.forceShutdown();
  await app.start();
  app.url = `grpc://127.0.0.1:${app.port}`;
  return app;
}

/** Binds `server` to 127.0.0.1:port, retrying while a just-closed listener frees the port. */
async function bind(server, port) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await new Promise((resolve, reject) =>
        server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
      );
    } catch (err) {
      if (attempt >= 20) throw err;
      await sleep(250);
    }
  }
}

/** The same backend over HTTP (docs/events.md), for comparing the two forms. */
async function startHttpApp() {
  const calls = [];
  const web = express();
  web.post("/sockgate/events", express.raw({ type: "application/json" }), (req, res) => {
    const { t, v1 } = Object.fromEntries((req.get("sockgate-signature") ?? "").split(",").map((p) => p.split("=")));
    const expected = createHmac("sha256", EVENTS_SECRET).update(`${t}.${req.body}`).digest("hex");
    if (v1 !== expected) return res.sendStatus(401);
    const call = JSON.parse(req.body);
    calls.push(call);
    res.json({ ack: { echoed: call.args } });
  });
  const server = web.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  return { calls, url: `http://127.0.0.1:${server.address().port}/sockgate/events`, server };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function configFile(text) {
  const file = join(mkdtempSync(join(tmpdir(), "sockgate-cfg-")), "sockgate.toml");
  writeFileSync(file, text);
  return file;
}

/** The app's answers to events, by name. */
function answerEvent(req) {
  const args = JSON.parse(req.argsJson);
  switch (req.event) {
    case "roundtrip":
      return { ackJson: JSON.stringify({ echoed: args, count: args.length }) };
    case "cmp":
      return { ackJson: JSON.stringify({ echoed: args }) };
    case "noack":
      return {};
    case "ping":
      return { ackJson: JSON.stringify("pong") };
    case "whereami":
      return { ackJson: JSON.stringify({ userId: req.userId, rooms: req.rooms, claims: JSON.parse(req.claimsJson) }) };
    case "forbidden":
      return { error: { code: "CHAT_FORBIDDEN", message: "not in this chat" } };
    case "badcode":
      return { error: { code: "not-a-code", message: "lower case" } };
    case "chat:join":
      return {
        join: [args[0].room],
        emit: [{ event: "chat:joined", dataJson: JSON.stringify({ room: args[0].room }) }],
        ackJson: JSON.stringify({ joined: args[0].room }),
      };
    case "chat:leave":
      return { leave: [args[0].room], ackJson: JSON.stringify({ left: args[0].room }) };
    case "chat:send":
      return {
        publish: [{ room: args[0].room, event: "chat:message", dataJson: JSON.stringify({ from: req.userId, text: args[0].text }) }],
        ackJson: JSON.stringify({ sent: true }),
      };
    case "chat:send-and-notify":
      // The room first, then the user: a member of the room gets both, in this order.
      return {
        publish: [
          { room: args[0].room, event: "chat:message", dataJson: JSON.stringify({ from: req.userId, text: args[0].text }) },
          { user: args[0].notify, event: "chat:notice", dataJson: JSON.stringify({ text: args[0].text }) },
        ],
      };
    case "ban":
      return { disconnect: { message: "banned by the app" } };
    case "slow:never":
    case "never":
      return null;
    case "unavailable":
      throw { code: grpc.status.UNAVAILABLE, details: "busy" };
    case "internal":
      throw { code: grpc.status.INTERNAL, details: "broken" };
    default:
      return { error: { code: "UNKNOWN_EVENT", message: req.event } };
  }
}

describe("events over gRPC", () => {
  let app;
  let web;
  let gw;
  const as = (sub, claims = {}, opts = {}) => gw.connect({ auth: { token: sign({ sub, ...claims }) }, ...opts });

  before(async () => {
    app = await startApp({ onEvent: answerEvent });
    web = await startHttpApp();
    gw = await startGateway({
      SOCKGATE_EVENTS_URL: app.url,
      SOCKGATE_EVENTS_SECRET: EVENTS_SECRET,
      // [[events]] routes take grpc:// too; slow:* has a short timeout of its own.
      SOCKGATE_CONFIG: configFile(`
[[events]]
match = "slow:*"
url = "${app.url}"
timeout_ms = 500

[[events]]
match = "http:*"
url = "${web.url}"
`),
    });
  });
  after(async () => {
    await gw?.stop();
    app?.stop();
    web?.server.closeAllConnections();
    web?.server.close();
  });

  test("an ack value round trip: args arrive as args_json, the ack as ack_json, claims without credentials", async () => {
    const s = await as("alice", { role: "member", accessToken: "opaque-access-token-value" }, { transports: ["websocket"] });
    const { sessionId } = await s.emitWithAck("auth:whoami");
    const payload = { text: "héllo ✓", nested: [1, -2.5, null, { deep: [true, false, ""] }], big: 9007199254740991 };
    const callsBefore = app.events.length;
    const ack = await s.emitWithAck("roundtrip", payload, "second", 3);
    assert.deepEqual(ack, { echoed: [payload, "second", 3], count: 3 });
    assert.equal(app.events.length, callsBefore + 1, "one call per event");
    const req = app.events.at(-1);
    assert.equal(req.event, "roundtrip");
    assert.deepEqual(JSON.parse(req.argsJson), [payload, "second", 3]);
    assert.equal(req.userId, "alice");
    assert.equal(req.sessionId, sessionId);
    assert.equal(req.rooms[0], "user:alice");
    assert.equal(req.transport, "websocket");
    assert.equal(req.remoteAddr, "127.0.0.1");
    assert.ok(Math.abs(req.ts - Date.now()) < 60000, `ts ${req.ts} is Unix milliseconds`);
    const claims = JSON.parse(req.claimsJson);
    assert.equal(claims.sub, "alice");
    assert.equal(claims.role, "member");
    assert.ok(!("accessToken" in claims), `no credential claim: ${req.claimsJson}`);
    assert.ok(!req.claimsJson.includes("opaque-access-token-value"));
    // No ack_json is a null ack.
    assert.equal(await s.emitWithAck("noack", 1), null);
    // Each call has its own id.
    assert.notEqual(app.events.at(-1).id, req.id);
    assert.equal(app.badSignatures, 0, "every call carried a valid signature");
  });

  test("the app's error code is passed through; a malformed code is BACKEND_ERROR", async () => {
    const s = await as("erin");
    assert.deepEqual(await s.emitWithAck("forbidden", {}), { ok: false, code: "CHAT_FORBIDDEN", message: "not in this chat" });
    const bad = await s.emitWithAck("badcode", {});
    assert.equal(bad.ok, false);
    assert.equal(bad.code, "BACKEND_ERROR");
  });

  test("join, emit, leave and publish: a publish to a room reaches the socket that joined it", async () => {
    const alice = await as("alice");
    const bob = await as("bob");
    const joinedEvents = [];
    bob.on("chat:joined", (d) => joinedEvents.push(d));
    const messages = [];
    bob.on("chat:message", (m) => messages.push(m));

    assert.deepEqual(await bob.emitWithAck("chat:join", { room: "chat:42" }), { joined: "chat:42" });
    // The emit is applied before the ack, on the same socket: it is already here.
    assert.deepEqual(joinedEvents, [{ room: "chat:42" }]);
    assert.deepEqual((await bob.emitWithAck("whereami")).rooms, ["user:bob", "chat:42"]);

    const arrived = next(bob, "chat:message");
    assert.deepEqual(await alice.emitWithAck("chat:send", { room: "chat:42", text: "hi bob" }), { sent: true });
    assert.deepEqual(await arrived, { from: "alice", text: "hi bob" });

    assert.deepEqual(await bob.emitWithAck("chat:leave", { room: "chat:42" }), { left: "chat:42" });
    assert.deepEqual((await bob.emitWithAck("whereami")).rooms, ["user:bob"]);
    const notice = next(bob, "chat:notice");
    alice.emit("chat:send-and-notify", { room: "chat:42", text: "gone?", notify: "bob" });
    assert.deepEqual(await notice, { text: "gone?" });
    // The room's message would have come before the notice: bob left, so only the first one is here.
    assert.deepEqual(messages, [{ from: "alice", text: "hi bob" }]);
  });

  test("a disconnect in the reply ends the session with ENDED_BY_APP", async () => {
    const carol = await as("carol");
    const gone = ended(carol);
    carol.emit("ban");
    const { end } = await gone;
    assert.ok(end, "session:end came before the disconnect");
    assert.equal(end.code, "ENDED_BY_APP");
    assert.equal(end.message, "banned by the app");
    assert.equal(end.reconnect, false);
  });

  test("no answer within an [[events]] route's timeout_ms is BACKEND_TIMEOUT; the socket's next events go on", async () => {
    const s = await as("tim");
    const reply = await s.emitWithAck("slow:never", {});
    assert.equal(reply.ok, false);
    assert.equal(reply.code, "BACKEND_TIMEOUT");
    assert.equal(await s.emitWithAck("echo", "still here"), "still here");
    assert.equal(await s.emitWithAck("ping"), "pong");
  });

  test("gRPC statuses: UNAVAILABLE is BACKEND_UNAVAILABLE, INTERNAL is BACKEND_ERROR", async () => {
    const s = await as("sam");
    assert.equal((await s.emitWithAck("unavailable")).code, "BACKEND_UNAVAILABLE");
    assert.equal((await s.emitWithAck("internal")).code, "BACKEND_ERROR");
    // A success closes the count of failures in a row again.
    assert.equal(await s.emitWithAck("ping"), "pong");
  });

  test("a server that checks with another secret answers UNAUTHENTICATED: BACKEND_ERROR", async () => {
    const s = await as("wes");
    const refusedBefore = app.badSignatures;
    app.secret = WRONG_SECRET;
    try {
      const reply = await s.emitWithAck("ping");
      assert.equal(reply.ok, false);
      assert.equal(reply.code, "BACKEND_ERROR");
      assert.equal(app.badSignatures, refusedBefore + 1, "the server saw the call and refused its signature");
    } finally {
      app.secret = EVENTS_SECRET;
    }
    assert.equal(await s.emitWithAck("ping"), "pong");
  });

  test("the server stopped is BACKEND_UNAVAILABLE; started again on the same port, calls succeed again", async () => {
    const s = await as("uma");
    assert.equal(await s.emitWithAck("ping"), "pong");
    const port = app.port;
    app.stop();
    const down = await s.emitWithAck("ping");
    assert.equal(down.ok, false);
    assert.equal(down.code, "BACKEND_UNAVAILABLE");
    assert.equal(await s.emitWithAck("echo", 1), 1, "the socket stays connected");
    await app.start();
    assert.equal(app.port, port);
    // One retry a second: should the first ones fail while the client
    // reconnects, fewer than 5 in a row keep the circuit closed, and an
    // open circuit lets one call through after 5 s anyway.
    const answers = [];
    await eventually(
      async () => {
        const r = await s.emitWithAck("ping");
        answers.push(r);
        if (r !== "pong") await sleep(1000);
        return r === "pong";
      },
      30000,
      "a call answered after the restart",
    );
    for (const r of answers.slice(0, -1)) assert.ok(["BACKEND_UNAVAILABLE"].includes(r.code), JSON.stringify(r));
  });

  test("the same emission over HTTP and over gRPC: the same arguments, claims, rooms and ack", async () => {
    const s = await as("hal", { team: "blue" }, { transports: ["websocket"] });
    const payload = { a: [1, "2", { three: 3 }], b: "ü" };
    const overHttp = await s.emitWithAck("http:cmp", payload, 7);
    const overGrpc = await s.emitWithAck("cmp", payload, 7);
    assert.deepEqual(overHttp, { echoed: [payload, 7] });
    assert.deepEqual(overGrpc, overHttp);
    const h = web.calls.at(-1);
    const g = app.events.at(-1);
    assert.equal(h.event, "http:cmp");
    assert.deepEqual(JSON.parse(g.argsJson), h.args);
    assert.deepEqual(JSON.parse(g.claimsJson), h.claims);
    assert.deepEqual(g.rooms, h.rooms);
    assert.deepEqual(
      [g.userId, g.sessionId, g.transport, g.remoteAddr],
      [h.userId, h.sessionId, h.transport, h.remoteAddr],
    );
  });

  test("every call to the gRPC backend was signed with the events secret", () => {
    assert.ok(app.events.length > 10);
    assert.equal(app.badSignatures, 1, "only the call of the wrong-secret case was refused");
  });
});

test("SOCKGATE_EVENTS_TIMEOUT_MS over gRPC: a handler that never answers is BACKEND_TIMEOUT and the socket still answers echo", async () => {
  const app = await startApp({ onEvent: answerEvent });
  const gw = await startGateway({
    SOCKGATE_EVENTS_URL: app.url,
    SOCKGATE_EVENTS_SECRET: EVENTS_SECRET,
    SOCKGATE_EVENTS_TIMEOUT_MS: "500",
  });
  try {
    const s = await gw.connect({ auth: { token: sign({ sub: "tom" }) } });
    const reply = await s.emitWithAck("never", { wait: "forever" });
    assert.equal(reply.ok, false);
    assert.equal(reply.code, "BACKEND_TIMEOUT");
    assert.equal(app.events.filter((e) => e.event === "never").length, 1, "the call reached the server");
    assert.equal(await s.emitWithAck("echo", "alive"), "alive");
    assert.ok(s.connected);
  } finally {
    await gw.stop();
    app.stop();
  }
});

/** The connect hook's answers, by the client's `auth.apiKey`. */
function answerConnect(req) {
  if (req.renew) return { userId: req.renew.userId, expiresAt: now() + 60, claimsJson: req.renew.claimsJson };
  const auth = JSON.parse(req.authJson);
  switch (auth?.apiKey) {
    case "alice-key":
      return { userId: "alice", claimsJson: JSON.stringify({ role: "admin" }), rooms: ["team:1"] };
    case "short-key":
      return { userId: "rita", expiresAt: now() + 8, claimsJson: JSON.stringify({ plan: "pro" }) };
    case "lower-key":
      return { error: { code: "not logged in", message: "whatever" } };
    case undefined:
      return { error: { code: "NO_AUTH", message: "no auth payload" } };
    default:
      return { error: { code: "NOT_LOGGED_IN", message: "log in first" } };
  }
}

describe("the connect hook over gRPC", () => {
  let app;
  let gw;
  before(async () => {
    app = await startApp({ onEvent: answerEvent, onConnect: answerConnect });
    gw = await startGateway({
      JWT_SECRET: undefined,
      SOCKGATE_CONNECT_URL: app.url,
      SOCKGATE_EVENTS_URL: app.url,
      SOCKGATE_EVENTS_SECRET: EVENTS_SECRET,
    });
  });
  after(async () => {
    await gw?.stop();
    app?.stop();
  });

  test("auth_json carries the client's auth; a user_id admits with its claims and rooms", async () => {
    const auth = { apiKey: "alice-key", extra: [1, { two: "ü" }] };
    const s = await gw.connect({ auth, transports: ["websocket"], extraHeaders: { "user-agent": "grpc-e2e", "x-private": "kept" } });
    const req = app.connects.at(-1);
    assert.deepEqual(JSON.parse(req.authJson), auth);
    assert.equal(req.renew, null);
    assert.equal(req.transport, "websocket");
    assert.equal(req.remoteAddr, "127.0.0.1");
    assert.equal(req.headers["user-agent"], "grpc-e2e");
    assert.ok(!("x-private" in req.headers), `only SOCKGATE_CONNECT_HEADERS: ${JSON.stringify(req.headers)}`);
    const me = await s.emitWithAck("auth:whoami");
    assert.equal(me.userId, "alice");
    assert.equal(me.claims.role, "admin");
    const where = await s.emitWithAck("whereami");
    assert.deepEqual(where.rooms, ["user:alice", "team:1"]);
    assert.equal(app.badSignatures, 0);
  });

  test("an error refuses with its code; no auth is auth_json \"null\"; a malformed code is AUTH_REQUIRED", async () => {
    const err = await gw.connect({ auth: { apiKey: "wrong" } }).then(
      (s) => (s.close(), assert.fail("admitted")),
      (e) => e,
    );
    assert.equal(err.message, "NOT_LOGGED_IN: log in first");
    assert.deepEqual(err.data, { code: "NOT_LOGGED_IN", message: "log in first" });

    const none = await gw.connect().then(
      (s) => (s.close(), assert.fail("admitted")),
      (e) => e,
    );
    assert.equal(app.connects.at(-1).authJson, "null");
    assert.equal(none.data?.code, "NO_AUTH");

    const lower = await gw.connect({ auth: { apiKey: "lower-key" } }).then(
      (s) => (s.close(), assert.fail("admitted")),
      (e) => e,
    );
    assert.equal(lower.data?.code, "AUTH_REQUIRED");
  });

  test("a session with expires_at is renewed through Connect with renew set, and outlives its first expiry", async () => {
    const s = await gw.connect({ auth: { apiKey: "short-key" } });
    const firstExpiry = (await s.emitWithAck("auth:whoami")).expiresAt;
    const { sessionId } = await s.emitWithAck("auth:whoami");
    assert.ok(firstExpiry > now() && firstExpiry <= now() + 8, `expiresAt ${firstExpiry}`);
    let endedWith = null;
    s.on("session:end", (e) => (endedWith = e));
    const renewal = await eventually(() => app.connects.find((c) => c.renew?.sessionId === sessionId), 20000, "a renewal call");
    assert.equal(renewal.renew.userId, "rita");
    assert.equal(renewal.renew.expiresAt, firstExpiry);
    assert.deepEqual(JSON.parse(renewal.renew.claimsJson).plan, "pro");
    assert.equal(renewal.authJson, "", "a renewal carries no auth");
    assert.deepEqual(renewal.headers, {});
    assert.ok(renewal.receivedAt < firstExpiry * 1000, "the renewal was asked before the first expiry");
    // Past the first expiry, the same socket is still there, with the later expiry.
    while (now() <= firstExpiry + 2) await sleep(500);
    assert.equal(endedWith, null, `not ended: ${JSON.stringify(endedWith)}`);
    assert.ok(s.connected);
    const me = await s.emitWithAck("auth:whoami");
    assert.equal(me.sessionId, sessionId);
    assert.ok(me.expiresAt > firstExpiry + 30, `renewed expiresAt ${me.expiresAt}`);
    assert.equal(app.badSignatures, 0);
  });
});

test("an unreachable gRPC connect hook closes the transport: the client retries by itself and connects once the hook is up", async () => {
  const port = await freePort();
  const gw = await startGateway({
    JWT_SECRET: undefined,
    SOCKGATE_CONNECT_URL: `grpc://127.0.0.1:${port}`,
    SOCKGATE_EVENTS_SECRET: EVENTS_SECRET,
  });
  const socket = io(gw.url, { forceNew: true, auth: { apiKey: "alice-key" }, reconnectionDelay: 200, reconnectionDelayMax: 500 });
  const refusals = [];
  socket.on("connect_error", (err) => refusals.push(err));
  let attempts = 0;
  socket.io.on("reconnect_attempt", () => attempts++);
  let app;
  try {
    await eventually(() => attempts >= 2, 20000, "two retries while the hook is down");
    assert.ok(!socket.connected);
    assert.deepEqual(
      refusals.filter((e) => e.data),
      [],
      "no terminal refusal from the gateway while the hook is unreachable",
    );
    app = await startApp({ port, onConnect: answerConnect });
    await eventually(() => socket.connected, 20000, "connected once the hook answers");
    assert.equal((await socket.emitWithAck("auth:whoami")).userId, "alice");
    assert.ok(app.connects.length >= 1);
    assert.equal(app.badSignatures, 0);
  } finally {
    socket.close();
    await gw.stop();
    app?.stop();
  }
});
