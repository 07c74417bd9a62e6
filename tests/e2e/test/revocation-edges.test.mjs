// Revocations and expiries that must not come undone or misfire (security
// review, low items).
import { test } from "node:test";
import assert from "node:assert/strict";
import { api, API_KEY, ended, now, refusal, sign, startGateway } from "./helpers.mjs";

test("a jti revocation is kept until the real exp of a token seen on a session", async () => {
  const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY });
  try {
    const exp = now() + 600;
    const s = await gw.connect({ auth: { token: sign({ sub: "long", jti: "long-lived", exp }) } });
    const ending = ended(s);
    // The backend gives a shorter expiresAt than the token really has.
    const res = await api(gw, "POST", "/api/revocations", { body: { jti: "long-lived", expiresAt: now() + 5 } });
    assert.equal(res.status, 201);
    assert.equal(res.body.revoked.expiresAt, exp);
    assert.equal((await ending).end.code, "TOKEN_REVOKED");
    const listed = (await api(gw, "GET", "/api/revocations")).body.tokens.find((t) => t.jti === "long-lived");
    assert.equal(listed.expiresAt, exp, "pruned no earlier than the token's exp");
  } finally {
    await gw.stop();
  }
});

test("revocation times beyond year 9999 are refused rather than lost", async () => {
  const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY });
  try {
    for (const body of [{ jti: "far", expiresAt: 2 ** 63 }, { userId: "far", issuedBefore: 2 ** 63 }]) {
      const res = await api(gw, "POST", "/api/revocations", { raw: JSON.stringify(body).replace(String(2 ** 63), "9223372036854775808") });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, "INVALID_REQUEST");
    }
    // Up to the end of year 9999 is accepted and kept.
    const ok = await api(gw, "POST", "/api/revocations", { body: { userId: "far", issuedBefore: 253402300799 } });
    assert.equal(ok.status, 201);
    assert.match((await refusal(gw, { auth: { token: sign({ sub: "far" }) } })).message, /^TOKEN_REVOKED: /);
  } finally {
    await gw.stop();
  }
});

test("a far-future exp with an expiry grace does not end the session at once", async () => {
  const gw = await startGateway({ SOCKGATE_EXPIRY_GRACE: "10" });
  try {
    // exp near the end of u64 milliseconds: exp + grace used to wrap around.
    const s = await gw.connect({ auth: { token: sign({ sub: "forever", exp: 18446744073709551 }) } });
    let ended = false;
    s.on("session:end", () => (ended = true));
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(ended, false);
    assert.equal(await s.emitWithAck("echo", 1), 1);
  } finally {
    await gw.stop();
  }
});
