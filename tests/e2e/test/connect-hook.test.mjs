// The connect hook (SOCKGATE_CONNECT_URL): a real Express app with
// express-session stands for "any login system". It logs users in with a
// cookie, and its POST /sockgate/connect route tells the real binary who a
// handshake is, from that cookie or an opaque API key. The official
// socket.io-client and Chromium connect; nothing is mocked.
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import { join } from "node:path";
import express from "express";
import session from "express-session";
import { encode as encodeNextAuth } from "next-auth/jwt";
import { io } from "socket.io-client";
import {
  api,
  API_KEY,
  ended,
  eventually,
  freePort,
  launchChromium,
  next,
  now,
  refusal,
  sign,
  startGateway,
} from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// The browser build the package ships (not in its "exports", so by path).
const clientBundle = join(import.meta.dirname, "..", "node_modules", "socket.io-client", "dist", "socket.io.min.js");

/** What the gateway signs its calls to the hook with, and the app checks. */
const HOOK_SECRET = "connect-hook-secret-connect-hook-secret!";
const OTHER_SECRET = "another-gateway-secret-another-gateway!!";
const NEXTAUTH_SECRET = "next-auth-secret-next-auth-secret-0123456789";
/** The app's API keys: opaque strings sockgate cannot verify itself. */
const API_KEYS = { "opaque-key-1": "keyholder", "opaque-key-2": "robot" };
/** An app code: what sockgate passes through. */
const CODE = /^[A-Z][A-Z0-9_]{0,63}: /;

// ---------------------------------------------------------------------------
// The app: Express, express-session (MemoryStore), and the hook.

/**
 * Starts the Express app on 127.0.0.1:`port` (a free one when omitted).
 * `app.hook(body, req, res)` answers the hook: a returned value is sent as
 * JSON; a test that wants another response writes `res` itself (or never
 * does) and returns undefined. Every call lands in `app.calls`.
 */
async function startApp(port) {
  port ??= await freePort();
  const state = {
    port,
    origin: `http://localhost:${port}`,
    url: `http://127.0.0.1:${port}`,
    hookUrl: `http://127.0.0.1:${port}/sockgate/connect`,
    secret: HOOK_SECRET,
    calls: [],
    hook: defaultHook,
  };
  const sessions = session({
    secret: "express-session-secret-of-the-app",
    resave: false,
    saveUninitialized: false,
    store: new session.MemoryStore(),
  });
  const app = express();

  app.post("/login", express.json(), sessions, (req, res) => {
    req.session.userId = req.body.user;
    req.session.team = req.body.team ?? "none";
    req.session.loginAt = Date.now();
    res.json({ userId: req.session.userId, loginAt: req.session.loginAt });
  });
  app.post("/logout", sessions, (req, res) => req.session.destroy(() => res.json({ ok: true })));
  app.get("/", (req, res) => res.type("html").send(PAGE));
  app.get("/socket.io.min.js", (req, res) => res.sendFile(clientBundle));

  // The hook. The body is read raw: the signature covers its exact bytes.
  app.post("/sockgate/connect", express.raw({ type: "application/json" }), (req, res, nextHandler) => {
    const raw = req.body.toString("utf8");
    const signed = verify(state.secret, req.get("sockgate-signature"), raw);
    const call = { raw, signature: req.get("sockgate-signature"), signed, contentType: req.get("content-type") };
    state.calls.push(call);
    res.locals.call = call;
    if (!signed) return res.status(401).json({ error: "bad signature" });
    call.body = JSON.parse(raw);
    // The gateway hands over the browser's cookie in the body; the app's own
    // session middleware reads req.headers.cookie, so it is put there (only
    // once the signature proved the body is the gateway's).
    if (typeof call.body.headers?.cookie === "string") req.headers.cookie = call.body.headers.cookie;
    else delete req.headers.cookie;
    nextHandler();
  }, sessions, async (req, res) => {
    const answer = await state.hook(res.locals.call.body, req, res);
    if (answer !== undefined) res.json(answer);
  });

  const server = await new Promise((resolve) => {
    const s = app.listen(port, "127.0.0.1", () => resolve(s));
  });
  state.server = server;
  state.stop = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  /** Hook calls for handshakes (not renewals). */
  state.handshakes = () => state.calls.filter((c) => c.body && !c.body.renew);
  /** Renewal calls. */
  state.renewals = () => state.calls.filter((c) => c.body?.renew);
  return state;
}

/** The app's hook: API keys, then the express-session login, else a refusal. */
function defaultHook(body, req) {
  const key = body.auth?.token ?? body.headers.authorization?.replace(/^Bearer /, "");
  if (key !== undefined) {
    const user = API_KEYS[key];
    if (!user) return { error: { code: "BAD_API_KEY", message: "unknown API key" } };
    return { userId: user, claims: { via: "api-key" } };
  }
  const { userId, team, loginAt } = req.session;
  if (!userId) return { error: { code: "NOT_LOGGED_IN", message: "log in first" } };
  return {
    userId,
    expiresAt: now() + 3600,
    claims: { via: "session", team, loginAt, rooms: [{ match: "team:*", allow: ["join", "publish", "presence"] }] },
    rooms: [`team:${team}`],
  };
}

/** Checks `t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, and that t is recent. */
function verify(secret, header, raw) {
  const parts = Object.fromEntries((header ?? "").split(",").map((p) => p.split("=")));
  if (!/^\d+$/.test(parts.t ?? "") || !/^[0-9a-f]{64}$/.test(parts.v1 ?? "")) return false;
  if (Math.abs(now() - Number(parts.t)) > 300) return false;
  const expected = createHmac("sha256", secret).update(`${parts.t}.${raw}`).digest();
  return timingSafeEqual(expected, Buffer.from(parts.v1, "hex"));
}

/** The browser page: logs in through the app (unless ?login=0), connects, shows who it is. */
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>connect hook</title>
<pre id="me"></pre><pre id="error"></pre><pre id="cookies"></pre>
<script src="/socket.io.min.js"></script>
<script>
  const params = new URLSearchParams(location.search);
  (async () => {
    if (params.get("login") !== "0") {
      await fetch("/login", { method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ user: params.get("user"), team: "browser" }) });
    }
    document.getElementById("cookies").textContent = JSON.stringify(document.cookie);
    const socket = io(params.get("gw"), { withCredentials: true, reconnection: false });
    window.socket = socket;
    socket.on("connect", async () => {
      const me = await socket.emitWithAck("auth:whoami");
      document.getElementById("me").textContent = JSON.stringify(me);
    });
    socket.on("connect_error", (err) => {
      document.getElementById("error").textContent = JSON.stringify({ message: err.message, data: err.data ?? null });
    });
  })();
</script>`;

// ---------------------------------------------------------------------------
// Client side.

/** Logs in through the app; resolves { cookie: "connect.sid=…", loginAt }. */
async function logIn(app, user, team) {
  const res = await fetch(app.url + "/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user, team }),
  });
  assert.equal(res.status, 200);
  const setCookie = res.headers.getSetCookie();
  assert.equal(setCookie.length, 1, "express-session sets one cookie");
  assert.match(setCookie[0], /HttpOnly/i);
  return { cookie: setCookie[0].split(";")[0], loginAt: (await res.json()).loginAt };
}

async function logOut(app, cookie) {
  const res = await fetch(app.url + "/logout", { method: "POST", headers: { cookie } });
  assert.equal(res.status, 200);
}

/** A WebSocket handshake carrying `cookie` from `origin`, as a browser page would. */
const withCookie = (cookie, origin, extra = {}) => ({
  transports: ["websocket"],
  extraHeaders: { cookie, ...(origin ? { origin } : {}), ...extra },
});

/** Records what a (reconnecting) client goes through. */
function watch(socket) {
  const seen = { errors: [], disconnects: [], closes: [] };
  socket.on("connect_error", (err) => seen.errors.push(err));
  socket.on("disconnect", (reason) => seen.disconnects.push(reason));
  // Who closed the underlying connection: the client ("forced close") or the gateway.
  socket.io.on("close", (reason) => seen.closes.push(reason));
  return seen;
}

/**
 * One handshake, no reconnection: resolves with what happened first
 * (connected, a connect_error, or the transport closing).
 */
function attempt(gw, opts) {
  const socket = io(gw.url, { reconnection: false, forceNew: true, ...opts });
  const seen = watch(socket);
  return new Promise((resolve) => {
    socket.once("connect", () => resolve({ socket, seen, connected: true }));
    socket.once("connect_error", () => resolve({ socket, seen }));
    socket.once("disconnect", () => resolve({ socket, seen }));
  });
}

/** A retryable refusal: the transport closed; no sockgate or app code reached the client. */
function assertRetryable(seen, what) {
  for (const err of seen.errors) {
    assert.equal(err.data, undefined, `${what}: connect_error carries data ${JSON.stringify(err.data)}`);
    assert.doesNotMatch(err.message, CODE, `${what}: a coded refusal`);
  }
}

const whoami = (socket) => socket.emitWithAck("auth:whoami");
/** The user ids in `room`, as room:members tells `socket`. */
const members = async (socket, room) => (await socket.emitWithAck("room:members", { room })).members;

// ---------------------------------------------------------------------------

let app;
before(async () => (app = await startApp()));
after(() => app.stop());
beforeEach(() => {
  app.hook = defaultHook;
});

/** A gateway whose only authentication is the hook (no JWT key at all). */
const hookOnly = (env = {}) =>
  startGateway({
    JWT_SECRET: undefined,
    SOCKGATE_CONNECT_URL: app.hookUrl,
    SOCKGATE_CONNECT_SECRET: HOOK_SECRET,
    SOCKGATE_ALLOWED_ORIGINS: app.origin,
    SOCKGATE_API_KEY: API_KEY,
    ...env,
  });

describe("the hook alone (no JWT key configured)", () => {
  let gw;
  before(async () => (gw = await hookOnly()));
  after(() => gw.stop());

  test("an express-session login admits the user: the hook resolves them from the session store", async () => {
    const { cookie, loginAt } = await logIn(app, "ada", "red");
    const calls = app.calls.length;
    const s = await gw.connect(withCookie(cookie, app.origin));
    assert.equal(app.calls.length, calls + 1, "the hook was asked once");
    const call = app.calls.at(-1);
    assert.ok(call.signed, `signature ${call.signature} does not verify`);
    assert.match(call.contentType, /^application\/json/);
    assert.deepEqual(Object.keys(call.body).sort(), ["auth", "headers", "remoteAddr", "transport"]);
    assert.equal(call.body.auth, null, "no CONNECT payload");
    assert.equal(call.body.headers.cookie, cookie);
    assert.equal(call.body.headers.origin, app.origin);
    assert.equal(call.body.remoteAddr, "127.0.0.1");
    assert.equal(call.body.transport, "websocket");

    const me = await whoami(s);
    assert.equal(me.userId, "ada");
    assert.equal(me.claims.loginAt, loginAt, "only the session store knew this");
    assert.equal(me.claims.team, "red");
    assert.equal(me.claims.via, "session");
    assert.equal(me.claims.sub, "ada");
    assert.equal(me.claims.exp, me.expiresAt);
    assert.ok(me.expiresAt > now() + 3000, `expiresAt ${me.expiresAt}`);

    // In its own user room and in the rooms the hook named.
    assert.deepEqual(await members(s, "team:red"), ["ada"]);
    const news = next(s, "team-news");
    let res = await api(gw, "POST", "/api/publish", { body: { room: "team:red", event: "team-news", data: { n: 1 } } });
    assert.deepEqual([res.status, res.body], [200, { delivered: 1 }]);
    assert.deepEqual(await news, { n: 1 });
    const note = next(s, "notification");
    res = await api(gw, "POST", "/api/publish", { body: { user: "ada", event: "notification", data: { n: 2 } } });
    assert.deepEqual(res.body, { delivered: 1 });
    assert.deepEqual(await note, { n: 2 });
    s.close();

    // Logged out: the session is gone from the store and the hook says so.
    await logOut(app, cookie);
    const err = await refusal(gw, withCookie(cookie, app.origin));
    assert.equal(err.message, "NOT_LOGGED_IN: log in first");
    assert.deepEqual(err.data, { code: "NOT_LOGGED_IN", message: "log in first" });
    assert.equal(app.calls.length, calls + 2, "the hook decided the refusal");
  });

  test("a cookie the session store does not know is refused by the app", async () => {
    const err = await refusal(gw, withCookie("connect.sid=s%3Aforged.signature", app.origin));
    assert.equal(err.message, "NOT_LOGGED_IN: log in first");
  });

  test("a handshake without any credential gets the app's refusal, terminally (the client does not retry)", async () => {
    const calls = app.handshakes().length;
    const socket = io(gw.url, { forceNew: true, transports: ["websocket"] }); // reconnection on
    const seen = watch(socket);
    try {
      await eventually(() => seen.errors.length > 0, 10000, "a connect_error");
      const [err] = seen.errors;
      assert.equal(err.message, "NOT_LOGGED_IN: log in first");
      assert.deepEqual(err.data, { code: "NOT_LOGGED_IN", message: "log in first" });
      // The client closed the connection itself on the refusal ("forced
      // close"); the gateway did not close it under the client, which would
      // have been a retryable refusal ("transport close").
      assert.deepEqual(seen.closes, ["forced close"]);
      assert.equal(app.handshakes().at(-1).body.auth, null);
      // Give a retrying client time to come back; it must not.
      await sleep(2500);
      assert.equal(app.handshakes().length, calls + 1, "the hook was asked once");
      assert.equal(seen.errors.length, 1);
      assert.equal(socket.connected, false);
    } finally {
      socket.close();
    }
  });

  test("the app's codes pass through when they look like codes; otherwise AUTH_REQUIRED", async () => {
    const long = "A" + "B".repeat(63);
    const cases = [
      [{ code: "ACCOUNT_LOCKED", message: "too many tries" }, "ACCOUNT_LOCKED", "too many tries"],
      [{ code: "E2", message: "digits" }, "E2", "digits"],
      [{ code: long, message: "64 characters" }, long, "64 characters"],
      [{ code: long + "C", message: "65 characters" }, "AUTH_REQUIRED", "65 characters"],
      [{ code: "not_logged_in", message: "lower case" }, "AUTH_REQUIRED", "lower case"],
      [{ code: "1ST", message: "a digit first" }, "AUTH_REQUIRED", "a digit first"],
      [{ code: "_X", message: "underscore first" }, "AUTH_REQUIRED", "underscore first"],
      [{ code: "BAD-CODE", message: "a hyphen" }, "AUTH_REQUIRED", "a hyphen"],
      [{ code: "", message: "empty" }, "AUTH_REQUIRED", "empty"],
      [{ message: "no code" }, "AUTH_REQUIRED", "no code"],
    ];
    for (const [error, code, message] of cases) {
      app.hook = () => ({ error });
      const err = await refusal(gw, {});
      assert.equal(err.message, `${code}: ${message}`, JSON.stringify(error));
      assert.deepEqual(err.data, { code, message }, JSON.stringify(error));
    }
  });

  test("a token sockgate cannot verify goes to the hook: an opaque key in auth.token or a Bearer header, a JWT when sockgate has no key", async () => {
    // auth.token over long-polling: the hook sees the whole CONNECT payload.
    const payload = { token: "opaque-key-1", device: "tablet" };
    let s = await gw.connect({ auth: payload, transports: ["polling"] });
    let call = app.handshakes().at(-1);
    assert.deepEqual(call.body.auth, payload);
    assert.equal(call.body.transport, "polling");
    let me = await whoami(s);
    assert.equal(me.userId, "keyholder");
    assert.equal(me.claims.via, "api-key");
    s.close();

    // A Bearer header.
    s = await gw.connect({ transports: ["websocket"], extraHeaders: { authorization: "Bearer opaque-key-2" } });
    call = app.handshakes().at(-1);
    assert.equal(call.body.headers.authorization, "Bearer opaque-key-2");
    assert.equal(call.body.auth, null);
    assert.equal((await whoami(s)).userId, "robot");
    s.close();

    // An unknown key: the app's refusal.
    assert.equal((await refusal(gw, { auth: { token: "opaque-key-9" } })).message, "BAD_API_KEY: unknown API key");

    // A JWT: this gateway has no key for it, so it is the hook's to judge.
    const jwt = sign({ sub: "jwt-user" });
    const calls = app.handshakes().length;
    assert.equal((await refusal(gw, { auth: { token: jwt } })).message, "BAD_API_KEY: unknown API key");
    assert.equal(app.handshakes().length, calls + 1);
    assert.equal(app.handshakes().at(-1).body.auth.token, jwt);
  });

  test("the hook is shown only the listed request headers, by lowercase name", async () => {
    const extra = { "user-agent": "hook-test/1", "x-trace": "t-1", authorization: "Bearer opaque-key-1" };
    const s = await gw.connect(withCookie("theme=dark", app.origin, extra));
    assert.deepEqual(app.handshakes().at(-1).body.headers, {
      cookie: "theme=dark",
      authorization: "Bearer opaque-key-1",
      "user-agent": "hook-test/1",
      origin: app.origin,
    });
    s.close();

    // Another list: the Bearer header still sends the handshake to the
    // hook, but the hook is not shown it.
    const custom = await hookOnly({ SOCKGATE_CONNECT_HEADERS: "X-Trace, Cookie" });
    try {
      app.hook = () => ({ userId: "traced" });
      const t = await custom.connect(withCookie("theme=dark", app.origin, extra));
      assert.deepEqual(app.handshakes().at(-1).body.headers, { "x-trace": "t-1", cookie: "theme=dark" });
      assert.equal((await whoami(t)).userId, "traced");
    } finally {
      await custom.stop();
    }
  });

  test("whoami: the hook's claims plus sub, iat and exp, without credentials; an integer userId", async () => {
    const started = now();
    const expiresAt = now() + 600;
    app.hook = () => ({
      userId: 42,
      expiresAt,
      claims: {
        role: "admin",
        sub: "mallory",
        apiKey: "k-1",
        accessToken: "at-1",
        refresh_token: "rt-1",
        nested: { password: "p", kept: 1 },
      },
    });
    const s = await gw.connect({});
    const me = await whoami(s);
    assert.equal(me.userId, "42");
    assert.equal(me.expiresAt, expiresAt);
    const { iat, ...rest } = me.claims;
    assert.deepEqual(rest, { role: "admin", sub: "42", exp: expiresAt, nested: { kept: 1 } });
    assert.ok(Number.isInteger(iat) && iat >= started && iat <= now(), `iat ${iat}`);
    const note = next(s, "notification");
    assert.deepEqual((await api(gw, "POST", "/api/publish", { body: { user: "42", event: "notification", data: "hi" } })).body, { delivered: 1 });
    assert.equal(await note, "hi");
    s.close();
  });

  test("without expiresAt the session does not expire: whoami says expiresAt null", async () => {
    app.hook = () => ({ userId: "forever" });
    const s = await gw.connect({});
    const me = await whoami(s);
    assert.equal(me.userId, "forever");
    assert.equal(me.expiresAt, null);
    assert.equal("exp" in me.claims, false);
    s.close();
  });

  test("a cookie handshake obeys the Origin rules before the hook is asked", async () => {
    const { cookie } = await logIn(app, "otto", "blue");
    const calls = app.calls.length;
    let err = await refusal(gw, withCookie(cookie, null));
    assert.match(err.message, /^ORIGIN_FORBIDDEN: /);
    assert.equal(err.data.code, "ORIGIN_FORBIDDEN");
    err = await refusal(gw, withCookie(cookie, "http://evil.example"));
    assert.match(err.message, /^ORIGIN_FORBIDDEN: /);
    assert.equal(app.calls.length, calls, "the hook was never asked");

    // A same-origin request (no Origin, Sec-Fetch-Site: same-origin) passes.
    const s = await gw.connect(withCookie(cookie, null, { "sec-fetch-site": "same-origin" }));
    assert.equal((await whoami(s)).userId, "otto");
    assert.equal(app.calls.length, calls + 1);
    s.close();
  });

  test("an answer that is not one is BACKEND_ERROR", async () => {
    const answers = [
      ["text/plain", "hello"],
      ["application/json", "{ not json"],
      ["application/json", "[]"],
      ["application/json", "{}"],
      ["application/json", JSON.stringify({ userId: true })],
      ["application/json", JSON.stringify({ userId: 1.5 })],
      ["application/json", JSON.stringify({ userId: "a b" })],
      ["application/json", JSON.stringify({ userId: "" })],
      ["application/json", JSON.stringify({ user: "x" })],
      ["application/json", JSON.stringify({ userId: "x", rooms: "team:1" })],
      ["application/json", JSON.stringify({ userId: "x", expiresAt: "soon" })],
    ];
    for (const [type, text] of answers) {
      app.hook = (body, req, res) => void res.type(type).send(text);
      const err = await refusal(gw, {});
      assert.match(err.message, /^BACKEND_ERROR: /, text);
      assert.equal(err.data?.code, "BACKEND_ERROR", text);
    }
  });

  test("the hook is waited for up to SOCKGATE_EVENTS_TIMEOUT_MS, 5000 ms by default", async () => {
    app.hook = async () => {
      await sleep(2500);
      return { userId: "patient" };
    };
    const s = await gw.connect({});
    assert.equal((await whoami(s)).userId, "patient");
    s.close();
  });

  test("a failing hook (5xx) closes the transport: no code reaches the client", async () => {
    app.hook = (body, req, res) => void res.status(503).send("down for maintenance");
    for (const transports of [["websocket"], ["polling"]]) {
      const calls = app.handshakes().length;
      const { socket, seen, connected } = await attempt(gw, { auth: { token: "opaque-key-1" }, transports });
      try {
        assert.notEqual(connected, true);
        assertRetryable(seen, `503 over ${transports}`);
        await eventually(() => seen.closes.length > 0, 10000, "the connection closed");
        assert.match(seen.closes[0], /^transport (close|error)$/, `closed by the gateway over ${transports}`);
        assert.equal(app.handshakes().length, calls + 1);
      } finally {
        socket.close();
      }
    }
  });

  test("while the hook fails (5xx), the official client retries by itself and gets in once it answers", async () => {
    let failures = 0;
    app.hook = (body, req, res) => {
      if (failures < 3) {
        failures++;
        return void res.status(500).send("oops");
      }
      return defaultHook(body, req);
    };
    for (const transports of [["websocket"], ["polling"]]) {
      failures = 0;
      const calls = app.handshakes().length;
      const socket = io(gw.url, { forceNew: true, transports, auth: { token: "opaque-key-2" }, reconnectionDelay: 200, reconnectionDelayMax: 1000 });
      const seen = watch(socket);
      try {
        await eventually(() => socket.connected, 20000, `connected over ${transports}`);
        assert.equal(failures, 3);
        assert.equal(app.handshakes().length, calls + 4, "three refusals, one admission");
        assertRetryable(seen, transports[0]);
        assert.equal((await whoami(socket)).userId, "robot");
      } finally {
        socket.close();
      }
    }
  });
});

describe("a hook that is slow or not there yet", () => {
  test("a hook slower than SOCKGATE_EVENTS_TIMEOUT_MS: the client retries and gets in when it is quick again", async () => {
    const gw = await hookOnly({ SOCKGATE_EVENTS_TIMEOUT_MS: "700" });
    let slow = 2;
    app.hook = async (body, req) => {
      if (slow > 0) {
        slow--;
        await sleep(2500);
      }
      return defaultHook(body, req);
    };
    const socket = io(gw.url, { forceNew: true, transports: ["websocket"], auth: { token: "opaque-key-1" }, reconnectionDelay: 200, reconnectionDelayMax: 1000 });
    const seen = watch(socket);
    try {
      await eventually(() => socket.connected, 30000, "connected");
      assert.equal(slow, 0, "both slow answers were waited for in vain");
      assertRetryable(seen, "timeout");
      const timedOut = gw.logs.filter((l) => l.includes('"outcome":"AUTH_UNAVAILABLE"')).length;
      assert.ok(timedOut >= 2, `${timedOut} AUTH_UNAVAILABLE refusals logged`);
      assert.equal((await whoami(socket)).userId, "keyholder");
    } finally {
      socket.close();
      await gw.stop();
    }
  });

  test("with the hook server down at first, clients retry by themselves and connect once it starts", async () => {
    const port = await freePort();
    const gw = await hookOnly({ SOCKGATE_CONNECT_URL: `http://127.0.0.1:${port}/sockgate/connect` });
    let late;
    const clients = [];
    try {
      for (const transports of [["websocket"], ["polling"], undefined]) {
        const socket = io(gw.url, { forceNew: true, auth: { token: "opaque-key-1" }, reconnectionDelay: 200, reconnectionDelayMax: 1000, ...(transports && { transports }) });
        clients.push({ socket, seen: watch(socket) });
      }
      const refusals = () => gw.logs.filter((l) => l.includes('"outcome":"AUTH_UNAVAILABLE"')).length;
      await eventually(() => refusals() >= 6, 20000, "each client refused about twice");
      assert.ok(clients.every((c) => !c.socket.connected));
      late = await startApp(port);
      await eventually(() => clients.every((c) => c.socket.connected), 20000, "all connected once the hook is up");
      assert.equal(late.handshakes().length, 3);
      for (const c of clients) {
        assertRetryable(c.seen, "unreachable");
        assert.equal((await whoami(c.socket)).userId, "keyholder");
      }
    } finally {
      for (const c of clients) c.socket.close();
      await gw.stop();
      await late?.stop();
    }
  });
});

describe("the hook beside sockgate's own keys", () => {
  let gw;
  before(
    async () =>
      (gw = await startGateway({
        SOCKGATE_NEXTAUTH_SECRET: NEXTAUTH_SECRET,
        SOCKGATE_CONNECT_URL: app.hookUrl,
        SOCKGATE_CONNECT_SECRET: HOOK_SECRET,
        SOCKGATE_ALLOWED_ORIGINS: app.origin,
      })),
  );
  after(() => gw.stop());

  test("JWTs sockgate has keys for and Next-Auth cookies stay sockgate's: the hook is not called", async () => {
    const calls = app.calls.length;
    let s = await gw.connect({ auth: { token: sign({ sub: "jwt-alice" }) } });
    assert.equal((await whoami(s)).userId, "jwt-alice");
    s.close();
    s = await gw.connect({ transports: ["websocket"], extraHeaders: { authorization: `Bearer ${sign({ sub: "jwt-bearer" })}` } });
    assert.equal((await whoami(s)).userId, "jwt-bearer");
    s.close();
    const forged = sign({ sub: "jwt-alice" }, { secret: "not-the-gateway-secret-not-the-gateway!" });
    assert.match((await refusal(gw, { auth: { token: forged } })).message, /^TOKEN_INVALID: /);
    assert.match((await refusal(gw, { auth: { token: sign({ exp: now() - 60 }) } })).message, /^TOKEN_EXPIRED: /);

    const v4 = await encodeNextAuth({ token: { sub: "na-user", name: "NA" }, secret: NEXTAUTH_SECRET });
    s = await gw.connect(withCookie(`next-auth.session-token=${v4}`, app.origin));
    assert.equal((await whoami(s)).userId, "na-user");
    s.close();
    const err = await refusal(gw, withCookie("next-auth.session-token=garbage", app.origin));
    assert.doesNotMatch(err.message, /^NOT_LOGGED_IN: /);
    assert.equal(app.calls.length, calls, "the hook was never asked");
  });

  test("beside them, an opaque key, an express-session cookie and no credential go to the hook", async () => {
    const calls = app.calls.length;
    let s = await gw.connect({ auth: { token: "opaque-key-1" } });
    assert.equal((await whoami(s)).userId, "keyholder");
    s.close();
    const { cookie } = await logIn(app, "mixed", "green");
    s = await gw.connect(withCookie(cookie, app.origin));
    assert.equal((await whoami(s)).userId, "mixed");
    s.close();
    assert.equal((await refusal(gw, {})).message, "NOT_LOGGED_IN: log in first");
    assert.equal(app.calls.length, calls + 3);
  });
});

describe("hook sessions follow the rules of token sessions", () => {
  let gw;
  before(async () => (gw = await hookOnly({ SOCKGATE_MAX_SESSIONS_PER_USER: "2", SOCKGATE_SESSION_LIMIT_POLICY: "reject" })));
  after(() => gw.stop());

  test("SOCKGATE_MAX_SESSIONS_PER_USER: the extra handshake gets SESSION_LIMIT", async () => {
    app.hook = (body) => ({ userId: body.auth.user });
    const a = await gw.connect({ auth: { user: "lim" } });
    const b = await gw.connect({ auth: { user: "lim" } });
    const err = await refusal(gw, { auth: { user: "lim" } });
    assert.match(err.message, /^SESSION_LIMIT: /);
    assert.equal(err.data.code, "SESSION_LIMIT");
    const other = await gw.connect({ auth: { user: "not-lim" } });
    assert.ok(a.connected && b.connected && other.connected);
    for (const s of [a, b, other]) s.close();
  });

  test("a user revocation ends live hook sessions and refuses handshakes until its time has passed", async () => {
    app.hook = (body) => ({ userId: body.auth.user });
    const s = await gw.connect({ auth: { user: "revvy" } });
    const bystander = await gw.connect({ auth: { user: "bystander" } });
    const ending = ended(s);
    // Hook sessions are issued (iat) at admission: a revocation of what was
    // issued before a moment to come covers them.
    const issuedBefore = now() + 3;
    const res = await api(gw, "POST", "/api/revocations", { body: { userId: "revvy", issuedBefore } });
    assert.equal(res.status, 201);
    const { end } = await ending;
    assert.equal(end.code, "TOKEN_REVOKED");
    assert.ok(bystander.connected);
    const calls = app.handshakes().length;
    const err = await refusal(gw, { auth: { user: "revvy" } });
    assert.match(err.message, /^TOKEN_REVOKED: /);
    assert.equal(err.data.code, "TOKEN_REVOKED");
    assert.equal(app.handshakes().length, calls + 1);
    // After that moment the app's word counts again.
    await eventually(() => now() > issuedBefore, 10000, "the revocation's time passed");
    const again = await gw.connect({ auth: { user: "revvy" } });
    assert.equal((await whoami(again)).userId, "revvy");
    again.close();
    bystander.close();
  });

  test("DELETE /api/sessions/{id} kicks a hook session", async () => {
    app.hook = (body) => ({ userId: body.auth.user });
    const s = await gw.connect({ auth: { user: "kicky" } });
    const { sessionId } = await whoami(s);
    const listed = await api(gw, "GET", "/api/sessions?user=kicky");
    assert.deepEqual(listed.body.sessions.map((x) => x.sessionId), [sessionId]);
    const ending = ended(s);
    assert.equal((await api(gw, "DELETE", `/api/sessions/${sessionId}`)).status, 200);
    assert.equal((await ending).end.code, "KICKED");
    // Kicked, not revoked: the hook admits it again.
    const again = await gw.connect({ auth: { user: "kicky" } });
    again.close();
  });
});

describe("renewal before expiresAt", () => {
  let gw;
  before(async () => (gw = await hookOnly()));
  after(() => gw.stop());

  /** A hook session of `user` that expires `ttl` seconds from admission; `renew` answers the renewal. */
  function renewing(ttl, renew) {
    app.hook = (body, req, res) => {
      if (body.renew) return renew(body.renew, res);
      return { userId: body.auth.user, expiresAt: now() + ttl, claims: { team: "renew", apiKey: "k-1" } };
    };
  }

  /** The gateway's log entries with `message` for session `id`. */
  const logged = (message, id) =>
    gw.logs.filter((l) => {
      try {
        const e = JSON.parse(l);
        return e.message === message && JSON.stringify(e).includes(id);
      } catch {
        return false;
      }
    });

  test("the hook is asked again before expiresAt; a later expiresAt renews the session in place", async () => {
    let later;
    renewing(8, (renew) => {
      later = now() + 120;
      return { userId: renew.userId, expiresAt: later, claims: { team: "renew" } };
    });
    const s = await gw.connect({ auth: { user: "renee" } });
    const expiring = [];
    const ends = [];
    s.on("auth:expiring", (p) => expiring.push(p));
    s.on("session:end", (p) => ends.push(p));
    const socketId = s.id;
    const me = await whoami(s);
    const first = me.expiresAt;
    assert.ok(first > now(), `expiresAt ${first}`);

    const renewalsOf = () => app.renewals().filter((c) => c.body.renew.sessionId === me.sessionId);
    await eventually(() => renewalsOf().length > 0, 15000, "a renewal call");
    const [call] = renewalsOf();
    assert.ok(call.signed, "the renewal is signed");
    assert.deepEqual(Object.keys(call.body), ["renew"]);
    const { renew } = call.body;
    assert.deepEqual(Object.keys(renew).sort(), ["claims", "expiresAt", "sessionId", "userId"]);
    assert.equal(renew.userId, "renee");
    assert.equal(renew.sessionId, me.sessionId);
    assert.equal(renew.expiresAt, first);
    assert.equal(renew.claims.team, "renew");
    assert.equal(renew.claims.sub, "renee");
    assert.equal("apiKey" in renew.claims, false, "no credential in the renewal");

    await eventually(async () => (await whoami(s)).expiresAt === later, 10000, "the new expiresAt");
    // Past the first expiresAt, the same socket lives on.
    await sleep(Math.max(0, first * 1000 + 1500 - Date.now()));
    assert.ok(s.connected, "still connected after the first expiresAt");
    assert.equal(s.id, socketId, "the same socket");
    assert.deepEqual(ends, []);
    assert.deepEqual(expiring, [], "no auth:expiring for a session the client cannot renew");
    const renewed = await whoami(s);
    assert.equal(renewed.expiresAt, later);
    assert.equal(renewed.sessionId, me.sessionId);
    assert.equal(renewalsOf().length, 1);
    s.close();
  });

  test("an { error } answer to the renewal ends the session with SESSION_EXPIRED", async () => {
    renewing(6, () => ({ error: { code: "LOGGED_OUT", message: "the user logged out" } }));
    const s = await gw.connect({ auth: { user: "rita" } });
    const { sessionId } = await whoami(s);
    const expiring = [];
    s.on("auth:expiring", (p) => expiring.push(p));
    const { end, reason } = await ended(s, 20000);
    assert.equal(end.code, "SESSION_EXPIRED");
    assert.equal(end.reconnect, true);
    assert.equal(reason, "transport close");
    assert.equal(app.renewals().filter((c) => c.body.renew.sessionId === sessionId).length, 1);
    assert.equal(logged("renewal refused", sessionId).length, 1, "ended by the refusal, not by the clock");
    assert.deepEqual(expiring, []);
  });

  test("a hook that does not answer the renewal leaves the session to expire at its expiresAt", async () => {
    renewing(6, () => undefined); // never answers
    const s = await gw.connect({ auth: { user: "nora" } });
    const { sessionId, expiresAt } = await whoami(s);
    const { end, reason, at } = await ended(s, 20000);
    assert.equal(end.code, "SESSION_EXPIRED");
    assert.equal(end.reconnect, true);
    assert.equal(reason, "transport close");
    assert.equal(app.renewals().filter((c) => c.body.renew.sessionId === sessionId).length, 1, "the renewal was asked");
    assert.equal(logged("renewal refused", sessionId).length, 0, "not refused: it ran out");
    assert.ok(at >= expiresAt * 1000 - 1000, "not ended before its expiresAt");
  });
});

describe("signing and settings", () => {
  test("SOCKGATE_CONNECT_SECRET signs the calls, over SOCKGATE_EVENTS_SECRET; an app checking it refuses another", async () => {
    // The app knows HOOK_SECRET; this gateway signs with OTHER_SECRET.
    const gw = await hookOnly({ SOCKGATE_CONNECT_SECRET: OTHER_SECRET, SOCKGATE_EVENTS_SECRET: HOOK_SECRET });
    try {
      const err = await refusal(gw, { auth: { token: "opaque-key-1" } });
      assert.match(err.message, /^BACKEND_ERROR: /, "the app answered 401");
      const call = app.calls.at(-1);
      assert.equal(call.signed, false);
      assert.ok(verify(OTHER_SECRET, call.signature, call.raw), "signed with SOCKGATE_CONNECT_SECRET");
    } finally {
      await gw.stop();
    }
  });

  test("without SOCKGATE_CONNECT_SECRET, SOCKGATE_EVENTS_SECRET signs the calls", async () => {
    const gw = await hookOnly({ SOCKGATE_CONNECT_SECRET: undefined, SOCKGATE_EVENTS_SECRET: HOOK_SECRET });
    try {
      const s = await gw.connect({ auth: { token: "opaque-key-1" } });
      assert.ok(app.calls.at(-1).signed);
      assert.equal((await whoami(s)).userId, "keyholder");
      s.close();
    } finally {
      await gw.stop();
    }
  });

  test("the hook needs a secret of at least 32 bytes and an http(s) URL, or sockgate does not start", async () => {
    await assert.rejects(hookOnly({ SOCKGATE_CONNECT_SECRET: undefined }), (e) => /exited with/.test(e.message) && /SOCKGATE_CONNECT_SECRET/.test(e.message));
    await assert.rejects(hookOnly({ SOCKGATE_CONNECT_SECRET: "x".repeat(31) }), (e) => /exited with/.test(e.message) && /SOCKGATE_CONNECT_SECRET/.test(e.message));
    await assert.rejects(hookOnly({ SOCKGATE_CONNECT_URL: "ftp://127.0.0.1/hook" }), (e) => /exited with/.test(e.message) && /SOCKGATE_CONNECT_URL/.test(e.message));
    // 32 bytes will do.
    const gw = await hookOnly({ SOCKGATE_CONNECT_SECRET: "x".repeat(32) });
    await gw.stop();
  });
});

describe("in Chromium", () => {
  let browser;
  let gw;
  before(async () => {
    browser = await launchChromium();
    gw = await hookOnly();
  });
  after(async () => {
    await browser?.close();
    await gw?.stop();
  });
  const gatewayUrl = () => `http://localhost:${new URL(gw.url).port}`;

  test("a page logged in by express-session (HttpOnly cookie) connects with withCredentials; the hook knows the user", async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const errors = [];
      page.on("pageerror", (e) => errors.push(e.message));
      const calls = app.handshakes().length;
      await page.goto(`${app.origin}/?user=bea&gw=${encodeURIComponent(gatewayUrl())}`);
      await page.waitForFunction(() => document.getElementById("me").textContent || document.getElementById("error").textContent, null, { timeout: 20000 });
      assert.equal(await page.locator("#error").textContent(), "");
      const me = JSON.parse(await page.locator("#me").textContent());
      assert.equal(me.userId, "bea");
      assert.equal(me.claims.via, "session");
      assert.equal(JSON.parse(await page.locator("#cookies").textContent()), "", "the page cannot read the HttpOnly cookie");
      const call = app.handshakes().at(-1);
      assert.equal(app.handshakes().length, calls + 1);
      assert.match(call.body.headers.cookie, /connect\.sid=/);
      assert.equal(call.body.headers.origin, app.origin);
      assert.match(call.body.headers["user-agent"], /Chrome/);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test("a page that did not log in gets the app's refusal", async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${app.origin}/?login=0&gw=${encodeURIComponent(gatewayUrl())}`);
      await page.waitForFunction(() => document.getElementById("error").textContent, null, { timeout: 20000 });
      const shown = JSON.parse(await page.locator("#error").textContent());
      assert.deepEqual(shown, { message: "NOT_LOGGED_IN: log in first", data: { code: "NOT_LOGGED_IN", message: "log in first" } });
      assert.equal(await page.locator("#me").textContent(), "");
    } finally {
      await context.close();
    }
  });
});
