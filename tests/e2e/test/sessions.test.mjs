// Live sessions: expiry on open connections, in-band refresh, revocation,
// session limits. Time-based checks use short TTLs and generous bounds.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { api, API_KEY, ended, next, now, refusal, sign, startGateway, sessionIdOf } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** A token whose lifetime starts now: `iat` = now, `exp` = now + ttl. */
const shortLived = (ttl, claims = {}) => sign({ iat: now(), exp: now() + ttl, ...claims });

describe("expiry and refresh", () => {
  let gw;
  before(async () => (gw = await startGateway()));
  after(() => gw.stop());

  test("a 2-second token warns with auth:expiring, then ends with SESSION_EXPIRED", async () => {
    const token = shortLived(2);
    const exp = now() + 2;
    const s = await gw.connect({ auth: { token } });
    const events = [];
    s.on("auth:expiring", (p) => events.push(["auth:expiring", p, Date.now()]));
    const { end, reason, at } = await ended(s);
    assert.equal(events.length, 1, "exactly one warning");
    const [, warning, warnedAt] = events[0];
    assert.equal(warning.expiresAt, exp);
    assert.ok(warning.secondsLeft >= 0 && warning.secondsLeft <= 2, JSON.stringify(warning));
    assert.ok(warnedAt < end.at, "the warning comes first");
    assert.equal(end.code, "SESSION_EXPIRED");
    assert.equal(typeof end.message, "string");
    // Retryable: the transport closes, and a client would reconnect with
    // whatever token its auth gives (this one has reconnection off).
    assert.equal(end.reconnect, true);
    assert.equal(reason, "transport close");
    assert.ok(at >= exp * 1000 - 50, `ended ${exp * 1000 - at} ms before exp`);
    assert.ok(at < exp * 1000 + 1500, `ended ${at - exp * 1000} ms after exp`);
  });

  test("a refresh before expiry keeps the socket alive past the first token's exp", async () => {
    const first = shortLived(2, { v: 1 });
    const firstExp = now() + 2;
    const s = await gw.connect({ auth: { token: first } });
    let endedEarly = false;
    s.on("session:end", () => (endedEarly = true));
    await next(s, "auth:expiring");
    const second = shortLived(60, { v: 2 });
    const ack = await s.emitWithAck("auth:refresh", { token: second });
    assert.deepEqual(ack, { ok: true, expiresAt: now() + 60 });
    await sleep(Math.max(0, firstExp * 1000 + 1500 - Date.now()));
    assert.ok(s.connected && !endedEarly, "still connected after the first token expired");
    const me = await s.emitWithAck("auth:whoami");
    assert.equal(me.claims.v, 2, "claims were replaced");
    assert.equal(me.expiresAt, ack.expiresAt);
  });

  test("failed refreshes answer the handshake codes and leave the connection up", async () => {
    const exp = now() + 3;
    const s = await gw.connect({ auth: { token: sign({ iat: now(), exp, v: 1 }) } });
    const cases = [
      [{ token: sign({ sub: "mallory" }) }, "SUBJECT_MISMATCH"],
      [{ token: sign({ exp: now() - 1 }) }, "TOKEN_EXPIRED"],
      [{ token: "garbage" }, "TOKEN_INVALID"],
      [{ token: sign({}, { secret: "another-secret-another-secret-another!" }) }, "TOKEN_INVALID"],
      [{ token: 42 }, "TOKEN_INVALID"],
      ["a bare string", "TOKEN_INVALID"],
      [{}, "AUTH_REQUIRED"],
    ];
    for (const [payload, code] of cases) {
      const ack = await s.emitWithAck("auth:refresh", payload);
      assert.equal(ack.ok, false, JSON.stringify(payload));
      assert.equal(ack.code, code, `${JSON.stringify(payload)}: ${ack.message}`);
      assert.equal(typeof ack.message, "string");
      assert.deepEqual(await s.emitWithAck("echo", "still up"), "still up");
    }
    const me = await s.emitWithAck("auth:whoami");
    assert.equal(me.claims.v, 1);
    assert.equal(me.expiresAt, exp);
    // ... and the old token still ends the session at its own exp.
    const { end } = await ended(s);
    assert.equal(end.code, "SESSION_EXPIRED");
  });

  test("tokens without exp (when allowed) never expire on their own", async () => {
    const lax = await startGateway({ SOCKGATE_JWT_REQUIRE_EXP: "false" });
    try {
      const s = await lax.connect({ auth: { token: sign({ exp: undefined }) } });
      const t = shortLived(1);
      const short = await lax.connect({ auth: { token: t } });
      await ended(short);
      assert.ok(s.connected);
    } finally {
      await lax.stop();
    }
  });
});

test("SOCKGATE_REFRESH_LEAD sets how long before exp auth:expiring comes", async () => {
  const gw = await startGateway({ SOCKGATE_REFRESH_LEAD: "2" });
  try {
    // Issued 20 s ago, 4 s left: a quarter of the lifetime is 6 s, so the
    // lead of 2 s applies (the default of 60 s would warn at once).
    const exp = now() + 4;
    const connectedAt = Date.now();
    const s = await gw.connect({ auth: { token: sign({ iat: now() - 20, exp }) } });
    const warning = await next(s, "auth:expiring");
    const warnedAt = Date.now();
    assert.equal(warning.expiresAt, exp);
    assert.ok(warnedAt >= (exp - 2) * 1000 - 50, `warned ${(exp - 2) * 1000 - warnedAt} ms early`);
    assert.ok(warnedAt - connectedAt >= 1000, "not at once");
    assert.ok(warning.secondsLeft <= 2, JSON.stringify(warning));
  } finally {
    await gw.stop();
  }
});

test("SOCKGATE_EXPIRY_GRACE delays the end", async () => {
  const gw = await startGateway({ SOCKGATE_EXPIRY_GRACE: "2" });
  try {
    const exp = now() + 1;
    const s = await gw.connect({ auth: { token: sign({ iat: now(), exp }) } });
    const { end, at } = await ended(s);
    assert.equal(end.code, "SESSION_EXPIRED");
    assert.ok(at >= (exp + 2) * 1000 - 50, `ended ${(exp + 2) * 1000 - at} ms before exp + grace`);
  } finally {
    await gw.stop();
  }
});

describe("revocation", () => {
  let gw;
  before(async () => (gw = await startGateway({ SOCKGATE_API_KEY: API_KEY })));
  after(() => gw.stop());

  test("revoking a jti ends its live sockets within 100 ms and blocks reconnects and refreshes", async () => {
    const revoked = sign({ sub: "rita", jti: "jti-revoked" });
    const kept = sign({ sub: "rita", jti: "jti-kept" });
    const a = await gw.connect({ auth: { token: revoked }, transports: ["websocket"] });
    const b = await gw.connect({ auth: { token: revoked }, transports: ["polling"] });
    const c = await gw.connect({ auth: { token: kept } });
    const endings = [ended(a), ended(b)];
    // Warm the HTTP connection and the store, so the timing below is the revocation's.
    await api(gw, "POST", "/api/revocations", { body: { jti: "warm-up", expiresAt: now() + 60 } });
    const sent = Date.now();
    const res = await api(gw, "POST", "/api/revocations", { body: { jti: "jti-revoked", expiresAt: now() + 300 } });
    assert.equal(res.status, 201);
    assert.equal(res.body.ended, 2);
    for (const { end, reason, at } of await Promise.all(endings)) {
      assert.equal(end.code, "TOKEN_REVOKED");
      assert.equal(reason, "io server disconnect");
      assert.ok(at - sent < 100, `ended ${at - sent} ms after the revocation call`);
    }
    assert.ok(c.connected, "another token of the same user is untouched");
    assert.match((await refusal(gw, { auth: { token: revoked } })).message, /^TOKEN_REVOKED: /);
    const ack = await c.emitWithAck("auth:refresh", { token: revoked });
    assert.equal(ack.code, "TOKEN_REVOKED");
  });

  test("revoking a user's tokens issued before T ends them and blocks them, not newer ones", async () => {
    const old = sign({ sub: "ulla", iat: now() - 30 });
    const s1 = await gw.connect({ auth: { token: old } });
    const s2 = await gw.connect({ auth: { token: old }, transports: ["polling"] });
    const other = await gw.connect({ auth: { token: sign({ sub: "otto", iat: now() - 30 }) } });
    const endings = [ended(s1), ended(s2)];
    await api(gw, "GET", "/api/revocations"); // warm the HTTP connection
    const sent = Date.now();
    const res = await api(gw, "POST", "/api/revocations", { body: { userId: "ulla", issuedBefore: now() } });
    assert.equal(res.status, 201);
    for (const { end, at } of await Promise.all(endings)) {
      assert.equal(end.code, "TOKEN_REVOKED");
      assert.ok(at - sent < 100, `ended ${at - sent} ms after the revocation call`);
    }
    assert.ok(other.connected);
    assert.match((await refusal(gw, { auth: { token: old } })).message, /^TOKEN_REVOKED: /);
    // A token issued at T or later (the user logged in again) works.
    const fresh = await gw.connect({ auth: { token: sign({ sub: "ulla", iat: res.body.revoked.issuedBefore }) } });
    assert.equal((await fresh.emitWithAck("auth:whoami")).userId, "ulla");
  });

  test("without issuedBefore, every token issued until now is revoked", async () => {
    const s = await gw.connect({ auth: { token: sign({ sub: "vera", iat: now() }) } });
    const ending = ended(s);
    const res = await api(gw, "POST", "/api/revocations", { body: { userId: "vera" } });
    assert.equal(res.status, 201);
    assert.equal((await ending).end.code, "TOKEN_REVOKED");
  });
});

test("revocations survive a restart", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "sockgate-restart-"));
  const env = { SOCKGATE_API_KEY: API_KEY, SOCKGATE_DATA_DIR: dataDir };
  const byJti = sign({ sub: "rex", jti: "survivor" });
  const byUser = sign({ sub: "carol", iat: now() - 60 });
  let gw = await startGateway(env);
  try {
    assert.equal((await api(gw, "POST", "/api/revocations", { body: { jti: "survivor", expiresAt: now() + 600 } })).status, 201);
    assert.equal((await api(gw, "POST", "/api/revocations", { body: { userId: "carol", issuedBefore: now() - 1 } })).status, 201);
    // Already expired: kept until its exp only, so it is pruned at the restart.
    assert.equal((await api(gw, "POST", "/api/revocations", { body: { jti: "stale", expiresAt: now() - 5 } })).status, 201);
  } finally {
    await gw.stop();
  }
  gw = await startGateway(env);
  try {
    assert.match((await refusal(gw, { auth: { token: byJti } })).message, /^TOKEN_REVOKED: /);
    assert.match((await refusal(gw, { auth: { token: byUser } })).message, /^TOKEN_REVOKED: /);
    const list = await api(gw, "GET", "/api/revocations");
    assert.deepEqual(list.body.tokens.map((t) => t.jti), ["survivor"]);
    assert.deepEqual(list.body.users.map((u) => u.userId), ["carol"]);
    await gw.connect({ auth: { token: sign({ sub: "rex", jti: "another" }) } });
  } finally {
    await gw.stop();
  }
});

describe("session limits", () => {
  test("policy reject: the extra handshake gets SESSION_LIMIT", async () => {
    const gw = await startGateway({ SOCKGATE_MAX_SESSIONS_PER_USER: "2", SOCKGATE_SESSION_LIMIT_POLICY: "reject" });
    try {
      const s1 = await gw.connect({ auth: { token: sign({ sub: "lim" }) } });
      await gw.connect({ auth: { token: sign({ sub: "lim" }) }, transports: ["polling"] });
      assert.match((await refusal(gw, { auth: { token: sign({ sub: "lim" }) } })).message, /^SESSION_LIMIT: /);
      await gw.connect({ auth: { token: sign({ sub: "someone-else" }) } });
      // A slot frees up when a session ends.
      s1.disconnect();
      await sleep(100);
      await gw.connect({ auth: { token: sign({ sub: "lim" }) } });
    } finally {
      await gw.stop();
    }
  });

  test("policy evict-oldest: the oldest session ends with SESSION_EVICTED", async () => {
    const gw = await startGateway({
      SOCKGATE_MAX_SESSIONS_PER_USER: "2",
      SOCKGATE_SESSION_LIMIT_POLICY: "evict-oldest",
      SOCKGATE_API_KEY: API_KEY,
    });
    try {
      const s1 = await gw.connect({ auth: { token: sign({ sub: "evi" }) } });
      const s2 = await gw.connect({ auth: { token: sign({ sub: "evi" }) } });
      const ending = ended(s1);
      const s3 = await gw.connect({ auth: { token: sign({ sub: "evi" }) } });
      const { end, reason } = await ending;
      assert.equal(end.code, "SESSION_EVICTED");
      assert.equal(reason, "io server disconnect");
      assert.ok(s2.connected && s3.connected);
      const listed = await api(gw, "GET", "/api/sessions?user=evi");
      assert.deepEqual(listed.body.sessions.map((x) => x.sessionId).sort(), [await sessionIdOf(s2), await sessionIdOf(s3)].sort());
    } finally {
      await gw.stop();
    }
  });

  test("a limit of 0 and an unknown policy refuse to start", async () => {
    for (const env of [{ SOCKGATE_MAX_SESSIONS_PER_USER: "0" }, { SOCKGATE_SESSION_LIMIT_POLICY: "newest-wins" }]) {
      await assert.rejects(startGateway(env), /exited with 2/);
    }
  });
});
