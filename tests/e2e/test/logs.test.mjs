// One structured line per authentication decision, and never a token or secret.
import { test } from "node:test";
import assert from "node:assert/strict";
import { now, refusal, sign, startGateway, SECRET } from "./helpers.mjs";

test("every decision is logged once with its fields, and no log line holds a token, a secret or an Engine.IO sid", async () => {
  const gw = await startGateway({ SOCKGATE_LOG: "trace", SOCKGATE_AUTH_COOKIE: "sg", SOCKGATE_ALLOWED_ORIGINS: "https://app.example", SOCKGATE_TOKEN_QUERY: "true" });
  const good = sign({ sub: "logger" });
  const expired = sign({ exp: now() - 10 });
  const forged = sign({}, { secret: "forged-secret-forged-secret-forged-secret" });
  const viaHeader = sign({ sub: "h" });
  const viaCookie = sign({ sub: "c" });
  const viaQuery = sign({ sub: "q" });
  // Engine.IO session ids are bearer credentials of their transport.
  const sids = [];
  const keep = (s) => (sids.push(s.id, s.io.engine.id), s);
  try {
    for (const transports of [["websocket"], ["polling"]]) {
      const s = keep(await gw.connect({ auth: { token: good }, transports }));
      await s.emitWithAck("echo", { hello: 1 });
      await s.emitWithAck("auth:whoami");
    }
    keep(await gw.connect({ extraHeaders: { authorization: `Bearer ${viaHeader}` } }));
    keep(await gw.connect({ extraHeaders: { cookie: `sg=${viaCookie}`, origin: "https://app.example" } }));
    keep(await gw.connect({ query: { token: viaQuery } }));
    await refusal(gw, { auth: { token: expired } });
    await refusal(gw, { auth: { token: forged } });
    await refusal(gw, {});
  } finally {
    await gw.stop();
  }

  const decisions = gw.logs.map((l) => JSON.parse(l)).filter((e) => e.target === "sockgate::auth");
  assert.deepEqual(
    decisions.map((e) => e.outcome),
    ["OK", "OK", "OK", "OK", "OK", "TOKEN_EXPIRED", "TOKEN_INVALID", "AUTH_REQUIRED"],
  );
  for (const e of decisions) {
    assert.equal(e.level, "INFO");
    assert.equal(e.remote, "127.0.0.1");
    assert.ok(["websocket", "polling"].includes(e.transport), e.transport);
    assert.equal(typeof e.verify_us, "number");
  }
  assert.deepEqual(decisions.filter((e) => e.outcome === "OK").map((e) => e.user), ["logger", "logger", "h", "c", "q"]);
  assert.deepEqual(decisions.slice(2, 5).map((e) => e.source), ["header", "cookie", "query"]);

  // The filter is `trace`: whatever any crate logs at any level must not leak.
  const secrets = [SECRET, good, expired, forged, viaHeader, viaCookie, viaQuery, ...sids];
  for (const line of gw.logs) {
    for (const s of secrets) {
      // The signature part alone identifies a token; check it and the whole.
      assert.ok(!line.includes(s) && !line.includes(s.split(".")[2] ?? s), `log line leaks a secret: ${line.slice(0, 200)}`);
    }
  }
});
