// What an app moving from the seeds' Node server hits, each closed here:
// the backend token handed back to page JavaScript, a cookie session that
// outlives its backend token, the refresh storm, silent refusals, and the
// seeds' `user-{id}` rooms.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { encode as encodeV4 } from "next-auth/jwt";
import { startGateway, refusal, sign, now, next, ended, api, eventually, API_KEY } from "./helpers.mjs";

const NEXTAUTH_SECRET = "seeds-nextauth-secret-seeds-nextauth-secret-0123";
const ORIGIN = "http://localhost:3000";
const V4 = "next-auth.session-token";
const JOSE = /^eyJ[\w-]*\.[\w-]*\.[\w-]*(\.[\w-]*\.[\w-]*)?$/;
const CREDENTIAL_NAME = /token|secret|password|passwd|key|credential/i;

/** Every key and string value of `value`, at any depth. */
function* walk(value, key = "") {
  if (key) yield { key };
  if (typeof value === "string") yield { string: value };
  else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) yield* walk(v, k);
  }
}

function assertNoCredential(value, what) {
  for (const { key, string } of walk(value)) {
    if (key !== undefined) assert.doesNotMatch(key, CREDENTIAL_NAME, `${what} holds a credential's name: ${key}`);
    if (string !== undefined) assert.doesNotMatch(string, JOSE, `${what} holds a JWS/JWE`);
  }
}

/**
 * The seeds' next-auth v4 `jwt` callback after a Credentials login: the
 * profile, and the backend's token as `accessToken`, in a session cookie of
 * next-auth's default 30 days.
 */
async function seedsSession(backendToken, sub = "42") {
  const token = { name: "Ada", email: "ada@example.com", sub, accessToken: backendToken, accessTokenExpires: Date.now() + 3600e3 };
  return `${V4}=${await encodeV4({ token, secret: NEXTAUTH_SECRET })}`;
}

const fromPage = (cookie, origin = ORIGIN) => ({ transports: ["websocket"], extraHeaders: { cookie, origin } });

describe("no credential reaches page JavaScript", () => {
  let gw;
  before(async () => {
    gw = await startGateway({ SOCKGATE_NEXTAUTH_SECRET: NEXTAUTH_SECRET, SOCKGATE_ALLOWED_ORIGINS: ORIGIN, SOCKGATE_API_KEY: API_KEY });
  });
  after(() => gw.stop());

  test("auth:whoami leaves out claims named like credentials and JWS/JWE values, at any depth", async () => {
    const upstream = sign({ sub: "github" });
    const token = sign({
      sub: "alice",
      role: "admin",
      accessToken: upstream,
      refresh_token: "opaque-refresh",
      Password: "hunter2",
      apiKey: "k-123",
      nick: "first.middle.last",
      upstream,
      provider: { name: "github", id_token: upstream, scopes: ["repo", upstream] },
    });
    const s = await gw.connect({ auth: { token } });
    const me = await s.emitWithAck("auth:whoami");
    assertNoCredential(me.claims, "whoami");
    assert.equal(me.claims.role, "admin", "other claims stay: apps read claims.role");
    assert.equal(me.claims.nick, "first.middle.last", "a dotted name is not a JWS");
    assert.deepEqual(me.claims.provider, { name: "github", scopes: ["repo"] });
    s.close();
  });

  test("the seeds' session cookie: the backend token inside is the identity, and never shown", async () => {
    const backend = sign({ sub: "42", role: "member", jti: "backend-jti-1" }, { ttl: 3600 });
    const s = await gw.connect(fromPage(await seedsSession(backend)));
    const me = await s.emitWithAck("auth:whoami");
    assertNoCredential(me, "whoami");
    assert.equal(me.userId, "42");
    assert.equal(me.claims.role, "member", "the claims are the backend token's");
    const backendExp = JSON.parse(Buffer.from(backend.split(".")[1], "base64url")).exp;
    assert.equal(me.expiresAt, backendExp, "the backend token's 1 hour, not the session's 30 days");
    const detected = gw.logs.filter((l) => l.includes("holds a backend token"));
    assert.equal(detected.length, 1, "said once in the log");
    assert.ok(!detected[0].includes(backend), "without the token");

    // Revoking the backend token's jti ends the cookie session.
    const gone = ended(s);
    const res = await api(gw, "POST", "/api/revocations", { body: { jti: "backend-jti-1", expiresAt: backendExp } });
    assert.ok(res.status < 300, JSON.stringify(res.body));
    assert.equal((await gone).end?.code, "TOKEN_REVOKED");
    const again = await refusal(gw, fromPage(await seedsSession(backend)));
    assert.match(again.message, /^TOKEN_REVOKED/);

    // A second session: logged once per process, not per handshake.
    const other = await gw.connect(fromPage(await seedsSession(sign({ sub: "43" }, { ttl: 3600 }), "43")));
    assert.equal((await other.emitWithAck("auth:whoami")).userId, "43");
    assert.equal(gw.logs.filter((l) => l.includes("holds a backend token")).length, 1);
    other.close();
  });

  test("an expired backend token in a live session cookie is refused as expired", async () => {
    const stale = sign({ sub: "42", iat: now() - 7200, exp: now() - 3600 });
    const err = await refusal(gw, fromPage(await seedsSession(stale)));
    assert.match(err.message, /^TOKEN_EXPIRED/);
  });

  test("a token in the session that sockgate's keys did not sign leaves the session's own identity", async () => {
    const foreign = sign({ sub: "someone-else" }, { secret: "a-secret-that-is-not-sockgates-0123456789" });
    const s = await gw.connect(fromPage(await seedsSession(foreign, "ada")));
    const me = await s.emitWithAck("auth:whoami");
    assert.equal(me.userId, "ada", "the session's sub");
    assert.ok(me.expiresAt > now() + 29 * 86400, "the session's exp");
    assertNoCredential(me, "whoami");
    s.close();
  });
});

describe("SOCKGATE_NEXTAUTH_TOKEN_CLAIM=none and SOCKGATE_EXPOSED_CLAIMS", () => {
  let gw;
  before(async () => {
    gw = await startGateway({
      SOCKGATE_NEXTAUTH_SECRET: NEXTAUTH_SECRET,
      SOCKGATE_ALLOWED_ORIGINS: ORIGIN,
      SOCKGATE_NEXTAUTH_TOKEN_CLAIM: "none",
      SOCKGATE_EXPOSED_CLAIMS: "name,accessToken",
    });
  });
  after(() => gw.stop());

  test("none keeps the session's claims; the exposed list narrows them and still drops the credential", async () => {
    const backend = sign({ sub: "42" }, { ttl: 3600 });
    const s = await gw.connect(fromPage(await seedsSession(backend, "ada")));
    const me = await s.emitWithAck("auth:whoami");
    assert.equal(me.userId, "ada");
    assert.ok(me.expiresAt > now() + 29 * 86400, "the session's own exp");
    assert.deepEqual(me.claims, { name: "Ada" });
    s.close();
  });
});

describe("one warning per token", () => {
  let gw;
  before(async () => {
    gw = await startGateway({ SOCKGATE_REFRESH_LEAD: "60" });
  });
  after(() => gw.stop());

  test("a refresh whose token does not expire later is TOKEN_NOT_NEWER, and no warning follows", async () => {
    // 8 s: warned a quarter of the lifetime (2 s) before exp.
    const exp = now() + 8;
    const s = await gw.connect({ auth: { token: sign({ exp }) } });
    const warnings = [];
    s.on("auth:expiring", (w) => warnings.push(w));
    await eventually(() => warnings.length === 1, 15000, "the warning");
    assert.equal(warnings[0].expiresAt, exp);
    // The backend hands back a token with the same exp (re-signed, a new jti),
    // then one that expires earlier.
    for (const token of [sign({ exp, jti: "same-exp" }), sign({ exp: exp - 1 })]) {
      const ack = await s.emitWithAck("auth:refresh", { token });
      assert.equal(ack.ok, false);
      assert.equal(ack.code, "TOKEN_NOT_NEWER");
    }
    const end = await next(s, "session:end", 15000);
    assert.equal(end.code, "SESSION_EXPIRED");
    assert.equal(warnings.length, 1, `one warning per token, got ${warnings.length}`);
  });

  test("a refresh that extends exp answers ok and the new token gets its own warning", async () => {
    const s = await gw.connect({ auth: { token: sign({}, { ttl: 8 }) } });
    const warnings = [];
    s.on("auth:expiring", (w) => warnings.push(w));
    await eventually(() => warnings.length === 1, 15000, "the first warning");
    const exp = now() + 8;
    const ack = await s.emitWithAck("auth:refresh", { token: sign({ exp }) });
    assert.deepEqual(ack, { ok: true, expiresAt: exp });
    await eventually(() => warnings.length === 2, 15000, "the second token's warning");
    assert.equal(warnings[1].expiresAt, exp);
    s.close();
  });
});

describe("refusals that say what to change", () => {
  let gw;
  before(async () => {
    gw = await startGateway({ SOCKGATE_NEXTAUTH_SECRET: NEXTAUTH_SECRET, SOCKGATE_ALLOWED_ORIGINS: `${ORIGIN},http://127.0.0.1:3000` });
  });
  after(() => gw.stop());

  test("cookie mode from a page on another host: AUTH_REQUIRED says the cookie could not cross hosts", async () => {
    // The gateway is on 127.0.0.1, the page on localhost: the browser sent no cookie.
    const err = await refusal(gw, { transports: ["websocket"], extraHeaders: { origin: ORIGIN } });
    assert.match(err.message, /^AUTH_REQUIRED: /);
    assert.match(err.message, /host localhost/);
    assert.match(err.message, /127\.0\.0\.1/);
    assert.match(err.message, /same host name/);
    // Same host, different ports: cookies flow there, the plain sentence stays.
    const same = await refusal(gw, { transports: ["websocket"], extraHeaders: { origin: "http://127.0.0.1:3000" } });
    assert.match(same.message, /^AUTH_REQUIRED: /);
    assert.doesNotMatch(same.message, /host/);
  });

  test("a token naming the user in `id`: CLAIMS_INVALID names SOCKGATE_USER_CLAIM and the token's claims, no values", async () => {
    const token = sign({ sub: undefined, id: 42, name: "Ada Lovelace" });
    const err = await refusal(gw, { auth: { token } });
    assert.match(err.message, /^CLAIMS_INVALID: the `sub` claim is missing/);
    assert.match(err.message, /SOCKGATE_USER_CLAIM/);
    assert.match(err.message, /exp, iat, id, name/);
    assert.doesNotMatch(err.message, /Ada/);
  });
});

describe("the seeds' user rooms", () => {
  test("SOCKGATE_USER_ROOM=user-{id}: a publish to user-42 reaches user 42, and only they may be in it", async () => {
    const gw = await startGateway({ SOCKGATE_USER_ROOM: "user-{id}", SOCKGATE_USER_CLAIM: "id", SOCKGATE_API_KEY: API_KEY });
    try {
      const s = await gw.connect({ auth: { token: sign({ sub: undefined, id: 42 }) } });
      const got = next(s, "notification");
      const res = await api(gw, "POST", "/api/publish", { body: { room: "user-42", event: "notification", data: { text: "hi" } } });
      assert.deepEqual(res.body, { delivered: 1 });
      assert.deepEqual(await got, { text: "hi" });
      const byUser = next(s, "notification");
      assert.deepEqual((await api(gw, "POST", "/api/publish", { body: { user: "42", event: "notification", data: 2 } })).body, { delivered: 1 });
      assert.equal(await byUser, 2);
      const join = await s.emitWithAck("room:join", { room: "user-43" });
      assert.equal(join.code, "FORBIDDEN");
      const leave = await s.emitWithAck("room:leave", { room: "user-42" });
      assert.equal(leave.code, "FORBIDDEN", "a socket always stays in its own user room");
      assert.deepEqual((await s.emitWithAck("room:members", { room: "user-42" })).members, ["42"]);
      s.close();
    } finally {
      await gw.stop();
    }
  });

  test("a template without {id} is refused at startup", async () => {
    await assert.rejects(startGateway({ SOCKGATE_USER_ROOM: "user-" }), /SOCKGATE_USER_ROOM/);
  });

  test("by default, a publish to the seeds' user-42 that reaches no one logs one hint naming SOCKGATE_USER_ROOM", async () => {
    const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY });
    try {
      const s = await gw.connect({ auth: { token: sign({ sub: "42" }) } });
      for (let i = 0; i < 3; i++) {
        const res = await api(gw, "POST", "/api/publish", { body: { room: "user-42", event: "notification", data: i } });
        assert.deepEqual(res.body, { delivered: 0 });
      }
      const hints = gw.logs.filter((l) => l.includes("SOCKGATE_USER_ROOM"));
      assert.equal(hints.length, 1, hints.join("\n"));
      assert.match(hints[0], /user-42/);
      assert.match(hints[0], /user:\{id\}/);
      // A room of the app's own that is not a user-room lookalike says nothing.
      await api(gw, "POST", "/api/publish", { body: { room: "chat:lobby", event: "x", data: 1 } });
      assert.equal(gw.logs.filter((l) => l.includes("SOCKGATE_USER_ROOM")).length, 1);
      s.close();
    } finally {
      await gw.stop();
    }
  });
});
