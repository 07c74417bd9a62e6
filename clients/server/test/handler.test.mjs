// createHandler behind a real Express 5 app, called by the real sockgate
// binary for the events of the official socket.io-client, and by its
// connect hook. Signature refusals and bad bodies are sent with fetch, and
// through the Web form in-process.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import express from "express";
import { io, Manager } from "socket.io-client";
import { createHandler, sign, Sockgate, SockgateError } from "../dist/index.js";
import { API_KEY, ask, collect, connect, eventually, EVENTS_SECRET, next, nowSec, serve, sleep, startGateway, token } from "./support/gateway.mjs";

/** What the handlers saw: errors told to onError, and how often each ran. */
const seen = { errors: [], runs: 0, lateEffect: null, renewals: [], connects: [] };
const HANDLER_TIMEOUT_MS = 1500;

const events = {
  "chat:echo": async (ctx, ...args) => ({ args }),
  "chat:ctx": (ctx) => ({
    id: ctx.id,
    event: ctx.event,
    userId: ctx.userId,
    sessionId: ctx.sessionId,
    claims: ctx.claims,
    rooms: ctx.rooms,
    transport: ctx.transport,
    remoteAddr: ctx.remoteAddr,
    namespace: ctx.namespace,
    ts: ctx.ts,
  }),
  "chat:join": (ctx, room) => {
    ctx.join(room);
    ctx.emit("chat:joined", { room });
    return { ok: true };
  },
  "chat:leave": (ctx, room) => {
    ctx.leave(room);
    return { ok: true };
  },
  "chat:say": (ctx, room, text) => {
    ctx.to(room).emit("chat:message", { from: ctx.userId, text });
    return { ok: true };
  },
  "chat:announce": (ctx, rooms, text) => {
    ctx.to(rooms).emit("chat:announcement", { text });
  },
  "chat:dm": (ctx, to, text) => {
    ctx.toUser(to).emit("chat:dm", { from: ctx.userId, text });
  },
  "chat:quit": (ctx) => {
    ctx.disconnect("banned by the app");
    return "bye";
  },
  "chat:forbidden": () => {
    throw new SockgateError("CHAT_FORBIDDEN", "not in this room");
  },
  "chat:bad-code": () => {
    throw new SockgateError("not a code", "lower case");
  },
  "chat:emit-then-refuse": (ctx) => {
    ctx.emit("chat:never");
    ctx.join("chat:never");
    throw new SockgateError("CHAT_REFUSED", "changed my mind");
  },
  "chat:crash": async () => {
    throw new Error("db password is hunter2");
  },
  "chat:hang": () => new Promise(() => {}),
  "chat:slow": async (ctx) => {
    await sleep(HANDLER_TIMEOUT_MS + 1000);
    try {
      ctx.emit("chat:late");
    } catch (err) {
      seen.lateEffect = err;
    }
    return "too late";
  },
  "chat:spy": () => {
    seen.runs += 1;
    return "ran";
  },
  "chat:bigint": () => ({ n: 1n }),
};

const handler = createHandler({
  secret: EVENTS_SECRET,
  events,
  timeoutMs: HANDLER_TIMEOUT_MS,
  connect: async (call) => {
    seen.connects.push(call);
    const key = call.auth?.apiKey;
    if (key === "good-key") return { userId: "hooked", claims: { role: "bot" }, rooms: ["team:1"], displayName: "not sockgate's" };
    if (key === "renewed" || key === "renew-refused") return { userId: key, expiresAt: nowSec() + 6 };
    if (key === "crash") throw new Error("the session store is down");
    throw new SockgateError("NOT_LOGGED_IN", "log in first");
  },
  renew: async (call) => {
    seen.renewals.push(call);
    if (call.renew.userId === "renew-refused") throw new SockgateError("LOGGED_OUT", "logged out elsewhere");
    return { userId: call.renew.userId, expiresAt: nowSec() + 600 };
  },
  onError: (err, call) => seen.errors.push({ err, call }),
});

/** The Express app: the handler on two routes, as the README shows them. */
function app() {
  const a = express();
  let hits = 0;
  a.post("/sockgate/events", (req, res, nextFn) => {
    hits += 1;
    nextFn();
  }, handler.node);
  a.post("/sockgate/raw", express.raw({ type: "application/json", limit: "1mb" }), handler.node);
  a.post("/sockgate/parsed", express.json(), handler.node);
  // Parsed, with the raw bytes kept beside (what NestJS's `rawBody: true` does).
  const keepRaw = (req, res, buf) => (req.rawBody = buf);
  a.post("/sockgate/kept", express.json({ verify: keepRaw }), handler.node);
  a.get("/sockgate/events", handler.node);
  // express.raw's own refusals (413 past its limit), without Express's stack trace on stderr.
  a.use((err, req, res, nextFn) => res.status(err.status ?? 500).json({ error: { code: "REFUSED", message: err.message } }));
  a.hits = () => hits;
  return a;
}

let backend;
let gw;
let expressApp;

before(async () => {
  expressApp = app();
  backend = await serve(expressApp);
  gw = await startGateway({
    SOCKGATE_EVENTS_URL: `${backend.url}/sockgate/events`,
    SOCKGATE_CONNECT_URL: `${backend.url}/sockgate/raw`,
    // Larger than the handler's own timeout: BACKEND_TIMEOUT must come from the handler.
    SOCKGATE_EVENTS_TIMEOUT_MS: "10000",
  });
});

after(async () => {
  await gw?.stop();
  await backend?.close();
});

const clients = [];
async function client(user, claims = {}) {
  const socket = await connect(gw.url, { token: token(user, claims) });
  clients.push(socket);
  return socket;
}
after(() => clients.forEach((s) => s.close()));

describe("events", () => {
  test("the ack carries the handler's return value, and the args arrive as emitted", async () => {
    const alice = await client("alice");
    const ack = await ask(alice, "chat:echo", { text: "hi" }, 2, ["x", null], "last");
    assert.deepEqual(ack, { args: [{ text: "hi" }, 2, ["x", null], "last"] });
  });

  test("ctx has the call's fields", async () => {
    const alice = await client("alice", { role: "member" });
    const me = await ask(alice, "auth:whoami");
    const ctx = await ask(alice, "chat:ctx");
    assert.equal(ctx.event, "chat:ctx");
    assert.equal(ctx.userId, "alice");
    assert.equal(ctx.sessionId, me.sessionId);
    assert.equal(ctx.claims.role, "member");
    assert.equal(ctx.rooms[0], "user:alice");
    assert.equal(ctx.transport, "websocket");
    assert.equal(ctx.remoteAddr, "127.0.0.1");
    assert.equal(ctx.namespace, "/", "a socket of the main namespace");
    assert.match(ctx.id, /^[0-9a-f]{32}$/);
    assert.equal(typeof ctx.ts, "number");
    const again = await ask(alice, "chat:ctx");
    assert.notEqual(again.id, ctx.id, "every call has its own id");
  });

  test("a handler that returns nothing acks null", async () => {
    const alice = await client("alice");
    assert.equal(await ask(alice, "chat:announce", ["chat:nobody"], "hi"), null);
  });

  test("join and emit: the socket is in the room and got the event before the ack", async () => {
    const bob = await client("bob");
    const joined = collect(bob, "chat:joined");
    assert.deepEqual(await ask(bob, "chat:join", "chat:lobby"), { ok: true });
    assert.deepEqual(joined, [{ room: "chat:lobby" }]);
    const ctx = await ask(bob, "chat:ctx");
    assert.ok(ctx.rooms.includes("chat:lobby"), JSON.stringify(ctx.rooms));
    assert.deepEqual((await gw.api("GET", "/api/rooms/chat:lobby/members")).body.members, ["bob"]);
  });

  test("to(room).emit reaches the room's other sockets; leave takes the socket out", async () => {
    const carol = await client("carol");
    const dave = await client("dave");
    await ask(carol, "chat:join", "chat:room1");
    await ask(dave, "chat:join", "chat:room1");
    const heard = next(dave, "chat:message");
    assert.deepEqual(await ask(carol, "chat:say", "chat:room1", "hello"), { ok: true });
    assert.deepEqual(await heard, { from: "carol", text: "hello" });

    await ask(dave, "chat:leave", "chat:room1");
    assert.ok(!(await ask(dave, "chat:ctx")).rooms.includes("chat:room1"));
    const daveHeard = collect(dave, "chat:message");
    const carolHeard = next(carol, "chat:message");
    await ask(carol, "chat:say", "chat:room1", "anyone?");
    await carolHeard; // the publish reached the room; dave, out of it, got nothing
    await ask(dave, "chat:echo"); // one round trip for anything in flight to dave
    assert.deepEqual(daveHeard, []);
  });

  test("to([rooms]).emit reaches a socket in several of them once", async () => {
    const erin = await client("erin");
    await ask(erin, "chat:join", "news:1");
    await ask(erin, "chat:join", "news:2");
    const heard = collect(erin, "chat:announcement");
    const sender = await client("frank");
    await ask(sender, "chat:announce", ["news:1", "news:2"], "headline");
    await eventually(() => heard.length > 0, 10000, "the announcement");
    await ask(erin, "chat:echo");
    assert.deepEqual(heard, [{ text: "headline" }]);
  });

  test("toUser(id).emit reaches every socket of that user", async () => {
    const g1 = await client("grace");
    const g2 = await client("grace");
    const both = [next(g1, "chat:dm"), next(g2, "chat:dm")];
    const sender = await client("heidi");
    assert.equal(await ask(sender, "chat:dm", "grace", "psst"), null);
    assert.deepEqual(await Promise.all(both), [
      { from: "heidi", text: "psst" },
      { from: "heidi", text: "psst" },
    ]);
  });

  test("disconnect ends the session with ENDED_BY_APP after the ack", async () => {
    const ivan = await client("ivan");
    const ended = next(ivan, "session:end");
    const gone = next(ivan, "disconnect");
    assert.equal(await ask(ivan, "chat:quit"), "bye");
    const end = await ended;
    assert.equal(end.code, "ENDED_BY_APP");
    assert.equal(end.message, "banned by the app");
    await gone;
  });

  test("a SockgateError is the ack's code and message", async () => {
    const alice = await client("alice");
    assert.deepEqual(await ask(alice, "chat:forbidden"), { ok: false, code: "CHAT_FORBIDDEN", message: "not in this room" });
    assert.deepEqual(await ask(alice, "chat:bad-code"), { ok: false, code: "BACKEND_ERROR", message: "lower case" });
  });

  test("a handler that throws changes nothing: its effects are dropped", async () => {
    const alice = await client("alice");
    const never = collect(alice, "chat:never");
    const ack = await ask(alice, "chat:emit-then-refuse");
    assert.equal(ack.code, "CHAT_REFUSED");
    assert.deepEqual(never, []);
    assert.ok(!(await ask(alice, "chat:ctx")).rooms.includes("chat:never"));
  });

  test("an exception is BACKEND_ERROR, told to onError, never to the client", async () => {
    const alice = await client("alice");
    const before = seen.errors.length;
    const ack = await ask(alice, "chat:crash");
    assert.deepEqual(ack, { ok: false, code: "BACKEND_ERROR", message: "the app's handler failed" });
    assert.doesNotMatch(JSON.stringify(ack), /hunter2|at |\.mjs/);
    const told = seen.errors.slice(before);
    assert.equal(told.length, 1);
    assert.match(told[0].err.message, /hunter2/);
    assert.equal(told[0].call.event, "chat:crash");
    assert.equal(told[0].call.userId, "alice");
  });

  test("an ack that is not JSON is BACKEND_ERROR", async () => {
    const alice = await client("alice");
    assert.equal((await ask(alice, "chat:bigint")).code, "BACKEND_ERROR");
  });

  test("a handler that never settles is BACKEND_TIMEOUT from the handler, before sockgate's own timeout", async () => {
    const alice = await client("alice");
    const before = seen.errors.length;
    const ack = await ask(alice, "chat:hang");
    assert.equal(ack.code, "BACKEND_TIMEOUT");
    assert.match(ack.message, /within 1500 ms/, "the handler's message, not sockgate's");
    assert.match(seen.errors[before].err.message, /did not settle within 1500 ms/);
    // The socket goes on being served.
    assert.deepEqual(await ask(alice, "chat:echo", 1), { args: [1] });
  });

  test("a late handler's result is dropped, and its late effects throw", async () => {
    const alice = await client("alice");
    const late = collect(alice, "chat:late");
    assert.equal((await ask(alice, "chat:slow")).code, "BACKEND_TIMEOUT");
    await eventually(() => seen.lateEffect, 10000, "the late effect");
    assert.match(seen.lateEffect.message, /already sent/);
    await ask(alice, "chat:echo");
    assert.deepEqual(late, []);
  });

  test("an event without a handler is UNKNOWN_EVENT, answered by the handler", async () => {
    const alice = await client("alice");
    const hits = expressApp.hits();
    for (const name of ["chat:nope", "constructor", "__proto__", "toString"]) {
      const ack = await ask(alice, name);
      assert.equal(ack.code, "UNKNOWN_EVENT", name);
      assert.match(ack.message, /no handler for the event "/);
    }
    assert.equal(expressApp.hits(), hits + 4, "every one reached the backend");
  });
});

describe("namespaces", () => {
  // A gateway of its own, with /admin in its config file (SOCKGATE_CONFIG is `--config`).
  let nsGw;
  let configDir;
  const opened = [];
  before(async () => {
    configDir = mkdtempSync(join(tmpdir(), "sockgate-server-sdk-ns-"));
    const config = join(configDir, "sockgate.toml");
    writeFileSync(config, '[[namespaces]]\nname = "/admin"\n');
    nsGw = await startGateway({ SOCKGATE_EVENTS_URL: `${backend.url}/sockgate/events`, SOCKGATE_CONFIG: config });
  });
  after(async () => {
    opened.forEach((s) => s.close());
    await nsGw?.stop();
    rmSync(configDir, { recursive: true, force: true });
  });

  /** A socket of `ns` on `manager` (one connection for all its namespaces), connected, or the connect_error. */
  function nsSocket(manager, ns, auth) {
    const socket = manager.socket(ns, { auth });
    opened.push(socket);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no connection to ${ns} within 15 s`)), 15000);
      socket.once("connect", () => (clearTimeout(timer), resolve(socket)));
      socket.once("connect_error", (err) => (clearTimeout(timer), reject(err)));
    });
  }

  test("ctx.namespace is the socket's namespace; a reply's join is a room of that namespace", async () => {
    const manager = new Manager(nsGw.url, { transports: ["websocket"], reconnection: false });
    const auth = { token: token("nadia") };
    const main = await nsSocket(manager, "/", auth);
    const admin = await nsSocket(manager, "/admin", auth);

    assert.equal((await ask(main, "chat:ctx")).namespace, "/");
    const first = await ask(admin, "chat:ctx");
    assert.equal(first.namespace, "/admin");
    assert.equal(first.rooms[0], "user:nadia", "rooms by their names in the namespace");
    assert.ok(!first.rooms.includes("ops"), JSON.stringify(first.rooms));

    // The reply's `join: ["ops"]` puts the /admin socket in /admin's "ops".
    assert.deepEqual(await ask(admin, "chat:join", "ops"), { ok: true });
    const second = await ask(admin, "chat:ctx");
    assert.equal(second.namespace, "/admin");
    assert.ok(second.rooms.includes("ops"), JSON.stringify(second.rooms));
    assert.ok(!(await ask(main, "chat:ctx")).rooms.includes("ops"), "the / socket is not in a room of /admin");
    const inAdmin = await nsGw.api("GET", "/api/rooms/ops/members?namespace=%2Fadmin");
    assert.deepEqual(inAdmin.body.members, ["nadia"], JSON.stringify(inAdmin));
    const inMain = await nsGw.api("GET", "/api/rooms/ops/members");
    assert.ok(!(inMain.body.members ?? []).includes("nadia"), JSON.stringify(inMain));

    // A reply's publish without `namespace` goes to the socket's namespace:
    // the / socket, now in /'s own "ops", does not get it.
    assert.deepEqual(await ask(main, "chat:join", "ops"), { ok: true });
    const heardAdmin = collect(admin, "chat:message");
    const heardMain = collect(main, "chat:message");
    assert.deepEqual(await ask(admin, "chat:say", "ops", "to admin's ops"), { ok: true });
    await eventually(() => heardAdmin.length === 1, 5000, "the publish in /admin");
    await sleep(200);
    assert.deepEqual(heardMain, [], "nothing reached the / socket");
  });

  test("Sockgate publishes to a namespace's room with { namespace }", async () => {
    const manager = new Manager(nsGw.url, { transports: ["websocket"], reconnection: false });
    const auth = { token: token("olga") };
    const main = await nsSocket(manager, "/", auth);
    const admin = await nsSocket(manager, "/admin", auth);
    await ask(main, "chat:join", "alerts");
    await ask(admin, "chat:join", "alerts");
    const heardMain = collect(main, "alert");
    const heardAdmin = collect(admin, "alert");
    const sg = new Sockgate({ url: nsGw.url, apiKey: API_KEY });
    assert.deepEqual(await sg.to("alerts").emit("alert", { n: 1 }, { namespace: "/admin" }), { delivered: 1 });
    assert.deepEqual(await sg.toUser("olga").emit("alert", { n: 2 }, { namespace: "/admin" }), { delivered: 1 });
    assert.deepEqual(await sg.to("alerts").emit("alert", { n: 3 }), { delivered: 1 });
    await eventually(() => heardAdmin.length === 2 && heardMain.length === 1, 5000, "the three publishes");
    await sleep(200);
    assert.deepEqual(heardAdmin, [{ n: 1 }, { n: 2 }]);
    assert.deepEqual(heardMain, [{ n: 3 }]);
    await assert.rejects(sg.to("alerts").emit("alert", {}, { namespace: "/nowhere" }), { code: "INVALID_REQUEST", status: 400 });
  });
});

describe("the connect hook", () => {
  test("an Identity admits the handshake, with its claims and rooms; other fields are left out", async () => {
    const socket = await connect(gw.url, { apiKey: "good-key" });
    clients.push(socket);
    const ctx = await ask(socket, "chat:ctx");
    assert.equal(ctx.userId, "hooked");
    assert.equal(ctx.claims.role, "bot");
    assert.ok(ctx.rooms.includes("team:1"), JSON.stringify(ctx.rooms));
    const call = seen.connects.at(-1);
    assert.deepEqual(call.auth, { apiKey: "good-key" });
    assert.equal(call.transport, "websocket");
    assert.equal(typeof call.headers, "object");
  });

  test("a SockgateError refuses it with its code on connect_error", async () => {
    const err = await connect(gw.url, { apiKey: "wrong" }).then(
      () => assert.fail("admitted"),
      (e) => e,
    );
    assert.equal(err.message, "NOT_LOGGED_IN: log in first");
    assert.deepEqual(err.data, { code: "NOT_LOGGED_IN", message: "log in first" });
  });

  test("an exception is AUTH_UNAVAILABLE (retryable: the transport closes), told to onError", async () => {
    const before = seen.errors.length;
    const logged = gw.logs.length;
    const socket = io(gw.url, { transports: ["websocket"], reconnection: false, forceNew: true, auth: { apiKey: "crash" } });
    const outcome = await new Promise((resolve) => {
      socket.once("connect", () => resolve("connected"));
      socket.once("connect_error", (err) => resolve(`connect_error ${err.message}`));
      socket.io.once("close", (reason) => resolve(`closed ${reason}`));
    });
    socket.close();
    assert.equal(outcome, "closed transport close");
    assert.match(seen.errors[before].err.message, /session store is down/);
    await eventually(() => gw.logs.slice(logged).some((l) => l.outcome === "AUTH_UNAVAILABLE"), 10000, "sockgate's AUTH_UNAVAILABLE");
  });

  test("a renewal keeps the session, with the later expiresAt", async () => {
    const socket = await connect(gw.url, { apiKey: "renewed" });
    clients.push(socket);
    const renewal = await eventually(() => seen.renewals.find((c) => c.renew.userId === "renewed"), 20000, "the renewal");
    assert.equal(typeof renewal.renew.sessionId, "string");
    assert.equal(typeof renewal.renew.expiresAt, "number");
    const later = await eventually(async () => {
      const { body } = await gw.api("GET", "/api/sessions?user=renewed");
      return body.sessions[0]?.expiresAt > nowSec() + 300 && body.sessions[0];
    }, 10000, "the renewed expiresAt");
    assert.equal(later.sessionId, renewal.renew.sessionId);
    assert.ok(socket.connected);
  });

  test("a refused renewal ends the session with SESSION_EXPIRED", async () => {
    const socket = await connect(gw.url, { apiKey: "renew-refused" });
    clients.push(socket);
    const end = await next(socket, "session:end", 20000);
    assert.equal(end.code, "SESSION_EXPIRED");
  });
});

describe("refused calls never run a handler", () => {
  const body = JSON.stringify({
    id: "0123456789abcdef0123456789abcdef",
    event: "chat:spy",
    args: [],
    userId: "mallory",
    sessionId: "q3YxJQxwfxZfVhwRk2Ab",
    claims: {},
    rooms: ["user:mallory"],
    transport: "websocket",
    remoteAddr: "127.0.0.1",
    ts: Date.now(),
  });
  const post = (path, headers, data = body) =>
    fetch(backend.url + path, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: data });

  test("a well signed call runs (the control)", async () => {
    const runs = seen.runs;
    const res = await post("/sockgate/events", { "sockgate-signature": sign(body, EVENTS_SECRET) });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ack: "ran" });
    assert.equal(seen.runs, runs + 1);
  });

  const refusals = {
    "a missing signature": () => ({}),
    "a wrong secret": () => ({ "sockgate-signature": sign(body, "another-secret-another-secret-0123456789") }),
    "a forged body": () => ({ "sockgate-signature": sign(body.replace("mallory", "alice"), EVENTS_SECRET) }),
    "a stale timestamp": () => ({ "sockgate-signature": sign(body, EVENTS_SECRET, nowSec() - 301) }),
    "a timestamp from the future": () => ({ "sockgate-signature": sign(body, EVENTS_SECRET, nowSec() + 301) }),
    "a malformed header": () => ({ "sockgate-signature": "t=1,v1=zz" }),
  };
  for (const [what, headers] of Object.entries(refusals)) {
    test(`${what}: 401 UNAUTHORIZED (Node form and Web form)`, async () => {
      const runs = seen.runs;
      for (const path of ["/sockgate/events", "/sockgate/raw"]) {
        const res = await post(path, headers());
        assert.equal(res.status, 401, path);
        assert.equal((await res.json()).error.code, "UNAUTHORIZED");
      }
      const res = await handler(new Request("http://x/", { method: "POST", headers: headers(), body }));
      assert.equal(res.status, 401);
      assert.equal((await res.json()).error.code, "UNAUTHORIZED");
      assert.equal(seen.runs, runs, "the handler never ran");
    });
  }

  test("not a POST: 405", async () => {
    const res = await fetch(backend.url + "/sockgate/events");
    assert.equal(res.status, 405);
    assert.equal(res.headers.get("allow"), "POST");
    assert.equal((await handler(new Request("http://x/"))).status, 405);
  });

  test("a signed body that is not JSON, or not a call: 400 INVALID_REQUEST", async () => {
    for (const data of ["not json", "[1,2]", '{"event":"chat:spy"}', "{}"]) {
      const res = await post("/sockgate/events", { "sockgate-signature": sign(data, EVENTS_SECRET) }, data);
      assert.equal(res.status, 400, data);
      assert.equal((await res.json()).error.code, "INVALID_REQUEST");
    }
  });

  test("a body over 1 MiB: 413, read by no one (Node form, Express raw, Web form)", async () => {
    const huge = JSON.stringify({ pad: "x".repeat(2 << 20) });
    const headers = { "sockgate-signature": sign(huge, EVENTS_SECRET) };
    const runs = seen.runs;
    const node = await post("/sockgate/events", headers, huge);
    assert.equal(node.status, 413);
    assert.equal((await node.json()).error.code, "PAYLOAD_TOO_LARGE");
    // express.raw's own limit (1mb) answers first.
    assert.equal((await post("/sockgate/raw", headers, huge)).status, 413);
    const web = await handler(new Request("http://x/", { method: "POST", headers, body: huge }));
    assert.equal(web.status, 413);
    // Without a Content-Length, the stream is cut at the limit.
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode(huge));
        c.close();
      },
    });
    const chunked = await handler(new Request("http://x/", { method: "POST", headers, body: stream, duplex: "half" }));
    assert.equal(chunked.status, 413);
    assert.equal(seen.runs, runs);
  });

  test("a body express.json already parsed: 500, and onError says why", async () => {
    const before = seen.errors.length;
    const res = await post("/sockgate/parsed", { "sockgate-signature": sign(body, EVENTS_SECRET) });
    assert.equal(res.status, 500);
    assert.match(seen.errors[before].err.message, /express\.raw/);
  });

  test("a body parsed with its raw bytes kept (req.rawBody) is checked on those", async () => {
    const runs = seen.runs;
    const res = await post("/sockgate/kept", { "sockgate-signature": sign(body, EVENTS_SECRET) });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ack: "ran" });
    assert.equal(seen.runs, runs + 1);
    const forged = await post("/sockgate/kept", { "sockgate-signature": sign(body, "another-secret-another-secret-0123456789") });
    assert.equal(forged.status, 401);
    assert.equal(seen.runs, runs + 1);
  });

  test("the Web form answers a well signed call", async () => {
    const runs = seen.runs;
    const res = await handler(new Request("http://x/", { method: "POST", headers: { "sockgate-signature": sign(body, EVENTS_SECRET) }, body }));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.deepEqual(await res.json(), { ack: "ran" });
    assert.equal(seen.runs, runs + 1);
  });
});

describe("without a renew handler", () => {
  test("connect gets the renewal, and its refusal ends the session", async () => {
    const calls = [];
    const onlyConnect = createHandler({
      secret: EVENTS_SECRET,
      connect: (call) => {
        calls.push(call);
        if ("renew" in call) throw new SockgateError("LOGGED_OUT", "gone");
        return { userId: "short", expiresAt: nowSec() + 6 };
      },
      onError: () => {},
    });
    const b = await serve(onlyConnect.node);
    const g = await startGateway({ SOCKGATE_CONNECT_URL: `${b.url}/`, JWT_SECRET: undefined });
    try {
      const socket = await connect(g.url, { anything: 1 });
      const end = await next(socket, "session:end", 20000);
      assert.equal(end.code, "SESSION_EXPIRED");
      socket.close();
      const renewal = calls.find((c) => "renew" in c);
      assert.equal(renewal.renew.userId, "short");
    } finally {
      await g.stop();
      await b.close();
    }
  });
});

test("without a secret every call is refused, and onError says why", async () => {
  const told = [];
  const noSecret = createHandler({ secret: process.env.SOCKGATE_NO_SUCH_VARIABLE, events, onError: (err) => told.push(err) });
  const body = "{}";
  const res = await noSecret(new Request("http://x/", { method: "POST", headers: { "sockgate-signature": sign(body, "") }, body }));
  assert.equal(res.status, 500);
  assert.match(told[0].message, /no secret/);
});
