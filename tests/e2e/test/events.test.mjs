// The event proxy: client events sockgate does not handle itself go to the
// app's backend (a real Express app here) as signed JSON POSTs; its reply
// acks the client and may join, leave, emit, publish or end the session.
// Every refusal, broken backend and hostile input is acked with a code while
// the socket (and every other socket) keeps being served.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import express from "express";
import jwt from "jsonwebtoken";
import { api, API_KEY, ended, eventually, freePort, next, now, sessionIdOf, sign, startGateway } from "./helpers.mjs";

const EVENTS_SECRET = "events-secret-events-secret-events-secret";
const OTHER_SECRET = "another-secret-another-secret-another-secret";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Emits and waits for the ack, failing after a generous 20 s instead of hanging. */
const ask = (socket, event, ...args) => socket.timeout(20000).emitWithAck(event, ...args);

/** A config file holding `text`. */
function configFile(text) {
  const file = join(mkdtempSync(join(tmpdir(), "sockgate-cfg-")), "sockgate.toml");
  writeFileSync(file, text);
  return file;
}

/** Whether `header` is `t=<s>,v1=<hex HMAC-SHA256(secret, "<t>.<raw>")>` for this body. */
function verifySignature(raw, header, secret) {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? "");
  if (!m) return false;
  const expected = createHmac("sha256", secret).update(`${m[1]}.`).update(raw).digest();
  const given = Buffer.from(m[2], "hex");
  // A real backend also refuses stale signatures (replays).
  return given.length === expected.length && timingSafeEqual(given, expected) && Math.abs(now() - Number(m[1])) <= 300;
}

/** The default behaviour: ack what the backend was told. */
const echoHandler = (call, res) => res.json({ ack: { event: call.body.event, args: call.body.args, rooms: call.body.rooms } });

/**
 * Starts an Express backend on 127.0.0.1 that verifies every call's
 * signature with `secret` (401 when it does not verify) and answers it with
 * the handler registered for the event's name (`on(name, fn)`), else echoes.
 * `calls` lists the verified calls in arrival order, `forged` the others.
 */
async function startBackend({ secret = EVENTS_SECRET } = {}) {
  const app = express();
  const handlers = new Map();
  const backend = {
    calls: [],
    forged: [],
    /** Requests that reached /target (the redirect target). */
    targetHits: 0,
    on(event, handler) {
      handlers.set(event, handler);
    },
    callsOf(event) {
      return backend.calls.filter((c) => c.body.event === event);
    },
  };
  app.all("/target", (req, res) => {
    backend.targetHits++;
    res.json({ ack: "followed a redirect" });
  });
  app.use(express.raw({ type: () => true, limit: "10mb" }), async (req, res) => {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    if (!verifySignature(raw, req.get("sockgate-signature"), secret)) {
      backend.forged.push({ path: req.path, raw });
      return res.status(401).json({ error: { code: "BAD_SIGNATURE", message: "signature does not verify" } });
    }
    const call = { path: req.path, headers: req.headers, raw: raw.toString("utf8"), body: JSON.parse(raw) };
    backend.calls.push(call);
    await (handlers.get(call.body.event) ?? echoHandler)(call, res, req);
  });
  const server = app.listen(0, "127.0.0.1");
  await new Promise((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  backend.url = `http://127.0.0.1:${server.address().port}`;
  backend.stop = () => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  };
  return backend;
}

/** A latch: `wait` resolves with what `open(value)` is given. */
function latch() {
  let open;
  const wait = new Promise((r) => (open = r));
  return { wait, open };
}

/** Holds every call of an event until `release(reply)`; `held` lists them. */
function holding() {
  const gate = latch();
  const held = [];
  return {
    held,
    handler: async (call, res) => {
      held.push(call);
      res.json(await gate.wait);
    },
    release: (reply) => gate.open(reply),
  };
}

/** Collects every event `socket` receives (name and arguments); `askInto` adds acks in between. */
function recorder(socket) {
  const seen = [];
  socket.onAny((event, ...args) => seen.push({ event, args }));
  return seen;
}

/** Emits and records the ack in `seen` too, so effects and ack can be ordered. */
async function askInto(seen, socket, event, ...args) {
  const ack = await ask(socket, event, ...args);
  seen.push({ ack });
  return ack;
}

/** The sum of a metric's samples whose labels include `labels`. */
async function metric(gw, name, labels = {}) {
  const res = await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } });
  assert.equal(res.status, 200);
  let total = 0;
  for (const line of (await res.text()).split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) total += Number(m[3]);
  }
  return total;
}

/** A bystander answers an echo: the gateway still serves other sockets. */
async function stillServing(bystander, what) {
  assert.ok(bystander.connected, `the bystander was disconnected (${what})`);
  const word = `alive after ${what}`;
  assert.equal(await ask(bystander, "echo", word), word, `echo after ${what}`);
}

/** The failure ack: `{ ok: false, code, message }` with a message. */
function assertRefused(ack, code, what = "") {
  assert.equal(ack?.ok, false, `${what}: ${JSON.stringify(ack)?.slice(0, 300)}`);
  assert.equal(ack.code, code, `${what}: ${JSON.stringify(ack).slice(0, 300)}`);
  assert.equal(typeof ack.message, "string", `${what}: a message`);
  assert.ok(ack.message.length > 0, `${what}: a non-empty message`);
}

describe("forwarding to the app's backend", () => {
  let backend;
  let gw;
  const as = (sub, claims = {}, opts = {}) => gw.connect({ auth: { token: sign({ sub, ...claims }) }, ...opts });
  before(async () => {
    backend = await startBackend();
    gw = await startGateway({
      SOCKGATE_EVENTS_URL: `${backend.url}/events`,
      SOCKGATE_EVENTS_SECRET: EVENTS_SECRET,
      SOCKGATE_API_KEY: API_KEY,
    });
  });
  after(async () => {
    await gw.stop();
    await backend.stop();
  });

  test("the request: a signed JSON POST with the event, its arguments as emitted, the user, the session and the socket", async () => {
    const ws = await as("req-alice", { name: "Ada", team: "red" }, { transports: ["websocket"] });
    const polling = await as("req-alice", {}, { transports: ["polling"] });
    const args = [1, "two", { three: [3, null, true], "ü": "ünïcødé ✓" }, null, [], -0.5];
    const ack = await ask(ws, "shape:check", ...args);
    assert.deepEqual(ack.args, args, "the ack echoes the arguments the backend saw");
    await ask(polling, "shape:none");

    const [call] = backend.callsOf("shape:check");
    assert.equal(call.path, "/events");
    assert.equal(call.headers["content-type"], "application/json");
    assert.ok(verifySignature(Buffer.from(call.raw), call.headers["sockgate-signature"], EVENTS_SECRET));
    assert.deepEqual(Object.keys(call.body).sort(), ["args", "claims", "event", "id", "namespace", "remoteAddr", "rooms", "sessionId", "transport", "ts", "userId"]);
    assert.equal(call.body.namespace, "/");
    assert.equal(call.body.event, "shape:check");
    assert.deepEqual(call.body.args, args);
    assert.equal(call.body.userId, "req-alice");
    assert.equal(call.body.sessionId, await sessionIdOf(ws));
    assert.deepEqual(call.body.rooms, ["user:req-alice"]);
    assert.equal(call.body.transport, "websocket");
    assert.equal(call.body.remoteAddr, "127.0.0.1");
    assert.equal(typeof call.body.ts, "number");
    assert.ok(Math.abs(call.body.ts - Date.now()) < 60_000, `ts ${call.body.ts} is unix milliseconds`);
    assert.equal(typeof call.body.id, "string");
    assert.equal(call.body.claims.name, "Ada");
    assert.equal(call.body.claims.team, "red");
    assert.equal(call.body.claims.sub, "req-alice");

    const [none] = backend.callsOf("shape:none");
    assert.deepEqual(none.body.args, [], "no arguments: an empty array");
    assert.equal(none.body.transport, "polling");
    assert.equal(none.body.sessionId, await sessionIdOf(polling));
    assert.notEqual(none.body.sessionId, call.body.sessionId);

    // Every call has its own id.
    for (let i = 0; i < 5; i++) await ask(ws, "shape:id", i);
    const ids = [call, none, ...backend.callsOf("shape:id")].map((c) => c.body.id);
    assert.equal(new Set(ids).size, 7, `ids are unique: ${ids}`);
    assert.ok(ids.every((id) => typeof id === "string" && id.length >= 16), `ids: ${ids}`);
  });

  test("binary arguments reach the backend as { $binary: base64 }, over websocket and polling; sockgate's own events stay JSON", async () => {
    for (const transports of [["websocket"], ["polling"]]) {
      const s = await as(`bin-${transports[0]}`, {}, { transports });
      const file = Buffer.from([0, 1, 2, 250, 255]);
      const ack = await ask(s, "upload", { name: "a.bin", file }, Buffer.from("second"));
      assert.deepEqual(ack.args, [{ name: "a.bin", file: { $binary: file.toString("base64") } }, { $binary: Buffer.from("second").toString("base64") }], transports[0]);
      // A binary argument to sockgate's own event is not JSON: refused, the socket stays.
      const echoed = await ask(s, "room:join", Buffer.from("x"));
      assert.equal(echoed.code, "INVALID_REQUEST");
      assert.equal(await ask(s, "echo", "still here"), "still here");
      s.close();
    }
  });

  test("credentials never reach the backend: no token, no credential claims", async () => {
    const claims = {
      name: "Cred",
      accessToken: "access-token-value-1234567890",
      refresh_token: "refresh-token-value-1234567890",
      provider: { name: "github", access_token: "gho_provider_secret_1234567890" },
    };
    const token = sign({ sub: "cred-user", ...claims });
    const s = await gw.connect({ auth: { token } });
    await ask(s, "cred:check");
    const [call] = backend.callsOf("cred:check");
    const { iat, exp } = jwt.decode(token);
    assert.deepEqual(call.body.claims, { sub: "cred-user", iat, exp, name: "Cred", provider: { name: "github" } }, "the claims without credentials");
    const wire = call.raw + JSON.stringify(call.headers);
    for (const secret of [token, token.split(".")[2], claims.accessToken, claims.refresh_token, claims.provider.access_token]) {
      assert.ok(!wire.includes(secret), `the call carries a credential: ${secret.slice(0, 20)}…`);
    }
    assert.equal(call.headers.authorization, undefined);
    assert.equal(call.headers.cookie, undefined);
  });

  test("the ack is exactly the reply's ack; a reply without one acks null", async () => {
    const s = await as("ack-user");
    const values = [42, "text", [1, [2, [3]]], { nested: { deep: [null, false] } }, null, false, 0, "", { ok: false, code: "ANY" }];
    for (const [i, value] of values.entries()) {
      backend.on(`ack:${i}`, (call, res) => res.json({ ack: value }));
      assert.deepEqual(await ask(s, `ack:${i}`), value, `ack ${JSON.stringify(value)}`);
    }
    backend.on("ack:absent", (call, res) => res.json({}));
    assert.equal(await ask(s, "ack:absent"), null);
    // 20 nested arrays are a value like any other.
    const nested = JSON.parse("[".repeat(20) + "]".repeat(20));
    backend.on("ack:nested", (call, res) => res.json({ ack: nested }));
    assert.deepEqual(await ask(s, "ack:nested"), nested);
  });

  test("app errors: the code is kept when it looks like one, else BACKEND_ERROR", async () => {
    const s = await as("err-user");
    const cases = [
      [{ code: "CHAT_FORBIDDEN", message: "not in this chat" }, "CHAT_FORBIDDEN", "not in this chat"],
      [{ code: "X", message: "one letter" }, "X", "one letter"],
      [{ code: "A" + "B".repeat(63), message: "64 characters" }, "A" + "B".repeat(63), "64 characters"],
      [{ code: "A" + "B".repeat(64), message: "65 characters" }, "BACKEND_ERROR", "65 characters"],
      [{ code: "lowercase", message: "m" }, "BACKEND_ERROR", "m"],
      [{ code: "1STARTS_WITH_DIGIT", message: "m" }, "BACKEND_ERROR", "m"],
      [{ code: "HAS SPACE", message: "m" }, "BACKEND_ERROR", "m"],
      [{ code: "", message: "m" }, "BACKEND_ERROR", "m"],
      [{ code: 42, message: "m" }, "BACKEND_ERROR", "m"],
    ];
    for (const [i, [error, code, message]] of cases.entries()) {
      backend.on(`err:${i}`, (call, res) => res.json({ error }));
      const ack = await ask(s, `err:${i}`);
      if (typeof error.code !== "string") {
        // A code that is not even a string: refused whole or mapped, never passed on.
        assert.equal(ack.ok, false, JSON.stringify(ack));
        assert.equal(ack.code, "BACKEND_ERROR", JSON.stringify(ack));
        continue;
      }
      assert.deepEqual(ack, { ok: false, code, message }, JSON.stringify(error));
    }
    assert.ok(s.connected);
  });

  test("events without an ack are forwarded and their effects apply", async () => {
    const s = await as("noack-user");
    backend.on("noack:go", (call, res) => res.json({ ack: "nobody asked", emit: [{ event: "noack:done", data: call.body.args }] }));
    const done = next(s, "noack:done");
    s.emit("noack:go", "fire", "and forget");
    assert.deepEqual(await done, ["fire", "and forget"]);
    assert.equal(backend.callsOf("noack:go").length, 1);
    assert.equal(await ask(s, "echo", "still here"), "still here");
  });

  test("sockgate's own events and reserved names never reach the backend", async () => {
    const s = await as("own-user", { rooms: ["chat:*"] });
    const before = backend.calls.length;
    assert.equal(await ask(s, "echo", "e"), "e");
    assert.equal((await ask(s, "auth:whoami")).userId, "own-user");
    assert.equal((await ask(s, "room:join", { room: "chat:own" })).ok, true);
    assert.equal((await ask(s, "room:publish", { room: "chat:own", data: 1 })).ok, true);
    await ask(s, "room:members", { room: "chat:own" });
    assert.equal((await ask(s, "room:leave", { room: "chat:own" })).ok, true);
    for (const name of ["auth:ticket", "auth:nope", "room:nope", "session:end", "session:x", "sockgate:internal", "sockgate:"]) {
      assertRefused(await ask(s, name, { any: 1 }), "UNKNOWN_EVENT", name);
    }
    assert.equal(backend.calls.length, before, `the backend saw: ${backend.calls.slice(before).map((c) => c.body.event)}`);
    // Names that only look like the reserved ones are the app's.
    for (const name of ["auth", "rooms:x", "Auth:x", "xsession:y"]) {
      assert.equal((await ask(s, name)).event, name, name);
    }
    assert.deepEqual(backend.calls.slice(before).map((c) => c.body.event), ["auth", "rooms:x", "Auth:x", "xsession:y"]);
  });

  test("join and leave change the socket's rooms before the ack; no room policy is asked", async () => {
    // This user has no room rights at all: the app decides.
    const s = await as("rooms-user");
    backend.on("rooms:join", (call, res) => res.json({ ack: "joined", join: call.body.args }));
    backend.on("rooms:leave", (call, res) => res.json({ ack: "left", leave: call.body.args }));
    assert.equal(await ask(s, "rooms:join", "zeta:1", "alpha:1", "mid:1"), "joined");
    const { rooms } = await ask(s, "rooms:probe");
    assert.equal(rooms[0], "user:rooms-user", `the user room first: ${rooms}`);
    assert.deepEqual(rooms.slice(1).sort(), ["alpha:1", "mid:1", "zeta:1"]);
    // Really in the room: /api/publish reaches it.
    const got = next(s, "news");
    assert.deepEqual((await api(gw, "POST", "/api/publish", { body: { room: "alpha:1", event: "news", data: "n" } })).body, { delivered: 1 });
    assert.equal(await got, "n");
    assert.equal(await ask(s, "rooms:leave", "alpha:1", "zeta:1", "never-joined:1"), "left");
    assert.deepEqual((await ask(s, "rooms:probe")).rooms, ["user:rooms-user", "mid:1"]);
    assert.deepEqual((await api(gw, "POST", "/api/publish", { body: { room: "alpha:1", event: "news", data: "n" } })).body, { delivered: 0 });
  });

  test("effects apply in order, join, leave, emit, publish, and all before the ack", async () => {
    const s = await as("order-fx");
    const seen = recorder(s);
    backend.on("fx:all", (call, res) =>
      res.json({
        ack: "done",
        join: ["fx:in", "fx:out"],
        leave: ["fx:out"],
        emit: [{ event: "fx:first", data: 1 }, { event: "fx:second", data: { n: 2 } }, { event: "fx:third" }],
        publish: [
          // Joined by this very reply: the join came first.
          { room: "fx:in", event: "fx:room", data: "in" },
          // Joined and left by this reply: the leave came first.
          { room: "fx:out", event: "fx:gone", data: "out" },
          { user: "order-fx", event: "fx:user", data: "u" },
        ],
      }),
    );
    await askInto(seen, s, "fx:all");
    assert.deepEqual(
      seen.map((e) => e.event ?? "ack"),
      ["fx:first", "fx:second", "fx:third", "fx:room", "fx:user", "ack"],
      JSON.stringify(seen),
    );
    assert.deepEqual(seen[0].args, [1]);
    assert.deepEqual(seen[1].args, [{ n: 2 }]);
    assert.ok(seen[2].args.every((a) => a === null), `an emit without data carries nothing: ${JSON.stringify(seen[2].args)}`);
    assert.equal(seen[3].args[0], "in");
    assert.equal(seen[5].ack, "done");
  });

  test("publish reaches a room's members (with the recovery offset), several rooms, a user's sockets", async () => {
    const sender = await as("pub-sender");
    const member = await as("pub-member");
    const member2 = await as("pub-member2");
    const user1 = await as("pub-target");
    const user2 = await as("pub-target", {}, { transports: ["polling"] });
    const outsider = await as("pub-outsider");
    backend.on("pub:join", (call, res) => res.json({ ack: true, join: call.body.args }));
    assert.equal(await ask(member, "pub:join", "pub:room"), true);
    assert.equal(await ask(member2, "pub:join", "pub:other"), true);
    const boxes = [sender, member, member2, user1, user2, outsider].map(recorder);
    backend.on("pub:send", (call, res) =>
      res.json({
        ack: "sent",
        publish: [
          { room: "pub:room", event: "pub:note", data: { to: "room" } },
          { rooms: ["pub:room", "pub:other"], event: "pub:note", data: { to: "rooms" } },
          { user: "pub-target", event: "pub:note", data: { to: "user" } },
        ],
      }),
    );
    assert.equal(await ask(sender, "pub:send"), "sent");
    const [, memberBox, member2Box, user1Box, user2Box] = boxes;
    await eventually(() => memberBox.length === 2 && member2Box.length === 1 && user1Box.length === 1 && user2Box.length === 1, 10000, "deliveries");
    assert.deepEqual(memberBox.map((m) => m.args[0]), [{ to: "room" }, { to: "rooms" }]);
    for (const m of memberBox) {
      assert.equal(m.args.length, 2, `a room message carries its offset last: ${JSON.stringify(m.args)}`);
      assert.equal(typeof m.args[1], "string");
      assert.ok(m.args[1].length > 0);
    }
    assert.notEqual(memberBox[0].args[1], memberBox[1].args[1], "each message has its own offset");
    assert.deepEqual(member2Box[0].args[0], { to: "rooms" });
    assert.deepEqual(user1Box[0].args[0], { to: "user" });
    assert.deepEqual(user2Box[0].args[0], { to: "user" });
    // A sentinel through the same room proves nothing else is on its way.
    assert.deepEqual((await api(gw, "POST", "/api/publish", { body: { user: "pub-outsider", event: "sentinel" } })).body, { delivered: 1 });
    await eventually(() => boxes[5].length === 1, 10000, "the sentinel");
    assert.equal(boxes[5][0].event, "sentinel", "the outsider got nothing of the publishes");
    assert.equal(boxes[0].length, 0, "the sender is in none of the targets");
  });

  test("disconnect ends the session: session:end ENDED_BY_APP, never reconnect, then a Socket.IO disconnect", async () => {
    for (const reconnect of [false, true]) {
      const s = await as("bye-user");
      const other = await as("bye-user");
      backend.on("bye:now", (call, res) => res.json({ ack: "bye", disconnect: { message: "the app ended this", reconnect } }));
      const ending = ended(s);
      s.emit("bye:now", () => {});
      const { end, reason } = await ending;
      assert.equal(end?.code, "ENDED_BY_APP", JSON.stringify(end));
      assert.equal(end.message, "the app ended this");
      assert.equal(end.reconnect, false, `reconnect asked ${reconnect}`);
      assert.equal(reason, "io server disconnect");
      await stillServing(other, "an app disconnect of another socket of the same user");
    }
  });

  test("a reply whose room effects break a rule applies nothing: ROOM_INVALID, FORBIDDEN, ROOM_LIMIT", async () => {
    const s = await as("rule-user");
    const seen = recorder(s);
    const cases = [
      [{ join: ["rule:ok", "bad room"] }, "ROOM_INVALID"],
      [{ join: ["rule:ok", ""] }, "ROOM_INVALID"],
      [{ leave: ["bad room"], join: ["rule:ok"] }, "ROOM_INVALID"],
      [{ join: ["rule:ok", "user:someone-else"] }, "FORBIDDEN"],
      [{ join: ["user:rule-user"] }, "FORBIDDEN"],
      [{ leave: ["user:rule-user"] }, "FORBIDDEN"],
      [{ join: Array.from({ length: 101 }, (_, i) => `rule:${i}`) }, "ROOM_LIMIT"],
    ];
    for (const [i, [effects, code]] of cases.entries()) {
      backend.on(`rule:${i}`, (call, res) =>
        res.json({
          ack: "applied",
          ...effects,
          emit: [{ event: "rule:emitted", data: i }],
          publish: [{ user: "rule-user", event: "rule:published", data: i }],
        }),
      );
      const ack = await askInto(seen, s, `rule:${i}`);
      assertRefused(ack, code, JSON.stringify(effects).slice(0, 80));
    }
    // Effects come before the ack on this connection: none came at all.
    assert.deepEqual(seen.filter((e) => e.event).map((e) => e.event), []);
    assert.deepEqual((await ask(s, "rule:probe")).rooms, ["user:rule-user"], "no room was joined");
    assert.ok(s.connected);
  });

  test("the room limit is SOCKGATE_MAX_ROOMS_PER_SOCKET (100): 100 rooms fit, leaving makes room", async () => {
    const s = await as("limit-user");
    const rooms = (from, n) => Array.from({ length: n }, (_, i) => `lim:${from + i}`);
    backend.on("lim:join", (call, res) => res.json({ ack: "ok", join: call.body.args[0], leave: call.body.args[1] ?? [] }));
    assert.equal(await ask(s, "lim:join", rooms(0, 100)), "ok");
    assert.equal((await ask(s, "lim:probe")).rooms.length, 101, "100 rooms and the user's own");
    assertRefused(await ask(s, "lim:join", ["lim:extra"]), "ROOM_LIMIT");
    assert.equal(await ask(s, "lim:join", rooms(0, 50)), "ok", "re-joining is not a new room");
    // One in, one out: still 100.
    assert.equal(await ask(s, "lim:join", ["lim:new"], ["lim:0"]), "ok");
    const after = (await ask(s, "lim:probe")).rooms;
    assert.equal(after.length, 101);
    assert.ok(after.includes("lim:new") && !after.includes("lim:0"));
  });

  test("a reply joining 10,000 rooms is ROOM_LIMIT and joins none", async () => {
    const s = await as("flood-rooms");
    const bystander = await as("flood-bystander");
    const seen = recorder(s);
    // Short names: the reply stays under the reply cap (SOCKGATE_MAX_MESSAGE).
    const rooms = Array.from({ length: 10000 }, (_, i) => `r${i}`);
    assert.ok(JSON.stringify(rooms).length < 128 * 1024);
    backend.on("rooms:flood", (call, res) => res.json({ ack: "joined", join: rooms, emit: [{ event: "flood:emitted" }] }));
    assertRefused(await askInto(seen, s, "rooms:flood"), "ROOM_LIMIT");
    assert.deepEqual(seen.filter((e) => e.event).map((e) => e.event), []);
    assert.deepEqual((await ask(s, "rooms:probe")).rooms, ["user:flood-rooms"]);
    await stillServing(bystander, "10,000 joins");
  });

  test("emits and publishes with reserved or invalid names apply nothing", async () => {
    const s = await as("bad-fx");
    const seen = recorder(s);
    const cases = [
      [{ emit: [{ event: "fine" }, { event: "session:end", data: { code: "KICKED" } }] }, "INVALID_REQUEST"],
      [{ emit: [{ event: "auth:expiring" }] }, "INVALID_REQUEST"],
      [{ emit: [{ event: "room:message", data: {} }] }, "INVALID_REQUEST"],
      [{ emit: [{ event: "sockgate:x" }] }, "INVALID_REQUEST"],
      [{ emit: [{ event: "connect" }] }, "INVALID_REQUEST"],
      [{ emit: [{ event: "connect_error" }] }, "INVALID_REQUEST"],
      [{ emit: [{ event: "disconnect" }] }, "INVALID_REQUEST"],
      [{ emit: [{ event: "disconnecting" }] }, "INVALID_REQUEST"],
      [{ emit: [{ event: "" }] }, "INVALID_REQUEST"],
      [{ publish: [{ user: "bad-fx", event: "session:end", data: { code: "KICKED" } }] }, "INVALID_REQUEST"],
      [{ publish: [{ user: "bad-fx", event: "connect" }] }, "INVALID_REQUEST"],
      [{ publish: [{ event: "no-target" }] }, "INVALID_REQUEST"],
      [{ publish: [{ user: "bad-fx", room: "r", event: "two-targets" }] }, "INVALID_REQUEST"],
      [{ publish: [{ room: "bad room", event: "x" }] }, "ROOM_INVALID"],
      [{ publish: [{ rooms: ["ok", "not ok"], event: "x" }] }, "ROOM_INVALID"],
      [{ publish: [{ user: "bad-fx", event: "big", data: "x".repeat(70_000) }] }, "PAYLOAD_TOO_LARGE"],
    ];
    for (const [i, [effects, code]] of cases.entries()) {
      backend.on(`badfx:${i}`, (call, res) =>
        res.json({
          ack: "applied",
          join: ["badfx:room"],
          emit: [{ event: "badfx:emitted", data: i }],
          publish: [{ user: "bad-fx", event: "badfx:published", data: i }],
          ...effects,
        }),
      );
      const ack = await askInto(seen, s, `badfx:${i}`);
      assert.equal(ack?.ok, false, `${JSON.stringify(effects).slice(0, 100)}: ${JSON.stringify(ack)}`);
      assert.equal(ack.code, code, `${JSON.stringify(effects).slice(0, 100)}: ${JSON.stringify(ack)}`);
    }
    assert.deepEqual(seen.filter((e) => e.event).map((e) => e.event), [], "nothing was emitted or published");
    assert.deepEqual((await ask(s, "badfx:probe")).rooms, ["user:bad-fx"], "no room was joined");
    assert.ok(s.connected);
  });

  test("at most 100 emit and 100 publish entries; unknown reply fields are BACKEND_ERROR", async () => {
    const s = await as("many-fx");
    const seen = recorder(s);
    const emits = (n) => Array.from({ length: n }, (_, i) => ({ event: "many:e", data: i }));
    const publishes = (n) => Array.from({ length: n }, (_, i) => ({ user: "many-fx", event: "many:p", data: i }));
    backend.on("many:ok", (call, res) => res.json({ ack: "ok", emit: emits(100), publish: publishes(100) }));
    assert.equal(await askInto(seen, s, "many:ok"), "ok");
    assert.equal(seen.filter((e) => e.event === "many:e").length, 100);
    assert.equal(seen.filter((e) => e.event === "many:p").length, 100);
    assert.deepEqual(seen.filter((e) => e.event === "many:e").map((e) => e.args[0]), [...Array(100).keys()], "emits in order");
    seen.length = 0;
    const refusedReplies = [
      { ack: "x", emit: emits(101) },
      { ack: "x", publish: publishes(101) },
      { ack: "x", joins: ["typo"] },
      { ack: "x", extra: true },
      { ack: "x", emit: [{ event: "e", data: 1, extra: 1 }] },
      { ack: "x", disconnect: { message: "m", extra: 1 } },
      { ack: "x", join: "not-a-list" },
    ];
    for (const [i, reply] of refusedReplies.entries()) {
      backend.on(`many:bad${i}`, (call, res) => res.json(reply));
      assertRefused(await askInto(seen, s, `many:bad${i}`), "BACKEND_ERROR", JSON.stringify(reply).slice(0, 80));
    }
    assert.deepEqual(seen.filter((e) => e.event).map((e) => e.event), [], "nothing of a refused reply applied");
    assert.ok(s.connected);
  });

  test("one socket's calls reach the backend one at a time, in the order emitted; acks come back in that order", async () => {
    const s = await as("seq-user", {}, { transports: ["websocket"] });
    let inFlight = 0;
    let most = 0;
    backend.on("seq:n", async (call, res) => {
      inFlight++;
      most = Math.max(most, inFlight);
      // Uneven answer times: later calls often answer faster.
      await sleep(((call.body.args[0] * 7) % 5) * 15);
      inFlight--;
      res.json({ ack: call.body.args[0] });
    });
    const acks = [];
    const all = Array.from({ length: 30 }, (_, i) => ask(s, "seq:n", i).then((a) => acks.push(a)));
    await Promise.all(all);
    assert.deepEqual(backend.callsOf("seq:n").map((c) => c.body.args[0]), [...Array(30).keys()], "the backend's order");
    assert.deepEqual(acks, [...Array(30).keys()], "the acks' order");
    assert.equal(most, 1, "one call of the socket at a time");
  });

  test("a slow call on one socket delays neither another socket of its user nor another user", async () => {
    const a = await as("slow-a", {}, { transports: ["websocket"] });
    const b = await as("slow-a");
    const c = await as("slow-c");
    // The backend holds A's first call until B and C have their acks.
    const gate = latch();
    backend.on("slow:a", async (call, res) => {
      if (call.body.args[0] === 1) await gate.wait;
      res.json({ ack: call.body.args[0] });
    });
    const acks = [];
    const aDone = [1, 2, 3].map((n) => ask(a, "slow:a", n).then((x) => acks.push(x)));
    try {
      await eventually(() => backend.callsOf("slow:a").length === 1, 10000, "A's first call at the backend");
      assert.equal((await ask(b, "slow:b", "b")).event, "slow:b");
      assert.equal((await ask(c, "slow:c", "c")).event, "slow:c");
      assert.deepEqual(acks, [], "A's calls still wait");
      assert.deepEqual(backend.callsOf("slow:a").map((x) => x.body.args[0]), [1], "A's second call waits for its first");
    } finally {
      gate.open();
    }
    await Promise.all(aDone);
    assert.deepEqual(acks, [1, 2, 3]);
    const order = backend.calls.filter((x) => x.body.event.startsWith("slow:")).map((x) => `${x.body.event}/${x.body.args[0]}`);
    assert.deepEqual(order, ["slow:a/1", "slow:b/b", "slow:c/c", "slow:a/2", "slow:a/3"]);
  });

  test("one user has at most 16 calls in flight across their sockets (the default)", async () => {
    const sockets = [];
    for (let i = 0; i < 17; i++) sockets.push(await as("crowd"));
    const hold = holding();
    backend.on("crowd:hold", hold.handler);
    const acks = sockets.slice(0, 16).map((s, i) => ask(s, "crowd:hold", i));
    try {
      await eventually(() => hold.held.length === 16, 10000, "16 calls in flight");
      const refused = await ask(sockets[16], "crowd:hold", 16);
      assertRefused(refused, "RATE_LIMITED", "the 17th call in flight");
      assert.equal(hold.held.length, 16, "the refused call never reached the backend");
      const other = await as("not-crowd");
      assert.equal((await ask(other, "crowd:other")).event, "crowd:other", "another user is not limited");
    } finally {
      hold.release({ ack: "released" });
    }
    assert.deepEqual(await Promise.all(acks), Array(16).fill("released"));
    assert.equal((await ask(sockets[16], "crowd:after")).event, "crowd:after", "room again once they are answered");
  });

  test("more than 64 calls waiting behind a socket's call in flight: RATE_LIMITED, and only that one", async () => {
    const s = await as("line-user", {}, { transports: ["websocket"] });
    const gate = latch();
    backend.on("line:n", async (call, res) => {
      if (call.body.args[0] === 0) await gate.wait;
      res.json({ ack: call.body.args[0] });
    });
    const first = ask(s, "line:n", 0);
    const acks = new Array(66);
    let waiting;
    try {
      await eventually(() => backend.callsOf("line:n").length === 1, 10000, "the first call in flight");
      waiting = Array.from({ length: 65 }, (_, i) => ask(s, "line:n", i + 1).then((a) => (acks[i + 1] = a)));
      // The 65th waiting call is refused at once, while the first is still held.
      await eventually(() => acks[65] !== undefined, 10000, "the refusal of the 65th waiting call");
      assertRefused(acks[65], "RATE_LIMITED", "the 65th waiting call");
      assert.equal(acks.filter((a) => a !== undefined).length, 1, "the others still wait");
    } finally {
      gate.open();
    }
    assert.equal(await first, 0);
    await Promise.all(waiting);
    assert.deepEqual(acks.slice(1, 65), Array.from({ length: 64 }, (_, i) => i + 1), "the 64 waiting calls are answered in order");
    assert.deepEqual(backend.callsOf("line:n").map((c) => c.body.args[0]), [...Array(65).keys()], "the refused call never reached the backend");
  });

  test("a session kicked while its call is in flight: the reply's effects are dropped", async () => {
    const alice = await as("kick-alice");
    const bob = await as("kick-bob");
    backend.on("kick:join", (call, res) => res.json({ ack: true, join: ["kick:room"] }));
    assert.equal(await ask(alice, "kick:join"), true);
    assert.equal(await ask(bob, "kick:join"), true);
    const bobBox = recorder(bob);
    const hold = holding();
    backend.on("kick:late", hold.handler);
    const okBefore = await metric(gw, "sockgate_app_calls_total", { route: "*", outcome: "OK" });
    const ending = ended(alice);
    alice.emit("kick:late", "in flight", () => {});
    try {
      await eventually(() => hold.held.length === 1, 10000, "the call in flight");
      const res = await api(gw, "DELETE", `/api/sessions/${hold.held[0].body.sessionId}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const { end } = await ending;
      assert.equal(end?.code, "KICKED");
    } finally {
      hold.release({
        ack: "too late",
        publish: [
          { room: "kick:room", event: "kick:published", data: "late" },
          { user: "kick-bob", event: "kick:published", data: "late to bob" },
        ],
      });
    }
    // The gateway has the reply once it counts the call.
    await eventually(async () => (await metric(gw, "sockgate_app_calls_total", { route: "*", outcome: "OK" })) > okBefore, 10000, "the reply counted");
    assert.deepEqual((await api(gw, "POST", "/api/publish", { body: { room: "kick:room", event: "kick:sentinel", data: 1 } })).body, { delivered: 1 });
    await eventually(() => bobBox.some((e) => e.event === "kick:sentinel"), 10000, "the sentinel");
    assert.deepEqual(bobBox.map((e) => e.event), ["kick:sentinel"], "nothing of the dropped reply reached bob");
    await stillServing(bob, "a kicked session's reply");
  });
});

describe("routes, secrets, timeouts and failing backends", () => {
  let backend;
  let other;
  let gw;
  let fileOnly;
  let downPort;
  before(async () => {
    backend = await startBackend();
    // A backend holding another secret: every call signed with ours is forged to it.
    other = await startBackend({ secret: OTHER_SECRET });
    downPort = await freePort();
    const routes = [
      ["chat:*", `${backend.url}/a`],
      ["chat:admin:*", `${backend.url}/b`],
      ["g?me:*", `${backend.url}/c`],
      ["other:*", `${other.url}/events`],
      ["own:*", `${other.url}/events`, `secret = "${OTHER_SECRET}"`],
      ["patient:*", `${backend.url}/patient`, "timeout_ms = 20000"],
      ["quick:*", `${backend.url}/quick`, "timeout_ms = 300"],
      ["down:*", `http://127.0.0.1:${downPort}/events`],
      ["flaky:*", `${backend.url}/flaky`],
    ];
    const toml = routes.map(([match, url, extra = ""]) => `[[events]]\nmatch = "${match}"\nurl = "${url}"\n${extra}\n`).join("\n");
    gw = await startGateway({
      SOCKGATE_CONFIG: configFile(toml),
      SOCKGATE_EVENTS_URL: `${backend.url}/d`,
      SOCKGATE_EVENTS_SECRET: EVENTS_SECRET,
      SOCKGATE_EVENTS_TIMEOUT_MS: "1500",
      SOCKGATE_API_KEY: API_KEY,
    });
    // Routes from the file only, the secret in the file only.
    fileOnly = await startGateway({
      SOCKGATE_CONFIG: configFile(`[[events]]\nmatch = "chat:*"\nurl = "${backend.url}/file-only"\nsecret = "${EVENTS_SECRET}"\n`),
      SOCKGATE_API_KEY: API_KEY,
    });
  });
  after(async () => {
    await gw.stop();
    await fileOnly.stop();
    await backend.stop();
    await other.stop();
  });
  const as = (g, sub) => g.connect({ auth: { token: sign({ sub }) } });

  test("file routes come first in file order, first match wins (* and ?), then SOCKGATE_EVENTS_URL for *", async () => {
    const s = await as(gw, "router");
    const cases = [
      ["chat:x", "/a"],
      ["chat:admin:x", "/a"],
      ["chat:", "/a"],
      ["game:1", "/c"],
      ["gxme:2", "/c"],
      ["gaame:3", "/d"],
      ["gme:4", "/d"],
      ["Chat:x", "/d"],
      ["hello", "/d"],
      ["xchat:y", "/d"],
    ];
    for (const [event, path] of cases) {
      const before = backend.calls.length;
      assert.equal((await ask(s, event, path)).event, event);
      assert.equal(backend.calls.length, before + 1);
      assert.equal(backend.calls.at(-1).path, path, `${event} went to ${backend.calls.at(-1).path}, not ${path}`);
    }
  });

  test("without SOCKGATE_EVENTS_URL an event no route matches is UNKNOWN_EVENT and reaches no backend", async () => {
    const s = await as(fileOnly, "unrouted");
    const before = backend.calls.length;
    assert.equal((await ask(s, "chat:hi", 1)).event, "chat:hi", "the file's route, signed with the file's secret");
    assert.equal(backend.calls.at(-1).path, "/file-only");
    for (const event of ["hello", "chat", "game:1", "other:x"]) {
      const ack = await ask(s, event, "x");
      assertRefused(ack, "UNKNOWN_EVENT", event);
      assert.ok(ack.message.includes(event), `the message names the event: ${ack.message}`);
    }
    assert.equal(backend.calls.length, before + 1);
    assert.equal(await metric(fileOnly, "sockgate_app_calls_refused_total", { code: "UNKNOWN_EVENT" }), 4);
    assert.ok(s.connected);
  });

  test("a backend holding another secret detects the forgery: 401, acked BACKEND_ERROR; a route's own secret verifies", async () => {
    const s = await as(gw, "signer");
    const forgedBefore = other.forged.length;
    assertRefused(await ask(s, "other:x", 1), "BACKEND_ERROR", "signed with the wrong secret");
    assert.equal(other.forged.length, forgedBefore + 1, "the backend refused the signature");
    assert.equal(other.calls.length, 0, "and accepted nothing");
    // The same backend, through a route that carries its secret.
    assert.equal((await ask(s, "own:x", 2)).event, "own:x");
    assert.equal(other.calls.length, 1);
    assert.equal(other.forged.length, forgedBefore + 1);
    assert.ok(s.connected);
  });

  test("timeouts: SOCKGATE_EVENTS_TIMEOUT_MS and a route's timeout_ms give BACKEND_TIMEOUT; the socket stays", async () => {
    const s = await as(gw, "timer");
    const bystander = await as(gw, "timer-bystander");
    const quick = holding();
    const slow = holding();
    backend.on("quick:hold", quick.handler);
    backend.on("envslow:hold", slow.handler);
    backend.on("patient:wait", async (call, res) => {
      // Longer than SOCKGATE_EVENTS_TIMEOUT_MS, well within the route's.
      await sleep(3000);
      res.json({ ack: "worth the wait" });
    });
    try {
      assertRefused(await ask(s, "quick:hold"), "BACKEND_TIMEOUT", "timeout_ms = 300");
      assertRefused(await ask(s, "envslow:hold"), "BACKEND_TIMEOUT", "SOCKGATE_EVENTS_TIMEOUT_MS = 1500");
      assert.equal(await ask(s, "patient:wait"), "worth the wait", "the route's timeout_ms wins over the setting");
      assert.ok(s.connected);
      assert.equal((await ask(s, "after:timeouts")).event, "after:timeouts");
      await stillServing(bystander, "timeouts");
    } finally {
      quick.release({ ack: "late" });
      slow.release({ ack: "late" });
    }
  });

  test("unreachable backends and 5xx are BACKEND_UNAVAILABLE; other statuses and redirects (never followed) are BACKEND_ERROR", async () => {
    const s = await as(gw, "statuses");
    const bystander = await as(gw, "statuses-bystander");
    for (let i = 0; i < 2; i++) assertRefused(await ask(s, "down:x"), "BACKEND_UNAVAILABLE", "connection refused");
    for (const status of [500, 502, 503, 504]) {
      backend.on(`status:${status}`, (call, res) => res.status(status).json({ ack: "5xx with a body" }));
      assertRefused(await ask(s, `status:${status}`), "BACKEND_UNAVAILABLE", `HTTP ${status}`);
    }
    // A success between them: the route's failures are not in a row.
    assert.equal((await ask(s, "status:fine")).event, "status:fine");
    for (const status of [400, 401, 403, 404, 409, 418, 429]) {
      backend.on(`status:${status}`, (call, res) => res.status(status).json({ ack: "4xx with a reply's shape" }));
      assertRefused(await ask(s, `status:${status}`), "BACKEND_ERROR", `HTTP ${status}`);
    }
    for (const status of [301, 302, 303, 307, 308]) {
      backend.on(`redirect:${status}`, (call, res) => res.redirect(status, `${backend.url}/target`));
      assertRefused(await ask(s, `redirect:${status}`), "BACKEND_ERROR", `HTTP ${status}`);
    }
    assert.equal(backend.targetHits, 0, "the redirect target saw no request");
    assert.ok(s.connected);
    await stillServing(bystander, "failing statuses");
  });

  test("after 5 failures in a row a route's circuit opens: calls fail at once, then one probe closes it", async () => {
    const s = await as(gw, "circuit");
    let failing = true;
    backend.on("flaky:x", (call, res) => (failing ? res.status(503).json({}) : res.json({ ack: "up" })));
    const hits = () => backend.callsOf("flaky:x").length;
    // Four failures, a success, four failures: never five in a row.
    for (let i = 0; i < 4; i++) assertRefused(await ask(s, "flaky:x"), "BACKEND_UNAVAILABLE");
    failing = false;
    assert.equal(await ask(s, "flaky:x"), "up");
    failing = true;
    for (let i = 0; i < 4; i++) assertRefused(await ask(s, "flaky:x"), "BACKEND_UNAVAILABLE");
    assert.equal(hits(), 9, "every call so far reached the backend");
    // The fifth in a row opens the circuit.
    assertRefused(await ask(s, "flaky:x"), "BACKEND_UNAVAILABLE");
    assert.equal(hits(), 10);
    for (let i = 0; i < 3; i++) assertRefused(await ask(s, "flaky:x"), "BACKEND_UNAVAILABLE", "open circuit");
    assert.equal(hits(), 10, "an open circuit does not call the backend");
    // Other routes, even on the same backend, are not affected.
    assert.equal((await ask(s, "chat:meanwhile")).event, "chat:meanwhile");
    failing = false;
    let refusedWhileOpen = 0;
    await eventually(
      async () => {
        const ack = await ask(s, "flaky:x");
        if (ack === "up") return true;
        assert.equal(ack.code, "BACKEND_UNAVAILABLE", JSON.stringify(ack));
        refusedWhileOpen++;
        return false;
      },
      20000,
      "the circuit to close again",
    );
    assert.equal(hits(), 11, `one probe reached the backend (after ${refusedWhileOpen} refusals)`);
    for (let i = 0; i < 3; i++) assert.equal(await ask(s, "flaky:x"), "up");
    assert.equal(hits(), 14, "a closed circuit calls the backend again");
    assert.ok(s.connected);
  });
});

describe("settings", () => {
  /** The logs of a gateway that refused to start (fails when it starts). */
  async function startupFailure(env) {
    let gw;
    try {
      gw = await startGateway(env);
    } catch (e) {
      return e.message;
    }
    await gw.stop();
    assert.fail(`sockgate started with ${JSON.stringify(env)}`);
  }

  test("a route needs SOCKGATE_EVENTS_SECRET of at least 32 bytes: startup fails and names it", async () => {
    const url = "http://127.0.0.1:9/events";
    const cases = [
      { SOCKGATE_EVENTS_URL: url },
      { SOCKGATE_EVENTS_URL: url, SOCKGATE_EVENTS_SECRET: "x".repeat(31) },
      { SOCKGATE_EVENTS_URL: url, SOCKGATE_EVENTS_SECRET: "" },
      { SOCKGATE_CONFIG: configFile(`[[events]]\nmatch = "chat:*"\nurl = "${url}"\n`) },
      { SOCKGATE_CONFIG: configFile(`[[events]]\nmatch = "chat:*"\nurl = "${url}"\nsecret = "short"\n`), SOCKGATE_EVENTS_SECRET: EVENTS_SECRET },
    ];
    for (const env of cases) {
      const message = await startupFailure(env);
      assert.match(message, /exited with [1-9]/, JSON.stringify(env));
      assert.match(message, /SOCKGATE_EVENTS_SECRET/, `${JSON.stringify(env)}: ${message.slice(-500)}`);
    }
  });

  test("an events URL must be http or https", async () => {
    for (const url of ["ftp://127.0.0.1/events", "not a url", "file:///etc/passwd"]) {
      const message = await startupFailure({ SOCKGATE_EVENTS_URL: url, SOCKGATE_EVENTS_SECRET: EVENTS_SECRET });
      assert.match(message, /exited with [1-9]/, url);
    }
  });

  test("a secret of exactly 32 bytes signs the calls", async () => {
    const secret = "s".repeat(32);
    const backend = await startBackend({ secret });
    const gw = await startGateway({ SOCKGATE_EVENTS_URL: `${backend.url}/events`, SOCKGATE_EVENTS_SECRET: secret });
    try {
      const s = await gw.connect({ auth: { token: sign({ sub: "thirty-two" }) } });
      assert.equal((await ask(s, "hi")).event, "hi");
      assert.equal(backend.calls.length, 1);
    } finally {
      await gw.stop();
      await backend.stop();
    }
  });

  test("SOCKGATE_EVENTS_CONCURRENCY bounds one user's calls in flight across their sockets", async () => {
    const backend = await startBackend();
    const gw = await startGateway({ SOCKGATE_EVENTS_URL: `${backend.url}/events`, SOCKGATE_EVENTS_SECRET: EVENTS_SECRET, SOCKGATE_EVENTS_CONCURRENCY: "2" });
    const hold = holding();
    backend.on("cc:hold", hold.handler);
    try {
      const [a, b, c] = [await gw.connect({ auth: { token: sign({ sub: "cc" }) } }), await gw.connect({ auth: { token: sign({ sub: "cc" }) } }), await gw.connect({ auth: { token: sign({ sub: "cc" }) } })];
      const held = [ask(a, "cc:hold"), ask(b, "cc:hold")];
      await eventually(() => hold.held.length === 2, 10000, "two calls in flight");
      assertRefused(await ask(c, "cc:hold"), "RATE_LIMITED", "the third call in flight");
      assert.equal(hold.held.length, 2);
      const d = await gw.connect({ auth: { token: sign({ sub: "cc-other" }) } });
      assert.equal((await ask(d, "cc:free")).event, "cc:free");
      hold.release({ ack: "done" });
      assert.deepEqual(await Promise.all(held), ["done", "done"]);
      assert.equal(await ask(c, "cc:hold"), "done");
    } finally {
      hold.release({ ack: "done" });
      await gw.stop();
      await backend.stop();
    }
  });
});

describe("metrics and logs", () => {
  const PAYLOAD_SECRET = "payload-secret-7f3a9c1e-do-not-log";
  const REPLY_SECRET = "reply-secret-0b8d2e64-do-not-log";
  let backend;
  let gw;
  before(async () => {
    backend = await startBackend();
    gw = await startGateway({
      SOCKGATE_CONFIG: configFile(`[[events]]\nmatch = "fail:*"\nurl = "${backend.url}/fail"\n`),
      SOCKGATE_EVENTS_URL: `${backend.url}/events`,
      SOCKGATE_EVENTS_SECRET: EVENTS_SECRET,
      SOCKGATE_API_KEY: API_KEY,
    });
  });
  after(async () => {
    await gw.stop();
    await backend.stop();
  });

  test("calls are counted by route and outcome, refusals by code; one WARN line per failed call, without payloads", async () => {
    const s = await gw.connect({ auth: { token: sign({ sub: "metered" }) } });
    backend.on("fail:x", (call, res) => res.status(503).send(REPLY_SECRET));
    backend.on("m:garbage", (call, res) => res.type("text/plain").send(`not json ${REPLY_SECRET}`));
    backend.on("m:apperror", (call, res) => res.json({ error: { code: "APP_SAYS_NO", message: "no" } }));
    for (let i = 0; i < 3; i++) assert.equal((await ask(s, "m:ok", { secret: PAYLOAD_SECRET })).event, "m:ok");
    for (let i = 0; i < 2; i++) assertRefused(await ask(s, "fail:x", PAYLOAD_SECRET), "BACKEND_UNAVAILABLE");
    assertRefused(await ask(s, "m:garbage", PAYLOAD_SECRET), "BACKEND_ERROR");
    assert.equal((await ask(s, "m:apperror", PAYLOAD_SECRET)).code, "APP_SAYS_NO");
    for (const name of ["room:nope", "sockgate:nope"]) assertRefused(await ask(s, name, PAYLOAD_SECRET), "UNKNOWN_EVENT");

    const calls = (labels) => metric(gw, "sockgate_app_calls_total", labels);
    assert.equal(await calls({ route: "*", outcome: "OK" }), 4, "three acks and an app error are OK calls");
    assert.equal(await calls({ route: "fail:*", outcome: "BACKEND_UNAVAILABLE" }), 2);
    assert.equal(await calls({ route: "*", outcome: "BACKEND_ERROR" }), 1);
    assert.equal(await calls({ route: "fail:*", outcome: "OK" }), 0);
    assert.equal(await calls({}), 7, "every call counted once");
    assert.equal(await metric(gw, "sockgate_app_calls_refused_total", { code: "UNKNOWN_EVENT" }), 2);

    await eventually(() => gw.logs.filter((l) => l.includes('"sockgate::app"') && l.includes('"WARN"')).length >= 3, 10000, "the WARN lines");
    await sleep(200);
    const warns = gw.logs.map((l) => JSON.parse(l)).filter((e) => e.target === "sockgate::app" && e.level === "WARN");
    assert.deepEqual(
      warns.map((e) => [e.route, e.code]),
      [
        ["fail:*", "BACKEND_UNAVAILABLE"],
        ["fail:*", "BACKEND_UNAVAILABLE"],
        ["*", "BACKEND_ERROR"],
      ],
      JSON.stringify(warns),
    );
    for (const line of gw.logs) {
      for (const secret of [PAYLOAD_SECRET, REPLY_SECRET, EVENTS_SECRET]) {
        assert.ok(!line.includes(secret), `a log line holds ${secret}: ${line.slice(0, 300)}`);
      }
    }

    // The dashboard's figures (/api/stats): 7 calls, 3 of them failed (the
    // app's own error is an answer); the UNKNOWN_EVENTs were no calls.
    const stats = (await api(gw, "GET", "/api/stats")).body;
    assert.equal(stats.app.calls, 7);
    assert.equal(stats.app.errors, 3);
    assert.equal(stats.app.errorRate, 0.4286);
    assert.ok(stats.app.latencyMs.p99 >= stats.app.latencyMs.p50, JSON.stringify(stats.app));
  });
});

describe("hostile backends and clients", () => {
  const MAX_MESSAGE = 20000;
  let backend;
  let gw;
  let bystander;
  let s;
  before(async () => {
    backend = await startBackend();
    gw = await startGateway({
      SOCKGATE_EVENTS_URL: `${backend.url}/events`,
      SOCKGATE_EVENTS_SECRET: EVENTS_SECRET,
      SOCKGATE_MAX_MESSAGE: String(MAX_MESSAGE),
      SOCKGATE_MAX_PAYLOAD: "8000",
      SOCKGATE_API_KEY: API_KEY,
    });
    bystander = await gw.connect({ auth: { token: sign({ sub: "bystander" }) } });
    s = await gw.connect({ auth: { token: sign({ sub: "victim" }) } });
  });
  after(async () => {
    await gw.stop();
    await backend.stop();
  });

  /** Streams `{"ack":"xxx…` up to `total` bytes with backpressure, never buffering it; stops when the reader goes. */
  function streamer(total, headers = {}) {
    const state = { sent: 0, done: false };
    state.handler = async (call, res) => {
      let closed = false;
      res.once("close", () => (closed = true));
      res.writeHead(200, { "content-type": "application/json", ...headers });
      res.write('{"ack":"');
      const chunk = Buffer.alloc(64 * 1024, "x");
      while (!closed && state.sent < total) {
        state.sent += chunk.length;
        if (!res.write(chunk)) {
          await new Promise((resolve) => {
            const done = () => {
              res.off("drain", done);
              res.off("close", done);
              resolve();
            };
            res.on("drain", done);
            res.on("close", done);
          });
        }
      }
      state.done = true;
      if (!closed) res.end('"}');
    };
    return state;
  }

  test("a reply of SOCKGATE_MAX_MESSAGE bytes is read; one byte more is BACKEND_ERROR", async () => {
    const sized = (n) => JSON.stringify({ ack: "y".repeat(n - '{"ack":""}'.length) });
    assert.equal(sized(MAX_MESSAGE).length, MAX_MESSAGE);
    backend.on("size:max", (call, res) => res.type("application/json").send(sized(MAX_MESSAGE)));
    backend.on("size:over", (call, res) => res.type("application/json").send(sized(MAX_MESSAGE + 1)));
    assert.equal((await ask(s, "size:max")).length, MAX_MESSAGE - 10);
    assertRefused(await ask(s, "size:over"), "BACKEND_ERROR");
    await stillServing(bystander, "an oversized reply");
  });

  test("a 1 GB reply is cut off at the cap: BACKEND_ERROR (chunked, and with its length declared)", async () => {
    for (const headers of [{}, { "content-length": String(1024 ** 3) }]) {
      const stream = streamer(1024 ** 3, headers);
      const event = `gigabyte:${Object.keys(headers).length}`;
      backend.on(event, stream.handler);
      assertRefused(await ask(s, event), "BACKEND_ERROR", JSON.stringify(headers));
      await eventually(() => stream.done, 20000, "the gateway to stop reading");
      assert.ok(stream.sent < 64 * 1024 ** 2, `the gateway read on: ${stream.sent} bytes written before it hung up`);
      assert.ok(s.connected);
      await stillServing(bystander, `a 1 GB reply ${JSON.stringify(headers)}`);
    }
  });

  test("a reply body that never ends is BACKEND_TIMEOUT (SOCKGATE_EVENTS_TIMEOUT_MS, 5000 by default)", async () => {
    let closed = false;
    backend.on("endless:body", async (call, res) => {
      res.once("close", () => (closed = true));
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"ack":');
      while (!closed) {
        res.write(" ");
        await sleep(100);
      }
    });
    assertRefused(await ask(s, "endless:body"), "BACKEND_TIMEOUT");
    await eventually(() => closed, 10000, "the gateway to hang up");
    assert.ok(s.connected);
    await stillServing(bystander, "a never-ending reply");
  });

  test("a reply body that arrives slowly, within the timeout, is read whole", async () => {
    backend.on("slow:body", async (call, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      for (const piece of ['{"a', 'ck":', ' "sl', "ow", ' and ', 'steady"', "}"]) {
        res.write(piece);
        await sleep(80);
      }
      res.end();
    });
    assert.equal(await ask(s, "slow:body"), "slow and steady");
    await stillServing(bystander, "a slow reply");
  });

  test("gzip replies are not decompressed: BACKEND_ERROR, for a small one and for a bomb", async () => {
    const small = gzipSync('{"ack":"zipped"}');
    // 16 MB of JSON in under SOCKGATE_MAX_MESSAGE compressed bytes.
    const bomb = gzipSync(Buffer.concat([Buffer.from('{"ack":"'), Buffer.alloc(16 * 1024 ** 2, "a"), Buffer.from('"}')]), { level: 9 });
    assert.ok(bomb.length < MAX_MESSAGE, `the bomb fits under the cap compressed: ${bomb.length}`);
    for (const [name, body] of [["zip:small", small], ["zip:bomb", bomb]]) {
      backend.on(name, (call, res) => {
        res.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip", "content-length": body.length });
        res.end(body);
      });
      assertRefused(await ask(s, name), "BACKEND_ERROR", name);
      assert.ok(s.connected);
      await stillServing(bystander, name);
    }
  });

  test("replies that are not replies: not JSON, invalid UTF-8, 1000 nested arrays, not an object: BACKEND_ERROR", async () => {
    const bodies = [
      ["text", Buffer.from("hello, I am not JSON")],
      ["html", Buffer.from("<html><body>login</body></html>")],
      ["empty", Buffer.alloc(0)],
      ["utf8", Buffer.concat([Buffer.from('{"ack":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}')])],
      ["deep", Buffer.from('{"ack":' + "[".repeat(1000) + "]".repeat(1000) + "}")],
      ["deep-objects", Buffer.from('{"ack":' + '{"a":'.repeat(1000) + "1" + "}".repeat(1000) + "}")],
      ["array", Buffer.from("[1,2]")],
      ["string", Buffer.from('"ack"')],
      ["null", Buffer.from("null")],
      ["truncated", Buffer.from('{"ack":"cut')],
      ["trailing", Buffer.from('{"ack":1} {"ack":2}')],
    ];
    for (const [name, body] of bodies) {
      backend.on(`bad:${name}`, (call, res) => {
        res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
        res.end(body);
      });
      assertRefused(await ask(s, `bad:${name}`), "BACKEND_ERROR", name);
    }
    assert.ok(s.connected);
    await stillServing(bystander, "replies that are not replies");
  });

  test("arguments larger than SOCKGATE_MAX_MESSAGE close that connection only; the backend never sees them", async () => {
    for (const transports of [["websocket"], ["polling"]]) {
      const big = await gw.connect({ auth: { token: sign({ sub: "big-args" }) }, transports });
      const gone = new Promise((r) => big.once("disconnect", r));
      big.emit("huge:args", "x".repeat(MAX_MESSAGE * 2), () => {});
      await gone;
      assert.equal(backend.callsOf("huge:args").length, 0, transports[0]);
      await stillServing(bystander, `huge arguments over ${transports[0]}`);
      assert.equal((await ask(s, "huge:after")).event, "huge:after");
    }
  });
});

describe("the event budget", () => {
  let backend;
  let gw;
  before(async () => {
    backend = await startBackend();
    gw = await startGateway({
      SOCKGATE_EVENTS_URL: `${backend.url}/events`,
      SOCKGATE_EVENTS_SECRET: EVENTS_SECRET,
      SOCKGATE_EVENT_RATE: "1",
      SOCKGATE_EVENT_BURST: "5",
    });
  });
  after(async () => {
    await gw.stop();
    await backend.stop();
  });
  const fresh = (sub) => gw.connect({ auth: { token: sign({ sub }) }, transports: ["websocket"] });

  test("forwarded events spend it: over it, RATE_LIMITED and the backend is not called", async () => {
    const s = await fresh("budget-a");
    const acks = await Promise.all(Array.from({ length: 10 }, (_, i) => ask(s, "budget:n", i)));
    const passed = acks.filter((a) => a?.event === "budget:n");
    const limited = acks.filter((a) => a?.code === "RATE_LIMITED");
    assert.equal(passed.length + limited.length, 10, JSON.stringify(acks));
    assert.ok(passed.length >= 5, `the burst of 5 goes through: ${JSON.stringify(acks)}`);
    assert.ok(limited.length >= 1, `over the budget: ${JSON.stringify(acks)}`);
    assert.equal(backend.callsOf("budget:n").length, passed.length, "a refused event never reaches the backend");
  });

  test("every event spends it, known or not: reserved names and echoes, then forwarded events", async () => {
    const s = await fresh("budget-b");
    const first = await Promise.all(Array.from({ length: 5 }, () => ask(s, "room:nope")));
    first.forEach((a) => assert.ok(a.code === "UNKNOWN_EVENT" || a.code === "RATE_LIMITED", JSON.stringify(a)));
    const then = await Promise.all(Array.from({ length: 3 }, (_, i) => ask(s, "budget:after-unknown", i)));
    assert.ok(then.some((a) => a?.code === "RATE_LIMITED"), `unknown events spent the budget: ${JSON.stringify(then)}`);
    assert.equal(backend.callsOf("budget:after-unknown").length, then.filter((a) => a?.event).length);

    const t = await fresh("budget-c");
    const echoes = await Promise.all(Array.from({ length: 5 }, (_, i) => ask(t, "echo", i)));
    assert.ok(echoes.filter((a) => typeof a === "number").length >= 1);
    const after = await Promise.all(Array.from({ length: 3 }, (_, i) => ask(t, "budget:after-echo", i)));
    assert.ok(after.some((a) => a?.code === "RATE_LIMITED"), `echoes spent the budget: ${JSON.stringify(after)}`);
    assert.equal(backend.callsOf("budget:after-echo").length, after.filter((a) => a?.event).length);
  });
});

describe("no backend", () => {
  let gw;
  before(async () => {
    gw = await startGateway({ SOCKGATE_EVENT_RATE: "1", SOCKGATE_EVENT_BURST: "10", SOCKGATE_API_KEY: API_KEY });
  });
  after(() => gw.stop());

  test("events sockgate does not handle are UNKNOWN_EVENT with a message; the socket stays", async () => {
    const s = await gw.connect({ auth: { token: sign({ sub: "lonely" }) } });
    for (const name of ["chat:message", "hello", "auth:nope"]) {
      const ack = await ask(s, name, { text: "hi" });
      assert.deepEqual(Object.keys(ack).sort(), ["code", "message", "ok"], JSON.stringify(ack));
      assertRefused(ack, "UNKNOWN_EVENT", name);
    }
    s.emit("no-ack-wanted", 1);
    assert.equal(await ask(s, "echo", "still"), "still");
    assert.ok((await metric(gw, "sockgate_app_calls_refused_total", { code: "UNKNOWN_EVENT" })) >= 3);
  });

  test("10,000 unknown events: the budget refuses them RATE_LIMITED while other sockets are served", async () => {
    const flood = await gw.connect({ auth: { token: sign({ sub: "flooder" }) }, transports: ["websocket"] });
    const bystander = await gw.connect({ auth: { token: sign({ sub: "calm" }) } });
    let end;
    flood.on("session:end", (e) => (end = e));
    const acks = [];
    const started = Date.now();
    for (let i = 0; i < 10000; i++) flood.emit(`nope:${i}`, i, (a) => acks.push(a));
    assert.equal(await ask(bystander, "echo", "during"), "during", "served during the flood");
    await eventually(() => acks.length === 10000 || !flood.connected, 30000, "the flood to be answered or cut off");
    const seconds = Math.ceil((Date.now() - started) / 1000);
    const unknown = acks.filter((a) => a?.code === "UNKNOWN_EVENT").length;
    const limited = acks.filter((a) => a?.code === "RATE_LIMITED").length;
    assert.equal(unknown + limited, acks.length, `only these two codes: ${JSON.stringify(acks.find((a) => !["UNKNOWN_EVENT", "RATE_LIMITED"].includes(a?.code)))}`);
    assert.ok(limited >= 1, "the budget refused some");
    assert.ok(unknown >= 1 && unknown <= 10 + seconds + 1, `${unknown} events got past a budget of 10 + 1/s in ${seconds} s`);
    if (!flood.connected) assert.equal(end?.code, "RATE_LIMITED", "a flooder is ended for its flood only");
    await stillServing(bystander, "10,000 unknown events");
  });
});
