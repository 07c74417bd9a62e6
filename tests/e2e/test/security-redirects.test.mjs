// Security review, redirects: the JWKS fetch follows redirects within its
// own origin only, and the authorization webhook follows none.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createPublicKey } from "node:crypto";
import { io } from "socket.io-client";
import { eventually, key, sign, startGateway } from "./helpers.mjs";

/** An HTTP server on a free local port; `handle(req, res, body)` answers. */
async function server(handle) {
  const srv = { requests: [] };
  srv.server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      srv.requests.push({ method: req.method, url: req.url, body });
      handle(req, res, body);
    });
  });
  await new Promise((r) => srv.server.listen(0, "127.0.0.1", r));
  srv.origin = `http://127.0.0.1:${srv.server.address().port}`;
  srv.close = () => {
    srv.server.closeAllConnections();
    srv.server.close();
  };
  return srv;
}

const JWKS = JSON.stringify({
  keys: [{ ...createPublicKey(key("rsa.pub")).export({ format: "jwk" }), kid: "k1", alg: "RS256", use: "sig" }],
});
const rs256 = (sub) => sign({ sub }, { secret: key("rsa.key"), algorithm: "RS256", keyid: "k1" });

/** Connects with a deadline: "connected", the refusal's code, or "no answer". */
function attempt(url, token, ms = 4000) {
  const socket = io(url, { reconnection: false, forceNew: true, timeout: ms, auth: { token } });
  return new Promise((resolve) => {
    const give = (result) => {
      clearTimeout(timer);
      socket.close();
      resolve(result);
    };
    const timer = setTimeout(() => give("no answer"), ms);
    socket.once("connect", () => give("connected"));
    socket.once("connect_error", (err) => give(err.message.split(":")[0]));
  });
}

test("the JWKS fetch does not follow a redirect to another origin", async () => {
  // The keys an attacker who can make the IdP redirect would like us to use.
  const elsewhere = await server((req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JWKS));
  const idp = await server((req, res) => res.writeHead(302, { location: `${elsewhere.origin}/jwks.json` }).end());
  const gw = await startGateway({ JWT_SECRET: undefined, SOCKGATE_JWKS_URL: `${idp.origin}/jwks.json`, SOCKGATE_JWKS_MIN_REFETCH: "0" });
  try {
    const outcome = await attempt(gw.url, rs256("redirected"));
    assert.deepEqual(
      { outcome, fetchedElsewhere: elsewhere.requests.length },
      { outcome: "no answer", fetchedElsewhere: 0 },
    );
    assert.ok(idp.requests.length >= 1);
    assert.ok(
      gw.logs.some((l) => l.includes("JWKS") && l.includes("another origin")),
      "the refused redirect is logged",
    );
  } finally {
    await gw.stop();
    idp.close();
    elsewhere.close();
  }
});

test("the JWKS fetch follows a redirect within its own origin", async () => {
  const idp = await server((req, res) => {
    if (req.url === "/old/jwks.json") return res.writeHead(301, { location: "/.well-known/jwks.json" }).end();
    res.writeHead(200, { "content-type": "application/json" }).end(JWKS);
  });
  const gw = await startGateway({ JWT_SECRET: undefined, SOCKGATE_JWKS_URL: `${idp.origin}/old/jwks.json` });
  try {
    await eventually(() => gw.logs.some((l) => l.includes("JWKS loaded")), 5000, "the keys loaded");
    assert.equal(await attempt(gw.url, rs256("moved")), "connected");
    assert.deepEqual(idp.requests.map((r) => r.url), ["/old/jwks.json", "/.well-known/jwks.json"]);
  } finally {
    await gw.stop();
    idp.close();
  }
});

test("the webhook follows no redirect: the claims stay home and a 3xx denies", async () => {
  const elsewhere = await server((req, res) => res.writeHead(204).end());
  const hook = await server((req, res, body) => {
    if (req.method === "GET") return res.writeHead(200, { "content-type": "text/html" }).end("<form>log in</form>");
    const { room } = JSON.parse(body);
    if (room.startsWith("away:")) return res.writeHead(307, { location: `${elsewhere.origin}/authz` }).end();
    if (room.startsWith("login:")) return res.writeHead(302, { location: "/login" }).end();
    res.writeHead(room.startsWith("ok:") ? 204 : 403).end();
  });
  const gw = await startGateway({ SOCKGATE_AUTHZ_URL: `${hook.origin}/authz` });
  try {
    const s = await gw.connect({ auth: { token: sign({ sub: "walter", secretClaim: "for-the-webhook-only" }) } });
    const code = async (room) => {
      const ack = await s.emitWithAck("room:join", { room });
      return ack.ok ? "ok" : ack.code;
    };
    assert.deepEqual(
      {
        plain: await code("ok:1"),
        // A 307 would re-POST the claims to another host.
        away: await code("away:1"),
        // A 302 turns the POST into a GET, and a login page answers 200.
        login: await code("login:1"),
        claimsSentElsewhere: elsewhere.requests.length,
        getsToTheHook: hook.requests.filter((r) => r.method === "GET").length,
      },
      { plain: "ok", away: "FORBIDDEN", login: "FORBIDDEN", claimsSentElsewhere: 0, getsToTheHook: 0 },
    );
  } finally {
    await gw.stop();
    hook.close();
    elsewhere.close();
  }
});
