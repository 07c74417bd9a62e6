// Next-Auth (v4) and Auth.js (v5) session cookies, minted by the real
// encoders (`next-auth/jwt`, `@auth/core/jwt`) and chunked by their own
// session stores, opened by the real binary.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { encode as encodeV4 } from "next-auth/jwt";
import { encode as encodeV5 } from "@auth/core/jwt";
import { startGateway, refusal, run, sign, now, allLogLines, ended } from "./helpers.mjs";

const here = join(import.meta.dirname, "..");
const require = createRequire(join(here, "package.json"));
// The session stores that split large cookies, as the apps' own servers do.
const { SessionStore: StoreV4 } = require(join(here, "node_modules/next-auth/core/lib/cookie.js"));
const { SessionStore: StoreV5 } = await import(
  pathToFileURL(join(here, "node_modules/@auth/core/lib/utils/cookie.js")).href
);

const SECRET = "next-auth-secret-next-auth-secret-0123456789";
const OLD_SECRET = "the-previous-next-auth-secret-before-rotation";
const ORIGIN = "https://app.example";
const V4 = "next-auth.session-token";
const V5 = "authjs.session-token";
const quiet = { warn() {}, error() {}, debug() {}, info() {} };

const v4 = (token, { secret = SECRET, maxAge } = {}) => encodeV4({ token, secret, maxAge });
const v5 = (token, { secret = SECRET, salt = V5, maxAge } = {}) => encodeV5({ token, secret, salt, maxAge });
const user = (sub, extra = {}) => ({ sub, name: `User ${sub}`, email: `${sub}@example.com`, ...extra });

/** Connects with `cookie` from the app's origin over `transports`. */
const withCookie = (cookie, transports = ["websocket"], origin = ORIGIN) => ({
  transports,
  extraHeaders: origin ? { cookie, origin } : { cookie },
});

const both = [["websocket"], ["polling"]];

describe("Next-Auth session cookies", () => {
  let gw;
  before(async () => {
    gw = await startGateway({
      JWT_SECRET: undefined,
      SOCKGATE_NEXTAUTH_SECRET: `${SECRET},${OLD_SECRET}`,
      SOCKGATE_ALLOWED_ORIGINS: ORIGIN,
    });
  });
  after(() => gw.stop());

  test("a v4 cookie opens a session over websocket and polling; its claims are the identity", async () => {
    const cookie = `theme=dark; ${V4}=${await v4(user("v4-user", { team: "red" }))}`;
    for (const transports of both) {
      const s = await gw.connect(withCookie(cookie, transports));
      const me = await s.emitWithAck("auth:whoami");
      assert.equal(me.userId, "v4-user", transports[0]);
      assert.equal(me.claims.email, "v4-user@example.com");
      assert.equal(me.claims.team, "red");
      assert.ok(me.expiresAt > now() + 3600, "exp is the session's");
      s.close();
    }
  });

  test("a v5 cookie (A256CBC-HS512, salted with its name) opens a session over both transports", async () => {
    for (const name of [V5, `__Secure-${V5}`]) {
      const cookie = `${name}=${await v5(user("v5-user"), { salt: name })}`;
      for (const transports of both) {
        const s = await gw.connect(withCookie(cookie, transports));
        assert.equal((await s.emitWithAck("auth:whoami")).userId, "v5-user", `${name} ${transports}`);
        s.close();
      }
    }
  });

  test("a large session split into chunks by the app's session store is joined", async () => {
    const big = { sub: "chunky", roles: Array.from({ length: 400 }, (_, i) => `role-${i}`) };
    const jwe4 = await v4(big);
    const jwe5 = await v5(big);
    const chunks4 = new StoreV4({ name: V4, options: {} }, { cookies: {} }, quiet).chunk(jwe4);
    const chunks5 = new StoreV5({ name: V5, options: {} }, {}, quiet).chunk(jwe5);
    assert.ok(chunks4.length >= 2 && chunks5.length >= 2, "the sessions are large enough to be chunked");
    for (const chunks of [chunks4, chunks5]) {
      // Out of order in the header: the numeric suffix decides.
      const cookie = [...chunks].reverse().map((c) => `${c.name}=${c.value}`).join("; ");
      for (const transports of both) {
        const s = await gw.connect(withCookie(cookie, transports));
        const me = await s.emitWithAck("auth:whoami");
        assert.equal(me.userId, "chunky");
        assert.equal(me.claims.roles.length, 400);
        s.close();
      }
    }
    // A missing chunk is a broken cookie.
    const partial = chunks5.slice(1).map((c) => `${c.name}=${c.value}`).join("; ");
    const err = await refusal(gw, withCookie(partial));
    assert.match(err.message, /^TOKEN_INVALID: /);
  });

  test("a v5 cookie minted for one cookie name fails under the other (the salt binds it)", async () => {
    const jwe = await v5(user("salted"), { salt: V5 });
    const err = await refusal(gw, withCookie(`__Secure-${V5}=${jwe}`));
    assert.match(err.message, /^TOKEN_INVALID: /);
    // A v4 cookie under a v5 name is refused as well.
    const v4jwe = await v4(user("salted"));
    assert.match((await refusal(gw, withCookie(`${V5}=${v4jwe}`))).message, /^TOKEN_INVALID: /);
  });

  test("secret rotation: cookies of the previous secret still open, the newest is tried first", async () => {
    for (const secret of [SECRET, OLD_SECRET]) {
      for (const cookie of [`${V4}=${await v4(user("rotated"), { secret })}`, `${V5}=${await v5(user("rotated"), { secret })}`]) {
        const s = await gw.connect(withCookie(cookie));
        assert.equal((await s.emitWithAck("auth:whoami")).userId, "rotated");
        s.close();
      }
    }
  });

  test("a wrong secret, a tampered cookie and an expired one are refused with their codes", async () => {
    const wrong = "a-completely-different-secret-0123456789abcdef";
    for (const cookie of [`${V4}=${await v4(user("x"), { secret: wrong })}`, `${V5}=${await v5(user("x"), { secret: wrong })}`]) {
      assert.match((await refusal(gw, withCookie(cookie))).message, /^TOKEN_INVALID: /);
    }
    for (const jwe of [await v4(user("x")), await v5(user("x"))]) {
      const parts = jwe.split(".");
      const flip = (s, i) => s.slice(0, i) + (s[i] === "A" ? "B" : "A") + s.slice(i + 1);
      for (const part of [0, 2, 3, 4]) {
        const tampered = parts.map((p, i) => (i === part ? flip(p, Math.floor(p.length / 2)) : p)).join(".");
        const cookieName = JSON.parse(Buffer.from(parts[0], "base64url")).enc === "A256GCM" ? V4 : V5;
        const err = await refusal(gw, withCookie(`${cookieName}=${tampered}`));
        assert.match(err.message, /^TOKEN_INVALID: /, `part ${part}`);
      }
    }
    for (const cookie of [`${V4}=${await v4(user("late"), { maxAge: -5 })}`, `${V5}=${await v5(user("late"), { maxAge: -5 })}`]) {
      assert.match((await refusal(gw, withCookie(cookie))).message, /^TOKEN_EXPIRED: /);
    }
    for (const junk of ["x", "a.b.c.d.e", "....", "%%%", "eyJ9.e30..."]) {
      assert.match((await refusal(gw, withCookie(`${V5}=${junk}`))).message, /^TOKEN_INVALID: /, junk);
    }
    // Every client refused; the gateway still serves.
    const s = await gw.connect(withCookie(`${V5}=${await v5(user("after"))}`));
    assert.equal((await s.emitWithAck("auth:whoami")).userId, "after");
    s.close();
  });

  test("no session cookie and no token is AUTH_REQUIRED", async () => {
    const err = await refusal(gw, withCookie("theme=dark"));
    assert.match(err.message, /^AUTH_REQUIRED: /);
  });

  test("a forbidden or missing Origin refuses the cookie over both transports", async () => {
    const cookie = `${V5}=${await v5(user("cross"))}`;
    for (const transports of both) {
      const evil = await refusal(gw, withCookie(cookie, transports, "https://evil.example"));
      assert.match(evil.message, /^ORIGIN_FORBIDDEN: /);
      const bare = await refusal(gw, withCookie(cookie, transports, null));
      assert.match(bare.message, /^ORIGIN_FORBIDDEN: /);
    }
  });

  test("an explicit token keeps its precedence over the session cookie", async () => {
    const gw2 = await startGateway({
      SOCKGATE_NEXTAUTH_SECRET: SECRET,
      SOCKGATE_ALLOWED_ORIGINS: ORIGIN,
    });
    try {
      const cookie = `${V5}=${await v5(user("browser"))}`;
      const s = await gw2.connect({ ...withCookie(cookie), auth: { token: sign({ sub: "native" }) } });
      assert.equal((await s.emitWithAck("auth:whoami")).userId, "native");
      s.close();
    } finally {
      await gw2.stop();
    }
  });

  test("the cookie never reaches the logs, whole or in part", async () => {
    const jwe = await v5(user("logged"));
    const s = await gw.connect(withCookie(`${V5}=${jwe}`, ["polling"]));
    s.close();
    await refusal(gw, withCookie(`${V5}=${jwe.slice(0, -4)}AAAA`));
    await new Promise((r) => setTimeout(r, 200));
    const logs = allLogLines.join("\n");
    assert.match(logs, /session-cookie/, "the handshakes were logged");
    for (let i = 0; i + 16 <= jwe.length; i += 8) {
      assert.ok(!logs.includes(jwe.slice(i, i + 16)), `a part of the cookie is in the logs (offset ${i})`);
    }
  });
});

describe("Next-Auth session holding the backend token", () => {
  let gw;
  before(async () => {
    gw = await startGateway({
      SOCKGATE_NEXTAUTH_SECRET: SECRET,
      SOCKGATE_NEXTAUTH_TOKEN_CLAIM: "accessToken",
      SOCKGATE_ALLOWED_ORIGINS: ORIGIN,
    });
  });
  after(() => gw.stop());

  test("the backend JWT in `accessToken` becomes the identity: its user, exp and claims", async () => {
    const exp = now() + 120;
    const accessToken = sign({ sub: "backend-42", exp, team: "blue" });
    for (const cookie of [`${V4}=${await v4(user("nextauth-id", { accessToken }))}`, `${V5}=${await v5(user("nextauth-id", { accessToken }))}`]) {
      for (const transports of both) {
        const s = await gw.connect(withCookie(cookie, transports));
        const me = await s.emitWithAck("auth:whoami");
        assert.equal(me.userId, "backend-42");
        assert.equal(me.expiresAt, exp);
        assert.equal(me.claims.team, "blue");
        assert.equal(me.claims.email, undefined, "the session's own claims are not the identity");
        s.close();
      }
    }
  });

  test("a missing, invalid or expired backend token is refused with the usual codes", async () => {
    const cases = [
      [user("u"), /^CLAIMS_INVALID: /],
      [user("u", { accessToken: "not-a-jwt" }), /^TOKEN_INVALID: /],
      [user("u", { accessToken: sign({ sub: "u" }, { secret: "another-secret-another-secret-0123" }) }), /^TOKEN_INVALID: /],
      [user("u", { accessToken: sign({ sub: "u", exp: now() - 10 }) }), /^TOKEN_EXPIRED: /],
    ];
    for (const [token, code] of cases) {
      const err = await refusal(gw, withCookie(`${V5}=${await v5(token)}`));
      assert.match(err.message, code);
    }
  });
});

describe("renewing a cookie session without reconnecting", () => {
  let gw;
  before(async () => {
    gw = await startGateway({
      JWT_SECRET: undefined,
      SOCKGATE_NEXTAUTH_SECRET: SECRET,
      SOCKGATE_ALLOWED_ORIGINS: ORIGIN,
      SOCKGATE_REFRESH_LEAD: "2",
    });
  });
  after(() => gw.stop());

  const post = (body, { cookie, origin = ORIGIN } = {}) =>
    fetch(`${gw.url}/auth/refresh`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(cookie && { cookie }), ...(origin && { origin }) },
      body: typeof body === "string" ? body : JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: await r.json().catch(() => null) }));

  test("auth:expiring → auth:ticket → POST /auth/refresh with the rotated cookie: the socket lives past exp", async () => {
    const first = `${V5}=${await v5(user("renewed"), { maxAge: 5 })}`;
    const s = await gw.connect(withCookie(first));
    const disconnects = [];
    s.on("disconnect", (r) => disconnects.push(r));
    const expiring = await new Promise((r) => s.once("auth:expiring", r));
    assert.ok(expiring.secondsLeft <= 2);
    const { ok, ticket, expiresIn } = await s.emitWithAck("auth:ticket");
    assert.equal(ok, true);
    assert.ok(expiresIn > 0);
    const rotated = `${V5}=${await v5(user("renewed"), { maxAge: 3600 })}`;
    const res = await post({ ticket }, { cookie: rotated });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.ok, true);
    assert.ok(res.body.expiresAt > now() + 3000);
    // Past the first cookie's exp, the socket is still up and answering.
    await new Promise((r) => setTimeout(r, 4000));
    assert.deepEqual(disconnects, []);
    const me = await s.emitWithAck("auth:whoami");
    assert.equal(me.expiresAt, res.body.expiresAt);
    // A ticket is good once.
    const again = await post({ ticket }, { cookie: rotated });
    assert.equal(again.status, 401);
    assert.equal(again.body.code, "UNAUTHORIZED");
    s.close();
  });

  test("the refresh needs an allowed Origin, a live ticket, the same user and a valid cookie", async () => {
    const s = await gw.connect(withCookie(`${V5}=${await v5(user("strict"))}`));
    const fresh = async () => (await s.emitWithAck("auth:ticket")).ticket;
    const cookie = `${V5}=${await v5(user("strict"))}`;
    let res = await post({ ticket: await fresh() }, { cookie, origin: "https://evil.example" });
    assert.equal(res.body.code, "ORIGIN_FORBIDDEN");
    res = await post({ ticket: await fresh() }, { cookie, origin: null });
    assert.equal(res.body.code, "ORIGIN_FORBIDDEN");
    res = await post({ ticket: "made-up.ticket" }, { cookie });
    assert.equal(res.body.code, "UNAUTHORIZED");
    res = await post("not json", { cookie });
    assert.equal(res.body.code, "INVALID_REQUEST");
    res = await post({ ticket: await fresh() }, { cookie: `${V5}=${await v5(user("someone-else"))}` });
    assert.equal(res.body.code, "SUBJECT_MISMATCH");
    res = await post({ ticket: await fresh() }, { cookie: `${V5}=${await v5(user("strict"), { maxAge: -5 })}` });
    assert.equal(res.body.code, "TOKEN_EXPIRED");
    res = await post({ ticket: await fresh() }, {});
    assert.equal(res.body.code, "AUTH_REQUIRED");
    // None of these touched the session.
    assert.equal((await s.emitWithAck("auth:whoami")).userId, "strict");
    s.close();
  });

  test("without a refresh the cookie session ends at exp with SESSION_EXPIRED", async () => {
    const s = await gw.connect(withCookie(`${V5}=${await v5(user("lapsed"), { maxAge: 3 })}`));
    const { end } = await ended(s, 10000);
    assert.equal(end.code, "SESSION_EXPIRED");
  });
});

describe("configuration", () => {
  test("session cookies without SOCKGATE_ALLOWED_ORIGINS, or with a short secret, refuse to start", async () => {
    let r = await run(["serve"], { SOCKGATE_NEXTAUTH_SECRET: SECRET, SOCKGATE_LISTEN: "127.0.0.1:0" });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SOCKGATE_NEXTAUTH_SECRET.*SOCKGATE_ALLOWED_ORIGINS/s);
    r = await run(["serve"], { SOCKGATE_NEXTAUTH_SECRET: "short", SOCKGATE_ALLOWED_ORIGINS: ORIGIN, SOCKGATE_LISTEN: "127.0.0.1:0" });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SOCKGATE_NEXTAUTH_SECRET.*at least 32/s);
    assert.ok(!r.stderr.includes("short"), "the secret is not echoed");
    r = await run(["serve"], { SOCKGATE_NEXTAUTH_SECRET: SECRET, SOCKGATE_NEXTAUTH_TOKEN_CLAIM: "accessToken", SOCKGATE_ALLOWED_ORIGINS: ORIGIN, SOCKGATE_LISTEN: "127.0.0.1:0" });
    assert.notEqual(r.code, 0, "a backend token needs JWT keys to verify it");
  });

  test("SOCKGATE_NEXTAUTH_COOKIE renames the cookie for either version", async () => {
    const gw = await startGateway({
      SOCKGATE_NEXTAUTH_SECRET: SECRET,
      SOCKGATE_NEXTAUTH_COOKIE: "app.session",
      SOCKGATE_ALLOWED_ORIGINS: ORIGIN,
    });
    try {
      for (const jwe of [await v4(user("renamed")), await v5(user("renamed"), { salt: "app.session" })]) {
        const s = await gw.connect(withCookie(`app.session=${jwe}`));
        assert.equal((await s.emitWithAck("auth:whoami")).userId, "renamed");
        s.close();
      }
      // The standard names are no longer read.
      const err = await refusal(gw, withCookie(`${V5}=${await v5(user("renamed"))}`));
      assert.match(err.message, /^AUTH_REQUIRED: /);
    } finally {
      await gw.stop();
    }
  });
});
