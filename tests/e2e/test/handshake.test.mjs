// The handshake: transports, token sources, every refusal code, whoami, echo.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { key, now, refusal, sign, startGateway, SECRET } from "./helpers.mjs";

const CODE_FORMAT = /^[A-Z_]+: \S.*$/;

describe("default gateway (HS256 secret)", () => {
  let gw;
  before(async () => (gw = await startGateway()));
  after(() => gw.stop());

  test("connects over websocket", async () => {
    const s = await gw.connect({ auth: { token: sign() }, transports: ["websocket"] });
    assert.equal(s.io.engine.transport.name, "websocket");
    assert.equal((await s.emitWithAck("auth:whoami")).userId, "alice");
  });

  test("an event emitted the moment the client is connected is answered", async () => {
    // The client emits from its connect listener, i.e. as soon as the
    // server's CONNECT arrives; the server's handlers must be in place by then.
    const answers = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const { io } = await import("socket.io-client");
        const s = io(gw.url, { auth: { token: sign() }, transports: ["websocket"], reconnection: false, forceNew: true });
        try {
          return await new Promise((resolve, reject) => {
            s.once("connect", () => s.timeout(5000).emitWithAck("echo", i).then(resolve, reject));
            s.once("connect_error", reject);
          });
        } finally {
          s.close();
        }
      }),
    );
    assert.deepEqual(answers, Array.from({ length: 100 }, (_, i) => i));
  });

  test("connects over long-polling", async () => {
    const s = await gw.connect({ auth: { token: sign() }, transports: ["polling"] });
    assert.equal(s.io.engine.transport.name, "polling");
    assert.equal((await s.emitWithAck("auth:whoami")).userId, "alice");
  });

  test("connects over polling and upgrades to websocket", async () => {
    const s = await gw.connect({ auth: { token: sign() } });
    if (s.io.engine.transport.name !== "websocket") {
      await new Promise((r) => s.io.engine.once("upgrade", r));
    }
    assert.equal(s.io.engine.transport.name, "websocket");
    assert.deepEqual(await s.emitWithAck("echo", { after: "upgrade" }), { after: "upgrade" });
  });

  test("/healthz answers 200", async () => {
    const res = await fetch(`${gw.url}/healthz`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "ok");
  });

  test("auth:whoami answers the verified identity", async () => {
    const exp = now() + 120;
    const s = await gw.connect({ auth: { token: sign({ exp, team: "red", roles: ["admin"] }) } });
    const me = await s.emitWithAck("auth:whoami");
    assert.equal(me.userId, "alice");
    // The public session id is its own: the Engine.IO sid (socket.id and
    // the engine's id here) is a credential and is never shown.
    assert.match(me.sessionId, /^[A-Za-z0-9]{20}$/);
    assert.notEqual(me.sessionId, s.id);
    assert.notEqual(me.sessionId, s.io.engine.id);
    assert.equal(me.expiresAt, exp);
    assert.equal(me.claims.team, "red");
    assert.deepEqual(me.claims.roles, ["admin"]);
    assert.equal(me.claims.sub, "alice");
  });

  test("echo returns its payload unchanged", async () => {
    const s = await gw.connect({ auth: { token: sign() } });
    for (const payload of [{ a: 1, b: [true, null, "x"] }, "text", 42, [1, [2, [3]]], { nested: { deep: { ok: 1.5 } } }]) {
      assert.deepEqual(await s.emitWithAck("echo", payload), payload);
    }
  });

  test("token from the Authorization header", async () => {
    const s = await gw.connect({ extraHeaders: { authorization: `Bearer ${sign({ sub: "hdr" })}` } });
    assert.equal((await s.emitWithAck("auth:whoami")).userId, "hdr");
  });

  test("auth.token wins over the header (first found wins)", async () => {
    const err = await refusal(gw, {
      auth: { token: "garbage" },
      extraHeaders: { authorization: `Bearer ${sign()}` },
    });
    assert.match(err.message, /^TOKEN_INVALID: /);
  });

  test("cookies and query tokens are off by default", async () => {
    const token = sign();
    let err = await refusal(gw, { extraHeaders: { cookie: `sg_token=${token}` } });
    assert.match(err.message, /^AUTH_REQUIRED: /);
    err = await refusal(gw, { query: { token } });
    assert.match(err.message, /^AUTH_REQUIRED: /);
  });

  // Every refusal: [what, client options, expected code].
  const refusals = () => [
    ["no token at all", {}, "AUTH_REQUIRED"],
    ["an empty token", { auth: { token: "" } }, "AUTH_REQUIRED"],
    ["garbage", { auth: { token: "not-a-jwt" } }, "TOKEN_INVALID"],
    ["a token of the wrong type", { auth: { token: 12345 } }, "TOKEN_INVALID"],
    ["a token object", { auth: { token: { nested: ["junk"] } } }, "TOKEN_INVALID"],
    ["a bad signature", { auth: { token: sign({}, { secret: "another-secret-another-secret-another!" }) } }, "TOKEN_INVALID"],
    ["alg none", { auth: { token: jwtNone({ sub: "alice", exp: now() + 60 }) } }, "TOKEN_INVALID"],
    ["an RS256 token", { auth: { token: sign({}, { secret: key("rsa.key"), algorithm: "RS256" }) } }, "TOKEN_INVALID"],
    ["a token over 8 KiB", { auth: { token: sign({ pad: "x".repeat(9000) }) } }, "TOKEN_INVALID"],
    ["a token expired 1 s ago", { auth: { token: sign({ exp: now() - 1 }) } }, "TOKEN_EXPIRED"],
    ["a token valid from next minute", { auth: { token: sign({ nbf: now() + 60 }) } }, "TOKEN_NOT_YET_VALID"],
    ["a token without exp", { auth: { token: sign({ exp: undefined }) } }, "CLAIMS_INVALID"],
    ["a token without sub", { auth: { token: sign({ sub: undefined }) } }, "CLAIMS_INVALID"],
    ["a token with an empty sub", { auth: { token: sign({ sub: "" }) } }, "CLAIMS_INVALID"],
  ];

  test("every refusal carries a stable code, over both transports", async () => {
    for (const transports of [["websocket"], ["polling"]]) {
      for (const [what, opts, code] of refusals()) {
        const err = await refusal(gw, { ...opts, transports });
        assert.match(err.message, CODE_FORMAT, what);
        assert.equal(err.message.split(":")[0], code, `${what} over ${transports}: ${err.message}`);
      }
    }
  });

  test("the expiry message says how long ago", async () => {
    const err = await refusal(gw, { auth: { token: sign({ exp: now() - 5 }) } });
    assert.match(err.message, /^TOKEN_EXPIRED: token expired [5-9] s ago$/);
    // err.data carries the same code and the sentence alone (docs/errors.md).
    assert.deepEqual(err.data, { code: "TOKEN_EXPIRED", message: err.message.slice("TOKEN_EXPIRED: ".length) });
  });

  test("garbage handshake payloads get TOKEN_INVALID while others keep working", async () => {
    const bystander = await gw.connect({ auth: { token: sign({ sub: "bystander" }) } });
    const url = gw.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket";
    const deep = "[".repeat(500) + "]".repeat(500);
    const payloads = ["junk{", "-42", "[1,2]", '"string"', "true", `{"token":${deep}}`, deep, '{"token":{"a":[[[[{}]]]]}}'];
    for (const payload of payloads) {
      const reply = await rawHandshake(url, payload);
      assert.match(reply, /^44\{"message":"TOKEN_INVALID: /, `payload ${payload.slice(0, 30)}`);
      assert.deepEqual(await bystander.emitWithAck("echo", { still: "here" }), { still: "here" });
    }
  });
});

describe("token sources that must be enabled", () => {
  let gw;
  before(async () => (gw = await startGateway({ SOCKGATE_AUTH_COOKIE: "sg_token", SOCKGATE_ALLOWED_ORIGINS: "https://app.example", SOCKGATE_TOKEN_QUERY: "true" })));
  after(() => gw.stop());

  test("token from an HTTP-only cookie, over both transports", async () => {
    for (const transports of [["websocket"], ["polling"]]) {
      const cookie = `theme=dark; sg_token=${sign({ sub: "cookie" })}`;
      const s = await gw.connect({ transports, extraHeaders: { cookie, origin: "https://app.example" } });
      assert.equal((await s.emitWithAck("auth:whoami")).userId, "cookie");
      // A browser on the same origin says so instead of sending Origin.
      const same = await gw.connect({ transports, extraHeaders: { cookie, "sec-fetch-site": "same-origin" } });
      assert.equal((await same.emitWithAck("auth:whoami")).userId, "cookie");
    }
  });

  test("a cookie counts only with an allowed Origin: cross-site handshakes are refused", async () => {
    const cookie = `sg_token=${sign({ sub: "cookie" })}`;
    for (const transports of [["websocket"], ["polling"]]) {
      // No Origin at all: a cookie alone proves nothing about the page.
      const bare = await refusal(gw, { transports, extraHeaders: { cookie } });
      assert.match(bare.message, /^ORIGIN_FORBIDDEN: /);
      const cross = await refusal(gw, { transports, extraHeaders: { cookie, "sec-fetch-site": "cross-site" } });
      assert.match(cross.message, /^ORIGIN_FORBIDDEN: /);
      const evil = await refusal(gw, { transports, extraHeaders: { cookie, origin: "https://evil.example" } });
      assert.match(evil.message, /^ORIGIN_FORBIDDEN: /);
    }
  });

  test("every request of a long-polling session is held to the allowed origins", async () => {
    const s = await gw.connect({ transports: ["polling"], auth: { token: sign({ sub: "poller" }) }, extraHeaders: { origin: "https://app.example" } });
    const sid = s.io.engine.id;
    const poll = (origin) => fetch(`${gw.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: "POST", headers: { origin, "content-type": "text/plain" }, body: '42["echo","x"]' });
    const evil = await poll("https://evil.example");
    assert.equal(evil.status, 403);
    assert.equal((await evil.json()).code, "ORIGIN_FORBIDDEN");
    assert.equal((await s.emitWithAck("echo", "still here")), "still here");
  });

  test("token from the query string when enabled", async () => {
    const s = await gw.connect({ query: { token: sign({ sub: "query" }) } });
    assert.equal((await s.emitWithAck("auth:whoami")).userId, "query");
  });

  test("the header wins over the cookie", async () => {
    const s = await gw.connect({
      extraHeaders: { authorization: `Bearer ${sign({ sub: "hdr" })}`, cookie: `sg_token=${sign({ sub: "cookie" })}` },
    });
    assert.equal((await s.emitWithAck("auth:whoami")).userId, "hdr");
  });
});

describe("claim rules", () => {
  test("issuer and audience are checked when set", async () => {
    const gw = await startGateway({ SOCKGATE_JWT_ISSUER: "https://id.example", SOCKGATE_JWT_AUDIENCE: "chat" });
    try {
      const good = { iss: "https://id.example", aud: "chat" };
      await gw.connect({ auth: { token: sign(good) } });
      for (const claims of [{ ...good, iss: "https://evil.example" }, { ...good, aud: "billing" }, { aud: "chat" }, { iss: good.iss }]) {
        const err = await refusal(gw, { auth: { token: sign(claims) } });
        assert.match(err.message, /^CLAIMS_INVALID: /, JSON.stringify(claims));
      }
    } finally {
      await gw.stop();
    }
  });

  test("the user claim is configurable and may be a number", async () => {
    const gw = await startGateway({ SOCKGATE_USER_CLAIM: "id" });
    try {
      const s = await gw.connect({ auth: { token: sign({ sub: undefined, id: 42 }) } });
      assert.equal((await s.emitWithAck("auth:whoami")).userId, "42");
      const err = await refusal(gw, { auth: { token: sign() } });
      assert.equal(
        err.message,
        "CLAIMS_INVALID: the `id` claim is missing (the token has exp, iat, sub): set SOCKGATE_USER_CLAIM to the claim that names the user",
      );
    } finally {
      await gw.stop();
    }
  });

  test("leeway admits a token that expired a second ago; exp can be optional", async () => {
    const gw = await startGateway({ SOCKGATE_JWT_LEEWAY: "30", SOCKGATE_JWT_REQUIRE_EXP: "false" });
    try {
      await gw.connect({ auth: { token: sign({ exp: now() - 1 }) } });
      const s = await gw.connect({ auth: { token: sign({ exp: undefined }) } });
      assert.equal((await s.emitWithAck("auth:whoami")).expiresAt, null);
    } finally {
      await gw.stop();
    }
  });
});

test("a previous secret keeps working during a rotation", async () => {
  const previous = "previous-secret-previous-secret-previous";
  const gw = await startGateway({ SOCKGATE_JWT_PREVIOUS_SECRET: previous });
  try {
    const s = await gw.connect({ auth: { token: sign({ sub: "old" }, { secret: previous }) } });
    assert.equal((await s.emitWithAck("auth:whoami")).userId, "old");
    await gw.connect({ auth: { token: sign({ sub: "new" }) } });
  } finally {
    await gw.stop();
  }
  // Once the rotation is over, tokens signed with the old secret are refused.
  const after = await startGateway();
  try {
    const err = await refusal(after, { auth: { token: sign({}, { secret: previous }) } });
    assert.match(err.message, /^TOKEN_INVALID: bad signature$/);
  } finally {
    await after.stop();
  }
});

describe("public keys", () => {
  test("an EC public key accepts ES256 and refuses algorithm confusion", async () => {
    const gw = await startGateway({ JWT_SECRET: "", SOCKGATE_JWT_PUBLIC_KEY: "tests/fixtures/keys/ec256.pub" });
    try {
      const s = await gw.connect({ auth: { token: sign({ sub: "ec" }, { secret: key("ec256.key"), algorithm: "ES256" }) } });
      assert.equal((await s.emitWithAck("auth:whoami")).userId, "ec");
      // HS256 "signed" with the public key itself as the HMAC secret.
      const confused = sign({}, { secret: key("ec256.pub") });
      assert.match((await refusal(gw, { auth: { token: confused } })).message, /^TOKEN_INVALID: /);
      const otherCurve = sign({}, { secret: key("ec384.key"), algorithm: "ES384" });
      assert.match((await refusal(gw, { auth: { token: otherCurve } })).message, /^TOKEN_INVALID: /);
    } finally {
      await gw.stop();
    }
  });

});

function jwtNone(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`;
}

/** Opens a raw Engine.IO websocket, sends `40<payload>`, returns the reply. */
function rawHandshake(url, payload) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const timer = setTimeout(() => reject(new Error("no answer to the handshake: the socket hung")), 5000);
    ws.on("message", (data) => {
      const msg = data.toString();
      if (msg.startsWith("0{")) return ws.send("40" + payload);
      if (msg === "2") return ws.send("3");
      clearTimeout(timer);
      ws.close();
      resolve(msg);
    });
    ws.on("error", reject);
  });
}
