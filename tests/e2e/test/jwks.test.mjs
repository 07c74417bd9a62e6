// JWKS: keys by kid from a real local HTTP endpoint, rotation, outages.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createPublicKey } from "node:crypto";
import { io } from "socket.io-client";
import { eventually, key, refusal, sign, startGateway } from "./helpers.mjs";

/** A tiny identity provider serving whatever key set the test sets. */
async function startIdp() {
  const idp = { keys: [], down: false, fetches: 0 };
  idp.server = createServer((req, res) => {
    idp.fetches++;
    if (idp.down) {
      res.writeHead(503).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: idp.keys }));
  });
  await new Promise((r) => idp.server.listen(0, "127.0.0.1", r));
  idp.url = `http://127.0.0.1:${idp.server.address().port}/.well-known/jwks.json`;
  return idp;
}

const jwk = (pub, kid, alg) => ({ ...createPublicKey(key(pub)).export({ format: "jwk" }), kid, alg, use: "sig" });
const rs256 = (kid, priv = "rsa.key", claims = {}) => sign(claims, { secret: key(priv), algorithm: "RS256", keyid: kid });

describe("JWKS", () => {
  let idp;
  let gw;
  before(async () => {
    idp = await startIdp();
    idp.keys = [jwk("rsa.pub", "k1", "RS256"), jwk("ec256.pub", "e1", "ES256"), jwk("ed25519.pub", "d1", "EdDSA")];
    gw = await startGateway({ JWT_SECRET: undefined, SOCKGATE_JWKS_URL: idp.url, SOCKGATE_JWKS_MIN_REFETCH: "0" });
  });
  after(async () => {
    await gw.stop();
    idp.server.closeAllConnections();
    idp.server.close();
  });

  // EdDSA is covered by the Rust tests: the npm jsonwebtoken package cannot sign it.
  test("verifies RS256 and ES256 tokens by kid", async () => {
    for (const [kid, priv, algorithm] of [["k1", "rsa.key", "RS256"], ["e1", "ec256.key", "ES256"]]) {
      const token = sign({ sub: kid }, { secret: key(priv), algorithm, keyid: kid });
      const s = await gw.connect({ auth: { token } });
      assert.equal((await s.emitWithAck("auth:whoami")).userId, kid);
    }
  });

  test("a kid that names another key's type is refused", async () => {
    const err = await refusal(gw, { auth: { token: rs256("e1") } });
    assert.match(err.message, /^TOKEN_INVALID: /);
  });

  test("follows key rotation and keeps serving through an outage", async () => {
    idp.keys = [jwk("rsa2.pub", "k2", "RS256")];
    const s = await gw.connect({ auth: { token: rs256("k2", "rsa2.key", { sub: "rotated" }) } });
    assert.equal((await s.emitWithAck("auth:whoami")).userId, "rotated");
    assert.match((await refusal(gw, { auth: { token: rs256("k1") } })).message, /^TOKEN_INVALID: unknown kid$/);

    idp.down = true;
    await gw.connect({ auth: { token: rs256("k2", "rsa2.key") } });
    assert.match((await refusal(gw, { auth: { token: rs256("k9") } })).message, /^TOKEN_INVALID: /);
    idp.down = false;
  });

  test("HS256 tokens are refused when only JWKS is configured", async () => {
    const err = await refusal(gw, { auth: { token: sign({}, { secret: "whatever-secret-whatever-secret-whatever" }) } });
    assert.match(err.message, /^TOKEN_INVALID: /);
  });
});

test("refetches for unknown kids are rate-limited", async () => {
  const idp = await startIdp();
  idp.keys = [jwk("rsa.pub", "k1", "RS256")];
  const gw = await startGateway({ JWT_SECRET: undefined, SOCKGATE_JWKS_URL: idp.url, SOCKGATE_JWKS_MIN_REFETCH: "60" });
  try {
    await gw.connect({ auth: { token: rs256("k1") } });
    const before = idp.fetches;
    for (let i = 0; i < 20; i++) {
      assert.match((await refusal(gw, { auth: { token: rs256(`forged-${i}`) } })).message, /^TOKEN_INVALID: /);
    }
    assert.ok(idp.fetches - before <= 1, `fetched ${idp.fetches - before} times for 20 forged kids`);
  } finally {
    await gw.stop();
    idp.server.closeAllConnections();
    idp.server.close();
  }
});

test("while the JWKS endpoint is down, clients retry by themselves and connect once it answers", async () => {
  const idp = await startIdp();
  idp.keys = [jwk("rsa.pub", "k1", "RS256")];
  idp.down = true;
  const gw = await startGateway({ JWT_SECRET: undefined, SOCKGATE_JWKS_URL: idp.url, SOCKGATE_JWKS_MIN_REFETCH: "0" });
  const clients = [];
  try {
    // AUTH_UNAVAILABLE is retryable: the transport is closed rather than
    // the CONNECT refused, so the official client (default options) keeps
    // trying, on every transport.
    for (let i = 0; i < 12; i++) {
      const transports = [undefined, ["polling"], ["websocket"]][i % 3];
      const socket = io(gw.url, { forceNew: true, auth: (cb) => cb({ token: rs256("k1") }), ...(transports ? { transports } : {}) });
      const errors = [];
      socket.on("connect_error", (err) => errors.push(err.message));
      clients.push({ socket, errors });
    }
    const refusals = () => gw.logs.filter((l) => l.includes('"outcome":"AUTH_UNAVAILABLE"')).length;
    await eventually(() => refusals() >= 24, 20000, "each client refused about twice");
    assert.ok(clients.every((c) => !c.socket.connected));
    idp.down = false;
    await eventually(() => clients.every((c) => c.socket.connected), 20000, "all connected once the keys load");
    for (const c of clients) {
      assert.ok(!c.errors.some((m) => m.startsWith("AUTH_UNAVAILABLE")), `no terminal refusal: ${c.errors}`);
      assert.equal((await c.socket.emitWithAck("auth:whoami")).userId, "alice");
    }
  } finally {
    for (const c of clients) c.socket.close();
    await gw.stop();
    idp.server.closeAllConnections();
    idp.server.close();
  }
});
