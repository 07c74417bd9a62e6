// @sockgate/server/nest end to end: a real NestJS app (test/nest-app/app.ts,
// compiled here with tsc) whose @WebSocketGateway() runs behind the real
// sockgate binary through SockgateAdapter, and the official socket.io-client.
// Needs `npm run build -w @sockgate/server` first (the app imports dist/).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import { io } from "socket.io-client";
import { collect, eventually } from "./support/gateway.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, "..");
const repo = join(pkg, "..", "..");
const JWT_SECRET = "nest-jwt-secret-nest-jwt-secret-nest!";
const EVENTS_SECRET = "nest-events-secret-nest-events-secret";
const API_KEY = "nest-api-key-nest-api-key";
const PATH = "/sockgate/events";

/** Emits and waits for the ack, failing after a generous 20 s instead of hanging. */
const ask = (socket, event, ...args) => socket.timeout(20000).emitWithAck(event, ...args);

/** An HS256 JWT for `sub`, signed with JWT_SECRET. */
function token(sub) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${part({ alg: "HS256", typ: "JWT" })}.${part({ sub, iat: now, exp: now + 600 })}`;
  return `${unsigned}.${createHmac("sha256", JWT_SECRET).update(unsigned).digest("base64url")}`;
}

/** The `Sockgate-Signature` header for `body`, at `t`. */
function signature(body, secret = EVENTS_SECRET, t = Math.floor(Date.now() / 1000)) {
  return `t=${t},v1=${createHmac("sha256", secret).update(`${t}.${body}`).digest("hex")}`;
}

/** Resolves with the payload of the next `event` on `socket`. */
function next(socket, event, timeoutMs = 20000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    socket.once(event, (payload) => {
      clearTimeout(timer);
      resolve(payload);
    });
  });
}

/** The sockgate binary: SOCKGATE_BIN, else the repo's debug build; waits once if it is being rebuilt. */
async function binary() {
  const bin = process.env.SOCKGATE_BIN ?? join(repo, "target", "debug", "sockgate");
  if (!existsSync(bin)) await new Promise((r) => setTimeout(r, 5000));
  assert.ok(existsSync(bin), `no sockgate binary at ${bin} (set SOCKGATE_BIN)`);
  return bin;
}

let loaded;

/** Compiles test/nest-app with tsc (decorators and their metadata) and imports it, once. */
function loadApp() {
  loaded ??= compileApp();
  return loaded;
}

async function compileApp() {
  assert.ok(existsSync(join(pkg, "dist", "nest.js")), "build first: npm run build -w @sockgate/server");
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  execFileSync(process.execPath, [tsc, "-p", join(here, "nest-app", "tsconfig.json")], { stdio: "inherit" });
  return import(pathToFileURL(join(here, "nest-app", ".build", "app.js")).href);
}

/** Starts `sockgate serve` on a free port; resolves once it is listening. */
async function startGateway(env) {
  const child = spawn(await binary(), ["serve"], {
    cwd: repo,
    env: {
      PATH: process.env.PATH,
      SOCKGATE_LISTEN: "127.0.0.1:0",
      SOCKGATE_LOG_FORMAT: "json",
      SOCKGATE_SHUTDOWN_TIMEOUT: "2",
      SOCKGATE_DATA_DIR: mkdtempSync(join(tmpdir(), "sockgate-nest-")),
      JWT_SECRET,
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const logs = [];
  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("sockgate did not start:\n" + logs.join("\n"))), 20000);
    createInterface({ input: child.stderr }).on("line", (line) => {
      logs.push(line);
      try {
        const entry = JSON.parse(line);
        if (entry.message === "sockgate listening") {
          clearTimeout(timer);
          resolve(entry.addr);
        }
      } catch {}
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`sockgate exited with ${code}:\n${logs.join("\n")}`));
    });
  });
  return { url: `http://${addr}`, child, logs };
}

describe("SockgateAdapter: a NestJS gateway behind sockgate", () => {
  let nest;
  let app;
  let gateway;
  const sockets = [];

  /** A connected socket.io-client for `user`. */
  async function connect(user) {
    const socket = io(gateway.url, { auth: { token: token(user) }, reconnection: false, forceNew: true, timeout: 20000 });
    sockets.push(socket);
    await new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
    });
    return socket;
  }

  /** A call POSTed straight to the app's route, signed with `sign(body)`. */
  async function post(event, args, sign = (body) => signature(body)) {
    const body = JSON.stringify({
      id: "direct-1", event, args, userId: "alice", sessionId: "direct", claims: { sub: "alice" },
      rooms: ["user:alice"], transport: "websocket", remoteAddr: "127.0.0.1", ts: Date.now(),
    });
    const res = await fetch(app.url + PATH, { method: "POST", headers: { "content-type": "application/json", "sockgate-signature": sign(body) }, body });
    return { status: res.status, body: await res.json().catch(() => null) };
  }

  before(async () => {
    nest = await loadApp();
    app = await nest.startApp({
      secret: EVENTS_SECRET,
      path: PATH,
      // Outside a call (the HTTP route /announce), server.to().emit publishes through sockgate's API.
      publish: async (publish) => {
        const res = await fetch(`${gateway.url}/api/publish`, {
          method: "POST",
          headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
          body: JSON.stringify(publish),
        });
        if (!res.ok) throw new Error(`publish: ${res.status} ${await res.text()}`);
      },
    });
    gateway = await startGateway({
      SOCKGATE_EVENTS_URL: app.url + PATH,
      SOCKGATE_EVENTS_SECRET: EVENTS_SECRET,
      SOCKGATE_API_KEY: API_KEY,
    });
  });

  after(async () => {
    for (const s of sockets) s.close();
    if (gateway && gateway.child.exitCode === null) {
      const exited = new Promise((r) => gateway.child.once("exit", r));
      gateway.child.kill("SIGTERM");
      await exited;
    }
    await app?.close();
  });

  test("the handler gets a Socket.IO-like client: the session id, the verified identity, the rooms", async () => {
    const alice = await connect("alice");
    const { sessionId } = await ask(alice, "auth:whoami");
    const ack = await ask(alice, "whoami");
    assert.equal(ack.id, sessionId);
    assert.equal(ack.user.userId, "alice");
    assert.equal(ack.user.claims.sub, "alice");
    assert.deepEqual(ack.auth, ack.user);
    assert.deepEqual(ack.handshakeUser, ack.user);
    assert.equal(ack.rooms[0], "user:alice");
    assert.equal(ack.namespace, "/", "client.nsp.name of a socket of the main namespace");
    assert.equal(nest.stats.inits, 1, "afterInit ran once, with the adapter's server");
  });

  test("a guard reading client.handshake.auth and client.data.user refuses mallory: FORBIDDEN, the handler never runs", async () => {
    const mallory = await connect("mallory");
    const before = nest.stats.handled.whoami ?? 0;
    const ack = await ask(mallory, "whoami");
    assert.equal(ack.ok, false);
    assert.equal(ack.code, "FORBIDDEN");
    assert.equal(ack.message, "Forbidden resource");
    assert.equal(nest.stats.handled.whoami ?? 0, before);
    // The same guard lets alice through.
    const alice = await connect("alice");
    assert.equal((await ask(alice, "whoami")).user.userId, "alice");
    assert.equal(nest.stats.handled.whoami, before + 1);
  });

  test("a pipe refusing the payload with WsException({ code }) is the ack's error; the handler never runs", async () => {
    const alice = await connect("alice");
    const before = nest.stats.handled["chat:send"] ?? 0;
    for (const bad of [{}, { room: "chat:lobby", text: "" }, "not an object"]) {
      const ack = await ask(alice, "chat:send", bad);
      assert.deepEqual(ack, { ok: false, code: "INVALID_PAYLOAD", message: "room and 1 to 200 characters of text are required" });
    }
    assert.equal(nest.stats.handled["chat:send"] ?? 0, before);
  });

  test("a WsException's code is kept when it is an app code; anything else is BACKEND_ERROR with its message", async () => {
    const alice = await connect("alice");
    assert.deepEqual(await ask(alice, "chat:join", "chat:full"), { ok: false, code: "ROOM_FULL", message: "that room is full" });
    assert.deepEqual(await ask(alice, "fail:plain"), { ok: false, code: "BACKEND_ERROR", message: "a plain message" });
    assert.deepEqual(await ask(alice, "fail:lowercase"), { ok: false, code: "BACKEND_ERROR", message: "code is not an app code" });
    // Not a WsException: Nest's filter says no more than this, and so does the ack.
    assert.deepEqual(await ask(alice, "fail:crash"), { ok: false, code: "BACKEND_ERROR", message: "Internal server error" });
    // The socket is still served.
    assert.equal((await ask(alice, "whoami")).user.userId, "alice");
  });

  test("an event no gateway handles is UNKNOWN_EVENT", async () => {
    const alice = await connect("alice");
    const ack = await ask(alice, "no:such-event", 1);
    assert.equal(ack.ok, false);
    assert.equal(ack.code, "UNKNOWN_EVENT");
  });

  test("client.join() joins the room, client.emit() reaches the socket, server.to(room).emit() reaches the room; the interceptor shapes the ack", async () => {
    const alice = await connect("alice");
    const bob = await connect("bob");
    const joined = next(alice, "chat:joined");
    const ackAlice = await ask(alice, "chat:join", "chat:lobby");
    assert.deepEqual(ackAlice, { joined: "chat:lobby", rooms: ["user:alice", "chat:lobby"] });
    assert.deepEqual(await joined, { room: "chat:lobby" });
    await ask(bob, "chat:join", "chat:lobby");
    // The join is in effect for sockgate: the next call lists the room.
    assert.ok((await ask(alice, "whoami")).rooms.includes("chat:lobby"));

    const atBob = next(bob, "chat:message");
    const atAlice = next(alice, "chat:message");
    const ack = await ask(alice, "chat:send", { room: "chat:lobby", text: "  hi bob  " });
    assert.deepEqual(ack, { sent: true, via: "interceptor" });
    assert.deepEqual(await atBob, { from: "alice", text: "hi bob" });
    // server.to(room) is io.to(room): alice gets it too.
    assert.deepEqual(await atAlice, { from: "alice", text: "hi bob" });

    // client.to(room) and client.broadcast.to(room) leave the sender out.
    const typingAtBob = collect(bob, "chat:typing");
    const typingAtAlice = collect(alice, "chat:typing");
    assert.deepEqual(await ask(alice, "chat:typing", "chat:lobby"), { ok: true });
    await eventually(() => typingAtBob.length === 2, 10000, "bob hearing alice type");
    await ask(alice, "whoami");
    assert.deepEqual(typingAtBob, [{ from: "alice" }, { from: "alice", again: true }]);
    assert.deepEqual(typingAtAlice, [], "the sender is left out");

    assert.deepEqual(await ask(alice, "chat:leave", "chat:lobby"), { left: "chat:lobby" });
    assert.ok(!(await ask(alice, "whoami")).rooms.includes("chat:lobby"));
  });

  test("server.to(room).emit() outside a call publishes through the publish option", async () => {
    const bob = await connect("bob");
    await ask(bob, "chat:join", "news:1");
    const heard = next(bob, "announcement");
    const res = await fetch(`${app.url}/announce/news:1`, { method: "POST" });
    assert.equal(res.status, 204);
    assert.deepEqual(await heard, { room: "news:1" });
  });

  test("results as on Socket.IO: an Observable's WsResponse is emitted, a Promise awaited, @Ack() called later", async () => {
    const alice = await connect("alice");
    const tick = next(alice, "tick");
    assert.deepEqual(await ask(alice, "stream"), { value: "acked" });
    assert.equal(await tick, 1);
    assert.deepEqual(await ask(alice, "async", 21), { doubled: 42 });
    assert.deepEqual(await ask(alice, "manual", "x"), { manual: "x" });
  });

  test("arguments as on Socket.IO: one is the payload, several an array, a binary one a Buffer", async () => {
    const alice = await connect("alice");
    assert.deepEqual(await ask(alice, "args", { a: 1 }), { data: { a: 1 }, binary: null });
    assert.deepEqual((await ask(alice, "args", 1, "two", [3])).data, [1, "two", [3]]);
    assert.equal((await ask(alice, "args", Buffer.from([0xca, 0xfe]))).binary, "cafe");
  });

  test("client.disconnect() ends the session: session:end ENDED_BY_APP after the ack", async () => {
    const alice = await connect("alice");
    const end = next(alice, "session:end");
    const gone = next(alice, "disconnect");
    assert.equal(await ask(alice, "bye"), "bye");
    const payload = await end;
    assert.equal(payload.code, "ENDED_BY_APP");
    assert.equal(payload.message, "io server disconnect");
    assert.equal(payload.reconnect, false);
    await gone;
  });

  test("handleConnection runs for each call the gateway handles; handleDisconnect never runs", async () => {
    const alice = await connect("alice");
    const before = nest.stats.connections;
    for (let i = 0; i < 3; i++) await ask(alice, "whoami");
    assert.equal(nest.stats.connections, before + 3);
    // An event no gateway handles connects no gateway.
    await ask(alice, "no:such-event");
    assert.equal(nest.stats.connections, before + 3);
    alice.close();
    await ask(await connect("bob"), "whoami");
    assert.equal(nest.stats.disconnects, 0);
  });

  test("a forged or stale signature is 401 and runs nothing; a good one is served", async () => {
    const before = { ...nest.stats.handled };
    const connections = nest.stats.connections;
    const forged = await post("chat:join", ["chat:forged"], (body) => signature(body, "not-the-secret"));
    assert.equal(forged.status, 401);
    const stale = await post("chat:join", ["chat:forged"], (body) => signature(body, EVENTS_SECRET, Math.floor(Date.now() / 1000) - 3600));
    assert.equal(stale.status, 401);
    const missing = await post("chat:join", ["chat:forged"], () => "");
    assert.equal(missing.status, 401);
    // A body changed after signing.
    const tampered = await post("chat:join", ["chat:forged"], (body) => signature(body.replace("alice", "admin")));
    assert.equal(tampered.status, 401);
    assert.deepEqual(nest.stats.handled, before);
    assert.equal(nest.stats.connections, connections);

    const good = await post("chat:join", ["chat:direct"]);
    assert.equal(good.status, 200);
    assert.deepEqual(good.body, {
      ack: { joined: "chat:direct", rooms: ["user:alice", "chat:direct"] },
      join: ["chat:direct"],
      emit: [{ event: "chat:joined", data: { room: "chat:direct" } }],
    });
  });
});

describe("SockgateAdapter on its own (no sockgate)", () => {
  test("server.to(room).emit() outside a call throws (the route answers 500)", async () => {
    const nest = await loadApp();
    const app = await nest.startApp({ secret: EVENTS_SECRET });
    try {
      const res = await fetch(`${app.url}/announce/news:1`, { method: "POST" });
      assert.equal(res.status, 500);
    } finally {
      await app.close();
    }
  });

  test("a result that does not complete within timeoutMs is answered with its first value, or BACKEND_TIMEOUT", async () => {
    const nest = await loadApp();
    const app = await nest.startApp({ secret: EVENTS_SECRET, timeoutMs: 300 });
    try {
      const call = async (event) => {
        const body = JSON.stringify({
          id: "t-1", event, args: [], userId: "alice", sessionId: "s", claims: {}, rooms: ["user:alice"],
          transport: "polling", remoteAddr: null, ts: Date.now(),
        });
        const res = await fetch(app.url + PATH, { method: "POST", headers: { "sockgate-signature": signature(body) }, body });
        assert.equal(res.status, 200);
        return res.json();
      };
      assert.deepEqual(await call("hang"), { error: { code: "BACKEND_TIMEOUT", message: "no answer within 300 ms" } });
      assert.deepEqual(await call("ticker"), { ack: { n: 0 } });
    } finally {
      await app.close();
    }
  });

  test("the secret is required", async () => {
    const { SockgateAdapter } = await import("@sockgate/server/nest");
    const app = { getHttpAdapter: () => ({ post() {}, reply() {} }) };
    assert.throws(() => new SockgateAdapter(app, { secret: "" }), /secret/);
  });
});
