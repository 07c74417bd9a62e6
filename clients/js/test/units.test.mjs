// Pieces of the SDK that need no server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SockgateError, createClient, fullJitter, nextAuth, nextAuthToken, parseRefusal } from "../dist/index.js";

test("full jitter stays between 0 and the doubling cap", () => {
  const opts = { initialDelayMs: 100, maxDelayMs: 1000 };
  assert.equal(fullJitter(1, opts, () => 0), 0);
  assert.equal(fullJitter(1, opts, () => 0.999), 99);
  assert.equal(fullJitter(3, opts, () => 0.999), 399);
  assert.equal(fullJitter(4, opts, () => 0.5), 400);
  assert.equal(fullJitter(10, opts, () => 0.999), 999, "capped at maxDelayMs");
  assert.equal(fullJitter(1000, opts, () => 0.5), 500, "no overflow for huge attempts");
  const samples = Array.from({ length: 200 }, () => fullJitter(2, opts));
  assert.ok(samples.every((d) => d >= 0 && d < 200));
  assert.ok(new Set(samples).size > 50, "delays are spread, not fixed");
});

test("a handshake refusal splits into code and sentence; transport errors do not", () => {
  assert.deepEqual(parseRefusal("TOKEN_EXPIRED: token expired 3 s ago"), { code: "TOKEN_EXPIRED", message: "token expired 3 s ago" });
  assert.equal(parseRefusal("xhr poll error"), undefined);
  assert.equal(parseRefusal("NOT_A_CODE: nope"), undefined);
});

test("SockgateError carries the code and its class", () => {
  const e = SockgateError.fromAck({ ok: false, code: "FORBIDDEN", message: "no rule allows join in room x" });
  assert.ok(e instanceof Error);
  assert.equal(e.code, "FORBIDDEN");
  assert.equal(e.retryable, false);
  assert.equal(e.message, "FORBIDDEN: no rule allows join in room x");
  assert.equal(SockgateError.fromAck({ ok: false, code: "RATE_LIMITED", message: "slow down" }).retryable, true);
  assert.equal(SockgateError.fromAck("garbage").code, "INTERNAL");
});

test("the Next-Auth helpers read session.token, then session.accessToken", async () => {
  assert.equal(await nextAuthToken(async () => ({ token: "t1", accessToken: "t2" }))(), "t1");
  assert.equal(await nextAuthToken(async () => ({ accessToken: "t2" }))(), "t2");
  assert.equal(await nextAuthToken(async () => null)(), null);
  assert.equal(await nextAuthToken(() => ({ token: "" }))(), null);
  let calls = 0;
  const cookie = nextAuth(async () => (calls++, {}), { mode: "cookie" });
  assert.equal(cookie.withCredentials, true);
  assert.equal(cookie.getToken, undefined);
  await cookie.refreshSession();
  assert.equal(calls, 1);
  assert.equal(typeof nextAuth(async () => ({ token: "x" })).getToken, "function");
});

test("the Next-Auth helpers read the session with { broadcast: false }, so other tabs are not told to", async () => {
  // next-auth v4's getSession(params) posts a "session" message to every
  // other tab unless params.broadcast is false.
  const calls = [];
  const getSession = async (params) => (calls.push(params), { token: "t1" });
  assert.equal(await nextAuthToken(getSession)(), "t1");
  assert.equal(await nextAuth(getSession).getToken(), "t1");
  await nextAuth(getSession, { mode: "cookie" }).refreshSession();
  assert.deepEqual(calls, [{ broadcast: false }, { broadcast: false }, { broadcast: false }]);
});

test("createClient needs a token source or cookies", () => {
  assert.throws(() => createClient("http://127.0.0.1:9"), /getToken/);
});
